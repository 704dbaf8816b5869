"""`GgufExporter`: a Hugging Face safetensors folder (Llama family) -> one GGUF file, with the tokenizer,
special tokens and chat template in its metadata.

Written with the `gguf` package (llama.cpp's own Python writer, tensor name map and quantizers). F16, BF16,
Q8_0, Q5_0 and Q4_0 are produced here; K-quants (Q4_K_M, Q5_K_M, Q6_K) are produced by llama.cpp's own
quantizer (llama-cpp-python) from an F16 file we write first (`quantize_with_llama_cpp`).

Facts this module relies on (learned from llama.cpp's converter and gguf-py, code written here):
- Llama-family GGUF stores the Q and K projection rows in the interleaved rotary layout; Hugging Face
  stores them in the half-split ("rotate_half") layout, so Q and K rows are permuted per head
  (`_hf_to_gguf_rotary_rows`). Qwen2 uses the NEOX rotary layout in llama.cpp, so it is not permuted.
- 1-D tensors (norms, biases) stay F32; a tensor whose rows do not divide into quantization blocks is
  written as F16 instead.
- Byte-level BPE vocabularies are `tokenizer.ggml.model = "gpt2"` with a named pre-tokenizer
  (`tokenizer.ggml.pre`); SentencePiece vocabularies are `"llama"` with per-token scores and byte tokens.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, WhetstoneError
from core.progress import ProgressFn, StopFn, check_stop, no_progress


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str  # gguf MODEL_ARCH name, lower case (the metadata prefix)
    permute_qk: bool
    label: str


SUPPORTED_ARCHITECTURES: dict[str, ArchSpec] = {
    "LlamaForCausalLM": ArchSpec("llama", True, "Llama 2/3, SmolLM"),
    "MistralForCausalLM": ArchSpec("llama", True, "Mistral"),
    "Qwen2ForCausalLM": ArchSpec("qwen2", False, "Qwen2/Qwen2.5"),
}


def supported_text() -> str:
    names = ", ".join(f"{arch} ({spec.label})" for arch, spec in SUPPORTED_ARCHITECTURES.items())
    return f"GGUF export supports: {names}"


# Quant name -> (gguf GGMLQuantizationType name, LlamaFileType name)
_NATIVE = {
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
}
_K_FTYPES = {"q4_k_m": "MOSTLY_Q4_K_M", "q5_k_m": "MOSTLY_Q5_K_M", "q6_k": "MOSTLY_Q6_K"}
# Also made by llama.cpp's quantizer for GGUFs from llama.cpp's converter (which writes F16/BF16/Q8_0 only).
_LLAMA_CPP_FTYPES = {**_K_FTYPES, "q4_0": "MOSTLY_Q4_0", "q5_0": "MOSTLY_Q5_0"}

# Hugging Face pre-tokenizer split patterns -> llama.cpp pre-tokenizer names.
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# GPT-4o / o200k (Phi-4-mini): the tokenizer.json form that llama.cpp's llama-vocab.cpp quotes for "gpt-4o".
_GPT4O_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Mistral's Tekken (Mistral Nemo, Ministral, Mistral Small 3): llama.cpp's "tekken" pre-tokenizer.
_TEKKEN_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PATTERNS = {
    _LLAMA3_PATTERN: "llama-bpe",
    _QWEN2_PATTERN: "qwen2",
    _GPT4O_PATTERN: "gpt-4o",
    _TEKKEN_PATTERN: "tekken",
}
_SPACE_IN_MERGE = chr(ord(" ") + 256)


# ---------------------------------------------------------------------------------------------------------
# Tokenizer -> GGUF vocabulary


@dataclass
class GgufVocab:
    model: str  # "gpt2" | "llama"
    pre: str | None
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None
    merges: list[str]
    add_space_prefix: bool
    eot_id: int | None = None
    notes: list[str] = field(default_factory=list)


def _tokenizer_json(model_dir: Path) -> dict[str, Any]:
    file = model_dir / "tokenizer.json"
    if file.exists():
        return json.loads(file.read_text(encoding="utf-8"))
    try:
        from core.loader import load_tokenizer

        tok = load_tokenizer(model_dir)
        return json.loads(tok.backend_tokenizer.to_str())
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear line
        raise UserError(f"{model_dir} has no usable tokenizer (tokenizer.json): {exc}") from exc


def _steps(node: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    if not node:
        return []
    if node.get("type") == "Sequence":
        return list(node.get(key) or [])
    return [node]


def detect_pre_tokenizer(tok_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json (by the split rules)."""
    steps = _steps(tok_json.get("pre_tokenizer"), "pretokenizers")
    kinds = [s.get("type") for s in steps]
    for step in steps:
        if step.get("type") == "Split":
            pattern = (step.get("pattern") or {}).get("Regex")
            if pattern in _SPLIT_PATTERNS:
                return _SPLIT_PATTERNS[pattern]
            raise UserError(
                "This tokenizer splits text with a pattern GGUF export does not know yet "
                f"({str(pattern)[:60]!r}); supported: Llama 3, Qwen2, SmolLM/GPT-2 style tokenizers."
            )
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
    ):
        return "smollm"
    raise UserError(
        f"This tokenizer's pre-tokenizer ({kinds}) is not supported for GGUF export; "
        "supported: Llama 3, Qwen2, SmolLM/GPT-2 style tokenizers and SentencePiece (Llama 2, Mistral)."
    )


