"""Stop a `model.generate()` call within one generated token when the user asks (Cancel, Stop).

`stop_criteria(should_stop, on_token)` is a transformers StoppingCriteriaList whose criterion runs after every
generated token: it calls `on_token(n)` (n = tokens generated so far, for progress) and `should_stop()`; when
that turns true every sequence is marked finished and generate() returns, and the caller checks
`should_stop()` again to discard the cut answers. transformers is imported inside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.progress import StopFn


def stop_criteria(should_stop: StopFn | None, on_token: Callable[[int], None] | None = None) -> Any:
    """A StoppingCriteriaList (empty when there is nothing to watch)."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    if should_stop is None and on_token is None:
        return StoppingCriteriaList()

    class StopOnRequest(StoppingCriteria):
        def __init__(self) -> None:
            self.tokens = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            self.tokens += 1
            if on_token is not None:
                on_token(self.tokens)
            stop = bool(should_stop()) if should_stop is not None else False
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnRequest()])
