"""Data page: token counting (split from desktop/pages/data.py).

The chosen model's tokenizer loads as a cancellable job, then every row is counted (and the template probe
runs) as one job; counts are stored only when the whole count has finished, and rows edited meanwhile are
counted again. The functions take the page; DataPage binds them as its methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.data.workspace import DatasetWorkspace

if TYPE_CHECKING:
    from desktop.pages.data import DataPage


def _model_id(page: DataPage) -> str:
    return str(page.model_combo.currentData() or page.model_combo.currentText())


def _ensure_counter(page: DataPage, then: Any) -> None:
    """Run `then` once the tokenizer of the chosen model is loaded (loading it as a cancellable job)."""
    model_id = page._model_id()
    if page.counter is not None and page._counter_model == model_id:
        then()
        return
    if page._count_job is not None:
        return  # a load or a count is under way; it sets the counter when it lands

    def loaded(counter: Any) -> None:
        page.counter = counter
        page._counter_model = model_id
        then()

    page._start_tokens_job(f"Tokenizer ({model_id})", page._loading_job(model_id), loaded)


def _loading_job(page: DataPage, model_id: str) -> Any:
    """A job that loads the tokenizer of `model_id` (abandoned at once on Cancel): no fraction is known
    while it loads, so it reports -1 (the bar shows it is busy) with what it is doing."""
    from core.data.tokens import load_counter

    def job(progress: Any, should_stop: Any) -> Any:
        text = f"Loading the tokenizer of {model_id}…"
        progress(-1.0, text)
        return load_counter(
            model_id,
            # A model converted once says so; "cached" (fraction 1) is not worth showing.
            lambda f, message: progress(-1.0, f"{text} {message}" if message and f < 1 else text),
            should_stop,
        )

    return job


def _start_tokens_job(page: DataPage, label: str, fn: Any, on_done: Any) -> None:
    # The row's Cancel ends the load or the count within a fraction of a second (a load is left to finish
    # in the background, its result kept for the next count; a helper process is killed).
    page.count_button.setEnabled(False)
    page._count_job = page._start_job(label, fn, on_done)
    page._count_job.done.connect(page._count_finished)


def _recount_changed(page: DataPage, load: bool = True) -> None:
    """An edit clears the token count of the rows whose text changed: when the dataset was counted, count
    those rows again with the same tokenizer (loaded in the background if needed and `load`)."""
    ws = page.workspace
    if ws is None or ws.busy or page._bulk is not None or page._count_job is not None:
        return  # (a count that lands counts again what was edited meanwhile)
    model = ws.meta("token_model")
    if not model:
        return
    if page.counter is None or page._counter_model != model:
        if load and page._model_id() == model and not page._jobs:
            page._ensure_counter(page._recount_changed)
        return
    missing = [i for i in ws.ids() if ws.summary(i).tokens is None]
    if not missing or len(missing) > page.RECOUNT_ROWS:
        return
    examples = ws.get_many(missing)
    counts = page.counter.count([e.messages_dicts() for e in examples])
    ws.set_token_counts(dict(zip(missing, counts, strict=True)), model)
    page.model.layoutChanged.emit()


def count_tokens(page: DataPage) -> None:
    """Count every row's tokens as one cancellable job: load the tokenizer when it is not loaded yet, then
    count. The counts are stored only when the whole count has finished (a cancelled count leaves the
    previous counts), except for rows edited meanwhile (counted again afterwards, from their new text).
    Then the template probe runs every row through the training tokenization: the rows that would train
    no token, and why, show on the Template tab."""
    if page.workspace is None or page._count_job is not None:
        return
    from core.data.tokens import count_workspace, probe_workspace

    ws = page.workspace
    model_id = page._model_id()
    counter = page.counter if page._counter_model == model_id else None
    load = page._loading_job(model_id)
    path = ws.path
    since = page._last_edit()
    max_length = page.max_length.value()

    def job(progress: Any, should_stop: Any) -> tuple[Any, dict[str, int], dict[str, Any] | None]:
        nonlocal counter
        if counter is None:
            counter = load(progress, should_stop)
        progress(0.0, "Counting tokens…")

        def counting(fraction: float, message: str) -> None:
            progress(0.6 * fraction, f"Counting tokens: {message}")

        def probing(fraction: float, message: str) -> None:
            progress(0.6 + 0.4 * fraction, message)

        with DatasetWorkspace.open(path) as reader:  # its own connection: safe in this thread
            counts = count_workspace(reader, counter, counting, should_stop, store=False, chunk=2048)
            probe = probe_workspace(reader, counter, max_length, probing, should_stop)
        return counter, counts, probe

    def store(counts: dict[str, int], probe: dict[str, Any] | None) -> None:
        from core.data.tokens import probe_summary

        if page.workspace is not ws:
            return
        edited = ws.edited_since(since, messages_only=True)
        ws.set_token_counts({i: n for i, n in counts.items() if i not in edited}, model_id)
        page.model.layoutChanged.emit()
        page._refresh_side_panels()
        page.apply_filters()
        page._recount_changed()  # rows edited while counting, from their new text
        zero = 0
        if probe is not None:
            page.probe = probe
            page.preview.set_probe(probe_summary(probe), bool(probe["zero_trained"]))
            zero = len(probe["zero_trained"])
        page.ctx.status(
            f"Counted tokens of {len(counts):,} examples"
            + (
                f"; {zero:,} row{'' if zero == 1 else 's'} train{'s' if zero == 1 else ''} no token (Template tab)"
                if zero
                else ""
            )
        )

    def done(result: tuple[Any, dict[str, int], dict[str, Any] | None]) -> None:
        loaded, counts, probe = result
        page.counter, page._counter_model = loaded, model_id
        if page._bulk is None:
            store(counts, probe)
        else:  # a bulk change is writing: store the counts once it has landed
            page._queued.append(lambda: store(counts, probe))
        if page.tabs.currentWidget() is page.preview:
            page._load_current()

    page._start_tokens_job(f"Token counts ({model_id})", job, done)


def _count_finished(page: DataPage) -> None:
    page._count_job = None
    page.count_button.setEnabled(True)
    if page.counter is None and page.tabs.currentWidget() is page.preview:  # cancelled or failed
        page.preview.show_message("The tokenizer was not loaded. Select a row to try again.")
    page._recount_changed(load=False)  # rows edited while the tokenizer loaded or the count ran
