"""Undo/Redo actions and tool buttons for a page's QUndoStack (Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import QBoxLayout, QToolButton, QWidget


def add_undo_redo(page: QWidget, stack: QUndoStack, layout: QBoxLayout) -> tuple[QAction, QAction]:
    """Create the page's Undo and Redo actions (shortcuts active within the page) and their buttons."""
    undo = stack.createUndoAction(page, "Undo")
    undo.setShortcut(QKeySequence("Ctrl+Z"))
    redo = stack.createRedoAction(page, "Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    for action in (undo, redo):
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        page.addAction(action)
        button = QToolButton()
        button.setDefaultAction(action)
        layout.addWidget(button)
    return undo, redo
