"""The Ollama Modelfile carries the system prompt the training rows used (never the base model's default),
and the export says how to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.export.modelfile import (
    analyse_template,
    ollama_model_name,
    ollama_modelfile,
    run_commands,
    trained_system_prompt,
)

HOUSE = "You are Acme's support desk.\nAnswer in two sentences and sign as 'Acme Support'."


def _row(system: str | None, split: str = "train", turns: int = 1) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for i in range(turns):
        messages += [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]
    return {"id": "x", "messages": messages, "split": split}


def _smollm_modelfile(tiny_llama_dir: Path, rows: list[dict]) -> tuple[str, object]:
    template = (tiny_llama_dir / "chat_template.jinja").read_text()
    trained = trained_system_prompt(rows)
    info = ollama_modelfile("m.gguf", template, eos="<|im_end|>", eot="<|im_end|>", system=trained.text)
    return info.text, trained


def _system_line(text: str) -> str | None:
    start = text.find('SYSTEM """')
    if start < 0:
        return None
    start += len('SYSTEM """')
    return text[start : text.index('"""', start)]


def test_system_is_the_training_rows_prompt_not_the_base_default(tiny_llama_dir: Path) -> None:
    # multi-turn rows with a house-style system prompt; validation/test rows with another one do not count
    rows = [_row(HOUSE, turns=2) for _ in range(30)] + [_row("Other", split="test") for _ in range(40)]
    text, trained = _smollm_modelfile(tiny_llama_dir, rows)
    assert _system_line(text) == HOUSE
    assert "SmolLM" not in text
    assert trained.sentence().startswith("All 30 training rows used the same system prompt")  # type: ignore[attr-defined]


def test_no_system_line_when_rows_had_none(tiny_llama_dir: Path) -> None:
    text, trained = _smollm_modelfile(tiny_llama_dir, [_row(None) for _ in range(12)])
    assert _system_line(text) is None and "SYSTEM" not in text
    assert "SmolLM" not in text  # the template's default system prompt never leaks in
    assert "TEMPLATE" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert "None of the 12 training rows had a system prompt" in trained.sentence()  # type: ignore[attr-defined]


def test_most_rows_share_a_prompt_and_the_readme_says_they_differ() -> None:
    rows = [_row(HOUSE) for _ in range(8)] + [_row("Be terse.")] + [_row(None)]
    trained = trained_system_prompt(rows)
    assert trained.text == HOUSE and not trained.uniform
    sentence = trained.sentence()
    assert sentence.startswith("8 of 10 training rows used one system prompt")
    assert "3 variants, 1 rows without one" in sentence


def test_no_majority_means_no_system_and_says_so() -> None:
    rows = [_row("A")] * 3 + [_row("B")] * 3 + [_row(None)] * 2
    trained = trained_system_prompt(rows)
    assert trained.text is None
    assert "No single system prompt covers most of the 8 training rows" in trained.sentence()
    info = ollama_modelfile("m.gguf", None, eos="</s>", system=trained.text)
    assert "SYSTEM" not in info.text


def test_system_prompt_with_triple_quotes_is_escaped() -> None:
    info = ollama_modelfile("m.gguf", None, system='Say """hi"""')
    assert 'SYSTEM "Say \\"\\"\\"hi\\"\\"\\""' in info.text


def test_go_template_pieces_render_what_training_rendered(tiny_llama_dir: Path) -> None:
    """The TEMPLATE plus SYSTEM reproduce the Jinja rendering of a row with the trained system prompt."""
    from core.export.modelfile import _jinja_render

    template = (tiny_llama_dir / "chat_template.jinja").read_text()
    pieces = analyse_template(template, eos="<|im_end|>")
    assert pieces is not None
    messages = [{"role": "system", "content": HOUSE}, {"role": "user", "content": "Where is my order?"}]
    assert pieces.render(messages) == _jinja_render(template, messages, True, "", "<|im_end|>")


def test_run_commands_quote_paths_and_name_the_model(tmp_path: Path) -> None:
    gguf = tmp_path / "my exports" / "SmolLM2 Tickets-q8_0.gguf"
    commands = dict(run_commands(gguf, gguf.with_name("Modelfile"), "Be brief, it's late."))
    assert ollama_model_name(gguf.name) == "smollm2-tickets-q8_0"
    assert commands["Create the Ollama model"] == (
        f"ollama create smollm2-tickets-q8_0 -f '{tmp_path}/my exports/Modelfile'"
    )
    assert commands["Chat with it in Ollama"] == "ollama run smollm2-tickets-q8_0"
    assert commands["Chat with it in llama.cpp"] == (
        f"llama-cli -m '{gguf}' -sys 'Be brief, it'\"'\"'s late.'"
    )
    assert (
        "-sys" not in dict(run_commands(gguf, gguf.with_name("Modelfile"), None))["Chat with it in llama.cpp"]
    )


