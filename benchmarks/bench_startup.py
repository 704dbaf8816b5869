"""Start-up figures: `whetstone gui --screenshot` and `whetstone models list --json`, process start to exit.

Targets (2-core machine): screenshot <= 1.5 s, models list <= 1 s. Prints figures; never fails on time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(args: list[str], env: dict[str, str], repeat: int = 5) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core.cli", *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "WHETSTONE_HOME": home,
            "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        }
        shot = os.path.join(home, "shot.png")
        for name, args in [
            ("gui --screenshot", ["gui", "--screenshot", shot]),
            ("models list --json", ["models", "list", "--json"]),
        ]:
            t = timed(args, env)
            print(
                f"{name:22} median {statistics.median(t):.3f} s  min {min(t):.3f} s  max {max(t):.3f} s  (n={len(t)})"
            )


if __name__ == "__main__":
    main()
