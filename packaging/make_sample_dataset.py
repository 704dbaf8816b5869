"""Regenerates resources/sample_dataset.jsonl: support tickets -> a fixed JSON triage answer.

A small task with a fixed output format, so a few training steps visibly change the model's answers.
"""

import json
import random
from pathlib import Path

CATEGORIES = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "My invoice for {month} shows the wrong amount.",
        "Please refund the {plan} renewal, I cancelled before it renewed.",
        "Why did my card get declined when paying for the {plan} plan?",
        "I need a copy of the receipt for my {month} payment.",
    ],
    "technical": [
        "The app crashes every time I open the {feature} screen.",
        "Sync stopped working after the {month} update.",
        "I get an error 500 when I upload a file to {feature}.",
        "The {feature} page is blank on my laptop.",
        "Exports from {feature} come out empty.",
    ],
    "account": [
        "I cannot log in, the password reset email never arrives.",
        "Please change the email address on my account to my work address.",
        "How do I add a colleague to my {plan} team?",
        "I want to delete my account and all my data.",
        "My account was locked after too many login attempts.",
    ],
}
URGENT = ["urgent", "asap", "right now", "immediately", "today"]
PLANS = ["Pro", "Team", "Basic", "Enterprise"]
MONTHS = ["January", "March", "June", "September", "November"]
FEATURES = ["reports", "calendar", "dashboard", "invoices", "files"]
SYSTEM = "You triage customer support tickets. Answer with JSON only."


def main() -> None:
    rng = random.Random(7)
    rows = []
    for i in range(120):
        category = rng.choice(list(CATEGORIES))
        text = rng.choice(CATEGORIES[category]).format(
            plan=rng.choice(PLANS), month=rng.choice(MONTHS), feature=rng.choice(FEATURES)
        )
        priority = "high" if rng.random() < 0.35 else "normal"
        if priority == "high":
            text = f"{text} This is {rng.choice(URGENT)}!"
        answer = json.dumps({"category": category, "priority": priority})
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Ticket: {text}"},
                    {"role": "assistant", "content": answer},
                ],
                "tags": [category],
            }
        )
    out = Path(__file__).resolve().parent.parent / "resources" / "sample_dataset.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
