"""Data page: open a dataset into a workspace, then find, edit, fix, count, split and export its examples.

Every change is a core workspace operation wrapped in a WorkspaceCommand on the workspace's one undo history
(`AppContext.undo_stack`, shared with the Duplicates page; Ctrl+Z / Ctrl+Shift+Z); the workspace commits it at
once. Long jobs (import, token counting, text index) run in JobRunner threads. So do changes of
many rows (assign splits, bulk tag/move/delete, and their undo/redo): through a core BackgroundChange on a
second connection, with the editing actions disabled until it has landed; a one-row edit applies at once.

Its parts live beside it: changes and their undo in data_changes.py, token counting in data_tokens.py, the
export dialog in data_export.py; their functions take the page and DataPage binds them as its methods.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QItemSelection, QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.data.example import SPLITS, Example
from core.data.formats import FORMATS, RecordError
from core.data.workspace import (
    SUFFIX,
    DatasetWorkspace,
    Operation,
    TextIndex,
    remove_workspace_file,
    replace_workspace,
    staging_path_for,
    workspace_path_for,
)
from core.errors import WhetstoneError
from core.resources import resource_path
from desktop.context import AppContext, WorkspaceCommand
from desktop.pages import data_changes, data_export, data_tokens
from desktop.widgets.clearable_spin import ClearableSpinBox
from desktop.widgets.data_editor import ExampleEditor
from desktop.widgets.data_panels import IssuesPanel, LengthHistogram, SplitsPanel, TemplatePreviewView
from desktop.widgets.data_table import COL_ASSISTANT, COL_ISSUES, COL_TOKENS, COL_USER, ExampleTableModel
from desktop.widgets.empty_state import EmptyState
from desktop.widgets.job_progress import JobProgress
from desktop.widgets.safe_inputs import SafeComboBox, SafeSpinBox
from desktop.widgets.undo import add_undo_redo
from desktop.workers import JobRunner, JobSet

OPEN_FILTER = "Datasets (*.jsonl *.json *.csv *.parquet *.wsdb);;All files (*)"


class DataPage(QWidget):
    BACKGROUND_ROWS = 2_000  # changes of this many rows run in a worker thread (~25 µs a row in core)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.workspace: DatasetWorkspace | None = None
        self.counter: Any = None  # core.data.tokens.TokenCounter once loaded
        self._counter_model = ""
        self.probe: dict[str, Any] | None = None  # the last whole-set template probe (probe_workspace)
        self._jobs = JobSet(self, wait_ms=10000)  # every job the page runs (a bulk change commits first)
        self._count_job: JobRunner | None = None  # loading the tokenizer and/or counting tokens
        self._bulk: JobRunner | None = None  # the change of many rows running now
        self._opening: JobRunner | None = None  # opening a file, or reading it again, until its outcome
        self._bulk_text = ""
        self._queued: list[Callable[[], None]] = []  # what waits for it to land (token counts to store)
        self._current_id: str | None = None
        self._resetting = False
        self._seen_edit = 0
        self._aggregates: dict[str, Any] | None = None
        self._panels_stale = True
        # the workspace's one undo history, shared with the Duplicates page: it refuses undo/redo while a
        # bulk change runs (ctx.workspaceBusy)
        self.undo_stack = ctx.undo_stack
        self.mapping_dialog: Any = None  # the column mapping dialog while it is open

        root = QVBoxLayout(self)
        root.setContentsMargins(16, 12, 16, 8)
        self.stack = QStackedWidget()
        root.addWidget(self.stack, 1)
        self.empty = EmptyState(
            "Start with your examples",
            "Open a dataset: JSONL, JSON, CSV or Parquet, in Alpaca, ShareGPT, messages or prompt/completion "
            "form, or a spreadsheet with its own columns (you say which column is the question and which the "
            "answer). Whetstone keeps it in a workspace where every edit is saved at once, bad lines are listed "
            "so you can fix them, and you can split, count tokens and export.",
            "Open dataset…",
            self.open_dialog,
        )
        self.sample_button = QPushButton("Load sample dataset")
        self.sample_button.setToolTip("120 support tickets with JSON triage answers")
        self.sample_button.clicked.connect(self.load_sample)
        self.empty.add_widget(self.sample_button)
        body = self.empty.findChild(QLabel, "emptyText")
        if body is not None:  # the (width-limited) explanation, centred by EmptyState's row stretches
            body.setFixedWidth(560)
            body.setMinimumHeight(5 * body.fontMetrics().lineSpacing() + 12)  # room for the wrapped text
        self.stack.addWidget(self.empty)
        self.main = QWidget()
        self.stack.addWidget(self.main)
        self._build_main()

        # opening a file, loading a tokenizer, counting tokens: what it is left of the bar, the step in it
        self.job_row = JobProgress(self._jobs, bar_format="{message}", idle="hide")
        job_layout = self.job_row.layout()
        assert job_layout is not None
        job_layout.setContentsMargins(0, 4, 0, 0)
        self.job_label = self.job_row.label
        self.job_bar = self.job_row.bar
        self.job_cancel = self.job_row.cancel_button
        root.addWidget(self.job_row)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(250)
        self._filter_timer.timeout.connect(self.apply_filters)

        ctx.openWorkspaceRequested.connect(self.open_path)
        ctx.showExampleRequested.connect(self.show_example)
        ctx.workspaceEdited.connect(self._on_edited_elsewhere)
        self.stack.setCurrentWidget(self.empty)

    # --- layout ------------------------------------------------------------------------------------
    def _build_main(self) -> None:
        layout = QVBoxLayout(self.main)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.title = QLabel("")
        self.title.setObjectName("pageTitle")
        top.addWidget(self.title)
        top.addStretch(1)
        self.undo_action, self.redo_action = add_undo_redo(self, self.undo_stack, top)
        # The stack re-enables its actions as its index moves; while a bulk change runs they stay off.
        self.undo_stack.canUndoChanged.connect(self._keep_undo_off_while_busy)
        self.undo_stack.canRedoChanged.connect(self._keep_undo_off_while_busy)
        self.format_button = QToolButton()
        self.format_button.setText("Format")
        self.format_button.setToolTip("Read the file again as another format (the detected one may be wrong)")
        self.format_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        format_menu = QMenu(self.format_button)
        for fmt in FORMATS:
            format_menu.addAction(f"Read as {fmt}", partial(self.reimport, fmt))
        format_menu.addSeparator()
        format_menu.addAction("Map columns…", self.map_columns)
        self.format_button.setMenu(format_menu)
        top.addWidget(self.format_button)
        self.open_button = QPushButton("Open…")
        self.open_button.clicked.connect(self.open_dialog)
        top.addWidget(self.open_button)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_dialog)
        top.addWidget(self.export_button)
        layout.addLayout(top)
        # Says when the workspace is read-only (made by a newer Whetstone) or was just upgraded (and where the
        # copy of the file as it was is kept).
        self.notice = QLabel("")
        self.notice.setObjectName("workspaceNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)

        filters = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search text (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self._filter_timer.start())
        find = QAction(self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.triggered.connect(lambda: self.search.setFocus())
        self.addAction(find)
        filters.addWidget(self.search, 2)
        self.regex = QCheckBox("Regex")
        self.regex.toggled.connect(lambda _b: self.apply_filters())
        filters.addWidget(self.regex)
        self.split_filter = SafeComboBox()
        self.split_filter.addItem("All splits", None)
        for split in SPLITS:
            self.split_filter.addItem(split, split)
        self.split_filter.addItem("No split", "none")
        self.split_filter.currentIndexChanged.connect(lambda _i: self.apply_filters())
        filters.addWidget(self.split_filter)
        self.tag_filter = SafeComboBox()
        self.tag_filter.addItem("All tags", None)
        self.tag_filter.currentIndexChanged.connect(lambda _i: self.apply_filters())
        filters.addWidget(self.tag_filter)
        filters.addWidget(QLabel("Tokens"))
        self.min_tokens = ClearableSpinBox()
        self.min_tokens.setRange(0, 10_000_000)
        self.min_tokens.setSpecialValueText("min")
        self.min_tokens.valueChanged.connect(lambda _v: self._filter_timer.start())
        self.max_tokens = ClearableSpinBox()
        self.max_tokens.setRange(0, 10_000_000)
        self.max_tokens.setSpecialValueText("max")
        self.max_tokens.valueChanged.connect(lambda _v: self._filter_timer.start())
        filters.addWidget(self.min_tokens)
        filters.addWidget(self.max_tokens)
        self.issues_only = QCheckBox("Has issues")
        self.issues_only.toggled.connect(lambda _b: self.apply_filters())
        filters.addWidget(self.issues_only)
        layout.addLayout(filters)

        bulk = QHBoxLayout()
        self.count_label = QLabel("")
        bulk.addWidget(self.count_label)
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("muted")
        self.subtitle.setStyleSheet("color: #5c6473")
        bulk.addWidget(self.subtitle, 1)
        # A running bulk change shows here, beside the actions it disables (not in the job row under the
        # table: resizing the table walks every selected cell, 0.5 s with 50,000 rows selected).
        self.bulk_label = QLabel("")
        self.bulk_label.hide()
        bulk.addWidget(self.bulk_label)
        self.bulk_bar = QProgressBar()
        self.bulk_bar.setRange(0, 0)  # busy: one transaction, no steps to count
        self.bulk_bar.setTextVisible(False)
        self.bulk_bar.setFixedWidth(120)
        self.bulk_bar.hide()
        bulk.addWidget(self.bulk_bar)
        self.add_button = QPushButton("Add example")
        self.add_button.clicked.connect(self.add_example)
        bulk.addWidget(self.add_button)
        self.tag_button = QPushButton("Tag…")
        self.tag_button.clicked.connect(self.tag_selected)
        bulk.addWidget(self.tag_button)
        self.move_button = QToolButton()
        self.move_button.setText("Move to split")
        self.move_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        move_menu = QMenu(self.move_button)
        for split in SPLITS:
            move_menu.addAction(split, partial(self.move_selected, split))
        move_menu.addAction("no split", lambda: self.move_selected(None))
        self.move_button.setMenu(move_menu)
        bulk.addWidget(self.move_button)
        self.duplicate_button = QPushButton("Duplicate")
        self.duplicate_button.clicked.connect(self.duplicate_selected)
        bulk.addWidget(self.duplicate_button)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Move the selected examples to the bin (Del); undo brings them back")
        self.delete_button.clicked.connect(self.delete_selected)
        bulk.addWidget(self.delete_button)
        self.bin_button = QPushButton("Bin")
        self.bin_button.setToolTip("Restore examples you deleted")
        self.bin_button.clicked.connect(self.restore_bin)
        bulk.addWidget(self.bin_button)
        delete_action = QAction(self)
        delete_action.setShortcut(QKeySequence.StandardKey.Delete)
        delete_action.triggered.connect(self.delete_selected)
        layout.addLayout(bulk)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.model = ExampleTableModel(None, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.addAction(delete_action)
        delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = self.table.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(24)
        vh.setMinimumWidth(44)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        # The column header paints each section after asking whether its column is selected, which walks
        # every selected row through the model (0.4 s a repaint with 50,000 rows selected, seconds while a
        # bulk change runs). Rows are what gets selected here: the column header gets an empty selection.
        hh.setSelectionModel(QItemSelectionModel(self.model, hh))
        hh.resizeSection(COL_USER, 210)
        hh.resizeSection(COL_ASSISTANT, 170)
        hh.resizeSection(COL_TOKENS, 64)
        hh.resizeSection(COL_TOKENS + 1, 80)
        hh.resizeSection(COL_TOKENS + 2, 90)
        # The two text columns share what the short ones leave, so Tokens, Split and Tags stay in view at
        # 1280 wide (Split was cut at the edge); once the user drags a column, their widths stay.
        self._columns_sized_by_user = False
        self._fitting_columns = False
        hh.sectionResized.connect(self._on_section_resized)
        self.table.viewport().installEventFilter(self)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._on_selection())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        splitter.addWidget(self.table)

        self.tabs = QTabWidget()
        self.editor = ExampleEditor()
        self.editor.saved.connect(self.save_example)
        self.editor.historyRequested.connect(self.show_history)
        self.tabs.addTab(self.editor, "Example")
        self.preview = TemplatePreviewView()
        self.tabs.addTab(self.preview, "Template")
        self.issues = IssuesPanel()
        self.issues.fixRequested.connect(self.fix_bad_line)
        self.issues.discardRequested.connect(self.discard_bad_lines)
        self.issues.addAllRequested.connect(self.add_convertible_bad_lines)
        self.tabs.addTab(self.issues, "Issues")
        self.lengths = self._build_lengths_tab()
        self.tabs.addTab(self.lengths, "Lengths")
        self.splits = SplitsPanel()
        self.splits.assignRequested.connect(self.assign_splits)
        self.tabs.addTab(self.splits, "Splits")
        self.tabs.currentChanged.connect(self._on_tab)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([640, 420])
        layout.addWidget(splitter, 1)

    def _build_lengths_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        self.model_combo = SafeComboBox()
        try:
            entries = self.ctx.registry.list("base")
        except WhetstoneError:
            entries = []
        for entry in entries:
            self.model_combo.addItem(entry.id, entry.id)
        default = self.ctx.settings.default_base_model
        if self.model_combo.findData(default) < 0:
            self.model_combo.insertItem(0, default, default)
        self.model_combo.setCurrentIndex(self.model_combo.findData(default))
        self.model_combo.setToolTip("Tokens are counted with this model's tokenizer and chat template")
        row.addWidget(self.model_combo, 1)
        row.addWidget(QLabel("Max length"))
        self.max_length = SafeSpinBox()
        self.max_length.setRange(16, 1_000_000)
        self.max_length.setSingleStep(256)
        self.max_length.setValue(2048)
        self.max_length.valueChanged.connect(self._on_max_length)
        row.addWidget(self.max_length)
        self.count_button = QPushButton("Count tokens")
        self.count_button.setObjectName("primary")
        self.count_button.clicked.connect(self.count_tokens)
        row.addWidget(self.count_button)
        layout.addLayout(row)
        self.length_stats = QLabel("Token counts are not known yet: press Count tokens.")
        self.length_stats.setWordWrap(True)
        layout.addWidget(self.length_stats)
        self.histogram = LengthHistogram()
        layout.addWidget(self.histogram, 1)
        return tab

    # --- opening -----------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open dataset", str(Path.home()), OPEN_FILTER)
        if path:
            self.open_path(path)

    def load_sample(self) -> None:
        try:
            sample = resource_path("sample_dataset.jsonl")
        except WhetstoneError as exc:
            QMessageBox.warning(self, "Whetstone", str(exc))
            return
        self.open_path(str(sample))

    def open_path(self, path: str) -> None:
        """Open a workspace or a data file in the background. The workspace open now stays open and shown
        until the new one has loaded; Cancel leaves it so and removes what the import had written."""
        if self._refuse_while_busy() or self._refuse_while_opening() or not self.can_close():
            return
        name = Path(path).name
        made = _workspace_it_would_create(path)
        self._start_opening(
            f"Opening {name}…",
            lambda progress, should_stop: _open_and_load(path, progress, should_stop),
            self._on_opened,
            lambda: self._opening_cancelled(f"Opening {name}", made),
        )

    def reimport(self, fmt: str, confirm: bool = True) -> None:
        """Import the source file again with the format forced (replaces this workspace and its edits)."""
        if self._refuse_while_busy() or self._refuse_while_opening():
            return
        ws = self.workspace
        source = ws.meta("source") if ws is not None else None
        if ws is None or not source or not Path(source).exists():
            QMessageBox.warning(self, "Whetstone", "The original data file is not available to read again.")
            return
        if confirm and self._last_edit() > 0:
            answer = QMessageBox.question(
                self,
                "Read again",
                f"Reading {Path(source).name} again as {fmt} replaces this workspace and its edits. Continue?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._read_again(
            f"Reading {Path(source).name} as {fmt}",
            lambda staging, progress, should_stop: DatasetWorkspace.create_from_file(
                source, staging, fmt=fmt, progress=progress, should_stop=should_stop
            ),
            self._on_opened,
        )

    def _read_again(
        self,
        what: str,
        build: Callable[[Path, Any, Any], DatasetWorkspace],
        then: Callable[[DatasetWorkspace], None],
    ) -> None:
        """Replace the open workspace by its source file read again. `build(staging, progress, should_stop)`
        makes the new workspace beside it (core staging_path_for); the open one stays open, shown and untouched
        (editing off) until that is complete, and only then takes its place. Cancel or a failure leaves it
        exactly as it was."""
        ws = self.workspace
        assert ws is not None
        target = Path(ws.path)
        staging = staging_path_for(target)
        own: list[JobRunner] = []  # this job (the others are stopped before the swap)

        def job(progress: Any, should_stop: Any) -> DatasetWorkspace:
            built = build(staging, progress, should_stop)
            built.count()  # the row summaries, loaded here rather than on the UI thread
            return built

        def finished(built: DatasetWorkspace) -> None:
            if self.workspace is not ws:  # (the page was shut down meanwhile)
                built.close()
                remove_workspace_file(staging)
                return
            # every handle on the old file goes before the new one takes its place (a precaution: SQLite finds
            # the -wal/-shm by name, so a reader of the replaced file, the search index or a token count,
            # should not close after the new file has opened its own)
            others = [other for other in self._jobs if other not in own]
            for other in others:
                other.cancel()
            for other in others:
                other.wait()
            self.workspace = None
            ws.close()
            try:
                opened = replace_workspace(built, target)
            except (OSError, WhetstoneError) as exc:
                built.close()
                remove_workspace_file(staging)
                self._job_failed(f"{what} failed: {exc}")
                try:  # what is there now (os.replace moves the whole file or nothing)
                    self.set_workspace(DatasetWorkspace.open(target))
                except WhetstoneError as again:
                    self._job_failed(str(again))
                return
            self.set_workspace(opened)
            then(opened)

        def ended() -> None:
            # (a job stopped after it had built the file leaves it: nothing half-made stays)
            remove_workspace_file(staging)
            if self.workspace is ws:
                self._set_editing(ws.read_only is None)

        def cancelled() -> None:
            ended()
            self._opening_cancelled(what, None)

        def failed(message: str) -> None:
            ended()
            self._job_failed(message)

        self._set_editing(False)  # what is typed meanwhile would be replaced, or confuse a cancel
        own.append(self._start_opening(f"{what}…", job, finished, cancelled, failed))

    def _on_opened(self, workspace: DatasetWorkspace) -> None:
        self.set_workspace(workspace)
        self._offer_mapping(workspace)

    # --- column mapping (a spreadsheet with its own columns) --------------------------------------------
    def _offer_mapping(self, workspace: DatasetWorkspace, always: bool = False) -> None:
        """A file none of whose rows is a known format: ask which column is which, and import through it."""
        from core.data.mapping import ColumnMapping, propose_mapping, sample_file
        from desktop.widgets.column_mapping import ColumnMappingDialog

        source = workspace.meta("source")
        if not source or not Path(source).exists():
            if always:
                QMessageBox.warning(
                    self, "Whetstone", "The original data file is not available to read again."
                )
            return
        if not always and (workspace.count() or workspace.meta("mapping")):
            return
        try:
            sample = sample_file(source)
        except WhetstoneError as exc:
            if always:
                QMessageBox.warning(self, "Whetstone", str(exc))
            return
        if len(sample.columns) < 2 or (sample.known_format and not always):
            if always:
                QMessageBox.information(self, "Whetstone", "This file has fewer than two columns to map.")
            return
        key = str(Path(source).resolve())
        remembered = self.ctx.settings.extra.get("column_maps", {}).get(key) or workspace.meta("mapping")
        proposal = None
        if remembered:
            try:
                proposal = ColumnMapping.parse(remembered)
            except WhetstoneError:
                proposal = None
        dialog = ColumnMappingDialog(
            Path(source).name,
            sample,
            proposal or propose_mapping(sample),
            self,
            remembered=proposal is not None,
        )
        self.mapping_dialog = dialog
        try:
            accepted = dialog.exec() == ColumnMappingDialog.DialogCode.Accepted
            mapping = dialog.mapping()
        finally:
            self.mapping_dialog = None
            dialog.deleteLater()
        if not accepted or mapping is None:
            return
        maps = dict(self.ctx.settings.extra.get("column_maps", {}))
        maps[key] = mapping.to_text()
        self.ctx.settings.extra["column_maps"] = maps
        self.ctx.save_settings()
        self.import_with_mapping(mapping)

    def map_columns(self) -> None:
        """Format > Map columns…: read the source file again through a column mapping."""
        if self.workspace is None or self._refuse_while_busy():
            return
        if self._last_edit() > 0:
            answer = QMessageBox.question(
                self,
                "Map columns",
                "Reading the file again through a column mapping replaces this workspace and its edits. Continue?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._offer_mapping(self.workspace, always=True)

    def import_with_mapping(self, mapping: Any) -> None:
        ws = self.workspace
        source = ws.meta("source") if ws is not None else None
        if ws is None or not source:
            return
        if self._refuse_while_opening():
            return
        self._read_again(
            f"Reading {Path(source).name} through its columns",
            lambda staging, progress, should_stop: DatasetWorkspace.create_from_file(
                source, staging, mapping=mapping, progress=progress, should_stop=should_stop
            ),
            lambda _opened: None,
        )

    def set_workspace(self, workspace: DatasetWorkspace) -> None:
        """Show a workspace (the page takes ownership and closes the previous one)."""
        if self.workspace is not None and self.workspace is not workspace:
            self.workspace.close()
        self.workspace = workspace
        self.undo_stack.clear()
        self._queued.clear()  # undo steps of the previous workspace
        self._current_id = None
        self.model.set_workspace(workspace, workspace.ids())
        self.model.max_length = self.max_length.value()
        self.stack.setCurrentWidget(self.main)
        self.title.setText(Path(workspace.meta("source") or workspace.path).name)
        self._refresh_side_panels()
        self.apply_filters()
        if self.model.total():
            self.select_row(0)
        self._seen_edit = self._last_edit()
        self.ctx.set_workspace(workspace.path, workspace)
        self._show_notice(workspace)
        if workspace.source_changed:
            self.ctx.status(
                f"{self.title.text()} changed on disk after it was imported; this workspace keeps its own copy "
                "and your edits (File > Open the file again after deleting the workspace to re-import).",
                15000,
            )
        else:
            self.ctx.status(f"Opened {workspace.count():,} examples ({workspace.source_format})")
        if not workspace.search_ready:
            self._build_index_in_background()

    def _show_notice(self, workspace: DatasetWorkspace) -> None:
        if workspace.read_only:
            self.notice.setText(workspace.read_only)
        elif workspace.upgraded_from is not None:
            self.notice.setText(
                f"This workspace was upgraded from an older Whetstone (version {workspace.upgraded_from}); "
                f"the file as it was is kept at {workspace.backup_path} (remove it when you no longer need it)."
            )
        self.notice.setVisible(bool(workspace.read_only or workspace.upgraded_from is not None))
        self._set_editing(workspace.read_only is None)
        self.open_button.setEnabled(True)  # another file can always be opened

    def _build_index_in_background(self) -> None:
        from core.data.workspace import read_search_texts

        ws = self.workspace
        assert ws is not None
        ws.begin_background_index()
        path = ws.path
        runner = JobRunner(lambda progress, should_stop: read_search_texts(path, should_stop))

        def done(texts: TextIndex) -> None:
            if self.workspace is ws:
                ws.install_search_index(texts)

        runner.finished.connect(done)
        self._jobs.add(runner)
        runner.start()

    # --- jobs --------------------------------------------------------------------------------------
    def _start_job(
        self,
        label: str,
        fn: Any,
        on_done: Any,
        cancellable: bool = True,
        cancelled: Callable[[], Any] | None = None,
        failed: Callable[[str], Any] | None = None,
    ) -> JobRunner:
        """A job shown in the row under the table (`label` left of the bar; a fraction below 0 means none is
        known yet, as while a tokenizer loads: the bar shows it is busy and the label says what it does)."""
        return self.job_row.start(
            fn,
            title=label,
            cancellable=cancellable,
            finished=on_done,
            failed=failed or self._job_failed,
            cancelled=cancelled or (lambda: self.ctx.status("Cancelled")),
        )

    def _start_opening(
        self,
        label: str,
        fn: Any,
        finished: Callable[[Any], Any],
        cancelled: Callable[[], Any],
        failed: Callable[[str], Any] | None = None,
    ) -> JobRunner:
        """Opening or reading a file again: one at a time, cancellable; `_opening` is the job until its outcome."""

        def outcome(handler: Callable[..., Any]) -> Callable[..., None]:
            def run(*args: Any) -> None:
                self._opening = None
                handler(*args)

            return run

        runner = self._start_job(
            label,
            fn,
            outcome(finished),
            cancelled=outcome(cancelled),
            failed=outcome(failed or self._job_failed),
        )
        self._opening = runner
        return runner

    def _refuse_while_opening(self) -> bool:
        if self._opening is None:
            return False
        self.ctx.status(f"{self.job_label.text().rstrip('…')} is under way: wait for it, or press Cancel.")
        return True

    def _opening_cancelled(self, what: str, made: Path | None) -> None:
        """What Cancel leaves: the workspace open before (if any), as it was, and no new file. `made`: the
        workspace file the job was to create (None when it existed before), removed if the job got that far."""
        if made is not None and (self.workspace is None or Path(self.workspace.path) != made):
            try:
                remove_workspace_file(made)
            except OSError:
                pass
        if self.workspace is not None:
            self.ctx.status(f"{what} was cancelled; {self.title.text()} is open as it was.", 10000)
        else:
            self.ctx.status(f"{what} was cancelled; nothing was opened.", 10000)

    def _job_failed(self, message: str) -> None:
        QMessageBox.warning(self, "Whetstone", message)
        self.ctx.status(message, 10000)

    # --- filters -----------------------------------------------------------------------------------
    def filter_kwargs(self) -> dict[str, Any]:
        return {
            "text": self.search.text().strip(),
            "regex": self.regex.isChecked(),
            "split": self.split_filter.currentData(),
            "tag": self.tag_filter.currentData(),
            "min_tokens": self.min_tokens.value() or None,
            "max_tokens": self.max_tokens.value() or None,
            "has_issues": True if self.issues_only.isChecked() else None,
            "max_length": self.max_length.value(),
        }

    def apply_filters(self) -> None:
        ws = self.workspace
        if ws is None:
            return
        try:
            ids = ws.filter(**self.filter_kwargs())
            self.search.setStyleSheet("")
            self.search.setToolTip("")
        except WhetstoneError as exc:
            self.search.setStyleSheet("background: #ffe9ec")
            self.search.setToolTip(str(exc))
            return
        current = self._current_id
        selected = set(self.selected_ids())
        self._resetting = True
        row = -1
        try:
            self.model.set_rows(ids)
            if len(selected) > 1:
                self._reselect(selected)
            elif current is not None:
                row = self.model.row_of(current)
                if row >= 0:
                    self.select_row(row)
        finally:
            self._resetting = False
        total = ws.count()
        self.count_label.setText(
            f"{len(ids):,} of {total:,} examples" if len(ids) != total else f"{total:,} examples"
        )
        if current is not None and row < 0:
            self._current_id = None
            self._load_current()

    def _reselect(self, wanted: set[str]) -> None:
        """Select the rows of these ids again after the rows were refreshed (bulk actions keep their rows)."""
        rows = [r for r, i in enumerate(self.model.ids()) if i in wanted]
        if not rows:
            return
        self.model.row_of(self.model.id_at(rows[-1]))  # fetch far enough to show them
        selection = QItemSelection()
        start = prev = rows[0]
        for r in [*rows[1:], None]:
            if r is not None and r == prev + 1:
                prev = r
                continue
            selection.select(self.model.index(start, 0), self.model.index(prev, self.model.columnCount() - 1))
            if r is not None:
                start = prev = r
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def select_row(self, row: int) -> None:
        """Select one row (not through the view, whose selection follows held keyboard modifiers)."""
        index = self.model.index(row, 0)
        selection = self.table.selectionModel()
        selection.select(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _refresh_side_panels(self, aggregates: dict[str, Any] | None = None) -> None:
        """Tag filter, Issues tab, bin, balance and lengths; `aggregates` when a bulk change counted them."""
        ws = self.workspace
        if ws is None:
            return
        agg = aggregates if aggregates is not None else ws.aggregates()
        self._aggregates = agg
        current_tag = self.tag_filter.currentData()
        self.tag_filter.blockSignals(True)
        self.tag_filter.clear()
        self.tag_filter.addItem("All tags", None)
        for tag, n in agg["tags"].items():
            self.tag_filter.addItem(f"{tag} ({n:,})", tag)
        index = self.tag_filter.findData(current_tag)
        self.tag_filter.setCurrentIndex(max(0, index))
        self.tag_filter.blockSignals(False)
        bad = ws.bad_lines()
        self.issues.set_lines(bad)
        self.issues.set_convertible(len(ws.convertible_bad_lines()) if bad else 0)
        if self._bulk is not None:
            self.issues.set_enabled(False)
        self.tabs.setTabText(2, f"Issues ({len(bad):,})" if bad else "Issues")
        self.splits.set_locked(ws.test_locked)
        deleted = ws.deleted_count()
        self.bin_button.setText(f"Bin ({deleted:,})")
        self.bin_button.setEnabled(deleted > 0 and self._bulk is None)
        self._panels_stale = True
        self._refresh_visible_panel()
        conf = ws.meta("confidence")
        fmt = ws.source_format
        mapping = ws.meta("mapping")
        if (
            mapping
        ):  # read through the columns the user chose: nothing was "detected"; which ones in the tooltip
            read_as = " · read through your column mapping"
            self.subtitle.setToolTip(f"{_mapping_words(mapping)} (Format > Map columns… to change it)")
        else:
            read_as = f" · {fmt}" + (f", detected with {float(conf):.0%} confidence" if conf else "")
            self.subtitle.setToolTip("")
        self.subtitle.setText(
            f"{read_as} · {len(bad):,} bad lines" + (" · test split locked" if ws.test_locked else "")
        )

    def _refresh_visible_panel(self) -> None:
        """The balance table and the histogram are redrawn only while their tab shows (cheap edits at 100k)."""
        if not self._panels_stale or self._aggregates is None:
            return
        agg = self._aggregates
        current = self.tabs.currentWidget()
        if current is self.splits:
            self.splits.set_balance(agg["balance"], agg["splits"])
        elif current is self.lengths:
            self._show_length_stats(agg["tokens"])
        else:
            return
        self._panels_stale = False

    def _show_length_stats(self, counts: list[int]) -> None:
        from core.data.tokens import length_stats

        if not counts:
            self.length_stats.setText("Token counts are not known yet: press Count tokens.")
            self.histogram.set_counts([], self.max_length.value())
            return
        stats = length_stats(counts, self.max_length.value())
        self.length_stats.setText(
            f"{stats['n']:,} examples counted · mean {stats['mean']:,} · median {stats['median']:,} · "
            f"95% under {stats['p95']:,} · longest {stats['max']:,} · "
            f"<b>{stats['over_length']:,} longer than {self.max_length.value():,}</b>"
        )
        self.histogram.set_counts(counts, self.max_length.value())

    def _on_max_length(self, value: int) -> None:
        self.model.max_length = value
        self.model.layoutChanged.emit()
        if self._aggregates is not None:
            self._show_length_stats(self._aggregates["tokens"])

    # --- selection and editing ---------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        # From the selection's ranges: selectedRows() makes a Python index per row and column (0.7 s at 50k).
        rows: set[int] = set()
        # QItemSelection is a list of ranges (iterable at run time); PySide6's stub declares no __iter__
        for span in self.table.selectionModel().selection():  # type: ignore[attr-defined]
            rows.update(range(span.top(), span.bottom() + 1))
        total = self.model.total()
        return [self.model.id_at(r) for r in sorted(rows) if r < total]

    def _on_selection(self) -> None:
        if self._resetting:
            return
        ids = self.selected_ids()
        new = ids[0] if len(ids) == 1 else None
        if new == self._current_id:
            return
        pending = self.editor.current() if self.editor.dirty else None
        self._current_id = new
        if pending is not None:
            # Never lose typing when moving to another row: save it (one undo step reverts it).
            self.editor.set_example(None)
            self.save_example(pending)
        else:
            self._load_current()

    SHORT_COLUMNS = {COL_TOKENS: 64, COL_TOKENS + 1: 84, COL_TOKENS + 2: 90}  # tokens, split, tags

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if event.type() == QEvent.Type.Resize and watched is self.table.viewport():
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _on_section_resized(self, index: int, *_sizes: Any) -> None:
        # the last column stretches on its own whenever the table's width changes
        if not self._fitting_columns and index != COL_ISSUES:
            self._columns_sized_by_user = True

    def _fit_columns(self) -> None:
        if self._columns_sized_by_user:
            return
        hh = self.table.horizontalHeader()
        room = self.table.viewport().width() - sum(self.SHORT_COLUMNS.values()) - 4
        user = max(110, int(room * 0.55))
        self._fitting_columns = True
        try:
            hh.resizeSection(COL_USER, user)
            hh.resizeSection(COL_ASSISTANT, max(90, room - user))
            for col, width in self.SHORT_COLUMNS.items():
                hh.resizeSection(col, width)
        finally:
            self._fitting_columns = False

    def _load_current(self) -> None:
        ws = self.workspace
        if ws is None or self._current_id is None:
            self.editor.set_example(None)
            self.preview.show_message("Select one row to preview it.")
            return
        try:
            example = ws.get(self._current_id)
        except KeyError:
            self.editor.set_example(None)
            return
        self.editor.set_example(example)
        self._update_preview(example)

    def show_example(self, id_: str) -> None:
        """Select an example by id (other pages ask for this through ctx.showExampleRequested)."""
        if self.workspace is None:
            return
        row = self.model.row_of(id_)
        if row < 0:
            self.search.clear()
            self.split_filter.setCurrentIndex(0)
            self.tag_filter.setCurrentIndex(0)
            self.issues_only.setChecked(False)
            self.apply_filters()
            row = self.model.row_of(id_)
        if row >= 0:
            self.select_row(row)
            self.table.scrollTo(self.model.index(row, 0))
            self.tabs.setCurrentWidget(self.editor)

    def _apply_now(self, op: Operation) -> Operation:
        """Apply an operation (from a QUndoCommand) and refresh the views."""
        assert self.workspace is not None
        inverse = self.workspace.apply(op)
        self._after_change()
        return inverse

    def _after_change(self, aggregates: dict[str, Any] | None = None) -> None:
        self._recount_changed()
        self._refresh_side_panels(aggregates)
        self.apply_filters()
        self._load_current()
        self._seen_edit = self._last_edit()

    def _last_edit(self) -> int:
        if self.workspace is None:
            return 0
        return self.workspace.last_edit()

    def _on_edited_elsewhere(self, page: str) -> None:
        """Another page changed rows (Duplicates removed some, or an undo there replayed one of its steps):
        show it now if this page is showing (otherwise showEvent does)."""
        if page != "data" and self.workspace is not None and self._bulk is None and self.isVisible():
            self._after_change()

    def showEvent(self, event: Any) -> None:
        """Other pages edit the same workspace (Duplicates removes rows): show their changes on return."""
        super().showEvent(event)
        if self.workspace is not None and self._bulk is None and self._last_edit() != self._seen_edit:
            self._after_change()

    # --- changes -----------------------------------------------------------------------------------
    # (changes and undo: desktop/pages/data_changes.py)
    push = data_changes.push
    _replay = data_changes._replay
    _replay_failed = data_changes._replay_failed
    _start_bulk = data_changes._start_bulk
    _bulk_done = data_changes._bulk_done
    bulk_running = data_changes.bulk_running
    _refuse_while_busy = data_changes._refuse_while_busy

    def _set_editing(self, enabled: bool) -> None:
        """Editing actions on or off (off while a bulk change runs: one writer at a time)."""
        for widget in (
            self.add_button,
            self.tag_button,
            self.move_button,
            self.duplicate_button,
            self.delete_button,
            self.splits.assign_button,
            self.editor,
            self.format_button,
            self.open_button,
        ):
            widget.setEnabled(enabled)
        if not enabled:
            self.bin_button.setEnabled(False)
            self.issues.set_enabled(False)
        self._sync_undo_actions()

    def _keep_undo_off_while_busy(self, _can: bool) -> None:
        if self._bulk is not None:  # (only then: the stack also signals while the page is torn down)
            self._sync_undo_actions()

    def _sync_undo_actions(self) -> None:
        idle = self._bulk is None
        self.undo_action.setEnabled(idle and self.undo_stack.canUndo())
        self.redo_action.setEnabled(idle and self.undo_stack.canRedo())

    def save_example(self, example: Example) -> None:
        ws = self.workspace
        if ws is None:
            return
        self.push(lambda w: w.update_example(example), "Edit example")

    def history_lines(self, id_: str) -> list[str]:
        """The example's edit history as lines, newest first."""
        import datetime

        assert self.workspace is not None
        lines = []
        for entry in reversed(self.workspace.history(id_)):
            when = datetime.datetime.fromtimestamp(entry["at"]).strftime("%Y-%m-%d %H:%M:%S")
            before, after = entry["before"] or {}, entry["after"] or {}
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            detail = f" ({', '.join(changed)})" if changed else ""
            lines.append(f"{when}  {entry['op']}{detail}")
        return lines

    def show_history(self) -> None:
        if self.workspace is None or self._current_id is None:
            return
        lines = self.history_lines(self._current_id)
        QMessageBox.information(
            self,
            "Edit history",
            "\n".join(lines[:60]) if lines else "No edits yet: this example is as it was imported.",
        )

    def add_example(self) -> None:
        ws = self.workspace
        if ws is None:
            return
        after = self._current_id
        ids_before = set(ws.ids())
        if self.push(lambda w: w.add_example(after=after), "Add example"):
            new = [i for i in ws.ids() if i not in ids_before]
            if new:
                self.show_example(new[0])

    def tag_selected(self) -> None:
        ws = self.workspace
        ids = self.selected_ids()
        if ws is None or not ids or self._refuse_while_busy():
            return
        tag, ok = QInputDialog.getText(self, "Tag examples", f"Tag for {len(ids):,} examples:")
        if ok and tag.strip():
            self.push(
                lambda w: w.add_tag(ids, tag),
                f"Tag {len(ids):,} examples '{tag.strip()}'",
                len(ids),
                f"Tagging {len(ids):,} examples '{tag.strip()}'…",
            )

    def move_selected(self, split: str | None) -> None:
        ws = self.workspace
        ids = self.selected_ids()
        if ws is not None and ids:
            where = split or "no split"
            self.push(
                lambda w: w.set_split(ids, split),
                f"Move {len(ids):,} examples to {where}",
                len(ids),
                f"Moving {len(ids):,} examples to {where}…",
            )

    def duplicate_selected(self) -> None:
        ws = self.workspace
        ids = self.selected_ids()
        if ws is not None and ids:
            self.push(
                lambda w: w.duplicate(ids),
                f"Duplicate {len(ids):,} examples",
                len(ids),
                f"Duplicating {len(ids):,} examples…",
            )

    def delete_selected(self) -> None:
        ws = self.workspace
        ids = self.selected_ids()
        if ws is not None and ids and not self._refuse_while_busy():
            self._current_id = None
            self.push(
                lambda w: w.delete(ids),
                f"Delete {len(ids):,} examples",
                len(ids),
                f"Moving {len(ids):,} examples to the bin…",
                lambda: self.ctx.status(f"Moved {len(ids):,} examples to the bin (Ctrl+Z brings them back)"),
            )

    def restore_bin(self) -> None:
        ws = self.workspace
        if ws is None:
            return
        ids = ws.deleted_ids()
        if ids:
            self.push(
                lambda w: w.restore(ids),
                f"Restore {len(ids):,} examples",
                len(ids),
                f"Restoring {len(ids):,} examples…",
                lambda: self.ctx.status(f"Restored {len(ids):,} examples from the bin"),
            )

    def fix_bad_line(self, rowid: int, text: str) -> None:
        ws = self.workspace
        if ws is None:
            return
        try:
            inverse = ws.fix_bad_line(rowid, text)
        except RecordError as exc:
            self.issues.show_error(str(exc))
            return
        except WhetstoneError as exc:
            self.issues.show_error(str(exc))
            return
        self.undo_stack.push(WorkspaceCommand("Fix bad line", inverse, self._replay))
        self._after_change()
        self.ctx.status("The fixed line was added to the dataset")

    def discard_bad_lines(self, rowids: list[int]) -> None:
        ws = self.workspace
        if ws is None or not rowids or self._refuse_while_busy():
            return
        try:
            inverse = ws.discard_bad_lines(rowids)
        except WhetstoneError as exc:
            self.issues.show_error(str(exc))
            return
        plural = "s" if len(rowids) != 1 else ""
        self.undo_stack.push(
            WorkspaceCommand(f"Discard {len(rowids):,} bad line{plural}", inverse, self._replay)
        )
        self._after_change()
        n = len(rowids)
        self.ctx.status(f"Discarded {n:,} bad line{'s' if n != 1 else ''} (Ctrl+Z lists them again)")

    def add_convertible_bad_lines(self) -> None:
        ws = self.workspace
        if ws is None or self._refuse_while_busy():
            return
        try:
            inverse, added = ws.add_convertible_bad_lines()
        except WhetstoneError as exc:
            self.issues.show_error(str(exc))
            return
        plural = "s" if added != 1 else ""
        self.undo_stack.push(
            WorkspaceCommand(f"Add {added:,} line{plural} of another format", inverse, self._replay)
        )
        self._after_change()
        self.ctx.status(
            f"Added {added:,} line{plural} of another format to the dataset (Ctrl+Z takes them out)"
        )

    def assign_splits(self, ratios: tuple[float, float, float], seed: int, stratify: bool) -> None:
        ws = self.workspace
        if ws is None:
            return
        if sum(ratios) <= 0:
            QMessageBox.warning(self, "Whetstone", "The ratios must add up to more than zero.")
            return
        total = sum(ratios)
        norm = (ratios[0] / total, ratios[1] / total, ratios[2] / total)

        def report() -> None:
            counts = self._aggregates["splits"] if self._aggregates is not None else ws.split_counts()
            self.ctx.status(
                f"Splits: {counts['train']:,} train, {counts['validation']:,} validation, {counts['test']:,} test"
            )

        self.push(
            lambda w: w.assign_splits(norm, seed, "tag" if stratify else None),
            "Assign splits",
            ws.count(),  # every row is read and most change
            "Assigning splits…",
            report,
        )

    def _context_menu(self, pos: Any) -> None:
        menu = QMenu(self)
        menu.addAction("Tag…", self.tag_selected)
        move = menu.addMenu("Move to split")
        for split in SPLITS:
            move.addAction(split, partial(self.move_selected, split))
        move.addAction("no split", lambda: self.move_selected(None))
        menu.addAction("Duplicate", self.duplicate_selected)
        menu.addAction("Delete", self.delete_selected)
        for action in menu.actions():
            action.setEnabled(self._bulk is None)  # edits wait while a bulk change runs
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # --- tokens ------------------------------------------------------------------------------------
    # (tokens: desktop/pages/data_tokens.py)
    _model_id = data_tokens._model_id
    _ensure_counter = data_tokens._ensure_counter
    _loading_job = data_tokens._loading_job
    _start_tokens_job = data_tokens._start_tokens_job
    _recount_changed = data_tokens._recount_changed
    count_tokens = data_tokens.count_tokens
    _count_finished = data_tokens._count_finished

    RECOUNT_ROWS = 500  # rows counted again at once after an edit (more: press Count tokens)

    def _on_tab(self, index: int) -> None:
        self._panels_stale = True
        self._refresh_visible_panel()
        if self.tabs.widget(index) is self.preview and self._current_id is not None and self.counter is None:
            self._load_current()  # says it is loading the tokenizer, and loads it

    def _update_preview(self, example: Example) -> None:
        if self.counter is None:
            if self.tabs.currentWidget() is self.preview:
                # on the tab already: load the tokenizer (a cancellable job) and say so
                self.preview.show_message(
                    f"Loading the tokenizer of {self._model_id()} to show this row as the model sees it…"
                )
                self._ensure_counter(self._load_current)
            else:
                self.preview.show_message("The preview appears here once the model's tokenizer is loaded.")
            return
        try:
            result = self.counter.preview(example.messages_dicts(), self.max_length.value())
        except WhetstoneError as exc:
            self.preview.show_message(str(exc))
            return
        self.preview.show_preview(result, self.max_length.value())

    # --- export ------------------------------------------------------------------------------------
    # (export: desktop/pages/data_export.py)
    export_dialog = data_export.export_dialog
    export_to = data_export.export_to

    # --- lifecycle ---------------------------------------------------------------------------------
    def can_close(self) -> bool:
        if self.editor.dirty:
            self.editor.save()
        return True

    def shutdown(self) -> None:
        self._queued.clear()  # nothing waiting for a bulk change starts now
        self._jobs.shutdown()  # a bulk change commits first
        self._bulk = None
        if self.workspace is not None:
            self.workspace.close()


def _mapping_words(text: str) -> str:
    """`prompt=Customer question,completion=Agent answer` -> `Question: Customer question, answer: Agent answer`
    (the two columns that make the examples; the dialog shows the rest)."""
    from core.data.mapping import ColumnMapping

    try:
        mapping = ColumnMapping.parse(text)
    except WhetstoneError:
        return text
    return f"Question: {mapping.prompt}, answer: {mapping.completion}"


def _open_and_load(path: str, progress: Any, should_stop: Any = None) -> DatasetWorkspace:
    """Open (or import) in the worker thread, and load the row summaries there too."""
    from core.data.workspace import open_for_path

    workspace = open_for_path(path, progress=progress, should_stop=should_stop)
    workspace.count()
    return workspace


def _workspace_it_would_create(path: str) -> Path | None:
    """The workspace file opening `path` would create (None: a workspace, or a data file whose workspace
    exists already)."""
    file = Path(path).expanduser()
    if file.suffix == SUFFIX or not file.is_file():
        return None
    target = workspace_path_for(file)
    return None if target.exists() else target
