"""Side panels of the Data page: template preview, length histogram, Issues list, splits + balance."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from core.data.example import SPLITS
from core.data.tokens import TemplatePreview
from core.data.workspace import BadLine
from desktop.widgets.safe_inputs import SafeDoubleSpinBox, SafeSpinBox


def default_system_note(text: str) -> str:
    """Plain words for a template's own system prompt shown in a preview (HTML)."""
    short = text if len(text) <= 90 else text[:87].rstrip() + "…"
    return (
        f"<i>“{html.escape(short)}” is not from your data: it is this model's default system prompt, which "
        "its chat template adds to every row without a system prompt (training sees it too). Give the row "
        "a system prompt to replace it.</i>"
    )


class TemplatePreviewView(QWidget):
    """The example as the model sees it; trained tokens (assistant replies) highlighted, token borders
    shown by alternating shades."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("Choose a model on the Lengths tab and select a row to preview it.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.probe_label = QLabel("")
        self.probe_label.setObjectName("templateProbe")
        self.probe_label.setWordWrap(True)
        self.probe_label.hide()
        layout.addWidget(self.probe_label)
        legend = QLabel(
            '<span style="background:#c8f0cf">&nbsp;trained (assistant)&nbsp;</span> '
            '<span style="background:#eef0f4">&nbsp;context (not trained)&nbsp;</span>'
        )
        layout.addWidget(legend)
        self.view = QTextEdit()
        self.view.setReadOnly(True)
        self.view.setObjectName("templatePreview")
        layout.addWidget(self.view, 1)
        self.preview: TemplatePreview | None = None

    def set_probe(self, text: str, problem: bool) -> None:
        """The whole-set template probe: rows that train no token (and why), the system-prompt fold note."""
        self.probe_label.setText(text)
        self.probe_label.setStyleSheet("color: #b02a2a; font-weight: 600;" if problem else "color: #3b4150;")
        self.probe_label.show()

    def show_message(self, text: str) -> None:
        self.preview = None
        self.summary.setText(text)
        self.view.clear()

    def show_preview(self, preview: TemplatePreview, max_length: int | None = None) -> None:
        self.preview = preview
        over = ""
        if max_length is not None and preview.count > max_length:
            over = f" — longer than the max length {max_length:,}: the end will be cut"
        lines = [f"{preview.count:,} tokens, {preview.trained:,} trained{over}"]
        if preview.reason:
            lines.append(f"<b>This row trains nothing: {html.escape(preview.reason)}.</b>")
        if preview.note:
            lines.append(html.escape(preview.note))
        if preview.default_system:
            lines.append(default_system_note(preview.default_system))
        self.summary.setText("<br>".join(lines))
        parts = []
        for i, tok in enumerate(preview.tokens):
            if tok.trained:
                colour = "#c8f0cf" if i % 2 else "#b2e6bc"
            else:
                colour = "#eef0f4" if i % 2 else "#e1e4ea"
            text = html.escape(tok.text).replace("\n", "↵<br>")
            parts.append(f'<span style="background:{colour}">{text}</span>')
        self.view.setHtml(
            '<div style="font-family: monospace; font-size: 12px; white-space: pre-wrap">'
            + "".join(parts)
            + "</div>"
        )


def _count_axis() -> Any:
    """A pyqtgraph axis for counts of examples: whole numbers only (it labelled 0.5, 1.5, ... examples)."""
    import pyqtgraph as pg

    class CountAxis(pg.AxisItem):
        def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
            levels = [(s, v) for s, v in super().tickValues(minVal, maxVal, size) if s >= 1]
            whole = [float(i) for i in range(math.ceil(minVal), math.floor(maxVal) + 1)]
            return levels or [(1.0, whole[:6])]

    return CountAxis("left")


class LengthHistogram(QWidget):
    """Histogram of token counts (pyqtgraph) with the max length marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background="w", axisItems={"left": _count_axis()})
        self.plot.setLabel("bottom", "tokens per example")
        self.plot.setLabel("left", "examples")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMinimumHeight(160)
        for side in ("bottom", "left"):  # token counts, not "x0.001" scaled units
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=1, brush="#5b9bff", pen=None)
        self.plot.addItem(self.bars)
        self.limit = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d9534f", width=2, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.limit)
        layout.addWidget(self.plot)
        self.counts: list[int] = []
        self.set_counts([])

    def set_counts(self, counts: Sequence[int], max_length: int | None = None) -> None:
        import numpy as np

        self.counts = list(counts)
        if not self.counts:  # nothing counted yet: an empty 0..max length frame, not pyqtgraph's -500..500
            self.bars.setOpts(x=[], height=[], width=1)
            right: float = max_length or 2048
            self.limit.setValue(right)
            self.limit.setVisible(max_length is not None)
            self.plot.setXRange(0, right, padding=0.02)
            self.plot.setYRange(0, 1, padding=0)
            self.plot.getAxis("left").setStyle(showValues=False)  # no "0.3 examples" before counting
            return
        self.plot.getAxis("left").setStyle(showValues=True)
        data = np.asarray(self.counts)
        lo, hi = int(data.min()), int(data.max())
        span = max(1, hi - lo + 1)
        bins = int(min(60, max(1, span)))
        heights, edges = np.histogram(data, bins=bins, range=(lo, hi + 1))
        width = float(edges[1] - edges[0])
        self.bars.setOpts(x=edges[:-1] + width / 2, height=heights, width=width * 0.9)
        right = hi + width
        # Show the limit when it is near the data; far beyond it would squash every bar into one.
        if max_length is not None and max_length <= hi * 1.5 + 16:
            self.limit.setValue(max_length)
            self.limit.show()
            right = max(right, max_length + width)
        else:
            self.limit.hide()
        self.plot.setXRange(max(0, lo - width), right, padding=0.02)
        self.plot.setYRange(0, max(1, int(heights.max())) * 1.08, padding=0)


