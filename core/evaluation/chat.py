"""Chat with the base and the tuned model of a run, side by side (the Evaluate page's Chat tab).

`ChatModels` loads the base model once with the run's adapter (base answers with the adapter disabled, as in
evaluation), renders each conversation with the tokenizer saved beside the adapter (the training chat
template) and streams the answer: generate() runs in a thread and transformers' TextIteratorStreamer hands
the decoded text over piece by piece. `should_stop()` is checked after every generated token. Nothing here
touches the network; torch/transformers are imported inside.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.progress import StopFn, check_stop
from core.runs import RunFolder

SIDES = ("base", "tuned")


@dataclass(frozen=True)
class ChatSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy (the same answer every time, as in evaluation)


def training_system_prompt(run_dir: str | Path) -> str:
    """The system prompt the run's training rows used (the most common one), or "" when they had none."""
    run = RunFolder(Path(run_dir))
    if not run.dataset_file.exists():
        return ""
    counts: Counter[str] = Counter()
    rows = 0
    for row in run.dataset_records():
        if (row.get("split") or "train") != "train":
            continue
        rows += 1
        messages = row.get("messages") or []
        if messages and messages[0].get("role") == "system" and str(messages[0].get("content") or "").strip():
            counts[str(messages[0]["content"])] += 1
    if not counts:
        return ""
    prompt, n = counts.most_common(1)[0]
    return prompt if n * 2 >= rows else ""  # only when most rows share it


class ChatModels:
    """The run's base model and adapter, loaded once for the whole chat."""

    def __init__(self, run_dir: str | Path) -> None:
        from core.evaluation.generate import ModelPair
        from core.models import resolve_base_model

        run = RunFolder.open(run_dir)
        if not (run.adapter_dir / "adapter_config.json").exists():
            raise UserError(f"{run.path} has no trained adapter yet (adapter/); train the run first.")
        self.pair = ModelPair(resolve_base_model(run.base_model()), run.adapter_dir)
        self.last_hit_max_tokens = False  # the last reply stopped at settings.max_new_tokens (it is cut off)

    def reply(
        self,
        messages: Sequence[dict[str, Any]],
        side: str,
        settings: ChatSettings,
        on_text: Callable[[str], None],
        should_stop: StopFn | None = None,
    ) -> str:
        """Stream one answer to `messages` (the conversation so far, ending with the user's turn): `on_text`
        gets each new piece of text; returns the whole answer. Raises Cancelled within one token."""
        import contextlib

        import torch
        from transformers import GenerationConfig, TextIteratorStreamer

        from core.evaluation.generate import _stop_ids
        from core.stopping import stop_criteria

        if side not in SIDES:
            raise ValueError(side)
        pair = self.pair
        tok = pair.tokenizer
        enc = tok([pair.render(messages)], return_tensors="pt", add_special_tokens=False).to(pair.device)
        sample = settings.temperature > 0
        eos = _stop_ids(tok, pair.model)  # the model's own end-of-turn tokens too, as in the evaluation
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=sample,
            temperature=settings.temperature if sample else None,
            top_p=None,
            top_k=None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=eos,
        )
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []
        new_tokens: list[Any] = []
        self.last_hit_max_tokens = False

        def run() -> None:
            ctx = pair.model.disable_adapter() if side == "base" else contextlib.nullcontext()
            try:
                with torch.inference_mode(), ctx:
                    out = pair.model.generate(
                        **enc,
                        generation_config=config,
                        streamer=streamer,
                        stopping_criteria=stop_criteria(should_stop),
                    )
                new_tokens.extend(out[0, enc["input_ids"].shape[1] :].tolist())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name=f"chat-{side}", daemon=True)
        thread.start()
        parts: list[str] = []
        for piece in streamer:
            if piece:
                parts.append(piece)
                on_text(piece)
        thread.join()
        if failure:
            raise failure[0]
        check_stop(should_stop)
        stop_ids = eos if isinstance(eos, list) else [eos]
        self.last_hit_max_tokens = (
            len(new_tokens) >= settings.max_new_tokens and new_tokens[-1] not in stop_ids
        )
        return "".join(parts).strip()

    def close(self) -> None:
        self.pair.close()
