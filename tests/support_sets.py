"""Support-desk data sets as a team lead brings them (for dedup tests): past tickets that repeat a few dozen
kinds of request with different customer names and ticket numbers, and distinct questions answered with the
same canned macro reply."""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = [
    "Anna", "Ben", "Carla", "Dmitri", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
    "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
]  # fmt: skip

# 33 kinds of request: (question template, answer template); {name} and {ticket} differ per row.
KINDS = [
    ("Hi, I'm {name}. I forgot my password and cannot log in. Ticket {ticket}.",
     "Hello {name}, use 'Forgot password' on the login page; the reset link is valid for 24 hours."),
    ("Hello, {name} here (ticket {ticket}): how do I change the email address on my account?",
     "Hi {name}, go to Settings > Profile > Email and confirm the new address from your inbox."),
    ("My invoice for last month shows the wrong VAT number. {name}, ticket {ticket}.",
     "Thanks {name}, we have corrected the VAT number and re-issued the invoice to your billing email."),
    ("{name} writing: the mobile app crashes every time I open the camera. Ref {ticket}.",
     "Sorry {name}, please update the app to version 5.3, which fixes the camera crash."),
    ("Can I get a refund for my annual plan? I'm {name}, ticket {ticket}.",
     "Hi {name}, annual plans are refundable within 30 days; I have started the refund for you."),
    ("How do I export my data to CSV? - {name} ({ticket})",
     "Hello {name}, open Reports, choose the date range and click Export > CSV."),
    ("I was charged twice this month. Ticket {ticket}, name {name}.",
     "Apologies {name}, the duplicate charge was refunded and will show in 3-5 business days."),
    ("{name} here. How can I add a second user to my team plan? ({ticket})",
     "Hi {name}, team owners can invite users under Settings > Team > Invite."),
    ("Where can I download my receipts? Regards, {name}. Ticket {ticket}",
     "Hello {name}, receipts are under Billing > History; each one has a PDF link."),
    ("Hi, {name} again. Two-factor codes never arrive by SMS. Ticket {ticket}.",
     "Hi {name}, switch to an authenticator app under Security; SMS delivery is delayed in some regions."),
    ("Is there a dark mode? Asking for {name}, ticket {ticket}.",
     "Yes {name}: Settings > Appearance > Theme > Dark."),
    ("My subscription renewed although I cancelled it. {name} / {ticket}",
     "Sorry {name}, the cancellation did not go through; we refunded the renewal and cancelled the plan."),
    ("How do I connect the calendar integration? {name}, ticket {ticket}",
     "Hello {name}, go to Integrations > Calendar and sign in with your calendar account."),
    ("{name}: the website is very slow to load today. Ticket {ticket}.",
     "Thanks {name}, we had a network incident this morning; it is resolved now."),
    ("Can I change my plan from monthly to yearly? {name} ({ticket})",
     "Hi {name}, yes: Billing > Plan > Switch to yearly; you pay the difference pro rata."),
    ("I can't upload files bigger than 10 MB. {name}, ref {ticket}",
     "Hello {name}, the free plan limit is 10 MB per file; Pro raises it to 2 GB."),
    ("Please delete my account and all my data. {name}, ticket {ticket}",
     "Hi {name}, your account and data will be deleted within 7 days; you will get a confirmation email."),
    ("The password reset email goes to spam. Ticket {ticket} from {name}.",
     "Hello {name}, add no-reply@example.com to your contacts; the next email will arrive in your inbox."),
    ("How do I change the language of the interface? {name} ({ticket})",
     "Hi {name}, Settings > Language lets you pick one of 14 languages."),
    ("Do you offer a discount for non-profits? - {name}, ticket {ticket}",
     "Hello {name}, yes: non-profits get 50% off; send us your registration certificate."),
    ("My team member did not receive the invite. {name}, ticket {ticket}.",
     "Hi {name}, invites expire after 48 hours; resend it from Settings > Team."),
    ("Why was my card declined? {name} here, ticket {ticket}",
     "Hello {name}, the bank declined the payment; please contact your bank or try another card."),
    ("I want to change the billing address on my invoices. {name} ({ticket})",
     "Hi {name}, update it under Billing > Details; new invoices use the new address."),
    ("How do I turn off email notifications? {name}, ticket {ticket}",
     "Hello {name}, Settings > Notifications lets you turn off each email type."),
    ("The search does not find older documents. Ticket {ticket}, {name}.",
     "Hi {name}, documents older than a year are archived; tick 'Include archive' in the search box."),
    ("Can I print a document directly from the app? {name} ({ticket})",
     "Hello {name}, yes: open the document and press Ctrl+P or use the Print button."),
    ("I see an error 'session expired' every few minutes. {name}, ticket {ticket}",
     "Hi {name}, clear your browser cookies for our site; the session will last 30 days again."),
    ("Is my data stored in the EU? Question from {name}, ticket {ticket}.",
     "Hello {name}, yes: all customer data is stored in Frankfurt and Dublin."),
    ("How do I restore a deleted file? {name} ({ticket})",
     "Hi {name}, deleted files stay in Trash for 30 days; open Trash and click Restore."),
    ("The app shows prices in dollars, I need euros. {name}, ticket {ticket}",
     "Hello {name}, change the currency under Billing > Currency."),
    ("Can I use the API on the free plan? {name} here, ticket {ticket}",
     "Hi {name}, the API is available on Pro and Business plans only."),
    ("How long do you keep backups? Ticket {ticket} ({name})",
     "Hello {name}, we keep daily backups for 35 days."),
    ("I need a W-9 / tax form for our accounting. {name}, ticket {ticket}.",
     "Hi {name}, the tax forms are under Billing > Documents."),
]  # fmt: skip

