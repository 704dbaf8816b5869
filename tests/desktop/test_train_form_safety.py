"""Train page safety: the wheel never changes a setting without focus, a model folder is checked when chosen,
the form is locked while training, and a reattached run shows its own settings and live steps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QScrollArea

from desktop.context import AppContext
from desktop.pages.train import TrainPage
from tests.desktop.wheel import send_wheel as _wheel


@pytest.fixture
def page(qtbot) -> TrainPage:  # type: ignore[no-untyped-def]
    p = TrainPage(AppContext())
    qtbot.addWidget(p)
    p.resize(1200, 500)  # short: the form scrolls
    p.show()
    qtbot.waitExposed(p)
    return p


# A real (spontaneous) wheel event that a widget ignores goes on to its parents, up to the scroll area; one sent
# from a test stops at the receiver, so the tests check the two halves separately.


def test_wheel_over_fields_scrolls_the_page_and_changes_nothing(qtbot, page: TrainPage) -> None:  # type: ignore[no-untyped-def]
    page.form.advanced_toggle.setChecked(True)
    focused = QApplication.focusWidget()
    if focused is not None:
        focused.clearFocus()  # the pointer passes over fields the user never clicked
    before = page.form.values()
    preset = page.preset_combo.currentText()
    scroll = page.form.parentWidget().parentWidget()
    assert isinstance(scroll, QScrollArea)
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0
    wheeled = 0
    for field in page.form.fields.values():
        if field.kind in ("choice", "tristate", "int", "float") and field.widget.isEnabled():
            # (a disabled field, such as GPUs on a machine with one or none, takes no input at all)
            scroll.ensureWidgetVisible(field.widget)
            assert not _wheel(field.widget, -3)  # ignored: Qt passes it on to the page
            assert not _wheel(field.widget, 3)
            wheeled += 1
    for combo in (page.preset_combo, page.target_combo, page.model_combo):
        assert not _wheel(combo)
    assert wheeled >= 15
    assert page.form.values() == before
    assert page.preset_combo.currentText() == preset
    bar.setValue(0)
    _wheel(scroll.viewport(), -3)
    assert bar.value() > 0  # where the ignored turns go: the page scrolls


def test_wheel_changes_a_field_once_the_user_clicked_into_it(qtbot, page: TrainPage) -> None:  # type: ignore[no-untyped-def]
    spin = page.form.fields[("lora", "r")].widget
    start = spin.value()  # type: ignore[attr-defined]
    page.activateWindow()
    spin.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(spin.hasFocus, timeout=3000)
    assert _wheel(spin, 1)
    assert spin.value() != start  # type: ignore[attr-defined]


# --- the model folder check --------------------------------------------------------------------------------
def test_a_folder_that_is_not_a_model_is_refused_with_the_reason(
    qtbot, page: TrainPage, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    before = page.model_name()
    readme_only = tmp_path / "notes"
    readme_only.mkdir()
    (readme_only / "readme.txt").write_text("my model will go here")
    assert page.choose_model_folder(readme_only) is False
    assert (
        "notes is not a model folder: it has no config.json (it holds readme.txt)" in page.error_label.text()
    )
    assert page.model_name() == before

    # an 8B config.json without weights must not become "a valid 8B"
    config_only = tmp_path / "llama-8b"
    config_only.mkdir()
    (config_only / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "architectures": ["LlamaForCausalLM"],
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "vocab_size": 128256,
            }
        )
    )
    assert page.choose_model_folder(config_only) is False
    assert "llama-8b has a config.json but no weights (*.safetensors)" in page.error_label.text()
    assert page.model_name() == before

    (config_only / "model.safetensors").write_bytes(b"")
    assert page.choose_model_folder(config_only) is False
    assert "has no tokenizer" in page.error_label.text()

    pickled = tmp_path / "old"
    shutil.copytree(config_only, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"")
    (pickled / "tokenizer.json").write_text("{}")
    assert page.choose_model_folder(pickled) is False
    assert "only pickle (.bin) weights" in page.error_label.text()


def test_a_real_model_folder_is_taken_and_described(qtbot, page: TrainPage, tiny_llama_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.models import check_base_model_folder

    messages: list[str] = []
    page.ctx.statusMessage.connect(lambda text, _ms: messages.append(text))
    assert page.choose_model_folder(tiny_llama_dir) is True
    assert page.model_name() == str(tiny_llama_dir.resolve())
    assert not page.error_label.text()
    assert check_base_model_folder(tiny_llama_dir).startswith("llama, about ")
    assert messages and tiny_llama_dir.name in messages[-1]


def test_a_model_with_its_own_code_is_taken_and_the_trust_box_explained(
    qtbot, page: TrainPage, tiny_llama_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    custom = tmp_path / "custom-code"
    shutil.copytree(tiny_llama_dir, custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (custom / "config.json").write_text(json.dumps(config))
    messages: list[str] = []
    page.ctx.statusMessage.connect(lambda text, _ms: messages.append(text))
    assert page.choose_model_folder(custom) is True  # chosen; its code is allowed with the checkbox
    assert page.model_name() == str(custom.resolve())
    assert not page.trust_check.isChecked() and page.trust_check.isEnabled()
    assert "ships its own code: tick 'Allow this model's own code'" in messages[-1]


# --- a run that a previous session left training -------------------------------------------------------------
@pytest.fixture
def running_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A run folder under the runs directory whose "worker" is alive (a sleeping process standing in for it)."""
    from core import paths
    from core.runs import RunFolder
    from core.training.config import TrainingConfig, with_overrides

    cfg = with_overrides(
        TrainingConfig(),
        {"lora.r": 12, "lora.alpha": 24, "train.max_length": 384, "train.max_steps": 50},
    )
    data = cfg.to_dict()
    data["model"]["name"] = "smollm2-135m-instruct"
    data["data"]["source"] = str(tmp_path / "tickets.jsonl")
    run_dir = paths.runs_dir() / "20261130-120000-reattach"
    run_dir.mkdir(parents=True)
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    steps = [
        {"type": "step", "step": s, "max_steps": 50, "loss": 2.0 - s / 10, "epoch": s / 50} for s in (1, 2)
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in steps))
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "core.training.worker"])
    run = RunFolder(run_dir)
    run.pid_file.write_text(json.dumps({"pid": proc.pid, "started": 0}) + "\n")
    try:
        yield run, proc
    finally:
        proc.kill()
        proc.wait()


