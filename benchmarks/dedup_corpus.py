"""Synthetic short support-ticket rows for the dedup benchmark: mostly distinct texts, a share of them
near-duplicated (typos, added boilerplate, reworded openings, reordered sentences)."""

from __future__ import annotations

import random

PRODUCTS = [
    "Pro plan",
    "mobile app",
    "desktop client",
    "web dashboard",
    "API",
    "sync service",
    "backup tool",
    "invoice portal",
    "team workspace",
    "calendar add-on",
    "password manager",
    "chat widget",
    "analytics export",
    "photo library",
    "email integration",
    "printer driver",
    "VPN client",
]
PROBLEMS = [
    "crashes on start",
    "stopped syncing",
    "charged me twice",
    "shows a blank page",
    "is very slow",
    "logs me out every hour",
    "lost my settings",
    "will not accept my card",
    "fails to export CSV",
    "sends duplicate notifications",
    "cannot find my files",
    "refuses the licence key",
    "shows the wrong currency",
    "freezes when uploading",
    "deleted a shared folder",
    "keeps asking for two-factor codes",
    "does not load images",
    "times out on login",
]
WHEN = [
    "after the January update",
    "since yesterday",
    "on my new laptop",
    "every Monday morning",
    "when I switch accounts",
    "after I changed my password",
    "on the train with poor signal",
    "since we added five users",
    "only in dark mode",
    "after restoring a backup",
    "right after renewal",
    "when two people edit at once",
    "on Windows 11",
    "on an older Android phone",
    "since the migration",
]
ASKS = [
    "Please fix this quickly.",
    "Can you refund me?",
    "What should I try next?",
    "Is this a known bug?",
    "I need this working before Friday.",
    "Could someone call me back?",
    "Please cancel my account.",
    "How do I get my data back?",
    "Any workaround?",
    "Who can I escalate this to?",
]
NAMES = ["Anna", "Bilal", "Chen", "Dara", "Elif", "Femi", "Goran", "Hana", "Ines", "Jonas", "Kofi", "Lena"]
CATEGORY = ["technical", "billing", "account", "feature"]
PRIORITY = ["low", "normal", "high", "urgent"]
BOILER = [
    "Thanks in advance!",
    "Sent from my phone.",
    "Best regards,",
    "Kind regards, the customer.",
    "This message is confidential.",
]


def ticket(rng: random.Random) -> str:
    sentences = [
        f"My {rng.choice(PRODUCTS)} {rng.choice(PROBLEMS)} {rng.choice(WHEN)}.",
        f"I tried reinstalling and the {rng.choice(PRODUCTS)} {rng.choice(PROBLEMS)} too.",
        rng.choice(ASKS),
    ]
    if rng.random() < 0.5:
        sentences.insert(1, f"Order number {rng.randrange(10000, 99999)}, account of {rng.choice(NAMES)}.")
    user = "Ticket: " + " ".join(sentences[: rng.randrange(2, len(sentences) + 1)])
    answer = f'{{"category": "{rng.choice(CATEGORY)}", "priority": "{rng.choice(PRIORITY)}"}}'
    return f"{user}\n{answer}"


def near_copy(text: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:  # typos
        chars = list(text)
        for _ in range(2):
            i = rng.randrange(len(chars))
            if chars[i].isalpha():
                chars[i] = chars[i] * 2
        return "".join(chars)
    if kind == 1:  # boilerplate added
        user, _, answer = text.partition("\n")
        return f"{user} {rng.choice(BOILER)}\n{answer}"
    user, _, answer = text.partition("\n")  # opening reworded
    return f"{user.replace('Ticket: My', 'Ticket: Hello, my', 1)}\n{answer}"


def corpus(n: int, dup_share: float = 0.05, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    rows: list[str] = []
    while len(rows) < n:
        if rows and rng.random() < dup_share:
            rows.append(near_copy(rng.choice(rows), rng))
        else:
            rows.append(ticket(rng))
    return rows
