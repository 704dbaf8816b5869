"""Live training curves (pyqtgraph): train loss, validation loss and learning rate, one curve per series,
updated with setData on a throttled timer; plus overlays for comparing runs."""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

TRAIN_COLOR = "#2f6fed"
VAL_COLOR = "#e8710a"
LR_COLOR = "#6c757d"
OVERLAY_COLORS = ["#2f6fed", "#e8710a", "#1e8e3e", "#a142f4"]


def compact_number(value: float) -> str:
    """A tick label a few characters wide: 0, 5e-4, 1.5e-4, 0.2, 3 (learning rates are 1e-5..1e-3)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if 0.01 <= abs(value) < 1000:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


class CompactAxis(pg.AxisItem):
    """A value axis for a short plot: at most three labelled ticks, in compact numbers ("5e-4"), spaced so
    their labels never overlap (pyqtgraph's default put "0.0005" and "0" on top of each other, or ten labels
    like "0.00035" on an 80-pixel axis)."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        span = maxVal - minVal
        if not (span > 0 and math.isfinite(span) and size > 0):
            return super().tickValues(minVal, maxVal, size)
        line = self.fontMetrics().height()
        # a label is drawn only when it fits inside the axis: ticks at least half a line from either end
        margin = 0.6 * line / size * span
        lo, hi = minVal + margin, maxVal - margin

        def nice(k: int) -> float:  # ..., 1e-4, 2e-4, 5e-4, 1e-3, ...
            return float((1, 2, 5)[k % 3] * 10.0 ** (k // 3))

        k = 3 * math.floor(math.log10(span / 4))
        while nice(k) <= 10 * span:
            step = nice(k)
            ticks = [i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
            # a line of air between labels, and at most three of them
            if ticks and len(ticks) <= 3 and step / span * size >= 1.3 * line:
                return [(step, ticks)]
            if not ticks:
                break
            k += 1
        middle = float(f"{(lo + hi) / 2:.1g}")  # one label, in the middle, when no step fits
        return [(span, [middle if lo <= middle <= hi else (lo + hi) / 2])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [compact_number(v * scale) for v in values]

    def fontMetrics(self) -> Any:
        from PySide6.QtGui import QFontMetrics

        return QFontMetrics(self.style.get("tickFont") or self.font())


class TrainingPlot(QWidget):
    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 250) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="#3b4150")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setObjectName("lossPlot")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.lr_plot = pg.PlotWidget(axisItems={"left": CompactAxis("left")})
        self.lr_plot.setObjectName("lrPlot")
        self.lr_plot.setTitle("learning rate", size="9pt", color="#5c6473")
        self.lr_plot.getAxis("left").enableAutoSIPrefix(False)
        self.lr_plot.getAxis("left").setWidth(52)
        self.loss_plot.getAxis("left").setWidth(52)
        self.lr_plot.setMaximumHeight(130)
        self.lr_plot.showGrid(x=True, y=True, alpha=0.2)
        self.lr_plot.setXLink(self.loss_plot)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.lr_plot, 1)
        self.train_curve = self.loss_plot.plot([], [], pen=pg.mkPen(TRAIN_COLOR, width=2), name="train loss")
        self.val_curve = self.loss_plot.plot(
            [],
            [],
            pen=pg.mkPen(VAL_COLOR, width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush=VAL_COLOR,
            symbolPen=None,
            name="validation loss",
        )
        self.lr_curve = self.lr_plot.plot([], [], pen=pg.mkPen(LR_COLOR, width=1.5))
        self.best_marker = pg.ScatterPlotItem(size=14, symbol="star", brush=pg.mkBrush("#1e8e3e"), pen=None)
        self.loss_plot.addItem(self.best_marker)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.lr: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None
        self._overlays: list[Any] = []
        self._dirty = False
        self.redraws = 0
        self._timer = QTimer(self)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    # data -------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.train.clear()
        self.val.clear()
        self.lr.clear()
        self.best = None
        for item in self._overlays:
            self.loss_plot.removeItem(item)
        self._overlays.clear()
        self._dirty = True

    def add_step(self, step: int, loss: float | None, lr: float | None) -> None:
        if loss is not None:
            self.train.append((step, loss))
        if lr is not None:
            self.lr.append((step, lr))
        self._dirty = True

    def add_eval(self, step: int, eval_loss: float, best: bool = False) -> None:
        self.val.append((step, eval_loss))
        if best:
            self.best = (step, eval_loss)
        self._dirty = True

    def truncate(self, step: int) -> None:
        """A resume restarts at `step`: drop later points (they will be re-run)."""
        self.train = [p for p in self.train if p[0] <= step]
        self.val = [p for p in self.val if p[0] <= step]
        self.lr = [p for p in self.lr if p[0] <= step]
        if self.best and self.best[0] > step:
            self.best = min(self.val, key=lambda p: p[1]) if self.val else None
        self._dirty = True

    def load_events(self, events: list[dict[str, Any]]) -> None:
        self.clear()
        for e in events:
            if e.get("type") == "step":
                self.add_step(int(e.get("step") or 0), e.get("loss"), e.get("lr"))
            elif e.get("type") == "eval" and e.get("eval_loss") is not None:
                self.add_eval(int(e.get("step") or 0), float(e["eval_loss"]), bool(e.get("best")))
        self._redraw()

    def overlay(self, label: str, events: list[dict[str, Any]], index: int) -> None:
        """Add another run's curves (compare view)."""
        color = OVERLAY_COLORS[index % len(OVERLAY_COLORS)]
        steps = [
            (int(e["step"]), e["loss"])
            for e in events
            if e.get("type") == "step" and e.get("loss") is not None
        ]
        evals = [(int(e["step"]), e["eval_loss"]) for e in events if e.get("type") == "eval"]
        if steps:
            item = self.loss_plot.plot(
                [s for s, _ in steps],
                [v for _, v in steps],
                pen=pg.mkPen(color, width=2),
                name=f"{label} train",
            )
            self._overlays.append(item)
        if evals:
            item = self.loss_plot.plot(
                [s for s, _ in evals],
                [v for _, v in evals],
                pen=pg.mkPen(color, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
                symbol="o",
                symbolSize=5,
                symbolBrush=color,
                symbolPen=None,
                name=f"{label} validation",
            )
            self._overlays.append(item)

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        self.train_curve.setData([s for s, _ in self.train], [v for _, v in self.train])
        self.val_curve.setData([s for s, _ in self.val], [v for _, v in self.val])
        self.lr_curve.setData([s for s, _ in self.lr], [v for _, v in self.lr])
        self.best_marker.setData([self.best[0]] if self.best else [], [self.best[1]] if self.best else [])