def test_reattached_run_shows_its_settings_live_steps_and_locks_the_form(qtbot, running_run) -> None:  # type: ignore[no-untyped-def]
    run, proc = running_run
    page = TrainPage(AppContext())
    qtbot.addWidget(page)
    assert page.is_training() and page.run is not None and page.run.path == run.path
    f = page.form.fields
    assert f[("lora", "r")].get() == 12 and f[("lora", "alpha")].get() == 24
    assert f[("train", "max_length")].get() == 384 and f[("train", "max_steps")].get() == 50
    assert page.data_edit.text().endswith("tickets.jsonl")
    assert page.stat_step.value.text() == "2/50"
    qtbot.waitUntil(lambda: page.status == "running", timeout=10_000)
    assert page.stat_step.value.text() == "2/50" and page.progress.value() == 4
    for widget in (
        page.model_browse,
        page.data_browse,
        page.data_edit,
        page.form,
        page.model_combo,
        page.preset_combo,
        page.trust_check,
        page.yaml_load,
    ):
        assert not widget.isEnabled()

    # a new step in the events file shows in the Runs table without pressing Refresh
    table = page.runs.table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == run.path.name)
    assert table.item(row, 3).text() == "2"
    with open(run.events_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "step", "step": 3, "max_steps": 50, "loss": 1.5}) + "\n")
    qtbot.waitUntil(lambda: table.item(row, 3).text() == "3", timeout=10_000)
    assert table.item(row, 4).text() == "1.5000" and table.item(row, 1).text() == "running"

    # a workspace opened on the Data page meanwhile does not change the running run's settings
    page.ctx.workspaceChanged.emit("/data/other.wsdb")
    assert page.data_edit.text().endswith("tickets.jsonl")
    with qtbot.waitSignal(page.runEnded, timeout=20_000):
        proc.kill()
        proc.wait()
    assert not page.is_training()
    assert page.data_edit.text() == "/data/other.wsdb"  # taken once the run ended
    assert page.model_browse.isEnabled() and page.data_browse.isEnabled() and page.form.isEnabled()


# --- the estimate panel -------------------------------------------------------------------------------------
def _eight_b(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "vocab_size": 128256,
            }
        )
    )
    return folder


def test_estimate_gives_gpu_time_without_cpu_notes_and_cpu_notes_for_the_cpu(
    qtbot, page: TrainPage, sample_data: Path
) -> None:  # type: ignore[no-untyped-def]
    page.data_edit.setText(str(sample_data))
    assert page.target_combo.currentText() == "This computer's CPU"  # no GPU on this machine
    page.update_estimate()
    text = page.estimate_label.text()
    assert (
        "on this CPU" in text and "No GPU here" in text and "no gradient checkpointing" in text
    )  # CPU notes
    assert "float32" in text and "GiB peak" not in text  # no GPU memory verdict for the CPU
    page.target_combo.setCurrentText("24 GB GPU")
    page.update_estimate()
    text = page.estimate_label.text()
    assert "Time: about" in text or "Time: under a minute" in text
    assert "on a 24 GB RTX 4090-class GPU" in text
    assert "from measured throughput of a Llama-3.2-1B-shaped model on an H200" in text
    assert "GiB peak" in text
    assert "float32" not in text and "CPU" not in text  # no CPU caveats for a GPU target


def test_estimate_warns_when_the_preset_does_not_suit_the_model(
    qtbot, page: TrainPage, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page.set_model(str(_eight_b(tmp_path / "llama-8b")))
    page.target_combo.setCurrentText("24 GB GPU")
    page.preset_combo.setCurrentText("LoRA ≤ 3B on 24 GB")
    page.update_estimate()
    text = page.estimate_label.text()
    assert "⚠ The preset 'LoRA ≤ 3B on 24 GB' is made for models up to about 3B" in text
    assert "8.0B parameters" in text
    page.preset_combo.setCurrentText("QLoRA 7–8B on 24 GB")
    page.update_estimate()
    assert "⚠" not in page.estimate_label.text()


def test_cpu_estimate_uses_the_speed_of_the_last_run_here(qtbot) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from core import paths

    folder = paths.runs_dir() / "20261130-090000-smollm2"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "smollm2-135m-instruct"}}))
    events = [
        {"type": "step", "step": i, "tokens_per_s": s, "vram_gib": None} for i, s in enumerate([9, 290, 300])
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    page = TrainPage(AppContext())
    qtbot.addWidget(page)
    assert page.target_combo.currentText() == "This computer's CPU"
    page.update_estimate()
    assert "from 300 tokens/s measured in your run 20261130-090000-smollm2 on this computer" in (
        page.estimate_label.text()
    )
