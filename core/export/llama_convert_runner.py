"""Child process: `python -m core.export.llama_convert_runner CONVERTER_DIR MODEL_DIR [convert_hf_to_gguf args]`.

Runs llama.cpp's own convert_hf_to_gguf.py (from CONVERTER_DIR, with its bundled gguf-py) unchanged, with one
addition: llama.cpp names a byte-level BPE pre-tokenizer by hashing the tokens of a test string, so a
tokenizer whose vocabulary differs from the published one (extended vocabularies, small test tokenizers)
is refused even when its split rule is one llama.cpp implements. When the hash is unknown we name the
pre-tokenizer from the split rule in tokenizer.json (`detect_pre_tokenizer`, the same rule our own writer
uses) and say so on a `WHETSTONE-NOTE:` line; an unknown rule is still refused.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

NOTE_PREFIX = "WHETSTONE-NOTE: "


def _pre_tokenizer_from_rule(model_dir: Path) -> str | None:
    from core.errors import UserError
    from core.export.gguf_writer import detect_pre_tokenizer

    file = model_dir / "tokenizer.json"
    if not file.exists():
        return None
    try:
        return detect_pre_tokenizer(json.loads(file.read_text(encoding="utf-8")))
    except (UserError, ValueError, OSError):
        return None


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.stderr.write("usage: llama_convert_runner CONVERTER_DIR MODEL_DIR [args]\n")
        raise SystemExit(2)
    folder = Path(argv[0])
    model_dir = Path(argv[1])
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "1"
    sys.path.insert(0, str(folder / "gguf-py"))
    sys.path.insert(0, str(folder))
    import conversion.base as base  # the converter's own package, from `folder`

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            name = _pre_tokenizer_from_rule(model_dir)
            if name is None:
                raise
            print(
                f"{NOTE_PREFIX}llama.cpp did not recognize this tokenizer's fingerprint; its split rule is "
                f"llama.cpp's '{name}' pre-tokenizer, used for the GGUF",
                flush=True,
            )
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    script = folder / "convert_hf_to_gguf.py"
    sys.argv = [str(script), str(model_dir), *argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
