"""Leftovers of the issue-16 real-window QA pass: wording a user on the page can act on, labels and columns
that fit at 1280x800, colours that mean what they say, and figures that do not mislead."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from core.data.tokens import TemplatePreview, TokenSpan
from desktop.context import AppContext
from desktop.pages.data import DataPage
from desktop.widgets.data_table import COL_SPLIT, COL_TAGS

PAGE_W, PAGE_H = 1090, 780  # a 1280x800 window less the 190 px navigation rail
SMOLLM_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _show(qtbot, widget, w: int = PAGE_W, h: int = PAGE_H):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    with qtbot.waitActive(widget):
        widget.show()
        widget.activateWindow()
    return widget


def _no_system_rows(path: Path, n: int = 6) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Ticket {i}: the app crashes when I open the files screen."},
                {"role": "assistant", "content": '{"category": "technical"}'},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _data_page(qtbot, data: Path) -> DataPage:
    ctx = AppContext()
    page = _show(qtbot, DataPage(ctx))
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(data))
    return page


class _FakeCounter:
    """A loaded tokenizer whose preview shows SmolLM2's default system prompt before the row."""

    def preview(self, messages: Any, max_length: Any = None) -> TemplatePreview:
        text = f"<|im_start|>system\n{SMOLLM_DEFAULT}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        preview = TemplatePreview(text, [TokenSpan(text, 0, len(text), False)])
        preview.default_system = SMOLLM_DEFAULT
        return preview


