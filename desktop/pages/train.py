"""Train page: pick a base model and a dataset, fill the generated form, see the VRAM/time estimate, train in a
supervised child process, watch live curves, stop/resume/cancel, browse and compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.runs import (
    RunEvent,
    RunFolder,
    flag_label,
    list_runs,
    run_summary,
    runs_root,
    status_text,
    worker_died,
)
from core.training.config import PRESETS, Hardware, TrainingConfig, preset_config
from desktop.context import AppContext
from desktop.widgets.safe_inputs import SafeComboBox
from desktop.widgets.shortcuts import add_main_action_shortcut
from desktop.widgets.train_form import ConfigForm
from desktop.widgets.train_plot import TrainingPlot
from desktop.widgets.train_runs import CompareDialog, RunsList
from desktop.widgets.train_samples import SamplesPanel
from desktop.widgets.train_watcher import RunEnded, TrainingWatcher, WatcherHandle

DATA_FILTER = "Datasets (*.jsonl *.json *.csv *.parquet *.wsdb);;All files (*)"
CPU_TARGET = "This computer's CPU"
TARGETS: list[tuple[str, float | None]] = [
    ("Detected GPU", None),
    ("24 GB GPU", 24.0),
    ("16 GB GPU", 16.0),
    ("12 GB GPU", 12.0),
    ("8 GB GPU", 8.0),
    ("48 GB GPU", 48.0),
    ("80 GB GPU", 80.0),
]
CLOSE_KEEP, CLOSE_STOP, CLOSE_CANCEL = "keep", "stop", "cancel"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"


# the estimate's memory parts (breakdown_gib keys, kept as they are for `whetstone estimate --json`) in words
MEMORY_PARTS = {
    "weights": "model",
    "lora_and_optimizer": "adapter + optimizer",
    "activations": "working memory (activations)",
    "logits": "output scores (logits)",
    "workspace": "scratch space",
}


class _Stat(QFrame):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.setObjectName("trainStat")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        caption = QLabel(title)
        caption.setObjectName("statCaption")
        self.value = QLabel("–")
        self.value.setObjectName("statValue")
        layout.addWidget(caption)
        layout.addWidget(self.value)

    def set(self, text: str) -> None:
        self.value.setText(text)


class TrainPage(QWidget):
    runStarted = Signal(str)
    runEnded = Signal(object)  # RunEnded

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.handle: WatcherHandle | None = None
        self.run: RunFolder | None = None
        self.status = "idle"  # idle | starting | running | stopping
        self.hardware = self._hardware()
        self.ask_close = self._ask_close_dialog  # replaced in tests
        self._last_error = ""
        self._token_stats: dict[tuple[str, float], tuple[int, int]] = {}
        self._pending_workspace: str | None = None  # opened on the Data page while a run trains
        self._cpu_speeds: dict[str, tuple[float, str] | None] = {}

        self.setStyleSheet(
            "QPushButton#danger:disabled { background: #e9b9b7; }"
            "QLabel#statValue { font-size: 15px; font-weight: 600; color: #2a2f3a; }"
            "QLabel#statCaption { color: #5c6473; font-size: 11px; }"
            "QFrame#trainStat { background: white; border: 1px solid #e1e4ea; border-radius: 6px; }"
            "QFrame#estimateBox { background: white; border: 1px solid #d5d9e0; border-radius: 6px; }"
            "QLabel#estimateTitle { font-weight: 600; }"
            "QLabel#runLabel { color: #3b4150; }"
        )
        root = QHBoxLayout(self)
        root.setContentsMargins(16, 12, 16, 12)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(splitter)

        # --- left: setup ---------------------------------------------------------------------------
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 8, 0)
        title = QLabel("Train")
        title.setObjectName("pageTitle")
        left_layout.addWidget(title)
        pick = QGridLayout()
        pick.setColumnStretch(1, 1)
        self.model_combo = SafeComboBox()
        self.model_combo.setObjectName("modelCombo")
        self.model_combo.setToolTip("The base model to fine-tune (add your own with Browse…)")
        self.model_combo.setEditable(False)
        self.model_browse = QPushButton("Browse…")
        self.model_browse.clicked.connect(self._browse_model)
        self.data_edit = QLineEdit()
        self.data_edit.setObjectName("dataEdit")
        self._data_shown: tuple[str, str] | None = None  # (name shown, workspace path) after set_dataset
        self.data_edit.setPlaceholderText("Open a workspace on the Data page, or pick a data file")
        self.data_browse = QPushButton("Browse…")
        self.data_browse.clicked.connect(self._browse_data)
        self.preset_combo = SafeComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.addItem("Custom")
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setToolTip("Start from settings known to work; you can change any of them below")
        # two lines: the plain words, then the term a practitioner looks for (one line was cut off)
        self.trust_check = QCheckBox("Allow this model's own code\n(trust_remote_code)")
        self.trust_check.setObjectName("trustCheck")
        self.trust_check.setToolTip(
            "Some model folders ship Python code that transformers must run to load them. Tick this only for "
            "a model whose author you trust: that code runs with your permissions. Remembered per model."
        )
        self.trust_check.toggled.connect(self._trust_toggled)
        pick.addWidget(QLabel("Base model"), 0, 0)
        pick.addWidget(self.model_combo, 0, 1)
        pick.addWidget(self.model_browse, 0, 2)
        pick.addWidget(self.trust_check, 1, 1, 1, 2)
        pick.addWidget(QLabel("Dataset"), 2, 0)
        pick.addWidget(self.data_edit, 2, 1)
        pick.addWidget(self.data_browse, 2, 2)
        self.yaml_load = QPushButton("Load…")
        self.yaml_load.setToolTip("Load settings from a YAML file")
        self.yaml_load.clicked.connect(self._load_yaml)
        self.yaml_save = QPushButton("Save…")
        self.yaml_save.setToolTip("Save these settings as YAML (usable with `whetstone train --config`)")
        self.yaml_save.clicked.connect(self._save_yaml)
        yaml_row = QHBoxLayout()
        yaml_row.setSpacing(4)
        yaml_row.addWidget(self.yaml_load)
        yaml_row.addWidget(self.yaml_save)
        pick.addWidget(QLabel("Preset"), 3, 0)
        pick.addWidget(self.preset_combo, 3, 1)
        pick.addLayout(yaml_row, 3, 2)
        left_layout.addLayout(pick)

        start_preset = "Quick test (CPU)" if not self.hardware.cuda else "QLoRA 7–8B on 24 GB"
        self.form = ConfigForm(preset_config(start_preset))
        self._describe_gpus()
        self.preset_combo.setCurrentText(start_preset)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.form)
        left_layout.addWidget(scroll, 1)
        self.settings_scroll = scroll
        left.installEventFilter(self)  # the column's height decides how tall the Estimate box may be

        self.estimate_box = QFrame()
        self.estimate_box.setObjectName("estimateBox")
        est_layout = QVBoxLayout(self.estimate_box)
        est_layout.setContentsMargins(10, 8, 10, 8)
        est_head = QHBoxLayout()
        est_title = QLabel("Estimate")
        est_title.setObjectName("estimateTitle")
        self.target_combo = SafeComboBox()
        self.target_combo.setObjectName("targetCombo")
        for label, value in TARGETS:
            self.target_combo.addItem(label, value)
        if not self.hardware.cuda:
            # no GPU here: the run would train on this CPU (the default), or be planned for a GPU elsewhere
            self.target_combo.removeItem(0)
            self.target_combo.insertItem(0, CPU_TARGET, "cpu")
            self.target_combo.setCurrentIndex(0)
        self._select_target(ctx.settings.vram_target_gib)
        self.target_combo.currentIndexChanged.connect(self._remember_target)
        est_head.addWidget(est_title)
        est_head.addStretch(1)
        est_head.addWidget(QLabel("for"))
        est_head.addWidget(self.target_combo)
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(Qt.TextFormat.RichText)
        est_layout.addLayout(est_head)
        est_layout.addWidget(self.estimate_label)
        self.estimate_label.installEventFilter(self)
        # its height is set from its wrapped text by _fit_estimate (nested height-for-width cut it off)
        policy = self.estimate_label.sizePolicy()
        policy.setHeightForWidth(False)
        self.estimate_label.setSizePolicy(policy)
        left_layout.addWidget(self.estimate_box)

        self.error_label = QLabel("")
        self.error_label.setObjectName("trainError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setVisible(False)
        left_layout.addWidget(self.error_label)

        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Save a checkpoint at the next step and end; Resume continues from it")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected run from its last checkpoint")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.setToolTip(
            "End the training process at once (progress since the last checkpoint is lost)"
        )
        for b in (self.train_button, self.stop_button, self.resume_button, self.cancel_button):
            buttons.addWidget(b)
        left_layout.addLayout(buttons)
        left.setMaximumWidth(520)
        splitter.addWidget(left)

        # --- right: live view + runs ---------------------------------------------------------------
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        self.run_label = QLabel("No run yet")
        self.run_label.setObjectName("runLabel")
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_label.setWordWrap(True)  # "Finished · PATH · best checkpoint: step 2" ran off the right edge
        right_layout.addWidget(self.run_label)
        stats = QHBoxLayout()
        self.stat_step = _Stat("Step")
        self.stat_epoch = _Stat("Epoch")
        self.stat_loss = _Stat("Train / val loss")
        self.stat_speed = _Stat("Tokens/s")
        self.stat_vram = _Stat("VRAM peak")
        self.stat_eta = _Stat("Time left")
        for s in (
            self.stat_step,
            self.stat_epoch,
            self.stat_loss,
            self.stat_speed,
            self.stat_vram,
            self.stat_eta,
        ):
            stats.addWidget(s)
        right_layout.addLayout(stats)
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        right_layout.addWidget(self.progress)
        self.plot = TrainingPlot()
        right_layout.addWidget(self.plot, 3)
        self.tabs = QTabWidget()
        self.messages = QListWidget()
        self.messages.setObjectName("trainMessages")
        self.messages.setWordWrap(True)
        self.messages.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.runs = RunsList(runs_root(ctx.settings))
        self.samples = SamplesPanel()
        self.samples.setObjectName("trainSamples")
        self.tabs.addTab(self.messages, "Messages")
        self.tabs.addTab(self.samples, "Samples")
        self.tabs.addTab(self.runs, "Runs")
        right_layout.addWidget(self.tabs, 2)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([430, 800])

        # --- wiring ------------------------------------------------------------------------------------
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(250)
        self._estimate_timer.timeout.connect(self.update_estimate)
        self.form.changed.connect(self._on_form_changed)
        self.model_combo.currentIndexChanged.connect(lambda _i: self._estimate_timer.start())
        self.model_combo.currentIndexChanged.connect(lambda _i: self._show_trust())
        self.data_edit.textChanged.connect(lambda _t: self._estimate_timer.start())
        self.target_combo.currentIndexChanged.connect(lambda _i: self._estimate_timer.start())
        self.preset_combo.currentIndexChanged.connect(self._apply_preset)
        self.train_button.clicked.connect(self.start_training)
        add_main_action_shortcut(self.train_button)
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button.clicked.connect(self.resume_training)
        self.cancel_button.clicked.connect(self.cancel_training)
        self.runs.runSelected.connect(self.show_run)
        self.runs.compareRequested.connect(self.compare_runs)
        ctx.workspaceChanged.connect(self._on_workspace)

        self._fill_models()
        self._show_trust()
        if ctx.workspace_path is not None:
            self.set_dataset(str(ctx.workspace_path))
        self.runs.refresh()
        self._update_buttons()
        self.update_estimate()
        self._reattach()

    # --- setup helpers ---------------------------------------------------------------------------------
    def _select_target(self, gib: float) -> None:
        """The estimate's target from the settings (`vram_target_gib`; 0 = this machine: its GPU, or its CPU)."""
        if gib <= 0:
            return
        index = self.target_combo.findData(float(gib))
        if index < 0:
            self.target_combo.addItem(f"{gib:g} GB GPU", float(gib))
            index = self.target_combo.count() - 1
        self.target_combo.setCurrentIndex(index)

    def _remember_target(self, _index: int) -> None:
        """The target chosen last is the next session's default (saved with the settings when the app closes)."""
        value = self.target_combo.currentData()
        self.ctx.settings.vram_target_gib = float(value) if isinstance(value, float) else 0.0

    @staticmethod
    def _hardware() -> Hardware:
        from core.device import detect_device

        return Hardware.from_device(detect_device())

    def _fill_models(self) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        try:
            entries = self.ctx.registry.list("base")
        except Exception:  # noqa: BLE001 - a broken registry must not break the page
            entries = []
        for e in entries:
            self.model_combo.addItem(f"{e.id}  ({e.source})", e.id)
        if self.model_combo.count() == 0:
            self.model_combo.addItem("smollm2-135m-instruct", "smollm2-135m-instruct")
        self.model_combo.blockSignals(False)

    def _show_trust(self) -> None:
        """The checkbox shows what the registry allows for the chosen model (embedded ones have no code)."""
        name = self.model_name()
        allowed, embedded = False, False
        try:
            entry = self.ctx.registry.get(name)
            allowed, embedded = entry.trust_remote_code, entry.source == "embedded"
        except Exception:  # noqa: BLE001 - an unknown model shows the box unticked
            pass
        self.trust_check.blockSignals(True)
        self.trust_check.setChecked(allowed)
        self.trust_check.setEnabled(not embedded)
        self.trust_check.blockSignals(False)

    def _trust_toggled(self, allowed: bool) -> None:
        try:
            self.ctx.registry.set_trust_remote_code(self.model_name(), allowed)
        except UserError as exc:
            QMessageBox.warning(self, "Model code", str(exc))
            self._show_trust()

    def model_name(self) -> str:
        data = self.model_combo.currentData()
        return str(data) if data else self.model_combo.currentText()

    def set_model(self, name: str) -> None:
        index = self.model_combo.findData(name)
        if index < 0:
            self.model_combo.addItem(f"{Path(name).name}  (folder)", name)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)
        self._show_trust()

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder (safetensors)", str(Path.home()))
        if folder:
            self.choose_model_folder(folder)

    def choose_model_folder(self, folder: str | Path) -> bool:
        """Check a folder picked as the base model (config, weights, tokenizer) before the form uses it."""
        from core.models import check_base_model_folder

        path = Path(folder).expanduser().resolve()
        allow_pickle = trust_code = False
        try:
            for entry in self.ctx.registry.list("base"):
                if Path(entry.path) == path:  # registered with `whetstone models add` and its allow flags
                    allow_pickle, trust_code = entry.allow_pickle, entry.trust_remote_code
        except Exception:  # noqa: BLE001 - a broken registry must not block the check
            pass
        try:
            # its own code is allowed with the checkbox below the model, once it is chosen
            described = check_base_model_folder(path, allow_pickle=allow_pickle, trust_remote_code=True)
        except UserError as exc:
            self._show_error(f"Not used as the base model: {exc}")
            return False
        self._show_error("")
        self.set_model(str(path))
        if not trust_code and _needs_own_code(path):
            described += (
                "; it ships its own code: tick 'Allow this model's own code' only if you trust its author"
            )
        self.ctx.status(f"Base model: {path.name} ({described})", 10000)
        return True

    def _browse_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dataset", str(Path.home()), DATA_FILTER)
        if path:
            self.set_dataset(path)

    def load_yaml(self, path: str | Path) -> None:
        from core.training.config import load_config

        self.show_config(load_config(path))

    def show_config(self, cfg: Any, keep_dataset: bool = False) -> None:
        """Put a whole config (a loaded YAML, a selected run's) into the form, model and dataset fields;
        `keep_dataset` leaves the dataset the user chose."""
        self.form.blockSignals(True)
        self.form.set_config(cfg)
        self.form.blockSignals(False)
        self.set_model(cfg.model.name)
        if cfg.data.source and not keep_dataset:
            self.set_dataset(cfg.data.source)
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(0)
        self.preset_combo.blockSignals(False)
        self._estimate_timer.start()

    def _load_yaml(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load settings", str(Path.home()), "YAML (*.yaml *.yml)")
        if path:
            try:
                self.load_yaml(path)
            except UserError as exc:
                self._show_error(str(exc))

    def _save_yaml(self) -> None:
        from core.training.config import save_config

        try:
            cfg = self.current_config()
        except UserError as exc:
            self._show_error(str(exc))
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save settings", str(Path.home() / "train.yaml"), "YAML (*.yaml *.yml)"
        )
        if path:
            save_config(cfg, path)
            self.ctx.status(f"Settings saved to {path}")

    def _on_workspace(self, path: str) -> None:
        if self.is_training():  # the form shows the running run's settings; the new data waits for its end
            self._pending_workspace = path
            return
        self.set_dataset(path)

    def _apply_preset(self, index: int) -> None:
        if index <= 0:
            return
        name = self.preset_combo.currentText()
        self.form.blockSignals(True)
        self.form.set_config(preset_config(name, self.form.config()))
        self.form.blockSignals(False)
        preset_model = PRESETS[name].get("model", {}).get("name")
        if preset_model:
            self.set_model(preset_model)
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(index)
        self.preset_combo.blockSignals(False)
        self._estimate_timer.start()

    def _describe_gpus(self) -> None:
        """The GPUs field (Advanced) lists this machine's cards and offers no more than there are."""
        field = self.form.fields.get(("train", "gpus"))
        if field is None:
            return
        from core.device import list_gpus

        cards = list_gpus() if self.hardware.cuda else []
        spin = field.widget
        assert isinstance(spin, QSpinBox)  # an int field
        if len(cards) > 1:
            spin.setMaximum(len(cards))
            listing = "\n".join(f"GPU {i}: {c.name} ({c.total_gib:.0f} GiB)" for i, c in enumerate(cards))
            note = f"This computer has {len(cards)} GPUs:\n{listing}"
        else:
            spin.setMaximum(1)
            spin.setEnabled(False)
            note = (
                f"This computer has one GPU ({cards[0].name}): training runs in one process."
                if cards
                else "No NVIDIA GPU found: training runs in one process on the CPU."
            )
        if not hasattr(self, "_gpus_help"):
            self._gpus_help = spin.toolTip()
        tip = f"{self._gpus_help}\n\n{note}".strip()
        spin.setToolTip(tip)
        field.label.setToolTip(tip)
        self._describe_split(len(cards))

    def _describe_split(self, cards: int) -> None:
        """'Split the model across GPUs' (Advanced) is offered only on a machine with 2 or more GPUs; ticking it
        uses them all when GPUs is still 1 (splitting needs at least 2)."""
        split = self.form.fields.get(("train", "shard_model"))
        gpus = self.form.fields.get(("train", "gpus"))
        if split is None or gpus is None:
            return
        box = split.widget
        assert isinstance(box, QCheckBox)  # a bool field
        if not hasattr(self, "_split_help"):
            self._split_help = box.toolTip()
            box.toggled.connect(self._on_split_toggled)
        if cards < 2:
            box.setChecked(False)
            note = "This computer has fewer than 2 GPUs, so the model cannot be split."
        else:
            note = f"Splits the model across the GPUs set above (up to {cards} here)."
        box.setEnabled(cards >= 2)
        tip = f"{self._split_help}\n\n{note}".strip()
        box.setToolTip(tip)
        split.label.setToolTip(tip)

    def _on_split_toggled(self, on: bool) -> None:
        gpus = self.form.fields.get(("train", "gpus"))
        spin = gpus.widget if gpus is not None else None
        if on and gpus is not None and isinstance(spin, QSpinBox) and spin.value() < 2:
            gpus.set(spin.maximum())

    def _on_form_changed(self) -> None:
        if self.preset_combo.currentIndex() != 0 and not self.form.signalsBlocked():
            self.preset_combo.blockSignals(True)
            self.preset_combo.setCurrentIndex(0)
            self.preset_combo.blockSignals(False)
        self._estimate_timer.start()

    def current_config(self) -> TrainingConfig:
        return self.form.config(model=self.model_name(), source=self.dataset_path())

    def set_dataset(self, path: str) -> None:
        """Show the dataset as the user knows it: a workspace by the file they opened ("helpdesk.csv", the full
        paths in the tooltip), not its internal file ("helpdesk-266b7ad9c3.wsdb"); the run gets the path."""
        source = self._workspace_source(path) if path.endswith(".wsdb") else None
        if source:
            shown = Path(source).name
            self._data_shown = (shown, path)
            self.data_edit.setText(shown)
            self.data_edit.setToolTip(f"Opened from {source}\nWorkspace: {path}")
        else:
            self._data_shown = None
            self.data_edit.setText(path)
            self.data_edit.setToolTip(path)

    def dataset_path(self) -> str:
        """The dataset the run trains on: the workspace behind the shown name, or what the user typed."""
        text = self.data_edit.text().strip()
        shown = self._data_shown
        return shown[1] if shown is not None and text == shown[0] else text

    def _workspace_source(self, path: str) -> str | None:
        if self.ctx.workspace_path is not None and Path(path) == self.ctx.workspace_path:
            meta = getattr(self.ctx.workspace, "meta", None)
            if meta is not None:
                return meta("source")
        from core.data.workspace import DatasetWorkspace

        try:
            with DatasetWorkspace.open(path) as ws:
                return ws.meta("source")
        except Exception:  # noqa: BLE001 - only a label: an unreadable workspace shows its path
            return None

    # --- estimate --------------------------------------------------------------------------------------
    def update_estimate(self) -> None:
        from core.training.estimate import (
            dataset_token_stats,
            estimate,
            format_duration,
            shape_for_model_quick,
        )

        try:
            cfg = self.current_config()
        except UserError as exc:
            self.estimate_label.setText(f"<span style='color:#c0392b'>{exc}</span>")
            return
        shape = shape_for_model_quick(cfg.model.name)
        if shape is None:
            self.estimate_label.setText("No estimate: the model's config.json cannot be read.")
            return
        chosen = self.target_combo.currentData()
        cpu_target = chosen == "cpu"
        self._show_packing(cpu_target)
        target = None if cpu_target or chosen is None else float(chosen)
        if target is None and not self.hardware.cuda:
            target = 24.0
        preset = self.preset_combo.currentText() if self.preset_combo.currentIndex() > 0 else None
        tokens = examples = None
        source = cfg.data.source
        if source and Path(source).is_file() and Path(source).stat().st_size < 50_000_000:
            key = (source, Path(source).stat().st_mtime)
            if key not in self._token_stats:
                try:
                    self._token_stats = {key: dataset_token_stats(source)}
                except UserError:
                    self._token_stats = {key: (0, 0)}
            tokens, examples = self._token_stats[key]
        est = estimate(
            cfg,
            shape,
            self.hardware,
            target_gib=target,
            dataset_tokens=tokens or None,
            dataset_examples=examples or None,
            cpu_target=cpu_target,
            preset=preset,
            cpu_measured=self._cpu_speed(cfg.model.name) if cpu_target else None,
        )
        lines = []
        if not cpu_target:  # GPU memory matters only for a GPU
            color = "#1e8e3e" if est.fits else "#c0392b"
            verdict = "fits" if est.fits else "does not fit"
            lines.append(
                f"<b style='color:{color}'>≈ {est.vram_gib:.1f} GiB peak — {verdict} in {est.target_gib:g} GiB</b>"
            )
            parts = ", ".join(
                f"{MEMORY_PARTS.get(k, k.replace('_', ' '))} {v:.2f}"
                for k, v in est.breakdown_gib.items()
                if v >= 0.01
            )
            lines.append(f"<span style='color:#5c6473'>{parts}</span>")
            if est.memory_plan:  # which layers keep activations / are recomputed / wait in CPU memory
                lines.append(f"<span style='color:#5c6473'>{est.memory_plan}</span>")
        where = "this GPU" if self.hardware.cuda and target is None else est.time_device
        if est.time_s is not None:
            per = "for the run" if cfg.train.max_steps else "per epoch"
            lines.append(f"<b>Time: {format_duration(est.time_s)} {per} on {where}</b>")
        else:
            lines.append(
                f"Speed ≈ {est.tokens_per_s:,.0f} tokens/s on {where}; choose a dataset for the time per epoch"
            )
        lines.append(f"<span style='color:#5c6473'>({est.time_basis})</span>")
        for w in est.warnings:
            lines.append(f"<span style='color:#a06000'>⚠ {w}</span>")
        for s in est.suggestions:
            lines.append(f"• {s}")
        for n in est.notes:
            lines.append(f"<i style='color:#5c6473'>{n}</i>")
        self.estimate_label.setText("<br>".join(lines))
        self.last_estimate = est
        self._fit_estimate()

    def _fit_estimate(self) -> None:
        """The Estimate box as tall as its wrapped text at the label's width (the settings above scroll
        instead): a wrapped label's own size hint is for a wider line, and the box cut its last lines off."""
        label = self.estimate_label
        if label.width() <= 50 or not self.isVisible():
            return
        needed = label.heightForWidth(label.width())
        # the left column's height less what everything else asks for (sizes that do not depend on how the
        # column is shared now, so this settles at once) and 120 px kept for the settings, which scroll
        column = self.estimate_box.parentWidget()
        layout = column.layout() if column is not None else None
        if column is None or layout is None:
            return
        others = 0
        for i in range(layout.count()):
            item = layout.itemAt(i)
            if item is None:
                continue
            widget = item.widget()
            if widget is self.settings_scroll or widget is self.estimate_box:
                continue
            if widget is not None and not widget.isVisible():
                continue
            others += item.sizeHint().height() + layout.spacing()
        box = self.estimate_box.layout()
        head = box.itemAt(0) if box is not None else None
        if box is None or head is None:
            return
        margins = box.contentsMargins()
        chrome = margins.top() + margins.bottom() + head.sizeHint().height() + box.spacing()
        margins = layout.contentsMargins()
        room = column.height() - margins.top() - margins.bottom() - others - chrome - layout.spacing() - 120
        label.setFixedHeight(max(60, min(needed, room)))  # fixed: the rest goes to the settings

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        box = getattr(self, "estimate_box", None)  # (events may come while __init__ builds the page)
        if (
            event.type() == QEvent.Type.Resize
            and box is not None
            and watched
            in (
                self.estimate_label,
                box.parentWidget(),
            )
        ):
            self._fit_estimate()  # the splitter or the window changed the label's width or the room left
        return super().eventFilter(watched, event)

    def _show_packing(self, cpu_target: bool) -> None:
        """On this CPU the run batches by length instead of packing: the box says so (unticked, greyed out);
        the user's choice stays in the settings (saved YAML, GPU runs) and shows again for a GPU target."""
        if ("train", "packing") not in self.form.fields:
            return
        if cpu_target and not self.hardware.cuda:
            self.form.pin(
                "train",
                "packing",
                False,
                "A CPU does not pack examples: it batches examples of similar length together instead "
                "(packing is slower there). Your choice is kept for training on a GPU.",
            )
        else:
            self.form.unpin("train", "packing")

    def _cpu_speed(self, model: str) -> tuple[float, str] | None:
        """This computer's measured tokens/s for the model (newest CPU run), read again after each run."""
        from core.training.estimate import measured_cpu_speed

        if model not in self._cpu_speeds:
            self._cpu_speeds = {model: measured_cpu_speed(model, runs_root(self.ctx.settings))}
        return self._cpu_speeds[model]

    # --- training control ------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.status in ("starting", "running", "stopping")

    def _update_buttons(self) -> None:
        busy = self.is_training()
        self.train_button.setEnabled(not busy)
        self.stop_button.setEnabled(self.status == "running")
        self.cancel_button.setEnabled(busy)
        can_resume = (
            not busy
            and self.run is not None
            # a checkpoint to continue from, or a run whose worker died before its first one (starts again)
            and (self.run.last_checkpoint() is not None or worker_died(self.run))
            and self.run.read_summary().get("status") != "finished"
        )
        self.resume_button.setEnabled(can_resume)
        # nothing that changes the settings while a run uses them (the Runs list and the estimate stay live)
        for widget in (
            self.form,
            self.model_combo,
            self.model_browse,
            self.data_edit,
            self.data_browse,
            self.preset_combo,
            self.yaml_load,
        ):
            widget.setEnabled(not busy)
        if busy:
            self.trust_check.setEnabled(False)
        else:
            self._show_trust()  # enabled unless the model is embedded

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def start_training(self, run_dir: str | Path | None = None) -> bool:
        from core.training.launch import new_run_dir, prepare_run

        self._show_error("")
        try:
            cfg = self.current_config()
            if not cfg.data.source:
                raise UserError("Choose a dataset first (open a workspace on the Data page, or Browse…).")
            if not Path(cfg.data.source).expanduser().exists():
                raise UserError(f"Dataset not found: {cfg.data.source}")
        except UserError as exc:
            self._show_error(str(exc))
            return False
        target = Path(run_dir) if run_dir else new_run_dir(cfg.model.name, runs_root(self.ctx.settings))
        self.run = RunFolder(target)
        self.plot.clear()
        self.messages.clear()
        self.samples.reset(enabled=cfg.train.sample_prompts > 0)
        self._launch(TrainingWatcher(target, prepare=lambda: prepare_run(cfg, cfg.data.source, target)))
        return True

    def resume_training(self) -> None:
        if self.run is None:
            return
        self._show_error("")
        _events, offset = self.run.read_events()
        self._load_curve(self.run)
        self._launch(TrainingWatcher(self.run.path, resume=True, from_offset=offset))

    def _launch(self, watcher: TrainingWatcher) -> None:
        self.status = "starting"
        self.run_label.setText(f"Starting… {watcher.run_dir}")
        self.progress.setRange(0, 0)
        watcher.run_event.connect(self._on_event)
        watcher.started.connect(self._on_started)
        watcher.ended.connect(self._on_ended)
        watcher.failed.connect(self._on_failed)
        self.handle = WatcherHandle(watcher, self)
        self.handle.start()
        self._update_buttons()

    def stop_training(self) -> None:
        if self.run is not None and self.status == "running":
            self.run.request_stop()
            self.status = "stopping"
            self.stop_button.setText("Stopping…")
            self._message("Stop requested: saving a checkpoint after the current step…")
            self._update_buttons()

    def cancel_training(self, confirm: bool = True) -> None:
        if self.handle is None or not self.is_training():
            return
        if confirm:
            answer = QMessageBox.question(
                self,
                "Cancel training",
                "End the training process now? Progress since the last checkpoint is lost.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.handle.watcher.cancel()

    # --- watcher signals -------------------------------------------------------------------------------
    def _show_last_step(self, run: RunFolder) -> None:
        """Step, epoch and progress of the last step a (reattached or resumed) run logged so far."""
        steps = [e for e in run.curve() if e.get("type") == "step"]
        if not steps:
            return
        last = steps[-1]
        step, total = int(last.get("step") or 0), last.get("max_steps")
        self.stat_step.set(f"{step}/{total}" if total else str(step))
        if last.get("epoch") is not None:
            self.stat_epoch.set(f"{last['epoch']:.2f}")
        if total:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(100 * min(1.0, step / int(total))))

    def _on_started(self, run_dir: str) -> None:
        self.status = "running"
        self.run = RunFolder(Path(run_dir))
        self.run_label.setText(f"Training · {run_dir}")
        self.progress.setRange(0, 100)
        self._show_last_step(self.run)
        self._update_buttons()
        self.runs.refresh()
        self.runs.select_run(run_dir)
        self.runStarted.emit(run_dir)

    def _on_failed(self, message: str) -> None:
        self.status = "idle"
        self.progress.setRange(0, 100)
        self._show_error(message)
        self.run_label.setText("Could not start")
        self.handle = None
        self._update_buttons()

    def _on_event(self, ev: RunEvent) -> None:
        if self.run is not None and ev.type in ("step", "eval"):
            self.runs.update_live(
                str(self.run.path),
                status="running",
                step=ev.step if ev.type == "step" else None,
                loss=ev.loss if ev.type == "step" else None,
                eval_loss=ev.eval_loss if ev.type == "eval" else None,
            )
        if ev.type == "step":
            self.plot.add_step(ev.step, ev.loss, ev.lr)
            self.stat_step.set(f"{ev.step}/{ev.max_steps}" if ev.max_steps else str(ev.step))
            if ev.epoch is not None:
                self.stat_epoch.set(f"{ev.epoch:.2f}")
            val = self.plot.val[-1][1] if self.plot.val else None
            self.stat_loss.set(
                f"{ev.loss:.4f} / {val:.4f}"
                if val is not None and ev.loss is not None
                else f"{ev.loss:.4f}"
                if ev.loss is not None
                else "–"
            )
            if ev.tokens_per_s is not None:
                self.stat_speed.set(f"{ev.tokens_per_s:,.0f}")
            self.stat_vram.set(f"{ev.vram_gib:.1f} GiB" if ev.vram_gib is not None else "– (CPU)")
            self.stat_eta.set(_eta(ev.eta_s))
            if ev.max_steps:
                self.progress.setRange(0, 100)
                self.progress.setValue(int(100 * ev.step / ev.max_steps))
        elif ev.type == "eval" and ev.eval_loss is not None:
            self.plot.add_eval(ev.step, ev.eval_loss, bool(ev.best))
            last = self.plot.train[-1][1] if self.plot.train else None
            self.stat_loss.set(
                f"{last:.4f} / {ev.eval_loss:.4f}" if last is not None else f"– / {ev.eval_loss:.4f}"
            )
        elif ev.type == "log":
            if ev.resumed_from is not None:
                self.plot.truncate(ev.resumed_from)
            if ev.samples is not None:
                self.samples.add(ev.step, list(ev.samples), dict(ev.sample_stats or {}))
            self._message(ev.message, flag=bool(ev.flag))
        elif ev.type == "checkpoint":
            self._message(f"Checkpoint at step {ev.step}" + (" (best so far)" if ev.best else ""))
        elif ev.type == "done":
            self._message(ev.message)
        elif ev.type == "error":
            self._last_error = ev.message
            self._message(ev.message, flag=True)

    def _message(self, text: str, flag: bool = False) -> None:
        if not text:
            return
        item = QListWidgetItem(("⚠ " if flag else "") + text)
        if flag:
            item.setForeground(Qt.GlobalColor.darkRed)
        self.messages.addItem(item)
        self.messages.scrollToBottom()

    def _on_ended(self, ended: RunEnded) -> None:
        self.handle = None
        self.stop_button.setText("Stop")
        self.progress.setRange(0, 100)
        if ended.status == "detached":
            self.status = "idle"
            self._update_buttons()
            return
        self.status = "idle"
        run = RunFolder(Path(ended.run_dir))
        self.run = run
        summary = run.read_summary()
        s = run_summary(run)
        if ended.status == "finished":
            self.progress.setValue(100)
            text = f"Finished · {ended.run_dir}"
        elif ended.status == "stopped":
            text = f"Stopped at step {s['steps']} · Resume continues · {ended.run_dir}"
        elif ended.status == "cancelled":
            text = f"Cancelled · {ended.run_dir}"
        elif ended.status == "interrupted":
            text = f"{status_text(s).capitalize()} · {ended.run_dir}"
            self._show_error(s["message"])
        else:
            text = f"Failed · {ended.run_dir}"
            self._show_error(self._last_error or f"Training failed; see {run.logs_dir / 'worker.log'}")
        self.run_label.setText(text + _flags_text(summary))
        self._last_error = ""
        self.runs.refresh()
        self.runs.select_run(ended.run_dir)
        self._cpu_speeds = {}  # this run's speed is the newest measurement
        pending, self._pending_workspace = self._pending_workspace, None
        if pending:
            self.set_dataset(pending)
        if (run.adapter_dir / "adapter_config.json").exists():
            self.ctx.set_run(run.path)
            self.ctx.status(f"Run ready for Evaluate and Export: {run.path.name}")
        self._update_buttons()
        self.runEnded.emit(ended)

    # --- runs ------------------------------------------------------------------------------------------
    def _load_curve(self, run: RunFolder) -> None:
        self.plot.load_events(run.curve())
        self.samples.load(run.samples(), enabled=_sampling_enabled(run))

    def show_run(self, run_dir: str) -> None:
        if self.is_training():
            return
        run = RunFolder(Path(run_dir))
        self.run = run
        self._load_curve(run)
        self.messages.clear()
        for e in run.curve():
            if e.get("type") in ("log", "error", "done"):
                self._message(str(e.get("message", "")), flag=bool(e.get("flag")) or e.get("type") == "error")
        s = run_summary(run)
        self.run_label.setText(f"{status_text(s).capitalize()} · {run_dir}" + _flags_text(run.read_summary()))
        if s["status"] == "interrupted":
            self._message(s["message"], flag=True)
        steps = [e for e in run.curve() if e.get("type") == "step"]
        if steps:
            last = steps[-1]
            self.stat_step.set(
                f"{last.get('step')}/{last['max_steps']}" if last.get("max_steps") else str(last.get("step"))
            )
            self.stat_epoch.set(f"{last.get('epoch', 0):.2f}")
            self.stat_loss.set(f"{_num(s['final_loss'])} / {_num(s['final_eval_loss'])}")
            self.stat_speed.set(f"{last.get('tokens_per_s', 0):,.0f}")
            self.stat_vram.set(
                f"{last['vram_gib']:.1f} GiB" if last.get("vram_gib") is not None else "– (CPU)"
            )
            self.stat_eta.set("–")
            total = last.get("max_steps") or s["steps"] or 1
            self.progress.setValue(int(100 * min(1.0, (s["steps"] or 0) / total)))
        else:
            self.progress.setValue(0)
        try:
            from core.training.config import config_from_dict

            cfg = config_from_dict(run.read_config())
        except (UserError, KeyError, TypeError):
            cfg = None
        if cfg is not None:
            # the run's training settings fill the form; the dataset the user chose stays (a run's own data is
            # its snapshot; a new run from these settings trains on what is chosen now)
            keep = bool(self.dataset_path())
            self.show_config(cfg, keep_dataset=keep)
            if keep:
                self.ctx.status(
                    f"Loaded the training settings of run {run.path.name}; "
                    f"the dataset stays {self.data_edit.text().strip()}."
                )
            else:
                self.ctx.status(f"Loaded the training settings and dataset of run {run.path.name}.")
        if s["adapter"]:
            self.ctx.set_run(run.path)
        self._update_buttons()

    def compare_runs(self, a: str, b: str) -> None:
        self.compare_dialog = CompareDialog(a, b, self)
        self.compare_dialog.show()

    def _reattach(self) -> None:
        """A run a previous session left training: show its curve so far and keep following it."""
        for run in list_runs(runs_root(self.ctx.settings)):
            if run.is_running():
                self.run = run
                try:  # the form shows the settings this run trains with, not the defaults
                    from core.training.config import config_from_dict

                    self.show_config(config_from_dict(run.read_config()))
                except (UserError, KeyError, TypeError, ValueError, OSError):
                    self._message("This run's settings (config.yaml) could not be read.", flag=True)
                self._load_curve(run)
                self._show_last_step(run)
                _events, offset = run.read_events()
                self._message("Reattached to a run that was still training.")
                self._launch(TrainingWatcher(run.path, start=False, from_offset=offset))
                return

    # --- lifecycle -------------------------------------------------------------------------------------
    def _ask_close_dialog(self) -> str:
        box = QMessageBox(self)
        box.setWindowTitle("Training is running")
        box.setText("A training run is still going. What should happen to it?")
        keep = box.addButton("Keep training in the background", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop (save a checkpoint)", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Don't close", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        clicked = box.clickedButton()
        return CLOSE_KEEP if clicked is keep else CLOSE_STOP if clicked is stop else CLOSE_CANCEL

    def can_close(self) -> bool:
        if not self.is_training():
            return True
        choice = self.ask_close()
        if choice == CLOSE_CANCEL:
            return False
        if choice == CLOSE_STOP and self.run is not None:
            self.run.request_stop()
        return True

    def shutdown(self) -> None:
        """Detach from the worker (it keeps running on its own; the next start reattaches)."""
        if self.handle is not None:
            self.handle.stop()
            self.handle = None

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)


def _flags_text(summary: dict[str, Any]) -> str:
    """The run summary's best checkpoint and red flags, for the run label."""
    text = ""
    best, best_loss = summary.get("best_step"), summary.get("best_eval_loss")
    if best is not None and isinstance(best_loss, (int, float)):
        text += f" · best checkpoint: step {best} (val {best_loss:.4f})"
    flags = summary.get("flags") or []
    if flags:
        text += " · red flags: " + ", ".join(flag_label(str(f)) for f in flags)
    return text


def _sampling_enabled(run: RunFolder) -> bool:
    """Whether the run samples answers at each validation (runs from before sampling existed did not)."""
    try:
        train = run.read_config().get("train") or {}
        return int(train.get("sample_prompts", 0) or 0) > 0
    except (UserError, AttributeError, TypeError, ValueError):
        return False


def _needs_own_code(folder: Path) -> bool:
    """Whether a model folder's config.json points transformers at code inside the folder (auto_map)."""
    import json

    try:
        return bool(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("auto_map"))
    except (OSError, ValueError, AttributeError):
        return False


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"
