"""llama.cpp's own Hugging Face -> GGUF converter, for the architectures our writer does not cover.

`make` extracts `convert_hf_to_gguf.py` (with its `conversion/` package and `gguf-py/`) from the source
distribution of the same llama-cpp-python version the project builds (LLAMA_CPP_VERSION), into
`<venv>/share/whetstone/llama.cpp-convert-<version>/`. The converter and the llama.cpp that loads, checks and
quantizes its GGUFs are then one version. It runs offline as a subprocess (`core.export.llama_convert_runner`).

Which route a model takes is decided from its config.json alone, before anything is loaded or merged:
`gguf_route()` answers "writer" (our own `GgufExporter`: Llama, Mistral, Qwen2, verified and faster),
"converter" (every text architecture in the converter's `TEXT_MODEL_MAP`, read with `ast`, no import), or
raises a UserError that says what the user can do instead.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import Cancelled, UserError, WhetstoneError
from core.progress import ProgressFn, StopFn, no_progress

LLAMA_CPP_VERSION = "0.3.36"  # the Makefile's LLAMA_CPP_VERSION
CONVERTER_ENV = "WHETSTONE_LLAMA_CONVERTER"
# The converter writes these directly; every other GGUF type is made from its F16 by llama.cpp's quantizer.
CONVERTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
NOTE_PREFIX = "WHETSTONE-NOTE: "


def converter_dir() -> Path | None:
    """The folder holding llama.cpp's convert_hf_to_gguf.py, or None when `make` has not installed it."""
    candidates = []
    if os.environ.get(CONVERTER_ENV):
        candidates.append(Path(os.environ[CONVERTER_ENV]))
    candidates.append(Path(sys.prefix) / "share" / "whetstone" / f"llama.cpp-convert-{LLAMA_CPP_VERSION}")
    for folder in candidates:
        if (folder / "convert_hf_to_gguf.py").is_file() and (folder / "conversion" / "__init__.py").is_file():
            return folder
    return None


CONVERTER_MISSING = (
    f"llama.cpp's GGUF converter ({LLAMA_CPP_VERSION}) is not installed: run `make llama-convert` "
    "(it takes convert_hf_to_gguf.py from the llama-cpp-python source package)."
)


@lru_cache(maxsize=4)
def _architectures_in(init_file: str) -> frozenset[str]:
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    for node in tree.body:
        target = None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        if target == "TEXT_MODEL_MAP" and isinstance(value, ast.Dict):
            return frozenset(
                k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            )
    return frozenset()


def converter_architectures() -> frozenset[str]:
    """The text-model architectures llama.cpp's converter registers (read from its source, no import)."""
    folder = converter_dir()
    if folder is None:
        return frozenset()
    return _architectures_in(str(folder / "conversion" / "__init__.py"))


def model_architecture(model_dir: Path) -> str:
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_dir} is not a model folder (no readable config.json).") from exc
    archs = config.get("architectures") or [config.get("model_type") or "unknown"]
    return str(archs[0])


def gguf_route(model_dir: Path) -> str:
    """'writer' or 'converter' for this model folder; a UserError (what to do instead) when neither fits."""
    from core.export.gguf_writer import SUPPORTED_ARCHITECTURES

    arch = model_architecture(model_dir)
    if arch in SUPPORTED_ARCHITECTURES:
        return "writer"
    if converter_dir() is None:
        raise UserError(f"GGUF export of {arch} needs llama.cpp's converter. {CONVERTER_MISSING}")
    if arch in converter_architectures():
        return "converter"
    raise UserError(
        f"GGUF export does not support {arch}: llama.cpp {LLAMA_CPP_VERSION}'s converter does not know this "
        "architecture. Export --format merged (a safetensors folder that transformers and vLLM load) or "
        "--format adapter (PEFT) instead; a newer llama.cpp's convert_hf_to_gguf.py may convert the merged "
        "folder."
    )


