"""The commands to run an exported GGUF (Ollama, llama.cpp), each with a Copy button, and the system prompt
the Modelfile carries."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QLineEdit, QPushButton, QWidget


class RunCommands(QGroupBox):
    """Shows `commands` ({"label", "command"}) from an export result; empty means hidden."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run it", parent)
        self.setObjectName("runCommands")
        self._grid = QGridLayout(self)
        self._grid.setColumnStretch(1, 1)
        self.system_label = QLabel()
        self.system_label.setObjectName("systemPromptNote")
        self.system_label.setWordWrap(True)
        self.system_label.setStyleSheet("color: #555;")
        self.fields: list[QLineEdit] = []
        self.copy_buttons: list[QPushButton] = []
        self.setVisible(False)

    def show_commands(self, commands: list[dict[str, str]], system: dict[str, Any] | None) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None and widget is not self.system_label:
                widget.deleteLater()
        self.fields, self.copy_buttons = [], []
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for row, entry in enumerate(commands):
            field = QLineEdit(entry["command"])
            field.setReadOnly(True)
            field.setFont(mono)
            field.setCursorPosition(0)
            field.setToolTip(entry["command"])
            copy = QPushButton("Copy")
            copy.setToolTip(f"Copy this command: {entry['label'].lower()}")
            copy.clicked.connect(lambda _=False, text=entry["command"], b=copy: self._copy(text, b))
            self._grid.addWidget(QLabel(entry["label"]), row, 0)
            self._grid.addWidget(field, row, 1)
            self._grid.addWidget(copy, row, 2)
            self.fields.append(field)
            self.copy_buttons.append(copy)
        sentence = str((system or {}).get("sentence") or "")
        self.system_label.setText(sentence)
        self.system_label.setVisible(bool(sentence))
        self._grid.addWidget(self.system_label, len(commands), 0, 1, 3)
        self.setVisible(bool(commands))

    def _copy(self, text: str, button: QPushButton) -> None:
        QGuiApplication.clipboard().setText(text)
        for b in self.copy_buttons:
            b.setText("Copy")
        button.setText("Copied")
