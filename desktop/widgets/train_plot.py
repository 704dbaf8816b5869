"""Live training curves (pyqtgraph): train loss, validation loss and learning rate, one curve per series,
updated with setData on a throttled timer; plus overlays for comparing runs."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

TRAIN_COLOR = "#2f6fed"
VAL_COLOR = "#e8710a"
LR_COLOR = "#6c757d"
OVERLAY_COLORS = ["#2f6fed", "#e8710a", "#1e8e3e", "#a142f4"]


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
        self.lr_plot = pg.PlotWidget()
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
