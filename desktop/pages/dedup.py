"""Duplicates page: find exact and near-duplicate examples in the open workspace and review them.

The search runs off the UI thread (`JobRunner`) with a progress bar showing rows/s and a Cancel button; it
reads the workspace through its own connection and caches embeddings in the workspace file. The threshold
slider re-clusters the stored pairs live (no re-embedding). Clusters are listed by size and score; two
members are shown side by side with differences highlighted. Removals are workspace edits (rows go to the
recoverable bin) on the workspace's one undo history, shared with the Data page (Ctrl+Z); "not a duplicate" is remembered in the workspace.
A near-duplicate pair across train and test is flagged as leakage even when both rows are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.dedup.review import ClusterStats
from core.errors import WhetstoneError
from desktop.context import AppContext, WorkspaceCommand
from desktop.widgets.dedup_diff import DedupDiffView
from desktop.widgets.dedup_preview import ClusterSample, RemovalPreviewDialog
from desktop.widgets.empty_state import EmptyState
from desktop.widgets.job_progress import JobProgress
from desktop.widgets.safe_inputs import SafeComboBox
from desktop.widgets.shortcuts import add_main_action_shortcut
from desktop.widgets.undo import add_undo_redo
from desktop.workers import JobRunner, JobSet

SLIDER_MIN = 850  # thresholds 0.850 .. 1.000 in steps of 0.001; pairs are kept down to the minimum
SLIDER_MAX = 1000
FLOOR = SLIDER_MIN / 1000
LEAK_COLOR = QColor("#b3261e")


@dataclass
class DedupRun:
    """What one search produced: row ids/texts/splits in workspace order and the finder's result."""

    ids: list[str]
    texts: list[str]
    splits: list[str | None]
    result: Any  # core.dedup.search.DedupResult
    ignored: set[tuple[str, str]] = field(default_factory=set)
    path: str = ""
    roles: tuple[str, ...] = ("user", "assistant")


class DedupPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.run: DedupRun | None = None
        self.views: list[ClusterStats] = []
        self._jobs = JobSet(self)
        self._embedders: dict[str, Any] = {}
        # tests replace this to run without the real model: (model id) -> embedder
        self.embedder_factory: Callable[[str], Any] | None = None
        self.undo_stack = ctx.undo_stack  # the workspace's one history, shared with the Data page
        self._alive: set[str] = set()
        self.preview_dialog: RemovalPreviewDialog | None = None  # open while a large removal is asked

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        root.addWidget(self.stack)
        self.empty = EmptyState(
            "Duplicates",
            "Open a dataset on the Data page first: this page finds exact and near-duplicate examples in the "
            "open workspace, lets you review them side by side and removes the ones you choose (undoable).",
            "Go to Data",
            lambda: self.ctx.navigateRequested.emit("data"),
        )
        self.stack.addWidget(self.empty)
        self.main = QWidget()
        self.stack.addWidget(self.main)
        self._build_main()
        ctx.workspaceChanged.connect(self._on_workspace_changed)
        ctx.workspaceBusy.connect(self._on_workspace_busy)
        ctx.workspaceEdited.connect(self._on_edited_elsewhere)
        self._on_workspace_changed()

    # --- layout ------------------------------------------------------------------------------------------
    def _build_main(self) -> None:
        layout = QVBoxLayout(self.main)
        layout.setContentsMargins(16, 12, 16, 8)

        top = QHBoxLayout()
        title = QLabel("Duplicates")
        title.setObjectName("pageTitle")
        top.addWidget(title)
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("muted")
        top.addWidget(self.subtitle, 1)
        self.undo_action, self.redo_action = add_undo_redo(self, self.undo_stack, top)
        layout.addLayout(top)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Model"))
        self.model_box = SafeComboBox()
        self.model_box.setMinimumWidth(160)
        controls.addWidget(self.model_box)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Compare turns"))
        self.role_boxes: dict[str, QCheckBox] = {}
        for role in ("system", "user", "assistant"):
            box = QCheckBox(role.capitalize())
            box.setChecked(role != "system")
            box.toggled.connect(self._update_compare_label)
            self.role_boxes[role] = box
            controls.addWidget(box)
        self.typos_box = QCheckBox("Catch typo variants")
        self.typos_box.setToolTip(
            "Also group pairs whose similarity is at least 0.80 when they share 85% of their character "
            "3-grams: texts that differ by a few typos, which the embedding model scores low."
        )
        controls.addWidget(self.typos_box)
        controls.addSpacing(12)
        self.find_button = QPushButton("Find duplicates")
        self.find_button.setObjectName("primary")
        self.find_button.clicked.connect(self.start)
        add_main_action_shortcut(self.find_button)
        controls.addWidget(self.find_button)
        controls.addStretch(1)
        layout.addLayout(controls)
        self.compare_label = QLabel("")
        self.compare_label.setWordWrap(True)
        self.compare_label.setObjectName("muted")
        layout.addWidget(self.compare_label)

        # the bar carries the outcome after the search ('Done in 3.1 s'), Cancel stays beside it
        self.job = JobProgress(self._jobs, bar_format="{percent:.0f}%  {message}", idle="keep")
        self.progress = self.job.bar
        self.cancel_button = self.job.cancel_button
        layout.addWidget(self.job)
        self._show_progress(False)  # an empty bar before the first search looked like a text field

        threshold_row = QHBoxLayout()
        threshold_row.addWidget(QLabel("Similarity threshold"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(SLIDER_MIN, SLIDER_MAX)
        self.slider.setValue(950)
        self.slider.setMaximumWidth(320)
        self.slider.valueChanged.connect(self._on_threshold)
        threshold_row.addWidget(self.slider)
        self.threshold_label = QLabel("0.950")
        self.threshold_label.setMinimumWidth(48)
        threshold_row.addWidget(self.threshold_label)
        self.summary = QLabel("Press “Find duplicates” to compare every example with every other.")
        self.summary.setWordWrap(True)
        threshold_row.addWidget(self.summary, 1)
        layout.addLayout(threshold_row)

        bulk = QHBoxLayout()
        bulk.addWidget(QLabel("In every cluster keep"))
        self.strategy_box = SafeComboBox()
        self.strategy_box.addItem("the longest", "longest")
        self.strategy_box.addItem("the first", "first")
        bulk.addWidget(self.strategy_box)
        self.bulk_button = QPushButton("Keep one per cluster")
        self.bulk_button.setToolTip(
            "Move all but one example of every cluster to the bin (clusters you marked 'keep all' or "
            "'not a duplicate' are left alone). Undo with Ctrl+Z."
        )
        self.bulk_button.clicked.connect(self.keep_one_per_cluster)
        bulk.addWidget(self.bulk_button)
        self.preview_button = QPushButton("Preview…")
        self.preview_button.setToolTip(
            "Show what “Keep one per cluster” would move: one kept and one moved example of every cluster, with "
            "the differences highlighted. Nothing moves unless you confirm."
        )
        self.preview_button.clicked.connect(lambda: self.keep_one_per_cluster(preview=True))
        bulk.addWidget(self.preview_button)
        bulk.addStretch(1)
        self.leak_label = QLabel("")
        self.leak_label.setStyleSheet("color:#b3261e; font-weight:600;")
        bulk.addWidget(self.leak_label)
        layout.addLayout(bulk)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.cluster_list = QListWidget()
        self.cluster_list.setMinimumWidth(240)
        self.cluster_list.setSpacing(3)
        self.cluster_list.setAlternatingRowColors(True)
        # each line ends in "…" at the list's edge (it scrolled sideways, every snippet cut mid-word)
        self.cluster_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.cluster_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cluster_list.currentRowChanged.connect(self._show_cluster)
        split.addWidget(self.cluster_list)

        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(8, 0, 0, 0)
        self.cluster_title = QLabel("")
        self.cluster_title.setWordWrap(True)
        self.cluster_title.setStyleSheet("font-weight:600;")
        dl.addWidget(self.cluster_title)
        self.members = QTableWidget(0, 5)
        self.members.setHorizontalHeaderLabels(["Row", "Split", "Best score", "Length", "Text"])
        self.members.verticalHeader().setVisible(False)
        self.members.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.members.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.members.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.members.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.members.setMaximumHeight(170)
        self.members.itemSelectionChanged.connect(self._on_member_selected)
        dl.addWidget(self.members)

        actions = QHBoxLayout()
        self.keep_longest_button = QPushButton("Keep longest")
        self.keep_longest_button.clicked.connect(lambda: self.keep_one("longest"))
        self.keep_first_button = QPushButton("Keep first")
        self.keep_first_button.clicked.connect(lambda: self.keep_one("first"))
        self.keep_selected_button = QPushButton("Keep selected")
        self.keep_selected_button.clicked.connect(lambda: self.keep_one("chosen"))
        self.keep_all_button = QPushButton("Keep all")
        self.keep_all_button.clicked.connect(self.keep_all)
        self.not_dup_button = QPushButton("Not a duplicate")
        self.not_dup_button.clicked.connect(self.not_duplicate)
        self.show_button = QPushButton("Show in Data")
        self.show_button.clicked.connect(self._show_in_data)
        self._decision_buttons = (
            self.keep_longest_button,
            self.keep_first_button,
            self.keep_selected_button,
            self.keep_all_button,
            self.not_dup_button,
        )
        for b in self._decision_buttons:
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.show_button)
        dl.addLayout(actions)

        compare = QHBoxLayout()
        compare.addWidget(QLabel("Compare"))
        self.left_box = SafeComboBox()
        self.right_box = SafeComboBox()
        self.left_box.currentIndexChanged.connect(self._show_diff)
        self.right_box.currentIndexChanged.connect(self._show_diff)
        compare.addWidget(self.left_box, 1)
        compare.addWidget(QLabel("with"))
        compare.addWidget(self.right_box, 1)
        dl.addLayout(compare)
        self.diff = DedupDiffView()
        dl.addWidget(self.diff, 1)
        split.addWidget(detail)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([300, 900])
        layout.addWidget(split, 1)
        self._set_cluster_actions_enabled(False)
        self._update_compare_label()
        self.bulk_button.setEnabled(False)
        self.preview_button.setEnabled(False)

    # --- workspace --------------------------------------------------------------------------------------
    @property
    def workspace(self) -> Any:
        return self.ctx.workspace

    def _on_workspace_changed(self, *_: object) -> None:
        self.cancel()
        self.run = None
        self.views = []
        self.undo_stack.clear()
        self.cluster_list.clear()
        self._clear_detail()
        self.progress.setValue(0)
        self.progress.setFormat("")
        self._show_progress(False)
        if self.workspace is None:
            self.stack.setCurrentWidget(self.empty)
            return
        self.stack.setCurrentWidget(self.main)
        self._fill_models()
        self.subtitle.setText(f"{self.workspace.count():,} examples in {self.ctx.workspace_name()}")
        self.summary.setText("Press “Find duplicates” to compare every example with every other.")
        self.leak_label.setText("")
        self.bulk_button.setEnabled(False)
        self.preview_button.setEnabled(False)

    def _fill_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        try:
            entries = self.ctx.registry.list("embedding")
        except Exception:  # a broken registry file must not break the page
            entries = []
        for entry in entries:
            self.model_box.addItem(f"{entry.id} ({entry.source})", entry.id)
        if not entries:
            self.model_box.addItem("all-minilm-l6-v2", "all-minilm-l6-v2")
        if current:
            index = self.model_box.findData(current)
            if index >= 0:
                self.model_box.setCurrentIndex(index)

    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, box in self.role_boxes.items() if box.isChecked())

    def _update_compare_label(self, *_: object) -> None:
        """Say in plain words what is compared, and what the threshold means."""
        from core.dedup.review import compared_sentence

        roles = self.roles()
        text = compared_sentence(roles)
        text += (
            f" Two examples are grouped when their similarity is at least {self.threshold():.3f} "
            "(1.000 = the same text; names and numbers that differ lower it only a little)."
        )
        if self.run is not None and tuple(self.run.roles) != roles:
            text += " The clusters below still compare the turns of the last search: press Find duplicates."
        self.compare_label.setText(text)

    # --- running ----------------------------------------------------------------------------------------
    def _embedder(self, model: str) -> Any:
        if model not in self._embedders:
            if self.embedder_factory is not None:
                self._embedders[model] = self.embedder_factory(model)
            else:
                from core.dedup.embed import Embedder

                self._embedders[model] = Embedder(model)
        return self._embedders[model]

    def start(self) -> None:
        ws = self.workspace
        if ws is None or self.is_running():
            return
        roles = self.roles()
        if not roles:
            QMessageBox.information(self, "Whetstone", "Tick at least one kind of turn to compare.")
            return
        model = str(self.model_box.currentData() or "all-minilm-l6-v2")
        path = ws.path
        threshold = self.threshold()
        lexical = 0.85 if self.typos_box.isChecked() else None

        def job(progress: Callable[[float, str], None], should_stop: Callable[[], bool]) -> DedupRun:
            from core.data.workspace import DatasetWorkspace
            from core.dedup.cache import EmbeddingCache
            from core.dedup.exact import example_text
            from core.dedup.review import NOT_DUPLICATE, DecisionStore
            from core.dedup.search import NearDuplicateFinder

            own = DatasetWorkspace.open(path)  # its own connection: the UI thread keeps using ctx.workspace's
            try:
                progress(0.0, "Reading examples")
                examples = own.examples()
                texts = [example_text(e, roles) for e in examples]
                finder = NearDuplicateFinder(self._embedder(model), EmbeddingCache.for_workspace(own))
                result = finder.run(
                    texts, threshold, floor=FLOOR, lexical=lexical, progress=progress, should_stop=should_stop
                )
                ignored = DecisionStore.for_workspace(own).pairs(NOT_DUPLICATE)
            finally:
                own.close()
            return DedupRun(
                [e.id for e in examples],
                texts,
                [e.split for e in examples],
                result,
                ignored,
                str(path),
                roles,
            )

        self.find_button.setEnabled(False)
        self.job.start(
            job,
            start_text="Starting…",
            finished=self._on_finished,
            failed=self._on_failed,
            cancelled=self._on_cancelled,
            done=self._on_done,
        )

    def _show_progress(self, on: bool) -> None:
        """The bar and its Cancel appear with the first search and then keep its outcome ('Done in 3.1 s')."""
        self.job.setVisible(on)

    @property
    def runner(self) -> JobRunner | None:
        """The search running now (None when none is)."""
        return self.job.runner

    def is_running(self) -> bool:
        return self.job.is_running()

    def cancel(self) -> None:
        self.job.cancel()

    def _on_finished(self, run: DedupRun) -> None:
        if self.workspace is None or str(self.workspace.path) != run.path:
            return  # the workspace changed while this search ran
        self.run = run
        self._sync_alive()
        self._update_compare_label()
        result = run.result
        self.progress.setValue(1000)
        self.progress.setFormat(self._done_line(result))
        notes = list(result.notes)
        if result.truncated:
            notes.append(
                f"{len(result.truncated):,} examples are longer than the model's limit: only their beginning "
                "was compared."
            )
        if notes:
            self.ctx.status(" ".join(notes), 10000)
        self.recluster()

    @staticmethod
    def _done_line(result: Any) -> str:
        """What the search did, in plain words: 'Done in 3.1 s · read 53 examples (17 a second), 237
        remembered from an earlier search'."""
        parts = []
        if result.embedded:
            speed = f" ({result.embed_rows_per_s:,.0f} a second)" if result.embed_rows_per_s >= 1 else ""
            parts.append(f"read {result.embedded:,} example{'s' if result.embedded != 1 else ''}{speed}")
        if result.cached:
            parts.append(f"{result.cached:,} remembered from an earlier search")
        return f"Done in {result.seconds:.1f} s" + (" · " + ", ".join(parts) if parts else "")

    def _on_failed(self, message: str) -> None:
        self.progress.setFormat(f"Failed: {message}")
        QMessageBox.warning(self, "Whetstone", message)

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.progress.setFormat("Cancelled — nothing was changed")

    def _on_done(self) -> None:
        self.find_button.setEnabled(True)

    # --- clusters ---------------------------------------------------------------------------------------
    def threshold(self) -> float:
        return self.slider.value() / 1000

    def _on_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 1000:.3f}")
        self._update_compare_label()
        if self.run is not None:
            self.recluster()

    def _sync_alive(self) -> None:
        ws = self.workspace
        self._alive = set(ws.ids()) if ws is not None else set()

    def recluster(self) -> None:
        """Clusters at the slider's threshold from the stored pairs (never re-embeds)."""
        from core.dedup.review import DecisionStore, review_clusters

        run = self.run
        if run is None:
            return
        self._sync_alive()  # rows removed elsewhere (Data page) drop out of the clusters
        t = self.threshold()
        alive = [run.ids[i] in self._alive for i in range(len(run.ids))]
        pairs = [p for p in run.result.pairs(t, run.ignored) if alive[p.a] and alive[p.b]]
        store = DecisionStore.for_workspace(self.workspace) if self.workspace is not None else None
        review = review_clusters(len(run.ids), pairs, run.splits, run.result.hashes, store)
        views = review.clusters
        self.views = views
        self._best = review.best
        leaks = review.leaks
        previous = self.cluster_list.currentRow()
        self.cluster_list.blockSignals(True)
        self.cluster_list.clear()
        for k, v in enumerate(views, 1):
            tags = []
            if v.exact:
                tags.append("exact")
            if v.typos:
                tags.append("typo variant")
            if v.leaks:
                tags.append("⚠ train/test leakage")
            if v.decision == "keep_all":
                tags.append("kept all")
            text = f"#{k}  ·  {len(v.rows)} examples  ·  best {v.best:.3f}"
            if tags:
                text += "\n" + "  ·  ".join(tags)
            text += "\n" + _snippet(run.texts[v.rows[0]], 70)
            item = QListWidgetItem(text)
            if v.leaks:
                item.setForeground(LEAK_COLOR)
            self.cluster_list.addItem(item)
        self.cluster_list.blockSignals(False)
        from core.dedup.review import share

        removable = sum(len(v.rows) - 1 for v in views if v.decision is None)
        self.summary.setText(
            f"{len(views):,} clusters · {sum(len(v.rows) for v in views):,} examples in clusters · "
            f"“Keep one per cluster” would move {share(removable, len(self._alive))} to the bin"
        )
        self.bulk_button.setText(
            f"Keep one per cluster ({removable:,} to the bin)" if removable else "Keep one per cluster"
        )
        self.leak_label.setText(
            f"⚠ {len(leaks)} near-duplicate pair(s) across train and test" if leaks else ""
        )
        self.bulk_button.setEnabled(removable > 0)
        self.preview_button.setEnabled(removable > 0)
        if views:
            self.cluster_list.setCurrentRow(min(max(previous, 0), len(views) - 1))
            self._show_cluster(self.cluster_list.currentRow())
        else:
            self._clear_detail()
            self.cluster_title.setText("No duplicates at this threshold.")

    def current_view(self) -> ClusterStats | None:
        row = self.cluster_list.currentRow()
        return self.views[row] if 0 <= row < len(self.views) else None

    def _clear_detail(self) -> None:
        self.cluster_title.setText("")
        self.members.setRowCount(0)
        self.left_box.clear()
        self.right_box.clear()
        self.diff.clear()
        self._set_cluster_actions_enabled(False)
        for button in (self.keep_longest_button, self.keep_first_button, self.keep_selected_button):
            button.setToolTip("")

    def _set_cluster_actions_enabled(self, on: bool) -> None:
        for b in (*self._decision_buttons, self.show_button):
            b.setEnabled(on)

    def _row_label(self, i: int) -> str:
        assert self.run is not None
        split = self.run.splits[i] or "no split"
        return f"Row {i + 1} · {split} · {len(self.run.texts[i]):,} chars"

    def _show_cluster(self, index: int) -> None:
        view = self.current_view()
        if view is None or self.run is None:
            self._clear_detail()
            return
        run = self.run
        title = f"Cluster #{index + 1}: {len(view.rows)} examples, best similarity {view.best:.3f}"
        if view.leaks:
            pairs = ", ".join(f"rows {leak.a + 1} & {leak.b + 1}" for leak in view.leaks[:3])
            title += f" — ⚠ leakage: {pairs} are in train/validation and test"
        if view.decision == "keep_all":
            title += " — you kept all"
        else:
            title += f" · keeping one moves {len(view.rows) - 1:,} to the bin"
        self.cluster_title.setText(title)
        self.members.setRowCount(len(view.rows))
        for r, i in enumerate(view.rows):
            cells = [
                str(i + 1),
                run.splits[i] or "no split",  # the Data page's word for it
                f"{self._best.get(i, 0.0):.3f}",
                f"{len(run.texts[i]):,}",
                " ".join(run.texts[i].split())[:200],
            ]
            for c, value in enumerate(cells):
                item = QTableWidgetItem(value)
                if c == 1 and run.splits[i] == "test" and view.leaks:
                    item.setForeground(LEAK_COLOR)
                self.members.setItem(r, c, item)
        for box in (self.left_box, self.right_box):
            box.blockSignals(True)
            box.clear()
            for i in view.rows:
                box.addItem(self._row_label(i), i)
            box.blockSignals(False)
        self.left_box.setCurrentIndex(0)
        self.right_box.setCurrentIndex(1 if len(view.rows) > 1 else 0)
        self.members.selectRow(0)
        self._set_cluster_actions_enabled(True)
        # The number each action moves is in the title and the tooltips: "(6 to the bin)" on every button made
        # the row wider than the panel at 1280 px, clipping the labels.
        moves = len(view.rows) - 1
        for button, which in (
            (self.keep_longest_button, "the longest example"),
            (self.keep_first_button, "the first example"),
            (self.keep_selected_button, "the example selected above"),
        ):
            button.setToolTip(
                f"Keep {which} and move the other {moves:,} to the bin (Ctrl+Z brings them back)"
            )
        self.keep_all_button.setToolTip(
            "Keep all of them (nothing is moved) and skip this cluster from now on"
        )
        self._show_diff()

    def _on_member_selected(self) -> None:
        rows = self.members.selectionModel().selectedRows()
        if rows and rows[0].row() > 0:
            self.right_box.setCurrentIndex(rows[0].row())

    def _show_diff(self, *_: object) -> None:
        if self.run is None:
            return
        a, b = self.left_box.currentData(), self.right_box.currentData()
        if a is None or b is None:
            self.diff.clear()
            return
        score = self._pair_score(int(a), int(b))
        suffix = f" · similarity {score:.3f}" if score is not None else ""
        self.diff.show_pair(
            self._row_label(int(a)),
            self.run.texts[int(a)],
            self._row_label(int(b)) + suffix,
            self.run.texts[int(b)],
        )

    def _pair_score(self, a: int, b: int) -> float | None:
        if self.run is None or a == b:
            return None
        res = self.run.result
        lo, hi = min(a, b), max(a, b)
        import numpy as np

        hit = np.nonzero((res.a == lo) & (res.b == hi))[0]
        return float(res.score[hit[0]]) if len(hit) else None

    def selected_row(self) -> int | None:
        view = self.current_view()
        rows = self.members.selectionModel().selectedRows()
        if view is None or not rows:
            return None
        return view.rows[rows[0].row()]

    # --- actions ----------------------------------------------------------------------------------------
    def _replay(self, command: WorkspaceCommand, redo: bool) -> None:
        """Undo or redo one of this page's removals (from the shared undo history) and refresh."""
        op = command.operation(redo)
        if self.workspace is None or op is None:
            return
        command.landed(redo, self.workspace.apply(op))
        self._after_edit()

    def _on_edited_elsewhere(self, page: str) -> None:
        """An undo/redo of a Data page step: rows may have come back or gone; cluster what is alive."""
        if page != "dedup" and self.run is not None and self.workspace is not None:
            self.recluster()

    def _after_edit(self) -> None:
        self._sync_alive()
        if self.workspace is not None:
            self.subtitle.setText(f"{self.workspace.count():,} examples in {self.ctx.workspace_name()}")
        self.ctx.workspaceEdited.emit("dedup")
        self.recluster()

    def _on_workspace_busy(self, text: str) -> None:
        """The Data page is changing many rows in the background: removals and undo wait for it."""
        busy = bool(text)
        self.undo_action.setEnabled(not busy and self.undo_stack.canUndo())
        self.redo_action.setEnabled(not busy and self.undo_stack.canRedo())

    def _confirmed(
        self, action: str, rows: list[int], samples: list[ClusterSample], always: bool = False
    ) -> bool:
        """Large removals (more than a few percent of the set) are previewed and asked first."""
        from core.dedup.review import needs_confirmation

        total = len(self._alive) or (self.workspace.count() if self.workspace is not None else 0)
        if not always and not needs_confirmation(len(rows), total):
            return True
        dialog = RemovalPreviewDialog(action, len(rows), total, samples, self)
        self.preview_dialog = dialog
        try:
            accepted = dialog.exec() == RemovalPreviewDialog.DialogCode.Accepted
        finally:
            self.preview_dialog = None
            dialog.deleteLater()
        if not accepted:
            self.ctx.status("Nothing was moved to the bin")
        return accepted

    def _sample(self, number: int, rows: list[int], keep: int) -> ClusterSample:
        assert self.run is not None
        moved = [r for r in rows if r != keep]
        return ClusterSample(number, keep, moved, self.run.texts[keep], self.run.texts[moved[0]])

    def _remove(self, rows: list[int], description: str) -> None:
        ws = self.workspace
        if ws is None or self.run is None or not rows:
            return
        if getattr(ws, "busy", None):
            self.ctx.status(
                f"The workspace is busy ({ws.busy}); remove the duplicates when that has finished."
            )
            return
        ids = [self.run.ids[i] for i in rows]
        try:
            from core.data.workspace import SetDeleted

            inverse = ws.apply(SetDeleted(description, ids, True))
        except ImportError:  # a workspace without operations: its delete() returns the inverse
            inverse = ws.delete(ids)
        except WhetstoneError as exc:
            QMessageBox.warning(self, "Whetstone", str(exc))
            return
        self.undo_stack.push(WorkspaceCommand(description, inverse, self._replay, len(ids)))
        self._after_edit()
        self.ctx.status(f"{description}: {len(ids)} example(s) moved to the bin (Ctrl+Z brings them back)")

    def keep_one(self, strategy: str) -> None:
        from core.dedup.review import choose_keeper

        view = self.current_view()
        if view is None or self.run is None:
            return
        if strategy == "chosen":
            keep = self.selected_row()
            if keep is None:
                QMessageBox.information(self, "Whetstone", "Select the example to keep in the table first.")
                return
        else:
            keep = choose_keeper(view.rows, self.run.texts, strategy)
        rows = [r for r in view.rows if r != keep]
        number = self.cluster_list.currentRow() + 1
        if len(rows) > 10 and not self._confirmed(
            f"Keep row {keep + 1}", rows, [self._sample(number, view.rows, keep)]
        ):
            return
        self._remove(rows, f"Keep row {keep + 1} of a duplicate cluster")

    def keep_one_per_cluster(self, preview: bool = False) -> None:
        """Move all but one row of every undecided cluster to the bin (one undo step); a removal of more than
        a few percent of the set, or `preview`, shows what would go first."""
        from core.dedup.review import choose_keeper

        if self.run is None:
            return
        strategy = str(self.strategy_box.currentData())
        rows: list[int] = []
        samples: list[ClusterSample] = []
        for number, view in enumerate(self.views, 1):
            if view.decision is not None:
                continue
            keep = choose_keeper(view.rows, self.run.texts, strategy)
            rows += [r for r in view.rows if r != keep]
            samples.append(self._sample(number, view.rows, keep))
        action = f"Keep one per cluster ({self.strategy_box.currentText()})"
        if not rows or not self._confirmed(action, rows, samples, always=preview):
            return
        self._remove(sorted(rows), f"Keep {strategy} of every duplicate cluster")

    def _decide(self, decision: str) -> None:
        from core.dedup.review import NOT_DUPLICATE, DecisionStore, hash_pair

        view = self.current_view()
        if view is None or self.run is None or self.workspace is None:
            return
        hashes = [self.run.result.hashes[i] for i in view.rows]
        DecisionStore.for_workspace(self.workspace).record(hashes, decision)
        if decision == NOT_DUPLICATE:
            unique = sorted(set(hashes))
            self.run.ignored |= {
                hash_pair(unique[x], unique[y]) for x in range(len(unique)) for y in range(x + 1, len(unique))
            }
        self.recluster()

    def keep_all(self) -> None:
        from core.dedup.review import KEEP_ALL

        self._decide(KEEP_ALL)
        self.ctx.status("Kept all examples of this cluster (remembered; leakage stays flagged)")

    def not_duplicate(self) -> None:
        from core.dedup.review import NOT_DUPLICATE

        self._decide(NOT_DUPLICATE)
        self.ctx.status("Marked as not duplicates (remembered for this workspace)")

    def _show_in_data(self) -> None:
        row = self.selected_row()
        if row is None or self.run is None:
            return
        self.ctx.showExampleRequested.emit(self.run.ids[row])
        self.ctx.navigateRequested.emit("data")

    # --- window hooks -----------------------------------------------------------------------------------
    def can_close(self) -> bool:
        return True

    def shutdown(self) -> None:
        self._jobs.shutdown()


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
