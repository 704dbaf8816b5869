"""Application start-up: QApplication, theme, main window; `--screenshot` renders and exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

from core.errors import WhetstoneError
from core.resources import resource_path


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Whetstone")
    app.setOrganizationName("Whetstone")
    from PySide6.QtGui import QIcon

    # A broken install loses the icon or the style, not the app: one line on stderr says which file.
    try:
        app.setWindowIcon(QIcon(str(resource_path("whetstone.svg"))))
    except WhetstoneError as exc:
        print(f"note: {exc}", file=sys.stderr)
    try:
        app.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))
    except WhetstoneError as exc:
        print(f"note: {exc}", file=sys.stderr)
    return app


def run_app(screenshot: str | None = None, page: str | None = None) -> int:
    app = create_app()
    from desktop.main_window import MainWindow

    window = MainWindow()
    _report_uncaught_errors(window)
    if page:
        window.show_page(page)
    window.show()
    if screenshot:
        target = Path(screenshot)

        def grab() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            ok = window.grab().save(str(target), "PNG")
            window.close()
            app.exit(0 if ok else 1)

        QTimer.singleShot(150, grab)
    return app.exec()


def _report_uncaught_errors(window: QWidget) -> None:
    """A failure in a button's handler: one plain line in a message box, the traceback in the log it names
    (instead of a traceback on a terminal nobody watches)."""
    from PySide6.QtWidgets import QMessageBox

    from core.failures import failure_line

    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if not isinstance(exc, Exception):
            previous(kind, exc, tb)
            return
        QMessageBox.warning(window, "Whetstone", failure_line(exc, "desktop-errors.log", "uncaught"))

    sys.excepthook = hook
