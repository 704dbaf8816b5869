"""The run folder: the contract between Train, Evaluate and Export, and between GUI and CLI.

RUN_DIR/
  config.yaml        resolved training config
  dataset.jsonl      the exact snapshot trained on (messages records); dataset.sha256 beside it
  events.jsonl       one JSON event per line (schema: core.runs.events.RunEvent)
  summary.json       written by the worker when it ends: status, steps, final losses, best checkpoint, flags
  worker.pid         while a worker trains the run; control.json: a Stop request
  checkpoints/       trainer checkpoints
  adapter/           the final PEFT adapter
  logs/              worker stdout/stderr, full tracebacks
  env.json           versions, GPU
  eval/              evaluation results (Evaluate)
  exports/           exported models (Export)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.errors import UserError
from core.runs.events import check_event

# red flags ("flag" on log events, "flags" in summary.json) in words for the run summary
FLAG_LABELS = {
    "overfitting": "overfitting",
    "nan": "loss became NaN",
    "exploding": "loss exploding",
    "length_drift": "answer length drifting",
}


def flag_label(flag: str) -> str:
    return FLAG_LABELS.get(flag, flag.replace("_", " "))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def open(cls, path: str | Path, must_exist: bool = True) -> RunFolder:
        folder = Path(path).expanduser()
        if must_exist and not (folder / "config.yaml").exists():
            raise UserError(f"{folder} is not a run folder (no config.yaml).")
        return cls(folder)

    # paths ------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def dataset_file(self) -> Path:
        return self.path / "dataset.jsonl"

    @property
    def dataset_sha_file(self) -> Path:
        return self.path / "dataset.sha256"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def env_file(self) -> Path:
        return self.path / "env.json"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def exports_dir(self) -> Path:
        return self.path / "exports"

    @property
    def control_file(self) -> Path:
        """Written by the GUI/CLI to ask the worker to stop ({"action": "stop"})."""
        return self.path / "control.json"

    def ensure(self) -> RunFolder:
        for d in (self.path, self.checkpoints_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # config -----------------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        import yaml

        try:
            data = yaml.safe_load(self.config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"Cannot read {self.config_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise UserError(f"{self.config_file} is not a mapping.")
        return data

    def base_model(self) -> str:
        """The base model id or path the run was trained from (`model.name` in config.yaml)."""
        model = self.read_config().get("model") or {}
        name = model.get("name") if isinstance(model, dict) else None
        if not name:
            raise UserError(f"{self.config_file} names no base model (model.name).")
        return str(name)

    # dataset ----------------------------------------------------------------------------------------
    def dataset_sha256(self) -> str | None:
        if self.dataset_sha_file.exists():
            return self.dataset_sha_file.read_text(encoding="utf-8").split()[0]
        return None

    def dataset_records(self) -> list[dict[str, Any]]:
        """Snapshot rows: {"messages": [...], "split": "train"|"validation"|"test", "id": ...}."""
        rows = []
        with open(self.dataset_file, "rb") as handle:
            for line in handle:
                if line.strip():
                    rows.append(orjson.loads(line))
        return rows

    # events -----------------------------------------------------------------------------------------
    def append_event(self, event: dict[str, Any]) -> None:
        """Append one event (and fsync). An event that breaks the schema (core.runs.events) is refused with a
        ValueError: a writer's bug, which the tests that train for real catch, never a reader's surprise."""
        problems = check_event(event)
        if problems:
            raise ValueError(f"Not a run event ({'; '.join(problems)}): {event!r:.300}")
        line = orjson.dumps(event) + b"\n"
        with open(self.events_file, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events from byte `offset`; returns (events, new offset). A partial last line is left for later."""
        if not self.events_file.exists():
            return [], offset
        with open(self.events_file, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        events = []
        consumed = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            consumed += len(line)
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return events, offset + consumed

    def write_env(self, env: dict[str, Any]) -> None:
        self.env_file.write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")

    # --- additions for the Train page and CLI (worker liveness, summary, curve) -------------------------
    @property
    def pid_file(self) -> Path:
        """Written by the worker while it runs: {"pid", "started"}."""
        return self.path / "worker.pid"

    @property
    def summary_file(self) -> Path:
        """Written by the worker when it ends: status, steps, final losses, best checkpoint, red flags."""
        return self.path / "summary.json"

    def write_summary(self, data: dict[str, Any]) -> None:
        """Update summary.json (atomically) with `data`; keys it does not give keep their earlier value."""
        from core.atomic import atomic_write_text

        atomic_write_text(self.summary_file, json.dumps({**self.read_summary(), **data}, indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        try:
            data = json.loads(self.summary_file.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def worker_pid(self) -> int | None:
        """The pid of a worker process still training this run, else None."""
        try:
            pid = int(json.loads(self.pid_file.read_text(encoding="utf-8"))["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            try:
                os.kill(pid, 0)
            except OSError:
                return None
            return pid
        if b"core.training.worker" not in cmdline:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            pass
        return pid

    def is_running(self) -> bool:
        return self.worker_pid() is not None

    def request_stop(self) -> None:
        """Ask the worker to save a checkpoint at the next step and exit."""
        from core.atomic import atomic_write_text

        atomic_write_text(self.control_file, json.dumps({"action": "stop"}) + "\n")

    def last_checkpoint(self) -> Path | None:
        if not self.checkpoints_dir.is_dir():
            return None
        found = []
        for child in self.checkpoints_dir.iterdir():
            if child.is_dir() and child.name.startswith("checkpoint-"):
                try:
                    found.append((int(child.name.split("-")[1]), child))
                except ValueError:
                    continue
        return max(found)[1] if found else None

    def curve(self) -> list[dict[str, Any]]:
        """All events in order, with the steps a resume re-ran replaced by their re-run."""
        return fold_resumed(self.read_events()[0])

    def samples(self) -> list[dict[str, Any]]:
        """The sample answers of each evaluation, oldest first: the "log" events that carry "samples" (a list of
        {id, prompt, context_turns, reference, answer, tokens, reference_tokens, hit_max}) and "sample_stats"
        ({max_new_tokens, mean_tokens, reference_mean_tokens, hit_max, drift, seconds}); one per step."""
        by_step: dict[int, dict[str, Any]] = {}
        for event in self.curve():
            if event.get("type") == "log" and isinstance(event.get("samples"), list):
                by_step[int(event.get("step") or 0)] = event
        return [by_step[k] for k in sorted(by_step)]

    def latest_samples(self) -> dict[str, Any] | None:
        found = self.samples()
        return found[-1] if found else None


def fold_resumed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A resume starts again at its checkpoint's step: drop earlier step/eval events (and sample answers) after
    that step."""
    out: list[dict[str, Any]] = []
    for event in events:
        if event.get("type") == "log" and event.get("resumed_from") is not None:
            start = int(event["resumed_from"])
            out = [e for e in out if not _rerun(e) or int(e.get("step") or 0) <= start]
        out.append(event)
    return out


def _rerun(event: dict[str, Any]) -> bool:
    return event.get("type") in ("step", "eval") or (event.get("type") == "log" and "samples" in event)
