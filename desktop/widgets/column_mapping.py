"""Column mapping dialog: say which of a spreadsheet's own columns is the question, the answer, the system
prompt, the id, the tags and the conversation id; the examples it gives are previewed live (first rows)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.data.mapping import FIELD_LABELS, MAP_FIELDS, ColumnMapping, FileSample, mapped_examples
from core.errors import UserError
from desktop.widgets.safe_inputs import SafeComboBox

NONE_TEXT = "(not in this file)"
PREVIEW_EXAMPLES = 20
_HELP = {
    "prompt": "what the customer/user asked",
    "completion": "the reply the model should learn to give",
    "system": "optional: instructions given to the model in every conversation",
    "id": "optional: kept with each example (e.g. a ticket number)",
    "tags": "optional: a category or labels (several separated by commas)",
    "conversation": "optional: rows with the same value become one conversation, in file order",
}


class ColumnMappingDialog(QDialog):
    def __init__(
        self,
        file_name: str,
        sample: FileSample,
        proposal: ColumnMapping | None,
        parent: QWidget | None = None,
        remembered: bool = False,
    ) -> None:
        super().__init__(parent)
        self.sample = sample
        self.setWindowTitle(f"Columns of {file_name}")
        self.resize(980, 680)
        layout = QVBoxLayout(self)
        columns = ", ".join(f"“{c}”" for c in sample.columns)
        source = (
            "the mapping you used for this file last time"
            if remembered
            else "a guess from the column names; check it"
        )
        intro = QLabel(
            f"<b>{html.escape(file_name)}</b> has its own columns ({html.escape(columns)}), not one of the "
            f"formats Whetstone reads by itself. Say which column is which; below is {source}."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.boxes: dict[str, QComboBox] = {}
        for key in MAP_FIELDS:
            box = SafeComboBox()
            box.addItem(NONE_TEXT, None)
            for c in sample.columns:
                box.addItem(c, c)
            value = getattr(proposal, key) if proposal is not None else None
            if value is not None and value in sample.columns:
                box.setCurrentIndex(box.findData(value))
            box.setToolTip(_HELP[key])
            box.currentIndexChanged.connect(self._refresh)
            self.boxes[key] = box
            hint = QLabel(_HELP[key])
            hint.setObjectName("muted")
            row = QWidget()
            row_layout = QVBoxLayout(row)
            row_layout.setContentsMargins(0, 0, 0, 0)
            row_layout.setSpacing(0)
            row_layout.addWidget(box)
            row_layout.addWidget(hint)
            form.addRow(FIELD_LABELS[key] + (" *" if key in ("prompt", "completion") else ""), row)
        layout.addLayout(form)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.preview = QTableWidget(0, 2)
        self.preview.setHorizontalHeaderLabels(["Rows", "Example as it will be trained on"])
        self.preview.verticalHeader().setVisible(False)
        self.preview.setWordWrap(True)
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.preview.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.preview, 1)
        buttons = QDialogButtonBox()
        self.import_button = QPushButton("Import")
        self.import_button.setObjectName("primary")
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._refresh()

    def set_column(self, key: str, column: str | None) -> None:
        box = self.boxes[key]
        box.setCurrentIndex(box.findData(column) if column is not None else 0)

    def mapping(self) -> ColumnMapping | None:
        """The chosen mapping; None while the question or the answer column is missing."""
        values = {k: box.currentData() for k, box in self.boxes.items()}
        if not values["prompt"] or not values["completion"]:
            return None
        return ColumnMapping(**values)

    def _refresh(self, *_: object) -> None:
        mapping = self.mapping()
        self.preview.setRowCount(0)
        if mapping is None:
            self.status.setText("Choose the question column and the answer column.")
            self.import_button.setEnabled(False)
            return
        try:
            mapping.check(self.sample.columns)
        except UserError as exc:
            self.status.setText(str(exc).replace("--map ", ""))
            self.import_button.setEnabled(False)
            return
        examples, errors = mapped_examples(self.sample.records, mapping)
        rows = len(self.sample.records)
        text = f"From the first {rows:,} rows: {len(examples):,} example{'s' if len(examples) != 1 else ''}"
        multi = sum(1 for e in examples if sum(m.role == "user" for m in e.messages) > 1)
        if multi:
            text += f" ({multi:,} with several turns)"
        if errors:
            text += (
                f"; {len(errors):,} row{'s' if len(errors) != 1 else ''} will be listed under Issues "
                f"(line {errors[0].line}: {errors[0].message})"
            )
        self.status.setText(text + ".")
        self.import_button.setEnabled(bool(examples))
        shown = examples[:PREVIEW_EXAMPLES]
        self.preview.setRowCount(len(shown))
        for r, ex in enumerate(shown):
            lines = [f"{m.role.capitalize()}: {' '.join(m.content.split())}" for m in ex.messages]
            meta = []
            if ex.id and (mapping.id or mapping.conversation):
                meta.append(f"id {ex.id}")
            if ex.tags:
                meta.append("tags " + ", ".join(ex.tags))
            if meta:
                lines.append("(" + "; ".join(meta) + ")")
            self.preview.setItem(r, 0, QTableWidgetItem(f"line {ex.line}"))
            self.preview.setItem(r, 1, QTableWidgetItem("\n".join(lines)))
        self.preview.resizeRowsToContents()
