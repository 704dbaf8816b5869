"""Evaluate page: base vs tuned on the run's locked test split, metrics with CIs, side-by-side examples,
blind A/B review for domain experts, review results, the forgetting check and an HTML report.

The evaluation itself is core/evaluation/evaluate.py, run off the UI thread by desktop/workers.JobRunner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.evaluation.metrics import METRIC_LABELS
from desktop.context import AppContext
from desktop.widgets.empty_state import EmptyState
from desktop.widgets.eval_chat import ChatPanel
from desktop.widgets.eval_review import BlindReviewWidget, ReviewResultsView
from desktop.widgets.eval_table import ExamplesTable, MetricSummaryTable
from desktop.widgets.job_progress import JobProgress
from desktop.widgets.run_picker import RunPicker
from desktop.widgets.safe_inputs import SafeComboBox, SafeSpinBox
from desktop.widgets.shortcuts import add_main_action_shortcut
from desktop.workers import JobRunner, JobSet

SORT_MODES = [
    ("Biggest improvement first", "improvement"),
    ("Biggest regression first", "regression"),
    ("Test order", "order"),
]
NOT_EVALUATED_TEXT = (
    "The base and the tuned model will answer every example of the held-out test split with the same greedy "
    "decoding; answers are kept in the run folder and re-used."
)
QUICK_CPU_LIMIT = 10  # examples a quick evaluation answers on a CPU (both models: a few minutes)


def not_evaluated_text(limit: int, split: str = "test") -> str:
    """What Run evaluation will do, with the example limit in words."""
    if not limit:
        return NOT_EVALUATED_TEXT.replace("test split", f"{split} split")
    return (
        f"The base and the tuned model will answer the first {limit:,} examples of the held-out {split} split "
        "with the same greedy decoding (set Limit to “all” to answer every one); answers are kept in the run "
        "folder and re-used."
    )


ROW_METRICS = ("token_f1", "exact_match", "rouge_l", "bleu", "json_keys_match")


def _page_wording(warning: str) -> str:
    """A stored warning as the page says it: the setting's name on this page, not the CLI flag (the CLI and
    results.json keep both)."""
    from core.evaluation.evaluate import current_wording

    return current_wording(warning).replace(
        "(Max new tokens; --max-new-tokens on the command line)", "(Max new tokens)"
    )


def _has_gpu() -> bool:
    from core.device import detect_device

    return detect_device().kind == "cuda"


class EvaluatePage(QWidget):
    evaluationFinished = Signal(object)  # summary dict (also after a cancel, with "partial": true)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._jobs = JobSet(self)
        self.summary: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self._store: Any = None
        self._store_key: tuple[str, int] | None = None
        self.session: Any = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        title = QLabel("Evaluate")
        title.setObjectName("pageTitle")
        layout.addWidget(title)

        # run and options ----------------------------------------------------------------------------
        run_row = QHBoxLayout()
        self.run_picker = RunPicker(ctx)  # shared with the Export page
        self.run_picker.runPicked.connect(self._on_run_picked)
        self.run_picker.invalidFolder.connect(self._not_a_run)
        self.run_combo, self.browse_button = self.run_picker.combo, self.run_picker.browse_button
        run_row.addWidget(self.run_picker, 1)
        self.report_button = QPushButton("Save HTML report…")
        self.report_button.clicked.connect(self.save_report_dialog)
        run_row.addWidget(self.report_button)
        layout.addLayout(run_row)

        opts = QHBoxLayout()
        opts.addWidget(QLabel("Examples:"))
        self.split_combo = SafeComboBox()
        self.split_combo.addItem("Test split", "test")
        self.split_combo.setToolTip("The held-out test split is never seen in training.")
        self.split_combo.addItem("Validation split", "validation")
        opts.addWidget(self.split_combo)
        opts.addWidget(QLabel("Limit:"))
        self.limit_spin = SafeSpinBox()
        self.limit_spin.setRange(0, 100000)
        self.limit_spin.setSpecialValueText("all")
        self.limit_spin.setMaximumWidth(90)
        self.limit_spin.setToolTip(
            "How many examples of the split both models answer; “all” answers every one. On a computer without "
            f"a GPU the quick check answers the first {QUICK_CPU_LIMIT} (a few minutes)."
        )
        opts.addWidget(self.limit_spin)
        opts.addWidget(QLabel("Max new tokens:"))
        self.max_tokens_spin = SafeSpinBox()
        self.max_tokens_spin.setRange(1, 8192)
        self.max_tokens_spin.setValue(128)
        self.max_tokens_spin.setMaximumWidth(90)
        opts.addWidget(self.max_tokens_spin)
        opts.addSpacing(12)
        opts.addWidget(QLabel("Also:"))
        self.perplexity_check = QCheckBox("Validation perplexity")
        self.perplexity_check.setToolTip(
            "How surprised each model is by the validation answers (lower is better). Runs both models over up "
            "to 200 validation examples: minutes on a CPU."
        )
        opts.addWidget(self.perplexity_check)
        self.general_check = QCheckBox("General prompts (forgetting check)")
        self.general_check.setToolTip(
            "Both models also answer 20 everyday prompts, to see whether tuning broke general answers. "
            "Doubles the time on a CPU."
        )
        opts.addWidget(self.general_check)
        gpu = _has_gpu()
        self.perplexity_check.setChecked(gpu)  # quick mode on a CPU: the task set only
        self.general_check.setChecked(gpu)
        self.limit_spin.setValue(0 if gpu else QUICK_CPU_LIMIT)  # ... and a few examples of it
        self.limit_spin.valueChanged.connect(lambda _v: self._update_buttons())
        self.split_combo.currentIndexChanged.connect(lambda _i: self._update_buttons())
        opts.addStretch(1)
        layout.addLayout(opts)
        self.run_button = QPushButton("Run evaluation")
        self.run_button.setObjectName("primary")
        self.run_button.clicked.connect(self.start_evaluation)
        add_main_action_shortcut(self.run_button)
        status_row = QHBoxLayout()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setObjectName("evalStatus")
        status_row.addWidget(self.status_label, 2)
        # the bar shows while an evaluation runs; its messages go to the status line on the left
        self.job = JobProgress(self._jobs, label=self.status_label, cancel_text="Cancelling…")
        self.progress = self.job.bar
        self.cancel_button = self.job.cancel_button
        self.job.add_before_cancel(self.run_button)
        status_row.addWidget(self.job, 1)
        layout.addLayout(status_row)

        # tabs ---------------------------------------------------------------------------------------
        self.tabs = QTabWidget()
        self.body = QStackedWidget()
        self.no_run_state = EmptyState(
            "Compare the tuned model with the base model",
            "Choose a trained run above (or finish one on the Train page). Both models then answer the run's "
            "held-out test split: metrics with confidence intervals, answers side by side, a blind review for "
            "domain experts and a report to share.",
        )
        self.not_evaluated_state = EmptyState(
            "Not evaluated yet",
            NOT_EVALUATED_TEXT,
            "Run evaluation",
            self.start_evaluation,
        )
        self.chat_button = QPushButton("Chat with both models")
        self.chat_button.setToolTip("Talk to the base and the tuned model side by side before evaluating.")
        self.chat_button.clicked.connect(self.open_chat)
        self.not_evaluated_state.add_widget(self.chat_button)
        self.body.addWidget(self.no_run_state)
        self.body.addWidget(self.not_evaluated_state)
        self.body.addWidget(self.tabs)
        layout.addWidget(self.body, 1)

        results = QWidget()
        rl = QVBoxLayout(results)
        self.summary_table = MetricSummaryTable()
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.summary_table)
        self.verdict_label = QLabel("")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.verdict_label.setObjectName("evalVerdict")
        summary_row.addWidget(self.verdict_label, 1)
        rl.addLayout(summary_row)
        self.warnings_label = QLabel("")
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setStyleSheet("color: #8a5a00;")
        rl.addWidget(self.warnings_label)
        sort_row = QHBoxLayout()
        sort_row.addWidget(QLabel("Sort:"))
        self.sort_combo = SafeComboBox()
        for text, mode in SORT_MODES:
            self.sort_combo.addItem(text, mode)
        self.sort_combo.currentIndexChanged.connect(self._apply_sort)
        sort_row.addWidget(self.sort_combo)
        sort_row.addWidget(QLabel("by"))
        self.metric_combo = SafeComboBox()
        for metric in ROW_METRICS:
            self.metric_combo.addItem(METRIC_LABELS[metric], metric)
        self.metric_combo.currentIndexChanged.connect(self._on_metric)
        sort_row.addWidget(self.metric_combo)
        sort_row.addStretch(1)
        sort_row.addWidget(QLabel("Double-click a row to open the example on the Data page."))
        rl.addLayout(sort_row)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.examples_table = ExamplesTable()
        self.examples_table.doubleClicked.connect(self._open_example)
        self.examples_table.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: self._show_detail(cur.row())
        )
        splitter.addWidget(self.examples_table)
        self.detail = QTextBrowser()
        self.detail.setPlaceholderText("Click a row to see the prompt, the reference and both answers.")
        splitter.addWidget(self.detail)
        splitter.setSizes([400, 160])
        rl.addWidget(splitter, 1)
        self.tabs.addTab(results, "Results")

        self.review = BlindReviewWidget()
        self.review.reviewer_edit.setText(ctx.settings.reviewer_name)
        self.review.reviewer_edit.editingFinished.connect(self._remember_reviewer)
        self.review.voted.connect(self._refresh_review_results)
        self.review.message.connect(lambda text: self.ctx.status(text))
        self.tabs.addTab(self.review, "Blind review")
        self.review_results = ReviewResultsView()
        self.tabs.addTab(self.review_results, "Review results")

        general = QWidget()
        gl = QVBoxLayout(general)
        self.forgetting_label = QLabel("Run the evaluation to compare answers to general prompts.")
        self.forgetting_label.setWordWrap(True)
        gl.addWidget(self.forgetting_label)
        self.forgetting_table = QTableWidget(0, 4)
        self.forgetting_table.setHorizontalHeaderLabels(["Prompt", "Base answer", "Tuned answer", "Flags"])
        self.forgetting_table.verticalHeader().setVisible(False)
        self.forgetting_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.forgetting_table.horizontalHeader().setStretchLastSection(True)
        gl.addWidget(self.forgetting_table, 1)
        self.tabs.addTab(general, "General prompts")
        self.chat = ChatPanel()
        self.chat.replyStarted.connect(self._update_buttons)
        self.chat.replyFinished.connect(self._update_buttons)
        self.tabs.addTab(self.chat, "Chat")

        ctx.runChanged.connect(self.set_run)
        ctx.workspaceChanged.connect(lambda _path: self._reopen_review())
        self.refresh_runs()
        if ctx.run_dir is not None:
            self.set_run(str(ctx.run_dir))
        else:
            self._load_run()

    # runs -----------------------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        self.run_picker.refresh()

    def run_dir(self) -> Path | None:
        return self.run_picker.run_dir()

    def set_run(self, run_dir: str) -> None:
        if not run_dir:
            return
        self.run_picker.set_run(run_dir)
        self._load_run()

    def _not_a_run(self, folder: str) -> None:
        self.status_label.setText(f"{folder} is not a run folder (no config.yaml).")

    def _on_run_picked(self, run_dir: str) -> None:
        path = Path(run_dir) if run_dir else None
        if path is not None and self.ctx.run_dir != path:
            self.ctx.set_run(path)  # other pages follow; comes back here through set_run -> _load_run
            return
        self._load_run()

    def _load_run(self) -> None:
        from core.evaluation.evaluate import load_results

        path = self.run_dir()
        self.chat.set_run(path)
        self.summary, self.rows = (None, []) if path is None else load_results(path)
        if path is None:
            self.status_label.setText("Choose a trained run to compare its tuned model with the base model.")
        elif self.summary is None:
            adapter = (path / "adapter" / "adapter_config.json").exists()
            self.status_label.setText(
                "Not evaluated yet: press Run evaluation."
                if adapter
                else "This run has no trained adapter yet; train it on the Train page first."
            )
        else:
            self.status_label.setText(self._summary_line(self.summary))
            max_tokens = (self.summary.get("decoding") or {}).get("max_new_tokens")
            if isinstance(max_tokens, int) and not self.is_running():
                self.max_tokens_spin.setValue(max_tokens)  # re-running with the same settings re-uses answers
        self._show_results()
        self._update_buttons()
        self.body.setCurrentWidget(
            self.no_run_state
            if path is None
            else self.tabs
            if self.summary is not None
            else self.not_evaluated_state
        )

    @staticmethod
    def _summary_line(summary: dict[str, Any]) -> str:
        source = summary.get("source", {})
        where = (
            f"file {Path(source['data']).name}"
            if "data" in source
            else f"{source.get('split', 'test')} split"
        )
        created = str(summary.get("created", ""))
        try:  # "2026-11-30T14:47:06" -> "30 Nov 2026, 14:47"
            from datetime import datetime

            when = datetime.fromisoformat(created)
            created = f"{when.day} {when:%b %Y, %H:%M}"
        except ValueError:
            pass
        text = f"{summary.get('n', 0)} examples from the {where}, evaluated {created}."
        if summary.get("partial"):
            text += " Partial results (cancelled): run again to finish; finished answers are re-used."
        return text

    def open_chat(self) -> None:
        """Show the Chat tab (also for a run that has not been evaluated yet)."""
        if self.run_dir() is None:
            return
        self.body.setCurrentWidget(self.tabs)
        self.tabs.setCurrentWidget(self.chat)
        self.chat.input.setFocus()

    # evaluation -----------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.job.is_running()

    @property
    def runner(self) -> JobRunner | None:
        """The evaluation running now (None when none is)."""
        return self.job.runner

    def _update_buttons(self) -> None:
        running = self.is_running()
        run = self.run_dir()
        has_run = run is not None
        # a run stopped before its first checkpoint has no adapter: nothing to evaluate or chat with yet (the
        # status line says to train it first)
        trained = run is not None and (run / "adapter" / "adapter_config.json").exists()
        # the chat and the evaluation each load the base model and the adapter: one at a time
        chatting = self.chat.is_running()
        why = "Wait until the chat has answered (or press Stop): it is using the models." if chatting else ""
        self.run_button.setEnabled(trained and not running and not chatting)
        self.run_button.setToolTip(why)
        self.chat.set_blocked(
            "Wait until the evaluation has finished (or cancel it): it is using the models."
            if running
            else ""
        )
        self.chat_button.setEnabled(trained)
        self.cancel_button.setEnabled(running)
        self.run_combo.setEnabled(not running)
        self.browse_button.setEnabled(not running)
        for widget in (self.split_combo, self.limit_spin, self.max_tokens_spin):
            widget.setEnabled(not running)
        for check in (self.perplexity_check, self.general_check):
            check.setEnabled(not running)
        self.report_button.setEnabled(
            has_run and not running and self.summary is not None
        )  # nothing to report
        self.progress.setVisible(running)
        if self.not_evaluated_state.button is not None:
            self.not_evaluated_state.button.setEnabled(trained and not running and not chatting)
            self.not_evaluated_state.button.setToolTip(why)
        if running:
            self.not_evaluated_state.set_text(
                "Evaluating…",
                "The base and the tuned model are answering the held-out examples; the progress is above. "
                "Results appear here when they finish.",
            )
        else:
            self.not_evaluated_state.set_text(
                "Not evaluated yet",
                not_evaluated_text(self.limit_spin.value(), str(self.split_combo.currentData() or "test")),
            )

    def options(self) -> Any:
        from core.evaluation.evaluate import EvalOptions
        from core.evaluation.generate import DecodingSettings

        return EvalOptions(
            split=str(self.split_combo.currentData()),
            limit=self.limit_spin.value() or None,
            decoding=DecodingSettings(max_new_tokens=self.max_tokens_spin.value()),
            perplexity=self.perplexity_check.isChecked(),
            forgetting=self.general_check.isChecked(),
        )

    def start_evaluation(self) -> None:
        run = self.run_dir()
        if run is None or self.is_running() or self.chat.is_running():  # the chat holds the models
            return
        options = self.options()

        def job(progress: Any, should_stop: Any) -> dict[str, Any]:
            from core.evaluation.evaluate import evaluate_run

            return evaluate_run(run, options, progress=progress, should_stop=should_stop)

        self.job.start(
            job,
            start_text="Starting…",
            finished=self._on_finished,
            failed=self._on_failed,
            cancelled=self._on_cancelled,
            done=self._on_done,
        )
        self._update_buttons()

    def cancel_evaluation(self) -> None:
        self.job.cancel()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.job.show_progress(
            fraction, message
        )  # the bar fills; the message is a sentence on the status line

    def _on_finished(self, summary: object) -> None:
        self._load_run()
        self.ctx.status("Evaluation finished.")
        self.evaluationFinished.emit(summary)

    def _on_failed(self, message: str) -> None:
        self._load_run()
        self.status_label.setText(f"Evaluation failed: {message}")

    def _on_cancelled(self) -> None:
        self._load_run()
        self.status_label.setText(
            "Cancelled. " + (self._summary_line(self.summary) if self.summary else "No example was finished.")
        )
        self.evaluationFinished.emit(self.summary)

    def _on_done(self) -> None:
        self._update_buttons()

    # results --------------------------------------------------------------------------------------------
    def _show_results(self) -> None:
        self.summary_table.set_summary(self.summary)
        self.verdict_label.setText(self._verdict(self.summary))
        warnings = (self.summary or {}).get("warnings", [])
        self.warnings_label.setText("\n".join(f"⚠ {_page_wording(w)}" for w in warnings))
        self.warnings_label.setVisible(bool(warnings))
        self.examples_table.set_rows(self.rows)
        self._apply_sort()
        self.detail.clear()
        self._show_forgetting()
        self._reopen_review()

    @staticmethod
    def _verdict(summary: dict[str, Any] | None) -> str:
        """A plain-language reading of the table for domain experts."""
        if not summary or not summary.get("n"):
            return ""
        lines = []
        em = summary.get("delta", {}).get("exact_match")
        if em:
            b = summary["base"]["exact_match"]
            t = summary["tuned"]["exact_match"]
            lines.append(
                f"Exact match: <b>{100 * b:.0f}% → {100 * t:.0f}%</b> of {summary['n']} held-out examples."
            )
            if em.get("ci_low") is not None:
                if em["ci_low"] > 0:
                    lines.append("The improvement is larger than chance (the 95% interval is above zero).")
                elif em["ci_high"] < 0:
                    lines.append("The tuned model is worse (the 95% interval is below zero).")
                else:
                    lines.append("The difference is within chance (the 95% interval includes zero).")
        ppl_b = summary.get("base", {}).get("perplexity")
        ppl_t = summary.get("tuned", {}).get("perplexity")
        if ppl_b and ppl_t:
            lines.append(f"Validation perplexity {ppl_b:.2f} → {ppl_t:.2f} (lower is better).")
        forgetting = summary.get("forgetting")
        if forgetting:
            lines.append(
                f"General prompts: {forgetting['changed']} of {forgetting['prompts']} answers changed, "
                f"{len(forgetting.get('newly_broken', []))} newly broken."
            )
        return "<br>".join(lines)

    def _apply_sort(self) -> None:
        self.examples_table.sort_by(str(self.sort_combo.currentData()))

    def _on_metric(self) -> None:
        self.examples_table.source.set_metric(str(self.metric_combo.currentData()))
        self._apply_sort()

    def _show_detail(self, proxy_row: int) -> None:
        if proxy_row < 0:
            return
        import html

        row = self.examples_table.row_data(proxy_row)

        def block(title: str, text: str) -> str:
            return f"<p><b>{title}</b><br>{html.escape(text).replace(chr(10), '<br>')}</p>"

        scores = ", ".join(
            f"{METRIC_LABELS.get(k, k)} {row['base_scores'][k]:.2f} → {row['tuned_scores'].get(k, 0):.2f}"
            for k in row.get("base_scores", {})
            if k != "bleu"
        )
        self.detail.setHtml(
            block(f"{row['id']} · prompt", row.get("prompt", ""))
            + block("Reference", row.get("reference", ""))
            + block(
                "Base answer" + (" (cut off)" if row.get("base_hit_max_tokens") else ""), row.get("base", "")
            )
            + block(
                "Tuned answer" + (" (cut off)" if row.get("tuned_hit_max_tokens") else ""),
                row.get("tuned", ""),
            )
            + f"<p style='color:#555'>{html.escape(scores)}</p>"
        )

    def _open_example(self, index: Any) -> None:
        example_id = self.examples_table.example_id_at(index.row())
        self.ctx.showExampleRequested.emit(example_id)
        self.ctx.navigateRequested.emit("data")

    def _show_forgetting(self) -> None:
        from core.evaluation.evaluate import load_forgetting_items
        from core.evaluation.forgetting import forgetting_sentence

        forgetting = (self.summary or {}).get("forgetting")
        run_dir = self.run_dir()
        items = load_forgetting_items(run_dir) if run_dir is not None and forgetting else []
        if not forgetting:
            self.forgetting_label.setText("Run the evaluation to compare answers to general prompts.")
        else:
            self.forgetting_label.setText(forgetting_sentence(forgetting))
        self.forgetting_table.setRowCount(len(items))
        for r, item in enumerate(items):
            flags = []
            if item["base_flags"]:
                flags.append("base: " + ", ".join(item["base_flags"]))
            if item["tuned_flags"]:
                flags.append("tuned: " + ", ".join(item["tuned_flags"]))
            for c, text in enumerate((item["prompt"], item["base"], item["tuned"], "; ".join(flags))):
                cell = QTableWidgetItem(" ".join(str(text).split())[:300])
                cell.setToolTip(str(text)[:2000])
                if c == 3 and item["tuned_flags"] and not item["base_flags"]:
                    cell.setForeground(QBrush(QColor("#c62828")))
                self.forgetting_table.setItem(r, c, cell)
        for col, width in enumerate((220, 280, 280)):
            self.forgetting_table.setColumnWidth(col, width)

    # review -----------------------------------------------------------------------------------------------
    def _review_store(self) -> Any:
        from core.evaluation.review import ReviewStore

        run = self.run_dir()
        if run is None:
            return None
        key = (str(run), id(self.ctx.workspace))
        if self._store is None or self._store_key != key:
            if self._store is not None:
                self._store.close()
            self._store = ReviewStore.for_run(run, self.ctx.workspace)
            self._store_key = key
        return self._store

    def _eval_key(self) -> str:
        import hashlib

        ids = ",".join(str(r["id"]) for r in self.rows)
        key = (self.summary or {}).get("cache_key", "")
        return f"{key}:{hashlib.sha256(ids.encode()).hexdigest()[:12]}"

    def _reopen_review(self) -> None:
        self.session = None
        if self.summary is not None and self.rows and not self.summary.get("partial"):
            store = self._review_store()
            if store is not None:
                self.session = store.open_session(self.run_dir(), self._eval_key(), self.rows)
        self.review.set_session(self.session, self.ctx.settings.reviewer_name)
        self._refresh_review_results()

    def _remember_reviewer(self) -> None:
        name = self.review.reviewer()
        if name and name != self.ctx.settings.reviewer_name:
            self.ctx.settings.reviewer_name = name
            self.ctx.save_settings()

    def _refresh_review_results(self) -> None:
        self.review_results.set_results(self.session.results() if self.session is not None else None)

    def review_results_dict(self) -> dict[str, Any] | None:
        return self.session.results().to_dict() if self.session is not None else None

    # report -----------------------------------------------------------------------------------------------
    def save_report(self, path: str | Path) -> Path:
        from core.evaluation.report import write_report

        run = self.run_dir()
        assert run is not None
        return write_report(run, path, self.summary, self.rows, self.review_results_dict())

    def save_report_dialog(self) -> None:
        run = self.run_dir()
        if run is None:
            return
        default = str(run / "eval" / "report.html")
        path, _ = QFileDialog.getSaveFileName(self, "Save HTML report", default, "HTML (*.html)")
        if path:
            try:
                written = self.save_report(path)
            except OSError as exc:
                self.status_label.setText(f"Could not save the report: {exc}")
                return
            self.ctx.status(f"Report saved to {written}")

    def showEvent(self, event: Any) -> None:  # runs trained since the page was built appear in the picker
        if not self.is_running():
            self.refresh_runs()
        super().showEvent(event)

    # window hooks -----------------------------------------------------------------------------------------
    def can_close(self) -> bool:
        """Asks before quitting while an evaluation runs (shutdown() then cancels it; answers finished so far
        stay in the run's cache)."""
        if not self.is_running():
            return True
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self,
            "Evaluation running",
            "An evaluation is still running. Cancel it and quit? Answers finished so far are kept and re-used "
            "next time.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        self._jobs.shutdown(60000)  # generation checks Cancel after every token
        self.chat.shutdown()
        if self._store is not None:
            self._store.close()
            self._store = None
