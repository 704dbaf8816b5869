"""`export_run`: one call for every export format, with the disk-space check, progress, cancel, verification
and the temp-folder-then-rename rule (no half-written model ever sits under the final name)."""

from __future__ import annotations

import gc
import json
import shutil
import time
from pathlib import Path
from typing import Any

from core.errors import Cancelled, UserError, WhetstoneError
from core.export.formats import (
    ALL_QUANTS,
    BYTES_PER_WEIGHT,
    DEFAULT_QUANT,
    FORMATS,
    K_QUANTS,
    LLAMA_CPP_MISSING,
    ExportResult,
    llama_cpp_available,
)
from core.progress import ProgressFn, StopFn, check_stop, no_progress, sub_progress
from core.training.run import RunFolder

GREEDY_TOKENS = 12
VERIFY_PROMPTS = 4
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def parameter_count(model_dir: Path) -> int:
    """Number of weights in a safetensors folder (headers only, nothing loaded)."""
    import math

    from safetensors import safe_open

    total = 0
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def space_needed(fmt: str, params: int, save_dtype: str, quant: str | None) -> int:
    """Bytes an export writes at its peak (merged copy + GGUF, + F16 intermediate for K-quants), +10%."""
    if fmt == "adapter":
        return 0
    merged = params * _DTYPE_BYTES.get(save_dtype, 2)
    if fmt == "merged":
        return int(merged * 1.1)
    quant = quant or DEFAULT_QUANT
    gguf_bytes = params * BYTES_PER_WEIGHT.get(quant, 2.0)
    if quant in K_QUANTS:
        gguf_bytes += params * 2  # the F16 file llama.cpp quantizes from
    return int((merged + gguf_bytes) * 1.1)


def check_disk_space(target_parent: Path, needed: int) -> None:
    free = shutil.disk_usage(target_parent).free
    if needed and free < needed:
        raise UserError(
            f"Not enough disk space in {target_parent}: the export needs about {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB is free."
        )


def _files(folder: Path) -> list[dict[str, Any]]:
    return [
        {"path": str(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]


def _prepare_out(out: Path, overwrite: bool) -> Path:
    out = out.expanduser().absolute()
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out} already exists and is not empty; choose another --out (or --overwrite).")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _finish(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to its final name (an old export there is replaced only now)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time())}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _gguf_name(run: RunFolder, quant: str) -> str:
    base = run.base_model()
    stem = Path(base).name if ("/" in base or "\\" in base) else base
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "model"
    return f"{stem}-{run.path.name}-{quant}.gguf"


def _token_text(tokenizer: Any, token_id: int | None) -> str:
    if token_id is None:
        return ""
    return str(tokenizer.convert_ids_to_tokens(int(token_id)))


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    *,
    quant: str | None = None,
    verify: bool = True,
    overwrite: bool = False,
    device: str | None = None,
    keep_merged: bool = False,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
) -> ExportResult:
    """Export a run folder as `adapter`, `merged` or `gguf` into the folder `out`."""
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise UserError(f"Unknown format {fmt!r}; choose {', '.join(FORMATS)}.")
    run = RunFolder.open(run_dir)
    from core.export.adapter import require_adapter

    require_adapter(run)
    if fmt == "gguf":
        quant = (quant or DEFAULT_QUANT).lower()
        if quant not in ALL_QUANTS:
            raise UserError(f"Unknown GGUF type {quant!r}; choose {', '.join(ALL_QUANTS)}.")
        if quant in K_QUANTS and not llama_cpp_available():
            raise UserError(LLAMA_CPP_MISSING)
    elif quant:
        raise UserError("--quant applies to --format gguf only.")
    target = _prepare_out(Path(out), overwrite)
    tmp = Path(
        __import__("tempfile").mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent)
    )  # same filesystem as the target, so the final rename is atomic
    result = ExportResult(format=fmt, out_dir=str(target), quant=quant if fmt == "gguf" else None)
    try:
        if fmt == "adapter":
            from core.export.adapter import export_adapter

            export_adapter(run, tmp, progress=sub_progress(progress, 0.0, 0.95), should_stop=should_stop)
        else:
            _export_model(
                run, fmt, tmp, target, quant, verify, device, keep_merged, result, progress, should_stop
            )
        check_stop(should_stop)
        _finish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.files = _files(target)
    result.seconds = time.perf_counter() - started
    progress(1.0, "done")
    return result


