"""The Train page's Samples tab: at each validation the model answers a few fixed validation prompts; this shows
each prompt with its reference answer and the model's answer (read-only, selectable), for the latest validation
or an earlier one picked from the list. Fed with the "samples" log events (core/training/samples.py)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.safe_inputs import SafeComboBox

OFF_TEXT = (
    "Sample answers are off for this run. Set “Sample answers” above 0 (Advanced settings → Training) to read "
    "the model's answers to a few validation prompts at each validation."
)
WAITING_TEXT = (
    "At each validation the model answers a few fixed validation prompts; its answers appear here next to the "
    "reference answers, so you can see them change as it trains. (Runs without validation examples have none.)"
)
DRIFT_WORDS = {
    "rambling": "answers do not end",
    "long": "answers much longer than the references",
    "short": "answers much shorter than the references",
}


def _text(value: Any) -> str:
    return html.escape(str(value or "")) or "<i>(empty)</i>"


class SamplesPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evaluations: list[tuple[int, list[dict[str, Any]], dict[str, Any]]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        layout.addWidget(self.stack)
        self.empty = QWidget()
        self.empty.setObjectName("samplesEmpty")
        empty_layout = QVBoxLayout(self.empty)
        empty_layout.setContentsMargins(40, 0, 40, 0)
        heading = QLabel("No sample answers yet")
        heading.setObjectName("emptyTitle")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # a wrapped label given the whole width (a centred layout item would not get its wrapped height)
        self.empty_text = QLabel(WAITING_TEXT)
        self.empty_text.setObjectName("emptyText")
        self.empty_text.setWordWrap(True)
        self.empty_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty_layout.addStretch(1)
        empty_layout.addWidget(heading)
        empty_layout.addWidget(self.empty_text)
        empty_layout.addStretch(2)
        self.stack.addWidget(self.empty)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 4, 0, 0)
        head = QHBoxLayout()
        self.step_combo = SafeComboBox()
        self.step_combo.setObjectName("samplesStep")
        self.step_combo.setToolTip("The validation whose sample answers are shown")
        self.step_combo.currentIndexChanged.connect(self._show_index)
        self.stats_label = QLabel("")
        self.stats_label.setObjectName("samplesStats")
        self.stats_label.setWordWrap(True)
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        head.addWidget(QLabel("Validation at"))
        head.addWidget(self.step_combo)
        head.addWidget(self.stats_label, 1)
        self.view = QTextBrowser()
        self.view.setObjectName("samplesView")
        self.view.setOpenLinks(False)
        self.view.setReadOnly(True)
        self.view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.view.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        content_layout.addLayout(head)
        content_layout.addWidget(self.view, 1)
        self.stack.addWidget(content)

    # --- data ------------------------------------------------------------------------------------------
    def reset(self, enabled: bool = True) -> None:
        """No samples: the empty state says why (sampling off for the run, or no validation yet)."""
        self.evaluations.clear()
        self.step_combo.blockSignals(True)
        self.step_combo.clear()
        self.step_combo.blockSignals(False)
        self.view.clear()
        self.stats_label.setText("")
        self.empty_text.setText(WAITING_TEXT if enabled else OFF_TEXT)
        self.stack.setCurrentWidget(self.empty)

    def load(self, events: list[dict[str, Any]], enabled: bool = True) -> None:
        """All sample events of a run (RunFolder.samples()); shows the latest."""
        self.reset(enabled)
        for event in events:
            self.add(int(event.get("step") or 0), event.get("samples") or [], event.get("sample_stats") or {})

    def add(self, step: int, samples: list[dict[str, Any]], stats: dict[str, Any]) -> None:
        """One validation's answers. The view follows the latest unless an earlier one is being read."""
        following = self.step_combo.currentIndex() in (-1, self.step_combo.count() - 1)
        self.evaluations = [e for e in self.evaluations if e[0] != step]  # a resumed run re-ran this step
        self.evaluations.append((step, list(samples), dict(stats)))
        self.evaluations.sort(key=lambda e: e[0])
        current = self.current_step()
        self.step_combo.blockSignals(True)
        self.step_combo.clear()
        for n, (s, _samples, _stats) in enumerate(self.evaluations):
            latest = n == len(self.evaluations) - 1
            self.step_combo.addItem(f"step {s}" + (" (latest)" if latest else ""), s)
        index = len(self.evaluations) - 1
        if not following and current is not None:
            index = max(0, self.step_combo.findData(current))
        self.step_combo.setCurrentIndex(index)
        self.step_combo.blockSignals(False)
        self.stack.setCurrentIndex(1)
        self._show_index(index)

    def current_step(self) -> int | None:
        data = self.step_combo.currentData()
        return int(data) if data is not None else None

    # --- view ------------------------------------------------------------------------------------------
    def _show_index(self, index: int) -> None:
        if not 0 <= index < len(self.evaluations):
            return
        step, samples, stats = self.evaluations[index]
        parts = []
        if stats:
            parts.append(
                f"answers average {float(stats.get('mean_tokens') or 0):.0f} tokens, the references "
                f"{float(stats.get('reference_mean_tokens') or 0):.0f}"
            )
            if stats.get("hit_max"):
                parts.append(
                    f"{stats['hit_max']} of {len(samples)} cut off at {stats.get('max_new_tokens')} tokens"
                )
        drift = DRIFT_WORDS.get(str(stats.get("drift")))
        text = " · ".join(parts)
        if drift:
            text += f" · <b style='color:#c0392b'>⚠ {drift}</b>"
        self.stats_label.setText(text)
        self.view.setHtml(self._html(step, samples))

    @staticmethod
    def _html(step: int, samples: list[dict[str, Any]]) -> str:
        cell = "white-space: pre-wrap; padding: 4px 8px; vertical-align: top;"
        rows = []
        for n, s in enumerate(samples, 1):
            earlier = int(s.get("context_turns") or 0)
            context = (
                f" <span style='color:#5c6473'>(after {earlier} earlier message{'s' * (earlier != 1)})</span>"
            )
            cut = " <span style='color:#c0392b'>did not end: cut off</span>" if s.get("hit_max") else ""
            rows.append(
                f"<h4 style='margin-bottom:2px'>Prompt {n}{context if earlier else ''}</h4>"
                f"<div style='{cell} background:#f4f6f9'>{_text(s.get('prompt'))}</div>"
                "<table width='100%' cellspacing='0' style='margin-top:4px; margin-bottom:10px'><tr>"
                f"<th align='left' width='50%'>Reference answer <span style='color:#5c6473; font-weight:normal'>"
                f"({s.get('reference_tokens', '?')} tokens)</span></th>"
                f"<th align='left' width='50%'>Model's answer at step {step} <span style='color:#5c6473; "
                f"font-weight:normal'>({s.get('tokens', '?')} tokens)</span>{cut}</th></tr>"
                f"<tr><td style='{cell}'>{_text(s.get('reference'))}</td>"
                f"<td style='{cell}'>{_text(s.get('answer'))}</td></tr></table>"
            )
        return "".join(rows)
