"""Main-content extraction on real article pages against their human-labelled bodies."""

import gzip
import json

from media_assets.quality import shingle_f1
from media_assets.web.chunk import chunk_page
from media_assets.web.extract import extract_elements
from tests.helpers import EVAL_DIR, needs_eval

pytestmark = needs_eval


def test_indexed_text_matches_the_article_bodies() -> None:
    folder = EVAL_DIR / "web-articles"
    truth = json.loads((folder / "ground-truth.json").read_text())
    pairs = []
    for key, item in truth.items():
        html = gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8")
        chunks = chunk_page(
            extract_elements(html, item["url"]),
            source_key=key[:16],
            source_url=item["url"],
            page_url=item["url"],
            title=None,
        )
        pairs.append(("\n".join(c.text for c in chunks), item["articleBody"]))
    score = shingle_f1(pairs)
    # trafilatura's defaults score 0.951 on these pages; the pipeline must not fall below that.
    assert score.f1 >= 0.951, score
    assert score.precision >= 0.95 and score.recall >= 0.94, score
