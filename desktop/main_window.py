"""The main window: a navigation rail with the five workflow pages, a menu bar and a status bar."""

from __future__ import annotations

import importlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QSize, Qt, QThread, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import core
from core.device import ComputeDevice, detect_device
from desktop.context import AppContext
from desktop.pages import PAGES

DATA_FILE_FILTER = "Datasets (*.jsonl *.json *.csv *.parquet *.wsdb);;All files (*)"


class _DeviceProbe(QObject):
    found = Signal(object)

    def run(self) -> None:
        self.found.emit(detect_device())


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext | None = None) -> None:
        super().__init__()
        self.ctx = ctx or AppContext()
        self.setWindowTitle("Whetstone")
        self.resize(1280, 800)
        self.setMinimumSize(QSize(900, 600))
        self._pages: dict[str, QWidget] = {}
        self._page_index: dict[str, int] = {}

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        rail = QWidget()
        rail.setFixedWidth(190)
        rail_layout = QVBoxLayout(rail)
        rail_layout.setContentsMargins(0, 0, 0, 0)
        rail_layout.setSpacing(0)
        brand = QLabel("Whetstone")
        brand.setObjectName("brand")
        sub = QLabel("offline fine-tuning")
        sub.setObjectName("brandSub")
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        rail_layout.addWidget(brand)
        rail_layout.addWidget(sub)
        rail_layout.addWidget(self.nav, 1)
        self.stack = QStackedWidget()
        self.stack.setObjectName("pageHost")
        row.addWidget(rail)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        for number, (key, title, _module, _cls) in enumerate(PAGES, 1):
            item = QListWidgetItem(f"{number}  {title}")
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.nav.addItem(item)
            placeholder = QWidget()
            self._page_index[key] = self.stack.addWidget(placeholder)
        self.nav.currentRowChanged.connect(self._on_nav)

        self._build_menus()
        self._build_status_bar()
        self.ctx.navigateRequested.connect(self.show_page)
        self.ctx.statusMessage.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.ctx.workspaceChanged.connect(self._on_workspace_changed)

        if self.ctx.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.ctx.settings.window_geometry.encode()))
        start = self.ctx.settings.last_page if self.ctx.settings.last_page in self._page_index else "data"
        self.show_page(start)
        if self.ctx.settings.warning:
            self.statusBar().showMessage(self.ctx.settings.warning, 15000)

    # pages ------------------------------------------------------------------------------------------
    def page(self, key: str) -> QWidget:
        """The page widget for `key`, created on first use (keeps window start fast)."""
        if key not in self._pages:
            spec = next(p for p in PAGES if p[0] == key)
            module = importlib.import_module(spec[2])
            widget = getattr(module, spec[3])(self.ctx)
            index = self._page_index[key]
            old = self.stack.widget(index)
            self.stack.insertWidget(index, widget)
            if old is not None:
                self.stack.removeWidget(old)
                old.deleteLater()
            self._pages[key] = widget
        return self._pages[key]

    def show_page(self, key: str) -> None:
        self.page(key)
        self.stack.setCurrentIndex(self._page_index[key])
        row = [p[0] for p in PAGES].index(key)
        if self.nav.currentRow() != row:
            self.nav.blockSignals(True)
            self.nav.setCurrentRow(row)
            self.nav.blockSignals(False)
        self.ctx.settings.last_page = key

    def _on_nav(self, row: int) -> None:
        if row >= 0:
            self.show_page(PAGES[row][0])

    # menus ------------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        open_action = QAction("&Open dataset…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.open_dataset_dialog)
        file_menu.addAction(open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        # Ctrl+Q spelled out: StandardKey.Quit is empty on some platform themes (then Quit had no key at all),
        # and application-wide so that it works whatever has the focus while a job runs.
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        # The workspace's one undo history (Data and Duplicates pages). Ctrl+Z stays with the pages' own actions:
        # the same shortcut here as well would be ambiguous.
        edit_menu = bar.addMenu("&Edit")
        self.undo_action = self.ctx.undo_stack.createUndoAction(self, "&Undo")
        self.redo_action = self.ctx.undo_stack.createRedoAction(self, "&Redo")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)

        go_menu = bar.addMenu("&Go")
        for number, (key, title, _m, _c) in enumerate(PAGES, 1):
            action = QAction(title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, k=key: self.show_page(k))
            go_menu.addAction(action)

        help_menu = bar.addMenu("&Help")
        diagnostics = QAction("&Diagnostics…", self)
        diagnostics.triggered.connect(self.show_diagnostics)
        help_menu.addAction(diagnostics)
        about = QAction("&About Whetstone", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = [p for p in self.ctx.settings.recent_workspaces if Path(p).exists()]
        if not recent:
            empty = self.recent_menu.addAction("No recent workspaces")
            empty.setEnabled(False)
            return
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))

    def open_dataset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open dataset", str(Path.home()), DATA_FILE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        self.show_page("data")
        self.ctx.openWorkspaceRequested.emit(path)

    def _on_workspace_changed(self, path: str) -> None:
        self.setWindowTitle(f"Whetstone — {self.ctx.workspace_name() or Path(path).name}")

    def show_diagnostics(self) -> None:
        """Help > Diagnostics: the `whetstone doctor` self-check, with a Copy to clipboard button."""
        from desktop.diagnostics import DiagnosticsDialog

        dialog = DiagnosticsDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.diagnostics_dialog = dialog
        dialog.show()
        dialog.start()

    def show_about(self) -> None:
        from desktop.about import about_text

        QMessageBox.about(self, "About Whetstone", about_text())

    # status bar -------------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        self.device_label = QLabel("Detecting compute device…")
        self.device_label.setObjectName("deviceLabel")
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().showMessage(f"Whetstone {core.__version__} · offline", 4000)
        self._probe_thread = QThread(self)
        self._probe = _DeviceProbe()
        self._probe.moveToThread(self._probe_thread)
        self._probe_thread.started.connect(self._probe.run)
        self._probe.found.connect(self._on_device)
        self._probe.found.connect(self._probe_thread.quit)
        self._probe_thread.start()

    def _on_device(self, device: ComputeDevice) -> None:
        self.device = device
        self.device_label.setText(device.describe())

    # lifecycle --------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        for widget in self._pages.values():
            can_close = getattr(widget, "can_close", None)
            if can_close is not None and not can_close():
                event.ignore()
                return
        for widget in self._pages.values():
            shutdown = getattr(widget, "shutdown", None)
            if shutdown is not None:
                shutdown()
        self.ctx.settings.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        try:
            self.ctx.save_settings()
        except OSError as exc:
            self.statusBar().showMessage(f"Settings could not be saved: {exc}")
        self._probe_thread.quit()
        self._probe_thread.wait(5000)
        super().closeEvent(event)
