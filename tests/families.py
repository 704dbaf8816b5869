"""Tiny random-weight models of every family a user is likely to bring, built in tmp dirs for the family
matrix tests: 2 layers, hidden 64, the family's own architecture class and config quirks, a small tokenizer
trained here (byte-level BPE, or SentencePiece-style metaspace where the family uses SentencePiece) with the
family's special tokens, and the family's chat template.

The templates are written here from each family's documented prompt format (the model cards' templates);
each FAMILY entry says which behaviour of the real template it reproduces, because that behaviour is what
the tests exercise. Gemma 3 uses the real Gemma 3 tokenizer when the embedded Gemma 3 270M GGUF package is
installed (its GGUF ships the tokenizer but no chat template, so the template is ours there too).

Public: FAMILIES (name -> Family), build_family_model(family, tmp_path) -> Path, build_family_tokenizer().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- chat templates (from each family's documented format) ----------------------------------------------
# Llama 3.1: a system header always comes first (knowledge/today dates, then the user's system prompt);
# contents are trimmed; every turn ends with <|eot_id|>.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# Mistral-7B-Instruct-v0.3: the system prompt is put before the LAST user message (so a conversation that
# ends with an assistant reply renders without it at all); roles must alternate; assistant contents are
# trimmed and end with </s>.
MISTRAL_V03_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content']|trim + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the exception of an "
    "initial optional system message!') }}{%- endif %}"
    "{%- endfor %}"
)

# Mistral Nemo (Tekken tokenizer): no spaces around [INST]/[/INST]; the system prompt also goes before the
# last user message.
MISTRAL_TEKKEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST]' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST]' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user, assistant and system roles are supported!') }}{%- endif %}"
    "{%- endfor %}"
)

# Qwen2.5-Instruct: ChatML; a default system prompt when the row has none.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Qwen3: ChatML; assistant turns after the last user message get a <think> block (empty when the reply
# carries no reasoning), earlier turns have their reasoning dropped; enable_thinking=False puts an empty
# think block in the generation prompt.
QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' %}"
    "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}"
    "{%- if loop.last or (not loop.last and reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n'"
    " + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)

# Gemma 2: no system role (raises); the assistant is called "model"; contents trimmed; <end_of_turn>.
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

# Gemma 3: the system prompt is folded into the first user turn by the template itself.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)

# Phi-3 / Phi-4-mini: <|role|>content<|end|>; the END of a conversation without a generation prompt gets the
# eos token, so a prefix rendered up to an earlier reply is not a prefix of the whole conversation.
PHI3_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

# SmolLM3: a system block with metadata and the reasoning mode (/think unless enable_thinking is false or
# the system prompt says /no_think); in /no_think mode every assistant turn and the generation prompt start
# with an empty think block. (The real template also prints today's date; left out to stay reproducible.)
SMOLLM3_TEMPLATE = (
    "{%- set reasoning_mode = '/think' -%}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{%- set reasoning_mode = '/no_think' -%}"
    "{%- endif -%}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set system_message = messages[0]['content'] -%}"
    "{%- if '/no_think' in system_message -%}{%- set reasoning_mode = '/no_think' -%}{%- endif -%}"
    "{%- set custom_instructions = system_message.replace('/no_think', '').replace('/think', '').rstrip() -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{{- '## Metadata\\n\\nKnowledge Cutoff Date: June 2025\\nReasoning Mode: ' + reasoning_mode + '\\n\\n' -}}"
    "{%- if custom_instructions -%}{{- '## Custom Instructions\\n\\n' + custom_instructions + '\\n\\n' -}}"
    "{%- endif -%}{{- '<|im_end|>\\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- '<|im_start|>user\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- if reasoning_mode == '/think' -%}"
    "{{- '<|im_start|>assistant\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{%- if reasoning_mode == '/think' -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- else -%}{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n' }}{%- endif -%}{%- endif -%}"
)


@dataclass(frozen=True)
class Family:
    name: str
    architecture: str  # transformers class name
    template: str
    behaviour: str  # which behaviour of the real template this fixture reproduces
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str | None
    end_of_turn: str  # the token the template emits after each assistant reply
    sentencepiece: bool = False  # metaspace pre-tokenizer (SentencePiece-style) instead of byte-level BPE
    config: dict[str, Any] = field(default_factory=dict)
    stop_tokens: tuple[str, ...] = ()  # extra generation stop tokens (generation_config.eos_token_id)


_CHATML = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "llama3",
            "LlamaForCausalLM",
            LLAMA3_TEMPLATE,
            "Llama 3.1: an always-present system header with dates, trimmed contents, <|eot_id|> ends turns",
            (
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ),
            "<|begin_of_text|>",
            "<|eot_id|>",
            "<|end_of_text|>",
            "<|eot_id|>",
            config={"tie_word_embeddings": True},
        ),
        Family(
            "mistral-v0.3",
            "MistralForCausalLM",
            MISTRAL_V03_TEMPLATE,
            "Mistral v0.3: the system prompt moves to the last user turn; a SentencePiece-style tokenizer",
            ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
            "<s>",
            "</s>",
            None,
            "</s>",
            sentencepiece=True,
        ),
        Family(
            "mistral-tekken",
            "MistralForCausalLM",
            MISTRAL_TEKKEN_TEMPLATE,
            "Mistral Nemo: Tekken-style byte-level BPE, [INST] without spaces, system before the last user turn",
            ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
            "<s>",
            "</s>",
            None,
            "</s>",
        ),
        Family(
            "qwen2.5",
            "Qwen2ForCausalLM",
            QWEN25_TEMPLATE,
            "Qwen2.5: ChatML with a default system prompt; q/k/v projections with a bias",
            _CHATML,
            None,
            "<|im_end|>",
            "<|endoftext|>",
            "<|im_end|>",
            config={"tie_word_embeddings": True},
        ),
        Family(
            "qwen3",
            "Qwen3ForCausalLM",
            QWEN3_TEMPLATE,
            "Qwen3: an empty <think> block before the final reply, reasoning dropped from earlier turns",
            (*_CHATML, "<think>", "</think>"),
            None,
            "<|im_end|>",
            "<|endoftext|>",
            "<|im_end|>",
            config={"tie_word_embeddings": True, "head_dim": 16},
        ),
        Family(
            "qwen3-moe",
            "Qwen3MoeForCausalLM",
            QWEN3_TEMPLATE,
            "Qwen3-MoE: the Qwen3 template on a mixture-of-experts model (4 experts, 2 per token)",
            (*_CHATML, "<think>", "</think>"),
            None,
            "<|im_end|>",
            "<|endoftext|>",
            "<|im_end|>",
            config={"head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32},
        ),
        Family(
            "gemma2",
            "Gemma2ForCausalLM",
            GEMMA2_TEMPLATE,
            "Gemma 2: the template raises on a system message; soft-capped attention (no sdpa)",
            ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            "<bos>",
            "<eos>",
            "<pad>",
            "<end_of_turn>",
            sentencepiece=True,
            config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64},
            stop_tokens=("<end_of_turn>",),
        ),
        Family(
            "gemma3",
            "Gemma3ForCausalLM",
            GEMMA3_TEMPLATE,
            "Gemma 3: the template folds the system prompt into the first user turn (real Gemma 3 tokenizer "
            "when the embedded Gemma 3 package is installed)",
            ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            "<bos>",
            "<eos>",
            "<pad>",
            "<end_of_turn>",
            sentencepiece=True,
            config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64},
            stop_tokens=("<end_of_turn>",),
        ),
        Family(
            "phi3",
            "Phi3ForCausalLM",
            PHI3_TEMPLATE,
            "Phi-3 / Phi-4-mini: <|role|>...<|end|>, and an eos appended at the end of a finished conversation",
            ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
            None,
            "<|endoftext|>",
            "<|endoftext|>",
            "<|end|>",
            stop_tokens=("<|end|>",),
        ),
        Family(
            "smollm3",
            "SmolLM3ForCausalLM",
            SMOLLM3_TEMPLATE,
            "SmolLM3: a metadata system block with the reasoning mode; empty think blocks in /no_think mode",
            (*_CHATML, "<think>", "</think>"),
            None,
            "<|im_end|>",
            "<|endoftext|>",
            "<|im_end|>",
            config={"tie_word_embeddings": True},
        ),
    ]
}

_CORPUS_EXTRA = [
    "Hello there! How can I help you today? The answer is 42.",
    "You are a helpful assistant. Answer briefly and politely.",
    "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024",
    "## Metadata Knowledge Cutoff Date: June 2025 Reasoning Mode: /think /no_think ## Custom Instructions",
    'user assistant system model think reasoning: first, then; finally. {"category": "billing"}',
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ !?.,:;'\"()[]{}<>/\\|-_+=*&^%$#@~`",
]


def _corpus() -> list[str]:
    import json

    sample = Path(__file__).resolve().parent.parent / "resources" / "sample_dataset.jsonl"
    texts = list(_CORPUS_EXTRA)
    for line in sample.read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["messages"]:
            texts.append(message["content"])
    return texts


def _gemma3_tokenizer_dir() -> Path | None:
    """The real Gemma 3 tokenizer from the embedded Gemma 3 270M GGUF package (converted once, cached)."""
    try:
        from core.models import gemma3_tokenizer_dir
    except ImportError:
        return None
    return gemma3_tokenizer_dir()


def build_family_tokenizer(family: str | Family, folder: Path) -> Any:
    """A fast tokenizer with the family's special tokens and chat template, saved in `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    fam = FAMILIES[family] if isinstance(family, str) else family
    folder.mkdir(parents=True, exist_ok=True)
    real = _gemma3_tokenizer_dir() if fam.name == "gemma3" else None
    if real is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(real)
        tokenizer.chat_template = fam.template
        tokenizer.save_pretrained(folder)
        return tokenizer
    unk = "<unk>" if "<unk>" in fam.specials else None
    if fam.sentencepiece:
        backend = Tokenizer(models.BPE(unk_token=unk or "<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        alphabet: list[str] = []
    else:
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=list(fam.specials), initial_alphabet=alphabet, show_progress=False
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    named = {fam.bos, fam.eos, fam.pad, unk}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=fam.bos,
        eos_token=fam.eos,
        pad_token=fam.pad,
        unk_token=unk,
        additional_special_tokens=[t for t in fam.specials if t not in named],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = fam.template
    tokenizer.save_pretrained(folder)
    return tokenizer


def _config(fam: Family, tokenizer: Any) -> Any:
    import transformers

    config_cls = getattr(transformers, fam.architecture).config_class
    kwargs: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    kwargs.update(fam.config)
    return config_cls(**kwargs)


def build_family_model(family: str, tmp_path: Path, dtype: Any = None) -> Path:
    """A 2-layer, hidden-64 random-weight (seed 0) model of `family` with its tokenizer and chat template,
    saved as safetensors in tmp_path/<family>; returns that folder."""
    import torch
    import transformers
    from transformers import GenerationConfig

    fam = FAMILIES[family]
    folder = tmp_path / family
    tokenizer = build_family_tokenizer(fam, folder)
    config = _config(fam, tokenizer)
    torch.manual_seed(0)
    model = getattr(transformers, fam.architecture)(config)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder, safe_serialization=True)
    eos = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in fam.stop_tokens]
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(folder)
    return folder


FamilyBuilder = Callable[[str, Path], Path]
