"""The personal-data gate, opt-in (``MEDIA_ASSETS_PII=off|flag|redact|drop``, default ``off``).

Presidio's analyzer finds personal data in a text already run through the project's spaCy pipeline
(``media_assets.enrich.language``: one load, one pass per text, nothing downloaded): people's names
from spaCy's NER, e-mail addresses, phone numbers (libphonenumber), IP addresses, and card numbers
and IBANs, which count only when their checksum holds (Luhn, ISO 7064 mod 97; Presidio checks
both, and ``luhn_valid``/``iban_valid`` here check again, so a 16-digit product code is left
alone whatever Presidio's version does).

With ``off`` nothing here imports Presidio.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

if TYPE_CHECKING:
    from spacy.tokens import Doc

PiiPolicy = Literal["off", "flag", "redact", "drop"]
POLICIES: tuple[str, ...] = get_args(PiiPolicy)
PII_ENV = "MEDIA_ASSETS_PII"
# What is looked for, and the placeholder a redaction leaves (Presidio's entity names).
PLACEHOLDERS: dict[str, str] = {
    "EMAIL_ADDRESS": "[EMAIL]",
    "PHONE_NUMBER": "[PHONE]",
    "PERSON": "[PERSON]",
    "CREDIT_CARD": "[CREDIT_CARD]",
    "IBAN_CODE": "[IBAN]",
    "IP_ADDRESS": "[IP_ADDRESS]",
}
PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))
# Presidio's phone recognizer scores a bare number 0.4 (more with a word such as "call" near it);
# names from NER 0.85; checksum-valid cards and IBANs 1.0.
SCORE_THRESHOLD = 0.35
# Regions whose numbering plans phone numbers are read by.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IE", "IT", "ES", "NL", "CA", "AU", "IN")


def parse_policy(value: str | None) -> PiiPolicy:
    """The policy ``MEDIA_ASSETS_PII`` names (unset or empty: ``off``)."""
    policy = (value or "off").strip().lower()
    if policy not in POLICIES:
        raise ValueError(
            f"{PII_ENV}={value!r} is not a PII policy: use one of {', '.join(POLICIES)} "
            "(off: no check; flag: index as is, with counts; redact: replace the spans; "
            "drop: do not index chunks that hold any)"
        )
    return cast(PiiPolicy, policy)


@dataclass(frozen=True)
class PiiSpan:
    start: int
    end: int
    type: str  # a key of PLACEHOLDERS
    score: float


def luhn_valid(number: str) -> bool:
    """Whether the digits of ``number`` (13-19 of them) pass the Luhn check of card numbers."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (spaces allowed) passes ISO 13616's mod-97 check."""
    compact = re.sub(r"[\s-]", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def plausible_name(text: str) -> bool:
    """Whether a span the NER calls a person reads like a name: capitalised words, no digits
    (the small model also calls "node" in "render node", or "RN-20", a person)."""
    words = text.split()
    return (
        not any(c.isdigit() for c in text)
        and any(w[:1].isupper() for w in words)
        and all(w[:1].isupper() or (w.islower() and len(w) <= 3) for w in words)
    )


# Findings that count only when they pass: checksums for numbers, the shape of a name.
_CHECKS = {"CREDIT_CARD": luhn_valid, "IBAN_CODE": iban_valid, "PERSON": plausible_name}


@cache
def _analyzer() -> tuple[Any, Any]:
    """Presidio's analyzer over the project's spaCy pipeline, with only the recognizers the gate
    uses; and its NLP engine, which turns a spaCy doc into what the recognizers read."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    from media_assets.enrich import SPACY_PACKAGE, language

    # The bundled public-suffix snapshot: tldextract's default fetches the list from the web.
    suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return suffixes(pattern_text.rsplit("@", 1)[-1]).fqdn != ""

    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_PACKAGE}])
    engine.nlp = {"en": language()}  # the loaded pipeline: Presidio would load it again
    registry = RecognizerRegistry(
        recognizers=[
            OfflineEmailRecognizer(),
            PhoneRecognizer(supported_regions=PHONE_REGIONS),
            CreditCardRecognizer(),
            IbanRecognizer(),
            IpRecognizer(),
            SpacyRecognizer(supported_entities=["PERSON"]),
        ],
        supported_languages=["en"],
    )
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"]), engine


def find_pii(text: str, doc: Doc) -> list[PiiSpan]:
    """Personal data in ``text`` (``doc`` is it run through ``enrich.language()`` with every
    component on), as spans that do not overlap: of overlapping findings the surer, then the
    longer, wins."""
    if not text.strip():
        return []
    analyzer, engine = _analyzer()
    found = analyzer.analyze(
        text,
        language="en",
        entities=list(PLACEHOLDERS),
        score_threshold=SCORE_THRESHOLD,
        nlp_artifacts=engine._doc_to_nlp_artifact(doc, "en"),
    )
    spans = [
        PiiSpan(r.start, r.end, r.entity_type, float(r.score))
        for r in found
        if r.entity_type in PLACEHOLDERS and _CHECKS.get(r.entity_type, bool)(text[r.start : r.end])
    ]
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def redact(text: str, spans: Iterable[PiiSpan]) -> str:
    """``text`` with each span replaced by its placeholder (``[EMAIL]``, ``[PHONE]``…)."""
    out, at = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        out.append(text[at : span.start])
        out.append(PLACEHOLDERS[span.type])
        at = span.end
    out.append(text[at:])
    return "".join(out)


def count(spans: Iterable[PiiSpan]) -> dict[str, int]:
    """Findings per type, e.g. ``{"EMAIL_ADDRESS": 2}``."""
    return dict(sorted(Counter(s.type for s in spans).items()))


def add_counts(total: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    merged = Counter(total)
    merged.update(more)
    return dict(sorted(merged.items()))
