"""Tiny random-weight models of each family for the export stage of the family matrix.

`build_family_model(family, folder)` writes a 2-layer model (hidden 64) of the family's own architecture with a
small tokenizer of the family's kind and a chat template written from the family's documented format:
- byte-level BPE with the family's split rule (Llama 3 / SmolLM3: Llama 3 rule; Qwen2.5 / Qwen3: Qwen2 rule;
  Phi-4-mini: the GPT-4o rule; GPT2Tokenizer class as Phi-4 ships it), trained here on the sample data;
- SentencePiece `tokenizer.model` (Gemma 2/3: no dummy prefix, <start_of_turn>/<end_of_turn>; Phi-3 and
  Mistral v0.3: Llama-style with the dummy prefix, [INST]/[/INST] control tokens for Mistral), trained here.
Nothing comes from a model hub.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "sample_dataset.jsonl"

LLAMA3_RULE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_RULE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT4O_RULE = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Templates written from each family's documented chat format.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for m in messages %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
    " + m['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\n" + "{default}" + "<|im_end|>\\n' }}"
    "{%- endif %}{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN3_TEMPLATE = (
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)
SMOLLM3_TEMPLATE = (
    "{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set rest = messages %}{%- endif %}{{- '\\n/no_think<|im_end|>\\n' }}"
    "{%- for m in rest %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n' }}{%- endif %}"
)
PHI_TEMPLATE = (
    "{%- for m in messages %}{{- '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- else %}{{- eos_token }}{%- endif %}"
)
# Gemma 2 rejects a system turn; Gemma 3 folds it into the first user turn.
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set first = messages[0]['content'] + '\\n\\n' %}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set first = '' %}{%- set rest = messages %}{%- endif %}"
    "{%- for m in rest %}{%- set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + m['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}"
)
# Mistral v0.3: the system prompt goes in front of the LAST user turn.
MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}"
)

TEKKEN_RULE = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Mistral Nemo / Tekken: no space after [INST], the system prompt in front of the last user turn.
TEKKEN_TEMPLATE = MISTRAL_TEMPLATE.replace("'[INST] '", "'[INST]'").replace("' ' + message", "message")

FAMILIES = (
    "llama3",
    "mistral",
    "mistral-tekken",
    "qwen2.5",
    "qwen3",
    "qwen3-moe",
    "gemma2",
    "gemma3",
    "phi3",
    "phi4",
    "smollm3",
)


def _texts() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [m["content"] for row in rows for m in row["messages"]]


def _bpe_tokenizer(
    rule: str,
    specials: list[str],
    bos: str | None,
    eos: str,
    pad: str,
    ignore_merges: bool = False,
    **extra: Any,
) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(rule), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts() * 2, trainer=trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, **extra)


def _spm_model(
    folder: Path, specials: list[str], ids: dict[str, int], pieces: dict[str, str], gemma: bool
) -> Path:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_texts() * 2),
        model_writer=buf,
        vocab_size=500,
        model_type="bpe",
        byte_fallback=True,
        user_defined_symbols=specials,
        character_coverage=1.0,
        add_dummy_prefix=not gemma,
        remove_extra_whitespaces=not gemma,
        normalization_rule_name="identity",
        minloglevel=2,
        **{f"{k}_id": v for k, v in ids.items()},
        **{f"{k}_piece": v for k, v in pieces.items()},
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.model"
    path.write_bytes(buf.getvalue())
    return path


def _spm_tokenizer(folder: Path, cls: str, template: str, **tokens: str) -> Any:
    from transformers import AutoTokenizer

    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": cls, "chat_template": template, **tokens}), encoding="utf-8"
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = template
    return tokenizer


def _tokenizer(family: str, folder: Path) -> Any:
    if family in ("llama3",):
        specials = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ]
        tok = _bpe_tokenizer(LLAMA3_RULE, specials, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>")
        tok.chat_template = LLAMA3_TEMPLATE
    elif family in ("qwen2.5", "qwen3", "qwen3-moe"):
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
        tok = _bpe_tokenizer(QWEN2_RULE, specials, None, "<|im_end|>", "<|endoftext|>")
        tok.chat_template = (
            CHATML_TEMPLATE.replace("{default}", "You are Qwen, a helpful assistant.")
            if family == "qwen2.5"
            else QWEN3_TEMPLATE
        )
    elif family == "smollm3":
        specials = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|im_start|>",
            "<|im_end|>",
            "<think>",
            "</think>",
        ]
        tok = _bpe_tokenizer(LLAMA3_RULE, specials, None, "<|im_end|>", "<|end_of_text|>")
        tok.chat_template = SMOLLM3_TEMPLATE
    elif family == "mistral-tekken":
        specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
        tok = _bpe_tokenizer(
            TEKKEN_RULE, specials, "<s>", "</s>", "<unk>", ignore_merges=True, unk_token="<unk>"
        )
        tok.chat_template = TEKKEN_TEMPLATE
    elif family == "phi4":
        specials = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
        tok = _bpe_tokenizer(GPT4O_RULE, specials, None, "<|endoftext|>", "<|endoftext|>")
        tok.chat_template = PHI_TEMPLATE
    elif family in ("gemma2", "gemma3"):
        _spm_model(
            folder,
            ["<start_of_turn>", "<end_of_turn>"],
            {"pad": 0, "eos": 1, "bos": 2, "unk": 3},
            {"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"},
            gemma=True,
        )
        template = GEMMA2_TEMPLATE if family == "gemma2" else GEMMA3_TEMPLATE
        tok = _spm_tokenizer(
            folder, "GemmaTokenizer", template, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
            unk_token="<unk>", add_bos_token=True,
        )  # fmt: skip
    elif family in ("phi3", "mistral"):
        specials = (
            ["[INST]", "[/INST]"]
            if family == "mistral"
            else ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
        )
        _spm_model(
            folder,
            specials,
            {"unk": 0, "bos": 1, "eos": 2, "pad": -1},
            {"unk": "<unk>", "bos": "<s>", "eos": "</s>"},
            gemma=False,
        )
        template = MISTRAL_TEMPLATE if family == "mistral" else PHI_TEMPLATE
        tok = _spm_tokenizer(
            folder, "LlamaTokenizer", template, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            add_bos_token=True, legacy=family == "phi3",
        )  # fmt: skip
        if family == "phi3":
            # Phi-3's chat tokens strip the whitespace after them (rstrip), with a legacy SentencePiece
            # tokenizer: what llama.cpp reproduces for models named phi3.
            from tokenizers import AddedToken

            tok.backend_tokenizer.add_tokens(
                [AddedToken(t, rstrip=True, special=False, normalized=False) for t in specials]
            )
    else:
        raise ValueError(family)
    return tok


def _config(family: str, vocab: int, tok: Any) -> Any:
    import transformers as T

    common: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    if family == "llama3":
        return T.LlamaConfig(**common, tie_word_embeddings=True, rope_theta=500000.0)
    if family in ("mistral", "mistral-tekken"):
        return T.MistralConfig(**common, head_dim=16, sliding_window=None)
    if family == "qwen2.5":
        return T.Qwen2Config(**common, tie_word_embeddings=True)
    if family == "qwen3":
        return T.Qwen3Config(**common, head_dim=16, tie_word_embeddings=True)
    if family == "qwen3-moe":
        return T.Qwen3MoeConfig(
            **common, head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
            decoder_sparse_step=1, mlp_only_layers=[],
            norm_topk_prob=True,  # as the real Qwen3 MoE models; llama.cpp always renormalizes the top-k
        )  # fmt: skip
    if family == "gemma2":
        return T.Gemma2Config(**common, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    if family == "gemma3":
        return T.Gemma3TextConfig(**common, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    if family in ("phi3", "phi4"):
        return T.Phi3Config(**common, tie_word_embeddings=family == "phi4")
    if family == "smollm3":
        return T.SmolLM3Config(**common, tie_word_embeddings=True, no_rope_layer_interval=4)
    raise ValueError(family)


def build_family_model(family: str, folder: Path) -> Path:
    """Write a tiny random-weight model of `family` (with tokenizer and chat template) into `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(family, folder)
    config = _config(family, len(tok), tok)
    if family == "gemma3":
        config.architectures = ["Gemma3ForCausalLM"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    if (
        family == "phi4"
    ):  # Phi-4-mini ships its BPE tokenizer as GPT2Tokenizer (llama.cpp's converter reads this)
        config_file = folder / "tokenizer_config.json"
        data = json.loads(config_file.read_text(encoding="utf-8"))
        data["tokenizer_class"] = "GPT2Tokenizer"
        config_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return folder