def _merge_strings(raw: list[Any]) -> list[str]:
    merges = []
    for item in raw:
        if isinstance(item, str):
            merges.append(item)
        else:
            a, b = item
            merges.append(a.replace(" ", _SPACE_IN_MERGE) + " " + b.replace(" ", _SPACE_IN_MERGE))
    return merges


def _adds_space_prefix(tok_json: dict[str, Any]) -> bool:
    """llama.cpp's `add_space_prefix` for a SentencePiece vocabulary.

    llama.cpp puts "▁" in front of every text fragment that follows a special token (and the first one).
    That is what a `Prepend("▁")` normalizer or Metaspace `always` does in Hugging Face tokenizers (they
    run per fragment between special tokens). Metaspace `first` (transformers' non-legacy Llama/Mistral
    tokenizer, Mistral v0.3 as transformers 5 saves it) prepends only at the very start of the text, never
    after a special token: a chat prompt starts with BOS and `[INST]`, so every fragment follows a special
    token, and llama.cpp matches it only without the prefix ("[INST] Hi" is "▁Hi", not "▁▁Hi")."""
    for step in _steps(tok_json.get("normalizer"), "normalizers"):
        if step.get("type") == "Prepend" and step.get("prepend") == "\u2581":
            return True
    for step in _steps(tok_json.get("pre_tokenizer"), "pretokenizers"):
        if step.get("type") == "Metaspace":
            scheme = step.get("prepend_scheme")
            if scheme == "always" or (scheme is None and step.get("add_prefix_space", True)):
                return True
    return False


def build_vocab(model_dir: Path, n_vocab: int) -> GgufVocab:
    """Tokens, types, scores and merges from a model folder's tokenizer.json."""
    tok_json = _tokenizer_json(model_dir)
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise UserError(
            f"GGUF export supports BPE tokenizers (byte-level or SentencePiece-BPE); this one is "
            f"{model.get('type')!r}."
        )
    sentencepiece = bool(model.get("byte_fallback"))
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = tok_json.get("added_tokens") or []
    by_id: dict[int, str] = {i: t for t, i in vocab.items()}
    special_ids: set[int] = set()
    user_ids: set[int] = set()
    for entry in added:
        by_id[int(entry["id"])] = entry["content"]
        (special_ids if entry.get("special") else user_ids).add(int(entry["id"]))
    top = max(by_id) + 1 if by_id else 0
    if top > n_vocab:
        raise UserError(f"The tokenizer has {top} tokens but the model only {n_vocab} embeddings.")
    unk = model.get("unk_token")
    tokens: list[str] = []
    types: list[int] = []
    notes: list[str] = []
    padded = 0
    for i in range(n_vocab):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
            padded += 1
            continue
        tokens.append(text)
        if sentencepiece and text == unk:
            types.append(2)  # UNKNOWN
        elif sentencepiece and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            types.append(6)  # BYTE (byte fallback needs these typed, even when listed as added tokens)
        elif i in special_ids:
            types.append(3)  # CONTROL
        elif i in user_ids:
            types.append(4)  # USER_DEFINED
        else:
            types.append(1)  # NORMAL
    if padded:
        notes.append(f"{padded} unused embedding rows padded as [PAD] tokens")
    merges = _merge_strings(list(model.get("merges") or []))
    scores: list[float] | None = None
    if sentencepiece:
        # llama.cpp's SentencePiece tokenizer merges the pair whose result scores highest: give each token
        # the rank of the first merge that makes it (earlier merge = higher score), 0 for the rest.
        scores = [0.0] * n_vocab
        seen: set[int] = set()
        for rank, merge in enumerate(merges):
            a, b = merge.split(" ", 1)
            merged = (a + b).replace(_SPACE_IN_MERGE, " ")
            idx = vocab.get(merged)
            if idx is not None and idx not in seen:
                seen.add(idx)
                scores[idx] = -float(rank + 1)
        pre = None
    else:
        decoder = (tok_json.get("decoder") or {}).get("type")
        if decoder != "ByteLevel":
            raise UserError(f"Unsupported BPE tokenizer (decoder {decoder!r}) for GGUF export.")
        pre = detect_pre_tokenizer(tok_json)
    return GgufVocab(
        model="llama" if sentencepiece else "gpt2",
        pre=pre,
        tokens=tokens,
        token_types=types,
        scores=scores,
        merges=merges,
        add_space_prefix=_adds_space_prefix(tok_json) if sentencepiece else False,
        notes=notes,
    )


