"""Evaluate page: results table, sorting, click-through, blind review (keys 1-4, no labels), report, and a
real evaluation off the UI thread with progress and cancel (tiny model)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QPlainTextEdit

from core.settings import Settings
from desktop.context import AppContext
from desktop.pages.evaluate import EvaluatePage


def _fake_results(run: Path, n: int = 6) -> list[dict]:
    """Write eval/results.json + examples.jsonl as evaluate_run would (no model needed)."""
    rows = []
    for i in range(n):
        base_f1 = 0.2 * (i % 3)
        tuned_f1 = [1.0, 0.0, 0.5, 0.9, 0.1, 0.6][i % 6]
        rows.append(
            {
                "id": f"ex{i}",
                "prompt": f"Ticket number {i}",
                "messages": [{"role": "user", "content": f"Ticket number {i}"}],
                "reference": '{"category": "billing"}',
                "base": f"PKANSWER{i}",
                "tuned": f"ZQANSWER{i}",
                "base_hit_max_tokens": False,
                "tuned_hit_max_tokens": i == 1,
                "base_scores": {"exact_match": 0.0, "token_f1": base_f1},
                "tuned_scores": {"exact_match": float(tuned_f1 == 1.0), "token_f1": tuned_f1},
            }
        )
    summary = {
        "n": n,
        "base": {"exact_match": 0.0, "token_f1": 0.2},
        "tuned": {"exact_match": 1 / 6, "token_f1": 0.52},
        "delta": {"exact_match": {"value": 1 / 6, "ci_low": 0.0, "ci_high": 0.5, "n": n}},
        "ci_level": 0.95,
        "source": {"split": "test"},
        "warnings": ["1 tuned answer stopped at the limit"],
        "cache_key": "abc",
        "partial": False,
        "decoding": {"max_new_tokens": 32},
        "base_model": "tiny",
    }
    (run / "eval").mkdir(parents=True, exist_ok=True)
    (run / "eval" / "examples.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    (run / "eval" / "results.json").write_bytes(orjson.dumps(summary))
    return rows


@pytest.fixture
def fake_results_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    (run / "events.jsonl").write_text(
        '{"type": "step", "step": 1, "loss": 2.0}\n{"type": "step", "step": 2, "loss": 1.0}\n'
    )
    _fake_results(run)
    return run


def _page(qtbot, run: Path | None = None, reviewer: str = "alice") -> EvaluatePage:
    ctx = AppContext(Settings(reviewer_name=reviewer))
    page = EvaluatePage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    page.activateWindow()
    qtbot.waitUntil(page.isActiveWindow, timeout=5000)  # keyboard shortcuts need an active window
    if run is not None:
        ctx.set_run(run)
    return page


def test_results_table_sorts_by_improvement_and_regression(qtbot, fake_results_run: Path) -> None:
    page = _page(qtbot, fake_results_run)
    assert page.summary_table.rowCount() == 2
    table = page.examples_table
    assert table.model().rowCount() == 6
    page.sort_combo.setCurrentIndex(0)  # improvement
    deltas = [
        table.row_data(r)["tuned_scores"]["token_f1"] - table.row_data(r)["base_scores"]["token_f1"]
        for r in range(6)
    ]
    assert deltas == sorted(deltas, reverse=True)
    assert table.example_id_at(0) == "ex0"
    page.sort_combo.setCurrentIndex(1)  # regression
    assert table.example_id_at(0) == "ex1"  # 0.0 - 0.2: the most negative delta
    page.metric_combo.setCurrentIndex(page.metric_combo.findData("exact_match"))
    page.sort_combo.setCurrentIndex(0)
    assert table.example_id_at(0) == "ex0"  # the only exact-match improvement
    assert "stopped at the limit" in page.warnings_label.text()
    assert "[cut off]" in str(
        table.model().index(next(r for r in range(6) if table.example_id_at(r) == "ex1"), 4).data()
    )


def test_double_click_opens_example_on_data_page(qtbot, fake_results_run: Path) -> None:
    page = _page(qtbot, fake_results_run)
    page.sort_combo.setCurrentIndex(2)  # test order
    shown: list[str] = []
    navigated: list[str] = []
    page.ctx.showExampleRequested.connect(shown.append)
    page.ctx.navigateRequested.connect(navigated.append)
    index = page.examples_table.model().index(2, 1)
    page.examples_table.doubleClicked.emit(index)
    assert shown == ["ex2"] and navigated == ["data"]


def _visible_texts(widget) -> str:
    texts = []
    for child in widget.findChildren(QLabel):
        texts.append(child.text())
    for child in widget.findChildren(QAbstractButton):
        texts.append(child.text())
        texts.append(child.toolTip())
    for child in widget.findChildren(QPlainTextEdit):
        texts.append(child.toPlainText())
    for child in widget.findChildren(QLineEdit):
        texts.append(child.text())
        texts.append(child.placeholderText())
    return "\n".join(texts)


def test_blind_review_hides_sides_votes_with_keys_and_persists(qtbot, fake_results_run: Path) -> None:
    page = _page(qtbot, fake_results_run)
    page.tabs.setCurrentWidget(page.review)
    review = page.review
    assert review.reviewer() == "alice"
    shown = _visible_texts(review)
    assert "tuned" not in shown.lower() and "base" not in shown.lower()
    # The answers (PK... = base, ZQ... = tuned) are on screen, but nothing says which is which.
    a, b = review.answer_a.toPlainText(), review.answer_b.toPlainText()
    assert {a[:5], b[:5]} == {"PKANS", "ZQANS"}
    # No widget attribute of the review UI holds a side assignment.
    assert not any("tuned_side" in name for name in vars(review))

    # Vote on every item with keys, tuned always better, via the answer text.
    review.setFocus()
    for _ in range(6):
        key = Qt.Key.Key_1 if review.answer_a.toPlainText().startswith("ZQ") else Qt.Key.Key_2
        review.note_edit.setText("")
        qtbot.keyClick(review, key)
    assert review.progress_bar.value() == 6 and review.progress_bar.maximum() == 6
    results = page.session.results()
    assert results.overall.tuned == 6 and results.overall.win_rate == 1.0
    assert "100%" in page.review_results.headline.text()
    assert "p = 0.0312" in page.review_results.headline.text()

    # Keys 3 and 4 with a note re-vote the current item.
    review.go(0)
    review.note_edit.setText("both wrong category")
    qtbot.keyClick(review, Qt.Key.Key_4)
    votes = page.session.votes("alice")
    assert sorted(v.vote for v in votes.values()).count("both_bad") == 1
    assert any(v.note == "both wrong category" for v in votes.values())
    # Typing a digit into the note does not vote.
    review.go(1)
    review.note_edit.setFocus()
    before = dict(page.session.votes("alice"))
    qtbot.keyClick(review.note_edit, Qt.Key.Key_3)
    assert review.note_edit.text() == "3"
    assert page.session.votes("alice") == before

    # Votes persist: a new page on the same run sees them, and a second reviewer's agreement shows.
    page2 = _page(qtbot, fake_results_run, reviewer="bob")
    assert page2.session is not None and page2.session.id == page.session.id
    assert len(page2.session.votes("alice")) == 6
    page2.review.cast("tie")
    assert page2.review_results.agreement_table.rowCount() == 1
    page.shutdown()
    page2.shutdown()


def test_vote_without_reviewer_name_asks_for_it(qtbot, fake_results_run: Path) -> None:
    page = _page(qtbot, fake_results_run, reviewer="")
    messages: list[str] = []
    page.review.message.connect(messages.append)
    assert not page.review.cast("A")
    assert messages and "name" in messages[0]
    page.shutdown()


def test_save_html_report(qtbot, fake_results_run: Path, tmp_path: Path) -> None:
    page = _page(qtbot, fake_results_run)
    page.review.cast("A")
    out = page.save_report(tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")
    assert "<svg" in text and "polyline" in text
    assert "Exact match" in text and "Blind review" in text
    assert "src=" not in text and "<script" not in text  # self-contained
    page.shutdown()


def test_run_evaluation_off_the_ui_thread(qtbot, fake_run_dir: Path) -> None:
    page = _page(qtbot, fake_run_dir)
    assert "Not evaluated" in page.status_label.text()
    page.limit_spin.setValue(4)
    page.max_tokens_spin.setValue(6)
    page.general_check.setChecked(True)  # opt-in on a CPU
    with qtbot.waitSignal(page.evaluationFinished, timeout=240000):
        page.start_evaluation()
        assert page.cancel_button.isEnabled() and not page.run_button.isEnabled()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=10000)
    assert page.examples_table.model().rowCount() == 4
    assert page.summary_table.rowCount() >= 5
    assert page.run_button.isEnabled()
    assert page.forgetting_table.rowCount() == 20
    assert page.session is not None and len(page.review._items) == 4


def test_cancel_stops_the_job_and_says_so(qtbot, fake_run_dir: Path) -> None:
    page = _page(qtbot, fake_run_dir)
    page.max_tokens_spin.setValue(4)
    page.start_evaluation()
    assert page.runner is not None
    with qtbot.waitSignal(page.runner.done, timeout=240000):
        page.cancel_evaluation()
    assert "Cancel" in page.status_label.text()
    assert page.run_button.isEnabled() and not page.cancel_button.isEnabled()


def test_votes_go_to_the_open_workspace(qtbot, fake_results_run: Path, tmp_path: Path) -> None:
    import sqlite3

    class Workspace:
        def __init__(self, path: Path) -> None:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    page = _page(qtbot, fake_results_run)
    workspace = Workspace(tmp_path / "ws.wsdb")
    page.ctx.set_workspace(tmp_path / "ws.wsdb", workspace)
    assert page.review.cast("tie")
    rows = workspace.conn.execute("SELECT reviewer, vote FROM review_votes").fetchall()
    assert rows == [("alice", "tie")]
    page.shutdown()
    workspace.conn.close()


def test_empty_states_guide_the_user(qtbot, fake_run_dir: Path) -> None:
    page = _page(qtbot)
    assert page.body.currentWidget() is page.no_run_state
    assert not page.run_button.isEnabled()
    page.ctx.set_run(fake_run_dir)
    assert page.body.currentWidget() is page.not_evaluated_state
    assert page.run_button.isEnabled()


def test_quick_mode_by_default_on_a_cpu(qtbot, fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import desktop.pages.evaluate as E

    monkeypatch.setattr(E, "_has_gpu", lambda: False)
    page = _page(qtbot, fake_run_dir)
    assert not page.perplexity_check.isChecked() and not page.general_check.isChecked()
    assert page.options().with_extras_resolved().quick
    page.general_check.setChecked(True)
    assert page.options().forgetting is True and page.options().perplexity is False
    monkeypatch.setattr(E, "_has_gpu", lambda: True)
    gpu_page = _page(qtbot, fake_run_dir)
    assert gpu_page.perplexity_check.isChecked() and gpu_page.general_check.isChecked()
    page.shutdown()
    gpu_page.shutdown()


def test_chat_answers_with_both_models(qtbot, fake_run_dir: Path) -> None:
    """The Chat tab streams an answer from the base and from the tuned model to the same message, with the
    training rows' system prompt; Stop ends an answer and the panel can chat again."""
    page = _page(qtbot, fake_run_dir)
    assert page.body.currentWidget() is page.not_evaluated_state
    page.chat_button.click()
    assert page.body.currentWidget() is page.tabs and page.tabs.currentWidget() is page.chat
    chat = page.chat
    rows = [orjson.loads(line) for line in (fake_run_dir / "dataset.jsonl").read_bytes().splitlines()]
    trained_system = rows[0]["messages"][0]
    assert trained_system["role"] == "system" and chat.system_edit.text() == trained_system["content"]
    chat.max_tokens_spin.setValue(8)
    chat.input.setPlainText("Ticket: my invoice is wrong")
    pieces: list[tuple[str, str]] = []
    chat.streamed.connect(lambda side, text: pieces.append((side, text)))
    with qtbot.waitSignal(chat.replyFinished, timeout=240000):
        assert chat.send()
        assert chat.stop_button.isEnabled() and not chat.send_button.isEnabled()
    streamed = {side: "".join(text for s, text in pieces if s == side) for side in ("base", "tuned")}
    assert streamed["base"] and streamed["tuned"]  # streamed piece by piece, both models
    assert streamed["base"] != streamed["tuned"]  # the adapter changes the answer
    for side in ("base", "tuned"):
        conv = chat.conversations[side]
        assert [m["role"] for m in conv] == ["system", "user", "assistant"]
        assert conv[0]["content"] == trained_system["content"]
        assert conv[2]["content"] == streamed[side].strip()  # what was shown is what the model keeps
        assert "Ticket: my invoice is wrong" in chat.transcript(side)
        assert " ".join(conv[2]["content"].split()) in " ".join(chat.transcript(side).split())
    assert chat.send_button.isEnabled() and not chat.stop_button.isEnabled()

    # Stop at the first streamed piece: the cut exchange is dropped from both conversations
    chat.max_tokens_spin.setValue(400)
    chat.streamed.connect(lambda *_: chat.stop())
    with qtbot.waitSignal(chat.replyFinished, timeout=240000):
        assert chat.send("And my second question?")
    assert "Stopped" in chat.status_label.text()
    assert [len(chat.conversations[s]) for s in ("base", "tuned")] == [3, 3]
    assert "(stopped)" in chat.transcript("base")
    page.shutdown()
    assert chat.models is None and not chat.is_running()


