"""Export page: pick a run, a format (adapter / merged / GGUF) and a type, export off the UI thread with
progress and Cancel, then show the files and the verification figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.export.formats import (
    ALL_QUANTS,
    DEFAULT_QUANT,
    K_QUANTS,
    LLAMA_CPP_MISSING,
    QUANT_HELP,
    llama_cpp_available,
    verification_status,
    verification_summary,
)
from desktop.context import AppContext
from desktop.widgets.empty_state import EmptyState
from desktop.widgets.job_progress import JobProgress
from desktop.widgets.run_commands import RunCommands
from desktop.widgets.run_picker import RunPicker
from desktop.widgets.safe_inputs import SafeComboBox
from desktop.widgets.shortcuts import add_main_action_shortcut
from desktop.workers import JobRunner, JobSet

FORMAT_LABELS = {
    "adapter": (
        "LoRA adapter",
        "The PEFT adapter as trained, with a model card (small; needs the base model).",
    ),
    "merged": ("Merged model", "Base + adapter merged into full safetensors; loads with plain transformers."),
    "gguf": ("GGUF", "One file for llama.cpp, Ollama, LM Studio; tokenizer and chat template inside."),
}


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _yes(value: Any) -> str:
    return "yes" if value else "NO"


def verification_rows(verification: dict[str, Any] | None) -> list[tuple[str, str, bool | None]]:
    """(check, result, passed) rows for the results table."""
    rows: list[tuple[str, str, bool | None]] = []
    if not verification:
        return rows
    merged = verification.get("merged")
    if isinstance(merged, dict):
        rows.append(
            (
                "Merged vs base+adapter",
                f"max |Δlogit| {merged['max_abs_logit_delta']:.2g}, "
                f"top-1 agreement {merged['top1_agreement']:.1%} over {merged['positions']} positions",
                merged.get("passed"),
            )
        )
    gt = verification.get("gguf_transformers")
    if isinstance(gt, dict) and "skipped" in gt:
        rows.append(("GGUF reloaded with transformers", f"skipped: {gt['skipped']}", None))
    elif isinstance(gt, dict):
        rows.append(
            (
                "GGUF reloaded with transformers",
                f"max |Δlogit| {gt['max_abs_logit_delta']:.3g} (logit std {gt['logit_std']:.2g}), "
                f"top-1 {gt['top1_agreement']:.1%}, next token {gt['next_token_top1_agreement']:.0%}"
                + (f" — pass rule: {gt['criteria']}" if gt.get("criteria") else ""),
                gt.get("passed"),
            )
        )
    lc = verification.get("llama_cpp")
    logits = lc.get("logits") if isinstance(lc, dict) else None
    if isinstance(logits, dict):
        rows.append(
            (
                "GGUF in llama.cpp: scores",
                f"max |Δlogit| {logits['max_abs_logit_delta']:.3g} (logit std {logits['logit_std']:.2g}), "
                f"top-1 {logits['top1_agreement']:.1%}, next token {logits['next_token_top1_agreement']:.0%}"
                + (f" — pass rule: {logits['criteria']}" if logits.get("criteria") else ""),
                logits.get("passed"),
            )
        )
    if isinstance(lc, dict):
        if "skipped" in lc:
            rows.append(("GGUF in llama.cpp", f"skipped: {lc['skipped']}", None))
        elif lc.get("error"):
            rows.append(("GGUF in llama.cpp", str(lc["error"]), False))
        else:
            rows.append(
                (
                    "GGUF in llama.cpp: chat template",
                    f"template from the GGUF matches training: {_yes(lc['template_match'])}; "
                    f"same tokens: {_yes(lc['tokens_match'])}",
                    lc.get("passed"),
                )
            )
            rows.append(
                (
                    "GGUF in llama.cpp: greedy output",
                    f"first {lc['max_new_tokens']} tokens equal to the merged model on "
                    f"{lc['greedy_match_rate']:.0%} of prompts (first token {lc['first_token_match_rate']:.0%})",
                    None,
                )
            )
    return rows


class ExportPage(QWidget):
    exportFinished = Signal(object)  # ExportResult
    exportFailed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.run_dir: Path | None = None
        self._jobs = JobSet(self)
        self._last_out: Path | None = None
        self._out_edited = False
        self.llama_cpp = llama_cpp_available()

        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "No trained runs yet",
            "Train a model on the Train page, or choose a finished run folder to export it as an adapter, "
            "a merged model or a verified GGUF.",
            "Choose a run folder…",
            self.browse_run,
        )
        body = self.empty.findChild(QLabel, "emptyText")
        empty_layout = self.empty.layout()
        if body is not None and empty_layout is not None:  # centre the wrapped explanation under the title
            body.setFixedWidth(560)
            body.setMinimumHeight(3 * body.fontMetrics().lineSpacing() + 12)
            empty_layout.setAlignment(body, Qt.AlignmentFlag.AlignHCenter)
        self.stack.addWidget(self.empty)
        # The result (files, the verification figures when unfolded, the run commands) is taller than a
        # 1280x800 window: it scrolls instead of squashing the rows of the Run it box into each other.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        main = self._build_main()
        scroll.setWidget(main)
        # see-through, so the page keeps the window's background (setWidget makes both paint the default grey)
        scroll.viewport().setAutoFillBackground(False)
        main.setAutoFillBackground(False)
        self.stack.addWidget(scroll)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        ctx.runChanged.connect(self.set_run)
        if ctx.run_dir is not None:
            self.set_run(str(ctx.run_dir))
        else:
            self._pick_default_run()

    # layout -------------------------------------------------------------------------------------------------
    def _build_main(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 12, 16, 12)
        title = QLabel("Export")
        title.setObjectName("pageTitle")
        title.setStyleSheet("font-size: 18px; font-weight: 600;")
        layout.addWidget(title)

        # the Evaluate page's run list: the runs folder's runs, newest first, and Browse… for another folder
        self.run_picker = RunPicker(self.ctx)
        self.run_picker.runPicked.connect(self._on_run_picked)
        self.run_picker.invalidFolder.connect(self._not_a_run)
        self.choose_run_button = self.run_picker.browse_button
        layout.addWidget(self.run_picker)
        self.run_label = QLabel()
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_label.setWordWrap(True)
        layout.addWidget(self.run_label)

        options = QGroupBox("What to export")
        form = QFormLayout(options)
        fmt_row = QVBoxLayout()
        self.format_group = QButtonGroup(self)
        self.format_buttons: dict[str, QRadioButton] = {}
        for key, (label, help_text) in FORMAT_LABELS.items():
            button = QRadioButton(f"{label} — {help_text}")
            button.setProperty("format", key)
            self.format_group.addButton(button)
            self.format_buttons[key] = button
            fmt_row.addWidget(button)
        self.format_buttons["gguf"].setChecked(True)
        self.format_group.buttonToggled.connect(self._on_format_changed)
        form.addRow("Format", fmt_row)

        self.quant_combo = SafeComboBox()
        model = QStandardItemModel(self.quant_combo)
        self.quant_combo.setModel(model)
        for quant in ALL_QUANTS:
            self.quant_combo.addItem(QUANT_HELP[quant], quant)
            if quant in K_QUANTS and not self.llama_cpp:
                item = model.item(self.quant_combo.count() - 1)
                item.setEnabled(False)
                item.setToolTip(LLAMA_CPP_MISSING)
        self.quant_combo.setCurrentIndex(ALL_QUANTS.index(DEFAULT_QUANT))
        self.quant_combo.currentIndexChanged.connect(self._suggest_out)
        form.addRow("GGUF type", self.quant_combo)
        self.kquant_note = QLabel(LLAMA_CPP_MISSING)
        self.kquant_note.setWordWrap(True)
        self.kquant_note.setStyleSheet("color: #a06000;")
        self.kquant_note.setVisible(not self.llama_cpp)
        form.addRow("", self.kquant_note)

        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.textEdited.connect(self._mark_out_edited)
        self.out_browse = QPushButton("Browse…")
        self.out_browse.clicked.connect(self.browse_out)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.out_browse)
        self.out_edit.setToolTip(
            "A folder for the export. For GGUF, a name ending in .gguf writes exactly that file, with "
            "NAME.Modelfile and NAME.README.md beside it."
        )
        form.addRow("Save to", out_row)

        self.verify_box = QCheckBox(
            "Verify the result (check it answers like the trained model and reads prompts as in training)"
        )
        self.verify_box.setChecked(True)
        form.addRow("", self.verify_box)
        layout.addWidget(options)

        action_row = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("primary")
        self.export_button.clicked.connect(self.start_export)
        add_main_action_shortcut(self.export_button)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        # Cancel beside Export, the bar while it runs, its messages on the status line below
        self.job = JobProgress(
            self._jobs,
            label=self.status_label,
            text_visible=False,
            cancel_first=True,
            cancel_text="Cancelling… (stops at the next safe point; nothing is left behind)",
        )
        self.progress = self.job.bar
        self.cancel_button = self.job.cancel_button
        action_row.addWidget(self.export_button)
        action_row.addWidget(self.job, 1)
        layout.addLayout(action_row)
        layout.addWidget(self.status_label)

        self.results = QGroupBox("Result")
        results_layout = QVBoxLayout(self.results)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        results_layout.addWidget(self.summary_label)
        # The verification in plain words first; the figures behind a fold for those who read them.
        self.verify_label = QLabel()
        self.verify_label.setObjectName("verifySummary")
        self.verify_label.setWordWrap(True)
        self.verify_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        results_layout.addWidget(self.verify_label)
        self.details_button = QToolButton()
        self.details_button.setObjectName("verifyDetails")
        self.details_button.setText("Details: the figures behind each check")
        self.details_button.setCheckable(True)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setStyleSheet("QToolButton { border: none; }")
        self.details_button.toggled.connect(self._toggle_details)
        results_layout.addWidget(self.details_button)
        self.checks_table = self._table(["Check", "Result", ""])
        results_layout.addWidget(self.checks_table)
        self.files_table = self._table(["File", "Size"])
        results_layout.addWidget(self.files_table)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet("color: #555;")
        results_layout.addWidget(self.notes_label)
        self.run_commands = RunCommands()
        results_layout.addWidget(self.run_commands)
        open_row = QHBoxLayout()
        open_row.addStretch(1)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self.open_folder)
        open_row.addWidget(self.open_button)
        results_layout.addLayout(open_row)
        self.results.setVisible(False)
        layout.addWidget(self.results)
        layout.addStretch(1)
        return page

    @staticmethod
    def _table(headers: list[str]) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setFrameShape(QFrame.Shape.NoFrame)
        table.setWordWrap(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        if len(headers) > 2:
            header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        return table

    # state ----------------------------------------------------------------------------------------------------
    def current_format(self) -> str:
        for key, button in self.format_buttons.items():
            if button.isChecked():
                return key
        return "gguf"

    def current_quant(self) -> str | None:
        return str(self.quant_combo.currentData()) if self.current_format() == "gguf" else None

    def set_format(self, fmt: str) -> None:
        self.format_buttons[fmt].setChecked(True)

    def set_quant(self, quant: str) -> bool:
        index = self.quant_combo.findData(quant)
        item = self.quant_combo.model().item(index)  # type: ignore[attr-defined]
        if index < 0 or not item.isEnabled():
            return False
        self.quant_combo.setCurrentIndex(index)
        return True

    def _pick_default_run(self) -> None:
        """With no run chosen elsewhere: the newest finished run; the empty state when there is no run."""
        from core.runs import runs_root
        from desktop.widgets.run_picker import newest_finished_run

        newest = newest_finished_run(runs_root(self.ctx.settings))
        self.set_run(str(newest) if newest is not None else "")

    def _not_a_run(self, folder: str) -> None:
        self.status_label.setText(f"{folder} is not a run folder (no config.yaml).")

    def _on_run_picked(self, run_dir: str) -> None:
        if run_dir and self.ctx.run_dir != Path(run_dir):
            self.ctx.set_run(run_dir)  # every page follows; comes back here through set_run
        else:
            self.set_run(run_dir)

    def set_run(self, run_dir: str) -> None:
        if self.is_running():
            return
        folder = Path(run_dir) if run_dir else None
        self.run_dir = folder
        if folder is None:
            self.run_picker.refresh()
            has_runs = bool(self.run_picker.runs())
            self.stack.setCurrentIndex(1 if has_runs else 0)  # runs to choose from: the picker shows them
            self.run_label.setText("Choose the run to export." if has_runs else "")
            self.results.setVisible(False)
            self._update_enabled()
            return
        self.run_picker.set_run(str(folder))
        self.stack.setCurrentIndex(1)
        self._out_edited = False
        self.results.setVisible(False)
        self.status_label.setText("")
        self.progress.setValue(0)
        self.run_label.setText(self._describe_run(folder))
        self._suggest_out()
        self._update_enabled()

    def _describe_run(self, folder: Path) -> str:
        from core.errors import WhetstoneError
        from core.runs import RunFolder

        try:
            run = RunFolder.open(folder)
            base = run.base_model()
        except WhetstoneError as exc:
            return f"<b>Run</b> {folder}<br><span style='color:#b00020'>{exc}</span>"
        has_adapter = (run.adapter_dir / "adapter_config.json").exists()
        adapter = "adapter ready" if has_adapter else "<span style='color:#b00020'>no adapter yet</span>"
        return f"<b>Run</b> {folder}<br>Base model: {Path(base).name if '/' in base else base} · {adapter}"

    def _mark_out_edited(self, _text: str) -> None:
        self._out_edited = True

    def _suggest_out(self) -> None:
        if self.run_dir is None or self._out_edited:
            return
        fmt = self.current_format()
        name = f"gguf-{self.current_quant()}" if fmt == "gguf" else fmt
        self.out_edit.setText(str(self.run_dir / "exports" / name))

    def _on_format_changed(self, *_args: Any) -> None:
        self._update_enabled()
        self._suggest_out()

    def _update_enabled(self) -> None:
        running = self.is_running()
        gguf = self.current_format() == "gguf"
        self.quant_combo.setEnabled(gguf and not running)
        self.kquant_note.setVisible(gguf and not self.llama_cpp)
        self.verify_box.setEnabled(self.current_format() != "adapter" and not running)
        for button in self.format_buttons.values():
            button.setEnabled(not running)
        self.out_edit.setEnabled(not running)
        # nothing that changes what is being written while it is written (Browse stayed enabled)
        self.out_browse.setEnabled(not running)
        self.choose_run_button.setEnabled(not running)
        self.run_picker.combo.setEnabled(not running)
        self.export_button.setEnabled(not running and self.run_dir is not None)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)  # idle, an empty bar beside Cancel looked like a text field

    # actions --------------------------------------------------------------------------------------------------
    def browse_run(self) -> None:
        self.run_picker.browse()

    def showEvent(self, event: Any) -> None:  # runs trained since the page was built appear in the picker
        if not self.is_running():
            self.run_picker.refresh()
            if self.run_dir is None:
                self._pick_default_run()
        super().showEvent(event)

    def browse_out(self) -> None:
        start = self.out_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(
            self, "Choose where to put the export", str(Path(start).parent)
        )
        if folder:
            fmt = self.current_format()
            name = f"gguf-{self.current_quant()}" if fmt == "gguf" else fmt
            self.out_edit.setText(str(Path(folder) / name))
            self._out_edited = True

    def is_running(self) -> bool:
        return self.job.is_running()

    @property
    def _runner(self) -> JobRunner | None:
        """The export running now (None when none is)."""
        return self.job.runner

    def start_export(self) -> None:
        if self.run_dir is None or self.is_running():
            return
        run_dir, fmt, quant = self.run_dir, self.current_format(), self.current_quant()
        out = Path(self.out_edit.text().strip() or str(run_dir / "exports" / fmt)).expanduser()
        verify = self.verify_box.isChecked()
        overwrite = out.exists()
        if overwrite and not self._confirm_replace(out, run_dir):
            return

        def job(progress: Any, should_stop: Any) -> Any:
            from core.export.api import export_run

            return export_run(
                run_dir,
                fmt,
                out,
                quant=quant,
                verify=verify,
                overwrite=overwrite,
                progress=progress,
                should_stop=should_stop,
            )

        self.results.setVisible(False)
        self.status_label.setStyleSheet("")
        self.status_label.setText(
            f"Exporting to {out}"
            + (" (the export already there is replaced when this one is done)" if overwrite else "")
        )
        self.job.start(
            job,
            finished=self._on_finished,
            failed=self._on_failed,
            cancelled=self._on_cancelled,
            done=self._on_done,
        )
        self._update_enabled()

    def _confirm_replace(self, out: Path, run_dir: Path) -> bool:
        """An earlier export in the run's exports/ folder is replaced without asking; anything else the Save to
        field names (a folder of the user's own files, typed by hand) is deleted only after a Yes."""
        from PySide6.QtWidgets import QMessageBox

        exports = (run_dir / "exports").resolve()
        if out.resolve().is_relative_to(exports):
            return True
        if out.is_dir():
            names = sorted(p.name for p in out.iterdir())
            if not names:
                return True
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
            what = f"the folder {out} and the {len(names):,} item{'s' if len(names) != 1 else ''} in it ({shown})"
        else:
            what = f"the file {out}"
        answer = QMessageBox.question(
            self,
            "Replace what is there?",
            f"Save to names {what}. The export replaces it: it is deleted when the new export is done. "
            "Replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def cancel_export(self) -> None:
        self.job.cancel()

    def _on_finished(self, result: Any) -> None:
        self.progress.setValue(1000)
        self.show_result(result)
        self.ctx.status(f"Exported {result.format} to {result.out_dir}")
        self.exportFinished.emit(result)

    def _on_failed(self, message: str) -> None:
        self.status_label.setStyleSheet("color: #b00020;")
        self.status_label.setText(f"Export failed: {message}")
        self.progress.setValue(0)
        self.exportFailed.emit(message)

    def _on_cancelled(self) -> None:
        self.status_label.setText("Export cancelled; nothing was written under the output name.")
        self.progress.setValue(0)

    def _on_done(self) -> None:
        self._update_enabled()

    def show_result(self, result: Any) -> None:
        doc = result.as_dict()
        self._last_out = Path(doc["out"])
        self.progress.setValue(1000)
        verification = doc.get("verification") or {}
        status = verification_status(verification)
        passed = {"verified": True, "failed": False}.get(status)
        kind = {"adapter": "Adapter", "merged": "Merged model", "gguf": f"GGUF {str(doc['quant']).upper()}"}[
            doc["format"]
        ]
        verdict = {
            "verified": "<span style='color:#1b7f3b'>verified</span>",
            "failed": "<span style='color:#b00020'>verification FAILED</span>",
            "partial": "partly verified",
            "none": "not verified",
        }[status]
        self.summary_label.setText(
            f"<b>{kind}</b> written to {doc['out']} — {_human(doc['total_bytes'])} in {doc['seconds']:.1f} s, {verdict}"
        )
        self.status_label.setStyleSheet("color: #b00020;" if passed is False else "")
        self.status_label.setText("Done." if passed is not False else "Done, but the verification failed.")
        rows = verification_rows(verification)
        self.checks_table.setRowCount(len(rows))
        for r, (check, text, ok) in enumerate(rows):
            self.checks_table.setItem(r, 0, QTableWidgetItem(check))
            self.checks_table.setItem(r, 1, QTableWidgetItem(text))
            mark = QTableWidgetItem("✔" if ok else "✘" if ok is False else "·")
            mark.setForeground(
                Qt.GlobalColor.darkGreen if ok else Qt.GlobalColor.red if ok is False else Qt.GlobalColor.gray
            )
            self.checks_table.setItem(r, 2, mark)
        self.verify_label.setText(verification_summary(verification) if verification else "")
        self.verify_label.setStyleSheet("color: #b00020;" if passed is False else "")
        self.verify_label.setVisible(bool(verification))
        self.details_button.setVisible(bool(rows))
        self.details_button.setChecked(False)
        self.checks_table.setVisible(False)
        files = doc["files"]
        self.files_table.setRowCount(len(files))
        out = Path(doc["out"])
        out = out if out.is_dir() else out.parent  # --out NAME.gguf: the file and its sidecars
        for r, file in enumerate(files):
            path = Path(file["path"])
            shown = str(path.relative_to(out)) if path.is_relative_to(out) else str(path)
            self.files_table.setItem(r, 0, QTableWidgetItem(shown))
            size = QTableWidgetItem(_human(file["bytes"]))
            size.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.files_table.setItem(r, 1, size)
        for table in (self.checks_table, self.files_table):
            table.resizeRowsToContents()
            height = table.horizontalHeader().height() + sum(
                table.rowHeight(i) for i in range(table.rowCount())
            )
            table.setFixedHeight(min(height + 4, 260))
        self.notes_label.setText("\n".join(f"• {n}" for n in doc.get("notes") or []))
        self.notes_label.setVisible(bool(doc.get("notes")))
        self.run_commands.show_commands(doc.get("commands") or [], doc.get("system_prompt"))
        self.results.setVisible(True)

    def _toggle_details(self, shown: bool) -> None:
        self.details_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.checks_table.setVisible(shown and self.checks_table.rowCount() > 0)

    def open_folder(self) -> None:
        if self._last_out is not None:
            folder = self._last_out if self._last_out.is_dir() else self._last_out.parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # window hooks ---------------------------------------------------------------------------------------------
    def can_close(self) -> bool:
        if not self.is_running():
            return True
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self,
            "Export running",
            "An export is still running. Cancel it and close? Nothing half-written is kept.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        self._jobs.shutdown(60000)
