"""The preview shown before a large duplicate removal: how many rows would move, and one kept and one moved
example of each cluster with what differs highlighted. Accepting moves the rows (one undo step)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.dedup_diff import diff_html

MAX_CLUSTERS_SHOWN = 60


@dataclass
class ClusterSample:
    number: int  # the cluster's number in the list (1-based)
    keep: int  # row kept (0-based)
    moved: list[int]  # rows that would go to the bin
    keep_text: str
    moved_text: str  # the first moved row's text


class RemovalPreviewDialog(QDialog):
    """Asks before moving `moved` of `total` rows; Cancel is the default button."""

    def __init__(
        self,
        action: str,
        moved: int,
        total: int,
        samples: Sequence[ClusterSample],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from core.dedup.review import share

        self.moved = moved
        self.setWindowTitle(f"Move {moved:,} examples to the bin?")
        self.resize(900, 640)
        layout = QVBoxLayout(self)
        clusters = len(samples)
        self.headline = QLabel(
            f"<b>“{html.escape(action)}” would move {share(moved, total)} to the bin</b>, from "
            f"{clusters:,} cluster{'s' if clusters != 1 else ''}."
        )
        self.headline.setWordWrap(True)
        layout.addWidget(self.headline)
        note = QLabel(
            "Whether these rows are duplicates is your call. Below, for each cluster, the example that stays "
            "and one that would go, with the words that differ highlighted (green: only in the one that stays, "
            "red: only in the one that goes). If they differ in what matters to you (a different question, a different "
            "product), cancel and mark that cluster “Not a duplicate”. The removal is one step: Ctrl+Z brings "
            "every row back."
        )
        note.setWordWrap(True)
        note.setObjectName("muted")
        layout.addWidget(note)
        self.samples = QTextBrowser()
        self.samples.setHtml(self._samples_html(samples))
        layout.addWidget(self.samples, 1)
        buttons = QDialogButtonBox()
        self.move_button = QPushButton(f"Move {moved:,} examples to the bin")
        self.cancel_button = QPushButton("Cancel")
        buttons.addButton(self.move_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.move_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        self.cancel_button.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _samples_html(samples: Sequence[ClusterSample]) -> str:
        parts: list[str] = []
        for s in samples[:MAX_CLUSTERS_SHOWN]:
            # the row that goes is the "deleted" side (red), the row that stays the "inserted" one (green)
            moved, kept = diff_html(s.moved_text, s.keep_text)
            others = len(s.moved) - 1
            more = f" and {others:,} more like it" if others > 0 else ""
            parts.append(
                f"<h4 style='margin:10px 0 4px 0;'>Cluster #{s.number}: keeps row {s.keep + 1}, moves "
                f"{len(s.moved):,} row{'s' if len(s.moved) != 1 else ''}</h4>"
                "<table width='100%' cellspacing='0' cellpadding='6' style='border:1px solid #ccc;'><tr>"
                f"<td width='50%' valign='top'><b style='color:#0f5a26'>✓ Stays (row {s.keep + 1})</b><br>{kept}</td>"
                f"<td width='50%' valign='top'><b style='color:#7a1212'>→ Goes to the bin (row {s.moved[0] + 1}){more}"
                f"</b><br>{moved}</td>"
                "</tr></table>"
            )
        if len(samples) > MAX_CLUSTERS_SHOWN:
            parts.append(f"<p>… and {len(samples) - MAX_CLUSTERS_SHOWN:,} more clusters.</p>")
        return "".join(parts)
