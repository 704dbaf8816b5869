"""Generation with the base model and base + adapter, same prompts, same decoding, cached in the run folder.

The base model is loaded once and wrapped with the run's PEFT adapter; "base" answers are generated with the
adapter disabled (`model.disable_adapter()`), "tuned" answers with it enabled. Prompts are the conversation
minus its final assistant turn, rendered with the base model's chat template (`add_generation_prompt`).
Decoding is greedy by default; batches are left-padded.

Cache: `RUN/eval/cache/gen-<key>.jsonl`, where `key` hashes the base model (id and config), the adapter
files and the decoding settings; each line is one answer keyed by the prompt's hash and the side. Lines are
appended (and fsynced) after every batch, so a cancelled or crashed job keeps what it finished and the next
run only generates what is missing. Any change to the adapter, base model or decoding makes a new key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.progress import ProgressFn, StopFn, check_stop, no_progress
from core.runs import RunFolder, sha256_file
from core.training.dataset import strip_reasoning

SIDES = ("base", "tuned")
CACHE_VERSION = 1


@dataclass(frozen=True)
class DecodingSettings:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8

    def cache_fields(self) -> dict[str, Any]:
        """What changes the answers (the batch size does not, by intent)."""
        data = asdict(self)
        data.pop("batch_size")
        if not self.do_sample:
            data.pop("temperature")
            data.pop("top_p")
            data.pop("seed")
        return data


@dataclass(frozen=True)
class Answer:
    text: str
    hit_max_tokens: bool
    new_tokens: int


@dataclass
class PromptItem:
    """One prompt to answer: `messages` is the conversation minus its final assistant turn."""

    id: str
    messages: list[dict[str, Any]]
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def prompt_hash(self) -> str:
        payload = orjson.dumps(
            [{"role": m.get("role"), "content": m.get("content")} for m in self.messages],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(payload).hexdigest()[:32]

    def prompt_text(self) -> str:
        """The last user turn (what a reviewer reads as 'the question')."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return str(self.messages[-1].get("content") or "") if self.messages else ""


def split_conversation(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str] | None:
    """(prompt messages, reference answer) or None when the conversation does not end with an assistant."""
    msgs = [dict(m) for m in messages]
    if len(msgs) < 2 or msgs[-1].get("role") != "assistant":
        return None
    reference = strip_reasoning(str(msgs[-1].get("content") or ""))
    return msgs[:-1], reference


