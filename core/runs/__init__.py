"""Runs: the one home of the run folder and everything that reads it.

A run is a folder under the runs folder (`runs_root`: the settings' runs_dir, else the app's data folder). The
worker (core/training) writes it; Train, Evaluate, Export, the CLI and the desktop read it, all through here:

- `RunFolder` (folder.py): the layout (config.yaml, dataset.jsonl, events.jsonl, summary.json, adapter/,
  checkpoints/, logs/, env.json, eval/, exports/), atomic event appends, the curve with resumed steps folded;
- `RunEvent` (events.py): the typed event, the one definition of the events.jsonl schema; `check_event` for
  the writer, `describe_event` for the CLI's progress lines;
- `run_summary`, `final_losses`, `list_runs`, `runs_root` (summary.py): status, steps and final losses by one
  rule, and the runs of a folder.

core.runs imports no other area of core (tests/test_import_contract.py): training, evaluation and export all
build on it.
"""

from core.runs.events import EVENT_FIELDS, EVENT_TYPES, RunEvent, check_event, describe_event
from core.runs.folder import FLAG_LABELS, RunFolder, flag_label, fold_resumed, sha256_file
from core.runs.summary import (
    checkpoint_info,
    final_losses,
    interrupted_message,
    list_runs,
    run_summary,
    runs_root,
    status_text,
    worker_died,
)

__all__ = [
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "FLAG_LABELS",
    "RunEvent",
    "RunFolder",
    "check_event",
    "checkpoint_info",
    "describe_event",
    "final_losses",
    "flag_label",
    "fold_resumed",
    "interrupted_message",
    "list_runs",
    "run_summary",
    "runs_root",
    "sha256_file",
    "status_text",
    "worker_died",
]
