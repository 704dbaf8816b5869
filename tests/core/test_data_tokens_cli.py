"""Token counts (exactly the chat template's), trained-token mask, and the `whetstone data` CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from core.data.tokens import TokenCounter, count_workspace, length_stats
from core.data.workspace import DatasetWorkspace
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def counter(smollm2_dir: Path) -> TokenCounter:
    return TokenCounter.for_model(smollm2_dir)


def _reference(counter: TokenCounter, messages: list[dict]) -> int:
    return len(counter.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


def test_counts_equal_the_chat_template_tokenization(counter: TokenCounter, sample_data: Path) -> None:
    convs = [orjson.loads(line)["messages"] for line in sample_data.read_bytes().splitlines()]
    tricky = [
        [
            {"role": "user", "content": "  spaces <|im_end|> inside\n\n"},
            {"role": "assistant", "content": " x "},
        ],
        [{"role": "user", "content": "héllo wörld 日本語 🙂"}, {"role": "assistant", "content": "ok"}],
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ],
    ]
    batch = convs + tricky
    assert counter.count(batch, batch_size=7) == [_reference(counter, m) for m in batch]


def test_word_level_counting_is_exact_on_varied_text(smollm2_dir: Path) -> None:
    import random

    counter = TokenCounter.for_model(smollm2_dir)
    assert counter._word_re is not None  # SmolLM2 is byte-level BPE: counted word by word
    assert counter._chunks_exact  # ... and space-separated chunks are cached
    rng = random.Random(0)
    alphabet = list("abcXYZ 019\n\t  .,;:!?'\"-_/#()[]{}<>|@€éüß日本語🙂ا\u200b") + [
        " 's",
        "'ll",
        "  ",
        "\r\n",
    ]
    convs = []
    for i in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        reply = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        turns = [{"role": "user", "content": text or "x"}, {"role": "assistant", "content": reply or "y"}]
        if i % 3 == 0:
            turns.insert(0, {"role": "system", "content": f"sys {i % 5}"})
        convs.append(turns)
    assert counter.count(convs, batch_size=256) == [_reference(counter, m) for m in convs]
    assert counter._word_re is not None  # still on after its self-check


def test_preview_marks_only_assistant_tokens(counter: TokenCounter) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say yes"},
        {"role": "assistant", "content": "yes indeed"},
    ]
    preview = counter.preview(messages)
    assert preview.count == _reference(counter, messages)
    trained = "".join(t.text for t in preview.tokens if t.trained)
    assert trained.startswith("yes indeed")
    assert "<|im_end|>" in trained  # the end-of-turn marker is learned too
    assert "Say yes" not in trained and "Be brief" not in trained


def test_count_workspace_stores_counts(counter: TokenCounter, sample_data: Path, tmp_path: Path) -> None:
    with DatasetWorkspace.create_from_file(sample_data, tmp_path / "w.wsdb") as ws:
        seen: list[float] = []
        counts = count_workspace(ws, counter, progress=lambda f, m: seen.append(f), chunk=50)
        assert len(counts) == 120 and seen[-1] == 1.0
        assert ws.summary(ws.ids()[0]).tokens == counts[ws.ids()[0]]
        stats = length_stats(list(counts.values()), 55)
        assert stats["n"] == 120 and stats["min"] <= stats["median"] <= stats["max"]
        assert ws.filter(has_issues=True, max_length=55) != []


def test_chunking_check_rejects_a_regex_whose_words_cross_spaces() -> None:
    import regex

    from core.data.bpe_words import GPT2_PATTERN, chunking_is_exact

    assert chunking_is_exact(regex.compile(GPT2_PATTERN))
    assert not chunking_is_exact(regex.compile(r"\S+ \S+|\S+|\s+"))  # pairs of words: chunks would be wrong


def _mixed_workspace(sample_data: Path, path: Path) -> DatasetWorkspace:
    """The sample set, plus at its end conversation shapes the first examples never have (only a helper
    process's share holds them) and a content holding a special token."""
    lines = sample_data.read_text(encoding="utf-8").splitlines()
    for i in range(30):
        turns = [{"role": "user", "content": f"question {i}  with  spaces\n\tand tabs"}]
        turns.append(
            {"role": "assistant", "content": f"answer {i} <|im_end|> inside" if i == 7 else f"a {i}"}
        )
        if i % 2:
            turns += [{"role": "user", "content": "more?"}, {"role": "assistant", "content": "no."}]
        lines.append(json.dumps({"messages": turns}))
    data = path.parent / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DatasetWorkspace.create_from_file(data, path)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list:
    """The token-counting helper processes started during the test (their _CountHelper objects)."""
    import core.data.count_helper as count_helper

    helpers: list[count_helper._CountHelper] = []
    real_init = count_helper._CountHelper.__init__

    def spy(self: count_helper._CountHelper, *args: object) -> None:
        real_init(self, *args)  # type: ignore[arg-type]
        helpers.append(self)

    monkeypatch.setattr(count_helper._CountHelper, "__init__", spy)
    return helpers


def test_count_workspace_in_two_processes_equals_one(
    counter: TokenCounter,
    sample_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list,
) -> None:
    import core.data.count_helper as count_helper

    monkeypatch.setattr(count_helper, "_SLICE", 8)  # small slices: the two processes meet in the middle
    from_helper: list[int] = []
    real_collect = count_helper._CountHelper.collect

    def spy(self: count_helper._CountHelper, counts: dict[str, int]) -> int:
        before = len(counts)
        low = real_collect(self, counts)
        from_helper.append(len(counts) - before)
        return low

    monkeypatch.setattr(count_helper._CountHelper, "collect", spy)

    def wait_for_the_helper_once() -> bool:
        # 150 rows take this process milliseconds, less than a new Python needs to start: let the helper
        # print its first slice before going on, so the two really share the work.
        if started and not hasattr(started[0], "waited"):
            started[0].waited = True  # type: ignore[attr-defined]
            deadline = time.monotonic() + 60
            while not started[0]._lines and started[0]._reader.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        return False

    with _mixed_workspace(sample_data, tmp_path / "w.wsdb") as ws:
        single = count_workspace(ws, TokenCounter(counter.tokenizer), store=False, processes=1)
        seen: list[float] = []
        double = count_workspace(
            ws,
            TokenCounter(counter.tokenizer),
            progress=lambda f, m: seen.append(f),
            should_stop=wait_for_the_helper_once,
            store=False,
            processes=2,
        )
        assert len(single) == ws.count() == 150
        assert double == single
        assert seen == sorted(seen) and seen[-1] == 1.0
        reference = {i: _reference(counter, [m.to_dict() for m in ws.get(i).messages]) for i in ws.ids()}
        assert single == reference
    assert sum(from_helper) > 0  # the helper process really counted part of it


def test_count_workspace_survives_a_failed_helper(
    counter: TokenCounter, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.data.count_helper as count_helper

    with _mixed_workspace(sample_data, tmp_path / "w.wsdb") as ws:
        expected = count_workspace(ws, TokenCounter(counter.tokenizer), store=False, processes=1)
        monkeypatch.setattr(count_helper, "_SLICE", 8)
        monkeypatch.setattr(
            count_helper.sys, "executable", "/bin/false"
        )  # the helper exits at once, non-zero
        assert count_workspace(ws, TokenCounter(counter.tokenizer), store=False, processes=2) == expected


def test_count_workspace_stop_ends_the_helper(
    counter: TokenCounter,
    sample_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list,
) -> None:
    import core.data.count_helper as count_helper
    from core.errors import Cancelled

    monkeypatch.setattr(count_helper, "_SLICE", 8)
    with _mixed_workspace(sample_data, tmp_path / "w.wsdb") as ws:
        with pytest.raises(Cancelled):
            count_workspace(
                ws, TokenCounter(counter.tokenizer), should_stop=lambda: bool(started), processes=2
            )
    (helper,) = started
    assert helper._proc is None and not Path(helper._job.name).exists()  # killed, reaped, job file gone
    assert not helper._reader.is_alive()
    # (conftest also fails any test that leaves a child process running)


def test_data_check_exit_codes(tmp_path: Path, sample_data: Path) -> None:
    proc = run_cli("data", "check", str(sample_data), "--json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["format"] == "messages" and doc["examples"] == 120 and doc["errors"] == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text(sample_data.read_text().splitlines()[0] + "\n{oops\n", encoding="utf-8")
    doc = json.loads(run_cli("data", "check", str(bad), "--json").stdout)
    assert doc["examples"] == 1 and doc["errors"][0]["line"] == 2
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)))
    proc = run_cli("data", "check", str(garbage), "--json")
    assert proc.returncode == 2 and "binary" in proc.stderr and proc.stdout == ""
    assert run_cli("data", "check", str(tmp_path / "none.jsonl")).returncode == 2


def test_data_convert_and_split(tmp_path: Path, sample_data: Path) -> None:
    out = tmp_path / "out.parquet"
    proc = run_cli("data", "convert", str(sample_data), str(out), "--to", "sharegpt", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["written"] == 120 and doc["skipped"] == []
    check = json.loads(run_cli("data", "check", str(out), "--json").stdout)
    assert check["format"] == "sharegpt" and check["examples"] == 120
    pc = json.loads(
        run_cli(
            "data",
            "convert",
            str(sample_data),
            str(tmp_path / "pc.jsonl"),
            "--to",
            "prompt-completion",
            "--json",
        ).stdout
    )
    assert pc["written"] == 0 and len(pc["skipped"]) == 120 and "system" in pc["skipped"][0]["message"]
    proc = run_cli("data", "split", str(sample_data), "--out", str(tmp_path / "s"), "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    sizes = {k: v["examples"] for k, v in doc["splits"].items()}
    assert sizes == {"train": 96, "validation": 12, "test": 12}
    again = json.loads(
        run_cli(
            "data", "split", str(sample_data), "--out", str(tmp_path / "t"), "--seed", "3", "--json"
        ).stdout
    )
    assert (tmp_path / "s" / "test.jsonl").read_bytes() == (tmp_path / "t" / "test.jsonl").read_bytes()
    assert again["splits"]["test"]["examples"] == 12
    assert (
        run_cli("data", "split", str(sample_data), "--out", str(tmp_path / "u"), "--ratios", "x").returncode
        == 2
    )


@pytest.mark.slow
def test_data_stats_flags_over_length(smollm2_dir: Path, sample_data: Path) -> None:
    proc = run_cli(
        "data", "stats", str(sample_data), "--model", str(smollm2_dir), "--max-length", "55", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["examples"] == 120 and doc["tokens"]["n"] == 120
    assert doc["over_length"] and all(o["tokens"] > 55 for o in doc["over_length"])
    assert len(doc["over_length"]) == doc["tokens"]["over_length"]
    assert run_cli("data", "stats", str(sample_data), "--model", "no-such-model", "--json").returncode == 2
