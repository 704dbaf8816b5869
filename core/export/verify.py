"""Verification of an export against the model it came from.

- `logit_figures`: next-token logits of two models on the same token ids (max |delta logit|, top-1
  agreement on every position and on the next token).
- `verify_gguf_transformers`: reload the GGUF with transformers (`gguf_file=`, an independent reader) and
  compare with the merged model.
- `verify_gguf_llama_cpp`: load the GGUF in llama.cpp (llama-cpp-python), apply the chat template that the
  GGUF carries, and compare the prompt, its tokens and the greedy continuation with the merged model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runs import RunFolder

# Pass criteria for a GGUF reloaded with transformers: the mean |delta logit| relative to the spread (std) of
# the reference logits, and (for the lossless types) top-1 agreement over every position. Q4_0/Q5_0 and the
# K-quants are reported, never failed: how far they move depends on the model.
MAX_RELATIVE_MEAN_DELTA = {"f32": 0.01, "f16": 0.01, "bf16": 0.03, "q8_0": 0.05}
MIN_TOP1_AGREEMENT = {"f32": 0.95, "f16": 0.95}


@dataclass
class Prompt:
    id: str
    messages: list[dict[str, str]]


def sample_prompts(run: RunFolder, limit: int = 4) -> list[Prompt]:
    """A few prompts from the run's test split (validation, then train, when there is none)."""
    rows = run.dataset_records()
    prompts: list[Prompt] = []
    for split in ("test", "validation", "train"):
        for row in rows:
            if (row.get("split") or "train") != split:
                continue
            messages = [m for m in row.get("messages") or [] if m.get("content") is not None]
            while messages and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
            if messages:
                prompts.append(Prompt(str(row.get("id", len(prompts))), messages))
            if len(prompts) >= limit:
                return prompts
        if prompts:
            return prompts
    return prompts


def adapt_prompts(tokenizer: Any, prompts: list[Prompt]) -> list[Prompt]:
    """Prompts as the chat template accepts them: a template that rejects a system turn (Gemma 2: "System role
    not supported") gets the system prompt folded into the first user turn, as training renders it."""
    if not tokenizer.chat_template:
        return prompts
    out = []
    for prompt in prompts:
        messages = prompt.messages
        try:
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - jinja raise_exception from the template
            if not messages or messages[0].get("role") != "system":
                raise
            system, rest = messages[0], [dict(m) for m in messages[1:]]
            for m in rest:
                if m.get("role") == "user":
                    m["content"] = f"{system['content']}\n\n{m['content']}"
                    break
            messages = rest
        out.append(Prompt(prompt.id, messages))
    return out


def encode_prompts(tokenizer: Any, prompts: list[Prompt], max_tokens: int = 384) -> list[list[int]]:
    """Token ids of each prompt rendered with the chat template (generation prompt added)."""
    out = []
    for prompt in prompts:
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n".join(m["content"] for m in prompt.messages)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(list(ids[-max_tokens:]))
    return out


def prompt_texts(tokenizer: Any, prompts: list[Prompt]) -> list[str]:
    return [
        tokenizer.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True)
        if tokenizer.chat_template
        else "\n".join(m["content"] for m in p.messages)
        for p in prompts
    ]