def _family_names() -> list[str]:
    from tests.families import FAMILIES

    return sorted(FAMILIES)


@pytest.mark.parametrize("family", _family_names())
def test_every_family_template_carries_the_trained_system_prompt_only(family: str) -> None:
    """Real chat templates of each family (tests/families.py): SYSTEM is the rows' prompt, or absent."""
    from tests.families import FAMILIES

    fam = FAMILIES[family]
    for rows, expected in (
        ([_row(HOUSE, turns=2) for _ in range(5)], HOUSE),
        ([_row(None, turns=2) for _ in range(5)], None),
    ):
        trained = trained_system_prompt(rows)
        info = ollama_modelfile(
            "m.gguf", fam.template, bos=fam.bos or "", eos=fam.eos, eot=fam.end_of_turn, system=trained.text
        )
        assert _system_line(info.text) == expected
        assert info.text.count("SYSTEM") == (1 if expected else 0)
        if info.default_system:  # the template's own default (Qwen2.5's "You are Qwen...") never leaks
            assert info.default_system not in info.text
        assert f'PARAMETER stop "{fam.end_of_turn}"' in info.text


def test_qwen25_default_system_prompt_is_recognised_and_left_out() -> None:
    from tests.families import FAMILIES

    fam = FAMILIES["qwen2.5"]
    info = ollama_modelfile("m.gguf", fam.template, eos=fam.eos, eot=fam.end_of_turn)
    assert info.style == "chatml"
    assert info.default_system and info.default_system.startswith("You are Qwen, created by Alibaba Cloud")
    assert "Qwen" not in info.text and "SYSTEM" not in info.text


def test_llama31_system_header_without_a_prompt_is_kept_as_training_saw_it() -> None:
    """Llama 3.1 opens every conversation with a system block (its date preamble, no prompt of its own)."""
    from core.export.modelfile import _jinja_render
    from tests.families import FAMILIES

    fam = FAMILIES["llama3"]
    pieces = analyse_template(fam.template, bos=fam.bos or "", eos=fam.eos)
    assert pieces is not None and pieces.default_system == ""
    info = ollama_modelfile("m.gguf", fam.template, bos=fam.bos or "", eos=fam.eos, eot=fam.end_of_turn)
    block = pieces.prefix["system"] + pieces.suffix["system"]
    assert "Cutting Knowledge Date" in block
    assert (
        '{{ if or (not .Messages) (ne (index .Messages 0).Role "system") }}' + block + "{{ end }}"
        in info.text
    )
    # what the Go template writes for a row without a system prompt is what training rendered
    messages = [{"role": "user", "content": "Hi"}]
    trained = _jinja_render(fam.template, messages, True, fam.bos or "", fam.eos)
    assert trained == (fam.bos or "") + block + pieces.prefix["user"] + "Hi" + pieces.suffix["user"] + (
        pieces.generation_prompt
    )
    # a SmolLM2/Qwen-style default prompt gets no such block
    qwen = ollama_modelfile("m.gguf", FAMILIES["qwen2.5"].template, eos="<|im_end|>")
    assert "index .Messages 0" not in qwen.text


def test_readme_run_section_names_the_template_default_only_for_rows_without_a_prompt(tmp_path: Path) -> None:
    from core.export.api import _run_it
    from core.export.formats import ExportResult

    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    for rows, note in (
        ([_row(None)] * 4, "in front of the 4 rows that had none"),
        ([_row(HOUSE)] * 4, None),
        ([_row("A")] * 2 + [_row("B")] * 2, None),  # no majority, but every row had a prompt
    ):
        trained = trained_system_prompt(rows)
        result = ExportResult(format="gguf", out_dir=str(tmp_path))
        result.system_prompt = {
            "text": trained.text,
            "sentence": trained.sentence(),
            "rows_without": trained.counts.get(None, 0),
            "template_default": default,
        }
        text = _run_it(result, tmp_path / "m.gguf", tmp_path / "Modelfile")
        assert "## Run it" in text and f"ollama create m -f {tmp_path / 'Modelfile'}" in text
        assert trained.sentence() in text
        assert (note in text) if note else (default not in text)
