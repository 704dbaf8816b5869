"""The spine in the GUI, through the main window and the pages' own controls: Data (load the sample
dataset into a workspace) -> Train (the workspace is picked up; a short LoRA run on a tiny Llama) -> Export
(the finished run is picked up; a verified F16 GGUF with the chat template)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runs import RunFolder
from core.settings import load_settings
from desktop.context import AppContext
from desktop.main_window import MainWindow


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_from_jsonl_to_verified_gguf_in_the_window(qtbot, tiny_llama_dir: Path, tmp_path: Path) -> None:
    ctx = AppContext(load_settings())
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show()

    data = window.page("data")
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=60_000):
        data.sample_button.click()  # type: ignore[attr-defined]
    assert ctx.workspace is not None
    qtbot.waitUntil(lambda: not data._jobs, timeout=120_000)  # type: ignore[attr-defined]

    window.show_page("train")
    train = window.page("train")
    # the field names the file the user opened; the run trains on the workspace
    assert train.data_edit.text() == ctx.workspace_name()  # type: ignore[attr-defined]
    assert train.dataset_path() == str(ctx.workspace_path)  # type: ignore[attr-defined]
    train.set_model(str(tiny_llama_dir))  # type: ignore[attr-defined]
    fields = train.form.fields  # type: ignore[attr-defined]
    fields[("quant", "mode")].set("none")
    fields[("train", "max_steps")].set(3)
    fields[("train", "micro_batch_size")].set(2)
    fields[("train", "grad_accum")].set(1)
    fields[("train", "max_length")].set(128)
    with (
        qtbot.waitSignal(ctx.runChanged, timeout=900_000) as changed,
        qtbot.waitSignal(train.runEnded, timeout=900_000) as ended,  # type: ignore[attr-defined]
    ):
        assert train.start_training()  # type: ignore[attr-defined]
    assert ended.args[0].status == "finished"
    run = RunFolder.open(changed.args[0])
    assert (run.adapter_dir / "adapter_config.json").exists()
    assert run.dataset_sha256()

    window.show_page("export")
    export = window.page("export")
    export.set_format("gguf")  # type: ignore[attr-defined]
    assert export.set_quant("f16")  # type: ignore[attr-defined]
    export.out_edit.setText(str(tmp_path / "gguf"))  # type: ignore[attr-defined]
    with qtbot.waitSignal(export.exportFinished, timeout=900_000):  # type: ignore[attr-defined]
        export.export_button.click()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not export.is_running(), timeout=30_000)  # type: ignore[attr-defined]
    assert "verified" in export.summary_label.text()  # type: ignore[attr-defined]
    gguf_files = list((tmp_path / "gguf").glob("*.gguf"))
    assert len(gguf_files) == 1
    from gguf import GGUFReader

    assert "<|im_start|>" in GGUFReader(gguf_files[0]).fields["tokenizer.chat_template"].contents()
    window.close()
