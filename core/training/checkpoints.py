"""Atomic checkpoints: a checkpoint appears in RUN_DIR/checkpoints/ only once it is complete.

The Trainer writes `checkpoint-N/` file by file (adapter, optimizer, scheduler, RNG state, trainer state); a
kill -9, an OOM kill or a power cut in the middle would leave a folder that looks like the newest checkpoint
but cannot be resumed from. So the Trainer writes it into `checkpoints/.incomplete/checkpoint-N/`; when it is
done every file is fsynced and the folder is renamed into `checkpoints/` (a rename within one file system is
atomic), then the folder entry is fsynced. `RunFolder.last_checkpoint()` only looks at `checkpoints/`, so the
previous checkpoint stays the one Resume uses until the new one is whole. Leftovers of an interrupted write
are removed when the next worker starts.

A full disk while writing a checkpoint: the partial copy is removed, the earlier checkpoints are untouched, and
the run fails with one line naming the folder and the space a checkpoint needs. Before each save the free
space is checked against the size of the previous checkpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from core.diskspace import DiskFullError, check_space, disk_full_message, is_disk_full, tree_size
from core.testhooks import pause_point

STAGING = ".incomplete"


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staged: Path, target: Path) -> None:
    """Move a complete checkpoint folder into place atomically (replacing an older one of the same step)."""
    _fsync_tree(staged)
    old = None
    if target.exists():  # the same step saved again (a resume that re-ran it): swap, then drop the old one
        old = staged.with_name(staged.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staged, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _wait_for_everyone(trainer: Any) -> None:
    """accelerate's barrier across the processes of a multi-GPU run (nothing for one process)."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and accelerator.num_processes > 1:
        accelerator.wait_for_everyone()


def install_atomic_checkpoints(trainer: Any) -> None:
    """Make `trainer` (a transformers Trainer) write each checkpoint aside and rename it into place."""
    original_save = trainer._save_checkpoint
    original_optimizer = trainer._save_optimizer_and_scheduler
    output = Path(trainer.args.output_dir)
    staging = output / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # what a killed worker left half-written

    def previous_size() -> int:
        found = sorted(
            (p for p in output.glob("checkpoint-*") if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        return tree_size(found[-1]) if found else 0

    def save_optimizer(folder: str) -> None:
        # Between the adapter and the optimizer state: the middle of a checkpoint write, for crash tests.
        pause_point(f"checkpoint-write-{trainer.state.global_step}")
        original_optimizer(folder)

    def save_checkpoint(model: Any, trial: Any) -> None:
        name = f"checkpoint-{trainer.state.global_step}"
        run_dir = Path(trainer._get_output_dir(trial=trial))
        pause_point(f"checkpoint-start-{trainer.state.global_step}")  # crash and full-disk tests
        needed = previous_size()
        if needed:
            check_space(run_dir, needed, "a checkpoint")
        staged_root = run_dir / STAGING
        staged = staged_root / name
        # Several processes (multi-GPU) all write into the staged folder (each its RNG state; with a model
        # split across GPUs each its share of the optimizer): the main one prepares and publishes it, each
        # step only once every process is done with the one before.
        main = bool(getattr(trainer.args, "should_save", True))
        if main:
            shutil.rmtree(staged, ignore_errors=True)
            staged_root.mkdir(parents=True, exist_ok=True)
        _wait_for_everyone(trainer)
        trainer._get_output_dir = lambda trial=None: str(staged_root)
        try:
            original_save(model, trial)
            _wait_for_everyone(trainer)
            if main:
                publish(staged, run_dir / name)
            _wait_for_everyone(trainer)
        except BaseException as exc:
            shutil.rmtree(staged, ignore_errors=True)
            if is_disk_full(exc):
                raise DiskFullError(disk_full_message(run_dir, needed or None, "a checkpoint")) from exc
            raise
        finally:
            del trainer._get_output_dir  # back to the class's method
        best = getattr(trainer.state, "best_global_step", None)
        if best and (run_dir / f"checkpoint-{best}").exists():
            trainer.state.best_model_checkpoint = str(run_dir / f"checkpoint-{best}")

    trainer._save_checkpoint = save_checkpoint
    trainer._save_optimizer_and_scheduler = save_optimizer
