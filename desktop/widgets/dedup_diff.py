"""Side-by-side view of two examples with word-level differences highlighted (difflib)."""

from __future__ import annotations

import difflib
import html
import re

from PySide6.QtWidgets import QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

_TOKENS = re.compile(r"\s+|[^\s]+")
DELETED = "background:#fbd5d5;color:#7a1212;"
INSERTED = "background:#d4f4dd;color:#0f5a26;"


def _escape(token: str) -> str:
    return html.escape(token).replace("\n", "<br>")


def diff_html(left: str, right: str) -> tuple[str, str]:
    """HTML of both texts: words only on the left are marked deleted, words only on the right inserted."""
    a = _TOKENS.findall(left)
    b = _TOKENS.findall(right)
    out_a: list[str] = []
    out_b: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        chunk_a = "".join(_escape(t) for t in a[i1:i2])
        chunk_b = "".join(_escape(t) for t in b[j1:j2])
        if op == "equal":
            out_a.append(chunk_a)
            out_b.append(chunk_b)
            continue
        if chunk_a:
            out_a.append(f'<span style="{DELETED}">{chunk_a}</span>')
        if chunk_b:
            out_b.append(f'<span style="{INSERTED}">{chunk_b}</span>')
    wrap = '<div style="font-size:13px; line-height:140%; white-space:pre-wrap;">{}</div>'
    return wrap.format("".join(out_a)), wrap.format("".join(out_b))


class DedupDiffView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.left_title = QLabel("")
        self.right_title = QLabel("")
        self.left = QTextBrowser()
        self.right = QTextBrowser()
        for title, view in ((self.left_title, self.left), (self.right_title, self.right)):
            title.setObjectName("muted")
            title.setWordWrap(True)
            column = QVBoxLayout()
            column.addWidget(title)
            column.addWidget(view, 1)
            row.addLayout(column, 1)
        self.similarity = 1.0

    def show_pair(self, left_title: str, left: str, right_title: str, right: str) -> None:
        a, b = diff_html(left, right)
        self.similarity = difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()
        self.left_title.setText(left_title)
        self.right_title.setText(right_title)
        self.left.setHtml(a)
        self.right.setHtml(b)

    def clear(self) -> None:
        self.left_title.setText("")
        self.right_title.setText("")
        self.left.clear()
        self.right.clear()