def line_sentence(line: int, message: str) -> str:
    """`"Line 12 is not valid JSON (it ends early; ...)"` / `"Line 3: no assistant turn"`."""
    from core.data.plain import line_sentence as sentence

    text = sentence(line, message)
    return text[:1].upper() + text[1:]


class IssuesPanel(QWidget):
    """Bad lines from the imported file. Select one, fix its text, then 'Check and add'."""

    fixRequested = Signal(int, str)  # bad line rowid, edited text
    discardRequested = Signal(list)  # bad line rowids to take off the list
    addAllRequested = Signal()  # add every line that is a record of another supported format

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.heading = QLabel("No bad lines.")
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)
        self.list = QListWidget()
        self.list.setWordWrap(
            True
        )  # "Line 6: mixed formats: ..." runs past the panel; wrapped, it reads whole
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentItemChanged.connect(self._on_select)
        layout.addWidget(self.list, 1)
        self.reason = QLabel("")
        self.reason.setObjectName("warning")
        self.reason.setWordWrap(True)
        layout.addWidget(self.reason)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Select a bad line to see and fix its text")
        layout.addWidget(self.editor, 1)
        row = QHBoxLayout()
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Take this line off the list; it is not added (Ctrl+Z lists it again)")
        self.discard_button.clicked.connect(self._on_discard)
        row.addWidget(self.discard_button)
        self.discard_all_button = QPushButton("Discard all")
        self.discard_all_button.setToolTip("Take every listed line off the list (Ctrl+Z lists them again)")
        self.discard_all_button.clicked.connect(lambda: self.discardRequested.emit(list(self._lines)))
        row.addWidget(self.discard_all_button)
        self.add_all_button = QPushButton("Add all")
        self.add_all_button.setToolTip(
            "Add every line that is a valid record of another supported format (e.g. an alpaca line in a "
            "messages file) as it is, in one step"
        )
        self.add_all_button.clicked.connect(self.addAllRequested.emit)
        row.addWidget(self.add_all_button)
        row.addStretch(1)
        self.fix_button = QPushButton("Check and add")
        self.fix_button.setObjectName("primary")
        self.fix_button.setToolTip("Validate the edited record; when it is valid it joins the dataset")
        self.fix_button.clicked.connect(self._on_fix)
        row.addWidget(self.fix_button)
        layout.addLayout(row)
        self._lines: dict[int, BadLine] = {}
        self._convertible = 0
        self.set_lines([])

    def set_lines(self, lines: Sequence[BadLine]) -> None:
        current = self.current_rowid()
        self._lines = {b.rowid: b for b in lines}
        self.list.blockSignals(True)
        self.list.clear()
        for b in lines:
            item = QListWidgetItem(line_sentence(b.line, b.message))
            item.setData(Qt.ItemDataRole.UserRole, b.rowid)
            item.setToolTip(b.message)
            self.list.addItem(item)
        self.list.blockSignals(False)
        n = len(lines)
        self.heading.setText(
            "No bad lines: every record of the file was read."
            if not n
            else f"{n:,} line{'s' if n != 1 else ''} of the file could not be read. Fix one and add it back."
        )
        self.set_enabled(True)
        if current is not None and current in self._lines:
            self.select(current)
        elif n:
            self.list.setCurrentRow(0)
        else:
            self.editor.setPlainText("")
            self.reason.setText("")

    def set_convertible(self, n: int) -> None:
        """How many listed lines are valid records of another supported format ("Add all" adds them)."""
        self._convertible = n
        self.add_all_button.setText(f"Add all {n:,} of another format" if n else "Add all")
        self.add_all_button.setEnabled(n > 0 and self.fix_button.isEnabled())

    def set_enabled(self, on: bool) -> None:
        """The actions that change the dataset (off while a change of many rows runs)."""
        n = bool(self._lines) and on
        for button in (self.fix_button, self.discard_button, self.discard_all_button):
            button.setEnabled(n)
        self.add_all_button.setEnabled(n and self._convertible > 0)

    def _on_discard(self) -> None:
        rowid = self.current_rowid()
        if rowid is not None:
            self.discardRequested.emit([rowid])

    def select(self, rowid: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == rowid:
                self.list.setCurrentRow(i)
                return

    def current_rowid(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _on_select(self, item: QListWidgetItem | None, _prev: QListWidgetItem | None = None) -> None:
        if item is None:
            return
        bad = self._lines[int(item.data(Qt.ItemDataRole.UserRole))]
        self.reason.setText(line_sentence(bad.line, bad.message))
        self.editor.setPlainText(bad.raw)

    def show_error(self, message: str) -> None:
        self.reason.setText(f"Still not valid: {message}")

    def _on_fix(self) -> None:
        rowid = self.current_rowid()
        if rowid is not None:
            self.fixRequested.emit(rowid, self.editor.toPlainText())


class SplitsPanel(QWidget):
    """Ratios, seed and stratification for assigning splits; the lock state; the tag/split balance."""

    assignRequested = Signal(tuple, int, bool)  # ratios, seed, stratify by tag

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        ratio_row = QHBoxLayout()
        self.ratios: list[QDoubleSpinBox] = []
        for split, value in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
            spin = SafeDoubleSpinBox()
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(value)
            spin.setToolTip(f"Share of examples in {split}")
            ratio_row.addWidget(QLabel(split))
            ratio_row.addWidget(spin)
            self.ratios.append(spin)
        form.addRow("Ratios", ratio_row)
        self.seed = SafeSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(0)
        form.addRow("Seed", self.seed)
        self.stratify = QCheckBox("Stratify by tag (first tag of each example)")
        form.addRow("", self.stratify)
        layout.addLayout(form)
        self.lock_label = QLabel("")
        self.lock_label.setWordWrap(True)
        layout.addWidget(self.lock_label)
        row = QHBoxLayout()
        row.addStretch(1)
        self.assign_button = QPushButton("Assign splits")
        self.assign_button.setObjectName("primary")
        self.assign_button.clicked.connect(self._on_assign)
        row.addWidget(self.assign_button)
        layout.addLayout(row)
        layout.addWidget(QLabel("Balance (examples per tag and split)"))
        self.balance = QTableWidget(0, 5)
        self.balance.setHorizontalHeaderLabels([*SPLITS, "no split", "total"])
        self.balance.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.balance.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.balance, 1)
        self.set_locked(False)

    def set_locked(self, locked: bool) -> None:
        self.lock_label.setText(
            "The test split is locked: its examples stay the honest yardstick for evaluation. "
            "Assigning again only reshuffles train/validation."
            if locked
            else "The test split is created and locked by 'Assign splits'."
        )

    def _on_assign(self) -> None:
        ratios = tuple(s.value() for s in self.ratios)
        self.assignRequested.emit(ratios, self.seed.value(), self.stratify.isChecked())

    def set_balance(self, table: dict[str, dict[str, int]], totals: dict[str, int]) -> None:
        rows = list(table.items()) + [("all", totals)]
        self.balance.setRowCount(len(rows))
        self.balance.setVerticalHeaderLabels([r[0] for r in rows])
        for r, (_tag, counts) in enumerate(rows):
            values = [counts.get(s, 0) for s in (*SPLITS, "none")]
            for c, v in enumerate([*values, sum(values)]):
                item = QTableWidgetItem(f"{v:,}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.balance.setItem(r, c, item)
