"""Task metrics for base vs tuned answers: per example, aggregated, and paired differences with a CI.

Every metric is computed per example on a 0..1 scale (BLEU on sacrebleu's 0..100 scale), and the aggregate
is the mean over examples, so the paired bootstrap of the difference (tuned - base) uses the same numbers the
table shows.

- exact_match: the answers are equal after normalisation (lower case, punctuation, articles and extra
  whitespace removed, SQuAD style); when both the reference and the answer parse as JSON, the parsed values
  are compared instead (so key order and spacing do not matter).
- token_f1: SQuAD-style overlap F1 of normalised word tokens.
- rouge_l: ROUGE-L F-measure (rouge-score, stemmed).
- bleu: sacrebleu sentence BLEU (exponential smoothing), 0..100.
- json_valid / json_keys_match: only when the reference is JSON; the answer parses as JSON (a surrounding
  ``` code fence is tolerated) / the answer is an object with exactly the reference's keys.
- length_ratio: answer length / reference length, in characters.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TEXT_METRICS = ("exact_match", "token_f1", "rouge_l", "bleu", "length_ratio")
JSON_METRICS = ("json_valid", "json_keys_match")
ALL_METRICS = TEXT_METRICS + JSON_METRICS
# Higher is better for all of these except length_ratio (best near 1.0).
METRIC_LABELS = {
    "exact_match": "Exact match",
    "token_f1": "Token F1",
    "rouge_l": "ROUGE-L",
    "bleu": "BLEU",
    "length_ratio": "Length ratio",
    "json_valid": "JSON valid",
    "json_keys_match": "JSON keys match",
    "perplexity": "Validation perplexity",
}


def format_metric(metric: str, value: Any) -> str:
    """A metric value as shown in the page and the HTML report ("–" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in ("bleu", "perplexity", "length_ratio"):
        return f"{value:.2f}"
    return f"{value:.3f}"


_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def normalize_text(text: str) -> str:
    """Lower case; drop punctuation, the articles a/an/the and extra whitespace (SQuAD normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


_MISSING = object()


def parse_json(text: str) -> Any:
    """The parsed JSON value of `text` (a surrounding ``` fence tolerated), or `_MISSING`."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    if match:
        stripped = match.group(1).strip()
    if not stripped:
        return _MISSING
    try:
        return json.loads(stripped)
    except ValueError:
        return _MISSING


def is_json(text: str) -> bool:
    return parse_json(text) is not _MISSING


def exact_match(prediction: str, reference: str) -> float:
    ref_json = parse_json(reference)
    if ref_json is not _MISSING:
        pred_json = parse_json(prediction)
        if pred_json is not _MISSING:
            return float(pred_json == ref_json)
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred = normalize_text(prediction).split()
    ref = normalize_text(reference).split()
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    if not prediction.strip() and not reference.strip():
        return 1.0
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@lru_cache(maxsize=1)
def _bleu_metric() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(smooth_method="exp", effective_order=True)  # what sacrebleu.sentence_bleu uses, built once


def bleu(prediction: str, reference: str) -> float:
    if not prediction.strip() and not reference.strip():
        return 100.0
    return float(_bleu_metric().sentence_score(prediction, [reference]).score)


def length_ratio(prediction: str, reference: str) -> float:
    return len(prediction.strip()) / max(len(reference.strip()), 1)


def json_valid(prediction: str) -> float:
    return float(is_json(prediction))


def json_keys_match(prediction: str, reference: str) -> float:
    ref = parse_json(reference)
    pred = parse_json(prediction)
    if not isinstance(ref, dict) or not isinstance(pred, dict):
        return float(
            ref is not _MISSING and pred is not _MISSING and not isinstance(ref, dict) and ref == pred
        )
    return float(set(pred) == set(ref))


def score_example(prediction: str, reference: str, with_json: bool) -> dict[str, float]:
    """All metrics for one answer. JSON metrics only when `with_json` and the reference is JSON."""
    scores = {
        "exact_match": exact_match(prediction, reference),
        "token_f1": token_f1(prediction, reference),
        "rouge_l": rouge_l(prediction, reference),
        "bleu": bleu(prediction, reference),
        "length_ratio": length_ratio(prediction, reference),
    }
    if with_json and is_json(reference):
        scores["json_valid"] = json_valid(prediction)
        scores["json_keys_match"] = json_keys_match(prediction, reference)
    return scores


@dataclass(frozen=True)
class Difference:
    """tuned - base, with a paired bootstrap confidence interval (None when n < 2)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def bootstrap_difference(
    base: Sequence[float],
    tuned: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """Mean paired difference tuned - base and its percentile bootstrap CI (seeded: same input, same CI)."""
    import numpy as np

    if len(base) != len(tuned):
        raise ValueError("base and tuned need the same number of examples")
    n = len(base)
    if n == 0:
        return Difference(math.nan, None, None, 0)
    diffs = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    value = float(diffs.mean())
    if n < 2:
        return Difference(value, None, None, n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = diffs[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Difference(value, float(low), float(high), n)


def aggregate(
    per_example: Sequence[dict[str, Any]], *, seed: int = 0
) -> tuple[dict[str, float], dict[str, float], dict[str, Difference]]:
    """Means for base and tuned and paired differences, from rows {"base_scores", "tuned_scores"}.

    A metric is aggregated over the rows that have it on both sides (JSON metrics only exist for rows with a
    JSON reference)."""
    base_out: dict[str, float] = {}
    tuned_out: dict[str, float] = {}
    diffs: dict[str, Difference] = {}
    for metric in ALL_METRICS:
        pairs = [
            (row["base_scores"][metric], row["tuned_scores"][metric])
            for row in per_example
            if metric in row.get("base_scores", {}) and metric in row.get("tuned_scores", {})
        ]
        if not pairs:
            continue
        b = [p[0] for p in pairs]
        t = [p[1] for p in pairs]
        base_out[metric] = sum(b) / len(b)
        tuned_out[metric] = sum(t) / len(t)
        diffs[metric] = bootstrap_difference(b, t, seed=seed)
    return base_out, tuned_out, diffs
