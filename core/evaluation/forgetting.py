"""Forgetting check: general prompts (resources/general_prompts.jsonl, written by us) answered by base and
tuned; how many answers changed and which are broken (empty, repetitive, wrong language, task answers).

The broken-output checks are deliberately simple heuristics:
- empty: nothing but whitespace;
- repetitive: a 3-word sequence repeated so often that under half of them are distinct, a line repeated three
  times or more, or one character making up most of a long answer;
- task answer / unasked JSON: the answer is one of the fine-tuning task's answers, or JSON the prompt did
  not ask for (the task's format leaking into general use);
- wrong language: the answer's writing system (Latin, Cyrillic, CJK, ...) differs from the prompt's, or, for
  prompts tagged en/fr/de/es, the answer's function words clearly belong to another of those languages.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from core.errors import UserError
from core.evaluation.generate import Answer, PromptItem
from core.evaluation.metrics import is_json, normalize_text
from core.resources import resource_path

_STOPWORDS = {
    "en": {"the", "and", "is", "are", "of", "to", "in", "it", "you", "that", "with", "for", "this", "on"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "un", "du", "que", "qui", "dans", "pour", "pas"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "sie", "zu", "den", "auf", "es"},
    "es": {"el", "los", "las", "y", "es", "una", "un", "que", "del", "en", "por", "con", "para", "tiene"},
}


def load_general_prompts(path: Path | None = None) -> list[PromptItem]:
    """The bundled general prompt set, or the JSONL file at `path`."""
    if path is None:
        path = resource_path("general_prompts.jsonl")
    if not path.exists():
        raise UserError(f"General prompt set not found: {path}")
    items = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        row = orjson.loads(line)
        items.append(
            PromptItem(
                id=str(row.get("id") or f"general{number}"),
                messages=list(row["messages"]),
                extra={"language": row.get("language", "")},
            )
        )
    return items


def script_of(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for script in (
        "LATIN",
        "CYRILLIC",
        "GREEK",
        "ARABIC",
        "HEBREW",
        "HANGUL",
        "HIRAGANA",
        "KATAKANA",
        "THAI",
    ):
        if name.startswith(script):
            return "CJK" if script in ("HIRAGANA", "KATAKANA") else script
    if "CJK" in name:
        return "CJK"
    if "DEVANAGARI" in name:
        return "DEVANAGARI"
    return "OTHER"


def dominant_script(text: str) -> tuple[str | None, int]:
    counts = Counter(s for s in map(script_of, text) if s)
    if not counts:
        return None, 0
    script, _ = counts.most_common(1)[0]
    return script, sum(counts.values())


def guess_latin_language(text: str) -> tuple[str | None, dict[str, int]]:
    words = [w.strip(".,;:!?¿¡\"'()").lower() for w in text.split()]
    hits = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda k: hits[k])
    return (best if hits[best] else None), hits


def is_repetitive(text: str) -> bool:
    words = text.split()
    if len(words) >= 12:
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(set(grams)) / len(grams) < 0.5:
            return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and Counter(lines).most_common(1)[0][1] >= 3:
        return True
    chars = [c for c in text if not c.isspace()]
    if len(chars) >= 20 and Counter(chars).most_common(1)[0][1] / len(chars) > 0.5:
        return True
    return False


def broken_reasons(
    answer: str, prompt: str, language: str = "", task_answers: frozenset[str] = frozenset()
) -> list[str]:
    """Why an answer looks broken ([] when it looks fine). `task_answers` are the normalised answers of the
    fine-tuning task: a general prompt answered with one of them (or with JSON nobody asked for) shows the
    task's format leaking into everything."""
    if not answer.strip():
        return ["empty"]
    reasons = []
    if task_answers and normalize_text(answer) in task_answers:
        reasons.append("task answer")
    elif is_json(answer) and answer.strip()[:1] in "{[" and "json" not in prompt.lower():
        reasons.append("unasked JSON")
    if is_repetitive(answer):
        reasons.append("repetitive")
    expected_script, _ = dominant_script(prompt)
    got_script, letters = dominant_script(answer)
    if expected_script and got_script and letters >= 10 and got_script != expected_script:
        reasons.append("wrong language")
    elif language in _STOPWORDS and got_script == "LATIN":
        guess, hits = guess_latin_language(answer)
        if guess and guess != language and hits[guess] >= 3 and hits[guess] >= 2 * max(hits[language], 1):
            reasons.append("wrong language")
    return reasons


def forgetting_report(
    items: Sequence[PromptItem], answers: dict[str, dict[str, Answer]], task_references: Sequence[str] = ()
) -> dict[str, Any]:
    task_answers = frozenset(normalize_text(r) for r in task_references if normalize_text(r))
    rows = []
    for item in items:
        pair = answers.get(item.id, {})
        if "base" not in pair or "tuned" not in pair:
            continue
        base, tuned = pair["base"].text, pair["tuned"].text
        prompt = item.prompt_text()
        language = str(item.extra.get("language", ""))
        rows.append(
            {
                "id": item.id,
                "prompt": prompt,
                "base": base,
                "tuned": tuned,
                "changed": normalize_text(base) != normalize_text(tuned),
                "base_flags": broken_reasons(base, prompt, language, task_answers),
                "tuned_flags": broken_reasons(tuned, prompt, language, task_answers),
            }
        )
    newly_broken = [r["id"] for r in rows if r["tuned_flags"] and not r["base_flags"]]
    return {
        "prompts": len(rows),
        "changed": sum(1 for r in rows if r["changed"]),
        "broken_base": sum(1 for r in rows if r["base_flags"]),
        "broken_tuned": sum(1 for r in rows if r["tuned_flags"]),
        "newly_broken": newly_broken,
        "items": rows,
    }


def forgetting_sentence(forgetting: dict[str, Any]) -> str:
    """The forgetting check in one sentence, for the report and the Evaluate page."""
    return (
        f"{forgetting['changed']} of {forgetting['prompts']} general prompts got a different answer after "
        "tuning. Broken-looking answers (empty, repetitive, wrong language, the task's answer leaking in): "
        f"base {forgetting['broken_base']}, tuned {forgetting['broken_tuned']}."
    )
