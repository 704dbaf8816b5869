"""What a look at every page in a real window found (issue 16 QA): labels cut off at 1280x800, internal file
names, an empty plot with a nonsense axis, a report button with nothing to report, and no key for each page's
main action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.data.mapping import ColumnMapping
from core.data.workspace import DatasetWorkspace
from core.settings import load_settings
from desktop.context import AppContext
from desktop.main_window import MainWindow
from desktop.pages.data import DataPage
from desktop.pages.dedup import DedupPage
from desktop.pages.evaluate import EvaluatePage
from tests.core.dedup_helpers import FakeEmbedder
from tests.core.test_data_mapping import write_csv

# a 1280x800 window less the 190 px navigation rail
PAGE_W, PAGE_H = 1090, 780


def _helpdesk_rows(n: int = 12) -> list[list[str]]:
    names = ["Anna", "Ben", "Chloé", "Dmitri", "Eva", "Farid"]
    kinds = [
        ("The mobile app crashes when I open the Files tab.", "Please update to version 4.2.1."),
        ("How do I export my invoices as PDF?", "Go to Billing > Invoices and click 'Download PDF'."),
    ]
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        question, answer = kinds[i % 2]
        rows.append(
            [
                f"T-{1000 + i}",
                f"Hi, {name} here (order #{4000 + 7 * i}). {question}",
                f"Hello {name}, {answer}",
            ]
        )
    return rows


@pytest.fixture
def helpdesk_workspace(tmp_path: Path):
    csv = write_csv(
        tmp_path / "helpdesk.csv", ["Ticket ID", "Customer question", "Agent answer"], _helpdesk_rows()
    )
    mapping = ColumnMapping.parse("prompt=Customer question,completion=Agent answer,id=Ticket ID")
    ws = DatasetWorkspace.create_from_file(csv, tmp_path / "helpdesk-266b7ad9c3.wsdb", mapping=mapping)
    yield ws
    ws.close()


def _show(qtbot, widget, w: int = PAGE_W, h: int = PAGE_H):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    with qtbot.waitActive(widget):
        widget.show()
        widget.activateWindow()
    return widget


def _search(qtbot, page: DedupPage) -> None:
    page.start()
    assert page.runner is not None
    with qtbot.waitSignal(page.runner.done, timeout=30000):
        pass
    qtbot.waitUntil(lambda: page.runner is None)


def test_duplicates_cluster_actions_show_whole_labels_and_say_what_they_move(
    qtbot, helpdesk_workspace
) -> None:
    ctx = AppContext()
    ctx.set_workspace(helpdesk_workspace.path, helpdesk_workspace)
    page = DedupPage(ctx)
    page.embedder_factory = lambda model: FakeEmbedder()
    _show(qtbot, page)
    # the file the user imported, not the internal workspace file
    assert page.subtitle.text() == "12 examples in helpdesk.csv"
    assert not page.progress.isVisible()  # no empty bar before the first search
    page.slider.setValue(850)
    _search(qtbot, page)
    assert page.progress.isVisible() and "Done" in page.progress.format()
    assert page.views, "the same two requests with other names cluster at 0.85"
    view = page.views[0]
    moved = len(view.rows) - 1
    assert f"keeping one moves {moved} to the bin" in page.cluster_title.text()
    assert f"move the other {moved} to the bin" in page.keep_longest_button.toolTip()
    qtbot.waitUntil(lambda: page.keep_longest_button.width() > 0)
    for button in (*page._decision_buttons, page.show_button):
        # at 1280x800 every label is whole (the "(N to the bin)" labels were cut: "eep longest (6 to the bi")
        assert button.width() >= button.sizeHint().width(), button.text()


def test_window_title_names_the_imported_file(qtbot, helpdesk_workspace) -> None:
    window = MainWindow(AppContext(load_settings()))
    qtbot.addWidget(window)
    window.ctx.set_workspace(helpdesk_workspace.path, helpdesk_workspace)
    assert window.windowTitle() == "Whetstone — helpdesk.csv"


def test_ctrl_enter_runs_the_main_action_of_the_page_on_screen_only(
    qtbot, helpdesk_workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop.pages.train import TrainPage

    trained: list[bool] = []
    monkeypatch.setattr(TrainPage, "start_training", lambda self: trained.append(True))
    window = MainWindow(AppContext(load_settings()))
    dedup = window.page("dedup")
    dedup.embedder_factory = lambda model: FakeEmbedder()
    train = window.page("train")
    window.ctx.set_workspace(helpdesk_workspace.path, helpdesk_workspace)
    _show(qtbot, window, 1280, 800)
    assert "(Ctrl+Enter)" in dedup.find_button.toolTip() and "(Ctrl+Enter)" in train.train_button.toolTip()

    window.show_page("dedup")
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert dedup.runner is not None, "Ctrl+Enter on Duplicates starts Find duplicates"
    assert trained == [], "the hidden Train page's Train button does not answer"
    with qtbot.waitSignal(dedup.runner.done, timeout=30000):
        pass
    qtbot.waitUntil(lambda: dedup.runner is None)

    window.show_page("train")
    qtbot.keyClick(window, Qt.Key.Key_Enter, Qt.KeyboardModifier.ControlModifier)  # the keypad's Enter
    assert trained == [True] and dedup.runner is None


def test_mapped_file_says_it_was_read_through_the_mapping_not_detected(qtbot, helpdesk_workspace) -> None:
    ctx = AppContext()
    page = DataPage(ctx)
    _show(qtbot, page)
    page.set_workspace(helpdesk_workspace)
    subtitle = page.subtitle.text()
    assert "read through your column mapping" in subtitle and "detected" not in subtitle
    assert "Question: Customer question, answer: Agent answer" in page.subtitle.toolTip()
    # the line fits beside the buttons of its row at 1280x800
    assert page.subtitle.width() >= page.subtitle.sizeHint().width()
    page.workspace = None  # the fixture closes it


def test_lengths_plot_before_counting_is_an_empty_frame_from_zero(qtbot) -> None:
    from desktop.widgets.data_panels import LengthHistogram

    histogram = _show(qtbot, LengthHistogram(), 500, 300)
    histogram.set_counts([], 2048)
    (x_lo, x_hi), _ = histogram.plot.getViewBox().viewRange()
    assert -100 < x_lo <= 0 and 2048 <= x_hi < 2200  # was -500..500 with "(x0.001)" on the axis
    assert "x0.001" not in histogram.plot.getAxis("bottom").labelString()
    histogram.set_counts([80, 90, 95, 108], 2048)
    (x_lo, _), _ = histogram.plot.getViewBox().viewRange()
    assert x_lo > 50


def test_bad_line_reasons_wrap_instead_of_running_off_the_panel(qtbot, tmp_path: Path) -> None:
    data = tmp_path / "mixed.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    alpaca = {"instruction": "Classify the ticket", "input": "My invoice is wrong", "output": "billing"}
    data.write_text("\n".join([json.dumps(good)] * 5 + [json.dumps(alpaca)]) + "\n", encoding="utf-8")
    workspace = DatasetWorkspace.create_from_file(data, tmp_path / "mixed.wsdb")
    page = DataPage(AppContext())
    _show(qtbot, page)
    page.set_workspace(workspace)
    page.tabs.setCurrentWidget(page.issues)
    listing = page.issues.list
    assert listing.count() == 1 and "mixed formats" in listing.item(0).text()
    qtbot.waitUntil(lambda: listing.viewport().width() > 0)
    assert listing.horizontalScrollBar().maximum() == 0
    assert listing.visualItemRect(listing.item(0)).width() <= listing.viewport().width()
    page.shutdown()
    workspace.close()


def test_save_report_waits_for_an_evaluation(qtbot, tmp_path: Path) -> None:
    from tests.desktop.test_evaluate_page import _fake_results

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    ctx = AppContext()
    page = EvaluatePage(ctx)
    _show(qtbot, page)
    ctx.set_run(run)
    assert page.body.currentWidget() is page.not_evaluated_state
    assert not page.report_button.isEnabled()  # it wrote a report of nothing
    _fake_results(run)
    ctx.set_run(run)
    assert page.report_button.isEnabled()
    page.shutdown()


def test_chat_box_keeps_its_own_ctrl_enter(qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Evaluate's Ctrl+Enter (Run evaluation) steps aside while the focus is in the Chat box, whose Ctrl+Enter
    sends the message: two live shortcuts on one key would make Qt run neither."""
    from desktop.widgets.eval_chat import ChatPanel
    from tests.desktop.test_evaluate_page import _fake_results

    sent: list[bool] = []
    evaluated: list[bool] = []
    monkeypatch.setattr(ChatPanel, "send", lambda self, text=None: sent.append(True) or True)
    monkeypatch.setattr(EvaluatePage, "start_evaluation", lambda self: evaluated.append(True))
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (run / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    _fake_results(run)
    ctx = AppContext()
    page = EvaluatePage(ctx)
    _show(qtbot, page)
    ctx.set_run(run)
    page.tabs.setCurrentWidget(page.chat)
    page.chat.input.setFocus()
    qtbot.waitUntil(page.chat.input.hasFocus)
    qtbot.keyClick(page.chat.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert (sent, evaluated) == ([True], [])
    page.run_combo.setFocus()  # anywhere else on the page, Ctrl+Enter runs the evaluation
    qtbot.waitUntil(page.run_combo.hasFocus)
    qtbot.keyClick(page.run_combo, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert (sent, evaluated) == ([True], [True])
    page.run_button.setFocus()  # the button itself too
    qtbot.keyClick(page.run_button, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert evaluated == [True, True]
    page.shutdown()


def test_export_result_with_details_open_scrolls_instead_of_squashing(qtbot, tmp_path: Path) -> None:
    """At 1280x800, unfolding 'Details' squeezed the Run it box until its rows overlapped (Copy buttons a few
    pixels high); the page now scrolls."""
    from core.export.formats import ExportResult
    from core.export.modelfile import run_commands
    from desktop.pages.export import ExportPage

    out = tmp_path / "gguf-q8_0"
    gguf = out / "tickets-q8_0.gguf"
    commands = run_commands(gguf, out / "Modelfile", "You triage tickets.")
    merged = {"max_abs_logit_delta": 6.9e-5, "top1_agreement": 1.0, "positions": 162, "passed": True}
    result = ExportResult(
        format="gguf",
        out_dir=str(out),
        quant="q8_0",
        files=[{"path": str(gguf), "bytes": 1000}, {"path": str(out / "Modelfile"), "bytes": 10}],
        verification={
            "merged": {**merged, "prompts": 4, "next_token_top1_agreement": 1.0},
            "gguf_transformers": {"skipped": "not needed for this test"},
            "llama_cpp": {"skipped": "llama.cpp is not installed"},
        },
        notes=["Ollama Modelfile: template translated (chatml)"],
        system_prompt={
            "text": "You triage tickets.",
            "sentence": "All 96 training rows used the same system prompt",
        },
        commands=[{"label": label, "command": command} for label, command in commands],
    )
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    page = ExportPage(AppContext(load_settings()))
    host = QWidget()  # the page's share of a 1280x800 window, which does not grow to fit it
    QVBoxLayout(host).addWidget(page)
    host.setFixedSize(PAGE_W, PAGE_H)
    _show(qtbot, host, PAGE_W, PAGE_H)
    page.stack.setCurrentIndex(1)
    page.show_result(result)
    page.details_button.setChecked(True)
    qtbot.waitUntil(lambda: page.checks_table.isVisible())
    box = page.run_commands
    widgets = (*box.fields, *box.copy_buttons, page.open_button)

    def whole() -> bool:
        return all(w.height() >= w.minimumSizeHint().height() for w in widgets)

    qtbot.waitUntil(whole, timeout=3000)  # squashed for good on the old page (fields 16 px of 22)


def test_train_run_line_shows_all_of_a_long_run_path(qtbot, tmp_path: Path) -> None:
    """'Finished · /home/.../runs/20261130-101500-ticket-triage · best checkpoint: step 2' was cut at the right
    edge of the 1280x800 window ('best checkpoint: step')."""
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from desktop.pages.train import TrainPage

    page = TrainPage(AppContext())
    host = QWidget()  # the page's share of a 1280x800 window, which does not grow to fit it
    QVBoxLayout(host).addWidget(page)
    host.setFixedSize(PAGE_W, PAGE_H)
    _show(qtbot, host, PAGE_W, PAGE_H)
    text = (
        f"Finished · {tmp_path}/whetstone/data/runs/20261130-101500-ticket-triage · best checkpoint: step 2"
    )
    page.run_label.setText(text)
    label = page.run_label

    def shown_whole() -> bool:
        if label.wordWrap():
            return 0 < label.heightForWidth(label.width()) <= label.height()
        return label.fontMetrics().horizontalAdvance(text) <= label.width()

    qtbot.waitUntil(shown_whole, timeout=3000)
    page.shutdown()


def test_a_run_without_an_adapter_cannot_be_evaluated_or_chatted_with(qtbot, tmp_path: Path) -> None:
    """A run interrupted before its first checkpoint is listed; Run evaluation and Chat were enabled and failed
    only after loading the model."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    ctx = AppContext()
    page = EvaluatePage(ctx)
    _show(qtbot, page)
    ctx.set_run(run)
    assert "no trained adapter yet" in page.status_label.text()
    assert not page.run_button.isEnabled() and not page.chat_button.isEnabled()
    assert page.not_evaluated_state.button is not None and not page.not_evaluated_state.button.isEnabled()
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    ctx.set_run(run)
    assert page.run_button.isEnabled() and page.chat_button.isEnabled()
    page.shutdown()


def test_export_form_is_locked_while_writing(qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The Save-to field was disabled during an export but its Browse… and Choose run… were not."""
    from desktop.pages.export import ExportPage

    page = ExportPage(AppContext(load_settings()))
    _show(qtbot, page)
    page.stack.setCurrentIndex(1)
    monkeypatch.setattr(ExportPage, "is_running", lambda self: True)
    page._update_enabled()
    assert not page.out_edit.isEnabled()
    assert not page.out_browse.isEnabled() and not page.choose_run_button.isEnabled()
    assert page.progress.isVisible()
    monkeypatch.setattr(ExportPage, "is_running", lambda self: False)
    page._update_enabled()
    assert page.out_browse.isEnabled() and page.choose_run_button.isEnabled()
    assert not page.progress.isVisible()  # no empty bar that looks like a text field


def test_evaluation_progress_reads_as_a_sentence(qtbot) -> None:
    page = EvaluatePage(AppContext())
    _show(qtbot, page)
    page._on_progress(0.3, "answering test prompt 3 of 10 with the tuned model (token 37 of at most 128)")
    assert page.status_label.text() == (
        "Answering test prompt 3 of 10 with the tuned model (token 37 of at most 128)"
    )
    assert page.progress.value() == 300
    page.shutdown()


def test_evaluated_date_reads_as_a_date() -> None:
    line = EvaluatePage._summary_line({"n": 2, "source": {"split": "test"}, "created": "2026-11-30T14:47:06"})
    assert line == "2 examples from the test split, evaluated 30 Nov 2026, 14:47."
    odd = EvaluatePage._summary_line({"n": 2, "source": {"split": "test"}, "created": "yesterday"})
    assert odd.endswith("evaluated yesterday.")
