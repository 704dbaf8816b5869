"""Duplicates page with pytest-qt: empty state, search off the UI thread with progress and cancel, live
threshold, side-by-side diff, keep one / keep all / not a duplicate, bulk keep-one, undo, leakage."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.data.workspace import DatasetWorkspace
from desktop.context import AppContext
from desktop.pages.dedup import DedupPage
from desktop.widgets.dedup_preview import RemovalPreviewDialog
from tests.core.dedup_helpers import FakeEmbedder

ROWS = [
    ("how do I reset my password today please", "use the reset link", "train"),  # 0
    ("How do I  reset my password today please", "use the reset link", "test"),  # 1 exact of 0 (leak)
    ("how do I reset my password today now please", "use the reset link", "train"),  # 2 near 0
    ("what is the refund policy for annual plans", "full refund within 30 days", "train"),  # 3
    ("the app crashes when I upload a photo from the gallery", "update to 4.2", "train"),  # 4
    ("the app crashes when I upload a photo from the gallery app", "update to 4.2", "validation"),  # 5
    ("totally unrelated sentence about cooking pasta at home", "boil water", "train"),  # 6
]


@pytest.fixture
def workspace(tmp_path: Path):
    data = tmp_path / "dups.jsonl"
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}], "split": s}
        )
        for u, a, s in ROWS
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = DatasetWorkspace.create_from_file(data, tmp_path / "dups.wsdb")
    yield ws
    ws.close()


def _page(qtbot, ctx: AppContext, embedder: FakeEmbedder | None = None) -> DedupPage:
    page = DedupPage(ctx)
    qtbot.addWidget(page)
    page.embedder_factory = lambda model: embedder or FakeEmbedder()
    page.resize(1200, 800)
    with qtbot.waitActive(page):
        page.show()
        page.activateWindow()
    return page


def _started(page: DedupPage):
    page.start()
    assert page.runner is not None
    return page.runner


def run_search(qtbot, page: DedupPage, timeout_ms: int = 30000) -> None:
    runner = _started(page)
    with qtbot.waitSignal(runner.done, timeout=timeout_ms):
        pass
    qtbot.waitUntil(lambda: page.runner is None)


def test_empty_state_without_workspace(qtbot) -> None:
    ctx = AppContext()
    page = _page(qtbot, ctx)
    assert page.stack.currentWidget() is page.empty
    assert "Open a dataset on the Data page first" in page.empty.findChildren(type(page.summary))[1].text()
    with qtbot.waitSignal(ctx.navigateRequested) as blocker:
        assert page.empty.button is not None
        page.empty.button.click()
    assert blocker.args == ["data"]


class Previews:
    """Removal previews the page opened (never shown); each is answered with `accept`."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str, str]] = []  # (title, headline, samples as text)
        self.accept = True


@pytest.fixture
def previews(monkeypatch: pytest.MonkeyPatch) -> Previews:
    seen = Previews()

    def fake_exec(dialog: RemovalPreviewDialog) -> int:
        seen.shown.append((dialog.windowTitle(), dialog.headline.text(), dialog.samples.toHtml()))
        code = RemovalPreviewDialog.DialogCode
        return code.Accepted if seen.accept else code.Rejected

    monkeypatch.setattr(RemovalPreviewDialog, "exec", fake_exec)
    return seen


