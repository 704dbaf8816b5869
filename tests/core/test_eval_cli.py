"""`whetstone eval` contract and the evaluation job on the fake run (tiny Llama + non-zero LoRA)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from core.errors import Cancelled, UserError
from core.evaluation.evaluate import EvalOptions, evaluate_run, load_results
from core.evaluation.generate import DecodingSettings
from tests.conftest import run_cli

FAST = dict(forgetting=False, perplexity=False)


def _opts(**kw) -> EvalOptions:
    tokens = kw.pop("max_new_tokens", 6)
    return EvalOptions(decoding=DecodingSettings(max_new_tokens=tokens), **{**FAST, **kw})


def _rewrite_dataset(run: Path, keep) -> None:
    rows = [orjson.loads(line) for line in (run / "dataset.jsonl").read_bytes().splitlines() if line.strip()]
    rows = keep(rows)
    (run / "dataset.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


@pytest.mark.slow
def test_cli_json_contract(fake_run_dir: Path) -> None:
    proc = run_cli(
        "eval", str(fake_run_dir), "--limit", "4", "--max-new-tokens", "6", "--perplexity", "--general",
        "--json", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["n"] == 4 and doc["mode"] == "full"
    assert doc["extras"] == {"perplexity": True, "general_prompts": True}
    for side in ("base", "tuned"):
        assert {
            "exact_match",
            "token_f1",
            "rouge_l",
            "bleu",
            "json_valid",
            "json_keys_match",
            "length_ratio",
        } <= set(doc[side])
        assert "perplexity" in doc[side] and doc[side]["perplexity"] > 1
    assert doc["delta"]["token_f1"]["n"] == 4 and "ci_low" in doc["delta"]["token_f1"]
    assert doc["forgetting"]["prompts"] == 20
    assert doc["hit_max_tokens"]["base"] >= 0
    # Six new tokens cannot hold the JSON answers: the cut-off is reported on stderr and in the document.
    assert any("max-new-tokens" in w for w in doc["warnings"])
    assert "warning:" in proc.stderr
    rows = [json.loads(line) for line in (fake_run_dir / "eval" / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert {"id", "prompt", "reference", "base", "tuned", "base_scores", "tuned_scores"} <= set(rows[0])
    assert rows[0]["base"] != rows[0]["tuned"]  # the adapter changes the answers
    assert (fake_run_dir / "eval" / "forgetting.jsonl").exists()


def test_cli_bad_input_is_one_line(fake_run_dir: Path, tmp_path: Path) -> None:
    _rewrite_dataset(fake_run_dir, lambda rows: [r for r in rows if r["split"] != "test"])
    proc = run_cli("eval", str(fake_run_dir), "--json")
    assert proc.returncode == 2
    assert "no test split" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("eval", str(tmp_path / "nowhere"), "--json")
    assert proc.returncode == 2 and "not a run folder" in proc.stderr


def test_results_are_cached_and_reused(fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = evaluate_run(fake_run_dir, _opts(limit=3))
    import core.evaluation.generate as G

    def boom(*a, **k):
        raise AssertionError("the model was loaded although every answer was cached")

    monkeypatch.setattr(G.ModelPair, "__init__", boom)
    again = evaluate_run(fake_run_dir, _opts(limit=3))
    assert again["base"] == first["base"] and again["cache_key"] == first["cache_key"]
    monkeypatch.undo()
    # Other decoding settings make a new key: answers are generated afresh.
    other = evaluate_run(fake_run_dir, _opts(limit=3, max_new_tokens=5))
    assert other["cache_key"] != first["cache_key"]
    # A changed adapter makes a new key too.
    cfg = fake_run_dir / "adapter" / "adapter_config.json"
    cfg.write_text(cfg.read_text() + "\n")
    changed = evaluate_run(fake_run_dir, _opts(limit=3))
    assert changed["cache_key"] != first["cache_key"]


def test_cancel_keeps_partial_results_and_resume_reuses_them(fake_run_dir: Path) -> None:
    asked = {"stop": False}

    def progress(_fraction: float, message: str) -> None:
        if message.startswith("answering test prompts 9–12 of 12 with the base model"):
            asked["stop"] = True  # Cancel pressed while the third batch starts

    options = _opts()
    options.decoding = DecodingSettings(max_new_tokens=4, batch_size=4)
    with pytest.raises(Cancelled):
        evaluate_run(fake_run_dir, options, progress=progress, should_stop=lambda: asked["stop"])
    summary, rows = load_results(fake_run_dir)
    assert summary is not None and summary["partial"] is True
    assert any("Cancelled" in w for w in summary["warnings"])
    cached = (fake_run_dir / "eval" / "cache").glob("gen-*.jsonl")
    lines = sum(len(f.read_bytes().splitlines()) for f in cached)
    assert lines == 8  # two batches of four were kept
    done = evaluate_run(fake_run_dir, options)
    assert done["partial"] is False and done["n"] == 12


def test_one_example_test_split_warns_without_ci(fake_run_dir: Path) -> None:
    def keep_one_test(rows):
        seen = False
        out = []
        for r in rows:
            if r["split"] == "test":
                if seen:
                    continue
                seen = True
            out.append(r)
        return out

    _rewrite_dataset(fake_run_dir, keep_one_test)
    summary = evaluate_run(fake_run_dir, _opts())
    assert summary["n"] == 1
    assert any("Only 1 example" in w for w in summary["warnings"])
    assert summary["delta"]["exact_match"]["ci_low"] is None


def test_json_metrics_on_with_non_json_references(fake_run_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"plain answer {i}"},
                    ]
                }
            )
            for i in range(3)
        )
        + "\n"
    )
    with pytest.raises(UserError, match="none of the references is JSON"):
        evaluate_run(fake_run_dir, _opts(data_file=plain, json_metrics="on"))
    summary = evaluate_run(fake_run_dir, _opts(data_file=plain))  # auto: no JSON metrics, no error
    assert "json_valid" not in summary["base"] and summary["n"] == 3
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        plain.read_text()
        + json.dumps(
            {"messages": [{"role": "user", "content": "j"}, {"role": "assistant", "content": '{"a": 1}'}]}
        )
        + "\n"
    )
    summary = evaluate_run(fake_run_dir, _opts(data_file=mixed, json_metrics="on"))
    assert summary["delta"]["json_valid"]["n"] == 1
    assert any("are not JSON" in w for w in summary["warnings"])


def test_no_adapter_and_bad_limit(fake_run_dir: Path) -> None:
    with pytest.raises(UserError, match="--limit"):
        evaluate_run(fake_run_dir, _opts(limit=0))
    (fake_run_dir / "adapter" / "adapter_config.json").unlink()
    with pytest.raises(UserError, match="no trained adapter"):
        evaluate_run(fake_run_dir, _opts())


def test_report_is_self_contained(fake_run_dir: Path, tmp_path: Path) -> None:
    from core.evaluation.report import write_report

    summary = evaluate_run(fake_run_dir, _opts(limit=2))
    _, rows = load_results(fake_run_dir)
    votes = dict(votes=2, tuned_wins=2, base_wins=0, ties=0, both_bad=0, win_rate=1.0, p_value=0.5)
    review = {
        "items": 2,
        "overall": votes,
        "reviewers": {"alice <b>": dict(votes)},
        "agreement": [],
        "notes": [
            {"reviewer": "alice", "example_id": "ex0", "outcome": "tuned", "note": "<script>x</script>"}
        ],
    }
    out = write_report(fake_run_dir, tmp_path / "r.html", summary, rows, review)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text and "Exact match" in text and "alice &lt;b&gt;" in text
    assert (
        "<script" not in text
        and "src=" not in text
        and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    sha = (fake_run_dir / "dataset.sha256").read_text().split()[0]
    assert sha in text


def test_data_may_be_a_workspace(fake_run_dir: Path, tmp_path: Path, sample_data: Path) -> None:
    from core.data.workspace import DatasetWorkspace

    ws_path = tmp_path / "tickets.wsdb"
    ws = DatasetWorkspace.create_from_file(sample_data, ws_path)
    ids = [ex.id for ex in ws.examples()][:3]
    ws.set_split(ids, "test")
    ws.close()
    summary = evaluate_run(fake_run_dir, _opts(data_file=ws_path))
    _, rows = load_results(fake_run_dir)
    assert summary["n"] == 3 and sorted(r["id"] for r in rows) == sorted(
        ids
    )  # ids lead back to the Data page


def test_quick_mode_is_the_cpu_default(fake_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the default is the task set only (limit honoured); the extras are opt-in."""
    import core.device
    from core.device import ComputeDevice

    monkeypatch.setattr(core.device, "detect_device", lambda *a, **k: ComputeDevice("cpu", "test CPU"))
    assert EvalOptions().with_extras_resolved().quick
    assert not EvalOptions().with_extras_resolved(gpu=True).quick
    assert EvalOptions(perplexity=True).with_extras_resolved(gpu=False).perplexity is True
    messages: list[str] = []
    summary = evaluate_run(
        fake_run_dir,
        EvalOptions(limit=2, decoding=DecodingSettings(max_new_tokens=4)),
        progress=lambda _f, m: messages.append(m),
    )
    assert summary["mode"] == "quick" and summary["n"] == 2
    assert summary["extras"] == {"perplexity": False, "general_prompts": False}
    assert "perplexity" not in summary["base"] and "forgetting" not in summary
    assert not (fake_run_dir / "eval" / "forgetting.jsonl").exists()
    assert not any("general prompt" in m or "perplexity" in m for m in messages)
    # --perplexity / --general on the command line turn them on; --no-forgetting still works
    from core.cli import build_parser

    args = build_parser().parse_args(["eval", "r", "--perplexity", "--general"])
    assert (args.perplexity, args.general) == (True, True)
    args = build_parser().parse_args(["eval", "r", "--no-forgetting", "--no-perplexity"])
    assert (args.perplexity, args.general) == (False, False)


def test_progress_says_what_it_does_and_cancel_stops_within_a_token(fake_run_dir: Path) -> None:
    messages: list[str] = []
    asked = {"stop": False}

    def progress(_fraction: float, message: str) -> None:
        messages.append(message)
        if "with the tuned model (token 2 of" in message:
            asked["stop"] = True  # Cancel pressed while the tuned model writes its second token

    options = _opts(limit=2)
    options.decoding = DecodingSettings(max_new_tokens=40, batch_size=1)
    with pytest.raises(Cancelled):
        evaluate_run(fake_run_dir, options, progress=progress, should_stop=lambda: asked["stop"])
    assert "answering test prompt 1 of 2 with the base model" in messages
    assert "answering test prompt 2 of 2 with the base model (token 3 of at most 40)" in messages
    tuned = [m for m in messages if "with the tuned model" in m]
    assert tuned[0] == "answering test prompt 1 of 2 with the tuned model"
    # generation ended at the token where Cancel was seen: no third token, no second prompt
    assert tuned[-1] == "answering test prompt 1 of 2 with the tuned model (token 2 of at most 40)"
    summary, _rows = load_results(fake_run_dir)
    assert summary is not None and summary["partial"] is True and summary["n"] == 0
