"""Help > Diagnostics: the doctor's self-check in the app, copied to the clipboard for the site's admin."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from core.settings import load_settings
from desktop.context import AppContext
from desktop.diagnostics import DiagnosticsDialog
from desktop.main_window import MainWindow


def test_help_menu_opens_diagnostics_that_copy_to_clipboard(qtbot, tmp_path: Path) -> None:
    window = MainWindow(AppContext(load_settings()))
    qtbot.addWidget(window)
    window.show()
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    action = next(a for a in help_menu.actions() if a.text() == "&Diagnostics…")
    action.trigger()
    dialog = window.diagnostics_dialog
    assert dialog.isVisible() and dialog.is_running()
    assert not dialog.copy_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=300_000)
    assert dialog.report is not None, dialog.status.text()
    text = dialog.text.toPlainText()
    assert text.startswith("Whetstone ") and "Network guard" in text and "smollm2-135m-instruct" in text
    assert dialog.status.text().startswith("No problems found")
    if os.environ.get("WHETSTONE_SCREENSHOTS"):
        dialog.grab().save(str(Path(os.environ["WHETSTONE_SCREENSHOTS"]) / "diagnostics.png"))
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == text
    assert dialog.status.text().startswith("Copied to the clipboard")
    dialog.close()


def test_closing_diagnostics_while_it_runs_ends_the_check(qtbot) -> None:
    dialog = DiagnosticsDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start()
    assert dialog.is_running()
    dialog.reject()
    assert not dialog.is_running()  # the child is killed; the autouse fixture checks no process is left
