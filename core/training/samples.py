"""Sample answers on a few fixed validation prompts at each evaluation, and the answer-length drift check.

At every evaluation the training callback asks `ValidationSampler` to answer the same few validation prompts
greedily (the prompts are picked once, deterministically, from the run's validation split). The answers go to
the events stream as a "log" event with two extra fields (readers that do not know them just show the message):

    {"type": "log", "step": 10, "message": "Sample answers at step 10: ...",
     "samples": [{"id", "prompt", "context_turns", "reference", "answer", "tokens", "reference_tokens",
                  "hit_max"}],
     "sample_stats": {"max_new_tokens", "mean_tokens", "reference_mean_tokens", "hit_max", "drift",
                      "seconds"}}

`length_drift()` compares the answers' lengths with the reference answers of the same prompts: "rambling"
(most answers ran into the token limit without ending), "long" (about 2x the references or more) or "short"
(about half or less). The callback raises the `length_drift` red flag when two evaluations in a row drift.

Nothing heavy is imported at module level; torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.progress import StopFn, check_stop

LONG_RATIO = 2.0  # answers this many times longer than the references drift long
SHORT_RATIO = 0.5  # ... this fraction of the references or less drift short
MIN_GAP_TOKENS = (
    8  # and the means differ by at least this many tokens (a 2-token label vs a 5-token answer is fine)
)
LIMIT_FACTOR = 1.5  # answers may run to 1.5x the longest reference of the sampled prompts ...
MIN_LIMIT = 16  # ... but never fewer than this many tokens (nor more than the configured cap)
DRIFT_FLAG = "length_drift"


@dataclass(frozen=True)
class SamplePrompt:
    """One fixed validation prompt: the conversation up to its last assistant turn, and that turn."""

    id: str
    messages: list[dict[str, str]]
    reference: str
    reference_tokens: int
    text: str  # the prompt rendered with the chat template and the generation prompt

    @property
    def question(self) -> str:
        """The last user turn (what a reader takes as 'the prompt')."""
        for m in reversed(self.messages):
            if m["role"] == "user":
                return m["content"]
        return self.messages[-1]["content"] if self.messages else ""


@dataclass(frozen=True)
class LengthCheck:
    mean_tokens: float
    reference_mean_tokens: float
    hit_max: int
    drift: str | None  # None | "rambling" | "long" | "short"
    message: str  # plain-language explanation when drift is set


def _split_last_answer(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, str]], str] | None:
    msgs = [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in messages]
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None or last == 0 or not msgs[last]["content"].strip():
        return None
    return msgs[:last], msgs[last]["content"]


def _order_key(row_id: str) -> str:
    return hashlib.sha256(row_id.encode("utf-8")).hexdigest()


def pick_prompts(
    tokenizer: Any, rows: Sequence[dict[str, Any]], count: int, max_length: int
) -> list[SamplePrompt]:
    """`count` validation prompts, the same every time for the same snapshot: validation rows ordered by a hash
    of their id (a spread over the split, not its first rows), keeping those whose prompt and reference fit in
    `max_length` tokens (the shortest ones when none fit)."""
    from core.training.dataset import render_prompt

    if count <= 0:
        return []
    candidates: list[tuple[str, SamplePrompt, int]] = []
    for n, row in enumerate(rows):
        if (row.get("split") or "train") != "validation":
            continue
        split = _split_last_answer(row.get("messages") or [])
        if split is None:
            continue
        prompt_msgs, reference = split
        row_id = str(row.get("id") or f"row{n}")
        text = render_prompt(tokenizer, prompt_msgs)  # as training renders it (system folded where needed)
        ref_tokens = len(tokenizer(reference, add_special_tokens=False)["input_ids"])
        prompt_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        item = SamplePrompt(row_id, prompt_msgs, reference, ref_tokens, text)
        candidates.append((_order_key(row_id), item, prompt_tokens + ref_tokens))
    candidates.sort(key=lambda c: c[0])
    fitting = [c for c in candidates if c[2] <= max_length]
    if len(fitting) < count:
        rest = sorted((c for c in candidates if c[2] > max_length), key=lambda c: (c[2], c[0]))
        fitting += rest[: count - len(fitting)]
    return [c[1] for c in fitting[:count]]


def answer_limit(reference_tokens: Sequence[int], cap: int) -> int:
    """Max new tokens for the sampled prompts: ~1.5x the longest reference, at least MIN_LIMIT, at most cap."""
    longest = max(reference_tokens, default=0)
    return max(1, min(cap, max(MIN_LIMIT, math.ceil(LIMIT_FACTOR * longest))))


def length_drift(
    generated: Sequence[int], references: Sequence[int], hit_max: Sequence[bool], max_new_tokens: int
) -> LengthCheck:
    """Do the answers' lengths (tokens) drift away from the reference answers of the same prompts?

    - rambling: more than half of the answers ran into the token limit without ending, where the limit left
      room for the whole reference (>= 1.5x it): the model does not stop.
    - long: on average about 2x the references or more (and at least MIN_GAP_TOKENS more).
    - short: on average about half the references or less (and at least MIN_GAP_TOKENS fewer), counted over
      the prompts whose limit left room for the whole reference.
    """
    n = len(generated)
    if n == 0 or len(references) != n or len(hit_max) != n:
        return LengthCheck(0.0, 0.0, 0, None, "")
    mean = sum(generated) / n
    ref_mean = sum(references) / n
    hits = sum(bool(h) for h in hit_max)
    overran = sum(
        1 for h, r in zip(hit_max, references, strict=True) if h and max_new_tokens >= LIMIT_FACTOR * r
    )
    roomy = [(g, r) for g, r in zip(generated, references, strict=True) if max_new_tokens >= r]
    roomy_mean = sum(g for g, _ in roomy) / len(roomy) if roomy else 0.0
    roomy_ref = sum(r for _, r in roomy) / len(roomy) if roomy else 0.0
    refs = f"the reference answers average {ref_mean:.0f} tokens"
    if overran * 2 > n:
        return LengthCheck(
            mean,
            ref_mean,
            hits,
            "rambling",
            f"The model is not ending its answers: on {overran} of {n} validation prompts it was still writing "
            f"when it was cut off at {max_new_tokens} tokens ({refs}). Read them in the Samples tab. Common "
            "causes: a learning rate that is too high, too many epochs, or training answers that do not end "
            "cleanly; an earlier checkpoint may answer better.",
        )
    if mean > LONG_RATIO * ref_mean and mean - ref_mean >= MIN_GAP_TOKENS:
        return LengthCheck(
            mean,
            ref_mean,
            hits,
            "long",
            f"The model's answers are getting too long: on the validation prompts they average {mean:.0f} "
            f"tokens, {mean / max(ref_mean, 1e-9):.1f}x the reference answers ({ref_mean:.0f}). Read them in "
            "the Samples tab; fewer epochs, a lower learning rate or an earlier checkpoint may help.",
        )
    if roomy and roomy_mean < SHORT_RATIO * roomy_ref and roomy_ref - roomy_mean >= MIN_GAP_TOKENS:
        return LengthCheck(
            mean,
            ref_mean,
            hits,
            "short",
            f"The model's answers are getting too short: on the validation prompts they average "
            f"{roomy_mean:.0f} tokens, {roomy_mean / max(roomy_ref, 1e-9):.1f}x the reference answers "
            f"({roomy_ref:.0f}). Read them in the Samples tab; check that the training answers are complete, "
            "or use an earlier checkpoint.",
        )
    return LengthCheck(mean, ref_mean, hits, None, "")


def _stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """End-of-sequence ids of the tokenizer and the model's generation config, plus the chat template's
    end-of-turn token (what the assistant turns were trained to end with)."""
    ids: set[int] = set()
    for source in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source if isinstance(i, int))
    marker = "Zq7Xw"
    try:
        text = str(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}], tokenize=False
            )
        )
        tail = text[text.rindex(marker) + len(marker) :].strip()
        if tail:
            first = tokenizer(tail, add_special_tokens=False)["input_ids"][0]
            special = set(getattr(tokenizer, "all_special_ids", []) or [])
            added = set((tokenizer.get_added_vocab() or {}).values())
            if first in special or first in added:
                ids.add(int(first))
    except (ValueError, IndexError, TypeError, AttributeError, KeyError):
        pass
    return sorted(ids)


class ValidationSampler:
    """Answers the fixed validation prompts with the model being trained (greedy, no grad, eval mode), then
    puts the model back in the mode it was in. A failure turns sampling off for the rest of the run; training
    goes on."""

    def __init__(self, tokenizer: Any, prompts: list[SamplePrompt], cap: int) -> None:
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.max_new_tokens = answer_limit([p.reference_tokens for p in prompts], cap)
        self.active = bool(prompts)

    @classmethod
    def from_rows(
        cls, tokenizer: Any, rows: Sequence[dict[str, Any]], count: int, cap: int, max_length: int
    ) -> ValidationSampler | None:
        prompts = pick_prompts(tokenizer, rows, count, max_length)
        return cls(tokenizer, prompts, cap) if prompts else None

    def generate(
        self, model: Any, autocast_dtype: Any = None, should_stop: StopFn | None = None
    ) -> list[tuple[str, int, bool]]:
        """(answer text, tokens before the end of the answer, ran into the limit) for each prompt. Raises
        Cancelled within one generated token once `should_stop()` turns true."""
        import contextlib

        import torch
        from transformers import GenerationConfig

        from core.stopping import stop_criteria

        check_stop(should_stop)
        tok = self.tokenizer
        stop = _stop_token_ids(tok, model)
        device = next(model.parameters()).device
        was_training = bool(model.training)
        padding_side = tok.padding_side
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            use_cache=True,  # training may have turned the cache off (gradient checkpointing); eval mode may use it
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else (stop[0] if stop else 0),
            eos_token_id=stop or None,
        )
        autocast: Any = contextlib.nullcontext()
        if device.type == "cuda" and autocast_dtype is not None:
            autocast = torch.autocast("cuda", dtype=autocast_dtype)
        try:
            tok.padding_side = "left"
            model.eval()  # dropout off; gradient checkpointing only acts in training mode
            enc = tok(
                [p.text for p in self.prompts], return_tensors="pt", padding=True, add_special_tokens=False
            )
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.no_grad(), autocast:
                out = model.generate(
                    **enc, generation_config=config, stopping_criteria=stop_criteria(should_stop)
                )
        finally:
            tok.padding_side = padding_side
            if was_training:
                model.train()
        check_stop(should_stop)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        stop_set = set(stop)
        answers = []
        for row in new:
            end = next((i for i, t in enumerate(row) if t in stop_set), None)
            tokens = row if end is None else row[:end]
            text = tok.decode(tokens, skip_special_tokens=True).strip()
            answers.append((text, len(tokens), end is None and len(row) >= self.max_new_tokens))
        return answers

    def sample(
        self, model: Any, autocast_dtype: Any = None, should_stop: StopFn | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any], LengthCheck]:
        """The event fields ("samples", "sample_stats") and the length check for one evaluation."""
        t0 = time.perf_counter()
        answers = self.generate(model, autocast_dtype, should_stop)
        seconds = time.perf_counter() - t0
        samples = [
            {
                "id": p.id,
                "prompt": p.question,
                "context_turns": max(0, len(p.messages) - 1),
                "reference": p.reference,
                "answer": text,
                "tokens": n,
                "reference_tokens": p.reference_tokens,
                "hit_max": hit,
            }
            for p, (text, n, hit) in zip(self.prompts, answers, strict=True)
        ]
        check = length_drift(
            [n for _, n, _ in answers],
            [p.reference_tokens for p in self.prompts],
            [hit for _, _, hit in answers],
            self.max_new_tokens,
        )
        stats = {
            "max_new_tokens": self.max_new_tokens,
            "mean_tokens": round(check.mean_tokens, 1),
            "reference_mean_tokens": round(check.reference_mean_tokens, 1),
            "hit_max": check.hit_max,
            "drift": check.drift,
            "seconds": round(seconds, 2),
        }
        return samples, stats, check


def samples_message(step: int, stats: dict[str, Any]) -> str:
    n_hit = int(stats.get("hit_max") or 0)
    cut = f"; {n_hit} cut off at {stats.get('max_new_tokens')} tokens" if n_hit else ""
    return (
        f"Sample answers at step {step}: they average {float(stats.get('mean_tokens') or 0):.0f} tokens, "
        f"the reference answers {float(stats.get('reference_mean_tokens') or 0):.0f}{cut} (Samples tab)."
    )
