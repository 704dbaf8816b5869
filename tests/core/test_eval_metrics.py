"""Metrics on hand-made cases with known values, the bootstrap CI, and the forgetting heuristics."""

from __future__ import annotations

import math

import pytest

from core.evaluation import metrics as M
from core.evaluation.forgetting import broken_reasons, is_repetitive, load_general_prompts


def test_exact_match_normalises_case_punctuation_articles_and_spaces() -> None:
    assert M.exact_match("The  Cat sat.", "cat sat") == 1.0
    assert M.exact_match("a dog", "the cat") == 0.0
    assert M.normalize_text("  Hello,   World!  ") == "hello world"


def test_exact_match_compares_json_values_not_spelling() -> None:
    ref = '{"category": "billing", "priority": "high"}'
    assert M.exact_match('{"priority":"high","category":"billing"}', ref) == 1.0
    assert M.exact_match('```json\n{"priority":"high","category":"billing"}\n```', ref) == 1.0
    assert M.exact_match('{"category": "billing", "priority": "low"}', ref) == 0.0


def test_token_f1_known_values() -> None:
    # pred tokens: cat sat (2) ; ref tokens: cat sat down (3); overlap 2 -> P=1, R=2/3, F1=0.8
    assert M.token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert M.token_f1("x y", "z") == 0.0
    assert M.token_f1("", "") == 1.0
    # repeated tokens count once per occurrence: pred "a b b" -> [b, b] after article removal? (a is removed)
    assert M.token_f1("b b c", "b c c") == pytest.approx(2 / 3)


def test_rouge_l_known_value() -> None:
    # LCS of "the cat is on the mat" and "the cat sat on the mat" is 5 of 6 tokens -> F = 5/6
    assert M.rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert M.rouge_l("completely different", "nothing shared here") == 0.0


def test_bleu_identical_is_100_and_disjoint_near_zero() -> None:
    assert M.bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100.0)
    assert M.bleu("zebra quantum", "the cat sat on the mat") < 5.0


def test_json_metrics_and_length_ratio() -> None:
    ref = '{"category": "billing", "priority": "high"}'
    assert M.json_valid('{"a": 1}') == 1.0
    assert M.json_valid("category: billing") == 0.0
    assert M.json_keys_match('{"priority": "low", "category": "x"}', ref) == 1.0
    assert M.json_keys_match('{"category": "x"}', ref) == 0.0
    assert M.length_ratio("abcd", "ab") == 2.0
    scores = M.score_example('{"category": "billing", "priority": "high"}', ref, with_json=True)
    assert scores["exact_match"] == 1.0 and scores["json_valid"] == 1.0 and scores["json_keys_match"] == 1.0
    assert "json_valid" not in M.score_example("hello", "plain text", with_json=True)


def test_bootstrap_difference_is_seeded_and_brackets_the_mean() -> None:
    base = [0, 0, 1, 0, 1, 0, 0, 1, 0, 0]
    tuned = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1]
    a = M.bootstrap_difference(base, tuned, seed=3)
    b = M.bootstrap_difference(base, tuned, seed=3)
    assert a == b
    assert a.value == pytest.approx(0.5)
    assert a.ci_low is not None and a.ci_high is not None
    assert a.ci_low <= a.value <= a.ci_high
    assert a.ci_low > 0  # every example improved or stayed: the interval excludes zero
    one = M.bootstrap_difference([0.0], [1.0])
    assert one.value == 1.0 and one.ci_low is None
    assert math.isnan(M.bootstrap_difference([], []).value)


def test_aggregate_means_and_json_metric_subset() -> None:
    rows = [
        {
            "base_scores": {"exact_match": 0.0, "json_valid": 0.0},
            "tuned_scores": {"exact_match": 1.0, "json_valid": 1.0},
        },
        {"base_scores": {"exact_match": 1.0}, "tuned_scores": {"exact_match": 1.0}},
    ]
    base, tuned, diffs = M.aggregate(rows)
    assert base["exact_match"] == 0.5 and tuned["exact_match"] == 1.0
    assert diffs["exact_match"].value == 0.5
    assert diffs["json_valid"].n == 1


def test_broken_output_heuristics() -> None:
    assert broken_reasons("   ", "What is 2+2?") == ["empty"]
    assert is_repetitive("I am a cat. " * 10)
    assert is_repetitive("!!!!!!!!!!!!!!!!!!!!!!!!!")
    assert not is_repetitive("The capital of France is Paris. It is known for the Eiffel Tower.")
    assert broken_reasons("Столица Франции — Париж, красивый город.", "What is the capital of France?") == [
        "wrong language"
    ]
    fr_prompt = "Quelle est la capitale de l'Italie ?"
    assert broken_reasons(
        "The capital of Italy is Rome, and it is in the centre of the country.", fr_prompt, "fr"
    ) == ["wrong language"]
    assert (
        broken_reasons("La capitale de l'Italie est Rome, une ville qui est très belle.", fr_prompt, "fr")
        == []
    )
    assert broken_reasons("Paris is the capital of France.", "What is the capital of France?", "en") == []


def test_bundled_general_prompts() -> None:
    items = load_general_prompts()
    assert 15 <= len(items) <= 40
    assert len({it.id for it in items}) == len(items)
    assert all(it.messages[-1]["role"] == "user" for it in items)


def test_task_format_leaking_into_general_answers_is_flagged() -> None:
    from core.evaluation.forgetting import forgetting_report
    from core.evaluation.generate import Answer, PromptItem

    task = ['{"category": "billing", "priority": "normal"}']
    assert broken_reasons(
        '{"category": "billing", "priority": "normal"}',
        "What is 12 times 7?",
        "en",
        frozenset(["category billing priority normal"]),
    ) == ["task answer"]
    assert broken_reasons('{"answer": 84}', "What is 12 times 7?") == ["unasked JSON"]
    assert broken_reasons('{"answer": 84}', "Reply in JSON: what is 12 times 7?") == []
    items = [PromptItem("g1", [{"role": "user", "content": "What is 12 times 7?"}])]
    answers = {"g1": {"base": Answer("12 times 7 is 84.", False, 6), "tuned": Answer(task[0], False, 12)}}
    report = forgetting_report(items, answers, task)
    assert report["changed"] == 1 and report["newly_broken"] == ["g1"]
    assert report["items"][0]["tuned_flags"] == ["task answer"]
