"""load_counter: a tokenizer load that a Cancel abandons at once (it goes on in the background and the next
call takes it over), its progress relayed by the waiting thread, and its errors passed on."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import core.data.tokens as tokens
from core.data.tokens import TokenCounter, load_counter, loads_running
from core.errors import Cancelled, UserError


@pytest.fixture(autouse=True)
def no_loads_left_over():
    yield
    with tokens._loads_lock:
        tokens._loads.clear()


class Blocking:
    """Stands in for TokenCounter.for_model: reports progress, then holds until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []
        self.result: Any = object()
        self.error: Exception | None = None

    def __call__(self, cls: type, model: str, progress: Any = None) -> Any:
        self.calls.append(model)
        if progress is not None:
            progress(0.05, "Converting m to safetensors (once)")
        self.entered.set()
        assert self.release.wait(60)
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> Blocking:
    fake = Blocking()
    monkeypatch.setattr(TokenCounter, "for_model", classmethod(fake))
    return fake


def test_cancel_returns_while_the_load_runs_and_the_next_call_takes_it_over(blocking: Blocking) -> None:
    seen: list[tuple[float, str]] = []

    def stop_once_loading() -> bool:
        return blocking.entered.is_set() and bool(seen)  # cancel as soon as the load has reported

    with pytest.raises(Cancelled):
        load_counter("m", lambda f, m: seen.append((f, m)), stop_once_loading, poll=0.01)
    assert seen == [(0.05, "Converting m to safetensors (once)")]  # relayed once
    assert not blocking.release.is_set() and loads_running() == 1  # it returned with the load still going
    blocking.release.set()
    assert load_counter("m", poll=0.01) is blocking.result
    assert blocking.calls == ["m"]  # taken over, not loaded twice
    assert loads_running() == 0
    load_counter("m", poll=0.01)  # once taken, a later call loads afresh
    assert blocking.calls == ["m", "m"]


def test_a_failed_load_raises_and_is_not_kept(blocking: Blocking) -> None:
    blocking.error = UserError("m has no chat template; choose an instruct/chat model.")
    blocking.release.set()
    with pytest.raises(UserError, match="no chat template"):
        load_counter("m", poll=0.01)
    blocking.error = None
    assert load_counter("m", poll=0.01) is blocking.result
    assert blocking.calls == ["m", "m"]
