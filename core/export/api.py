"""`export_run`: one call for every export format, with the disk-space check, progress, cancel, verification
and the temp-folder-then-rename rule (no half-written model ever sits under the final name)."""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import tempfile
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
from core.runs import RunFolder

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


_DISK_FULL_MARKERS = ("No space left on device", "StorageFull", "os error 28", "code: 28")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError ENOSPC, or a library error (safetensors, torch, llama.cpp) that wraps one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(marker in str(current) for marker in _DISK_FULL_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(folder: Path, needed: int) -> WhetstoneError:
    """The app's one-line disk-full message (core.diskspace), naming the folder and the space needed."""
    from core.diskspace import DiskFullError, disk_full_message

    return DiskFullError(disk_full_message(folder, needed, "the export") + " Nothing was left at --out.")


def _files(folder: Path) -> list[dict[str, Any]]:
    return [
        {"path": str(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]


def gguf_file_mode(fmt: str, out: str | Path) -> bool:
    """`--format gguf --out NAME.gguf` writes that file (sidecars beside it); any other --out is a folder."""
    return fmt == "gguf" and Path(out).suffix.lower() == ".gguf"


def sidecar_paths(gguf_file: Path) -> dict[str, Path]:
    """Where the Modelfile, README and (with --keep-merged) merged folder of a file-mode GGUF export go."""
    stem = gguf_file.name[: -len(gguf_file.suffix)] if gguf_file.suffix else gguf_file.name
    return {
        "Modelfile": gguf_file.with_name(f"{stem}.Modelfile"),
        "README.md": gguf_file.with_name(f"{stem}.README.md"),
        "merged": gguf_file.with_name(f"{stem}.merged"),
        "unverified": gguf_file.with_name(f"{stem}.unverified.gguf"),
    }


def _prepare_out(out: Path, overwrite: bool, file_mode: bool = False) -> Path:
    out = out.expanduser().absolute()
    if file_mode:
        if out.is_dir():
            raise UserError(f"{out} is a folder; give a file name ending in .gguf or a folder name.")
        taken = [p for p in (out, *sidecar_paths(out).values()) if p.exists()]
        if taken and not overwrite:
            raise UserError(f"{taken[0]} already exists; choose another --out (or --overwrite).")
    elif out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out} already exists and is not empty; choose another --out (or --overwrite).")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    return out


def _remove_stale_partials(out: Path) -> None:
    """Temp folders of an earlier export to the same name whose process is gone (killed midway)."""
    import contextlib

    for folder in out.parent.glob(f".{out.name}.partial-*"):
        try:
            pid = int(folder.name.rsplit(".partial-", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            pass
        if not alive or pid == os.getpid():
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)


def _finish(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to its final name (an old export there is replaced only now)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time())}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _finish_file(tmp: Path, out: Path, gguf_name: str) -> list[Path]:
    """File mode: README and Modelfile beside the GGUF, the GGUF itself moved last (one atomic rename)."""
    places = sidecar_paths(out)
    moved: list[Path] = []
    for name in ("README.md", "Modelfile"):
        if (tmp / name).exists():
            os.replace(tmp / name, places[name])
            moved.append(places[name])
    if (tmp / "merged").is_dir():
        if places["merged"].exists():
            shutil.rmtree(places["merged"])
        (tmp / "merged").rename(places["merged"])
        moved.append(places["merged"])
    final = places["unverified"] if gguf_name.endswith(".unverified.gguf") else out
    other = out if final != out else places["unverified"]
    os.replace(tmp / gguf_name, final)
    other.unlink(missing_ok=True)  # an older export under the other name would contradict this one
    moved.insert(0, final)
    shutil.rmtree(tmp, ignore_errors=True)
    return moved


def _gguf_name(run: RunFolder, quant: str) -> str:
    base = run.base_model()
    stem = Path(base).name if ("/" in base or "\\" in base) else base
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "model"
    return f"{stem}-{run.path.name}-{quant}.gguf"


def _token_text(tokenizer: Any, token_id: int | None) -> str:
    if token_id is None:
        return ""
    return str(tokenizer.convert_ids_to_tokens(int(token_id)))


def check_gguf_support(run: RunFolder, quant: str, progress: ProgressFn = no_progress) -> tuple[Path, str]:
    """Before any loading or merging: the base model folder and the GGUF route ("writer" or "converter");
    a UserError that says what to do instead when the architecture cannot become a GGUF."""
    from core.export.llama_convert import CONVERTER_OUTTYPES, gguf_route
    from core.export.merge import base_model_dir

    base_dir = base_model_dir(run, progress=progress)
    route = gguf_route(base_dir)
    if route == "converter" and quant not in CONVERTER_OUTTYPES and not llama_cpp_available():
        raise UserError(
            f"{quant.upper()} for this architecture is made by llama.cpp's quantizer from llama-cpp-python, "
            f"which is not installed (`make llama-cpp`); {', '.join(q.upper() for q in CONVERTER_OUTTYPES)} "
            "work without it."
        )
    return base_dir, route


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
    """Export a run folder as `adapter`, `merged` or `gguf`.

    `out` is a folder (created), except `--format gguf` with `out` ending in `.gguf`: then that exact file is
    written, with `NAME.Modelfile` and `NAME.README.md` beside it. Everything is written to a temp folder
    beside `out` first and renamed into place at the end, so a killed export leaves nothing at `out`."""
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise UserError(f"Unknown format {fmt!r}; choose {', '.join(FORMATS)}.")
    run = RunFolder.open(run_dir)
    from core.export.adapter import require_adapter

    require_adapter(run)
    route = None
    base_dir = None
    if fmt == "gguf":
        quant = (quant or DEFAULT_QUANT).lower()
        if quant not in ALL_QUANTS:
            raise UserError(f"Unknown GGUF type {quant!r}; choose {', '.join(ALL_QUANTS)}.")
        if quant in K_QUANTS and not llama_cpp_available():
            raise UserError(LLAMA_CPP_MISSING)
        t0 = time.perf_counter()
        base_dir, route = check_gguf_support(run, quant, progress=sub_progress(progress, 0.0, 0.05))
        support_check_s = round(time.perf_counter() - t0, 3)
    elif quant:
        raise UserError("--quant applies to --format gguf only.")
    file_mode = gguf_file_mode(fmt, out)
    target = _prepare_out(Path(out), overwrite, file_mode)
    needed = 0
    save_dtype = "float32"
    if fmt != "adapter":
        from core.export.merge import base_model_dir, base_save_dtype, compute_dtype, pick_device

        if base_dir is None:
            base_dir = base_model_dir(run, progress=sub_progress(progress, 0.0, 0.05))
        device = pick_device(device)
        save_dtype = base_save_dtype(base_dir) or str(compute_dtype(device)).replace("torch.", "")
        needed = space_needed(fmt, parameter_count(base_dir), save_dtype, quant)
        check_disk_space(target.parent, needed)
    # Same filesystem as the target, so the final rename is atomic; the pid lets a later export remove it
    # when this process was killed midway.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))
    result = ExportResult(format=fmt, out_dir=str(target), quant=quant if fmt == "gguf" else None)
    if route is not None:
        result.timings["support_check"] = support_check_s
        result.gguf = {"route": route}
    try:
        if fmt == "adapter":
            from core.export.adapter import export_adapter

            export_adapter(run, tmp, progress=sub_progress(progress, 0.0, 0.95), should_stop=should_stop)
        else:
            assert base_dir is not None and device is not None
            _export_model(
                run, fmt, tmp, target, base_dir, save_dtype, route, quant, verify, device, keep_merged,
                file_mode, result, progress, should_stop,
            )  # fmt: skip
        check_stop(should_stop)
        if file_mode:
            written = _finish_file(tmp, target, str((result.gguf or {}).get("file") or target.name))
            result.out_dir = str(written[0])
            result.files = [{"path": str(p), "bytes": p.stat().st_size} for p in written if p.is_file()]
            for folder in (p for p in written if p.is_dir()):
                result.files.extend(_files(folder))
        else:
            _finish(tmp, target)
            result.files = _files(target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, WhetstoneError) and is_disk_full(exc):
            raise disk_full_error(target.parent, needed) from exc
        raise
    result.seconds = time.perf_counter() - started
    progress(1.0, "Done")
    return result


def _export_model(
    run: RunFolder,
    fmt: str,
    tmp: Path,
    target: Path,
    base_dir: Path,
    save_dtype: str,
    route: str | None,
    quant: str | None,
    verify: bool,
    device: str,
    keep_merged: bool,
    file_mode: bool,
    result: ExportResult,
    progress: ProgressFn,
    should_stop: StopFn | None,
) -> None:
    """Merge, save, (convert to GGUF) and verify into `tmp`."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.export import verify as V
    from core.export.adapter import model_card
    from core.export.merge import load_peft_model, load_tokenizer, merge_run

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress is reported; no tqdm bars on stderr
    except ImportError:  # pragma: no cover
        pass
    check_stop(should_stop)
    tokenizer = load_tokenizer(run, base_dir)
    prompts = V.adapt_prompts(tokenizer, V.sample_prompts(run, VERIFY_PROMPTS)) if verify else []
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
    merged_dir = tmp if fmt == "merged" else tmp / ".merged"
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
            progress(
                0.42, "Checking the merged model gives the same answers as the base model with the adapter"
            )
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
            gguf_name = target.name if file_mode else _gguf_name(run, quant)
            _write_gguf(
                run, merged_dir, tmp, gguf_name, route or "writer", quant, verify, prompts, ids_list,
                merged_logits, greedy, tokenizer, verification, result, card_extra, progress, should_stop,
            )  # fmt: skip
            if keep_merged:
                shutil.copytree(merged_dir, tmp / "merged")
        if verify:
            verification["passed"] = all(
                v.get("passed", True) for v in verification.values() if isinstance(v, dict)
            )
            result.verification = verification
            card_extra["verification"] = json.dumps(
                {k: _short(v) for k, v in verification.items() if isinstance(v, dict)}
            )
            if fmt == "gguf" and not verification["passed"]:
                _mark_unverified(tmp, gguf_name, target if file_mode else None, result, card_extra)
        card = model_card(run, fmt, card_extra)
        if fmt == "gguf":
            gguf_file = str((result.gguf or {}).get("file") or gguf_name)
            if file_mode:
                final_gguf = target.with_name(gguf_file)
                final_modelfile = sidecar_paths(target)["Modelfile"]
            else:
                final_gguf, final_modelfile = target / gguf_file, target / "Modelfile"
            card = card.rstrip("\n") + "\n\n" + _run_it(result, final_gguf, final_modelfile)
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


def _mark_unverified(
    tmp: Path, gguf_name: str, file_target: Path | None, result: ExportResult, card_extra: dict[str, Any]
) -> None:
    """A GGUF that failed verification is renamed NAME.unverified.gguf, so nobody takes it for a good one."""
    stem = gguf_name[: -len(".gguf")] if gguf_name.endswith(".gguf") else gguf_name
    new_name = f"{stem}.unverified.gguf"
    os.replace(tmp / gguf_name, tmp / new_name)
    modelfile = tmp / "Modelfile"
    if modelfile.exists():
        text = modelfile.read_text(encoding="utf-8").replace(f"FROM ./{gguf_name}", f"FROM ./{new_name}", 1)
        modelfile.write_text(text, encoding="utf-8")
    result.gguf = {**(result.gguf or {}), "file": new_name}
    card_extra["gguf"] = f"{new_name} (FAILED verification: do not use it as a good model)"
    final = file_target.with_name(new_name) if file_target is not None else new_name
    result.notes.insert(
        0, f"Verification failed: the GGUF was saved as {final} so it is not mistaken for a good model."
    )


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
    name: str,
    route: str,
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
    from core.export.gguf_writer import gguf_tensor_types, quantize_with_llama_cpp
    from core.export.modelfile import ollama_modelfile

    gguf_path = tmp / name
    t0 = time.perf_counter()
    label = f"{run.path.name} ({run.base_model()})"
    direct = _direct_types(route)
    if quant in direct:
        summary = _gguf_direct(route, merged_dir, gguf_path, quant, label, progress, should_stop)
    else:
        f16 = tmp / ".intermediate-f16.gguf"
        summary = _gguf_direct(route, merged_dir, f16, "f16", label, progress, should_stop)
        check_stop(should_stop)
        progress(0.72, f"Quantizing to {quant.upper()} with llama.cpp")
        try:
            quantize_with_llama_cpp(f16, gguf_path, quant)
        finally:
            f16.unlink(missing_ok=True)
        summary["bytes"] = gguf_path.stat().st_size
        summary["quantizer"] = "llama.cpp (llama_model_quantize)"
        summary["tensor_types"] = gguf_tensor_types(gguf_path)
        if quant in K_QUANTS:
            k_types = sum(n for t, n in summary["tensor_types"].items() if t.endswith("_K"))
            weights = sum(n for t, n in summary["tensor_types"].items() if t != "F32")
            if k_types < weights:
                summary.setdefault("notes", []).append(
                    f"{weights - k_types} of {weights} weight tensors use llama.cpp's fallback types "
                    "(their rows are not a multiple of 256, which K-quants need)"
                )
    result.notes.extend(summary.get("notes", []))
    result.timings["gguf_write"] = round(time.perf_counter() - t0, 2)
    result.gguf = {
        **(result.gguf or {}),
        "file": name,
        "writer": summary.get("writer"),
        **{k: summary.get(k) for k in ("architecture", "tokenizer", "special_tokens", "tensor_types")},
    }
    card_extra["gguf"] = name
    card_extra["gguf written by"] = summary.get("writer")
    card_extra["gguf tokenizer"] = summary["tokenizer"]
    check_stop(should_stop)
    if verify:
        progress(0.82, "Checking the GGUF reads back the same as the merged model")
        t0 = time.perf_counter()
        verification["gguf_transformers"] = V.verify_gguf_transformers(
            gguf_path, ids_list, merged_logits, quant, strict=route == "writer"
        )
        result.timings["verify_gguf_transformers"] = round(time.perf_counter() - t0, 2)
        check_stop(should_stop)
        if llama_cpp_available():
            progress(
                0.9, "Checking the GGUF answers the same in llama.cpp, with the chat template stored in it"
            )
            t0 = time.perf_counter()
            lc = V.verify_gguf_llama_cpp(
                gguf_path,
                prompts,
                V.prompt_texts(tokenizer, prompts),
                ids_list,
                greedy,
                GREEDY_TOKENS,
                reference_logits=merged_logits,
                quant=quant,
            )
            # The template round trip must be exact, and llama.cpp's logits on the merged model's tokens close
            # for the lossless types; greedy agreement is reported (quantization and near-ties move it).
            lc["passed"] = bool(
                lc["template_match"] and lc["tokens_match"] and (lc["logits"] or {}).get("passed", True)
            )
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


def _direct_types(route: str) -> tuple[str, ...]:
    """GGUF types the route writes itself; the others are made from its F16 by llama.cpp's quantizer."""
    from core.export.formats import NATIVE_QUANTS
    from core.export.llama_convert import CONVERTER_OUTTYPES

    return NATIVE_QUANTS if route == "writer" else CONVERTER_OUTTYPES


def _gguf_direct(
    route: str,
    merged_dir: Path,
    path: Path,
    quant: str,
    label: str,
    progress: ProgressFn,
    should_stop: StopFn | None,
) -> dict[str, Any]:
    if route == "writer":
        from core.export.gguf_writer import GgufExporter

        summary = GgufExporter(merged_dir, name=label).write(
            path, quant, sub_progress(progress, 0.5, 0.7), should_stop
        )
        summary["writer"] = "Whetstone GgufExporter (gguf-py)"
        return summary
    from core.export import llama_convert

    run = llama_convert.convert(
        merged_dir,
        path,
        quant,
        progress=sub_progress(progress, 0.5, 0.7),
        should_stop=should_stop,
        name=label,
    )
    summary = llama_convert.gguf_summary(path)
    summary["notes"] = run["notes"]
    summary["writer"] = f"llama.cpp convert_hf_to_gguf.py ({llama_convert.LLAMA_CPP_VERSION})"
    return summary


def cancelled_cleanly(exc: BaseException) -> bool:
    return isinstance(exc, Cancelled)


__all__ = ["export_run", "space_needed", "check_disk_space", "parameter_count", "WhetstoneError"]