def _export_model(
    run: RunFolder,
    fmt: str,
    tmp: Path,
    target: Path,
    quant: str | None,
    verify: bool,
    device: str | None,
    keep_merged: bool,
    result: ExportResult,
    progress: ProgressFn,
    should_stop: StopFn | None,
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from core.export import verify as V
    from core.export.adapter import model_card
    from core.export.merge import (
        base_model_dir,
        base_save_dtype,
        compute_dtype,
        load_peft_model,
        load_tokenizer,
        merge_run,
        pick_device,
    )

    device = pick_device(device)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress is reported; no tqdm bars on stderr
    except ImportError:  # pragma: no cover
        pass
    progress(0.01, "Locating the base model")
    base_dir = base_model_dir(run, progress=sub_progress(progress, 0.0, 0.05))
    save_dtype = base_save_dtype(base_dir) or str(compute_dtype(device)).replace("torch.", "")
    needed = space_needed(fmt, parameter_count(base_dir), save_dtype, quant)
    check_disk_space(target.parent, needed)
    check_stop(should_stop)
    tokenizer = load_tokenizer(run, base_dir)
    prompts = V.sample_prompts(run, VERIFY_PROMPTS) if verify else []
    if verify and not prompts:
        result.notes.append("the run's dataset has no prompts to verify with; verification skipped")
        verify = False
    ids_list = V.encode_prompts(tokenizer, prompts) if verify else []
    verification: dict[str, Any] = {}

    progress(0.06, f"Loading the base model unquantized on {device} and applying the adapter")
    peft_model = load_peft_model(run, base_dir, device)
    reference = V.model_logits(peft_model, ids_list) if verify else []
    check_stop(should_stop)
    t0 = time.perf_counter()
    merged_dir = (
        tmp if fmt == "merged" else Path(__import__("tempfile").mkdtemp(prefix=".merged-", dir=tmp.parent))
    )
    try:
        merged = merge_run(
            run,
            merged_dir,
            device=device,
            save_dtype=save_dtype,
            progress=sub_progress(progress, 0.08, 0.4),
            should_stop=should_stop,
            peft_model=peft_model,
        )
        del peft_model
        gc.collect()
        result.timings["load_and_merge"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        merged_logits: list[Any] = []
        greedy: list[list[int]] = []
        if verify:
            progress(0.42, "Verifying the merged model (plain transformers)")
            check_dtype = torch.float32 if device == "cpu" else getattr(torch, save_dtype)
            model: Any = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=check_dtype)
            model = model.to(device).eval()
            merged_logits = V.model_logits(model, ids_list)
            figures = V.logit_figures(reference, merged_logits)
            tolerance = 1e-3 if device == "cpu" and save_dtype == "float32" else 0.5
            if device == "cpu" and save_dtype == "float32":
                # fp32 merge on the CPU: the merged weights equal base + scale * B @ A up to rounding
                figures["passed"] = (
                    figures["next_token_top1_agreement"] == 1.0
                    and figures["max_abs_logit_delta"] <= tolerance
                )
            else:
                # bf16/fp16: rounding of the merged weights moves logits a little; near-ties may flip
                figures["passed"] = figures["top1_agreement"] >= 0.95 and (
                    figures["mean_abs_logit_delta"] <= 0.05 * max(figures["logit_std"], 1e-12)
                )
            figures["reference"] = "base + adapter (PEFT, unmerged)"
            verification["merged"] = figures
            if fmt == "gguf" and llama_cpp_available():
                eos_ids = sorted(
                    {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
                )
                t1 = time.perf_counter()
                greedy = V.greedy_tokens(model, ids_list, GREEDY_TOKENS, eos_ids)
                result.timings["merged_greedy_reference"] = round(time.perf_counter() - t1, 2)
            del model
            gc.collect()
            result.timings["verify_merged"] = round(time.perf_counter() - t0, 2)
        check_stop(should_stop)
        card_extra: dict[str, Any] = {"format": fmt, "dtype": merged.dtype, "merged on": merged.device}
        if fmt == "gguf":
            assert quant is not None
            _write_gguf(
                run, merged_dir, tmp, quant, verify, prompts, ids_list, merged_logits, greedy, tokenizer,
                verification, result, card_extra, progress, should_stop,
            )  # fmt: skip
            if keep_merged:
                shutil.copytree(merged_dir, tmp / "merged")
            run_it = _run_it(result, target / str(card_extra["gguf"]), target / "Modelfile")
        if verify:
            verification["passed"] = all(
                v.get("passed", True) for v in verification.values() if isinstance(v, dict)
            )
            result.verification = verification
            card_extra["verification"] = json.dumps(
                {k: _short(v) for k, v in verification.items() if isinstance(v, dict)}
            )
        card = model_card(run, fmt, card_extra)
        if fmt == "gguf":
            card = card.rstrip("\n") + "\n\n" + run_it
        (tmp / "README.md").write_text(card, encoding="utf-8")
    finally:
        if merged_dir != tmp:
            shutil.rmtree(merged_dir, ignore_errors=True)


def _run_it(result: ExportResult, gguf_path: Path, modelfile_path: Path) -> str:
    """The commands to run the export (kept on the result for the Export page) and the README section."""
    from core.export.modelfile import run_commands, run_section

    system = result.system_prompt or {}
    commands = run_commands(gguf_path, modelfile_path, system.get("text"))
    result.commands = [{"label": label, "command": command} for label, command in commands]
    lines = [run_section(commands)]
    lines += ["### System prompt", "", str(system.get("sentence") or ""), ""]
    without = int(system.get("rows_without") or 0)
    if system.get("template_default") and not system.get("text") and without:
        lines += [
            "The base model's chat template adds its own system prompt to conversations without one "
            f'("{system["template_default"]}"), so training saw it in front of the {without} rows that had '
            "none; the Modelfile leaves it out. To reproduce that exactly, add it as a SYSTEM line.",
            "",
        ]
    return "\n".join(lines)


def _trained_system(run: RunFolder) -> Any:
    from core.export.modelfile import TrainedSystemPrompt, trained_system_prompt

    try:
        return trained_system_prompt(run.dataset_records())
    except (OSError, ValueError):
        return TrainedSystemPrompt(None, 0, {})


def _short(figures: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "max_abs_logit_delta",
        "top1_agreement",
        "next_token_top1_agreement",
        "template_match",
        "tokens_match",
        "greedy_match_rate",
        "passed",
    )
    return {k: figures[k] for k in keep if k in figures}


def _write_gguf(
    run: RunFolder,
    merged_dir: Path,
    tmp: Path,
    quant: str,
    verify: bool,
    prompts: list[Any],
    ids_list: list[list[int]],
    merged_logits: list[Any],
    greedy: list[list[int]],
    tokenizer: Any,
    verification: dict[str, Any],
    result: ExportResult,
    card_extra: dict[str, Any],
    progress: ProgressFn,
    should_stop: StopFn | None,
) -> None:
    from core.export import verify as V
    from core.export.gguf_writer import GgufExporter, gguf_tensor_types, quantize_with_llama_cpp
    from core.export.modelfile import ollama_modelfile

    name = _gguf_name(run, quant)
    gguf_path = tmp / name
    t0 = time.perf_counter()
    exporter = GgufExporter(merged_dir, name=f"{run.path.name} ({run.base_model()})")
    if quant in K_QUANTS:
        f16 = tmp / ".intermediate-f16.gguf"
        summary = exporter.write(f16, "f16", sub_progress(progress, 0.5, 0.7), should_stop)
        check_stop(should_stop)
        progress(0.72, f"Quantizing to {quant.upper()} with llama.cpp")
        try:
            quantize_with_llama_cpp(f16, gguf_path, quant)
        finally:
            f16.unlink(missing_ok=True)
        summary["bytes"] = gguf_path.stat().st_size
        summary["quantizer"] = "llama.cpp (llama_model_quantize)"
        summary["tensor_types"] = gguf_tensor_types(gguf_path)
        k_types = sum(n for t, n in summary["tensor_types"].items() if t.endswith("_K"))
        weights = sum(n for t, n in summary["tensor_types"].items() if t != "F32")
        if k_types < weights:
            summary.setdefault("notes", []).append(
                f"{weights - k_types} of {weights} weight tensors use llama.cpp's fallback types "
                "(their rows are not a multiple of 256, which K-quants need)"
            )
    else:
        summary = exporter.write(gguf_path, quant, sub_progress(progress, 0.5, 0.8), should_stop)
    result.notes.extend(summary.get("notes", []))
    result.timings["gguf_write"] = round(time.perf_counter() - t0, 2)
    result.gguf = {k: summary.get(k) for k in ("architecture", "tokenizer", "special_tokens", "tensor_types")}
    card_extra["gguf"] = name
    card_extra["gguf tokenizer"] = summary["tokenizer"]
    check_stop(should_stop)
    if verify:
        progress(0.82, "Verifying the GGUF with transformers")
        t0 = time.perf_counter()
        verification["gguf_transformers"] = V.verify_gguf_transformers(
            gguf_path, ids_list, merged_logits, quant
        )
        result.timings["verify_gguf_transformers"] = round(time.perf_counter() - t0, 2)
        check_stop(should_stop)
        if llama_cpp_available():
            progress(0.9, "Verifying the GGUF in llama.cpp (chat template from the GGUF)")
            t0 = time.perf_counter()
            lc = V.verify_gguf_llama_cpp(
                gguf_path,
                prompts,
                V.prompt_texts(tokenizer, prompts),
                ids_list,
                greedy,
                GREEDY_TOKENS,
            )
            # The template round trip must be exact; greedy agreement is reported (quantization moves it).
            lc["passed"] = bool(lc["template_match"] and lc["tokens_match"])
            verification["llama_cpp"] = lc
            result.timings["verify_llama_cpp"] = round(time.perf_counter() - t0, 2)
        else:
            verification["llama_cpp"] = {"skipped": "llama-cpp-python is not installed"}
    special = summary.get("special_tokens", {})
    trained = _trained_system(run)
    info = ollama_modelfile(
        name,
        tokenizer.chat_template,
        bos=_token_text(tokenizer, special.get("bos")),
        eos=_token_text(tokenizer, special.get("eos")),
        eot=_token_text(tokenizer, special.get("eot")) or None,
        system=trained.text,
    )
    result.system_prompt = {
        "text": trained.text,
        "sentence": trained.sentence(),
        "rows": trained.rows,
        "variants": len(trained.counts),
        "rows_without": trained.counts.get(None, 0),
        "template_default": info.default_system,
    }
    (tmp / "Modelfile").write_text(info.text, encoding="utf-8")
    result.notes.append(
        f"Ollama Modelfile: template {'translated (' + info.style + ')' if info.style else 'not translated'}"
        f"; stop tokens {info.stop}"
    )
    if info.note:
        result.notes.append(info.note)
    progress(0.97, "Finishing")


def cancelled_cleanly(exc: BaseException) -> bool:
    return isinstance(exc, Cancelled)


__all__ = ["export_run", "space_needed", "check_disk_space", "parameter_count", "WhetstoneError"]