def _tokenizer_adds_bos(model_dir: Path, bos_id: int) -> bool:
    """Whether the tokenizer puts BOS in front of plain text (llama.cpp must do the same)."""
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(json.dumps(_tokenizer_json(model_dir)))
        ids = tok.encode("hello", add_special_tokens=True).ids
    except Exception:  # noqa: BLE001 - unknown: leave llama.cpp's default
        return False
    return bool(ids) and ids[0] == bos_id


def end_of_turn_token(chat_template: str | None, tokens: list[str], token_types: list[int]) -> int | None:
    """The control token that closes an assistant turn in the chat template (<|im_end|>, <|eot_id|>, </s>)."""
    if not chat_template:
        return None
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
        text = env.from_string(chat_template).render(
            messages=[
                {"role": "user", "content": "Q\u2063"},
                {"role": "assistant", "content": "A\u2063"},
            ],
            add_generation_prompt=False,
            bos_token="",
            eos_token="",
        )
    except Exception:  # noqa: BLE001 - templates may need extras; the EOT is then left to llama.cpp
        return None
    tail = text.split("A\u2063", 1)[-1]
    controls = sorted(
        ((t, i) for i, (t, k) in enumerate(zip(tokens, token_types, strict=True)) if k == 3 and t),
        key=lambda p: -len(p[0]),
    )
    for token, idx in controls:
        if tail.startswith(token):
            return idx
    return None


# ---------------------------------------------------------------------------------------------------------
# Tensors


def _hf_to_gguf_rotary_rows(weight: Any, n_head: int) -> Any:
    """Reorder Q/K projection rows from HF's half-split rotary layout to GGUF's interleaved layout."""
    rows = weight.shape[0]
    half = rows // n_head // 2
    return weight.reshape(n_head, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _llama3_rope_factors(rope: dict[str, Any], head_dim: int, base: float) -> Any:
    import numpy as np

    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"{model_dir} has no safetensors weights to convert.")
    return files


@dataclass
class _Planned:
    hf_name: str
    file: Path | None
    gguf_name: str
    shape: tuple[int, ...]
    qtype: Any  # gguf.GGMLQuantizationType
    transform: str | None  # "q" | "k" | None
    nbytes: int
    constant: Any = None  # numpy array for computed tensors (rope_freqs)
    info_shape: tuple[int, ...] = ()  # numpy shape of the encoded array (bytes for quantized types)


