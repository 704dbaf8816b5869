"""Train page: generated form, presets, live estimate, training through the watcher thread, stop/resume,
close-while-training, reattach after a restart, runs list and compare."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core import paths
from core.runs import RunFolder
from core.training.config import TrainingConfig
from core.training.schema import split_title
from desktop.context import AppContext
from desktop.pages.train import CLOSE_CANCEL, CLOSE_KEEP, TrainPage
from desktop.widgets.train_runs import CompareDialog


@pytest.fixture
def ctx() -> AppContext:
    return AppContext()


def _page(qtbot, ctx: AppContext) -> TrainPage:  # type: ignore[no-untyped-def]
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    return page


def _small(page: TrainPage, model: Path, data: Path, steps: int) -> None:
    page.set_model(str(model))
    page.data_edit.setText(str(data))
    f = page.form.fields
    f[("quant", "mode")].set("none")
    f[("train", "max_steps")].set(steps)
    f[("train", "micro_batch_size")].set(2)
    f[("train", "grad_accum")].set(1)
    f[("train", "max_length")].set(128)
    f[("train", "eval_steps")].set(2)
    f[("train", "save_steps")].set(2)
    f[("lora", "r")].set(4)
    f[("lora", "alpha")].set(8)


def test_form_is_generated_from_the_config_model(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, ctx)
    cfg = TrainingConfig()
    for section in ("quant", "lora", "train"):
        model_fields = type(getattr(cfg, section)).model_fields
        for name, info in model_fields.items():
            field = page.form.fields[(section, name)]
            # the help text is the field's description (the GPU count adds this machine's cards after it)
            assert field.widget.toolTip().split("\n\n")[0] == info.description
            # the label shows the title: its plain words, and the term in parentheses on a second line
            assert field.label.accessibleName() == info.title
            plain, term = split_title(info.title)
            assert plain in field.label.text() and term in field.label.text()
    assert not page.form.advanced.isVisibleTo(page)
    page.form.advanced_toggle.setChecked(True)
    assert page.form.advanced.isVisibleTo(page)
    assert page.form.fields[("train", "seed")].widget.isVisibleTo(page)
    # on this CPU-only machine the page starts from the CPU preset and says what it chose
    assert page.preset_combo.currentText() == "Quick test (CPU)"
    assert "float32" in page.estimate_label.text()


# terms a lawyer, clinician or support lead would not know: a label's plain words must do without them
JARGON = (
    "lora",
    "rank",
    "gradient",
    "dtype",
    "epoch",
    "quantiz",
    "kernel",
    "pack",
    "checkpoint",
    "liger",
    "alpha",
    "dropout",
    "schedule",
    "warmup",
    "decay",
    "clipping",
    "max ",
    "micro",
)


def test_every_setting_speaks_plain_words_and_keeps_its_term(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, ctx)
    page.form.advanced_toggle.setChecked(True)
    for (section, name), field in page.form.fields.items():
        plain, term = split_title(field.title)
        assert plain and not [w for w in JARGON if w in plain.lower() + " "], (section, name, plain)
        # a one-sentence help on the label and the box: what it does and when to change it
        assert field.label.toolTip() and field.widget.toolTip().startswith(field.label.toolTip()[:40])
        assert len(field.help_text) >= 40, (section, name)
    # the terms practitioners look for stay on screen, under the plain words
    terms = {split_title(f.title)[1] for f in page.form.fields.values()}
    assert {"LoRA rank", "micro-batch", "gradient accumulation", "max length, tokens", "packing"} <= terms
    assert "Adapter size" in page.form.fields[("lora", "r")].label.text()
    # choices in plain words; the value stored (config.yaml, the CLI) is what it always was
    layers = page.form.fields[("lora", "target_modules")]
    shown = [layers.widget.itemText(i) for i in range(layers.widget.count())]
    assert shown == ["Attention only", "All linear layers"]
    layers.set("attention")
    assert (
        layers.widget.currentText() == "Attention only"
        and page.form.config().lora.target_modules == "attention"
    )
    quant = page.form.fields[("quant", "mode")]
    quant.widget.setCurrentIndex(quant.widget.findText("4-bit (QLoRA)"))
    cfg = page.form.config()
    assert cfg.quant.mode == "4bit" and "mode: 4bit" in cfg.to_yaml()
    assert "target_modules: attention" in cfg.to_yaml()


def test_the_form_fits_the_page_without_a_horizontal_scrollbar(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    """At the smallest window the app allows, the settings (the Advanced ones open too) fit the left column."""
    from desktop.main_window import MainWindow

    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show_page("train")
    window.resize(window.minimumSize())
    window.show()
    page = window.findChild(TrainPage)
    assert page is not None
    page.form.advanced_toggle.setChecked(True)
    scroll = page.form.parentWidget().parentWidget()
    qtbot.waitUntil(lambda: page.form.isVisible() and scroll.viewport().width() > 0)
    assert page.form.minimumSizeHint().width() <= scroll.viewport().width()
    # a long estimate (a GPU it does not fit, with suggestions) shows to its last line; the settings scroll
    page.target_combo.setCurrentText("8 GB GPU")
    page.form.fields[("train", "max_length")].set(65536)
    page.form.fields[("train", "micro_batch_size")].set(64)
    label = page.estimate_label
    qtbot.waitUntil(lambda: "does not fit" in label.text() and "•" in label.text(), timeout=3000)

    # never drawn over the buttons below: at this smallest window the settings keep 120 px and scroll
    def inside() -> bool:
        return label.geometry().bottom() <= page.estimate_box.contentsRect().bottom()

    qtbot.waitUntil(lambda: inside() and page.settings_scroll.height() >= 115 and label.height() > 150)
    window.resize(900, 900)  # with room, it shows to its last line
    qtbot.waitUntil(lambda: inside() and label.height() >= label.heightForWidth(label.width()))


def test_preset_and_estimate_follow_the_form(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, ctx)
    page.preset_combo.setCurrentText("QLoRA 7–8B on 24 GB")
    assert page.form.fields[("quant", "mode")].get() == "4bit"
    assert page.form.fields[("train", "gradient_checkpointing")].get() is True
    page.update_estimate()
    small = page.last_estimate.vram_gib
    page.form.fields[("train", "max_length")].set(65536)
    page.form.fields[("train", "micro_batch_size")].set(64)
    qtbot.waitUntil(lambda: page.last_estimate.vram_gib > small, timeout=3000)
    assert page.preset_combo.currentText() == "Custom"
    page.target_combo.setCurrentText("8 GB GPU")
    qtbot.waitUntil(lambda: "does not fit" in page.estimate_label.text(), timeout=3000)
    assert "•" in page.estimate_label.text()  # a concrete suggestion
    assert "Memory plan:" in page.estimate_label.text()  # what the GPU engine keeps, recomputes, offloads
    # the memory parts in words, the term in parentheses where there is one
    assert (
        "model " in page.estimate_label.text()
        and "working memory (activations)" in page.estimate_label.text()
    )


def test_bad_settings_and_missing_data_are_explained(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, ctx)
    page.data_edit.setText("")
    assert page.start_training() is False
    assert "Choose a dataset" in page.error_label.text()
    page.form.fields[("train", "max_steps")].set(0)
    page.form.fields[("train", "epochs")].set(0)
    page.update_estimate()
    assert "either Epochs" in page.estimate_label.text()
    assert not page.is_training()


@pytest.mark.slow
def test_train_to_the_end_then_runs_list_and_compare(
    qtbot,
    ctx,
    tiny_llama_dir,
    sample_data,  # type: ignore[no-untyped-def]
    fake_run_dir,
) -> None:
    page = _page(qtbot, ctx)
    _small(page, tiny_llama_dir, sample_data, steps=4)
    with (
        qtbot.waitSignal(ctx.runChanged, timeout=600_000) as changed,
        qtbot.waitSignal(page.runEnded, timeout=600_000) as ended,
    ):
        assert page.start_training()
        assert page.is_training() and not page.train_button.isEnabled()
    assert ended.args[0].status == "finished"
    run = RunFolder.open(changed.args[0])
    assert (run.adapter_dir / "adapter_model.safetensors").exists()
    assert [s for s, _ in page.plot.train] == [1, 2, 3, 4]
    assert len(page.plot.val) == 2
    assert page.stat_step.value.text() == "4/4"
    assert page.train_button.isEnabled() and not page.stop_button.isEnabled()
    assert not page.resume_button.isEnabled()  # finished runs do not resume
    assert page.handle is None
    page.runs.refresh()
    assert page.runs.table.rowCount() == 1
    assert page.runs.table.item(0, 1).text() == "finished"
    # compare with a second run in the runs folder
    other = paths.runs_dir() / "other"
    shutil.copytree(fake_run_dir, other)
    page.runs.refresh()
    assert page.runs.table.rowCount() == 2
    dialog = CompareDialog(str(run.path), str(other))
    qtbot.addWidget(dialog)
    text = dialog.diff.toPlainText()
    assert "quant" in text or "mode" in text
    assert len(dialog.plot._overlays) >= 2


@pytest.mark.slow
def test_close_keep_reattach_stop_resume_cancel(qtbot, ctx, tiny_llama_dir, sample_data) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, ctx)
    _small(page, tiny_llama_dir, sample_data, steps=400)
    page.form.fields[("train", "save_steps")].set(1000)
    with qtbot.waitSignal(page.runStarted, timeout=120_000) as started:
        page.start_training()
    run = RunFolder.open(started.args[0])
    qtbot.waitUntil(lambda: len(page.plot.train) >= 1, timeout=300_000)

    page.ask_close = lambda: CLOSE_CANCEL
    assert page.can_close() is False
    page.ask_close = lambda: CLOSE_KEEP
    assert page.can_close() is True
    page.shutdown()
    assert run.is_running()  # the worker outlives the window

    # "restart": a new page finds the run and follows it
    page2 = _page(qtbot, ctx)
    assert page2.is_training() and page2.run is not None and page2.run.path == run.path
    assert len(page2.plot.train) >= 1  # the curve so far
    qtbot.waitUntil(lambda: page2.status == "running", timeout=10_000)
    with qtbot.waitSignal(page2.runEnded, timeout=300_000) as ended:
        page2.stop_training()
    assert ended.args[0].status == "stopped"
    stopped_at = run.read_summary()["steps"]
    assert run.last_checkpoint() is not None and page2.resume_button.isEnabled()

    with qtbot.waitSignal(page2.runStarted, timeout=120_000):
        page2.resume_training()
    qtbot.waitUntil(lambda: page2.plot.train and page2.plot.train[-1][0] > stopped_at, timeout=300_000)
    steps = [s for s, _ in page2.plot.train]
    assert steps == sorted(set(steps))  # the curve continues, no repeated steps
    with qtbot.waitSignal(page2.runEnded, timeout=60_000) as ended:
        page2.cancel_training(confirm=False)
    assert ended.args[0].status == "cancelled"
    assert not run.is_running()
    assert page.handle is None and page2.handle is None


def test_yaml_settings_load_into_the_form(qtbot, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.training.config import preset_config, save_config, with_overrides

    cfg = with_overrides(
        preset_config("LoRA ≤ 3B on 24 GB"),
        {"lora.r": 24, "lora.alpha": 48, "model.name": "smollm2-135m-instruct"},
    )
    save_config(cfg, tmp_path / "c.yaml")
    page = _page(qtbot, ctx)
    page.load_yaml(tmp_path / "c.yaml")
    assert page.form.fields[("lora", "r")].get() == 24
    assert page.form.fields[("quant", "mode")].get() == "none"
    assert page.current_config().lora.r == 24


def test_plot_updates_are_throttled(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.widgets.train_plot import TrainingPlot

    plot = TrainingPlot(redraw_ms=100)
    qtbot.addWidget(plot)
    for step in range(1, 2001):
        plot.add_step(step, 1.0 / step, 1e-4)
    qtbot.waitUntil(lambda: plot.redraws >= 1, timeout=2000)
    assert plot.redraws <= 2  # 2000 events, one or two redraws
    assert len(plot.train_curve.getData()[0]) == 2000


def test_trust_checkbox_allows_a_models_own_code(qtbot, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    folder = tmp_path / "custom-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoConfig": "a.B"}}))
    (folder / "model.safetensors").write_bytes(b"")
    page = _page(qtbot, ctx)
    assert page.trust_check.text() == "Allow this model's own code\n(trust_remote_code)"
    assert not page.trust_check.isEnabled()  # the embedded SmolLM2 has no code of its own
    page.set_model(str(folder))
    assert page.trust_check.isEnabled() and not page.trust_check.isChecked()
    page.trust_check.setChecked(True)
    from core.loader import registry_allows_code

    assert registry_allows_code(folder)
    page.trust_check.setChecked(False)
    assert not registry_allows_code(folder)


def test_gpu_count_lists_the_cards_and_offers_no_more_than_there_are(qtbot, ctx, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.device
    from core.device import ComputeDevice

    monkeypatch.setattr(core.device, "list_gpus", lambda timeout=5.0: [])
    cpu_page = _page(qtbot, ctx)
    cpu_page.hardware = type(cpu_page.hardware)(False, False, "CPU")
    cpu_page._describe_gpus()
    gpus = cpu_page.form.fields[("train", "gpus")]
    assert not gpus.widget.isEnabled() and gpus.widget.maximum() == 1
    assert "No NVIDIA GPU found" in gpus.widget.toolTip()

    cards = [ComputeDevice("cuda", "NVIDIA GeForce RTX 4090", 24.0, 23.5)] * 2
    monkeypatch.setattr(core.device, "list_gpus", lambda timeout=5.0: cards)
    cpu_page.hardware = type(cpu_page.hardware)(True, True, cards[0].name, 24.0)
    cpu_page._describe_gpus()
    assert gpus.widget.maximum() == 2
    assert "GPU 0: NVIDIA GeForce RTX 4090 (24 GiB)" in gpus.widget.toolTip()
    assert "GPU 1: NVIDIA GeForce RTX 4090 (24 GiB)" in gpus.widget.toolTip()
    assert "No NVIDIA GPU found" not in gpus.widget.toolTip()
    gpus.set(2)
    assert cpu_page.form.config().train.gpus == 2


def test_split_the_model_is_offered_only_with_two_gpus(qtbot, ctx, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.device
    from core.device import ComputeDevice

    page = _page(qtbot, ctx)
    split = page.form.fields[("train", "shard_model")]
    gpus = page.form.fields[("train", "gpus")]
    assert split.label.text().startswith("Split the model across GPUs")
    monkeypatch.setattr(
        core.device, "list_gpus", lambda timeout=5.0: [ComputeDevice("cuda", "RTX 4090", 24.0, 23.5)]
    )
    page.hardware = type(page.hardware)(True, True, "RTX 4090", 24.0)
    page._describe_gpus()
    assert not split.widget.isEnabled() and "fewer than 2 GPUs" in split.widget.toolTip()
    assert "too big for one GPU" in split.widget.toolTip()  # the help says what it does

    cards = [ComputeDevice("cuda", "NVIDIA GeForce RTX 4090", 24.0, 23.5)] * 2
    monkeypatch.setattr(core.device, "list_gpus", lambda timeout=5.0: cards)
    page._describe_gpus()
    assert split.widget.isEnabled() and gpus.widget.value() == 1
    split.widget.setChecked(True)  # splitting needs 2 or more: GPUs follows
    cfg = page.form.config()
    assert cfg.train.shard_model and cfg.train.gpus == 2


def test_pack_box_shows_that_a_cpu_does_not_pack_and_keeps_the_users_choice(qtbot, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.training.config import load_config

    page = _page(qtbot, ctx)  # this machine has no GPU: the estimate is for its CPU
    assert page.target_combo.currentData() == "cpu"
    pack = page.form.fields[("train", "packing")]
    box = pack.widget
    # the Quick test preset asks for packing; the CPU batches by length instead, and the box says so
    assert not box.isChecked() and not box.isEnabled()
    assert "A CPU does not pack examples" in box.toolTip()
    assert "batched by length" in page.estimate_label.text()
    # the user's choice stays in the settings: a saved YAML still packs on a GPU
    assert page.current_config().train.packing is True
    page.data_edit.setText(str(tmp_path / "d.jsonl"))
    path = tmp_path / "s.yaml"
    from core.training.config import save_config

    save_config(page.current_config(), path)
    assert load_config(path).train.packing is True
    # a preset or loaded settings set while pinned become the choice shown for a GPU target
    pack.set(False)
    assert page.current_config().train.packing is False and not box.isChecked()
    pack.set(True)
    # planning for a GPU: the box shows and edits the user's choice again
    page.target_combo.setCurrentText("24 GB GPU")
    qtbot.waitUntil(lambda: box.isEnabled(), timeout=3000)
    assert box.isChecked() and "A CPU does not pack" not in box.toolTip()
    box.setChecked(False)
    assert page.current_config().train.packing is False
    assert page.preset_combo.currentText() == "Custom"  # a real edit, unlike the pinning
    page.target_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not box.isEnabled(), timeout=3000)
    assert page.current_config().train.packing is False and not box.isChecked()


def test_dataset_field_names_the_file_the_user_opened_and_the_run_gets_the_workspace(  # type: ignore[no-untyped-def]
    qtbot, ctx, tmp_path, sample_data
) -> None:
    from core.data.workspace import DatasetWorkspace

    source = tmp_path / "helpdesk.jsonl"
    shutil.copy(sample_data, source)
    wsdb = tmp_path / "helpdesk-266b7ad9c3.wsdb"
    ws = DatasetWorkspace.create_from_file(source, wsdb)
    page = _page(qtbot, ctx)
    try:
        ctx.set_workspace(wsdb, ws)  # opened on the Data page
        assert page.data_edit.text() == "helpdesk.jsonl"
        assert str(source.resolve()) in page.data_edit.toolTip() and str(wsdb) in page.data_edit.toolTip()
        assert page.current_config().data.source == str(wsdb)  # the run trains on the workspace
    finally:
        ws.close()
    # a workspace picked with Browse… (not the open one) is named by its source too
    other = DatasetWorkspace.create_from_file(sample_data, tmp_path / "other.wsdb")
    other.close()
    page.set_dataset(str(tmp_path / "other.wsdb"))
    assert page.data_edit.text() == Path(sample_data).name
    assert page.current_config().data.source == str(tmp_path / "other.wsdb")
    # a plain file shows as itself; what the user types is what the run gets
    page.data_edit.setText(str(source))
    assert page.current_config().data.source == str(source)


def test_choosing_a_run_loads_its_settings_but_keeps_the_chosen_dataset(  # type: ignore[no-untyped-def]
    qtbot, ctx, tmp_path, fake_run_dir
) -> None:
    page = _page(qtbot, ctx)
    chosen = tmp_path / "mine.jsonl"
    chosen.write_text("", encoding="utf-8")
    page.set_dataset(str(chosen))
    with qtbot.waitSignal(ctx.statusMessage) as status:
        page.show_run(str(fake_run_dir))
    cfg = page.current_config()
    assert cfg.train.max_length == 256 and cfg.lora.r == 8  # the run's training settings
    assert cfg.data.source == str(chosen)  # ... and still the user's dataset
    assert "training settings of run run" in status.args[0] and "mine.jsonl" in status.args[0]
    # with no dataset chosen yet, the run's own dataset fills the field
    page.set_dataset("")
    with qtbot.waitSignal(ctx.statusMessage) as status:
        page.show_run(str(fake_run_dir))
    assert page.current_config().data.source.endswith("sample_dataset.jsonl")
    assert "and dataset" in status.args[0]
