"""Export page: empty state, run selection, K-quant gating, export off the UI thread, results, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.export.formats import K_QUANTS
from core.settings import load_settings
from desktop.context import AppContext


def _page(qtbot, ctx: AppContext | None = None):
    from desktop.pages.export import ExportPage

    page = ExportPage(ctx or AppContext(load_settings()))
    qtbot.addWidget(page)
    return page


def test_empty_state_without_run(qtbot) -> None:
    page = _page(qtbot)
    assert page.stack.currentIndex() == 0
    assert page.empty.button is not None


def test_run_selected_through_context_shows_form(qtbot, fake_run_dir: Path) -> None:
    ctx = AppContext(load_settings())
    page = _page(qtbot, ctx)
    ctx.set_run(fake_run_dir)
    assert page.stack.currentIndex() == 1
    assert "adapter ready" in page.run_label.text()
    assert page.out_edit.text() == str(fake_run_dir / "exports" / "gguf-q8_0")
    page.set_format("merged")
    assert not page.quant_combo.isEnabled()
    assert page.out_edit.text().endswith("exports/merged")


def test_k_quants_disabled_with_explanation_when_llama_cpp_missing(qtbot, monkeypatch) -> None:
    import desktop.pages.export as export_page

    monkeypatch.setattr(export_page, "llama_cpp_available", lambda: False)
    page = _page(qtbot)
    page.set_run(str(Path("/nonexistent-run")))
    for quant in K_QUANTS:
        assert not page.set_quant(quant)
    assert page.set_quant("q4_0")
    assert not page.kquant_note.isHidden()
    assert "llama-cpp-python" in page.kquant_note.text()


def test_k_quants_enabled_when_llama_cpp_present(qtbot, monkeypatch) -> None:
    import desktop.pages.export as export_page

    monkeypatch.setattr(export_page, "llama_cpp_available", lambda: True)
    page = _page(qtbot)
    page.set_run(str(Path("/nonexistent-run")))
    assert page.set_quant("q4_k_m")
    assert page.kquant_note.isHidden()


def test_adapter_export_runs_off_the_ui_thread_and_shows_files(
    qtbot, fake_run_dir: Path, monkeypatch
) -> None:
    ctx = AppContext(load_settings())
    ctx.set_run(fake_run_dir)
    page = _page(qtbot, ctx)
    page.set_format("adapter")
    with qtbot.waitSignal(page.exportFinished, timeout=120000):
        page.export_button.click()
        assert page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=10000)
    assert not page.results.isHidden()
    shown = {page.files_table.item(r, 0).text() for r in range(page.files_table.rowCount())}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= shown
    opened: list[str] = []
    monkeypatch.setattr(
        "desktop.pages.export.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile())
    )
    page.open_button.click()
    assert opened == [str(fake_run_dir / "exports" / "adapter")]
    assert page.export_button.isEnabled()


@pytest.mark.slow
def test_gguf_export_shows_verification_figures(qtbot, fake_run_dir: Path, tmp_path: Path) -> None:
    ctx = AppContext(load_settings())
    ctx.set_run(fake_run_dir)
    page = _page(qtbot, ctx)
    page.set_format("gguf")
    assert page.set_quant("f16")
    page.out_edit.setText(str(tmp_path / "gguf-out"))
    with qtbot.waitSignal(page.exportFinished, timeout=300000):
        page.export_button.click()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=10000)
    # plain words first; the figures only behind the details fold
    words = page.verify_label.text()
    assert "on 4 of 4 test prompts" in words and "logit" not in words.lower()
    assert page.checks_table.isHidden() and not page.details_button.isHidden()
    page.details_button.click()
    assert not page.checks_table.isHidden()
    checks = [page.checks_table.item(r, 0).text() for r in range(page.checks_table.rowCount())]
    assert "GGUF reloaded with transformers" in checks
    assert "Merged vs base+adapter" in checks
    assert "verified" in page.summary_label.text()
    names = {page.files_table.item(r, 0).text() for r in range(page.files_table.rowCount())}
    assert "Modelfile" in names and any(n.endswith("-f16.gguf") for n in names)


def test_cancel_leaves_no_output(qtbot, fake_run_dir: Path, tmp_path: Path) -> None:
    ctx = AppContext(load_settings())
    ctx.set_run(fake_run_dir)
    page = _page(qtbot, ctx)
    page.set_format("merged")
    out = tmp_path / "exports" / "merged"
    page.out_edit.setText(str(out))
    page.export_button.click()
    page.cancel_export()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=120000)
    assert "cancelled" in page.status_label.text()
    assert not out.exists()
    assert not list((tmp_path / "exports").glob(".merged*"))


def test_gguf_result_shows_run_commands_with_copy_buttons(qtbot, tmp_path: Path) -> None:
    from PySide6.QtGui import QGuiApplication

    from core.export.formats import ExportResult
    from core.export.modelfile import run_commands

    out = tmp_path / "gguf out"
    gguf = out / "tickets-q8_0.gguf"
    commands = run_commands(gguf, out / "Modelfile", "You triage tickets.")
    result = ExportResult(
        format="gguf",
        out_dir=str(out),
        quant="q8_0",
        files=[{"path": str(gguf), "bytes": 1000}, {"path": str(out / "Modelfile"), "bytes": 10}],
        system_prompt={
            "text": "You triage tickets.",
            "sentence": "All 96 training rows used the same system prompt",
        },
        commands=[{"label": label, "command": command} for label, command in commands],
    )
    page = _page(qtbot)
    page.show_result(result)
    box = page.run_commands
    assert not box.isHidden()
    shown = [f.text() for f in box.fields]
    assert shown == [command for _label, command in commands]
    assert shown[0] == f"ollama create tickets-q8_0 -f '{out}/Modelfile'"
    assert shown[2] == f"llama-cli -m '{gguf}' -sys 'You triage tickets.'"
    assert "All 96 training rows" in box.system_label.text()
    box.copy_buttons[0].click()
    assert QGuiApplication.clipboard().text() == shown[0]
    assert box.copy_buttons[0].text() == "Copied"
    # an adapter export has no commands: the box hides
    page.show_result(ExportResult(format="adapter", out_dir=str(out)))
    assert box.isHidden()


def test_progress_lines_are_plain_words(qtbot, fake_run_dir: Path, tmp_path: Path) -> None:
    """Every progress line the page shows during a verified GGUF export is a sentence a user can read: no bare
    status words ("cached", "done", "merged") and no library names for the read-back check."""
    ctx = AppContext(load_settings())
    ctx.set_run(fake_run_dir)
    page = _page(qtbot, ctx)
    page.set_format("gguf")
    assert page.set_quant("f16")
    page.out_edit.setText(str(tmp_path / "gguf-out"))
    shown: list[str] = []
    with qtbot.waitSignal(page.exportFinished, timeout=300000):
        page.export_button.click()
        assert page._runner is not None
        page._runner.progressed.connect(lambda _f, _m: shown.append(page.status_label.text()))
    qtbot.waitUntil(lambda: not page.is_running(), timeout=10000)
    assert "Checking the GGUF reads back the same as the merged model" in shown
    assert any(line.startswith("Checking the merged model") for line in shown)
    for line in shown:
        assert line[:1].isupper(), line  # a sentence, not a bare status word ("cached", "done", "merged")
        assert "Verifying" not in line and "with transformers" not in line, line
