"""Stop a `model.generate()` call within one generated token when the user asks (Cancel, Stop).

`stop_criteria(should_stop)` is a transformers StoppingCriteriaList whose criterion calls `should_stop()`
after every generated token; when it turns true every sequence is marked finished, generate() returns, and
the caller checks `should_stop()` again to discard the cut answers. transformers is imported inside.
"""

from __future__ import annotations

from typing import Any

from core.progress import StopFn


def stop_criteria(should_stop: StopFn | None) -> Any:
    """A StoppingCriteriaList (empty when there is nothing to watch)."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    if should_stop is None:
        return StoppingCriteriaList()
    asked: StopFn = should_stop

    class StopOnRequest(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            stop = bool(asked())
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnRequest()])