class GgufExporter:
    """Convert a Hugging Face folder (safetensors, Llama family) to GGUF.

    >>> GgufExporter(merged_dir).write(out_path, "q8_0")
    """

    def __init__(self, model_dir: str | Path, name: str | None = None) -> None:
        self.model_dir = Path(model_dir)
        config_file = self.model_dir / "config.json"
        if not config_file.exists():
            raise UserError(f"{self.model_dir} is not a model folder (no config.json).")
        self.config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
        archs = self.config.get("architectures") or [self.config.get("model_type", "?")]
        self.hf_arch = str(archs[0])
        if self.hf_arch not in SUPPORTED_ARCHITECTURES:
            raise UserError(f"Cannot export {self.hf_arch} to GGUF. {supported_text()}.")
        self.spec = SUPPORTED_ARCHITECTURES[self.hf_arch]
        self.name = name or self.model_dir.name
        self.notes: list[str] = []

    # metadata ---------------------------------------------------------------------------------------------
    def _cfg(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        if value is None and isinstance(self.config.get("text_config"), dict):
            value = self.config["text_config"].get(key)
        return default if value is None else value

    def _rope(self) -> dict[str, Any]:
        rope = self._cfg("rope_parameters") or self._cfg("rope_scaling") or {}
        return dict(rope) if isinstance(rope, dict) else {}

    def _head_dims(self) -> tuple[int, int, int]:
        n_head = int(self._cfg("num_attention_heads"))
        n_kv = int(self._cfg("num_key_value_heads", n_head))
        head_dim = int(self._cfg("head_dim") or int(self._cfg("hidden_size")) // n_head)
        return n_head, n_kv, head_dim

    def _add_metadata(self, writer: Any, ftype: Any, vocab: GgufVocab) -> None:
        import gguf

        n_head, n_kv, head_dim = self._head_dims()
        hidden = int(self._cfg("hidden_size"))
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(self.name)
        writer.add_context_length(int(self._cfg("max_position_embeddings", 4096)))
        writer.add_embedding_length(hidden)
        writer.add_block_count(int(self._cfg("num_hidden_layers")))
        writer.add_feed_forward_length(int(self._cfg("intermediate_size")))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_rope_dimension_count(head_dim)
        if head_dim * n_head != hidden:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        writer.add_layer_norm_rms_eps(float(self._cfg("rms_norm_eps", 1e-6)))
        rope = self._rope()
        base = float(rope.get("rope_theta") or self._cfg("rope_theta", 10000.0))
        writer.add_rope_freq_base(base)
        kind = rope.get("rope_type") or rope.get("type") or "default"
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(rope["factor"]))
        elif kind == "yarn":
            writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            writer.add_rope_scaling_factor(float(rope["factor"]))
            if rope.get("original_max_position_embeddings"):
                writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
        elif kind not in ("default", "llama3"):
            raise UserError(f"Rotary scaling {kind!r} is not supported for GGUF export.")
        writer.add_vocab_size(len(vocab.tokens))
        writer.add_file_type(ftype)
        # tokenizer
        writer.add_tokenizer_model(vocab.model)
        if vocab.pre:
            writer.add_tokenizer_pre(vocab.pre)
        writer.add_token_list(vocab.tokens)
        writer.add_token_types(vocab.token_types)
        if vocab.scores is not None:
            writer.add_token_scores(vocab.scores)
        if vocab.merges:
            writer.add_token_merges(vocab.merges)
        writer.add_add_space_prefix(vocab.add_space_prefix)
        special = gguf.SpecialVocab(
            self.model_dir,
            load_merges=False,
            special_token_types=("bos", "eos", "unk", "sep", "pad"),
            n_vocab=len(vocab.tokens),
        )
        if "bos" not in special.add_special_token and "bos" in special.special_token_ids:
            special.add_special_token["bos"] = _tokenizer_adds_bos(
                self.model_dir, special.special_token_ids["bos"]
            )
        special.add_to_gguf(writer, quiet=True)
        if special.chat_template is None:
            self.notes.append("the model has no chat template; none was written to the GGUF")
        template = special.chat_template if isinstance(special.chat_template, str) else None
        vocab.eot_id = end_of_turn_token(template, vocab.tokens, vocab.token_types)
        if vocab.eot_id is not None:
            writer.add_eot_token_id(vocab.eot_id)
        self.special_token_ids = dict(special.special_token_ids)
        if vocab.eot_id is not None:
            self.special_token_ids["eot"] = vocab.eot_id
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # tensors ----------------------------------------------------------------------------------------------
    def _pick_type(self, gguf_name: str, shape: tuple[int, ...], target: Any) -> Any:
        import gguf

        qt = gguf.GGMLQuantizationType
        if len(shape) <= 1 or not gguf_name.endswith(".weight"):
            return qt.F32
        if target in (qt.Q4_0, qt.Q5_0) and gguf_name in ("token_embd.weight", "output.weight"):
            target = qt.Q8_0  # embeddings and output are the most sensitive tensors: keep them 8-bit
        block = gguf.GGML_QUANT_SIZES[target][0]
        if shape[-1] % block != 0:
            self._fallbacks.append(gguf_name)
            return qt.F16
        return target

    def _plan(self, target: Any) -> list[_Planned]:
        import gguf
        from safetensors import safe_open

        n_blocks = int(self._cfg("num_hidden_layers"))
        arch = getattr(gguf.MODEL_ARCH, self.spec.gguf_arch.upper())
        name_map = gguf.get_tensor_name_map(arch, n_blocks)
        tied = bool(self._cfg("tie_word_embeddings", False))
        planned: list[_Planned] = []
        self._fallbacks: list[str] = []
        rope = self._rope()
        if (rope.get("rope_type") or rope.get("type")) == "llama3":
            _, _, head_dim = self._head_dims()
            base = float(rope.get("rope_theta") or self._cfg("rope_theta", 10000.0))
            factors = _llama3_rope_factors(rope, head_dim, base)
            planned.append(
                _Planned(
                    "", None, "rope_freqs.weight", factors.shape, gguf.GGMLQuantizationType.F32, None,
                    factors.nbytes, factors, factors.shape,
                )
            )  # fmt: skip
        seen: set[str] = set()
        for file in _safetensors_files(self.model_dir):
            with safe_open(str(file), framework="pt") as handle:
                for hf_name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                    if hf_name.endswith("rotary_emb.inv_freq"):
                        continue
                    if hf_name == "lm_head.weight" and tied:
                        continue
                    gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                    if gguf_name is None:
                        raise WhetstoneError(f"GGUF export: no GGUF name for tensor {hf_name!r}.")
                    if gguf_name in seen:
                        raise WhetstoneError(f"GGUF export: tensor {gguf_name} appears twice.")
                    seen.add(gguf_name)
                    shape = tuple(int(d) for d in handle.get_slice(hf_name).get_shape())
                    qtype = self._pick_type(gguf_name, shape, target)
                    transform = None
                    if self.spec.permute_qk and ".attn_q." in f".{gguf_name}":
                        transform = "q"
                    elif self.spec.permute_qk and ".attn_k." in f".{gguf_name}":
                        transform = "k"
                    # GGUF lists dimensions fastest-first; the writer reverses numpy order itself.
                    byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype) if _is_quant(qtype) else shape
                    size = gguf.GGML_QUANT_SIZES[qtype][1] if not _is_quant(qtype) else 1
                    nbytes = int(math.prod(byte_shape)) * size
                    planned.append(
                        _Planned(hf_name, file, gguf_name, shape, qtype, transform, nbytes, None, byte_shape)
                    )
        if "token_embd.weight" not in seen:
            raise WhetstoneError("GGUF export: the model has no token embeddings (embed_tokens).")
        if self._fallbacks:
            self.notes.append(
                f"{len(self._fallbacks)} tensor(s) kept as F16 (rows not divisible into quant blocks)"
            )
        return planned

    def _load(self, item: _Planned, handles: dict[Path, Any]) -> Any:
        import numpy as np

        if item.constant is not None:
            return item.constant
        assert item.file is not None
        import torch

        tensor = handles[item.file].get_tensor(item.hf_name)
        data = tensor.to(torch.float32).numpy()
        n_head, n_kv, _ = self._head_dims()
        if item.transform == "q":
            data = _hf_to_gguf_rotary_rows(data, n_head)
        elif item.transform == "k":
            data = _hf_to_gguf_rotary_rows(data, n_kv)
        return np.ascontiguousarray(data)

    @staticmethod
    def _encode(data: Any, qtype: Any) -> Any:
        import gguf
        import numpy as np

        qt = gguf.GGMLQuantizationType
        if qtype == qt.F32:
            return data.astype(np.float32, copy=False)
        if qtype == qt.F16:
            return data.astype(np.float16)
        return gguf.quants.quantize(data, qtype)

    def write(
        self,
        out_path: str | Path,
        quant: str = "q8_0",
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
    ) -> dict[str, Any]:
        """Write the GGUF (native types only). Returns a summary: tensors, types, special tokens, notes."""
        import gguf
        from safetensors import safe_open

        if quant not in _NATIVE:
            raise UserError(f"{quant} is not a native GGUF type here; native: {', '.join(_NATIVE)}.")
        qname, fname = _NATIVE[quant]
        target = gguf.GGMLQuantizationType[qname]
        ftype = gguf.LlamaFileType[fname]
        started = time.perf_counter()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        vocab = build_vocab(self.model_dir, int(self._cfg("vocab_size")))
        self.notes.extend(vocab.notes)
        plan = self._plan(target)
        writer = gguf.GGUFWriter(None, self.spec.gguf_arch)
        self._add_metadata(writer, ftype, vocab)
        for item in plan:
            writer.add_tensor_info(
                item.gguf_name, item.info_shape, _np_dtype(item.qtype), item.nbytes, item.qtype
            )
        partial = out.with_name(out.name + ".partial")
        handles: dict[Path, Any] = {}
        try:
            writer.write_header_to_file(partial)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            total = sum(p.nbytes for p in plan) or 1
            done = 0
            for file in {p.file for p in plan if p.file is not None}:
                handles[file] = safe_open(str(file), framework="pt").__enter__()
            for item in plan:
                check_stop(should_stop)
                encoded = self._encode(self._load(item, handles), item.qtype)
                if encoded.nbytes != item.nbytes:
                    raise WhetstoneError(f"GGUF export: {item.gguf_name} encoded to an unexpected size.")
                writer.write_tensor_data(encoded)
                done += item.nbytes
                progress(done / total, f"Writing the GGUF: {item.gguf_name} ({item.qtype.name})")
            writer.close()
            os.replace(partial, out)
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        finally:
            for handle in handles.values():
                handle.__exit__(None, None, None)
        types: dict[str, int] = {}
        for item in plan:
            types[item.qtype.name] = types.get(item.qtype.name, 0) + 1
        return {
            "path": str(out),
            "bytes": out.stat().st_size,
            "architecture": self.spec.gguf_arch,
            "tokenizer": {"model": vocab.model, "pre": vocab.pre},
            "special_tokens": self.special_token_ids,
            "tensors": len(plan),
            "tensor_types": types,
            "notes": list(self.notes),
            "seconds": round(time.perf_counter() - started, 3),
        }


