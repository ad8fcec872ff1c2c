"""Moment search at scale: p50/p95 latency of ``find_moments`` (the code behind
``media-assets moments``) over a LanceDB moments index of 1,000,000 one-second buckets.

    .venv/bin/python bench/moments_scale.py [--buckets 1000000] [--dir data/moments-scale]
                                            [--queries 24] [--warmup 3] [--rebuild] [--workers 2]

The rows are synthetic but made by the pipeline's own code: each of ``buckets / 500`` videos of
500 s gets timed annotations (ASR words of spoken sentences, speaker turns, slides read by OCR
with their uncertain edges, scenes, key frames, chapters), fused into 1 s buckets by
``media_assets.video.moments.fuse`` and turned into index rows by ``moment_rows``, as the
``video_moments_index`` asset does. Sentences (a pool of 3,000) are real English words from the
embedder's own vocabulary, 6,000 of them with Zipf frequencies, and function words; slides name
less common words; speakers have made-up names (``--workers`` processes make the rows). Every
row's vector
is its sentence's embedding by the real embedder (MiniLM, 384-d), perturbed per video (cosine
~0.97 with the original) so repeated sentences are near but not identical, as in real speech.

The table is written in batches of 50,000 rows (one-off; its time is reported on its own), then
``LanceDBMomentsIndex.update_indices`` builds the indexes a table of that size gets in
production. A second run with the same ``--dir`` reuses the table. Then a few videos are
upserted again through ``replace_source`` (the production write, which keeps the indexes up to
date) and checked, and the queries run: said only, on screen only, said + on screen, speaker +
said, ``--queries`` of each after ``--warmup`` excluded ones. Said and on-screen phrases are taken
from random rows (a part of the sentence spoken there, the slide with one letter misread now and
then), so each query knows what its answer must hold; ``found`` is the share of queries whose
top moment holds it (the same sentence is said in ~40 videos, so any of them is right). ``cpu``
is the process's CPU time per query (all threads: a query's searches run at once), which other
users of the machine inflate less than the wall-clock time. To compare two versions of the code
on a shared machine, run them alternately in the same minutes (each run rewrites three videos,
so the queries drawn by offset differ from one run to the next).

Last line: buckets=<n> p50_ms=<> p95_ms=<>
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from media_assets.moments import Moment, MomentQuery, find_moments
from media_assets.video.moments import (
    ModelId,
    frame_annotations,
    fuse,
    moment_rows,
    on_screen_annotations,
    scene_annotations,
    speaker_annotations,
    speech_annotations,
)
from media_assets.video.terms import STOPWORDS, normalize
from resources import embedder_from
from resources.embedder import Embedder, default_model_path
from resources.moments_index import MOMENT_FIELDS, LanceDBMomentsIndex

VIDEO_S = 500
BATCH_ROWS = 50_000
VOCABULARY = 6_000
SENTENCES = 3_000
SLIDES = 2_000
SPEAKERS = 300
FUNCTION_WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "we",
    "it",
    "this",
    "for",
    "on",
    "with",
    "as",
    "you",
    "at",
    "be",
    "so",
]
SPEECH = ModelId("faster-whisper", "tiny.en:int8")
DIARIZER = ModelId("resemblyzer", "0.1.4")
OCR = ModelId("tesseract", "eng")
SAMPLER = ModelId("ffmpeg", "scene>0.3,every 10.0s,max 120")
CHAPTERS = ModelId("chapters", "embedding-shift")
CLOCK_S = 10.0
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Corpus:
    """What videos are made of: sentences (with their vectors), slide titles, speaker names."""

    sentences: list[str]
    vectors: np.ndarray  # one per sentence, and the last for "" (a bucket where nobody speaks)
    slides: list[str]
    speakers: list[str]


def _word(rng: random.Random) -> str:
    syllables = [
        rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") + rng.choice(["", "n", "r", "l"])
        for _ in range(rng.randint(2, 3))
    ]
    return "".join(syllables)


def english_words(count: int) -> list[str]:
    """The embedder's own whole English words, most frequent first (BERT's vocabulary is in
    rough frequency order past its special tokens), without stop words: sentences of real words
    are as far apart for MiniLM as unrelated sentences of a talk (cosine ~0.1-0.3); made-up
    words are not (~0.5)."""
    vocab = (Path(default_model_path()) / "vocab.txt").read_text().split()
    whole = [w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 3]
    return [w for w in whole if w not in STOPWORDS][:count]


def corpus(embedder: Embedder, cache: Path, seed: int = 12) -> Corpus:
    """The made-up vocabulary's sentences, slides and names; the sentences' vectors are kept in
    ``cache`` (embedding 3,000 sentences takes a minute here)."""
    rng = random.Random(seed)
    words = english_words(VOCABULARY)
    weights = [1 / (rank + 1) ** 1.05 for rank in range(len(words))]  # Zipf

    def phrase(n: int) -> list[str]:
        return rng.choices(words, weights, k=n)

    sentences = []
    for _ in range(SENTENCES):
        content = phrase(rng.randint(5, 11))
        out = []
        for w in content:
            if rng.random() < 0.5:
                out.append(rng.choice(FUNCTION_WORDS))
            out.append(w)
        sentences.append(" ".join(out).capitalize() + ".")
    # Slides name their subject: less common words than speech is made of.
    slides = [" ".join(rng.sample(words[100:], rng.randint(2, 5))).title() for _ in range(SLIDES)]
    speakers = [f"{_word(rng).title()} {_word(rng).title()}" for _ in range(SPEAKERS)]
    cached = cache / f"corpus-{seed}-{embedder.model_id.replace('/', '_')}.npy"
    if cached.is_file():
        vectors = np.load(cached)
    else:
        vectors = np.asarray(embedder.embed_documents([*sentences, ""]), dtype=np.float32)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)
    return Corpus(sentences, vectors, slides, speakers)


def source_key(n: int) -> str:
    return f"synthetic-talk-{n:07d}-{n:016x}"


def video(n: int, c: Corpus) -> tuple[list[dict], np.ndarray]:
    """One synthetic talk's index rows (by the pipeline's fusion) and their vectors."""
    rng = random.Random(n)
    key = source_key(n)
    url = f"https://videos.example.com/talk/{n}"
    people = rng.sample(c.speakers, rng.randint(1, 3))
    words, turns, spoken = [], [], []
    t = rng.uniform(0.0, 3.0)
    while t < VIDEO_S - 5:
        s = rng.randrange(len(c.sentences))
        tokens = c.sentences[s].split()
        step = rng.uniform(0.3, 0.5)
        start = t
        for token in tokens:
            words.append(
                {
                    "start_s": round(t, 3),
                    "end_s": round(t + step * 0.9, 3),
                    "text": token,
                    "probability": round(rng.uniform(0.6, 1.0), 3),
                }
            )
            t += step
        spoken.append((start, t, s))
        t += rng.uniform(0.2, 2.5)  # pauses; silence now and then
        if rng.random() < 0.05:
            t += rng.uniform(3, 15)
    t = 0.0
    while t < VIDEO_S:
        end = min(VIDEO_S, t + rng.uniform(20, 90))
        turns.append(
            {"start_s": round(t, 3), "end_s": round(end, 3), "speaker": rng.choice(people)}
        )
        t = end
    cuts, spans, t = [0.0], [], 0.0
    while t < VIDEO_S:
        end = min(float(VIDEO_S), t + rng.uniform(15, 60))
        for title in rng.sample(c.slides, rng.randint(1, 2)):
            spans.append({"start_s": round(t, 3), "end_s": round(end, 3), "text": title})
        cuts.append(round(end, 3))
        t = end
    frames = [
        {"time_s": float(f), "scene_cut": f in cuts, "scene_score": 0.5, "key": f"{key}/{f}.jpg"}
        for f in sorted(set(cuts[:-1]) | {float(x) for x in range(0, VIDEO_S, int(CLOCK_S))})
    ]
    chapter_edges = sorted(rng.sample(range(60, VIDEO_S - 60), rng.randint(2, 5)))
    chapters = [
        {"start_s": float(a), "end_s": float(b), "title": rng.choice(c.slides)}
        for a, b in zip([0, *chapter_edges], [*chapter_edges, VIDEO_S], strict=True)
    ]
    annotations = [
        *speech_annotations(key, words, SPEECH),
        *speaker_annotations(key, turns, DIARIZER),
        *on_screen_annotations(key, spans, cuts[1:-1], CLOCK_S, VIDEO_S, OCR),
        *scene_annotations(key, frames, VIDEO_S, SAMPLER),
        *frame_annotations(key, frames, SAMPLER),
        *[
            CHAPTERS.annotation(key, "chapter", ch["start_s"], ch["end_s"], ch["title"])
            for ch in chapters
        ],
    ]
    rows = moment_rows(
        fuse(key, annotations, VIDEO_S), source_url=url, title=f"Talk {n}", extractor="generic"
    )
    # One vector per sentence spoken in this video, as index_moments embeds each sentence once.
    index = {c.sentences[s]: s for _, _, s in spoken}
    noise = np.random.default_rng(n)
    own: dict[str, np.ndarray] = {"": c.vectors[-1]}
    for sentence, s in index.items():
        v = c.vectors[s] + noise.normal(0, 0.012, c.vectors.shape[1]).astype(np.float32)
        own[sentence] = v / np.linalg.norm(v)
    vectors = np.vstack([own.get(r.context, c.vectors[-1]) for r in rows])
    # Shallow: ``MomentRow.record`` (dataclasses.asdict) copies every list again.
    records = [
        {**{f.name: getattr(r, f.name) for f in fields(r)}, "embedding_model": EMBEDDING_MODEL}
        for r in rows
    ]
    return records, vectors


_CORPUS: Corpus | None = None


def _init_worker(c: Corpus) -> None:
    global _CORPUS
    _CORPUS = c


def _video_in_worker(n: int) -> tuple[list[dict], np.ndarray]:
    assert _CORPUS is not None
    return video(n, _CORPUS)


def batches(videos: range, c: Corpus, workers: int) -> Iterator[tuple[list[dict], np.ndarray]]:
    """The videos' rows and vectors, ``BATCH_ROWS`` at a time, made by ``workers`` processes."""
    rows: list[dict] = []
    vectors: list[np.ndarray] = []
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (c,)) as pool:
        for r, v in pool.imap(_video_in_worker, videos, chunksize=8):
            rows += r
            vectors.append(v)
            if len(rows) >= BATCH_ROWS:
                yield rows, np.vstack(vectors)
                rows, vectors = [], []
    if rows:
        yield rows, np.vstack(vectors)


