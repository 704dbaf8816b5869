"""Export formats and quantization types (light module: no torch/gguf imports, the desktop imports it)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("adapter", "merged", "gguf")

# GGUF types written by our own writer (gguf-py quantizers).
NATIVE_QUANTS = ("f16", "bf16", "q8_0", "q4_0", "q5_0")
# K-quants: written as F16 by us, then quantized by llama.cpp's own quantizer (llama-cpp-python).
K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")
ALL_QUANTS = NATIVE_QUANTS + K_QUANTS
DEFAULT_QUANT = "q8_0"

QUANT_HELP = {
    "f16": "F16: 16-bit floats, no quality loss (largest)",
    "bf16": "BF16: bfloat16, no quality loss (largest)",
    "q8_0": "Q8_0: 8-bit, near-lossless (about half of F16)",
    "q5_0": "Q5_0: 5-bit, legacy type",
    "q4_0": "Q4_0: 4-bit, legacy type (smallest native)",
    "q6_k": "Q6_K: 6-bit K-quant (llama.cpp quantizer)",
    "q5_k_m": "Q5_K_M: 5-bit K-quant, mixed (llama.cpp quantizer)",
    "q4_k_m": "Q4_K_M: 4-bit K-quant, mixed: the usual choice for chat (llama.cpp quantizer)",
}

# Bytes per weight, roughly, for the size estimates.
BYTES_PER_WEIGHT = {
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_0": 22 / 32,
    "q4_0": 18 / 32,
    "q6_k": 210 / 256,
    "q5_k_m": 176 / 256,
    "q4_k_m": 144 / 256,
}


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is installed (needed for K-quants and the llama.cpp check)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


LLAMA_CPP_MISSING = (
    "K-quants need llama.cpp's quantizer from llama-cpp-python, which is not installed "
    "(`make llama-cpp` builds it, about 10 minutes). F16, BF16, Q8_0, Q5_0 and Q4_0 work without it."
)


@dataclass
class ExportResult:
    """What an export produced: files with sizes, and the verification figures."""

    format: str
    out_dir: str
    files: list[dict[str, Any]] = field(default_factory=list)  # {"path", "bytes"}
    quant: str | None = None
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    gguf: dict[str, Any] | None = None
    # gguf: the system prompt the Modelfile carries ({"text", "sentence", ...}) and the commands to run it
    system_prompt: dict[str, Any] | None = None
    commands: list[dict[str, str]] = field(default_factory=list)  # {"label", "command"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": self.out_dir,
            "quant": self.quant,
            "files": self.files,
            "total_bytes": sum(int(f["bytes"]) for f in self.files),
            "verification": self.verification,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "timings": self.timings,
            "gguf": self.gguf,
            "system_prompt": self.system_prompt,
            "commands": self.commands,
        }


def verification_status(verification: dict[str, Any] | None) -> str:
    """'verified' (every check ran and passed, and llama.cpp's greedy answers equal the merged model's on every
    test prompt), 'failed' (a check failed), 'partial' (none failed, but some were skipped or some greedy answers
    differ) or 'none' (not verified)."""
    if not verification:
        return "none"
    checks = {k: v for k, v in verification.items() if isinstance(v, dict)}
    if any(v.get("passed") is False for v in checks.values()) or verification.get("passed") is False:
        return "failed"
    if any("skipped" in v for v in checks.values()):
        return "partial"
    lc = verification.get("llama_cpp")
    rows = [r for r in (lc.get("prompts") or []) if isinstance(r, dict)] if isinstance(lc, dict) else []
    if any(not r.get("greedy_match") for r in rows):
        return "partial"  # every check passed, but not every greedy answer came out the same: not "Verified"
    return "verified"


def _of(k: int, n: int) -> str:
    return f"{k} of {n} test prompt{'s' if n != 1 else ''}"


def verification_summary(verification: dict[str, Any] | None) -> str:
    """The verification in plain words, for people who do not read logit figures:
    "Verified: answers match the merged model on 4 of 4 test prompts; ..." The numbers stay in the dict."""
    status = verification_status(verification)
    if status == "none" or not verification:
        return "Not verified."
    parts: list[str] = []
    merged = verification.get("merged")
    if isinstance(merged, dict) and merged.get("prompts"):
        n = int(merged["prompts"])
        same = round(float(merged.get("next_token_top1_agreement", 0.0)) * n)
        parts.append(
            f"the merged model predicts the same next token as the trained adapter on {_of(same, n)}"
        )
    lc = verification.get("llama_cpp")
    if isinstance(lc, dict) and lc.get("error"):
        parts.append("llama.cpp could not load the GGUF")
    elif isinstance(lc, dict) and "skipped" not in lc:
        rows = [r for r in lc.get("prompts") or [] if isinstance(r, dict)]
        n = len(rows)
        if n:
            prompt_ok = sum(bool(r.get("template_match") and r.get("tokens_match")) for r in rows)
            answers = sum(bool(r.get("greedy_match")) for r in rows)
            parts.append(f"llama.cpp reads the prompt exactly as in training on {_of(prompt_ok, n)}")
            differ = (
                " (the others word the answer differently from the first differing token on; "
                "the prompt and score checks passed)"
                if answers < n and status != "failed"
                else ""
            )
            parts.append(f"its answers match the merged model on {_of(answers, n)}{differ}")
        logits = lc.get("logits")
        if isinstance(logits, dict) and logits.get("passed") is False:
            parts.append("llama.cpp's scores differ from the merged model's more than allowed")
    gt = verification.get("gguf_transformers")
    if isinstance(gt, dict) and gt.get("passed") is False:
        parts.append("the GGUF read back with transformers differs from the merged model more than allowed")
    skipped = [str(v["skipped"]) for v in verification.values() if isinstance(v, dict) and v.get("skipped")]
    head = {
        "verified": "Verified",
        "failed": "Verification FAILED",
        "partial": "Partly verified",
    }[status]
    text = head + (": " + "; ".join(parts) if parts else "") + "."
    if skipped and status != "failed":
        text += " Not checked: " + "; ".join(skipped) + "."
    return text
