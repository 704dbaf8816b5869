"""`whetstone doctor`: a self-check a site's admin can run and send (CLI, Help > Diagnostics, install.sh).

Each check returns one `Check` (status ok / warn / fail, a one-line summary, details for the JSON). A failure
means Whetstone cannot do its job on this machine (no torch, no embedded model, a data folder it cannot
write); a warning means a feature is off or slow (no CUDA GPU, no llama.cpp, little free space).

The doctor never attempts a network connection: it turns the socket guard on before importing anything and
reports every connect that library code tried anyway (there should be none).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import core
from core import offline, paths
from core.versions import ML_STACK, package_versions

OK, WARN, FAIL = "ok", "warn", "fail"
# Below this much free space a data or cache folder is flagged: a merged 7B export alone is ~14 GB.
LOW_SPACE_GIB = 20.0
_GIB = 1024**3
EXTRA_VERSIONS = ("PySide6-Essentials", "pyqtgraph", "pydantic", "numpy", "safetensors", "tokenizers")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def check_python() -> Check:
    version = platform.python_version()
    details = {"version": version, "executable": sys.executable, "platform": platform.platform()}
    return Check("Python", OK, f"{version} ({sys.executable})", details)


def check_whetstone() -> Check:
    location = str(Path(core.__file__).resolve().parent.parent)
    return Check(
        "Whetstone", OK, f"{core.__version__} ({location})", {"version": core.__version__, "path": location}
    )


def check_torch() -> tuple[Check, Check]:
    """(torch + CUDA/bf16, GPUs with memory)."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        failed = Check("torch", FAIL, f"torch does not load: {exc.__class__.__name__}: {exc}")
        return failed, Check("GPU", FAIL, "unknown (torch does not load)")
    cuda = bool(torch.cuda.is_available())
    details: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "threads": torch.get_num_threads(),
    }
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    if cuda:
        bf16 = "bf16 supported" if details["bf16"] else "no bf16 (fp16 training)"
        torch_check = Check("torch", OK, f"{torch.__version__}, {build}, CUDA available, {bf16}", details)
    else:
        torch_check = Check("torch", OK, f"{torch.__version__}, {build}, no CUDA device", details)
    gpus: list[dict[str, Any]] = []
    if cuda:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            entry: dict[str, Any] = {
                "index": index,
                "name": props.name,
                "total_gib": round(props.total_memory / _GIB, 2),
                "capability": f"{props.major}.{props.minor}",
            }
            try:
                free, _total = torch.cuda.mem_get_info(index)
                entry["free_gib"] = round(free / _GIB, 2)
            except Exception:  # noqa: BLE001 - a busy or odd device: the total is still useful
                entry["free_gib"] = None
            gpus.append(entry)
    if not gpus:
        gpu_check = Check(
            "GPU",
            WARN,
            "no CUDA GPU: training runs on the CPU in fp32 (slow; tiny models only)",
            {"gpus": []},
        )
    else:
        described = "; ".join(
            f"#{g['index']} {g['name']} {g['free_gib'] if g['free_gib'] is not None else '?'} of "
            f"{g['total_gib']} GiB free"
            for g in gpus
        )
        gpu_check = Check("GPU", OK, described, {"gpus": gpus})
    return torch_check, gpu_check


def check_bitsandbytes() -> Check:
    import logging

    bnb_logger = logging.getLogger("bitsandbytes")
    level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)  # its optional-kernel notices are not findings
    try:
        import bitsandbytes
        from bitsandbytes import cextension
    except Exception as exc:  # noqa: BLE001
        return Check("bitsandbytes", FAIL, f"does not load: {exc.__class__.__name__}: {exc}")
    finally:
        bnb_logger.setLevel(level)
    backend = str(getattr(cextension, "BNB_BACKEND", "unknown"))
    lib = getattr(cextension, "lib", None)
    details = {"version": bitsandbytes.__version__, "backend": backend, "native_library": type(lib).__name__}
    if lib is None or "ErrorHandler" in type(lib).__name__:
        return Check(
            "bitsandbytes", WARN, f"{bitsandbytes.__version__} loads but its native library did not", details
        )
    note = "" if backend != "CPU" else " (4-bit/8-bit QLoRA needs a CUDA GPU)"
    return Check("bitsandbytes", OK, f"{bitsandbytes.__version__}, {backend} backend{note}", details)


