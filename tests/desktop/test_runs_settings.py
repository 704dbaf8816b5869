"""The pages read runs through core.runs: the runs folder is the settings' `runs_dir` on Train (Runs list, new
runs, reattach) and Evaluate, the Runs list shows the final losses the model card writes, and the estimate's
target starts from `vram_target_gib`."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import paths
from core.export.adapter import model_card
from core.runs import RunFolder
from core.settings import Settings
from desktop.context import AppContext
from desktop.pages.evaluate import EvaluatePage
from desktop.pages.train import TrainPage
from desktop.widgets.train_watcher import RunEnded, TrainingWatcher
from tests.core.test_runs import RESUMED, STALE_SUMMARY, _run


@pytest.fixture
def two_folders(tmp_path: Path) -> Path:
    """A run in a runs folder of the user's choosing and one in the app's default runs folder."""
    mine = tmp_path / "runs elsewhere"
    _run(mine, RESUMED, STALE_SUMMARY, name="20990101-000000-mine")
    _run(paths.runs_dir(), [{"type": "step", "step": 1, "loss": 3.0}], name="20990101-000000-default")
    return mine


def _train_page(qtbot, ctx: AppContext) -> TrainPage:  # type: ignore[no-untyped-def]
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    return page


def test_train_page_lists_and_creates_runs_in_the_settings_runs_folder(
    qtbot, two_folders: Path, sample_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    ctx = AppContext(Settings(runs_dir=str(two_folders)))
    page = _train_page(qtbot, ctx)
    page.runs.refresh()
    table = page.runs.table
    assert table.rowCount() == 1
    row = [table.item(0, c).text() for c in range(table.columnCount())]
    # the Runs list and the exported model card give the same steps and final losses (not the stale summary's)
    assert row[0] == "20990101-000000-mine" and row[3:6] == ["4", "1.5000", "1.7000"]
    card = model_card(RunFolder(two_folders / "20990101-000000-mine"), "adapter")
    assert "- Steps: 4\n- Final train loss: 1.5\n- Final eval loss: 1.7\n" in card
    launched: list[TrainingWatcher] = []
    monkeypatch.setattr(page, "_launch", launched.append)  # where the run would go; no worker is started
    page.data_edit.setText(str(sample_data))
    assert page.start_training()
    assert launched[0].run_dir.parent == two_folders


def test_evaluate_page_lists_the_settings_runs_folder(qtbot, two_folders: Path) -> None:  # type: ignore[no-untyped-def]
    page = EvaluatePage(AppContext(Settings(runs_dir=str(two_folders))))
    qtbot.addWidget(page)
    page.refresh_runs()
    names = [page.run_combo.itemText(i) for i in range(1, page.run_combo.count())]
    assert names == ["20990101-000000-mine"]


def test_the_estimate_target_starts_from_the_settings_and_is_remembered(qtbot) -> None:  # type: ignore[no-untyped-def]
    ctx = AppContext(Settings(vram_target_gib=16))
    page = _train_page(qtbot, ctx)
    assert page.target_combo.currentText() == "16 GB GPU"
    page.target_combo.setCurrentText("8 GB GPU")
    assert ctx.settings.vram_target_gib == 8.0
    page.target_combo.setCurrentIndex(0)  # this machine (its CPU here, or its GPU)
    assert ctx.settings.vram_target_gib == 0.0
    other = _train_page(qtbot, AppContext(Settings(vram_target_gib=20)))  # a size the list does not have
    assert other.target_combo.currentText() == "20 GB GPU"
    default = _train_page(qtbot, AppContext(Settings()))
    assert default.target_combo.currentIndex() == 0


def test_a_stopped_run_shows_the_steps_of_its_events_not_a_stale_summary(qtbot) -> None:  # type: ignore[no-untyped-def]
    events = [*RESUMED[:3], {"type": "done", "step": 2, "status": "stopped", "message": "Stopped at step 2."}]
    run = _run(paths.runs_dir(), events, {"status": "stopped", "steps": 1}, name="20990101-000000-stopped")
    page = _train_page(qtbot, AppContext())
    page._on_ended(RunEnded(str(run.path), 0, "stopped"))
    row = [page.runs.table.item(0, c).text() for c in range(6)]
    assert row[1:] == ["stopped", "tiny", "2", "2.0000", "2.2000"]
    assert page.stat_step.value.text() == "2/4" and page.stat_loss.value.text() == "2.0000 / 2.2000"


def test_export_default_run_reads_the_status_the_runs_list_shows(tmp_path: Path) -> None:
    """newest_finished_run picks by run_summary's status: a run whose summary.json still says "stopped" from
    before a resume, whose resumed worker then died, is "interrupted", not the newest finished run."""
    import json
    import os

    from core.runs import RunFolder, run_summary
    from desktop.widgets.run_picker import newest_finished_run

    def make(name: str, summary: dict, events: list[dict], mtime: int) -> RunFolder:
        path = tmp_path / name
        (path / "adapter").mkdir(parents=True)
        (path / "adapter" / "adapter_config.json").write_text("{}")
        (path / "config.yaml").write_text("model:\n  name: tiny\n")
        (path / "summary.json").write_text(json.dumps(summary))
        (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        os.utime(path, (mtime, mtime))
        return RunFolder(path)

    done = {"type": "done", "step": 4, "status": "finished", "time": 1.0}
    older = make(
        "older", {"status": "finished"}, [{"type": "step", "step": 4, "loss": 1.0, "time": 1.0}, done], 1000
    )
    stopped = {"type": "done", "step": 2, "status": "stopped", "time": 2.0}
    resumed = [
        {"type": "step", "step": 2, "loss": 1.0, "time": 2.0},
        stopped,
        {"type": "log", "step": 2, "resumed_from": 2, "message": "Resuming from step 2", "time": 3.0},
        {"type": "step", "step": 3, "loss": 0.9, "time": 4.0},
    ]
    newer = make("newer", {"status": "stopped"}, resumed, 2000)
    assert newer.read_summary()["status"] == "stopped"  # what the old check read
    assert run_summary(newer)["status"] == "interrupted"
    assert newest_finished_run(tmp_path) == older.path
    # the same run, stopped and not resumed, is the newest one to export
    (newer.path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in resumed[:2]))
    os.utime(newer.path, (3000, 3000))
    assert newest_finished_run(tmp_path) == newer.path