def build(index: LanceDBMomentsIndex, buckets: int, c: Corpus, workers: int) -> int:
    """Write ``buckets`` rows (whole videos) in batches; the rows written."""
    import pyarrow as pa

    written, writing = 0, 0.0
    started = time.perf_counter()
    for rows, vectors in batches(range(max(1, buckets // VIDEO_S)), c, workers):
        began = time.perf_counter()
        table = index.create_table(vectors.shape[1])
        columns = {name: [row.get(name) for row in rows] for name, _ in MOMENT_FIELDS}
        columns["vector"] = list(vectors.astype(np.float32))
        table.add(pa.Table.from_pydict(columns, schema=table.schema))
        writing += time.perf_counter() - began
        written += len(rows)
        print(
            f"  {written:,} rows, {time.perf_counter() - started:.0f} s "
            f"({writing:.0f} s of it writing)",
            flush=True,
        )
    return written


def _misread(text: str, rng: random.Random) -> str:
    """OCR noise: one letter of a longer word replaced, half the time."""
    if rng.random() < 0.5:
        return text
    i = rng.randrange(len(text))
    if not text[i].isalpha():
        return text
    return text[:i] + rng.choice(string.ascii_lowercase) + text[i + 1 :]


def _phrase(sentence: str, rng: random.Random) -> str:
    tokens = sentence.rstrip(".").split()
    n = min(len(tokens), rng.randint(3, 6))
    first = rng.randrange(len(tokens) - n + 1)
    return " ".join(tokens[first : first + n])


def queries(
    index: LanceDBMomentsIndex, kind: str, count: int, seed: int
) -> list[tuple[MomentQuery, dict[str, str]]]:
    """``count`` queries of one kind, each from a random bucket that satisfies it, with what
    the answer must hold (the phrase said, the slide as written, the speaker)."""
    table = index.open_table()
    rng = random.Random(seed)
    total = table.count_rows()
    out: list[tuple[MomentQuery, dict[str, str]]] = []
    while len(out) < count:
        picks = sorted(rng.sample(range(total), 64))
        columns = ["source_key", "bucket", "context", "on_screen", "speakers"]
        for row in table.take_offsets(picks).select(columns).to_list():
            shown = [s for s in (row["on_screen"] or "").split(" | ") if s]
            truth = {
                "said": _phrase(row["context"], rng) if row["context"] else "",
                "on_screen": rng.choice(shown) if shown else "",
                "speaker": rng.choice(row["speakers"]) if row["speakers"] else "",
            }
            wanted = {
                "said": ["said"],
                "on_screen": ["on_screen"],
                "said+on_screen": ["said", "on_screen"],
                "speaker+said": ["said", "speaker"],
            }[kind]
            if not all(truth[c] for c in wanted):
                continue
            asked = {c: truth[c] for c in wanted}
            if "on_screen" in asked:
                asked["on_screen"] = _misread(asked["on_screen"], rng)
            out.append((MomentQuery(**asked), {c: truth[c] for c in wanted}))
            if len(out) == count:
                break
    return out


def holds(moment: Moment, truth: dict[str, str]) -> bool:
    """Whether a moment answers the query: the phrase in its sentence, the slide on screen and
    the speaker speaking in it. (The same sentence is said in about 40 of the videos: any of
    them is a right answer.)"""
    return (
        normalize(truth.get("said", "")) in normalize(moment.said)
        and (not truth.get("on_screen") or truth["on_screen"] in moment.on_screen)
        and (not truth.get("speaker") or truth["speaker"] in moment.speakers)
    )


def upsert_check(index: LanceDBMomentsIndex, c: Corpus, videos: int) -> list[float]:
    """Write a few videos again through ``replace_source`` (shortened by 10 buckets, so the
    upsert both updates and deletes); check each then holds exactly its new rows. Seconds each."""
    seconds = []
    for n in range(videos):
        rows, vectors = video(n, c)
        rows, vectors = rows[:-10], vectors[:-10]
        started = time.perf_counter()
        index.replace_source(source_key(n), rows, vectors)
        seconds.append(time.perf_counter() - started)
        stored = index.rows(source_key(n))
        if sorted(r["bucket"] for r in stored) != [r["bucket"] for r in rows]:
            raise RuntimeError(
                f"upsert of {source_key(n)} left {len(stored)} rows, not {len(rows)}"
            )
    return seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buckets", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="table location (default: a temp dir)")
    parser.add_argument("--queries", type=int, default=24, help="measured queries per kind")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured queries per kind")
    parser.add_argument("--rebuild", action="store_true", help="write the table again")
    parser.add_argument("--workers", type=int, default=2, help="processes making the rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-moments-scale-") as tmp:
        folder = (args.dir or Path(tmp)).absolute()
        run(folder, args)


def run(folder: Path, args: argparse.Namespace) -> None:
    embedder = embedder_from(os.environ)
    uri = folder / f"index-{args.buckets}"
    index = LanceDBMomentsIndex(uri=str(uri))
    started = time.perf_counter()
    c = corpus(embedder, folder)
    print(f"corpus: {len(c.sentences)} sentences embedded in {time.perf_counter() - started:.1f} s")
    table = index.open_table()
    current = table is not None and set(table.schema.names) == {n for n, _ in MOMENT_FIELDS} | {
        "vector"
    }
    # (upsert_check leaves its videos 10 buckets shorter)
    if args.rebuild or not current or table.count_rows() < args.buckets // VIDEO_S * VIDEO_S - 100:
        if table is not None:
            index.drop_table()
        print(f"writing {args.buckets:,} buckets to {uri}")
        started = time.perf_counter()
        written = build(index, args.buckets, c, args.workers)
        print(f"table: {written:,} rows written in {time.perf_counter() - started:.1f} s")
    else:
        print(f"table: reusing {table.count_rows():,} rows at {uri}")
    started = time.perf_counter()
    built = index.update_indices()
    print(f"indexes: {', '.join(built) or 'up to date'} in {time.perf_counter() - started:.1f} s")
    if built:  # the bulk load's fragments merged once, not by the first upsert
        started = time.perf_counter()
        index.open_table().optimize()
        print(f"compacted in {time.perf_counter() - started:.1f} s")
    writes = upsert_check(index, c, 3)
    print(f"upsert through replace_source: {', '.join(f'{s:.2f}' for s in writes)} s per video")
    table = index.open_table()
    buckets = table.count_rows()
    # Rows written since the last reindex are searched by a scan beside the indexes.
    print(f"rows outside the indexes: {index.unindexed_rows(table, buckets)}")
    print(f"vector search: nprobes {index.nprobes}, refine_factor {index.refine_factor}")

    latencies: dict[str, list[float]] = {}
    found: dict[str, int] = {}
    cpu_ms: dict[str, list[float]] = {}
    embedder.embed_query("warm up")
    for i, kind in enumerate(["said", "on_screen", "said+on_screen", "speaker+said"]):
        asked = queries(index, kind, args.warmup + args.queries, seed=100 + i)
        latencies[kind], cpu_ms[kind], found[kind] = [], [], 0
        for j, (query, truth) in enumerate(asked):
            started, cpu = time.perf_counter(), time.process_time()
            moments = find_moments(query, index, embedder, k=5)
            elapsed = (time.perf_counter() - started) * 1000
            cpu = (time.process_time() - cpu) * 1000
            if j < args.warmup:
                continue
            latencies[kind].append(elapsed)
            cpu_ms[kind].append(cpu)
            found[kind] += bool(moments) and holds(moments[0], truth)
        ms = latencies[kind]
        print(
            f"{kind:>15}: p50 {statistics.median(ms):6.1f} ms  p95 {percentile(ms, 0.95):6.1f} ms"
            f"  cpu p50 {statistics.median(cpu_ms[kind]):6.1f} ms  found {found[kind]}/{len(ms)}"
        )
    every = [v for ms in latencies.values() for v in ms]
    print(
        f"buckets={buckets} p50_ms={statistics.median(every):.1f} "
        f"p95_ms={percentile(every, 0.95):.1f}"
    )


if __name__ == "__main__":
    main()
