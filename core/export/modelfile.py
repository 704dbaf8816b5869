"""Ollama Modelfile beside the GGUF, with the chat template and stop tokens the model was trained with.

The Jinja chat template is translated to Ollama's Go template when it is a *per-message wrapper*
template: every message renders as `prefix(role) + content + suffix(role)`, one after another, and the
generation prompt is a fixed string. That covers ChatML (`<|im_start|>role ... <|im_end|>`: SmolLM2, Qwen2,
many fine-tunes) and Llama-3 headers (`<|start_header_id|>role<|end_header_id|> ... <|eot_id|>`).

The Modelfile's `SYSTEM` is the system prompt the training rows used (`trained_system_prompt` reads the run's
dataset snapshot), never the base model's default (SmolLM2's template inserts "You are a helpful AI assistant
named SmolLM..." when a conversation has none): Ollama sends SYSTEM with every chat, so a base default there
would make `ollama run` answer under a prompt the fine-tune was not taught with.

We find the wrappers by rendering the Jinja template on probe conversations and check that the pieces
reproduce the template exactly on other conversations; when they do not (Llama 2 `[INST]`, Mistral,
templates that fold the system prompt into the first user turn), the Modelfile has no TEMPLATE and says so:
Ollama then falls back to the template it detects in the GGUF itself.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_TEMPLATE_STYLES = ("chatml", "llama3")
_ROLES = ("system", "user", "assistant")
_MARK = "\u2063"  # invisible separator: never produced by a template on its own


@dataclass
class TemplatePieces:
    prefix: dict[str, str]
    suffix: dict[str, str]
    generation_prompt: str
    leading: str  # text before the first message (a BOS the tokenizer adds anyway)
    default_system: str | None
    style: str

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """What Ollama renders with the Go template (and SYSTEM) that `go_template` writes."""
        msgs = list(messages)
        if self.default_system is not None and (not msgs or msgs[0]["role"] != "system"):
            msgs = [{"role": "system", "content": self.default_system}, *msgs]
        out = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in msgs)
        return out + (self.generation_prompt if add_generation_prompt else "")


@dataclass
class ModelfileInfo:
    text: str
    style: str | None  # "chatml" | "llama3" | None (not translated)
    stop: list[str] = field(default_factory=list)
    default_system: str | None = None  # the template's own default (reported, never written as SYSTEM)
    note: str | None = None
    system: str | None = None  # the SYSTEM line written (the training rows' system prompt)


def _jinja_render(template: str, messages: list[dict[str, str]], gen: bool, bos: str, eos: str) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def fail(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = fail
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos
    )


def analyse_template(template: str, bos: str = "", eos: str = "") -> TemplatePieces | None:
    """Split a chat template into per-role wrappers, or None when it is not that kind of template."""

    def content(role: str, i: int = 0) -> str:
        return f"{_MARK}{role[0].upper()}{i}{_MARK}"

    probe = [{"role": r, "content": content(r)} for r in _ROLES]
    try:
        full = _jinja_render(template, probe, False, bos, eos)
        with_gen = _jinja_render(template, probe, True, bos, eos)
    except Exception:  # noqa: BLE001 - any template error: not translatable
        return None
    if not with_gen.startswith(full):
        return None
    generation_prompt = with_gen[len(full) :]
    prefix: dict[str, str] = {}
    suffix: dict[str, str] = {}
    pos = 0
    marks = [full.find(content(r)) for r in _ROLES]
    if any(m < 0 for m in marks) or marks != sorted(marks):
        return None
    leading = ""
    for i, role in enumerate(_ROLES):
        start = marks[i]
        end = start + len(content(role))
        between = full[pos:start]
        if i == 0:
            # leading text (e.g. BOS) + system prefix: the role name starts the prefix
            cut = _prefix_start(between, role)
            if cut is None:
                return None
            leading, prefix[role] = between[:cut], between[cut:]
        else:
            # `between` = suffix(previous role) + prefix(role): split where this role's header starts
            cut = _prefix_start(between, role)
            if cut is None:
                return None
            suffix[_ROLES[i - 1]], prefix[role] = between[:cut], between[cut:]
        pos = end
    suffix[_ROLES[-1]] = full[pos:]
    if leading not in ("", bos):
        return None
    # Default system prompt: the template inserts one when the conversation has none.
    default_system = None
    try:
        no_system = _jinja_render(template, [{"role": "user", "content": content("user")}], True, bos, eos)
    except Exception:  # noqa: BLE001
        return None
    no_system = no_system[len(leading) :] if no_system.startswith(leading) else no_system
    user_at = no_system.find(prefix["user"] + content("user"))
    if user_at > 0:
        head = no_system[:user_at]
        if head.startswith(prefix["system"]) and head.endswith(suffix["system"]):
            default_system = head[len(prefix["system"]) : len(head) - len(suffix["system"])]
        else:
            return None
    style = (
        "chatml"
        if "<|im_start|>" in prefix["user"]
        else "llama3"
        if "<|start_header_id|>" in prefix["user"]
        else "wrapper"
    )
    pieces = TemplatePieces(prefix, suffix, generation_prompt, leading, default_system, style)
    # Check the pieces on conversations they were not derived from.
    checks = [
        [{"role": "user", "content": "Hello there"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2\nsecond line"},
        ],
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
    ]
    for messages in checks:
        try:
            expected = _jinja_render(template, messages, True, bos, eos)
        except Exception:  # noqa: BLE001
            return None
        if leading + pieces.render(messages) != expected:
            return None
    return pieces


def _prefix_start(between: str, role: str) -> int | None:
    """Index in `between` where the header of `role` begins (the special token just before the role)."""
    at = between.find(role)
    if at < 0:
        return None
    # Walk back over the header token that introduces the role (e.g. "<|im_start|>", "<|start_header_id|>").
    start = between.rfind("<", 0, at)
    if start < 0 or "\n" in between[start:at]:
        start = at
    return start


def _go_escape(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')


def go_template(pieces: TemplatePieces) -> str:
    parts = []
    if pieces.default_system == "":
        # The template always opens with a system block, empty of any prompt when the row has none (Llama 3.1:
        # only its "Cutting Knowledge Date" preamble): that is structure, not a prompt, so the Go template
        # writes it too, as training saw it. A non-empty default (SmolLM2's, Qwen2.5's) is a prompt: left out.
        parts.append(
            '{{ if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
            f"{_go_escape(pieces.prefix['system'] + pieces.suffix['system'])}{{{{ end }}}}"
        )
    parts.append("{{ range .Messages }}")
    for i, role in enumerate(_ROLES):
        keyword = "if" if i == 0 else "else if"
        parts.append(
            f'{{{{ {keyword} eq .Role "{role}" }}}}{_go_escape(pieces.prefix[role])}'
            f"{{{{ .Content }}}}{_go_escape(pieces.suffix[role])}"
        )
    parts.append("{{ end }}{{ end }}")
    parts.append(_go_escape(pieces.generation_prompt))
    return "".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ollama_modelfile(
    gguf_name: str,
    chat_template: str | None,
    *,
    bos: str = "",
    eos: str = "",
    eot: str | None = None,
    extra_stops: list[str] | None = None,
    system: str | None = None,
) -> ModelfileInfo:
    """The Modelfile text for `FROM ./gguf_name`; `system` is the trained system prompt (None: no SYSTEM)."""
    stops: list[str] = []
    for token in (eot, eos, *(extra_stops or [])):
        if token and token not in stops:
            stops.append(token)
    lines = [f"FROM ./{gguf_name}", ""]
    pieces = analyse_template(chat_template, bos, eos) if chat_template else None
    note = None
    if pieces is not None:
        # The token that opens the next turn is a stop as well (the model must not write the user's turn).
        opener = pieces.prefix["user"].split(">", 1)[0] + ">" if pieces.prefix["user"].startswith("<") else ""
        if opener and opener not in stops:
            stops.append(opener)
        lines += ['TEMPLATE """' + go_template(pieces) + '"""', ""]
    elif chat_template:
        note = (
            "This chat template is not a per-message ChatML/Llama-3 style template, so no TEMPLATE was written; "
            "Ollama uses the template it recognises in the GGUF metadata."
        )
        lines += ["# " + note, ""]
    else:
        note = "The model has no chat template; use it for plain completion."
        lines += ["# " + note, ""]
    if system:
        # Triple quotes keep a multi-line prompt as written; one holding three quotes itself is escaped instead.
        lines += [f'SYSTEM """{system}"""' if '"""' not in system else f"SYSTEM {_quote(system)}", ""]
    for stop in stops:
        lines.append(f"PARAMETER stop {_quote(stop)}")
    return ModelfileInfo(
        "\n".join(lines).rstrip() + "\n",
        pieces.style if pieces else None,
        stops,
        pieces.default_system if pieces else None,
        note,
        system or None,
    )