def _runner_env() -> dict[str, str]:
    project_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("Traceback", "File ", "^", "~")) or line.startswith(NOTE_PREFIX):
            continue
        return line[:300]
    return "no output"


def convert(
    model_dir: Path,
    out_path: Path,
    outtype: str,
    *,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    name: str | None = None,
    timeout_s: float = 6 * 3600,
) -> dict[str, Any]:
    """Run llama.cpp's convert_hf_to_gguf.py on `model_dir` and write `out_path` (atomic: `.partial` first).

    Returns {"notes": [...], "seconds", "log"}; raises WhetstoneError with the converter's last line."""
    folder = converter_dir()
    if folder is None:
        raise UserError(CONVERTER_MISSING)
    if outtype not in CONVERTER_OUTTYPES:
        raise UserError(f"llama.cpp's converter writes {', '.join(CONVERTER_OUTTYPES)}, not {outtype}.")
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    log_path = out_path.with_name(out_path.name + ".convert.log")
    cmd = [
        sys.executable,
        "-m",
        "core.export.llama_convert_runner",
        str(folder),
        str(model_dir),
        "--outfile",
        str(partial),
        "--outtype",
        outtype,
    ]
    if name:
        cmd += ["--model-name", name]
    started = time.perf_counter()
    progress(0.05, "Converting with llama.cpp's convert_hf_to_gguf")
    with open(log_path, "w+", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own runner, fixed arguments
            cmd, stdout=log, stderr=subprocess.STDOUT, env=_runner_env(), start_new_session=True
        )
        try:
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if should_stop is not None and should_stop():
                        proc.kill()
                        proc.wait()
                        raise Cancelled("cancelled") from None
                    if time.perf_counter() - started > timeout_s:
                        proc.kill()
                        proc.wait()
                        raise WhetstoneError("llama.cpp's converter did not finish in time.") from None
                    if partial.exists():
                        progress(0.5, "Writing the GGUF (llama.cpp converter)")
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            partial.unlink(missing_ok=True)
            raise
        log.seek(0)
        text = log.read()
    log_path.unlink(missing_ok=True)
    if proc.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        if "No space left on device" in text or "[Errno 28]" in text:
            raise OSError(errno.ENOSPC, "No space left on device", str(out_path.parent))
        arch = model_architecture(model_dir)
        raise WhetstoneError(f"llama.cpp's converter could not convert {arch}: {_last_error(text)}")
    os.replace(partial, out_path)
    notes = [line[len(NOTE_PREFIX) :] for line in text.splitlines() if line.startswith(NOTE_PREFIX)]
    progress(1.0, "GGUF written")
    return {"notes": notes, "seconds": round(time.perf_counter() - started, 2), "log": text[-4000:]}


def gguf_summary(path: Path) -> dict[str, Any]:
    """Architecture, tokenizer, special token ids and tensor types of a GGUF file (metadata only)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        value = f.parts[f.data[0]]
        if f.types and f.types[0].name == "STRING":
            return bytes(value).decode("utf-8", "replace")
        return int(value[0]) if len(value) == 1 else value

    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    special = {}
    for key in ("bos", "eos", "eot", "unknown", "padding"):
        value = field(f"tokenizer.ggml.{key}_token_id")
        if value is not None:
            special[{"unknown": "unk", "padding": "pad"}.get(key, key)] = value
    return {
        "path": str(path),
        "bytes": Path(path).stat().st_size,
        "architecture": field("general.architecture"),
        "tokenizer": {"model": field("tokenizer.ggml.model"), "pre": field("tokenizer.ggml.pre")},
        "special_tokens": special,
        "tensors": len(reader.tensors),
        "tensor_types": types,
        "chat_template": field("tokenizer.chat_template") is not None,
    }


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


__all__ = [
    "LLAMA_CPP_VERSION",
    "CONVERTER_MISSING",
    "converter_dir",
    "converter_architectures",
    "model_architecture",
    "gguf_route",
    "convert",
    "gguf_summary",
]
