"""Word-level shortcuts for byte-level BPE tokenizers (the tokenizer internals TokenCounter relies on).

When a tokenizer's pipeline is exactly "split the text into words with a regex, then BPE each word" (no
normalizer, no prefix space), a text's token count is the sum of its words' counts, and where single spaces
always start a new word, the sum of its space-separated chunks' counts: `word_splitter` finds that regex,
`chunking_is_exact` checks the space rule for it, and `BYTE_TABLE` maps bytes as ByteLevel does so a word can
go straight to the BPE model. core.data.tokens checks its counts against whole-text encoding all the same.
"""

from __future__ import annotations

from typing import Any


class _DigitsThenRegex:
    """`Digits(individual_digits=True)` then a regex: digits split off one by one, the rest by the regex."""

    def __init__(self, words: Any, digit: Any) -> None:
        self._words = words.findall
        self._digit_split = digit.split
        self._has_digit = digit.search

    def findall(self, text: str) -> list[str]:
        if self._has_digit(text) is None:
            return self._words(text)
        out: list[str] = []
        for i, segment in enumerate(self._digit_split(text)):
            if i % 2:  # a captured digit
                out.append(segment)
            elif segment:
                out.extend(self._words(segment))
        return out


UNSAFE = 1 << 40  # chunk count marking "split this piece into words instead"


def chunking_is_exact(words: Any, trials: int = 400) -> bool:
    """Whether splitting text at single spaces between non-space characters, and splitting each chunk
    (with its leading space) into words, gives exactly the words of the whole text, for this word regex.
    Checked on seeded random text over letters, digits, punctuation, apostrophes, other whitespace and
    non-Latin scripts."""
    import random

    rng = random.Random(1234)
    alphabet = list("abzAZ09.,;:!?'\"-_/#()$%&*+=<>@[]\\^`{|}~\n\t\r\u00a0\u3000éß日本🙂ا٣\u200b")
    alphabet += ["'s", "'t", "'re", "'ll", "'S", "\r\n", "\n\n", "123", "4567", "ab", "Hello", "..."]
    try:
        for _ in range(trials):
            chunks = []
            for _ in range(rng.randint(1, 8)):
                chunk = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                if not chunk[0].isspace() and not chunk[-1].isspace():
                    chunks.append(chunk)
            if not chunks:
                continue
            expected = words.findall(" ".join(chunks))
            got = list(words.findall(chunks[0]))
            for chunk in chunks[1:]:
                got.extend(words.findall(" " + chunk))
            if got != expected:
                return False
    except Exception:  # a splitter that cannot run on some text: do not chunk
        return False
    return True


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def word_splitter(backend: Any) -> Any:
    """The regex a byte-level BPE tokenizer splits words with, when its pipeline is exactly 'split by a
    regex, then BPE each word' (no normalizer, no prefix space): then counts add up word by word."""
    if backend is None:
        return None
    try:
        import json

        import regex

        spec = json.loads(backend.to_str())
    except Exception:  # no `regex` module, or a tokenizer that cannot describe itself
        return None
    if spec.get("normalizer") is not None or (spec.get("model") or {}).get("type") != "BPE":
        return None
    pre = spec.get("pre_tokenizer") or {}
    pattern = None

    def gpt2_byte_level(step: dict[str, Any]) -> bool:
        return (
            step.get("type") == "ByteLevel"
            and step.get("use_regex", True)
            and not step.get("add_prefix_space")
        )

    if gpt2_byte_level(pre):
        pattern = GPT2_PATTERN
    elif pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers") or []
        if (
            len(steps) == 2
            and steps[0].get("type") == "Digits"
            and steps[0].get("individual_digits")
            and gpt2_byte_level(steps[1])
        ):
            # SmolLM2: every digit is its own word, then GPT-2's regex splits the text between digits.
            try:
                return _DigitsThenRegex(regex.compile(GPT2_PATTERN), regex.compile(r"(\p{N})"))
            except Exception:
                return None
        if (
            len(steps) == 2
            and steps[0].get("type") == "Split"
            and steps[0].get("behavior") == "Isolated"
            and not steps[0].get("invert")
            and "Regex" in (steps[0].get("pattern") or {})
            and steps[1].get("type") == "ByteLevel"
            and not steps[1].get("use_regex", True)
            and not steps[1].get("add_prefix_space")
        ):
            pattern = steps[0]["pattern"]["Regex"]
    if pattern is None:
        return None
    try:
        return regex.compile(pattern)
    except Exception:
        return None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map that ByteLevel pre-tokenizers apply before BPE."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_TABLE = str.maketrans({chr(b): c for b, c in _bytes_to_unicode().items()})
