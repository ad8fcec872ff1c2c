"""URL normalization, partition keys, and the manifest's handling of bad lines."""

from pathlib import Path

import pytest

from media_assets.manifest import ManifestError, parse_manifest
from partitions.keys import (
    KEY_PATTERN,
    SLUG_LENGTH,
    InvalidURLError,
    key_hash,
    normalize_url,
    partition_key,
)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("HTTP://Example.COM/a/b?b=2&a=1#frag", "http://example.com/a/b?a=1&b=2"),
        ("https://example.com:443/", "https://example.com/"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        (
            "https://example.com/p?utm_source=x&UTM_Medium=y&id=7&fbclid=z",
            "https://example.com/p?id=7",
        ),
        ("  https://example.com./p  ", "https://example.com/p"),
        ("http://[::1]:8000/a", "http://[::1]:8000/a"),
    ],
)
def test_normalization(raw: str, normalized: str) -> None:
    assert normalize_url(raw) == normalized


def test_spellings_of_one_page_share_a_key() -> None:
    key = partition_key("https://example.com/post?id=1")
    assert key.startswith("example.com-post-id-1-") and KEY_PATTERN.match(key)
    for spelling in (
        "HTTPS://EXAMPLE.com:443/post?id=1#comments",
        "https://example.com/post?utm_campaign=spring&id=1",
    ):
        assert partition_key(spelling) == key
    assert partition_key("https://example.com/post?id=2") != key


def test_key_is_stable_across_releases() -> None:
    # A changed key orphans every artifact already stored: this value must never change.
    assert partition_key("https://example.com/") == "example.com-0f115db062b7c0dd"
    assert key_hash(partition_key("https://example.com/")) == "0f115db062b7c0dd"


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("http://127.0.0.1:8765/blog/winter-bees.html", "127.0.0.1-blog-winter-bees"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube.com-watch-v-dqw4w9wgxcq"),
        ("https://example.com/", "example.com"),
        ("https://example.com/Stra%C3%9Fe/%C3%BCber", "example.com-strae-uber"),
        (
            "https://news.example.co.uk/2024/05/12/a-long-title-about-the-harbour-bridge.html",
            "news.example.co.uk-the-harbour-bridge",
        ),
        (f"https://{'a' * 60}.example/some/page", "a" * 20 + "-some-page"),
    ],
)
def test_keys_start_with_a_readable_bounded_slug(url: str, slug: str) -> None:
    key = partition_key(url)
    assert key == f"{slug}-{key_hash(key)}" and KEY_PATTERN.match(key)
    assert len(key) <= SLUG_LENGTH + 1 + 16


@pytest.mark.parametrize(
    "bad",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://x.org/a",
        "not a url",
        "http://",
        "https://user:pw@example.com/",
    ],
)
def test_bad_urls_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidURLError, match=r"\S") as refused:
        normalize_url(bad)
    assert "pw@" not in str(refused.value)


def test_jsonl_manifest_reports_bad_lines_and_keeps_the_rest() -> None:
    text = "\n".join(
        [
            '{"url": "https://example.com/a", "tags": {"team": "docs"}}',
            '{"url": "ftp://example.com/b"}',
            "this is not json",
            '{"url": "HTTPS://example.com/a?utm_source=mail"}',
            "",
            '{"url": "https://example.com/talk.mp4"}',
            '{"url": "https://example.com/c", "kind": "podcast"}',
            '{"url": "https://example.com/d", "kind": "video"}',
        ]
    )
    manifest = parse_manifest(text, "jsonl")
    assert [(e.url, e.kind, e.line) for e in manifest.entries] == [
        ("https://example.com/a", "web", 1),
        ("https://example.com/talk.mp4", "video", 6),
        ("https://example.com/d", "video", 8),
    ]
    assert manifest.entries[0].tags == {"team": "docs"}
    problems = {p.line: p.message for p in manifest.problems}
    assert set(problems) == {2, 3, 4, 7}
    assert "only http and https" in problems[2]
    assert "not valid JSON" in problems[3]
    assert "duplicate of line 1" in problems[4]
    assert "podcast" in problems[7]


def test_csv_manifest() -> None:
    text = "url,kind,tag_team\nhttps://example.com/a,,docs\njavascript:void(0),web,x\n"
    manifest = parse_manifest(text, "csv")
    assert [(e.normalized_url, e.kind, e.tags) for e in manifest.entries] == [
        ("https://example.com/a", "web", {"team": "docs"})
    ]
    assert [p.line for p in manifest.problems] == [3]
    # Without a 'url' column no row can be read: the whole file is refused, not emptied (an
    # empty manifest would tell the sensor to remove every URL).
    with pytest.raises(ManifestError, match="no 'url' column"):
        parse_manifest("address\nhttps://x.org\n", "csv")


def test_key_and_url_map_both_ways_from_the_command_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from media_assets import registry
    from media_assets.manifest import parse_manifest
    from resources import build_resources

    url = "http://127.0.0.1:8765/blog/winter-bees.html"
    env = {**os.environ, "MEDIA_ASSETS_DATA": str(tmp_path / "data")}
    store = build_resources(env)["object_store"]
    registry.register(store, parse_manifest(f'{{"url": "{url}"}}\n', "jsonl").entries)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "media_assets.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.split("\t")[0].strip()

    key = cli("key", url)
    assert key == partition_key(url) and "winter-bees" in key
    assert cli("url", key) == url
    assert cli("url", key_hash(key)) == url  # the bare hash, as older logs show it