# model ------------------------------------------------------------------------------------------------
def _stop_ids(tokenizer: Any, model: Any) -> Any:
    """The tokenizer's eos plus the model's own stop tokens (generation_config: Gemma's <end_of_turn>,
    Phi's <|end|>)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for tid in extra if isinstance(extra, list) else [extra]:
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids[0] if len(ids) == 1 else ids


class ModelPair:
    """The base model loaded once, wrapped with the run's adapter: base answers with the adapter disabled."""

    def __init__(self, base_dir: Path, adapter_dir: Path) -> None:
        from transformers.utils import logging as hf_logging

        from core.loader import load_with_adapter, pick_device

        hf_logging.disable_progress_bar()  # our own progress reports cover loading
        self.device = pick_device()
        self.tokenizer: Any
        self.model: Any
        # The same load as Export's merge (core.loader): unquantized base, resized embeddings, the adapter.
        self.model, self.tokenizer = load_with_adapter(base_dir, adapter_dir, device=self.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def render(self, messages: Sequence[dict[str, Any]]) -> str:
        """The prompt as training rendered its rows (core.training.dataset.render_prompt: system prompt
        folded where the template cannot keep it, enable_thinking=False for rows without reasoning)."""
        msgs = [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            from core.training.dataset import render_prompt

            return render_prompt(self.tokenizer, msgs)
        lines = [f"{m['role']}: {m['content']}" for m in msgs]
        return "\n".join(lines) + "\nassistant:"

    def generate(
        self,
        messages_batch: Sequence[Sequence[dict[str, Any]]],
        side: str,
        settings: DecodingSettings,
        *,
        should_stop: StopFn | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> list[Answer]:
        """Greedy (or sampled) answers; raises Cancelled within one generated token once `should_stop()` is
        true. `on_token(n)` is called after each generated token (for progress)."""
        import contextlib

        import torch
        from transformers import GenerationConfig

        from core.stopping import stop_criteria

        texts = [self.render(m) for m in messages_batch]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        eos = _stop_ids(self.tokenizer, self.model)
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature if settings.do_sample else None,
            top_p=settings.top_p if settings.do_sample else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        if settings.do_sample:
            torch.manual_seed(settings.seed)
        ctx = self.model.disable_adapter() if side == "base" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            out = self.model.generate(
                **enc, generation_config=config, stopping_criteria=stop_criteria(should_stop, on_token)
            )
        check_stop(should_stop)
        new = out[:, enc["input_ids"].shape[1] :]
        answers = []
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        for row in new.tolist():
            ended = next((i for i, tok in enumerate(row) if tok in eos_ids), None)
            tokens = row if ended is None else row[:ended]
            hit_max = ended is None and len(row) >= settings.max_new_tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            answers.append(Answer(strip_reasoning(text), hit_max, len(tokens)))  # scored: the answer alone
        return answers

    def assistant_loss(
        self,
        conversations: Sequence[Sequence[dict[str, Any]]],
        side: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: StopFn | None = None,
    ) -> tuple[float, int]:
        """Summed negative log-likelihood of the final assistant turns and their token count.
        `progress(k, n)` before conversation k of n; Cancelled between conversations on `should_stop()`."""
        import contextlib

        import torch

        total = 0.0
        count = 0
        ctx = self.model.disable_adapter() if side == "base" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            for k, conv in enumerate(conversations):
                check_stop(should_stop)
                if progress is not None:
                    progress(k, len(conversations))
                split = split_conversation(conv)
                if split is None:
                    continue
                prompt_msgs, reference = split
                prompt = self.render(prompt_msgs)
                full = self.tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]
                eos = self.tokenizer.eos_token_id
                if isinstance(eos, int):
                    full = [*full, eos]
                n_prompt = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
                if len(full) <= n_prompt:
                    continue
                ids = torch.tensor([full], device=self.device)
                logits = self.model(input_ids=ids).logits[0, :-1].float()
                targets = ids[0, 1:]
                losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
                answer_losses = losses[n_prompt - 1 :]
                total += float(answer_losses.sum())
                count += int(answer_losses.numel())
        return total, count

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


# cache ------------------------------------------------------------------------------------------------
def adapter_digest(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        file = adapter_dir / name
        if file.exists():
            digest.update(name.encode())
            digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def base_digest(base_name: str, base_dir: Path) -> str:
    digest = hashlib.sha256(base_name.encode())
    config = base_dir / "config.json"
    if config.exists():
        digest.update(config.read_bytes())
    for file in sorted(base_dir.glob("*.safetensors")):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}".encode())
    return digest.hexdigest()


def cache_key(base_name: str, base_dir: Path, adapter_dir: Path, settings: DecodingSettings) -> str:
    payload = orjson.dumps(
        {
            "version": CACHE_VERSION,
            "base": base_digest(base_name, base_dir),
            "adapter": adapter_digest(adapter_dir),
            "decoding": settings.cache_fields(),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(payload).hexdigest()[:20]


class GenerationCache:
    """Append-only answers for one (base, adapter, decoding) key: {(prompt_hash, side): Answer}."""

    def __init__(self, folder: Path, key: str) -> None:
        self.file = folder / f"gen-{key}.jsonl"
        self.key = key
        self.answers: dict[tuple[str, str], Answer] = {}
        if self.file.exists():
            with open(self.file, "rb") as handle:
                for line in handle:
                    try:
                        row = orjson.loads(line)
                        self.answers[(row["prompt"], row["side"])] = Answer(
                            row["text"], bool(row["hit_max_tokens"]), int(row["new_tokens"])
                        )
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue  # a torn last line after a crash

    def get(self, prompt_hash: str, side: str) -> Answer | None:
        return self.answers.get((prompt_hash, side))

    def add(self, rows: Sequence[tuple[str, str, Answer]]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps({"prompt": p, "side": s, **asdict(a)}) + b"\n" for p, s, a in rows)
        with open(self.file, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        for p, s, a in rows:
            self.answers[(p, s)] = a


def generate_answers(
    pair: ModelPair | None,
    cache: GenerationCache,
    items: Sequence[PromptItem],
    settings: DecodingSettings,
    *,
    load_pair: Any = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    label: str = "prompt",
) -> tuple[dict[str, dict[str, Answer]], ModelPair | None]:
    """Answers {item id: {"base": Answer, "tuned": Answer}} for every item, from the cache where possible.

    `pair` is loaded lazily with `load_pair()` only when something is missing. Progress says what is being
    done ("answering test prompt 3 of 10 with the tuned model", `label` = "test prompt"), token by token.
    Raises Cancelled within one generated token when `should_stop()` turns true; finished batches are kept
    in the cache."""
    todo: list[tuple[str, PromptItem]] = []
    for side in SIDES:
        seen: set[str] = set()
        for item in items:
            h = item.prompt_hash()
            if cache.get(h, side) is None and h not in seen:
                seen.add(h)
                todo.append((side, item))
    total = len(todo)
    done = 0
    if total:
        check_stop(should_stop)
        if pair is None:
            pair = load_pair()
        for side in SIDES:
            side_items = [item for s, item in todo if s == side]
            # Similar lengths together: less padding per batch.
            side_items.sort(key=lambda it: len(orjson.dumps(it.messages)))
            n = len(side_items)
            for start in range(0, n, settings.batch_size):
                check_stop(should_stop)
                batch = side_items[start : start + settings.batch_size]
                which = (
                    f"{label} {start + 1} of {n}"
                    if len(batch) == 1
                    else f"{label}s {start + 1}–{start + len(batch)} of {n}"
                )
                doing = f"answering {which} with the {side} model"
                progress(done / total, doing)

                def on_token(k: int, done: int = done, size: int = len(batch), doing: str = doing) -> None:
                    part = min(k / max(settings.max_new_tokens, 1), 1.0)
                    progress(
                        (done + part * size) / total,
                        f"{doing} (token {k} of at most {settings.max_new_tokens})",
                    )

                answers = pair.generate(
                    [it.messages for it in batch], side, settings, should_stop=should_stop, on_token=on_token
                )
                cache.add([(it.prompt_hash(), side, ans) for it, ans in zip(batch, answers, strict=True)])
                done += len(batch)
        progress(1.0, "answers ready")
    result: dict[str, dict[str, Answer]] = {}
    for item in items:
        h = item.prompt_hash()
        sides = {side: cache.get(h, side) for side in SIDES}
        result[item.id] = {k: v for k, v in sides.items() if v is not None}
    return result, pair


def cached_answers(cache: GenerationCache, items: Sequence[PromptItem]) -> dict[str, dict[str, Answer]]:
    """What the cache already holds for `items` (both sides or one)."""
    out: dict[str, dict[str, Answer]] = {}
    for item in items:
        h = item.prompt_hash()
        sides = {side: cache.get(h, side) for side in SIDES}
        out[item.id] = {k: v for k, v in sides.items() if v is not None}
    return out


def open_cache(run: RunFolder, base_name: str, base_dir: Path, settings: DecodingSettings) -> GenerationCache:
    key = cache_key(base_name, base_dir, run.adapter_dir, settings)
    return GenerationCache(run.eval_dir / "cache", key)