def test_quit_while_evaluating_asks_then_cancels(
    qtbot, fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMessageBox

    from core.settings import load_settings
    from desktop.main_window import MainWindow

    window = MainWindow(AppContext(load_settings()))
    qtbot.addWidget(window)
    window.show()
    window.show_page("evaluate")
    page = window.page("evaluate")
    assert isinstance(page, EvaluatePage)
    page.set_run(str(fake_run_dir))
    page.max_tokens_spin.setValue(4000)  # the random model would write for a long time
    page.start_evaluation()
    qtbot.waitUntil(lambda: "answering" in page.status_label.text().lower(), timeout=240000)
    quit_action = next(a for a in window.findChildren(QAction) if a.text() == "&Quit")
    assert quit_action.shortcut().toString() == "Ctrl+Q"
    asked: list[str] = []

    def answer(choice):  # noqa: ANN001, ANN202
        def question(_parent, title, text, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            asked.append(text)
            return choice

        return question

    try:
        monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
        quit_action.trigger()
        assert window.isVisible() and page.is_running()  # "No": nothing changes
        monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
        quit_action.trigger()
        assert len(asked) == 2 and "evaluation is still running" in asked[0]
        assert not window.isVisible() and not page.is_running()  # cancelled within a token, then closed
    finally:
        if page.runner is not None:  # never leave the job (or a real dialog at teardown) behind
            page.runner.cancel()
            page.runner.wait(120000)


def test_cut_off_warning_names_the_page_setting_not_the_cli_flag(qtbot, fake_results_run: Path) -> None:
    from core.evaluation.evaluate import _max_tokens_warning

    rows = [
        orjson.loads(line)
        for line in (fake_results_run / "eval" / "examples.jsonl").read_bytes().splitlines()
    ]
    warning = _max_tokens_warning(rows, 32)
    assert warning is not None and "--max-new-tokens" in warning  # the CLI keeps its wording
    summary = orjson.loads((fake_results_run / "eval" / "results.json").read_bytes())
    summary["warnings"] = [warning]
    (fake_results_run / "eval" / "results.json").write_bytes(orjson.dumps(summary))
    page = _page(qtbot, fake_results_run)
    text = page.warnings_label.text()
    assert "stopped at the limit of 32 new tokens" in text and "(Max new tokens)" in text
    assert "--max-new-tokens" not in text and "command line" not in text
    page.shutdown()


def test_answer_detail_pane_hints_until_a_row_is_chosen(qtbot, fake_results_run: Path) -> None:
    page = _page(qtbot, fake_results_run)
    assert page.detail.toPlainText() == ""
    assert page.detail.placeholderText() == "Click a row to see the prompt, the reference and both answers."
    page.examples_table.selectRow(0)
    assert "Reference" in page.detail.toPlainText()  # the hint gives way to the example
    page.shutdown()


class _SlowChatModels:
    """Stands in for core.evaluation.chat.ChatModels: each answer waits until the test releases it."""

    release = None  # a threading.Event, set by the test

    def __init__(self, run_dir: Path) -> None:
        self.last_hit_max_tokens = False

    def reply(self, messages, side, settings, on_text, should_stop=None) -> str:  # noqa: ANN001
        assert self.release is not None and self.release.wait(30)
        on_text("an answer")
        return "an answer"

    def close(self) -> None:
        pass


def test_chat_and_evaluation_never_load_the_models_at_once(
    qtbot, fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the chat answers, Run evaluation is off (with the reason); while an evaluation runs, the chat's Send
    is off and the page says it is evaluating instead of 'Not evaluated yet'."""
    import threading

    import core.evaluation.chat as chat_module
    import core.evaluation.evaluate as evaluate_module

    release = threading.Event()
    monkeypatch.setattr(_SlowChatModels, "release", release)
    monkeypatch.setattr(chat_module, "ChatModels", _SlowChatModels)
    page = _page(qtbot, fake_run_dir)
    run_button = page.run_button
    empty_button = page.not_evaluated_state.button
    assert run_button.isEnabled() and empty_button is not None and empty_button.isEnabled()
    with qtbot.waitSignal(page.chat.replyFinished, timeout=30000):
        assert page.chat.send("hello")
        assert not run_button.isEnabled() and not empty_button.isEnabled()
        assert "chat" in run_button.toolTip() and "chat" in empty_button.toolTip()
        page.start_evaluation()  # the shortcut or a queued click does nothing either
        assert page.runner is None
        release.set()
    assert run_button.isEnabled() and run_button.toolTip() == ""

    def slow_eval(run_dir, options, *, progress, should_stop):  # noqa: ANN001, ANN202
        progress(0.1, "the base model is answering 1 of 4")
        while not should_stop():
            threading.Event().wait(0.01)
        from core.errors import Cancelled

        raise Cancelled("cancelled")

    monkeypatch.setattr(evaluate_module, "evaluate_run", slow_eval)
    assert page.body.currentWidget() is page.not_evaluated_state
    assert page.not_evaluated_state.heading.text() == "Not evaluated yet"
    page.start_evaluation()
    assert page.runner is not None
    assert page.not_evaluated_state.heading.text() == "Evaluating…"
    assert "Not evaluated" not in page.not_evaluated_state.body.text()
    send = page.chat.send_button
    assert not send.isEnabled() and "evaluation" in send.toolTip()
    assert not page.chat.send("hello again")
    with qtbot.waitSignal(page.runner.done, timeout=30000):
        page.cancel_evaluation()
    assert send.isEnabled() and send.toolTip() == ""
    assert page.not_evaluated_state.heading.text() == "Not evaluated yet"
    page.shutdown()


def test_chat_marks_an_answer_cut_at_the_token_limit(
    qtbot, fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real models at a 3-token limit stop mid-answer: each column says so in plain words, and the mark is
    not part of the conversation the model sees next."""
    page = _page(qtbot, fake_run_dir)
    chat = page.chat
    chat.max_tokens_spin.setValue(3)
    with qtbot.waitSignal(chat.replyFinished, timeout=240000):
        assert chat.send("Ticket: my invoice is wrong")
    assert chat.models is not None and chat.models.last_hit_max_tokens
    mark = "(stopped at the 3-token limit; raise Max new tokens for longer answers)"
    for side in ("base", "tuned"):
        assert mark in chat.transcript(side)
        assert "token limit" not in chat.conversations[side][-1]["content"]
    page.shutdown()


def test_chat_leaves_a_finished_answer_unmarked(
    qtbot, fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import core.evaluation.chat as chat_module

    release = threading.Event()
    release.set()
    monkeypatch.setattr(_SlowChatModels, "release", release)
    monkeypatch.setattr(chat_module, "ChatModels", _SlowChatModels)  # answers end by themselves
    page = _page(qtbot, fake_run_dir)
    with qtbot.waitSignal(page.chat.replyFinished, timeout=30000):
        assert page.chat.send("hello")
    for side in ("base", "tuned"):
        assert "an answer" in page.chat.transcript(side) and "token limit" not in page.chat.transcript(side)
    page.shutdown()
