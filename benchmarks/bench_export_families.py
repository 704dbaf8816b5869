"""Export stage of the family matrix, timed: for each family's tiny random-weight model (tests/core/
export_families.py) with a PEFT adapter, the merged export and GGUF F16 / Q8_0 (written to NAME.gguf, verified
in transformers and llama.cpp), plus the time the GGUF support check takes before refusing an architecture
llama.cpp cannot convert. Prints a table; never pass/fail.

    python benchmarks/bench_export_families.py [FAMILY ...]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _status(result) -> str:  # type: ignore[no-untyped-def]
    from core.export.formats import verification_status

    return verification_status(result.verification)


def main(families: list[str]) -> None:
    from core.errors import UserError
    from core.export.api import export_run
    from tests.core.export_families import FAMILIES, build_family_model
    from tests.core.test_export_families import make_run

    families = families or list(FAMILIES)
    root = Path(tempfile.mkdtemp(prefix="bench-export-families-"))
    os.environ.setdefault("WHETSTONE_HOME", str(root / "home"))  # removed with root at the end
    rows = []
    try:
        for family in families:
            model = build_family_model(family, root / family / "model")
            run = make_run(model, root / family / "run")
            row: dict[str, object] = {"family": family}
            t0 = time.perf_counter()
            try:
                merged = export_run(run, "merged", root / family / "merged")
                row["merged_s"] = round(time.perf_counter() - t0, 1)
                row["merged"] = _status(merged)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
                row["merged"] = f"error: {exc}"
            for quant in ("f16", "q8_0"):
                t0 = time.perf_counter()
                try:
                    result = export_run(run, "gguf", root / family / f"{family}-{quant}.gguf", quant=quant)
                    row[f"{quant}_s"] = round(time.perf_counter() - t0, 1)
                    row[quant] = _status(result)
                    row["route"] = (result.gguf or {}).get("route")
                    lc = (result.verification or {}).get("llama_cpp") or {}
                    row[f"{quant}_llama_cpp"] = (
                        "skipped"
                        if "skipped" in lc
                        else f"template {lc.get('template_match')}, tokens {lc.get('tokens_match')}, "
                        f"logits {(lc.get('logits') or {}).get('passed')}, greedy {lc.get('greedy_match_rate')}"
                    )
                except Exception as exc:  # noqa: BLE001
                    row[quant] = f"error: {str(exc)[:160]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
        # the support check before a refusal: an architecture neither our writer nor llama.cpp converts
        odd = root / "odd-model"
        shutil.copytree(root / families[0] / "model", odd)
        config = json.loads((odd / "config.json").read_text())
        config["architectures"] = ["WhetstoneTestForCausalLM"]
        (odd / "config.json").write_text(json.dumps(config))
        import yaml

        run = root / families[0] / "run"
        run_config = yaml.safe_load((run / "config.yaml").read_text())
        run_config["model"]["name"] = str(odd)
        (run / "config.yaml").write_text(yaml.safe_dump(run_config))
        t0 = time.perf_counter()
        try:
            export_run(run, "gguf", root / "odd.gguf", quant="q8_0")
            refusal = "not refused"
        except UserError as exc:
            refusal = str(exc)
        print(
            json.dumps({"support_check_refusal_s": round(time.perf_counter() - t0, 3), "message": refusal}),
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| family | route | merged | GGUF F16 | GGUF Q8_0 | merged s | F16 s | Q8_0 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r.get('route', '-')} | {r.get('merged')} | {r.get('f16')} | {r.get('q8_0')} "
            f"| {r.get('merged_s', '-')} | {r.get('f16_s', '-')} | {r.get('q8_0_s', '-')} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