def test_template_tab_says_it_is_loading_the_tokenizer_not_open_the_tab(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the Template tab it read "Open the Template tab or count tokens to load the tokenizer."; SmolLM2's
    own system prompt then showed in the preview as if it were the user's."""
    release = threading.Event()

    def loading_job(self: DataPage, model_id: str) -> Any:
        def job(progress: Any, should_stop: Any) -> Any:
            while not release.wait(0.02):
                if should_stop():
                    return None
            return _FakeCounter()

        return job

    monkeypatch.setattr(DataPage, "_loading_job", loading_job)
    page = _data_page(qtbot, _no_system_rows(tmp_path / "tickets.jsonl"))
    page.select_row(0)
    page.tabs.setCurrentWidget(page.preview)
    summary = page.preview.summary
    assert "Open the Template tab" not in summary.text()
    assert summary.text().startswith("Loading the tokenizer of ")
    release.set()
    qtbot.waitUntil(lambda: page.preview.preview is not None, timeout=10000)
    text = summary.text()
    assert SMOLLM_DEFAULT in text and "not from your data" in text and "default system prompt" in text
    # the whole note shows (inside the tab the label kept one line and cut it after "is not")
    qtbot.waitUntil(lambda: summary.height() >= summary.heightForWidth(summary.width()) > 40, timeout=3000)
    qtbot.waitUntil(lambda: not page._jobs, timeout=10000)
    page.shutdown()


def test_preview_names_the_templates_default_system_prompt_only_for_rows_without_one(
    smollm2_dir: Path,
) -> None:
    from core.data.chat_template import default_system_prompt
    from core.data.tokens import TokenCounter

    counter = TokenCounter.for_model(smollm2_dir)
    assert default_system_prompt(counter.tokenizer) == SMOLLM_DEFAULT
    turns = [{"role": "user", "content": "Where is my invoice?"}, {"role": "assistant", "content": "billing"}]
    assert counter.preview(turns).default_system == SMOLLM_DEFAULT
    own = [{"role": "system", "content": "You triage tickets."}, *turns]
    assert counter.preview(own).default_system == ""


def test_default_system_prompt_of_each_family(tmp_path: Path) -> None:
    """Qwen2.5 adds its own ("You are Qwen..."); Llama 3.1's date header and templates without one add none."""
    from core.data.chat_template import default_system_prompt
    from tests.families import build_family_tokenizer

    found = {
        name: default_system_prompt(build_family_tokenizer(name, tmp_path / name))
        for name in ("qwen2.5", "llama3", "gemma2", "mistral-v0.3")
    }
    assert found == {
        "qwen2.5": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        "llama3": None,
        "gemma2": None,
        "mistral-v0.3": None,
    }


def test_split_and_tags_columns_are_in_view_at_1280_wide(qtbot, sample_data: Path) -> None:
    page = _data_page(qtbot, sample_data)
    table = page.table
    hh = table.horizontalHeader()
    qtbot.waitUntil(lambda: table.viewport().width() > 300)
    for col in (COL_SPLIT, COL_TAGS):
        right = hh.sectionViewportPosition(col) + hh.sectionSize(col)
        assert right <= table.viewport().width(), (col, right, table.viewport().width())
    # a column the user drags keeps its width when the window changes
    hh.resizeSection(0, 300)
    page.resize(PAGE_W + 200, PAGE_H)
    qtbot.waitUntil(lambda: table.viewport().width() > 500)
    assert hh.sectionSize(0) == 300
    page.shutdown()


def test_rows_without_a_split_are_called_no_split_everywhere(qtbot, sample_data: Path) -> None:
    page = _data_page(qtbot, sample_data)
    headers = [
        page.splits.balance.horizontalHeaderItem(c).text() for c in range(page.splits.balance.columnCount())
    ]
    assert "none" not in headers and "no split" in headers
    assert [page.split_filter.itemText(i) for i in range(page.split_filter.count())][-1] == "No split"
    page.shutdown()


def test_removal_preview_marks_the_kept_row_green_and_the_moved_row_red(qtbot) -> None:
    """The preview coloured the words only in the kept row red and those only in the moved row green."""
    from desktop.widgets.dedup_diff import DELETED, INSERTED
    from desktop.widgets.dedup_preview import ClusterSample, RemovalPreviewDialog

    sample = ClusterSample(1, 0, [1], "Hi, Anna here. The app crashes.", "Hi, Ben here. The app crashes.")
    page = RemovalPreviewDialog._samples_html([sample])
    stays, goes = page.split("Goes to the bin")
    assert "Stays (row 1)" in stays and f'<span style="{INSERTED}">Anna' in stays and DELETED not in stays
    assert f'<span style="{DELETED}">Ben' in goes and INSERTED not in goes
    dialog = RemovalPreviewDialog("Keep one per cluster", 1, 2, [sample])
    qtbot.addWidget(dialog)
    note = dialog.findChildren(type(dialog.headline))[1].text()
    assert "green: only in the one that stays" in note and "red: only in the one that goes" in note


def test_duplicate_search_progress_says_what_it_does_in_plain_words() -> None:
    """ "53 embedded at 4 rows/s" read as jargon: the bar now says it is reading what each example means."""
    from types import SimpleNamespace

    import numpy as np

    from core.dedup.search import pair_search
    from desktop.pages.dedup import DedupPage

    messages: list[str] = []
    vectors = np.eye(4, dtype=np.float32)
    pair_search(vectors, 0.9, progress=lambda f, m: messages.append(m))
    assert messages[-1] == "Comparing meanings: 4 of 4 examples compared"
    result = SimpleNamespace(seconds=3.14, embedded=53, embed_rows_per_s=4.2, cached=237)
    assert DedupPage._done_line(result) == (
        "Done in 3.1 s · read 53 examples (4 a second), 237 remembered from an earlier search"
    )


def test_learning_rate_axis_has_few_compact_labels_that_do_not_overlap(qtbot) -> None:
    """The learning-rate plot's axis drew "0.0005" over "0" (and up to ten labels like "0.00035")."""
    from desktop.widgets.train_plot import TrainingPlot, compact_number

    plot = _show(qtbot, TrainingPlot(redraw_ms=10), 640, 420)
    for step, lr in enumerate([0.0, 1e-3, 9e-4, 6.5e-4, 3.45e-4, 9.5e-5], 1):
        plot.add_step(step, 3.0 - 0.3 * step, lr)
    qtbot.waitUntil(lambda: plot.lr_curve.xData is not None and len(plot.lr_curve.xData) == 6)
    axis = plot.lr_plot.getAxis("left")
    low, high = plot.lr_plot.getViewBox().viewRange()[1]
    size, line = axis.height(), axis.fontMetrics().height()
    for height in (size, 40, 120):  # this plot, and a shorter and a taller one
        levels = axis.tickValues(low, high, height)
        assert len(levels) == 1, "one level of labelled ticks, no minor labels between them"
        spacing, values = levels[0]
        labels = axis.tickStrings(values, 1.0, spacing)
        assert 1 <= len(labels) <= 3 and all(len(t) <= 4 for t in labels), labels
        # every label fits inside the axis (pyqtgraph drops one that would not: the real window showed
        # none) and the labels are a line apart
        pixels = [(v - low) / (high - low) * height for v in values]
        assert all(line / 2 <= p <= height - line / 2 for p in pixels), (height, labels)
        assert all(b - a >= line for a, b in zip(pixels, pixels[1:], strict=False)), (height, labels)
    assert [compact_number(v) for v in (0, 2e-4, 1.5e-5, 0.5, 3)] == ["0", "2e-4", "1.5e-5", "0.5", "3"]
    plot.close()


def test_quick_cpu_evaluation_answers_10_examples_and_says_so(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example limit defaulted to "all" in quick mode on a CPU (120 test rows x 2 models: an hour)."""
    import desktop.pages.evaluate as E

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (run / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    monkeypatch.setattr(E, "_has_gpu", lambda: False)
    ctx = AppContext()
    page = _show(qtbot, E.EvaluatePage(ctx))
    ctx.set_run(run)
    assert page.limit_spin.value() == 10 and page.options().limit == 10
    assert page.body.currentWidget() is page.not_evaluated_state
    assert "answer the first 10 examples of the held-out test split" in page.not_evaluated_state.body.text()
    page.limit_spin.setValue(0)  # "all"
    assert page.options().limit is None and "every example" in page.not_evaluated_state.body.text()
    page.shutdown()
    monkeypatch.setattr(E, "_has_gpu", lambda: True)
    gpu = _show(qtbot, E.EvaluatePage(AppContext()))
    assert gpu.limit_spin.value() == 0 and gpu.limit_spin.text() == "all"
    gpu.shutdown()


def test_report_cut_off_warning_names_the_pages_setting_also_for_older_results(tmp_path: Path) -> None:
    """results.json written before the wording changed said only 'raise --max-new-tokens'."""
    from core.evaluation.report import build_report

    run = tmp_path / "run"
    run.mkdir()
    old = "1 tuned and 0 base answer(s) stopped at the limit of 32 new tokens and are cut off (ex1); "
    summary = {
        "n": 1,
        "base": {},
        "tuned": {},
        "source": {"split": "test"},
        "decoding": {"max_new_tokens": 32},
        "warnings": [old + "raise --max-new-tokens if the references are longer."],
    }
    html = build_report(run, summary)
    assert "raise the limit (Max new tokens; --max-new-tokens on the command line)" in html
    assert "raise --max-new-tokens if" not in html


def _finished_run(root: Path, name: str, status: str = "finished", adapter: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model:\n  name: smollm2-135m-instruct\n", encoding="utf-8")
    if adapter:
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (run / "summary.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    return run


def test_export_page_picks_a_run_like_evaluate_newest_finished_first(qtbot) -> None:
    """Export had no run list (Evaluate has one): it now uses the same picker, on the newest finished run."""
    import os

    from core import paths
    from desktop.pages.evaluate import EvaluatePage
    from desktop.pages.export import ExportPage
    from desktop.widgets.run_picker import RunPicker

    root = paths.runs_dir()
    older = _finished_run(root, "20261130-090000-first")
    newer = _finished_run(root, "20261130-100000-second")
    unfinished = _finished_run(root, "20261130-110000-interrupted", status="error", adapter=False)
    for stamp, run in enumerate((older, newer, unfinished)):
        os.utime(run, (1_700_000_000 + stamp, 1_700_000_000 + stamp))
    ctx = AppContext()
    page = _show(qtbot, ExportPage(ctx))
    evaluate = _show(qtbot, EvaluatePage(ctx))
    # one widget class for both pages' run lists, with the same runs in the same order
    assert isinstance(page.run_picker, RunPicker) and isinstance(evaluate.run_picker, RunPicker)
    assert page.run_picker.runs() == evaluate.run_picker.runs() == [unfinished, newer, older]
    assert page.stack.currentIndex() == 1 and page.run_dir == newer  # the newest run that finished
    assert page.run_picker.combo.currentText() == newer.name and "adapter ready" in page.run_label.text()
    assert page.export_button.isEnabled()
    page.run_picker.combo.setCurrentIndex(page.run_picker.combo.findData(str(older)))
    assert ctx.run_dir == older and page.run_dir == older and evaluate.run_dir() == older  # pages follow
    assert page.out_edit.text().startswith(str(older / "exports"))
    page.shutdown()
    evaluate.shutdown()


def test_export_page_without_runs_shows_its_empty_state(qtbot) -> None:
    from desktop.pages.export import ExportPage

    page = _show(qtbot, ExportPage(AppContext()))
    assert page.stack.currentIndex() == 0 and page.run_dir is None
    assert page.empty.heading.text() == "No trained runs yet" and page.empty.button is not None


def test_duplicates_cluster_table_says_no_split_like_the_data_page(qtbot, tmp_path: Path) -> None:
    """The cluster table showed "—" for a row without a split, the Compare lists "no split"."""
    from core.data.workspace import DatasetWorkspace
    from desktop.pages.dedup import DedupPage
    from tests.core.dedup_helpers import FakeEmbedder

    data = _no_system_rows(tmp_path / "tickets.jsonl", 4)
    ws = DatasetWorkspace.create_from_file(data, tmp_path / "tickets.wsdb")
    ctx = AppContext()
    ctx.set_workspace(ws.path, ws)
    page = DedupPage(ctx)
    page.embedder_factory = lambda model: FakeEmbedder()
    _show(qtbot, page)
    page.slider.setValue(850)
    page.start()
    qtbot.waitUntil(lambda: page.runner is None, timeout=30000)
    assert page.views, "four tickets that differ only in their number cluster"
    page.cluster_list.setCurrentRow(0)
    splits = {page.members.item(r, 1).text() for r in range(page.members.rowCount())}
    assert splits == {"no split"}
    assert "no split" in page.left_box.currentText()  # the Compare list already said it
    # the cluster list ends long lines in "…" instead of scrolling sideways with every snippet cut
    listing = page.cluster_list
    qtbot.waitUntil(lambda: listing.viewport().width() > 0)
    assert listing.horizontalScrollBar().maximum() == 0
    ws.close()


def test_length_histogram_counts_whole_examples(qtbot) -> None:
    """Before counting, the axis read 0.1 ... 0.9 examples; with few rows it labelled 0.5, 1.5 examples."""
    from desktop.widgets.data_panels import LengthHistogram

    histogram = _show(qtbot, LengthHistogram(), 500, 300)
    axis = histogram.plot.getAxis("left")
    histogram.set_counts([], 2048)
    assert not axis.style["showValues"]
    histogram.set_counts([80, 90, 95, 108], 2048)
    assert axis.style["showValues"]
    low, high = histogram.plot.getViewBox().viewRange()[1]
    values = [v for _spacing, level in axis.tickValues(low, high, axis.height()) for v in level]
    assert values and all(float(v).is_integer() for v in values), values


def test_export_asks_before_replacing_a_folder_outside_the_runs_exports(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Save to a folder of the user's own files (typed by hand) replaced it, deleting them, with a status line
    only; an earlier export in the run's exports/ folder is still replaced without asking."""
    from PySide6.QtWidgets import QMessageBox

    from desktop.pages.export import ExportPage

    run = _finished_run(tmp_path / "runs", "20261130-100000-tickets")
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda _p, _t, text, *a, **k: asked.append(text) or QMessageBox.StandardButton.No,
    )
    ctx = AppContext()
    page = _show(qtbot, ExportPage(ctx))
    ctx.set_run(run)
    started: list[bool] = []
    monkeypatch.setattr(page.job, "start", lambda *a, **k: started.append(True))
    mine = tmp_path / "my-documents"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    page.out_edit.setText(str(mine))
    page.start_export()
    assert len(asked) == 1 and str(mine) in asked[0] and "notes.txt" in asked[0] and "deleted" in asked[0]
    assert started == [] and (mine / "notes.txt").read_text(encoding="utf-8") == "mine"
    earlier = run / "exports" / "gguf-q8_0"
    earlier.mkdir(parents=True)
    (earlier / "Modelfile").write_text("FROM x", encoding="utf-8")
    page.out_edit.setText(str(earlier))
    page.start_export()
    assert len(asked) == 1 and started == [True]


def test_chat_without_a_trained_system_prompt_says_the_models_default_applies(qtbot) -> None:
    """The empty field read "none": SmolLM2's template still adds its own default, in chat as in training."""
    from desktop.widgets.eval_chat import ChatPanel

    panel = _show(qtbot, ChatPanel(), 1060, 300)
    assert panel.system_edit.text() == ""
    hint = panel.system_edit.placeholderText()
    assert "default applies, as in training" in hint
    assert panel.system_edit.fontMetrics().horizontalAdvance(hint) <= panel.system_edit.width()
    assert "You are a helpful AI assistant named SmolLM" in panel.system_edit.toolTip()
