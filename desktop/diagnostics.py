"""Help > Diagnostics: the `whetstone doctor` self-check in a dialog, with a "Copy to clipboard" button.

The check runs in a child process (`python -m core.cli doctor --json`): it imports torch, bitsandbytes and
llama.cpp, which the window does not need, and a native library that crashes must not take the app down.
What the dialog shows and copies is the same text `whetstone doctor` prints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

import core
from core.doctor import format_report


class DiagnosticsDialog(QDialog):
    """Runs the self-check when shown; `finished_check(report)` fires with the report dict (or None)."""

    finished_check = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Diagnostics")
        self.resize(1000, 600)
        self.report: dict | None = None
        self._process: QProcess | None = None

        self.status = QLabel("Checking this machine (Python, torch, GPUs, libraries, models, folders)…")
        self.status.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = QPushButton("Copy to clipboard")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.rerun_button = QPushButton("Run again")
        self.rerun_button.setEnabled(False)
        self.rerun_button.clicked.connect(self.start)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)

        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.rerun_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)

    # the child process -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._process is not None:
            return
        self.report = None
        self.text.clear()
        self.busy.show()
        self.copy_button.setEnabled(False)
        self.rerun_button.setEnabled(False)
        self.status.setText("Checking this machine (Python, torch, GPUs, libraries, models, folders)…")
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # the child must run this same code, also from a source checkout that is not installed
        root = str(Path(core.__file__).resolve().parent.parent)
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (root, env.value("PYTHONPATH", "")) if p))
        process.setProcessEnvironment(env)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start(sys.executable, ["-m", "core.cli", "doctor", "--json"])

    def _take_process(self) -> tuple[str, str]:
        process = self._process
        self._process = None
        if process is None:
            return "", ""
        out = bytes(process.readAllStandardOutput().data()).decode(errors="replace")
        err = bytes(process.readAllStandardError().data()).decode(errors="replace")
        process.deleteLater()
        return out, err

    def _on_finished(self, _code: int = 0, _status: object = None) -> None:
        out, err = self._take_process()
        try:
            report = json.loads(out)
        except ValueError:
            last = (err.strip().splitlines() or ["no output"])[-1]
            self._show_failure(f"The self-check did not finish: {last}")
            return
        self.report = report
        self.text.setPlainText(format_report(report))
        if report.get("ok"):
            self.status.setText(f"No problems found ({report.get('warnings', 0)} warning(s)).")
        else:
            self.status.setText(
                f"Problems found: {report.get('failures', 0)} failure(s), {report.get('warnings', 0)} warning(s)."
            )
        self._done()

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._take_process()
            self._show_failure(f"The self-check could not start ({sys.executable}).")

    def _show_failure(self, message: str) -> None:
        self.status.setText(message)
        self.text.setPlainText(message)
        self._done()

    def _done(self) -> None:
        self.busy.hide()
        self.copy_button.setEnabled(True)
        self.rerun_button.setEnabled(True)
        self.finished_check.emit(self.report)

    def is_running(self) -> bool:
        return self._process is not None

    # actions -----------------------------------------------------------------------------------------
    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())
        self.status.setText(
            "Copied to the clipboard: paste it into a message to your administrator or support."
        )

    def done(self, result: int) -> None:  # closing while the check runs ends the child process
        process = self._process
        if process is not None:
            self._process = None
            process.finished.disconnect(self._on_finished)
            process.kill()
            process.waitForFinished(3000)
            process.deleteLater()
        super().done(result)