def model_logits(model: Any, ids_list: list[list[int]]) -> list[Any]:
    """Logits (float32, CPU) for every position of every prompt."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for ids in ids_list:
            tensor = torch.tensor([ids], device=device)
            out.append(model(input_ids=tensor).logits[0].float().cpu())
    return out


def logit_figures(reference: list[Any], candidate: list[Any]) -> dict[str, Any]:
    import torch

    max_delta = 0.0
    total = 0.0
    count = 0
    positions = agree = 0
    next_agree = 0
    for ref, cand in zip(reference, candidate, strict=True):
        delta = (ref - cand).abs()
        max_delta = max(max_delta, float(delta.max()))
        total += float(delta.sum())
        count += delta.numel()
        ref_top = ref.argmax(-1)
        cand_top = cand.argmax(-1)
        positions += int(ref_top.numel())
        agree += int((ref_top == cand_top).sum())
        next_agree += int(ref_top[-1] == cand_top[-1])
    n = len(reference)
    scale = max((float(torch.cat([r.flatten() for r in reference]).std()) if reference else 0.0), 1e-12)
    return {
        "prompts": n,
        "positions": positions,
        "max_abs_logit_delta": round(max_delta, 6),
        "mean_abs_logit_delta": round(total / max(count, 1), 6),
        "logit_std": round(scale, 6),
        "top1_agreement": round(agree / max(positions, 1), 4),
        "next_token_top1_agreement": round(next_agree / max(n, 1), 4),
    }


def greedy_tokens(
    model: Any, ids_list: list[list[int]], max_new_tokens: int, eos_ids: list[int]
) -> list[list[int]]:
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for ids in ids_list:
            generated = model.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eos_ids or None,
                pad_token_id=eos_ids[0] if eos_ids else None,
            )
            new = generated[0, len(ids) :].tolist()
            out.append(new)
    return out


def load_gguf_with_transformers(gguf_path: Path, dtype: Any = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=dtype or torch.float32
    )
    model.eval()
    return model


def verify_gguf_transformers(
    gguf_path: Path, ids_list: list[list[int]], reference_logits: list[Any], quant: str, strict: bool = True
) -> dict[str, Any]:
    """Reload the GGUF with transformers and compare logits. `strict=False` (GGUFs from llama.cpp's converter):
    an architecture transformers cannot read is reported as skipped (llama.cpp's check still runs)."""
    import gc

    try:
        model = load_gguf_with_transformers(gguf_path)
    except Exception as exc:  # noqa: BLE001 - transformers reads only some GGUF architectures
        if strict:
            raise
        return {
            "reader": "transformers (gguf_file=)",
            "skipped": f"transformers cannot read this GGUF ({str(exc).splitlines()[0][:160]})",
        }
    try:
        figures = logit_figures(reference_logits, model_logits(model, ids_list))
    finally:
        del model
        gc.collect()
    figures["reader"] = "transformers (gguf_file=)"
    relative = figures["mean_abs_logit_delta"] / max(figures["logit_std"], 1e-12)
    figures["relative_mean_delta"] = round(relative, 5)
    limit = MAX_RELATIVE_MEAN_DELTA.get(quant)
    need_top1 = MIN_TOP1_AGREEMENT.get(quant)
    figures["criteria"] = (
        "reported only"
        if limit is None
        else f"mean |delta| <= {limit} x logit std" + (f", top-1 >= {need_top1}" if need_top1 else "")
    )
    passed = (limit is None or relative <= limit) and (
        need_top1 is None or figures["top1_agreement"] >= need_top1
    )
    if strict:
        figures["passed"] = passed
    else:
        # A GGUF from llama.cpp's converter is judged by llama.cpp's own logits; transformers' GGUF reader
        # lags llama.cpp's format for some architectures, so its figures are shown, not used to fail.
        figures["criteria"] = "reported only (llama.cpp's logits decide for llama.cpp's converter)"
        figures["within_criteria"] = passed
    return figures


def verify_gguf_llama_cpp(
    gguf_path: Path,
    prompts: list[Prompt],
    hf_prompt_texts: list[str],
    hf_ids: list[list[int]],
    hf_greedy: list[list[int]],
    max_new_tokens: int,
    reference_logits: list[Any] | None = None,
    quant: str | None = None,
) -> dict[str, Any]:
    """Load the GGUF in llama.cpp, render the prompts with the GGUF's own chat template, and compare.

    With `reference_logits` (the merged model's logits on `hf_ids`), llama.cpp's own logits on the same tokens
    are compared too (`logits`: the figures of `logit_figures`, with a pass for F32/F16/BF16/Q8_0)."""
    import os

    import llama_cpp
    import torch
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    try:
        llm = llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=1024,
            n_threads=max(1, min(8, (os.cpu_count() or 2) // 2)),
            verbose=False,
            seed=0,
            logits_all=reference_logits is not None,
        )
    except (ValueError, RuntimeError) as exc:  # llama.cpp refused the file: the GGUF is not usable
        return {
            "runtime": f"llama.cpp (llama-cpp-python {getattr(llama_cpp, '__version__', '?')})",
            "error": f"llama.cpp could not load this GGUF ({str(exc).splitlines()[0][:160]})",
            "template_match": False,
            "tokens_match": False,
            "logits": None,
            "greedy_match_rate": 0.0,
            "first_token_match_rate": 0.0,
            "max_new_tokens": max_new_tokens,
            "prompts": [],
            "passed": False,
        }
    llama_logits: list[Any] = []
    try:
        meta = llm.metadata
        template = meta.get("tokenizer.chat_template")

        def token_text(key: str) -> str:
            value = meta.get(key)
            return llm.detokenize([int(value)], special=True).decode("utf-8", "replace") if value else ""

        formatter: Any = (
            Jinja2ChatFormatter(
                template=template,
                eos_token=token_text("tokenizer.ggml.eos_token_id"),
                bos_token=token_text("tokenizer.ggml.bos_token_id"),
            )
            if template
            else None
        )
        rows: list[dict[str, Any]] = []
        for prompt, hf_text, ids, greedy in zip(prompts, hf_prompt_texts, hf_ids, hf_greedy, strict=False):
            text = formatter(messages=prompt.messages).prompt if formatter else hf_text
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)[-len(ids) :]
            llm.reset()
            if reference_logits is not None:
                llm.eval(list(ids))  # the merged model's exact tokens, so positions line up
                llama_logits.append(torch.tensor(llm.scores[: len(ids)].copy(), dtype=torch.float32))
                llm.reset()
            generated: list[int] = []
            for token in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, reset=True):
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):  # noqa: SLF001 - no public helper
                    generated.append(int(token))
                    break
                generated.append(int(token))
                if len(generated) >= max_new_tokens:
                    break
            expected = greedy[:max_new_tokens]
            same = 0
            for a, b in zip(generated, expected, strict=False):
                if a != b:
                    break
                same += 1
            rows.append(
                {
                    "id": prompt.id,
                    "template_match": text == hf_text,
                    "tokens_match": list(tokens) == list(ids),
                    "greedy_match": generated[: len(expected)] == expected,
                    "matching_prefix_tokens": same,
                    "compared_tokens": len(expected),
                    "llama_cpp_text": llm.detokenize(generated).decode("utf-8", "replace")[:200],
                }
            )
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    n = max(len(rows), 1)
    logits: dict[str, Any] | None = None
    if reference_logits is not None and llama_logits:
        ref = [r[:, : t.shape[1]] for r, t in zip(reference_logits, llama_logits, strict=False)]
        logits = logit_figures(ref, llama_logits)
        relative = logits["mean_abs_logit_delta"] / max(logits["logit_std"], 1e-12)
        logits["relative_mean_delta"] = round(relative, 5)
        limit = MAX_RELATIVE_MEAN_DELTA.get(quant or "")
        need_top1 = MIN_TOP1_AGREEMENT.get(quant or "")
        logits["criteria"] = (
            "reported only"
            if limit is None
            else f"mean |delta| <= {limit} x logit std" + (f", top-1 >= {need_top1}" if need_top1 else "")
        )
        logits["passed"] = (limit is None or relative <= limit) and (
            need_top1 is None or logits["top1_agreement"] >= need_top1
        )
    return {
        "logits": logits,
        "runtime": f"llama.cpp (llama-cpp-python {getattr(llama_cpp, '__version__', '?')})",
        "chat_template_in_gguf": bool(template),
        "template_match": all(r["template_match"] for r in rows),
        "tokens_match": all(r["tokens_match"] for r in rows),
        "greedy_match_rate": round(sum(r["greedy_match"] for r in rows) / n, 4),
        "first_token_match_rate": round(sum(r["matching_prefix_tokens"] > 0 for r in rows) / n, 4),
        "max_new_tokens": max_new_tokens,
        "prompts": rows,
    }
