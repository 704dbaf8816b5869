"""Data page, Count tokens as one job: the bar says what it is doing (loading the tokenizer, then "Counting
tokens: N of M"), Cancel ends it promptly whether the tokenizer is loading or rows are being counted, a
cancelled count leaves the previous counts, rows edited while counting get counts from their new text, and
the page stays usable meanwhile."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import core.data.tokens as tokens
from core.data.tokens import TokenCounter
from desktop.context import AppContext
from desktop.pages.data import DataPage

ROWS = 3000


@pytest.fixture
def big(tmp_path: Path, sample_data: Path) -> Path:
    """A few thousand rows: the sample set's conversations, each question made distinct."""
    rows = [json.loads(line) for line in sample_data.read_text(encoding="utf-8").splitlines()]
    out = []
    for i in range(ROWS):
        row = json.loads(json.dumps(rows[i % len(rows)]))
        for message in row["messages"]:
            if message["role"] == "user":
                message["content"] = f"{message['content']} (ticket {i})"
                break
        out.append(json.dumps(row))
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def real(smollm2_dir: Path) -> TokenCounter:
    return TokenCounter.for_model(str(smollm2_dir))


@pytest.fixture(autouse=True)
def no_loads_left_over():
    yield
    with tokens._loads_lock:
        tokens._loads.clear()  # an abandoned load's counter must not reach another test


def _page(qtbot, path: Path, model: str) -> DataPage:
    ctx = AppContext()
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.show()
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=60000):
        ctx.openWorkspaceRequested.emit(str(path))
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)
    page.model_combo.insertItem(0, model, model)
    page.model_combo.setCurrentIndex(0)
    page.tabs.setCurrentWidget(page.lengths)
    return page


def _expected(page: DataPage, counter: TokenCounter) -> dict[str, int]:
    ws = page.workspace
    assert ws is not None
    ids = ws.ids()
    return dict(zip(ids, counter.count([e.messages_dicts() for e in ws.get_many(ids)]), strict=True))


def _stored(page: DataPage) -> dict[str, int | None]:
    ws = page.workspace
    assert ws is not None
    return {i: ws.summary(i).tokens for i in ws.ids()}


def _count(qtbot, page: DataPage) -> None:
    page.count_button.click()
    job = page._count_job
    assert job is not None
    if job.is_running():
        with qtbot.waitSignal(job.done, timeout=120000):
            pass
    qtbot.waitUntil(lambda: page._count_job is None and not page._jobs, timeout=60000)


