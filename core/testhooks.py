"""Pause points for crash tests: a test makes a child process stop at a named place and kills it there.

`pause_point("migration")` does nothing unless the environment names that point in WHETSTONE_TEST_PAUSE_AT;
then it creates the file named by WHETSTONE_TEST_PAUSE_FLAG (so the test knows the child got there) and
waits until it is killed, or until the test creates FLAG.continue. Only tests set these variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "WHETSTONE_TEST_PAUSE_AT"
PAUSE_FLAG = "WHETSTONE_TEST_PAUSE_FLAG"


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_AT) != name:
        return
    flag = os.environ.get(PAUSE_FLAG)
    if flag:
        Path(flag).write_text(str(os.getpid()), encoding="utf-8")
    go = Path(f"{flag}.continue") if flag else None
    while go is None or not go.exists():  # until the test kills this process, or lets it go on
        time.sleep(0.05)
