"""The hyperparameter form, generated from the pydantic training config (labels = field titles, help =
field descriptions). Basic fields are shown; fields marked advanced sit under an "Advanced" fold.

Titles are plain words with the practitioner's term in parentheses, "Adapter size (LoRA rank)": the label shows
the plain words, the term below them in small grey type. A field's `choices` (json_schema_extra) name its
values in plain words; the combo box keeps the stored value ("all-linear") as each item's data."""

from __future__ import annotations

import html
import types
import typing
from typing import Any, Literal, get_args, get_origin

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.training.config import TrainingConfig, config_from_dict
from core.training.schema import split_title
from desktop.widgets.safe_inputs import SafeComboBox, SafeDoubleSpinBox, SafeSpinBox

SECTIONS = [
    ("model", "Model"),
    ("quant", "Memory saving (quantization)"),
    ("lora", "Adapter (LoRA)"),
    ("train", "Training"),
    ("data", "Data"),
]
SKIP = {("model", "name"), ("data", "source")}  # chosen with their own pickers above the form
AUTO = "Automatic"
TERM_STYLE = "color:#5c6473; font-size:11px"


def label_html(title: str) -> str:
    """The label's rich text: the plain words, the technical term on a second line in small grey type."""
    plain, term = split_title(title)
    if not term:
        return html.escape(plain)
    return f"{html.escape(plain)}<br><span style='{TERM_STYLE}'>{html.escape(term)}</span>"


def _literal_choices(annotation: Any) -> list[Any] | None:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            if get_origin(arg) is Literal:
                return list(get_args(arg))
    return None


def _is_optional_bool(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType) and set(get_args(annotation)) == {
        bool,
        type(None),
    }


class _Field:
    def __init__(self, section: str, name: str, info: Any) -> None:
        self.section, self.name, self.info = section, name, info
        ann = info.annotation
        self.kind: str
        self.widget: QWidget
        choices = _literal_choices(ann)
        if _is_optional_bool(ann):
            self.kind = "tristate"
            box = SafeComboBox()
            box.addItems([AUTO, "On", "Off"])
            self.widget = box
        elif choices is not None:
            self.kind = "choice"
            box = SafeComboBox()
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            shown = extra.get("choices") or {}
            for c in choices:  # the words shown; the stored value (config.yaml, CLI) is the item's data
                box.addItem(str(shown.get(c, c)), str(c))
            # as wide as the form's field column, not as its longest item ("flash_attention_2"), so the
            # form fits the page without a horizontal scrollbar
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(6)
            self.widget = box
        elif ann is bool:
            self.kind = "bool"
            self.widget = QCheckBox()
        elif ann is int:
            self.kind = "int"
            int_spin = SafeSpinBox()
            int_spin.setRange(_bound(info, "ge", 0), min(_bound(info, "le", 2_000_000_000), 2_000_000_000))
            self.widget = int_spin
        elif ann is float:
            self.kind = "float"
            float_spin = SafeDoubleSpinBox()
            small = name in ("learning_rate", "weight_decay")
            float_spin.setDecimals(6 if small else 3)
            float_spin.setSingleStep(1e-5 if small else 0.05)
            # up to the schema's own bound (a share stops at 1): a narrower box, and no value it would refuse
            float_spin.setRange(0.0, _float_bound(info, 1e6))
            self.widget = float_spin
        else:
            self.kind = "text"
            self.widget = QLineEdit()
        self.widget.setObjectName(f"field_{section}_{name}")
        help_text = info.description or ""
        self.widget.setToolTip(help_text)
        self.widget.setWhatsThis(help_text)
        self.title = info.title or name
        self.label = QLabel(label_html(self.title))
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAccessibleName(self.title)
        self.label.setBuddy(self.widget)
        self.label.setToolTip(help_text)
        self.help_text = help_text
        # (value shown, why) while the target machine overrides this setting; the user's own value is kept
        self.pinned: tuple[Any, str] | None = None
        self.kept: Any = None

    def set(self, value: Any) -> None:
        if self.pinned is not None:  # shown pinned; the value set is the user's, restored on unpin
            self.kept = value
            return
        self._show(value)

    def _show(self, value: Any) -> None:
        w = self.widget
        if self.kind == "tristate":
            assert isinstance(w, QComboBox)
            w.setCurrentText(AUTO if value is None else ("On" if value else "Off"))
        elif self.kind == "choice":
            assert isinstance(w, QComboBox)
            index = w.findData(str(value) if not isinstance(value, list) else "all-linear")
            if index >= 0:
                w.setCurrentIndex(index)
        elif self.kind == "bool":
            assert isinstance(w, QCheckBox)
            w.setChecked(bool(value))
        elif self.kind == "int":
            assert isinstance(w, QSpinBox)
            w.setValue(int(value))
        elif self.kind == "float":
            assert isinstance(w, QDoubleSpinBox)
            w.setValue(float(value))
        else:
            assert isinstance(w, QLineEdit)
            w.setText(str(value))

    def get(self) -> Any:
        if self.pinned is not None:
            return self.kept
        w = self.widget
        if self.kind == "tristate":
            assert isinstance(w, QComboBox)
            return {AUTO: None, "On": True, "Off": False}[w.currentText()]
        if self.kind == "choice":
            assert isinstance(w, QComboBox)
            return w.currentData()
        if self.kind == "bool":
            assert isinstance(w, QCheckBox)
            return w.isChecked()
        if self.kind == "int":
            assert isinstance(w, QSpinBox)
            return w.value()
        if self.kind == "float":
            assert isinstance(w, QDoubleSpinBox)
            return w.value()
        assert isinstance(w, QLineEdit)
        return w.text()

    def connect(self, slot: Any) -> None:
        w = self.widget
        if isinstance(w, QComboBox):
            w.currentIndexChanged.connect(slot)
        elif isinstance(w, QCheckBox):
            w.toggled.connect(slot)
        elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.valueChanged.connect(slot)
        elif isinstance(w, QLineEdit):
            w.textChanged.connect(slot)


