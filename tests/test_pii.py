"""The PII gate (``MEDIA_ASSETS_PII``) through Dagster: two pages and a captioned call holding
e-mail addresses, phone numbers, Luhn-valid card numbers, IBANs, people's names and IP addresses,
beside prices, a product code that fails Luhn, an IBAN-shaped misprint, dates and version numbers
that must survive (media_assets/demo/pii_corpus.py).

One batch is ingested under ``redact``; then the policy changes to ``drop``, and only the stages
from the chunks on run again. Tests run in file order (``Phases``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from media_assets import pii
from media_assets.assets.tail import EMBEDDING_SIDECARS
from media_assets.chunks import embedding_text
from media_assets.definitions import build_definitions
from media_assets.demo import pii_corpus
from media_assets.demo.server import SiteServer
from media_assets.enrich import enrich_chunks
from media_assets.ingest import IngestReport, ingest
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import ROOT, Phases, needs_chromium

pytestmark = needs_chromium
REDACT, DROP, FLAG = "redact", "drop", "flag"


@dataclass
class Corpus:
    site: SiteServer
    env: dict[str, str]
    instance: dg.DagsterInstance
    manifest: Path
    report: IngestReport
    defs: dg.Definitions
    phases: Phases = field(default_factory=lambda: Phases(REDACT))

    def key(self, path: str) -> str:
        return partition_key(self.site.base_url + path)

    def rerun(self, policy: str) -> IngestReport:
        """The batch under another policy: what the UI shows stale is run again."""
        self.env = {**self.env, pii.PII_ENV: policy}
        self.defs = build_definitions(self.env)
        self.phases.advance(policy)
        return ingest(self.manifest, self.defs, self.instance, stale=True)

    def rows(self, path: str) -> list[dict[str, Any]]:
        return self.defs.resources["vector_index"].rows(self.key(path))  # type: ignore[union-attr]

    def moment_rows(self) -> list[dict[str, Any]]:
        index = self.defs.resources["moments_index"]
        return index.rows(self.key(pii_corpus.VIDEO_PAGE))  # type: ignore[union-attr]

    def artifact(self, asset: str, path: str) -> dict[str, Any]:
        store = self.defs.resources["object_store"]
        sidecars = {"sidecars": EMBEDDING_SIDECARS} if asset.endswith("_embeddings") else {}
        artifacts = ArtifactStore(store, dg.AssetKey(asset), sidecars)  # type: ignore[arg-type]
        return artifacts.read(self.key(path))


@pytest.fixture(scope="module")
def corpus(
    module_site: SiteServer,
    module_site_dir: Path,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> Corpus:
    pii_corpus.write_site(module_site_dir)
    base = module_site.base_url
    manifest = module_tmp / "pii.jsonl"
    lines = [json.dumps({"url": base + p, "kind": "web"}) for p in pii_corpus.PAGES]
    lines.append(json.dumps({"url": base + pii_corpus.VIDEO_PAGE, "kind": "video"}))
    manifest.write_text("\n".join(lines) + "\n")
    env = {**module_env, pii.PII_ENV: REDACT}
    defs = build_definitions(env)
    report = ingest(manifest, defs, module_instance)
    return Corpus(module_site, env, module_instance, manifest, report, defs)


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r.get(f) or "") for r in rows for f in ("text", "title", "section")]


def _placeholders(texts: list[str]) -> int:
    return sum(len(pii.PLACEHOLDER.findall(t)) for t in dict.fromkeys(texts))


def test_redact_replaces_every_planted_item_and_keeps_its_neighbours(corpus: Corpus) -> None:
    corpus.phases.expect(REDACT)
    statuses = corpus.report.statuses
    assert statuses["web"]["indexed"] == 2 and statuses["video"]["indexed"] == 1
    web = [r for p in pii_corpus.PAGES for r in corpus.rows(p)]
    video = corpus.rows(pii_corpus.VIDEO_PAGE)
    texts = _texts(web) + _texts(video)
    # Redactions counted in the chunk text (a video's section repeats its first words).
    made = _placeholders([r["text"] for r in web + video])
    result = pii_corpus.score(texts, placeholders=made)
    print(f"\nPII gate, redact, web and video chunks: {result.line()}")
    assert [p.text for p in result.missed] == []
    assert result.lost == [] and result.false_redactions == 0
    joined = " ".join(texts)
    for placeholder in pii.PLACEHOLDERS.values():
        assert placeholder in joined
    assert {r["pii_policy"] for r in web + video} == {REDACT}
    billing = next(r for r in web if r["section"] and "Billing" in r["section"])
    assert json.loads(billing["pii"]) == {"CREDIT_CARD": 2, "IBAN_CODE": 2}


def test_the_vector_is_the_redacted_texts(corpus: Corpus) -> None:
    corpus.phases.expect(REDACT)
    chunks = corpus.artifact("web_chunks", "/pii/contacts.html")["chunks"]
    people = next(c for c in chunks if "[EMAIL]" in c["text"])
    vectors = corpus.artifact("web_embeddings", "/pii/contacts.html")["vectors"]
    stored = np.asarray(vectors["vector"][list(vectors["chunk_id"]).index(people["chunk_id"])])
    embedder = corpus.defs.resources["embedder"]
    original = people["text"].replace("[PERSON]", "Jane Doe", 1)
    redacted, unredacted = embedder.embed_documents(  # type: ignore[union-attr]
        [embedding_text(people), embedding_text({**people, "text": original})]
    )
    assert np.allclose(stored, redacted, atol=1e-4)
    assert not np.allclose(stored, unredacted, atol=1e-4)


def test_the_moments_of_the_call_are_redacted_too(corpus: Corpus) -> None:
    corpus.phases.expect(REDACT)
    rows = corpus.moment_rows()
    texts = [str(r[f] or "") for r in rows for f in ("said", "context", "annotations", "card")]
    sentences = list(dict.fromkeys(r["context"] for r in rows if r["context"]))
    result = pii_corpus.score(
        sentences,
        pii_corpus.SPOKEN_PLANTED,
        placeholders=_placeholders(sentences),
        neighbours=pii_corpus.SPOKEN_NON_PII,
    )
    print(f"PII gate, redact, moments: {result.line()}")
    assert result.missed == [] and result.false_redactions == 0
    assert all(p.text not in t for p in pii_corpus.SPOKEN_PLANTED for t in texts)
    assert any("[CREDIT_CARD]" in t for t in texts) and any("$49.99" in t for t in texts)
    fused = corpus.artifact("video_moments", pii_corpus.VIDEO_PAGE)
    assert fused["pii_policy"] == REDACT and fused["pii_found"]["EMAIL_ADDRESS"] == 1


def test_drop_reruns_from_the_chunks_and_leaves_out_chunks_with_personal_data(
    corpus: Corpus,
) -> None:
    rendered = corpus.artifact("rendered_page", "/pii/contacts.html")["_artifact"]["run_id"]
    transcript = corpus.artifact("transcript", pii_corpus.VIDEO_PAGE)["_artifact"]["run_id"]
    report = corpus.rerun(DROP)
    # The policy is in the gated stages' code version: every URL is stale, and runs again.
    assert report.ok and report.stale_partitions == {
        corpus.key(p) for p in [*pii_corpus.PAGES, pii_corpus.VIDEO_PAGE]
    }
    # What the policy does not touch is reused: no page rendered, no captions read again.
    assert corpus.artifact("rendered_page", "/pii/contacts.html")["_artifact"]["run_id"] == rendered
    assert corpus.artifact("transcript", pii_corpus.VIDEO_PAGE)["_artifact"]["run_id"] == transcript
    chunks = corpus.artifact("web_chunks", "/pii/contacts.html")
    assert chunks["_artifact"]["run_id"] != rendered and chunks["enrichment"]["pii_dropped"] == 3
    # Every section of the contact page holds personal data; the catalogue holds none.
    contacts = corpus.rows("/pii/contacts.html")
    assert all(r["pii_policy"] == DROP and json.loads(r["pii"]) == {} for r in contacts)
    assert not any("Billing" in (r["section"] or "") for r in contacts)
    catalogue = " ".join(r["text"] for r in corpus.rows("/pii/catalogue.html"))
    assert "1234 5678 9012 3456" in catalogue and "GB83 WEST 1234 5698 7654 32" in catalogue
    said = " ".join(r["context"] for r in corpus.moment_rows())
    assert "Alice Johnson" not in said and "$49.99" in said
    # The UI shows what was dropped, on the partition's materialization.
    materializations = corpus.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("web_chunks"),
            asset_partitions=[corpus.key("/pii/contacts.html")],
        ),
        limit=1,
    ).records
    metadata = materializations[0].asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["pii_dropped_chunks"].value == 3


def test_flag_keeps_the_text_and_counts_per_type() -> None:
    chunks = [{"text": text} for text in _paragraphs(pii_corpus.CONTACT_PAGE)]
    flagged = enrich_chunks(chunks, FLAG)
    assert [c["text"] for c in flagged.chunks] == [c["text"] for c in chunks]
    assert {c["pii_policy"] for c in flagged.chunks} == {FLAG}
    assert [c["pii"] for c in flagged.chunks] == [
        {"EMAIL_ADDRESS": 2, "PERSON": 2, "PHONE_NUMBER": 2},
        {"CREDIT_CARD": 2, "IBAN_CODE": 2},
        {"IP_ADDRESS": 2},
    ]
    assert flagged.summary["pii_chunks"] == 3 and flagged.summary["pii_dropped"] == 0


def _paragraphs(html: str) -> list[str]:
    """Each section of a corpus page as its chunk reads: heading, blank line, paragraph."""
    sections = re.findall(r"<h2>(.*?)</h2>\s*<p>(.*?)</p>", html, re.S)
    return [f"{h}\n\n{' '.join(p.split())}" for h, p in sections]


def test_an_unknown_policy_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MEDIA_ASSETS_PII='mask' is not a PII policy"):
        build_definitions({"MEDIA_ASSETS_DATA": str(tmp_path), pii.PII_ENV: "mask"})


def test_with_the_gate_off_presidio_is_never_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from media_assets.definitions import build_definitions\n"
        "from media_assets.enrich import enrich_chunks\n"
        f"build_definitions({{'MEDIA_ASSETS_DATA': {str(tmp_path)!r}}})\n"
        "chunk = {'text': 'Jane Doe wrote to jane.doe@example.com.', 'content_sha256': 'x'}\n"
        "found = enrich_chunks([chunk], 'off').chunks[0]\n"
        "assert found['pii'] == {} and found['entities'], found\n"
        "print(sorted(m for m in sys.modules if m.startswith('presidio')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_card_and_iban_checksums() -> None:
    assert pii.luhn_valid("4111 1111 1111 1111") and pii.luhn_valid("5500-0000-0000-0004")
    assert not pii.luhn_valid("4111 1111 1111 1112") and not pii.luhn_valid("1234 5678")
    assert pii.iban_valid("GB82 WEST 1234 5698 7654 32")
    assert pii.iban_valid("DE89 3704 0044 0532 0130 00")
    assert not pii.iban_valid("GB83 WEST 1234 5698 7654 32")
    assert pii.plausible_name("Jane Doe") and pii.plausible_name("Ludwig van Beethoven")
    assert not pii.plausible_name("node") and not pii.plausible_name("RN-20")
