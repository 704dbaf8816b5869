"""Real mouse-wheel turns (xdotool under Xvfb) over the Train form change no setting and scroll the page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_real_window import _start_xvfb

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_wheel_over_train_form_scrolls_and_changes_nothing() -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (make sysdeps installs it as root)")
    xvfb, display = _start_xvfb()
    try:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("wheel_probe.py"))],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        assert doc["unchanged"] is True  # the old form turned attention to flash_attention_2 here
        assert doc["preset"][0] == doc["preset"][1]  # and the preset to Custom
        assert all(step > 0 for step in doc["scrolled"])  # each turn scrolled the page instead
        assert doc["focused"][1] == doc["focused"][0] + 1  # a field the user clicked into takes the wheel
    finally:
        xvfb.kill()
        xvfb.wait()