def _is_quant(qtype: Any) -> bool:
    return qtype.name not in ("F32", "F16", "F64", "I8", "I16", "I32", "I64")


def _np_dtype(qtype: Any) -> Any:
    import numpy as np

    if qtype.name == "F32":
        return np.dtype(np.float32)
    if qtype.name == "F16":
        return np.dtype(np.float16)
    return np.dtype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# K-quants through llama.cpp


def _quiet_native_output() -> Any:
    """llama.cpp logs every tensor on the C stderr; keep the CLI and the app's terminal readable."""
    import contextlib

    try:
        from llama_cpp._utils import suppress_stdout_stderr
    except ImportError:  # pragma: no cover - another llama-cpp-python layout
        return contextlib.nullcontext()
    return suppress_stdout_stderr(disable=False)


def gguf_tensor_types(path: str | Path) -> dict[str, int]:
    """Count of tensors per GGML type in a GGUF file."""
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for tensor in GGUFReader(path).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def quantize_with_llama_cpp(src: str | Path, dst: str | Path, quant: str, threads: int | None = None) -> None:
    """Quantize an F16/BF16/F32 GGUF to a K-quant (or Q4_0/Q5_0) with llama.cpp's own quantizer."""
    if quant not in _LLAMA_CPP_FTYPES:
        raise UserError(f"llama.cpp quantizes to {', '.join(_LLAMA_CPP_FTYPES)} here, not {quant}.")
    from core.export.formats import LLAMA_CPP_MISSING, llama_cpp_available

    if not llama_cpp_available():
        raise UserError(LLAMA_CPP_MISSING)
    import gguf
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(gguf.LlamaFileType[_LLAMA_CPP_FTYPES[quant]])
    params.nthread = int(threads or max(1, (os.cpu_count() or 2)))
    dst = Path(dst)
    partial = dst.with_name(dst.name + ".partial")
    with _quiet_native_output():
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(partial).encode(), params)
    if rc != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise WhetstoneError(f"llama.cpp could not quantize to {quant.upper()} (code {rc}).")
    os.replace(partial, dst)
