"""The Evaluate page's Chat tab: talk to the base and the tuned model side by side.

The same message goes to both models; the base model answers first, then the tuned one, each streamed into its
own column as it is written (core/evaluation/chat.py, in a QThread). The conversation keeps going per column
(each model sees its own earlier answers). The system prompt starts as the one the training rows used.
Stop ends the answer within one token. The models are loaded on the first message and kept until the run
changes or the page closes.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.safe_inputs import SafeSpinBox

SIDE_TITLES = {"base": "Base model", "tuned": "Tuned model"}


class _ChatJob(QObject):
    """Runs in a QThread: loads the models when needed, then answers with each side in turn."""

    loaded = Signal(object)  # ChatModels
    status = Signal(str)
    piece = Signal(str, str)  # side, text
    cut = Signal(str, int)  # side, the token limit its answer stopped at
    answered = Signal(str, str)  # side, whole answer
    failed = Signal(str)
    stopped = Signal()

    def __init__(
        self, run_dir: Path, models: Any, conversations: dict[str, list[dict[str, str]]], settings: Any
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.models = models
        self.conversations = conversations
        self.settings = settings
        self.stop = threading.Event()

    def run(self) -> None:
        from core.errors import Cancelled, WhetstoneError

        try:
            if self.models is None:
                from core.evaluation.chat import ChatModels

                self.status.emit("Loading the base model and the adapter…")
                self.models = ChatModels(self.run_dir)
                self.loaded.emit(self.models)
            for side in ("base", "tuned"):
                if self.stop.is_set():
                    raise Cancelled("stopped")
                self.status.emit(f"The {side} model is answering…")
                text = self.models.reply(
                    self.conversations[side],
                    side,
                    self.settings,
                    lambda piece, side=side: self.piece.emit(side, piece),
                    self.stop.is_set,
                )
                if getattr(self.models, "last_hit_max_tokens", False):
                    self.cut.emit(side, self.settings.max_new_tokens)
                self.answered.emit(side, text)
        except Cancelled:
            self.stopped.emit()
        except WhetstoneError as exc:
            self.failed.emit(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - one line for the user
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        finally:
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()


class ChatPanel(QWidget):
    """Base and tuned model side by side on the same prompts."""

    replyStarted = Signal()  # a message was sent; the panel is busy until replyFinished
    replyFinished = Signal()  # both models answered (or the chat stopped or failed); the panel is idle again
    streamed = Signal(str, str)  # side, a new piece of its answer (shown as it arrives)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.models: Any = None
        self.conversations: dict[str, list[dict[str, str]]] = {"base": [], "tuned": []}
        self._thread: QThread | None = None
        self._job: _ChatJob | None = None
        self._current: dict[str, str] = {"base": "", "tuned": ""}
        self._turn_start: dict[str, int] = {}
        self._blocked = ""  # why Send is off while the page evaluates ("" when it is not)

        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("System prompt:"))
        self.system_edit = QLineEdit()
        # "none" was not the whole truth: a template like SmolLM2's then adds its own default system prompt
        self.system_edit.setPlaceholderText(
            "none of yours (the training rows had none): the model's own default applies, as in training"
        )
        self.system_edit.setToolTip(
            "Sent first in every conversation. It starts as the system prompt the training rows used, so the "
            "tuned model is asked the way it was trained. Left empty, the model's chat template may add its own "
            "default (SmolLM2: “You are a helpful AI assistant named SmolLM…”), as it did in training."
        )
        top.addWidget(self.system_edit, 1)
        top.addWidget(QLabel("Max new tokens:"))
        self.max_tokens_spin = SafeSpinBox()
        self.max_tokens_spin.setRange(1, 4096)
        self.max_tokens_spin.setValue(256)
        top.addWidget(self.max_tokens_spin)
        layout.addLayout(top)

        columns = QGridLayout()
        self.views: dict[str, QTextBrowser] = {}
        for col, side in enumerate(("base", "tuned")):
            title = QLabel(f"<b>{SIDE_TITLES[side]}</b>")
            columns.addWidget(title, 0, col)
            view = QTextBrowser()
            view.setObjectName(f"chat_{side}")
            columns.addWidget(view, 1, col)
            self.views[side] = view
        layout.addLayout(columns, 1)

        bottom = QHBoxLayout()
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Type a message for both models; Ctrl+Enter sends.")
        self.input.setMaximumHeight(80)
        bottom.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.clear_button = QPushButton("New chat")
        self.clear_button.setToolTip("Forget the conversation (both columns).")
        self.clear_button.clicked.connect(self.clear)
        for button in (self.send_button, self.stop_button, self.clear_button):
            buttons.addWidget(button)
        bottom.addLayout(buttons)
        layout.addLayout(bottom)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self.input)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self.send)
        self.set_run(None)

    # run ---------------------------------------------------------------------------------------------------
    def set_run(self, run_dir: Path | None) -> None:
        """Chat with this run's models (None: nothing to chat with). Ends a running answer first."""
        if run_dir == self.run_dir and run_dir is not None:
            return
        self.shutdown()
        self.run_dir = run_dir
        self.clear()
        from core.evaluation.chat import training_system_prompt

        ready = run_dir is not None and (run_dir / "adapter" / "adapter_config.json").exists()
        self.system_edit.setText(training_system_prompt(run_dir) if run_dir is not None else "")
        self.status_label.setText(
            "Both models answer each message: the base model first, then the tuned one. Nothing leaves this "
            "computer."
            if ready
            else "Choose a trained run to chat with its base and tuned model."
        )
        self._update_buttons()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def _update_buttons(self) -> None:
        running = self.is_running()
        ready = self.run_dir is not None and (self.run_dir / "adapter" / "adapter_config.json").exists()
        self.send_button.setEnabled(ready and not running and not self._blocked)
        self.send_button.setToolTip(self._blocked)
        self.stop_button.setEnabled(running)
        self.clear_button.setEnabled(not running)
        self.system_edit.setEnabled(not running)
        self.max_tokens_spin.setEnabled(not running)

    def set_blocked(self, reason: str) -> None:
        """Turn Send off with `reason` as its tooltip ("" turns it back on): the page's evaluation loads the
        same models."""
        self._blocked = reason
        self._update_buttons()

    # chat --------------------------------------------------------------------------------------------------
    def send(self, text: str | None = None) -> bool:
        """Ask both models `text` (default: what is typed). False when nothing was sent."""
        from core.evaluation.chat import ChatSettings

        message = (text if isinstance(text, str) else self.input.toPlainText()).strip()
        if not message or self.is_running() or not self.send_button.isEnabled():
            return False
        self.input.clear()
        system = self.system_edit.text().strip()
        self._turn_start = {side: len(conv) for side, conv in self.conversations.items()}
        for side in ("base", "tuned"):
            if not self.conversations[side] and system:
                self.conversations[side].append({"role": "system", "content": system})
            self.conversations[side].append({"role": "user", "content": message})
            self._current[side] = ""
            self._append(side, f"<p><b>You:</b> {_html(message)}</p><p><b>{SIDE_TITLES[side]}:</b> ")
        assert self.run_dir is not None
        self._job = _ChatJob(
            self.run_dir,
            self.models,
            {k: list(v) for k, v in self.conversations.items()},
            ChatSettings(max_new_tokens=self.max_tokens_spin.value()),
        )
        self._thread = QThread()
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.loaded.connect(self._on_loaded)
        self._job.status.connect(self.status_label.setText)
        self._job.piece.connect(self._on_piece)
        self._job.cut.connect(self._on_cut)
        self._job.answered.connect(self._on_answered)
        self._job.failed.connect(self._on_failed)
        self._job.stopped.connect(self._on_stopped)
        self._thread.finished.connect(self._on_thread_done)
        self._thread.start()
        self._update_buttons()
        self.replyStarted.emit()
        return True

    def stop(self) -> None:
        if self._job is not None:
            self._job.stop.set()
            self.status_label.setText("Stopping…")

    def clear(self) -> None:
        if self.is_running():
            return
        self.conversations = {"base": [], "tuned": []}
        for view in self.views.values():
            view.clear()

    def _on_loaded(self, models: Any) -> None:
        self.models = models

    def _on_piece(self, side: str, piece: str) -> None:
        self._current[side] += piece
        view = self.views[side]
        cursor = view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        view.setTextCursor(cursor)
        view.ensureCursorVisible()
        self.streamed.emit(side, piece)

    def _on_cut(self, side: str, limit: int) -> None:
        self._append(
            side,
            f" <i>… (stopped at the {limit}-token limit; raise Max new tokens for longer answers)</i>",
        )

    def _on_answered(self, side: str, text: str) -> None:
        self.conversations[side].append({"role": "assistant", "content": text})
        self._append(side, "</p>")

    def _on_failed(self, message: str) -> None:
        self.status_label.setText(f"The chat failed: {message}")
        self._drop_unanswered()

    def _on_stopped(self) -> None:
        self.status_label.setText("Stopped. Cut answers are not kept in the conversation.")
        self._drop_unanswered()

    def _drop_unanswered(self) -> None:
        """The cut exchange leaves both conversations (they stay the same length and ask the same)."""
        for side in ("base", "tuned"):
            conv = self.conversations[side]
            answered = conv[-1]["role"] == "assistant" if conv else False
            del conv[self._turn_start.get(side, len(conv)) :]
            if not answered:
                self._append(side, " <i>(stopped)</i></p>")

    def _on_thread_done(self) -> None:
        if self.status_label.text().endswith("answering…"):
            self.status_label.setText("Both models answered.")
        if self._thread is not None:
            # `finished` comes from the thread's last moments: let it return before the last reference goes
            self._thread.wait()
        self._thread = None
        self._job = None
        self._update_buttons()
        self.replyFinished.emit()

    def _append(self, side: str, fragment: str) -> None:
        view = self.views[side]
        cursor = view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml(fragment)
        view.setTextCursor(cursor)

    def transcript(self, side: str) -> str:
        return self.views[side].toPlainText()

    # lifecycle ---------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop an answer in progress and free the models."""
        if self._job is not None:
            self._job.stop.set()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(60000)
            self._thread = None
            self._job = None
        if self.models is not None:
            self.models.close()
            self.models = None


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
