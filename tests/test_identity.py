"""URL normalization, partition keys, and the manifest's handling of bad lines."""

import pytest

from media_assets.manifest import ManifestError, parse_manifest
from partitions.keys import InvalidURLError, normalize_url, partition_key


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
    assert len(key) == 16 and int(key, 16) >= 0
    for spelling in (
        "HTTPS://EXAMPLE.com:443/post?id=1#comments",
        "https://example.com/post?utm_campaign=spring&id=1",
    ):
        assert partition_key(spelling) == key
    assert partition_key("https://example.com/post?id=2") != key


def test_key_is_stable_across_releases() -> None:
    # A changed key orphans every artifact already stored: this value must never change.
    assert partition_key("https://example.com/") == "0f115db062b7c0dd"


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
