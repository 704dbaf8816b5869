"""The run folder: the contract between Train, Evaluate and Export, and between GUI and CLI.

RUN_DIR/
  config.yaml        resolved training config
  dataset.jsonl      the exact snapshot trained on (messages records); dataset.sha256 beside it
  events.jsonl       one JSON event per line (schema: EVENT_FIELDS)
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

EVENT_TYPES = ("step", "eval", "log", "checkpoint", "done", "error")
EVENT_FIELDS = (
    "type",
    "step",
    "epoch",
    "loss",
    "eval_loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "vram_gib",
    "eta_s",
    "message",
)


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
