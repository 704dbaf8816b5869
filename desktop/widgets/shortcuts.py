"""The same key for each page's main action: Ctrl+Enter starts what the page is for (Find duplicates, Train,
Run evaluation, Export), as the button would when clicked."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractButton

MAIN_ACTION_KEYS = ("Ctrl+Return", "Ctrl+Enter")  # the main Enter key and the keypad's
MAIN_ACTION_HINT = "Ctrl+Enter"


def add_main_action_shortcut(button: QAbstractButton) -> list[QShortcut]:
    """Ctrl+Enter clicks `button` while it shows and is enabled. The shortcuts belong to the button, so only
    the page on screen answers (the pages of the window's stack share the key without clashing)."""
    shortcuts = []
    for key in MAIN_ACTION_KEYS:
        shortcut = QShortcut(QKeySequence(key), button)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(lambda b=button: b.click() if b.isVisible() and b.isEnabled() else None)
        shortcuts.append(shortcut)
    tip = button.toolTip()
    hint = f"({MAIN_ACTION_HINT})"
    if hint not in tip:
        button.setToolTip(f"{tip} {hint}".strip())
    return shortcuts
