"""Blind A/B review: a reviewer sees the prompt and two unlabeled answers (A, B) and votes with keys 1-4.

The widget only ever receives `BlindItem`s (prompt, answers A and B): which side is the tuned model stays in
the database (core/evaluation/review.py), so nothing on screen, in tooltips or in widget state can reveal
it. The results view (`ReviewResultsView`) reveals outcomes only in aggregate, after voting.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.evaluation.review import VOTE_LABELS, VOTES, BlindItem, ReviewResults, ReviewSession


def _text_box(object_name: str) -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setObjectName(object_name)
    box.setReadOnly(True)
    box.setFrameShape(QFrame.Shape.StyledPanel)
    return box


class BlindReviewWidget(QWidget):
    voted = Signal()  # after a vote was stored
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session: ReviewSession | None = None
        self._items: list[BlindItem] = []
        self._index = 0
        self._votes: dict[int, str] = {}

        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Reviewer:"))
        self.reviewer_edit = QLineEdit()
        self.reviewer_edit.setPlaceholderText("your name")
        self.reviewer_edit.setMaximumWidth(220)
        self.reviewer_edit.editingFinished.connect(self._reload_votes)
        top.addWidget(self.reviewer_edit)
        top.addSpacing(16)
        self.progress_label = QLabel("")
        top.addWidget(self.progress_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(240)
        self.progress_bar.setFormat("%v of %m voted")
        top.addWidget(self.progress_bar)
        top.addStretch(1)
        self.show_reference = QCheckBox("Show reference answer")
        self.show_reference.toggled.connect(self._show_current)
        top.addWidget(self.show_reference)
        layout.addLayout(top)

        layout.addWidget(QLabel("<b>Prompt</b>"))
        self.prompt_box = _text_box("reviewPrompt")
        self.prompt_box.setMaximumHeight(90)
        layout.addWidget(self.prompt_box)
        self.reference_label = QLabel("<b>Reference answer</b>")
        self.reference_box = _text_box("reviewReference")
        self.reference_box.setMaximumHeight(80)
        layout.addWidget(self.reference_label)
        layout.addWidget(self.reference_box)

        answers = QGridLayout()
        answers.addWidget(QLabel("<b>Answer A</b>"), 0, 0)
        answers.addWidget(QLabel("<b>Answer B</b>"), 0, 1)
        self.answer_a = _text_box("answerA")
        self.answer_b = _text_box("answerB")
        answers.addWidget(self.answer_a, 1, 0)
        answers.addWidget(self.answer_b, 1, 1)
        layout.addLayout(answers, 1)

        note_row = QHBoxLayout()
        note_row.addWidget(QLabel("Note:"))
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("optional: why (saved with your vote)")
        note_row.addWidget(self.note_edit, 1)
        layout.addLayout(note_row)

        buttons = QHBoxLayout()
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.clicked.connect(lambda: self.go(self._index - 1))
        buttons.addWidget(self.prev_button)
        buttons.addStretch(1)
        self.vote_buttons: dict[str, QPushButton] = {}
        for number, vote in enumerate(VOTES, 1):
            button = QPushButton(f"{number}  {VOTE_LABELS[vote]}")
            button.setCheckable(True)
            button.setMinimumWidth(120)
            button.clicked.connect(lambda _=False, v=vote: self.cast(v))
            buttons.addWidget(button)
            self.vote_buttons[vote] = button
            shortcut = QShortcut(QKeySequence(str(number)), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda v=vote: self.cast(v))
        buttons.addStretch(1)
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(lambda: self.go(self._index + 1))
        buttons.addWidget(self.next_button)
        layout.addLayout(buttons)
        hint = QLabel(
            "Keys: 1 = A better, 2 = B better, 3 = tie, 4 = both bad. The answers' order is random."
        )
        hint.setObjectName("hint")
        layout.addWidget(hint)
        self._show_current()

    # state ------------------------------------------------------------------------------------------
    def set_session(self, session: ReviewSession | None, reviewer: str = "") -> None:
        self._session = session
        self._items = session.items() if session is not None else []
        if reviewer:
            self.reviewer_edit.setText(reviewer)
        self._index = 0
        self._reload_votes()
        first_open = next((i for i, it in enumerate(self._items) if it.position not in self._votes), 0)
        self.go(first_open)

    def reviewer(self) -> str:
        return self.reviewer_edit.text().strip()

    def current_item(self) -> BlindItem | None:
        return self._items[self._index] if 0 <= self._index < len(self._items) else None

    def _reload_votes(self) -> None:
        if self._session is None or not self.reviewer():
            self._votes = {}
        else:
            self._votes = {pos: v.vote for pos, v in self._session.votes(self.reviewer()).items()}
        self._show_current()

    def go(self, index: int) -> None:
        if not self._items:
            self._index = 0
        else:
            self._index = max(0, min(index, len(self._items) - 1))
        self._show_current()

    def _show_current(self) -> None:
        item = self.current_item()
        total = len(self._items)
        done = sum(1 for it in self._items if it.position in self._votes)
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)
        if item is None:
            self.progress_label.setText("Nothing to review yet: run the evaluation first.")
            for box in (self.prompt_box, self.reference_box, self.answer_a, self.answer_b):
                box.setPlainText("")
        else:
            self.progress_label.setText(f"Item {self._index + 1} of {total}")
            self.prompt_box.setPlainText(item.prompt)
            self.reference_box.setPlainText(item.reference)
            self.answer_a.setPlainText(item.answer_a)
            self.answer_b.setPlainText(item.answer_b)
            if self._session is not None and self.reviewer():
                saved = self._session.votes(self.reviewer()).get(item.position)
                self.note_edit.setText(saved.note if saved else "")
        self.reference_label.setVisible(self.show_reference.isChecked())
        self.reference_box.setVisible(self.show_reference.isChecked())
        current = self._votes.get(item.position) if item is not None else None
        for vote, button in self.vote_buttons.items():
            button.setChecked(vote == current)
            button.setEnabled(item is not None)
        self.prev_button.setEnabled(self._index > 0)
        self.next_button.setEnabled(self._index < total - 1)

    def cast(self, vote: str) -> bool:
        """Store `vote` for the current item with the note, then move to the next unvoted item."""
        item = self.current_item()
        if item is None or self._session is None:
            return False
        try:
            self._session.vote(item.position, self.reviewer(), vote, self.note_edit.text())
        except UserError as exc:
            self.message.emit(str(exc))
            self.reviewer_edit.setFocus()
            return False
        self._votes[item.position] = vote
        self.note_edit.clear()
        self.voted.emit()
        order = list(range(self._index + 1, len(self._items))) + list(range(0, self._index))
        nxt = next((i for i in order if self._items[i].position not in self._votes), None)
        if nxt is None:
            self.message.emit(f"All {len(self._items)} items voted. See the review results.")
            self._show_current()
        else:
            self.go(nxt)
        return True


class ReviewResultsView(QWidget):
    """Win rate of tuned over base with the binomial p-value, per reviewer, agreement, notes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.headline = QLabel("No votes yet.")
        self.headline.setWordWrap(True)
        self.headline.setObjectName("reviewHeadline")
        layout.addWidget(self.headline)
        layout.addWidget(QLabel("<b>Reviewers</b>"))
        self.reviewers_table = self._table(
            ("Reviewer", "Votes", "Tuned wins", "Base wins", "Ties", "Both bad", "Win rate", "p-value")
        )
        self.reviewers_table.setMaximumHeight(150)
        layout.addWidget(self.reviewers_table)
        layout.addWidget(QLabel("<b>Agreement between reviewers</b>"))
        self.agreement_hint = QLabel(
            "Agreement appears once two or more reviewers have voted on the same items."
        )
        self.agreement_hint.setObjectName("hint")
        layout.addWidget(self.agreement_hint)
        self.agreement_table = self._table(
            ("Reviewers", "Shared items", "Percent agreement", "Cohen's kappa")
        )
        self.agreement_table.setMaximumHeight(130)
        layout.addWidget(self.agreement_table)
        layout.addWidget(QLabel("<b>Notes</b>"))
        self.notes_table = self._table(("Example", "Reviewer", "Preferred", "Note"))
        self.notes_table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.notes_table, 1)

    @staticmethod
    def _table(headers: tuple[str, ...]) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(list(headers))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setStretchLastSection(False)
        table.horizontalHeader().setMinimumSectionSize(70)
        return table

    def _fill(self, table: QTableWidget, rows: list[list[str]]) -> None:
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        if table is not self.notes_table:  # summary tables: as tall as their rows, up to a few
            rows_height = sum(table.rowHeight(r) for r in range(min(table.rowCount(), 5)))
            table.setMaximumHeight(table.horizontalHeader().sizeHint().height() + max(rows_height, 24) + 6)

    def set_results(self, results: ReviewResults | None) -> None:
        if results is None or results.overall.votes == 0:
            self.headline.setText(
                "No votes yet. Use the Blind review tab; results appear here as votes come in."
            )
            for table in (self.reviewers_table, self.agreement_table, self.notes_table):
                table.setRowCount(0)
            self.agreement_hint.setVisible(True)
            self.agreement_table.setVisible(False)
            return
        self.agreement_hint.setVisible(not results.agreement)
        self.agreement_table.setVisible(bool(results.agreement))
        o = results.overall
        rate = "–" if o.win_rate is None else f"{100 * o.win_rate:.0f}%"
        p = o.p_value
        verdict = ""
        if p is not None and o.win_rate is not None:
            if p < 0.05:
                verdict = " The difference is statistically significant (p &lt; 0.05)."
            else:
                verdict = " Not yet significant (p ≥ 0.05): more votes would help."
        self.headline.setText(
            f"<b>Tuned preferred in {rate} of decisive votes</b> ({o.tuned} tuned vs {o.base} base; "
            f"binomial test p = {'–' if p is None else f'{p:.3g}'}); {o.tie} ties, {o.both_bad} both bad; "
            f"{o.votes} votes on {results.items} examples.{verdict}"
        )

        def pct(v: float | None) -> str:
            return "–" if v is None else f"{100 * v:.0f}%"

        self._fill(
            self.reviewers_table,
            [
                [
                    name,
                    str(c.votes),
                    str(c.tuned),
                    str(c.base),
                    str(c.tie),
                    str(c.both_bad),
                    pct(c.win_rate),
                    "–" if c.p_value is None else f"{c.p_value:.3g}",
                ]
                for name, c in results.reviewers.items()
            ],
        )
        self._fill(
            self.agreement_table,
            [
                [
                    " & ".join(a["reviewers"]),
                    str(a["items"]),
                    pct(a["percent_agreement"]),
                    "–" if a["kappa"] is None else f"{a['kappa']:.2f}",
                ]
                for a in results.agreement
            ],
        )
        self._fill(
            self.notes_table,
            [
                [n["example_id"], n["reviewer"], n["outcome"].replace("_", " "), n["note"]]
                for n in results.notes
            ],
        )
