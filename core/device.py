"""Compute device detection without importing torch (the window must open fast).

Uses `nvidia-smi` when present; torch-based detection lives with the trainer, which imports torch anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class ComputeDevice:
    kind: str  # "cuda" | "cpu"
    name: str
    total_gib: float = 0.0
    free_gib: float = 0.0

    def describe(self) -> str:
        if self.kind == "cuda":
            return f"GPU: {self.name} · {self.free_gib:.1f} of {self.total_gib:.1f} GiB free"
        return f"CPU: {self.name} (no NVIDIA GPU found: training runs slowly here)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


def list_gpus(timeout: float = 5.0) -> list[ComputeDevice]:
    """Every NVIDIA GPU nvidia-smi sees (honouring CUDA_VISIBLE_DEVICES when it lists indices), in index order."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    gpus: dict[str, ComputeDevice] = {}
    for line in out.splitlines():
        try:
            index, name, total, free = (part.strip() for part in line.split(","))
            gpus[index] = ComputeDevice("cuda", name, float(total) / 1024, float(free) / 1024)
        except ValueError:
            continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        if all(v.isdigit() for v in wanted):
            return [gpus[v] for v in wanted if v in gpus]
    return list(gpus.values())


def detect_device(timeout: float = 5.0) -> ComputeDevice:
    gpus = list_gpus(timeout)
    if gpus:
        return gpus[0]
    return ComputeDevice("cpu", _cpu_name())