class Gated:
    """A counter that counts like `inner` but, in its second call (the second slice of rows), holds until
    the job is cancelled or the test lets it `go`: the test acts while a count is under way."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.reached = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name: str) -> Any:  # preview() and the rest: the real counter's
        return getattr(self.inner, name)

    def count(self, conversations: Any, progress: Any = None, should_stop: Any = None, **_: Any) -> list[int]:
        self.calls += 1
        out = self.inner.count(conversations, should_stop=should_stop)
        if self.calls == 1:
            # A laptop's pace: the first slice takes longer than the page's 50 ms progress throttle, so its
            # "N of M" is shown rather than dropped as too soon after "Counting tokens…" (worker thread).
            threading.Event().wait(0.1)
        if self.calls == 2:
            self.reached.set()
            while not self.go.wait(0.005) and not (should_stop is not None and should_stop()):
                pass
        return out


def test_cancel_while_the_tokenizer_loads_then_count(
    qtbot, big: Path, smollm2_dir: Path, real: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = str(smollm2_dir)
    entered, release = threading.Event(), threading.Event()
    loads: list[str] = []

    def slow_load(cls: type, name: str, progress: Any = None) -> TokenCounter:
        loads.append(name)
        entered.set()
        release.wait(120)  # a laptop importing transformers, until the test lets it finish
        return real

    monkeypatch.setattr(TokenCounter, "for_model", classmethod(slow_load))
    page = _page(qtbot, big, model)
    page.count_button.click()
    qtbot.waitUntil(entered.is_set, timeout=10000)
    qtbot.waitUntil(lambda: page.job_label.text() == f"Loading the tokenizer of {model}…", timeout=10000)
    assert page.job_bar.maximum() == 0  # busy: no fraction is known while it loads
    assert page.job_cancel.isVisibleTo(page) and not page.count_button.isEnabled()
    assert page.table.isEnabled() and page.search.isEnabled()  # the page stays usable
    if os.environ.get("WHETSTONE_SCREENSHOTS"):
        page.grab().save(str(Path(os.environ["WHETSTONE_SCREENSHOTS"]) / "data-count-loading.png"))
    job = page._count_job
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=5000):  # does not wait for the load
        page.job_cancel.click()
    assert not release.is_set()  # the load was still running when the job ended
    assert page._count_job is None and page.counter is None and page.count_button.isEnabled()
    assert not page.job_row.isVisibleTo(page)
    assert all(n is None for n in _stored(page).values())  # nothing written
    release.set()
    qtbot.waitUntil(lambda: tokens.loads_running() == 0, timeout=10000)
    # Count again: the abandoned load is taken over, not started twice, and the counts are right.
    _count(qtbot, page)
    assert loads == [model]
    assert page.counter is real
    assert _stored(page) == _expected(page, real)


def test_cancel_while_counting_keeps_the_previous_counts(
    qtbot, big: Path, smollm2_dir: Path, real: TokenCounter
) -> None:
    model = str(smollm2_dir)
    page = _page(qtbot, big, model)
    page.counter, page._counter_model = real, model  # loaded earlier
    _count(qtbot, page)
    before = _stored(page)
    assert before == _expected(page, real)

    gated = Gated(real)
    page.counter = gated
    page.count_button.click()
    qtbot.waitUntil(gated.reached.is_set, timeout=60000)
    qtbot.waitUntil(lambda: page.job_bar.format() == f"Counting tokens: 2,048 of {ROWS:,}", timeout=10000)
    # counting fills the first 60% of the bar (the template probe the rest)
    assert page.job_bar.maximum() == 1000 and page.job_bar.value() == int(0.6 * 2048 / ROWS * 1000)
    assert page.job_label.text() == f"Token counts ({model})"
    if os.environ.get("WHETSTONE_SCREENSHOTS"):
        page.grab().save(str(Path(os.environ["WHETSTONE_SCREENSHOTS"]) / "data-count-counting.png"))
    # The page stays usable: a row is edited while the count runs.
    ws = page.workspace
    assert ws is not None
    first = ws.ids()[0]
    page.select_row(0)
    example = ws.get(first)
    example.messages[-1].content = "A much longer answer, written while the tokens were being counted. " * 3
    page.save_example(example)
    assert ws.get(first).messages[-1].content == example.messages[-1].content
    job = page._count_job
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=5000):
        page.job_cancel.click()
    qtbot.waitUntil(lambda: page._count_job is None, timeout=5000)
    after = _stored(page)
    assert {i: n for i, n in after.items() if i != first} == {i: n for i, n in before.items() if i != first}
    assert after[first] == real.count([example.messages_dicts()])[0]  # counted again from its new text
    assert after[first] != before[first]
    assert page.count_button.isEnabled() and not page.job_row.isVisibleTo(page)


def test_a_row_edited_during_a_count_gets_its_new_count(
    qtbot, big: Path, smollm2_dir: Path, real: TokenCounter
) -> None:
    model = str(smollm2_dir)
    page = _page(qtbot, big, model)
    gated = Gated(real)
    page.counter, page._counter_model = gated, model
    page.count_button.click()
    qtbot.waitUntil(gated.reached.is_set, timeout=60000)  # the first slice (row 0 among it) is counted
    ws = page.workspace
    assert ws is not None
    first = ws.ids()[0]
    example = ws.get(first)
    example.messages[-1].content = "Changed while counting: " + "a longer reply " * 10
    page.select_row(0)
    page.save_example(example)
    job = page._count_job
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=60000):
        gated.go.set()
    qtbot.waitUntil(lambda: page._count_job is None, timeout=5000)
    assert _stored(page) == _expected(page, real)  # row 0 from its new text, not the one read before
    assert ws.meta("token_model") == model
