"""Data page: a helpdesk CSV with its own columns opens a column mapping dialog with a proposal and a live
preview; importing through it gives the examples, and the mapping is remembered for the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.context import AppContext
from desktop.pages.data import DataPage
from desktop.widgets.column_mapping import ColumnMappingDialog
from tests.core.test_data_mapping import SYSTEM, write_csv


@pytest.fixture
def helpdesk(tmp_path: Path) -> Path:
    rows = [
        [f"T-{100 + i}", f"Customer {i}: where is my parcel?", f"Hi {i}, it left today."] for i in range(12)
    ]
    rows.append(["T-999", "A question nobody answered", ""])
    return write_csv(tmp_path / "helpdesk.csv", ["Ticket ID", "Customer question", "Agent answer"], rows)


class Dialogs:
    """Mapping dialogs the page opened (never shown): `answer(dialog)` sets them up and says accept or not."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.answer = lambda dialog: True


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> Dialogs:
    record = Dialogs()

    def fake_exec(dialog: ColumnMappingDialog) -> int:
        record.seen.append(
            {
                "mapping": dialog.mapping(),
                "status": dialog.status.text(),
                "rows": dialog.preview.rowCount(),
                "first": dialog.preview.item(0, 1).text() if dialog.preview.rowCount() else "",
                "import": dialog.import_button.isEnabled(),
            }
        )
        code = ColumnMappingDialog.DialogCode
        return code.Accepted if record.answer(dialog) else code.Rejected

    monkeypatch.setattr(ColumnMappingDialog, "exec", fake_exec)
    return record


def _open(qtbot, ctx: AppContext, path: Path) -> DataPage:
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(path))
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)
    return page


def test_helpdesk_csv_is_mapped_previewed_imported_and_remembered(qtbot, helpdesk: Path, dialogs) -> None:
    ctx = AppContext()
    page = _open(qtbot, ctx, helpdesk)
    assert len(dialogs.seen) == 1
    seen = dialogs.seen[0]
    mapping = seen["mapping"]
    assert (mapping.prompt, mapping.completion, mapping.id) == (
        "Customer question",
        "Agent answer",
        "Ticket ID",
    )
    assert seen["import"] and seen["rows"] == 12
    assert seen["first"].startswith("User: Customer 0: where is my parcel?\nAssistant: Hi 0, it left today.")
    assert "(id T-100)" in seen["first"]
    assert "12 examples" in seen["status"] and "line 14: the 'Agent answer' cell is empty" in seen["status"]
    ws = page.workspace
    assert ws is not None and ws.count() == 12
    assert ws.get(ws.ids()[0]).id == "T-100"
    assert [b.line for b in ws.bad_lines()] == [14]
    assert page.model.total() == 12
    assert ctx.settings.extra["column_maps"][str(helpdesk.resolve())] == mapping.to_text()

    # Format > Map columns… offers the remembered mapping again; Cancel changes nothing
    dialogs.answer = lambda dialog: False
    page.map_columns()
    assert dialogs.seen[-1]["mapping"] == mapping
    assert page.workspace is ws and ws.count() == 12


def test_the_user_can_change_the_proposal_and_multi_turn_previews(qtbot, tmp_path: Path, dialogs) -> None:
    path = write_csv(
        tmp_path / "chats.csv",
        ["thread", "instructions", "text in", "text out"],
        [
            ["a", SYSTEM, "Hi, my order is late", "Sorry! What is your order number?"],
            ["b", SYSTEM, "Do you ship to Canada?", "Yes, in 5-7 days."],
            ["a", "", "It is 4411", "Thanks, it ships tomorrow."],
        ],
    )

    def choose(dialog: ColumnMappingDialog) -> bool:
        dialog.set_column("system", None)
        assert dialog.mapping() is not None
        dialog.set_column("prompt", None)
        assert not dialog.import_button.isEnabled() and "question column" in dialog.status.text()
        dialog.set_column("prompt", "text in")
        dialog.set_column("completion", "text out")
        dialog.set_column("system", "instructions")
        dialog.set_column("conversation", "thread")
        assert "2 examples (1 with several turns)" in dialog.status.text()
        assert dialog.preview.item(0, 1).text().splitlines()[:3] == [
            f"System: {SYSTEM}",
            "User: Hi, my order is late",
            "Assistant: Sorry! What is your order number?",
        ]
        return True

    dialogs.answer = choose
    page = _open(qtbot, AppContext(), path)
    ws = page.workspace
    assert ws is not None and ws.count() == 2
    first = ws.get(ws.ids()[0])
    assert [m.role for m in first.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ws.meta("mapping") == "prompt=text in,completion=text out,system=instructions,conversation=thread"


def test_cancelled_mapping_keeps_the_unreadable_import(qtbot, helpdesk: Path, dialogs) -> None:
    dialogs.answer = lambda dialog: False
    page = _open(qtbot, AppContext(), helpdesk)
    assert page.workspace is not None and page.workspace.count() == 0
    assert len(page.workspace.bad_lines()) == 13  # every row listed under Issues, nothing dropped


def test_known_formats_open_without_a_dialog(qtbot, sample_data: Path, dialogs) -> None:
    page = _open(qtbot, AppContext(), sample_data)
    assert dialogs.seen == [] and page.workspace is not None and page.workspace.count() == 120
