"""Run in a real X11 window by tests/e2e/test_train_wheel.py: real wheel turns (xdotool) over Train form fields.

Prints one JSON document: the form before/after, the preset before/after, how far the page scrolled per
turn, and a focused field's value before/after a turn.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from PySide6.QtWidgets import QApplication


def main() -> None:
    app = QApplication(sys.argv)
    from desktop.context import AppContext
    from desktop.pages.train import TrainPage

    page = TrainPage(AppContext())
    page.resize(1200, 500)
    page.move(0, 0)
    page.show()
    page.form.advanced_toggle.setChecked(True)
    scroll = page.form.parentWidget().parentWidget()
    bar = scroll.verticalScrollBar()

    def pump(seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def point_at(widget) -> None:  # type: ignore[no-untyped-def]
        scroll.ensureWidgetVisible(widget)
        pump()
        centre = widget.mapToGlobal(widget.rect().center())
        subprocess.run(["xdotool", "mousemove", str(centre.x()), str(centre.y())], check=True)
        pump()

    pump(1.0)
    before, preset = page.form.values(), page.preset_combo.currentText()
    scrolled = []
    for key in (("model", "attn_implementation"), ("train", "max_length"), ("quant", "mode"), ("lora", "r")):
        field = page.form.fields[key]
        point_at(field.widget)
        top = bar.value()
        subprocess.run(["xdotool", "click", "--repeat", "3", "5"], check=True)  # wheel down, 3 notches
        pump(0.8)
        scrolled.append(bar.value() - top)
    after, preset_after = page.form.values(), page.preset_combo.currentText()
    field = page.form.fields[("lora", "r")]
    point_at(field.widget)
    subprocess.run(["xdotool", "click", "1"], check=True)  # click into it: now the wheel is the user's
    pump()
    focused_before = field.get()
    subprocess.run(["xdotool", "click", "4"], check=True)  # wheel up, 1 notch
    pump(0.8)
    print(
        json.dumps(
            {
                "unchanged": before == after,
                "preset": [preset, preset_after],
                "scrolled": scrolled,
                "focused": [focused_before, field.get()],
            }
        )
    )
    page.shutdown()


if __name__ == "__main__":
    main()