def check_llama_cpp() -> Check:
    try:
        import llama_cpp
    except ImportError as exc:
        if exc.name == "llama_cpp":
            return Check(
                "llama.cpp",
                WARN,
                "llama-cpp-python not installed: GGUF K-quants and the llama.cpp check of exports are off",
            )
        return Check("llama.cpp", FAIL, f"llama-cpp-python does not load: {exc}")
    except Exception as exc:  # noqa: BLE001 - e.g. the shared library fails to load
        return Check("llama.cpp", FAIL, f"llama-cpp-python does not load: {exc.__class__.__name__}: {exc}")
    details: dict[str, Any] = {"version": llama_cpp.__version__}
    try:
        details["gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
        details["system_info"] = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    except Exception as exc:  # noqa: BLE001 - the library is there but a call into it failed
        return Check(
            "llama.cpp", FAIL, f"llama-cpp-python {llama_cpp.__version__} loads but fails: {exc}", details
        )
    return Check("llama.cpp", OK, f"llama-cpp-python {llama_cpp.__version__} loads (K-quants on)", details)


def check_gguf_converter() -> Check:
    from core.export.llama_convert import LLAMA_CPP_VERSION, converter_architectures, converter_dir

    folder = converter_dir()
    if folder is None:
        return Check(
            "GGUF converter",
            WARN,
            f"llama.cpp's convert_hf_to_gguf.py ({LLAMA_CPP_VERSION}) not installed: GGUF export covers only the "
            "architectures Whetstone's own writer knows",
        )
    architectures = converter_architectures()
    details = {"path": str(folder), "version": LLAMA_CPP_VERSION, "architectures": len(architectures)}
    return Check(
        "GGUF converter",
        OK,
        f"llama.cpp {LLAMA_CPP_VERSION} convert_hf_to_gguf.py, {len(architectures)} architectures ({folder})",
        details,
    )


def check_models() -> Check:
    from core.models import EMBEDDED_BASE_ID, EMBEDDED_EMBEDDING_ID, ModelRegistry

    entries = ModelRegistry().list()
    found = {e.id: e for e in entries}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        present = Path(entry.path).exists()
        size = _size_bytes(Path(entry.path)) if present else 0
        rows.append({**entry.public(), "present": present, "size_mb": round(size / 1e6, 1)})
    details = {"models": rows}
    missing = [m for m in (EMBEDDED_BASE_ID, EMBEDDED_EMBEDDING_ID) if m not in found]
    gone = [str(r["id"]) for r in rows if not r["present"]]
    if missing:
        return Check("Models", FAIL, f"embedded model missing: {', '.join(missing)}", details)
    if gone:
        return Check("Models", WARN, f"registered but not found on disk: {', '.join(gone)}", details)
    listed = ", ".join(f"{r['id']} ({r['size_mb']:.0f} MB)" for r in rows)
    return Check("Models", OK, listed, details)


def _size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _runs_folder() -> Path:
    """The runs folder the app uses (the settings' runs_dir, else the default), created as a run would."""
    from core.runs import runs_root

    folder = runs_root()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_dirs() -> Check:
    folders = {
        "data": paths.data_dir,
        "config": paths.config_dir,
        "cache": paths.cache_dir,
        "runs": _runs_folder,
    }
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    low: list[str] = []
    for name, make in folders.items():
        try:
            folder = make()
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as handle:
                handle.write(b"ok")
            free = shutil.disk_usage(folder).free / _GIB
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
            rows[name] = {"writable": False, "error": str(exc)}
            continue
        rows[name] = {"path": str(folder), "writable": True, "free_gib": round(free, 1)}
        if free < LOW_SPACE_GIB:
            low.append(f"{name} {free:.1f} GiB")
    details = {"dirs": rows}
    if problems:
        return Check("Folders", FAIL, "cannot write " + "; ".join(problems), details)
    spaces = ", ".join(f"{n} {r['free_gib']} GiB free" for n, r in rows.items() if n in ("data", "cache"))
    if low:
        return Check("Folders", WARN, f"writable; low free space ({', '.join(low)})", details)
    return Check("Folders", OK, f"writable; {spaces}", details)


def check_network_guard() -> Check:
    unset = [k for k, v in offline.OFFLINE_ENV.items() if os.environ.get(k) != v]
    details = {
        "offline_env": {k: os.environ.get(k) for k in offline.OFFLINE_ENV},
        "sockets_blocked_during_check": offline.sockets_blocked(),
        "connect_attempts": list(offline.blocked_attempts),
    }
    if unset:
        return Check("Network guard", FAIL, f"offline switches not set: {', '.join(unset)}", details)
    if offline.blocked_attempts:
        return Check(
            "Network guard",
            FAIL,
            f"{len(offline.blocked_attempts)} connection attempt(s) blocked: {offline.blocked_attempts[0]}",
            details,
        )
    return Check(
        "Network guard",
        OK,
        "on: Hugging Face offline switches set; sockets blocked during this check, 0 connection attempts",
        details,
    )


def _system() -> dict[str, Any]:
    info: dict[str, Any] = {"os": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    info["ram_gib"] = round(int(line.split()[1]) * 1024 / _GIB, 1)
    except OSError:
        pass
    return info


def run_doctor(progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Run every check with the network guard on; returns the report as a JSON-ready dict."""
    offline.enforce_offline()
    offline.block_sockets()
    started = time.monotonic()
    steps: list[tuple[str, Callable[[], Check | tuple[Check, ...]]]] = [
        ("Python", check_python),
        ("Whetstone", check_whetstone),
        ("torch and GPUs", check_torch),
        ("bitsandbytes", check_bitsandbytes),
        ("llama.cpp", check_llama_cpp),
        ("GGUF converter", check_gguf_converter),
        ("models", check_models),
        ("folders", check_dirs),
        ("network guard", check_network_guard),
    ]
    checks: list[Check] = []
    for index, (label, step) in enumerate(steps):
        if progress is not None:
            progress(index / len(steps), f"checking {label}")
        try:
            result = step()
        except Exception as exc:  # noqa: BLE001 - a check that crashes is itself a finding
            result = Check(label, FAIL, f"the check crashed: {exc.__class__.__name__}: {exc}")
        checks.extend(result if isinstance(result, tuple) else (result,))
    if progress is not None:
        progress(1.0, "done")
    failures = sum(c.status == FAIL for c in checks)
    warnings = sum(c.status == WARN for c in checks)
    return {
        "whetstone": core.__version__,
        "ok": failures == 0,
        "failures": failures,
        "warnings": warnings,
        "checked_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "system": _system(),
        "checks": [asdict(c) for c in checks],
        "versions": package_versions((*ML_STACK, *EXTRA_VERSIONS)),
    }


def _detail_lines(check: dict[str, Any]) -> list[str]:
    """The paths and per-item rows an admin needs beside a check's one-line summary."""
    details = check.get("details") or {}
    if check["name"] == "Models":
        return [f"{m['id']} ({m['kind']}, {m['source']}): {m['path']}" for m in details.get("models", [])]
    if check["name"] == "Folders":
        return [
            f"{name}: {row['path']}" if row.get("writable") else f"{name}: {row.get('error')}"
            for name, row in details.get("dirs", {}).items()
        ]
    if check["name"] == "Network guard":
        return [f"blocked: {address}" for address in details.get("connect_attempts", [])]
    return []


def format_report(report: dict[str, Any]) -> str:
    """The report as plain text (what `whetstone doctor` prints and the Diagnostics dialog copies)."""
    system = report.get("system", {})
    lines = [
        f"Whetstone {report['whetstone']} self-check, {report['checked_at']}",
        f"System: {system.get('os', '?')}, {system.get('cpus', '?')} CPUs, {system.get('ram_gib', '?')} GiB RAM",
        "",
    ]
    width = max((len(c["name"]) for c in report["checks"]), default=0)
    for check in report["checks"]:
        lines.append(f"{check['status'].upper():5} {check['name']:{width}}  {check['summary']}")
        lines.extend(" " * (width + 8) + line for line in _detail_lines(check))
    lines.append("")
    versions = [f"{k} {v or 'not installed'}" for k, v in report.get("versions", {}).items()]
    lines.append("Versions:")
    column = max((len(v) for v in versions), default=0) + 2
    for start in range(0, len(versions), 3):
        lines.append("  " + "".join(f"{v:{column}}" for v in versions[start : start + 3]).rstrip())
    lines.append("")
    lines.append(
        f"Result: {'OK' if report['ok'] else 'PROBLEMS FOUND'} "
        f"({report['failures']} failure(s), {report['warnings']} warning(s))"
    )
    return "\n".join(lines)
