"""Train page, Samples tab: each validation prompt with its reference and the model's answer, for the latest
validation (or an earlier one), live from events and from a finished run folder; empty states; the length
red flag in the run summary. No training needed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from core import paths
from core.runs import RunEvent, RunFolder
from desktop.context import AppContext
from desktop.pages.train import TrainPage
from desktop.widgets.train_samples import OFF_TEXT, WAITING_TEXT, SamplesPanel


def _samples_event(step: int, answer: str, drift: str | None = None) -> dict:
    samples = [
        {
            "id": "ex1",
            "prompt": "Ticket: my invoice is wrong <b>twice</b>",
            "context_turns": 1,
            "reference": '{"category": "billing"}',
            "answer": answer,
            "tokens": 9 if drift is None else 64,
            "reference_tokens": 8,
            "hit_max": drift == "rambling",
        },
        {
            "id": "ex7",
            "prompt": "Ticket: the app crashes on start",
            "context_turns": 0,
            "reference": '{"category": "technical"}',
            "answer": f"second answer at {step}",
            "tokens": 5,
            "reference_tokens": 8,
            "hit_max": False,
        },
    ]
    stats = {
        "max_new_tokens": 64,
        "mean_tokens": 7.0,
        "reference_mean_tokens": 8.0,
        "hit_max": int(drift == "rambling"),
        "drift": drift,
        "seconds": 0.4,
    }
    return {
        "type": "log",
        "step": step,
        "message": f"Sample answers at step {step}: they average 7 tokens, the reference answers 8 (Samples tab).",
        "samples": samples,
        "sample_stats": stats,
    }


def _finished_run(sample_prompts: int = 2) -> Path:
    run = RunFolder(paths.runs_dir() / "20990101-000000-tiny").ensure()
    run.config_file.write_text(
        f"model: {{name: tiny}}\nquant: {{mode: none}}\ntrain: {{max_steps: 4, sample_prompts: {sample_prompts}}}\n"
    )
    events = [
        {"type": "step", "step": 2, "loss": 2.0, "max_steps": 4},
        {"type": "eval", "step": 2, "eval_loss": 1.9, "best": True},
        _samples_event(2, '{"category": "tech'),
        {"type": "step", "step": 4, "loss": 1.5, "max_steps": 4},
        {"type": "eval", "step": 4, "eval_loss": 1.7, "best": True},
        _samples_event(4, "It is billing, billing, billing", drift="rambling"),
        {"type": "log", "step": 4, "flag": "length_drift", "message": "The model is not ending its answers."},
        {"type": "done", "step": 4, "status": "finished", "message": "Finished at step 4."},
    ]
    run.events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    run.summary_file.write_text(
        '{"status": "finished", "steps": 4, "final_loss": 1.5, "final_eval_loss": 1.7, "flags": ["length_drift"]}'
    )
    return run.path


def test_panel_shows_prompt_reference_and_answer_and_follows_the_latest(qtbot) -> None:  # type: ignore[no-untyped-def]
    panel = SamplesPanel()
    qtbot.addWidget(panel)
    assert panel.stack.currentWidget() is panel.empty and panel.empty_text.text() == WAITING_TEXT
    panel.reset(enabled=False)
    assert panel.empty_text.text() == OFF_TEXT

    first = _samples_event(2, '{"category": "tech')
    panel.add(2, first["samples"], first["sample_stats"])
    assert panel.stack.currentIndex() == 1 and panel.current_step() == 2
    text = panel.view.toPlainText()
    for piece in (
        "Ticket: my invoice is wrong <b>twice</b>",  # shown as text, not markup
        '{"category": "billing"}',
        '{"category": "tech',
        "Model's answer at step 2",
        "(after 1 earlier message)",
        "second answer at 2",
    ):
        assert piece in text
    assert panel.view.isReadOnly()
    assert "7 tokens" in panel.stats_label.text() and "⚠" not in panel.stats_label.text()

    second = _samples_event(4, "billing billing billing", drift="rambling")
    panel.add(4, second["samples"], second["sample_stats"])
    assert panel.current_step() == 4 and "billing billing billing" in panel.view.toPlainText()
    assert "answers do not end" in panel.stats_label.text()
    assert "(64 tokens) did not end: cut off" in panel.view.toPlainText()
    assert [panel.step_combo.itemText(i) for i in range(2)] == ["step 2", "step 4 (latest)"]

    panel.step_combo.setCurrentIndex(
        0
    )  # reading an earlier validation: a new one does not pull the view away
    assert "Model's answer at step 2" in panel.view.toPlainText()
    third = _samples_event(6, "third")
    panel.add(6, third["samples"], third["sample_stats"])
    assert panel.current_step() == 2 and panel.step_combo.count() == 3


@pytest.fixture
def page(qtbot) -> TrainPage:  # type: ignore[no-untyped-def]
    p = TrainPage(AppContext())
    qtbot.addWidget(p)
    return p


def test_samples_tab_updates_live_from_worker_events(page: TrainPage) -> None:
    tab = page.tabs.indexOf(page.samples)
    assert page.tabs.tabText(tab) == "Samples"
    assert page.samples.stack.currentWidget() is page.samples.empty
    page._on_event(RunEvent.from_dict({"type": "eval", "step": 2, "eval_loss": 1.0}))
    page._on_event(RunEvent.from_dict(_samples_event(2, "live answer")))
    assert page.samples.current_step() == 2 and "live answer" in page.samples.view.toPlainText()
    assert page.messages.item(page.messages.count() - 1).text().startswith("Sample answers at step 2")
    page._on_event(
        RunEvent.from_dict({"type": "log", "step": 2, "flag": "length_drift", "message": "drift!"})
    )
    assert page.messages.item(page.messages.count() - 1).text() == "⚠ drift!"


def test_finished_run_folder_shows_its_latest_samples_and_the_flag(page: TrainPage) -> None:
    run_dir = _finished_run()
    page.runs.refresh()
    page.runs.select_run(str(run_dir))  # selecting a run in the list loads it
    assert page.run is not None and page.run.path == run_dir
    assert page.samples.current_step() == 4 and page.samples.step_combo.count() == 2
    text = page.samples.view.toPlainText()
    assert "It is billing, billing, billing" in text and '{"category": "billing"}' in text
    assert "red flags: answer length drifting" in page.run_label.text()
    row = next(
        r for r in range(page.runs.table.rowCount()) if page.runs.table.item(r, 0).text() == run_dir.name
    )
    assert page.runs.table.item(row, 6).text() == "answer length drifting"
    messages = [page.messages.item(i).text() for i in range(page.messages.count())]
    assert "⚠ The model is not ending its answers." in messages


def test_run_without_sampling_says_it_is_off(page: TrainPage) -> None:
    run_dir = _finished_run(sample_prompts=0)
    run = RunFolder(run_dir)
    kept = [e for e in run.read_events()[0] if "samples" not in e and "flag" not in e]
    run.events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in kept))
    page.show_run(str(run_dir))
    assert page.samples.stack.currentWidget() is page.samples.empty
    assert page.samples.empty_text.text() == OFF_TEXT
