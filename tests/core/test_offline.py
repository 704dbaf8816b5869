from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from core.offline import BLOCKED_MARKER, OFFLINE_ENV


def test_core_import_sets_offline_env() -> None:
    import core  # noqa: F401

    for key, value in OFFLINE_ENV.items():
        assert os.environ[key] == value


def test_socket_guard_blocks_connect_attempts() -> None:
    script = (
        "import socket, core.offline as o; o.block_sockets()\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('127.0.0.1', 9))\nexcept OSError as e:\n    print('blocked', type(e).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "blocked NetworkBlockedError" in proc.stdout
    assert BLOCKED_MARKER in proc.stderr


def test_model_conversion_runs_with_sockets_blocked(smollm2_dir) -> None:
    # smollm2_dir was produced by `whetstone models prepare` under WHETSTONE_BLOCK_NETWORK=1;
    # run_cli fails the fixture if any connect was attempted.
    assert (smollm2_dir / "config.json").exists()
    assert list(smollm2_dir.glob("*.safetensors"))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template


@pytest.mark.parametrize("family", [socket.AF_INET])
def test_guard_allows_nothing_but_unix_sockets(family) -> None:
    script = (
        "import socket, core.offline as o; o.block_sockets()\n"
        f"s = socket.socket({int(family)}, socket.SOCK_STREAM)\n"
        "print(s.connect_ex(('10.255.255.1', 80)) if False else 'x')\n"
        "try:\n    s.connect_ex(('10.255.255.1', 80))\nexcept OSError:\n    print('blocked')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "blocked" in proc.stdout
