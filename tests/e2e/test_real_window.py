"""The app in a real X11 window under Xvfb: launch, screenshot, look at it (saved under tests/e2e/out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

OUT = Path(__file__).resolve().parent / "out"


def _start_xvfb():
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed and could not be installed (needs root + apt: make sysdeps)")
    for display in range(97, 120):
        if Path(f"/tmp/.X11-unix/X{display}").exists() or Path(f"/tmp/.X{display}-lock").exists():
            continue
        proc = subprocess.Popen(
            [xvfb, f":{display}", "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                return proc, f":{display}"
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.kill()
    pytest.fail("Xvfb did not start")


@pytest.mark.e2e
def test_main_window_screenshot_under_xvfb(tmp_path) -> None:
    xvfb, display = _start_xvfb()
    try:
        OUT.mkdir(exist_ok=True)
        shot = OUT / "main_window.png"
        shot.unlink(missing_ok=True)
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "WHETSTONE_BLOCK_NETWORK": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "core.cli", "gui", "--screenshot", str(shot)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        from PySide6.QtGui import QImage

        image = QImage(str(shot))
        assert image.width() >= 900 and image.height() >= 600
        # the navigation rail is dark, the page is light: a blank or black capture would fail this
        rail = image.pixelColor(40, image.height() // 2)
        page = image.pixelColor(image.width() - 40, image.height() // 2)
        assert rail.lightness() < 80 and page.lightness() > 180
    finally:
        xvfb.kill()
        xvfb.wait()
