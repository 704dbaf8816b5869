from __future__ import annotations

import subprocess
import sys

from core.settings import Settings, load_settings, settings_path
from desktop.context import AppContext
from desktop.main_window import MainWindow
from desktop.pages import PAGES


def _window(qtbot) -> MainWindow:
    window = MainWindow(AppContext(load_settings()))
    qtbot.addWidget(window)
    window.show()
    return window


def test_five_workflow_pages_in_order(qtbot) -> None:
    window = _window(qtbot)
    titles = [window.nav.item(i).text().split("  ", 1)[1] for i in range(window.nav.count())]
    assert titles == ["Data", "Duplicates", "Train", "Evaluate", "Export"]
    for key, _title, _module, cls in PAGES:
        window.show_page(key)
        assert type(window.stack.currentWidget()).__name__ == cls
    window.nav.setCurrentRow(0)
    assert type(window.stack.currentWidget()).__name__ == "DataPage"


def test_status_bar_shows_compute_device(qtbot) -> None:
    window = _window(qtbot)
    qtbot.waitUntil(lambda: window.device_label.text().startswith(("CPU:", "GPU:")), timeout=10000)


def test_about_lists_ml_stack_versions() -> None:
    from desktop.about import about_text, stack_versions

    versions = stack_versions()
    assert versions["torch"].startswith("2.")
    assert "transformers" in about_text()


def test_corrupt_settings_start_with_defaults_and_say_so(qtbot) -> None:
    settings_path().write_text("[[[", encoding="utf-8")
    window = _window(qtbot)
    assert "could not be read" in window.statusBar().currentMessage()
    assert window.ctx.settings.recent_workspaces == Settings().recent_workspaces


def test_closing_saves_settings_and_last_page(qtbot) -> None:
    window = _window(qtbot)
    window.show_page("train")
    window.close()
    saved = load_settings()
    assert saved.last_page == "train"
    assert saved.window_geometry


def test_window_start_imports_no_heavy_library() -> None:
    script = (
        "import sys\n"
        "from desktop.app import create_app\n"
        "from desktop.main_window import MainWindow\n"
        "app = create_app(); w = MainWindow(); w.show(); app.processEvents()\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'trl', 'peft') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "w.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_no_setting_on_any_page_changes_under_a_passing_mouse_wheel(qtbot) -> None:
    """Every combo and spin box of every page takes the wheel only once clicked or tabbed into (a wheel turn over
    an unfocused one scrolls the page and changes nothing)."""
    from PySide6.QtWidgets import QAbstractSpinBox, QComboBox

    from desktop.widgets.safe_inputs import WheelNeedsFocus
    from tests.desktop.wheel import send_wheel

    window = _window(qtbot)
    boxes = []
    for key, _title, _module, _cls in PAGES:
        window.show_page(key)
        page = window.stack.currentWidget()
        boxes += [(key, w) for w in page.findChildren(QComboBox) + page.findChildren(QAbstractSpinBox)]
    assert len(boxes) > 20
    unsafe = [
        f"{key}: {w.objectName() or type(w).__name__}"
        for key, w in boxes
        if not isinstance(w, WheelNeedsFocus)
    ]
    assert not unsafe, unsafe
    # and the guard works: a spin box with a value to move does not move without focus, and moves with it
    window.show_page("evaluate")
    spin = next(w for key, w in boxes if key == "evaluate" and isinstance(w, QAbstractSpinBox))
    spin.setEnabled(True)
    before = spin.value()
    assert not send_wheel(spin, 1)
    assert spin.value() == before