def test_find_review_undo_and_leakage(qtbot, workspace: DatasetWorkspace, previews) -> None:
    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    embedder = FakeEmbedder()
    page = _page(qtbot, ctx, embedder)
    assert page.stack.currentWidget() is page.main
    page.slider.setValue(900)
    progress: list[str] = []
    runner = _started(page)
    runner.progressed.connect(lambda f, m: progress.append(m))
    assert not page.find_button.isEnabled() and page.cancel_button.isEnabled()
    with qtbot.waitSignal(runner.done, timeout=30000):
        pass
    qtbot.waitUntil(lambda: page.runner is None)
    assert progress  # throttled updates reached the bar
    # what was done, in plain words (it read "7 embedded at 7,000 rows/s · none cached")
    assert page.progress.format().startswith("Done in ") and " examples (" in page.progress.format()
    assert "embedded" not in page.progress.format() and "rows/s" not in page.progress.format()
    assert page.find_button.isEnabled() and not page.cancel_button.isEnabled()
    # clusters by size: {0,1,2} then {4,5}
    assert [v.rows for v in page.views] == [[0, 1, 2], [4, 5]]
    assert page.cluster_list.count() == 2
    assert "leakage" in page.cluster_list.item(0).text()
    assert "train and test" in page.leak_label.text()
    # side-by-side diff highlights the differing word
    page.cluster_list.setCurrentRow(1)
    assert page.left_box.currentData() == 4 and page.right_box.currentData() == 5
    assert "background:#d4f4dd" in page.diff.right.toHtml() or "#d4f4dd" in page.diff.right.toHtml()
    assert "app" in page.diff.right.toPlainText()

    # the slider re-clusters live without embedding again
    calls = len(embedder.calls)
    page.slider.setValue(1000)
    assert [v.rows for v in page.views] == [[0, 1]]
    page.slider.setValue(900)
    assert len(page.views) == 2 and len(embedder.calls) == calls

    # keep the longest of cluster 1 -> rows 0 and 1 go to the bin (row 2 is the longest)
    page.cluster_list.setCurrentRow(0)
    live_before = workspace.count()
    edited: list[str] = []
    ctx.workspaceEdited.connect(edited.append)
    page.keep_one("longest")
    assert workspace.count() == live_before - 2 and edited == ["dedup"]
    assert set(workspace.deleted_ids()) == {page.run.ids[0], page.run.ids[1]}
    assert [v.rows for v in page.views] == [[4, 5]]
    # Ctrl+Z restores them
    page.cluster_list.setFocus()
    qtbot.keyClick(page.cluster_list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert workspace.count() == live_before and workspace.deleted_ids() == []
    assert len(page.views) == 2
    page.undo_stack.redo()
    assert workspace.count() == live_before - 2
    page.undo_stack.undo()

    # bulk keep one per cluster ("longest"), then a chosen keeper
    page.bulk_button.click()
    ids = page.run.ids
    assert set(workspace.deleted_ids()) == {ids[0], ids[1], ids[4]}
    assert page.views == [] and "No duplicates" in page.cluster_title.text()
    page.undo_stack.undo()
    assert workspace.deleted_ids() == [] and len(page.views) == 2
    page.cluster_list.setCurrentRow(0)
    page.members.selectRow(1)
    page.keep_one("chosen")
    assert set(workspace.deleted_ids()) == {ids[0], ids[2]}
    page.undo_stack.undo()

    # keep all: nothing removed, leakage stays flagged, bulk leaves the cluster alone
    page.cluster_list.setCurrentRow(0)
    page.keep_all()
    assert workspace.count() == live_before
    assert "kept all" in page.cluster_list.item(0).text() and "leakage" in page.cluster_list.item(0).text()
    page.bulk_button.click()
    assert workspace.deleted_ids() == [ids[4]]
    page.undo_stack.undo()

    # not a duplicate: remembered across runs
    index = [v.rows for v in page.views].index([4, 5])
    page.cluster_list.setCurrentRow(index)
    page.not_duplicate()
    assert [v.rows for v in page.views] == [[0, 1, 2]]
    run_search(qtbot, page)
    assert [v.rows for v in page.views] == [[0, 1, 2]]
    assert workspace.deleted_ids() == []


def test_cancel_leaves_workspace_untouched(qtbot, workspace: DatasetWorkspace) -> None:
    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    release = threading.Event()

    class Slow(FakeEmbedder):
        def embed(self, texts, precision=None, progress=None, should_stop=None):
            while should_stop is not None and not should_stop():
                release.wait(0.01)
            return super().embed(texts, precision, progress, should_stop)

    page = _page(qtbot, ctx, Slow())
    runner = _started(page)
    with qtbot.waitSignal(runner.cancelled, timeout=30000):
        page.cancel_button.click()
    qtbot.waitUntil(lambda: page.runner is None)
    assert "Cancelled" in page.progress.format()
    assert page.run is None and workspace.deleted_ids() == []


def test_failure_is_one_line(qtbot, workspace: DatasetWorkspace, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    page = DedupPage(ctx)
    qtbot.addWidget(page)
    from core.errors import UserError

    def broken(model: str):
        raise UserError("Embedding model folder not found: /nowhere")

    page.embedder_factory = broken
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    run_search(qtbot, page)
    assert shown == ["Embedding model folder not found: /nowhere"]
    assert "Failed" in page.progress.format()


def test_removals_and_undo_wait_while_the_data_page_changes_rows(qtbot, workspace: DatasetWorkspace) -> None:
    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    page = _page(qtbot, ctx)
    page.slider.setValue(900)
    run_search(qtbot, page)
    page.cluster_list.setCurrentRow(0)
    page.keep_one("longest")  # something to undo
    live = workspace.count()
    assert page.undo_action.isEnabled()
    messages: list[str] = []
    ctx.statusMessage.connect(lambda text, _ms: messages.append(text))

    workspace._busy = "Assigning splits"  # as a BackgroundChange on the Data page sets it
    ctx.workspaceBusy.emit("Assigning splits…")
    assert not page.undo_action.isEnabled()
    page.cluster_list.setCurrentRow(0)
    page.keep_one("first")
    assert workspace.count() == live  # nothing removed, no traceback
    assert any("busy" in m for m in messages)

    workspace._busy = None
    ctx.workspaceBusy.emit("")
    assert page.undo_action.isEnabled()
    page.undo_stack.undo()
    assert workspace.count() > live


# --- a support team lead's data -----------------------------------------------------------------------------
def _support_workspace(tmp_path: Path, rows: list[dict], name: str) -> DatasetWorkspace:
    from tests.support_sets import write_jsonl

    data = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    return DatasetWorkspace.create_from_file(data, tmp_path / f"{name}.wsdb")


def test_large_removal_is_previewed_named_and_one_undo_restores_all(qtbot, tmp_path: Path, previews) -> None:
    from tests.support_sets import ticket_rows

    ws = _support_workspace(tmp_path, ticket_rows(), "tickets")  # 33 kinds x 9 customers = 297 rows
    try:
        ctx = AppContext()
        ctx.set_workspace(ws.path, ws)
        page = _page(qtbot, ctx)
        page.slider.setValue(850)
        run_search(qtbot, page)
        total = ws.count()
        assert total == 297
        clusters = len(page.views)
        would_go = sum(len(v.rows) - 1 for v in page.views)
        assert clusters >= 20 and would_go > 0.05 * total  # same request, other names: clustered
        # before anything moves, the page says how many rows each action would move
        pct = f"{100 * would_go / total:.0f}%"
        assert f"would move {would_go:,} of {total:,} examples ({pct})" in page.summary.text()
        assert page.bulk_button.text() == f"Keep one per cluster ({would_go:,} to the bin)"
        first = page.views[0]
        assert f"keeping one moves {len(first.rows) - 1} to the bin" in page.cluster_title.text()
        assert f"move the other {len(first.rows) - 1} to the bin" in page.keep_longest_button.toolTip()
        assert "Hello" in page.cluster_list.item(0).text() or "Hi" in page.cluster_list.item(0).text()

        # the bulk removal asks first, naming the number; cancelling moves nothing
        previews.accept = False
        page.bulk_button.click()
        assert len(previews.shown) == 1
        title, headline, samples = previews.shown[0]
        assert title == f"Move {would_go:,} examples to the bin?"
        assert f"would move {would_go:,} of {total:,} examples ({pct}) to the bin" in headline
        assert f"{clusters} clusters" in headline
        assert samples.count("Cluster #") == min(clusters, 60)
        assert "#d4f4dd" in samples and "#fbd5d5" in samples  # what differs (names, ticket numbers) marked
        assert ws.deleted_ids() == [] and page.undo_stack.count() == 0

        # accepting moves them all in ONE undo step; one undo restores every row
        previews.accept = True
        page.bulk_button.click()
        assert ws.count() == total - would_go and len(ws.deleted_ids()) == would_go
        assert page.undo_stack.count() == 1 and page.views == []
        page.undo_stack.undo()
        assert ws.count() == total and ws.deleted_ids() == []
        assert sum(len(v.rows) - 1 for v in page.views) == would_go
    finally:
        ws.close()


def test_small_removal_needs_no_confirmation_but_can_be_previewed(
    qtbot, workspace: DatasetWorkspace, previews
) -> None:
    from core.dedup.review import needs_confirmation

    assert not needs_confirmation(5, 100) and needs_confirmation(6, 100)
    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    page = _page(qtbot, ctx)
    assert not page.preview_button.isEnabled()
    page.slider.setValue(900)
    run_search(qtbot, page)
    # Preview… shows what the bulk action would move even when it would not ask; Cancel moves nothing
    previews.accept = False
    page.preview_button.click()
    assert len(previews.shown) == 1 and "would move 3 of 7 examples (43%)" in previews.shown[0][1]
    assert workspace.deleted_ids() == []
    page.cluster_list.setCurrentRow(0)
    page.keep_one("first")  # a cluster the user is looking at, 2 rows: no dialog
    assert len(previews.shown) == 1 and len(workspace.deleted_ids()) == 2


def test_page_says_what_is_compared(qtbot, workspace: DatasetWorkspace) -> None:
    ctx = AppContext()
    ctx.set_workspace(workspace.path, workspace)
    page = _page(qtbot, ctx)
    text = page.compare_label.text()
    assert "questions (user turns) and answers (assistant turns)" in text
    assert "share only a canned reply stay apart" in text and "system prompt is left out" in text
    assert "at least 0.950" in text
    page.role_boxes["user"].setChecked(False)
    assert "Answers alone" in page.compare_label.text()
    page.slider.setValue(900)
    assert "at least 0.900" in page.compare_label.text()


@pytest.mark.slow
def test_distinct_questions_sharing_a_macro_answer_stay_apart(qtbot, tmp_path: Path, previews) -> None:
    """The real embedding model (all-minilm-l6-v2): different questions answered with the same canned macro
    are not duplicates at the default threshold, when questions and answers are compared (the default)."""
    from tests.support_sets import macro_rows

    ws = _support_workspace(tmp_path, macro_rows(), "macros")
    try:
        ctx = AppContext()
        ctx.set_workspace(ws.path, ws)
        page = DedupPage(ctx)
        qtbot.addWidget(page)
        assert page.threshold() == 0.95 and page.roles() == ("user", "assistant")
        run_search(qtbot, page, timeout_ms=300_000)  # loads the model on a shared 2-core CPU
        assert page.views == [] and "No duplicates" in page.cluster_title.text()
        page.slider.setValue(850)  # even at the slider's lowest threshold
        assert page.views == []
        # comparing the answers alone groups them by macro, as the page's sentence warns
        page.role_boxes["user"].setChecked(False)
        assert "press Find duplicates" in page.compare_label.text()
        run_search(qtbot, page, timeout_ms=300_000)
        assert sorted(len(v.rows) for v in page.views) == [8, 8, 8]
        assert ws.deleted_ids() == []
    finally:
        ws.close()


def test_keeping_one_of_a_big_cluster_is_previewed_too(qtbot, tmp_path: Path, previews) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"my parcel {i} has not arrived yet"}, {"role": "assistant",
         "content": "it is on its way"}]}
        for i in range(14)
    ]  # fmt: skip
    others = [
        ("which apples bake best", "bramleys"),
        ("will it rain in Oslo tomorrow", "probably"),
        ("when are taxes due", "in April"),
        ("how many strings has a guitar", "six"),
        ("what fuels rockets", "kerosene and oxygen"),
        ("how long should green tea steep", "two minutes"),
        ("who invented chess", "nobody knows"),
        ("why is snow white", "scattered light"),
        ("what is ink made of", "pigment and binder"),
        ("does moss need sunlight", "a little shade"),
    ]
    rows += [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in others
    ]
    ws = _support_workspace(tmp_path, rows, "parcels")
    try:
        ctx = AppContext()
        ctx.set_workspace(ws.path, ws)
        page = _page(qtbot, ctx)
        page.slider.setValue(850)
        run_search(qtbot, page)
        assert [len(v.rows) for v in page.views] == [14]
        previews.accept = False
        page.keep_one("first")  # 13 of 24 rows: asked first
        assert len(previews.shown) == 1 and "would move 13 of 24 examples (54%)" in previews.shown[0][1]
        assert ws.deleted_ids() == []
        previews.accept = True
        page.keep_one("first")
        assert len(ws.deleted_ids()) == 13 and page.undo_stack.count() == 1
    finally:
        ws.close()