# --- the system prompt the model was trained with -------------------------------------------------------
MAJORITY = 0.5  # one system prompt (or none) used by more than half the training rows is the model's own


@dataclass
class TrainedSystemPrompt:
    """Which system prompt the training rows used, and how uniformly."""

    text: str | None  # what the Modelfile's SYSTEM carries (None: no SYSTEM line)
    rows: int  # training rows looked at
    counts: dict[str | None, int]  # system prompt (None = the row had none) -> rows

    @property
    def uniform(self) -> bool:
        return len(self.counts) <= 1

    def sentence(self) -> str:
        """Plain words for the README and the Export page."""
        if self.rows == 0:
            return "The run's dataset snapshot could not be read, so the Modelfile has no SYSTEM line."
        shown = _short_text(self.text) if self.text else ""
        if self.uniform:
            if self.text is None:
                return (
                    f"None of the {self.rows} training rows had a system prompt, so the Modelfile has no "
                    "SYSTEM line (the base model's default system prompt is not added)."
                )
            return f"All {self.rows} training rows used the same system prompt; the Modelfile's SYSTEM is it: {shown}"
        others = len(self.counts) - 1
        used = self.counts.get(self.text, 0)
        none = self.counts.get(None, 0)
        mix = f"the training rows' system prompts differ ({len(self.counts)} variants"
        mix += f", {none} rows without one)" if none else ")"
        if self.text is not None:
            return (
                f"{used} of {self.rows} training rows used one system prompt, which the Modelfile's SYSTEM "
                f"carries: {shown}. The other rows used {others} other variant(s) ({mix}); pass their system "
                "prompt with each request when you need it."
            )
        if used * 1.0 > MAJORITY * self.rows:
            return (
                f"{used} of {self.rows} training rows had no system prompt, so the Modelfile has no SYSTEM "
                f"line; {mix}. Pass a system prompt with each request when you need one."
            )
        return (
            f"No single system prompt covers most of the {self.rows} training rows ({mix}), so the Modelfile "
            "has no SYSTEM line. Pass the system prompt with each request."
        )


