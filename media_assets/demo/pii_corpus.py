"""Planted personal data and its harmless neighbours, for the PII gate's tests and benchmark.

Two pages and a captioned video (its transcript comes from the captions) hold e-mail addresses,
phone numbers, card numbers that pass Luhn, IBANs, people's names and IP addresses, next to text
that is not personal data and must survive the gate: prices, a 16-digit product code that fails
Luhn, an IBAN-shaped code whose checksum fails, dates, version numbers, order numbers.
``write_site`` puts them in a folder to serve; ``score`` says, from the text an index holds, how
many planted items were caught and which harmless ones were wrongly taken out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Planted:
    type: str  # Presidio's entity name (media_assets/pii.py PLACEHOLDERS)
    text: str


PAGE_PLANTED = [
    Planted("EMAIL_ADDRESS", "jane.doe@example.com"),
    Planted("EMAIL_ADDRESS", "m.rossi@studio-nord.it"),
    Planted("PHONE_NUMBER", "+1 (415) 555-0134"),
    Planted("PHONE_NUMBER", "+44 20 7946 0958"),
    Planted("CREDIT_CARD", "4111 1111 1111 1111"),
    Planted("CREDIT_CARD", "5500-0000-0000-0004"),
    Planted("IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    Planted("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    Planted("PERSON", "Jane Doe"),
    Planted("PERSON", "Marco Rossi"),
    Planted("IP_ADDRESS", "192.168.10.24"),
    Planted("IP_ADDRESS", "203.0.113.77"),
]
SPOKEN_PLANTED = [
    Planted("EMAIL_ADDRESS", "alice.johnson@example.org"),
    Planted("PHONE_NUMBER", "+1 (212) 555-0187"),
    Planted("CREDIT_CARD", "4012 8888 8888 1881"),
    Planted("PERSON", "Alice Johnson"),
]
PLANTED = PAGE_PLANTED + SPOKEN_PLANTED
# Not personal data: each must still be in the indexed text.
NON_PII = [
    "$19.99",
    "€1,249.00",
    "1234 5678 9012 3456",  # 16 digits, fails Luhn: a product code
    "4111 1111 1111 1112",  # one digit off a test card: fails Luhn
    "GB83 WEST 1234 5698 7654 32",  # IBAN-shaped, checksum fails
    "3 May 2021",
    "2024-11-05",
    "2.4.1",
    "10.0.19045",
    "8841-2207",
    "$49.99",
    "3.2.0",
]
SPOKEN_NON_PII = ["$49.99", "3.2.0"]

CONTACT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Studio contacts and billing</title></head>
<body><main>
<h1>Studio contacts and billing</h1>
<h2>People</h2>
<p>Our producer Jane Doe answers at jane.doe@example.com or on +1 (415) 555-0134 on weekdays.
The colour grading is done by Marco Rossi (m.rossi@studio-nord.it, +44 20 7946 0958), who
joined the studio on 3 May 2021.</p>
<h2>Billing</h2>
<p>Invoices are paid by card 4111 1111 1111 1111 or 5500-0000-0000-0004, or by transfer to
GB82 WEST 1234 5698 7654 32 (London) or DE89 3704 0044 0532 0130 00 (Berlin). The monthly plan
costs $19.99 and the yearly licence €1,249.00; order 8841-2207 was shipped on 2024-11-05.</p>
<h2>Servers</h2>
<p>The render farm answers on 192.168.10.24 and the public mirror on 203.0.113.77.</p>
</main></body></html>
"""
CATALOGUE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Render node catalogue</title></head>
<body><main>
<h1>Render node catalogue</h1>
<p>The RN-40 render node carries the product code 1234 5678 9012 3456 and ships with firmware
2.4.1; the older RN-20 is listed under 4111 1111 1111 1112. Both run Windows build 10.0.19045.
</p>
<p>Transfers quoting GB83 WEST 1234 5698 7654 32 are rejected by the bank: that reference is
a misprint in last year's catalogue.</p>
</main></body></html>
"""
CALL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Support call recording</title></head>
<body><h1>Support call recording</h1>
<video controls width="640"><source src="/pii/call.mp4" type="video/mp4">
<track kind="captions" src="/pii/call.vtt" srclang="en" label="English"></video>
</body></html>
"""
CALL_CAPTIONS = """WEBVTT

00:00:00.500 --> 00:00:04.000
Hello, this is Alice Johnson calling about the render node.

00:00:04.500 --> 00:00:09.000
You can write to alice.johnson@example.org or call me on +1 (212) 555-0187.

00:00:09.500 --> 00:00:14.000
Please charge the card 4012 8888 8888 1881 for the upgrade.

00:00:14.500 --> 00:00:19.000
The upgrade costs $49.99 and brings firmware 3.2.0 to the node.
"""
PAGES = {
    "/pii/contacts.html": CONTACT_PAGE,
    "/pii/catalogue.html": CATALOGUE_PAGE,
}
VIDEO_PAGE = "/pii/call.html"


def write_site(root: Path) -> Path:
    """The pages and the captioned video in ``root`` (a site folder to serve)."""
    folder = root / "pii"
    folder.mkdir(parents=True, exist_ok=True)
    for path, html in PAGES.items():
        (root / path.lstrip("/")).write_text(html)
    (folder / "call.html").write_text(CALL_PAGE)
    (folder / "call.vtt").write_text(CALL_CAPTIONS)
    return root


def _flat(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Score:
    planted: int
    caught: list[Planted]
    missed: list[Planted]
    # Redactions beyond the planted items caught: harmless text taken for personal data (the
    # listed neighbours, or any other word).
    false_redactions: int
    lost: list[str]  # the NON_PII neighbours no longer in the index

    def line(self) -> str:
        return (
            f"planted={self.planted} caught={len(self.caught)} "
            f"false_redactions={self.false_redactions}"
        )


def score(
    indexed: Iterable[str],
    planted: Iterable[Planted] = PLANTED,
    placeholders: int = 0,
    neighbours: Iterable[str] = NON_PII,
) -> Score:
    """Which planted items the index no longer holds (caught), and how many redactions it made
    beyond them, from the distinct texts it holds (chunk text, titles, sections, the moments'
    sentences and screen texts; ``placeholders`` is how many ``[EMAIL]``-like placeholders those
    texts hold, each planted item appearing once in the corpus)."""
    text = _flat(" \n ".join(indexed))
    planted = list(planted)
    caught = [p for p in planted if _flat(p.text) not in text]
    missed = [p for p in planted if _flat(p.text) in text]
    lost = [n for n in neighbours if _flat(n) not in text]
    return Score(len(planted), caught, missed, max(placeholders - len(caught), len(lost)), lost)
