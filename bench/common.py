"""Helpers the benchmarks share: the eval folder, synthetic JS-rendered sites, timing."""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = ROOT.parent / "shared" / "eval"
WORDS = [
    "river",
    "harbour",
    "lantern",
    "winter",
    "colony",
    "starter",
    "bridge",
    "gauge",
    "rainfall",
    "engineer",
    "council",
    "cyclist",
    "battery",
    "island",
    "forest",
    "meadow",
    "signal",
    "orbit",
    "copper",
    "granite",
    "valley",
    "market",
    "festival",
    "library",
    "station",
    "garden",
    "ferry",
    "tunnel",
    "summit",
    "glacier",
    "canyon",
    "prairie",
    "delta",
    "lagoon",
    "meteor",
    "compass",
]

SPA_SHELL = """<!doctype html><html lang="en">
<head><meta charset="utf-8"><title>Loading</title></head><body><div id="app"></div><script>
fetch("/api/{n}.json").then(r => r.json()).then(p => {{
  document.title = p.title;
  let html = '<nav><a href="/">Home</a> <a href="/about">About</a></nav>';
  html += '<main><h1>' + p.title + '</h1>';
  for (const s of p.sections) {{
    html += '<h2 id="' + s.id + '">' + s.heading + '</h2>';
    for (const para of s.paragraphs) html += '<p>' + para + '</p>';
  }}
  document.getElementById("app").innerHTML = html + '</main><footer>© 2026</footer>';
}});
</script></body></html>"""


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def write_spa_site(folder: Path, pages: int, seed: int = 7) -> list[str]:
    """``pages`` single-page-app pages whose text arrives by fetch; returns their paths."""
    rng = random.Random(seed)
    (folder / "api").mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(pages):
        # Sizes spread around a news article's median of about 3 KB of text.
        sections = [
            {
                "id": f"s{i}",
                "heading": sentence(rng, 4)[:-1],
                "paragraphs": [
                    " ".join(sentence(rng, rng.randint(10, 16)) for _ in range(rng.randint(3, 5)))
                    for _ in range(rng.randint(1, 3))
                ],
            }
            for i in range(rng.randint(2, 6))
        ]
        doc = {"title": f"Page {n}: {sentence(rng, 5)[:-1]}", "sections": sections}
        (folder / "api" / f"{n}.json").write_text(json.dumps(doc))
        (folder / f"page-{n}.html").write_text(SPA_SHELL.format(n=n))
        paths.append(f"/page-{n}.html")
    (folder / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return paths
