"""HF -> GGUF Q8_0 on the embedded SmolLM2-135M: Whetstone's GgufExporter vs llama.cpp's reference converter.

Both run as fresh processes (imports included) with the same Python, alternating, best of N. Then the two
files are compared tensor by tensor with gguf's reader (names, types, bytes) and key by key.

The reference converter is `convert_hf_to_gguf.py` from the llama-cpp-python sdist, used from OUTSIDE the
repository only as a yardstick:
    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/llsdist
    tar xzf /tmp/llsdist/llama_cpp_python-0.3.36.tar.gz -C /tmp/llsdist
    pip install --target /tmp/refdeps sentencepiece      # the converter imports it
    LLAMA_CPP_SRC=/tmp/llsdist/llama_cpp_python-0.3.36/vendor/llama.cpp REF_PYTHONPATH=/tmp/refdeps \
        python benchmarks/bench_export.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REPEATS = int(os.environ.get("BENCH_REPEATS", "2"))
DEFAULT_SRC = "/tmp/llsdist/llama_cpp_python-0.3.36/vendor/llama.cpp"


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def _compare(ours: Path, ref: Path) -> dict[str, object]:
    import numpy as np
    from gguf import GGUFReader

    a, b = GGUFReader(ours), GGUFReader(ref)
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    same_names = set(ta) == set(tb)
    differing = [
        n
        for n in sorted(set(ta) & set(tb))
        if ta[n].tensor_type != tb[n].tensor_type
        or not np.array_equal(np.asarray(ta[n].data), np.asarray(tb[n].data))
    ]
    keys_a = {k for k in a.fields if not k.startswith("GGUF.")}
    keys_b = {k for k in b.fields if not k.startswith("GGUF.")}
    value_diff = []
    for key in sorted(keys_a & keys_b):
        try:
            if a.fields[key].contents() != b.fields[key].contents():
                value_diff.append(
                    f"{key}: ours={str(a.fields[key].contents())[:40]!r} ref={str(b.fields[key].contents())[:40]!r}"
                )
        except Exception:  # noqa: BLE001
            continue
    return {
        "tensors": len(ta),
        "same_tensor_names": same_names,
        "tensors_differing": differing,
        "keys_only_ours": sorted(keys_a - keys_b),
        "keys_only_reference": sorted(keys_b - keys_a),
        "values_differing": value_diff,
    }


def main() -> None:
    from core.models import resolve_base_model

    model_dir = resolve_base_model("smollm2-135m-instruct")
    src = Path(os.environ.get("LLAMA_CPP_SRC", DEFAULT_SRC))
    converter = src / "convert_hf_to_gguf.py"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"model: {model_dir}")
    print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, repeats: {REPEATS}")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        ours_out = Path(tmp) / "ours-q8_0.gguf"
        ref_out = Path(tmp) / "ref-q8_0.gguf"
        ours_cmd = [
            sys.executable,
            "-c",
            "import sys; from core.export.gguf_writer import GgufExporter; "
            "GgufExporter(sys.argv[1]).write(sys.argv[2], 'q8_0')",
            str(model_dir),
            str(ours_out),
        ]
        ref_cmd = [
            sys.executable,
            str(converter),
            str(model_dir),
            "--outtype",
            "q8_0",
            "--outfile",
            str(ref_out),
        ]
        ref_env = dict(env)
        if os.environ.get("REF_PYTHONPATH"):
            ref_env["PYTHONPATH"] = os.environ["REF_PYTHONPATH"]
        have_ref = converter.exists()
        if not have_ref:
            print(
                f"reference converter not found at {converter}; set LLAMA_CPP_SRC (see this file's docstring)"
            )
        ours_times: list[float] = []
        ref_times: list[float] = []
        for _ in range(REPEATS):
            ours_times.append(_timed(ours_cmd, env, REPO))
            if have_ref:
                ref_times.append(_timed(ref_cmd, ref_env, src))
        size = ours_out.stat().st_size
        print(
            f"ours      (GgufExporter)       best {min(ours_times):6.2f} s  runs {[round(t, 2) for t in ours_times]}  {size / 1e6:.1f} MB"
        )
        if have_ref:
            print(
                f"reference (convert_hf_to_gguf) best {min(ref_times):6.2f} s  runs {[round(t, 2) for t in ref_times]}  "
                f"{ref_out.stat().st_size / 1e6:.1f} MB"
            )
            print(f"speed ratio reference/ours (best): {min(ref_times) / min(ours_times):.2f}x")
            result = _compare(ours_out, ref_out)
            print(
                f"tensors: {result['tensors']}, same names: {result['same_tensor_names']}, "
                f"differing (type or bytes): {len(result['tensors_differing'])} {result['tensors_differing'][:5]}"
            )
            print(f"metadata keys only in ours: {result['keys_only_ours']}")
            print(f"metadata keys only in the reference: {result['keys_only_reference']}")
            for line in result["values_differing"]:
                print(f"metadata value differs: {line}")


if __name__ == "__main__":
    main()