def _short_text(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return f'"{flat}"' if len(flat) <= limit else f'"{flat[: limit - 1]}…"'


def trained_system_prompt(records: Iterable[dict[str, Any]]) -> TrainedSystemPrompt:
    """The system prompt of the training rows (a run's dataset.jsonl snapshot rows).

    Only the train split is counted (all rows when the snapshot has no train rows). A row's system prompt is
    its leading system message; the one used by more than half of the rows is the model's (None when most
    rows had none, or when no prompt has a majority).
    """
    rows = list(records)
    train = [r for r in rows if str(r.get("split") or "train") == "train"] or rows
    counts: Counter[str | None] = Counter()
    for row in train:
        messages = row.get("messages") or []
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        content = first.get("content") if first.get("role") == "system" else None
        counts[content if isinstance(content, str) and content.strip() else None] += 1
    text: str | None = None
    if counts:
        top, n = counts.most_common(1)[0]
        if n > MAJORITY * len(train):
            text = top
    return TrainedSystemPrompt(text, len(train), dict(counts.most_common()))


# --- the commands to run the export --------------------------------------------------------------------
def ollama_model_name(gguf_name: str) -> str:
    """A name `ollama create` accepts, from the GGUF file name (lower case, letters, digits, . _ -)."""
    stem = gguf_name[: -len(".gguf")] if gguf_name.lower().endswith(".gguf") else gguf_name
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem.lower()).strip("-._")
    return name or "whetstone-model"


def run_commands(gguf_path: Path, modelfile_path: Path, system: str | None) -> list[tuple[str, str]]:
    """(what it does, the shell command) to run the exported model in Ollama and llama.cpp.

    llama.cpp's `llama-cli` chats by default when the GGUF has a chat template (its old `-cnv` flag is gone
    from the current CLI); the system prompt goes with `-sys`.
    """
    name = ollama_model_name(gguf_path.name)
    llama = f"llama-cli -m {shlex.quote(str(gguf_path))}"
    if system:
        llama += f" -sys {shlex.quote(system)}"
    return [
        ("Create the Ollama model", f"ollama create {name} -f {shlex.quote(str(modelfile_path))}"),
        ("Chat with it in Ollama", f"ollama run {name}"),
        ("Chat with it in llama.cpp", llama),
    ]


def run_section(commands: list[tuple[str, str]]) -> str:
    """The README's "Run it" section (Markdown)."""
    lines = ["## Run it", ""]
    for label, command in commands:
        lines += [f"{label}:", "", "```sh", command, "```", ""]
    return "\n".join(lines)


def describe_support() -> dict[str, Any]:
    return {
        "translated": list(SUPPORTED_TEMPLATE_STYLES),
        "rule": "per-message wrapper templates (ChatML, Llama-3 headers); others fall back to Ollama's own",
    }