# Distinct questions that support answers with one of three canned macros (the same text every time).
MACROS = [
    "Thank you for contacting Acme Support. We have forwarded your request to the responsible team, who will "
    "get back to you within two business days. You can follow the status of your request in the Help Center "
    "under My Requests. Kind regards, the Acme Support Team.",
    "Thanks for your message! This is a known issue that our engineers are working on. We will notify you by "
    "email as soon as a fix is released. We apologise for the inconvenience. Best, Acme Support.",
    "Thank you for your feedback. We have added your suggestion to our product roadmap board, where other "
    "customers can vote for it. Features with the most votes are considered first. Regards, Acme Support.",
]
MACRO_QUESTIONS = [
    "Can you add an option to export reports as PDF?",
    "The calendar sync duplicates every meeting since yesterday.",
    "Please send me a copy of our signed contract.",
    "Why does the invoice total differ from the price on the website?",
    "I would love a keyboard shortcut for archiving messages.",
    "Notifications arrive twice on Android.",
    "Our company changed its name; please update it everywhere.",
    "Could the dashboard show weekly totals instead of daily ones?",
    "The login page does not load in Safari 15.",
    "I need the data processing agreement for our lawyers.",
    "Please support importing contacts from Outlook.",
    "Uploading images from the iPad fails with a blank error.",
    "Who is my account manager?",
    "Can we get single sign-on with our identity provider?",
    "The numbers in the annual report are rounded wrongly.",
    "I'd like a dark theme for the mobile app.",
    "Exports in Excel format have broken umlauts.",
    "Please close my second account that I created by mistake.",
    "Could you offer a plan for teams of three people?",
    "The search results page freezes when I type quickly.",
    "How many seats did we buy last year?",
    "Add a way to pin important projects at the top.",
    "Printing a project summary cuts off the last page.",
    "We need an invoice addressed to our parent company.",
]


def _row(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def ticket_rows(per_kind: int = 9, kinds: int = 33, seed: int = 0) -> list[dict]:
    """~300 tickets: `kinds` request kinds, each asked `per_kind` times by different customers."""
    rng = random.Random(seed)
    rows = []
    for k in range(kinds):
        question, answer = KINDS[k]
        for i in range(per_kind):
            name = NAMES[(k * 7 + i) % len(NAMES)]
            ticket = f"#{rng.randint(10000, 99999)}"
            rows.append(
                _row(question.format(name=name, ticket=ticket), answer.format(name=name, ticket=ticket))
            )
    rng.shuffle(rows)
    return rows


def macro_rows() -> list[dict]:
    """Distinct questions, each answered by one of three canned macros (with a shared system prompt)."""
    system = "You are Acme's support assistant."
    return [_row(q, MACROS[i % len(MACROS)], system) for i, q in enumerate(MACRO_QUESTIONS)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