def _float_bound(info: Any, default: float) -> float:
    for meta in info.metadata:
        for key in ("le", "lt"):
            value = getattr(meta, key, None)
            if value is not None:
                return float(value)
    return default


def _bound(info: Any, key: str, default: int) -> int:
    for meta in info.metadata:
        value = getattr(meta, key, None)
        if value is not None:
            return int(value)
    return default


class ConfigForm(QWidget):
    """Edits a TrainingConfig. `changed` fires on every edit; `config()` validates (raises UserError)."""

    changed = Signal()

    def __init__(self, config: TrainingConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._config = config or TrainingConfig()
        self.fields: dict[tuple[str, str], _Field] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        basic = QGroupBox("Settings")
        basic_form = QFormLayout(basic)
        basic_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setObjectName("advancedToggle")
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced = QWidget()
        adv_layout = QVBoxLayout(self.advanced)
        adv_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(basic)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._fold)

        for section, title in SECTIONS:
            model_cls = type(getattr(self._config, section))
            group: QGroupBox | None = None
            group_form: QFormLayout | None = None
            for name, info in model_cls.model_fields.items():
                if (section, name) in SKIP:
                    continue
                f = _Field(section, name, info)
                self.fields[(section, name)] = f
                extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
                if extra.get("advanced"):
                    if group is None:
                        group = QGroupBox(title)
                        group_form = QFormLayout(group)
                        adv_layout.addWidget(group)
                    assert group_form is not None
                    group_form.addRow(f.label, f.widget)
                else:
                    basic_form.addRow(f.label, f.widget)
        self.set_config(self._config)
        for f in self.fields.values():
            f.connect(self._emit)

    def _fold(self, open_: bool) -> None:
        self.advanced.setVisible(open_)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

    def _emit(self, *_: Any) -> None:
        self.changed.emit()

    def set_config(self, config: TrainingConfig) -> None:
        self._config = config
        data = config.to_dict()
        for (section, name), f in self.fields.items():
            f.widget.blockSignals(True)
            f.set(data[section][name])
            f.widget.blockSignals(False)
        self.changed.emit()

    def pin(self, section: str, name: str, value: Any, why: str) -> None:
        """Show `value`, greyed out with `why` as its tooltip, while the target machine overrides the setting
        (a CPU does not pack). The config keeps the user's own value, shown again on unpin()."""
        f = self.fields[(section, name)]
        if f.pinned is None:
            f.kept = f.get()
        f.pinned = (value, why)
        f.widget.blockSignals(True)
        f._show(value)
        f.widget.blockSignals(False)
        f.widget.setEnabled(False)
        tip = f"{f.help_text}\n\n{why}".strip()
        f.widget.setToolTip(tip)
        f.label.setToolTip(tip)

    def unpin(self, section: str, name: str) -> None:
        f = self.fields[(section, name)]
        if f.pinned is None:
            return
        f.pinned = None
        f.widget.blockSignals(True)
        f._show(f.kept)
        f.widget.blockSignals(False)
        f.widget.setEnabled(True)
        f.widget.setToolTip(f.help_text)
        f.label.setToolTip(f.help_text)

    def values(self) -> dict[str, Any]:
        data = self._config.to_dict()
        for (section, name), f in self.fields.items():
            data[section][name] = f.get()
        return data

    def config(self, model: str | None = None, source: str | None = None) -> TrainingConfig:
        data = self.values()
        if model is not None:
            data["model"]["name"] = model
        if source is not None:
            data["data"]["source"] = source
        return config_from_dict(data)
