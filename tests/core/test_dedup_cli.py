"""`whetstone dedup FILE --json`: the contract, exact duplicates at 1.0, bad input (real embedded model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _row(user: str, assistant: str, split: str | None = None) -> str:
    record: dict = {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    }
    if split:
        record["split"] = split
    return json.dumps(record)


PW = "How do I reset my password if I no longer have access to the email address on my account?"
PW_A = "Open the sign-in page, choose 'Forgot password', then pick 'I can't access this email'."


@pytest.mark.slow
def test_dedup_json_contract(tmp_path: Path) -> None:
    lines = [
        _row(PW, PW_A, "train"),  # 0
        "{not json",  # bad line: not counted
        _row("What are your opening hours on public holidays?", "We are closed on public holidays."),  # 1
        _row(
            "  how do I reset my password if I no longer have access to the EMAIL address on my account?",
            PW_A,
            "test",
        ),  # 2: exact duplicate of 0 after normalisation
        _row(PW + " Thanks in advance!", PW_A),  # 3: near duplicate (boilerplate)
        _row("Can I pay by bank transfer instead of card?", "Yes, choose 'Invoice' at checkout."),  # 4
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_cli("dedup", str(data), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"pairs", "clusters"}
    pairs = {(p["a"], p["b"]): p["score"] for p in doc["pairs"]}
    assert all(set(p) == {"a", "b", "score"} for p in doc["pairs"])
    assert pairs[(0, 2)] == 1.0
    assert (0, 3) in pairs and (2, 3) in pairs and 0.95 <= pairs[(0, 3)] < 1.0
    assert doc["clusters"] == [[0, 2, 3]]
    assert doc["examples"] == 5
    assert {(leak["a"], leak["b"]) for leak in doc["leakage"]} == {(0, 2)}
    # a higher threshold keeps only the exact pair; the second run comes from the cache
    proc = run_cli("dedup", str(data), "--threshold", "0.999", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(p["a"], p["b"], p["score"]) for p in doc["pairs"]] == [(0, 2, 1.0)]
    assert doc["clusters"] == [[0, 2]]
    # without --json: what is compared and how much would go, in plain words
    proc = run_cli("dedup", str(data), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Compares the questions (user turns) and answers (assistant turns)" in proc.stdout
    assert "Keeping one per cluster would remove 2 of 5 examples (40%)." in proc.stdout


def test_dedup_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    proc = run_cli("dedup", str(empty), "--json")
    assert proc.returncode == 2 and "empty" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{oops\n", encoding="utf-8")
    proc = run_cli("dedup", str(only_bad), "--json")
    assert proc.returncode == 2 and "no valid examples" in proc.stderr
    proc = run_cli("dedup", str(tmp_path / "missing.jsonl"), "--json")
    assert proc.returncode == 2 and "not found" in proc.stderr
    one = tmp_path / "one.jsonl"
    one.write_text(_row("hello", "hi") + "\n", encoding="utf-8")
    proc = run_cli("dedup", str(one), "--model", str(tmp_path / "no-such-model"), "--json")
    assert proc.returncode == 2 and "no-such-model" in proc.stderr
    proc = run_cli("dedup", str(one), "--threshold", "1.5", "--json")
    assert proc.returncode == 2 and "threshold" in proc.stderr


@pytest.mark.slow
def test_dedup_one_identical_and_long(tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text(_row("hello", "hi") + "\n", encoding="utf-8")
    proc = run_cli("dedup", str(one), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["pairs"] == [] and doc["clusters"] == [] and "nothing to compare" in proc.stderr

    same = tmp_path / "same.jsonl"
    same.write_text("\n".join([_row("Same question?", "Same answer.")] * 3) + "\n", encoding="utf-8")
    proc = run_cli("dedup", str(same), "--json", "--quiet")
    doc = json.loads(proc.stdout)
    assert [(p["a"], p["b"], p["score"]) for p in doc["pairs"]] == [(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0)]
    assert doc["clusters"] == [[0, 1, 2]] and "same text" in proc.stderr

    long = tmp_path / "long.jsonl"
    words = " ".join(f"token{i} is here" for i in range(400))
    long.write_text(
        "\n".join([_row(words, "ok"), _row("short question", "short answer"), _row(words + " more", "ok")])
        + "\n",
        encoding="utf-8",
    )
    proc = run_cli("dedup", str(long), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["truncated"] == [0, 2]
    assert "longer than the embedding model's limit of 256 tokens" in proc.stderr
    assert (0, 2) in {(p["a"], p["b"]) for p in doc["pairs"]}


@pytest.mark.parametrize("flag", ["--help"])
def test_dedup_help(flag: str) -> None:
    proc = run_cli("dedup", flag)
    assert proc.returncode == 0 and "--threshold" in proc.stdout and "--roles" in proc.stdout
    assert "--typos" in proc.stdout
