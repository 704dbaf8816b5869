"""Offline guard: nothing Whetstone does may reach the network.

`enforce_offline()` sets the Hugging Face offline switches (it runs when `core` is imported, so before any
HF import). `block_sockets()` makes every outbound connection fail loudly; tests and audits turn it on with
`WHETSTONE_BLOCK_NETWORK=1`.
"""

from __future__ import annotations

import os
import socket
import sys

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}

BLOCKED_MARKER = "whetstone: network access blocked"
# Every connect the guard refused in this process (addresses as text); `whetstone doctor` reports them.
blocked_attempts: list[str] = []


class NetworkBlockedError(OSError):
    """Raised when code tries to open a network connection while the guard is on."""


def enforce_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    if os.environ.get("WHETSTONE_BLOCK_NETWORK") == "1":
        block_sockets()


def _is_local(address: object) -> bool:
    return isinstance(address, str | bytes)  # AF_UNIX paths


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def block_sockets() -> None:
    """Make any non-Unix-socket connect attempt raise and print a marker line on stderr."""

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family == getattr(socket, "AF_UNIX", None) or _is_local(address):
            return _original_connect(self, address)  # type: ignore[arg-type]
        blocked_attempts.append(repr(address))
        sys.stderr.write(f"{BLOCKED_MARKER}: connect to {address!r}\n")
        raise NetworkBlockedError(f"network access blocked: {address!r}")

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        guarded_connect(self, address)
        return 0

    guarded_connect.whetstone_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]


def sockets_blocked() -> bool:
    """Whether `block_sockets()` is in force in this process."""
    return bool(getattr(socket.socket.connect, "whetstone_guard", False))
