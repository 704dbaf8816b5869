"""The same key for each page's main action: Ctrl+Enter starts what the page is for (Find duplicates, Train,
Run evaluation, Export), as the button would when clicked."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

MAIN_ACTION_KEYS = ("Ctrl+Return", "Ctrl+Enter")  # the main Enter key and the keypad's
MAIN_ACTION_HINT = "Ctrl+Enter"


def _has_own(widget: QWidget | None, keys: set[str], ours: list[QShortcut]) -> bool:
    """Whether `widget` answers one of `keys` itself (the Chat box's Ctrl+Enter sends the message)."""
    if widget is None:
        return False
    own = widget.findChildren(QShortcut, options=Qt.FindChildOption.FindDirectChildrenOnly)
    return any(s not in ours and s.isEnabled() and s.key().toString() in keys for s in own)


class _StandAside(QObject):
    """Turns the shortcuts off while the focus is in a widget that answers the same key itself."""

    def __init__(self, shortcuts: list[QShortcut], parent: QObject) -> None:
        super().__init__(parent)
        self.shortcuts = shortcuts
        self.keys = {QKeySequence(k).toString() for k in MAIN_ACTION_KEYS}

    @Slot(QWidget, QWidget)
    def on_focus(self, _old: QWidget | None, new: QWidget | None) -> None:
        stand_aside = _has_own(new, self.keys, self.shortcuts)
        for shortcut in self.shortcuts:
            shortcut.setEnabled(not stand_aside)


def add_main_action_shortcut(button: QAbstractButton) -> list[QShortcut]:
    """Ctrl+Enter clicks `button` while it shows and is enabled. The shortcuts belong to the button, so only
    the page on screen answers (the pages of the window's stack share the key without clashing); they step
    aside while the focus is in a widget with its own Ctrl+Enter (two live shortcuts on one key would make
    Qt run neither)."""
    shortcuts = []
    for key in MAIN_ACTION_KEYS:
        shortcut = QShortcut(QKeySequence(key), button)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(lambda b=button: b.click() if b.isVisible() and b.isEnabled() else None)
        shortcuts.append(shortcut)
    app = QApplication.instance()
    if isinstance(app, QApplication):
        guard = _StandAside(shortcuts, button)  # a child of the button: Qt disconnects it when the page goes
        app.focusChanged.connect(guard.on_focus)
    tip = button.toolTip()
    hint = f"({MAIN_ACTION_HINT})"
    if hint not in tip:
        button.setToolTip(f"{tip} {hint}".strip())
    return shortcuts
