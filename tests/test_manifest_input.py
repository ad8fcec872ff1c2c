"""Manifests as people write them, and as a hostile user writes them.

Every bad line must get a message that names its cause, with its line number, while the good
lines of the same file still come through; a file that cannot be read at all must be refused
with its name (never a traceback, never an empty manifest that would tell the sensor to remove
every URL). Everything goes through ``read_manifest``, the one function that both the sensor and
``media-assets ingest`` call, and the unreadable files through the command line itself.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
from pathlib import Path

import pytest

from media_assets import ingest as ingest_module
from media_assets import manifest as manifest_module
from media_assets.manifest import Manifest, ManifestError, read_manifest
from partitions.keys import InvalidURLError, normalize_url, partition_key
from sensors import manifest as sensor_module
from tests.helpers import run_cli

GOOD = ["https://good.example/one", "https://good.example/two"]
SECRET = "hunter2"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def read(tmp_path: Path, name: str, content: str | bytes) -> Manifest:
    manifest, digest = read_manifest(write(tmp_path, name, content))
    assert len(digest) == 64
    return manifest


def jsonl_around(bad_line: str) -> str:
    """A JSON Lines file: a good line, the bad one (line 2), another good line."""
    return f'{{"url": "{GOOD[0]}"}}\n{bad_line}\n{{"url": "{GOOD[1]}"}}\n'


def test_sensor_and_command_line_share_one_reader() -> None:
    assert sensor_module.read_manifest_bytes is manifest_module.read_manifest_bytes
    assert sensor_module.manifest_page is manifest_module.manifest_page  # parse_manifest a page
    assert ingest_module.read_manifest is read_manifest


# --- bad lines: each its own message, the neighbours kept ---------------------------------

LONG_LABEL = "a" * 64
LONG_HOST = ".".join(["b" * 60] * 5)  # 304 characters, every label legal


def url_line(url: str) -> str:
    return json.dumps({"url": url})


BAD_LINES: dict[str, tuple[str, str]] = {
    # JSON Lines shapes and types
    "url a number": ('{"url": 5}', "'url' must be a string, got a number (5)"),
    "url an object": ('{"url": {"href": "x"}}', "'url' must be a string, got an object"),
    "url empty": ('{"url": "  "}', "'url' is empty"),
    "no url, bad kind": ('{"kind": "audio"}', "missing 'url' (it has 'kind')"),
    "url in capitals": (url_line("x").replace("url", "URL"), "missing 'url' (it has 'URL')"),
    "kind unknown": (
        f'{{"url": "{GOOD[0]}/pod", "kind": "podcast"}}',
        "kind 'podcast' is not one of ['web', 'video']",
    ),
    "kind a number": (f'{{"url": "{GOOD[0]}/k", "kind": 3}}', "'kind' must be the string"),
    "tags a list": (f'{{"url": "{GOOD[0]}/t", "tags": ["a"]}}', "'tags' must be an object"),
    "tag an object": (
        f'{{"url": "{GOOD[0]}/t", "tags": {{"team": {{"x": 1}}}}}}',
        "tag 'team' must be a string or a number, got an object",
    ),
    "line an array": (
        f'["{GOOD[0]}/a"]',
        "expected a JSON object with a 'url' field, got an array",
    ),
    "line null": ("null", "expected a JSON object with a 'url' field, got null"),
    "line a number": ("42", "got a number (42)"),
    "broken JSON": ('{"url": "https://x.example/",', "not valid JSON"),
    "bare URL in JSON Lines": ("https://bare.example/", "not valid JSON (Expecting value"),
    "nested too deeply": ("[" * 100_000, "nested too deeply"),
    # URLs
    "credentials": (url_line(f"http://admin:{SECRET}@host.example/"), "credentials (user:"),
    "credentials and a bad port": (
        url_line(f"http://admin:{SECRET}@host.example:99999/"),
        "pass them another way: http://***@host.example:99999/",
    ),
    "host label of 64": (
        url_line(f"https://{LONG_LABEL}.example/"),
        "64 characters long; DNS allows at most 63 per label",
    ),
    "host over 253": (
        url_line(f"https://{LONG_HOST}/"),
        "304 characters long; DNS allows at most 253",
    ),
    "long Unicode label": (url_line(f"https://{'ü' * 64}.example/"), "DNS allows at most 63"),
    "bad punycode": (url_line("https://xn--zz.example/"), "not a valid internationalized domain"),
    "empty label": (url_line("https://a..example/"), "has an empty label"),
    "empty host": (url_line("https:///just/a/path"), "empty host"),
    "empty host with port": (url_line("http://:8080/"), "empty host"),
    "port too big": (url_line("https://p.example:65536/"), "port '65536'"),
    "port zero": (url_line("https://p.example:0/"), "port '0' in"),
    "port not a number": (url_line("https://p.example:http/"), "port 'http' in"),
    "space": (url_line("https://s.example/a b"), "contains space (U+0020)"),
    "tab": (url_line("https://s.exa\tmple/"), "control character (U+0009)"),
    "newline": (url_line("https://s.example/\nx"), "control character (U+000A)"),
    "zero-width space": (url_line("https://s\u200b.example/"), "zero width space (U+200B)"),
    "no-break space": (url_line("https://s.example/\u00a0x"), "no-break space (U+00A0)"),
    "backslash in host": (url_line("https://s.example\\evil/"), "which a host name cannot hold"),
    "quote in host": (url_line('https://s"x.example/'), "contains '\"'"),
    "not an IPv6 address": (url_line("http://[::zz]/"), "IPv4 or IPv6 address"),
    "javascript": (url_line("javascript:alert(1)"), "only http and https"),
    "file": (url_line("file:///etc/passwd"), "unsupported scheme 'file'"),
    "no scheme": (url_line("good.example/three"), "unsupported scheme '(none)'"),
    "duplicate": (url_line("HTTPS://GOOD.example:443/one?utm_source=x"), "duplicate of line 1"),
}


@pytest.mark.parametrize(("bad_line", "expected"), BAD_LINES.values(), ids=list(BAD_LINES))
def test_bad_jsonl_line_is_named_and_the_rest_proceed(
    tmp_path: Path, bad_line: str, expected: str
) -> None:
    manifest = read(tmp_path, "m.jsonl", jsonl_around(bad_line))
    assert [(e.url, e.line) for e in manifest.entries] == [(GOOD[0], 1), (GOOD[1], 3)]
    assert [(p.line, p.severity) for p in manifest.problems] == [(2, "error")]
    assert expected in manifest.problems[0].message
    assert SECRET not in manifest.problems[0].message


def test_a_line_with_several_faults_names_each(tmp_path: Path) -> None:
    manifest = read(tmp_path, "m.jsonl", jsonl_around('{"kind": "audio", "tags": 7}'))
    message = manifest.problems[0].message
    for cause in (
        "missing 'url'",
        "kind 'audio'",
        "'tags' must be an object of name: value, got a number (7)",
    ):
        assert cause in message
    assert len(manifest.entries) == 2


def test_credentials_are_refused_without_echoing_them() -> None:
    for url in (
        f"https://user:{SECRET}@example.com/",
        f"https://{SECRET}@example.com/",
        f"ftp://user:{SECRET}@example.com/",  # refused for its scheme: still not echoed
        f"user:{SECRET}@example.com/page",
    ):
        with pytest.raises(InvalidURLError) as refused:
            normalize_url(url)
        assert SECRET not in str(refused.value)
        assert "***@example.com" in str(refused.value)


def test_valid_hosts_keep_their_keys() -> None:
    # Validation must not change what a valid URL normalizes to: keys already stored stay.
    assert partition_key("https://example.com/") == "example.com-0f115db062b7c0dd"
    assert normalize_url("https://Bücher.example/a") == "https://bücher.example/a"
    assert normalize_url(f"https://{'a' * 63}.example/") == f"https://{'a' * 63}.example/"
    assert normalize_url("https://xn--bcher-kva.example/") == "https://xn--bcher-kva.example/"
    assert normalize_url("http://host_1.example:/") == "http://host_1.example/"


CSV_BAD_ROWS: dict[str, tuple[str, str]] = {
    "unquoted comma": (f"{GOOD[0]}/q?a=1,2,web", "3 fields but the header has 2"),
    "kind unknown": (f"{GOOD[0]}/k,audio", "kind 'audio' is not one of"),
    "credentials": (f"http://u:{SECRET}@c.example/,web", "credentials (user:password@)"),
    "no url cell": (",video", "missing 'url'"),
}


@pytest.mark.parametrize(("bad_row", "expected"), CSV_BAD_ROWS.values(), ids=list(CSV_BAD_ROWS))
def test_bad_csv_row_is_named_and_the_rest_proceed(
    tmp_path: Path, bad_row: str, expected: str
) -> None:
    text = f"url,kind\n{GOOD[0]},web\n{bad_row}\n{GOOD[1]},\n"
    manifest = read(tmp_path, "m.csv", text)
    assert [(e.url, e.line) for e in manifest.entries] == [(GOOD[0], 2), (GOOD[1], 4)]
    assert [p.line for p in manifest.problems] == [3]
    assert expected in manifest.problems[0].message
    assert SECRET not in manifest.problems[0].message


def test_csv_unmatched_quote_says_which_lines_it_swallowed(tmp_path: Path) -> None:
    text = f'url\n{GOOD[0]}\n"https://q.example/\nhttps://lost.example/\n'
    manifest = read(tmp_path, "m.csv", text)
    assert [e.url for e in manifest.entries] == [GOOD[0]]
    [problem] = manifest.problems
    assert problem.line == 3 and "unmatched" in problem.message and "3 to 4" in problem.message


def test_txt_list_bad_lines(tmp_path: Path) -> None:
    text = f"{GOOD[0]}\nnot a url\n{GOOD[1]} see this\nhttps://s.example/{SECRET}@x\n"
    manifest = read(tmp_path, "urls.txt", text)
    assert [(e.url, e.line) for e in manifest.entries] == [
        (GOOD[0], 1),
        (f"https://s.example/{SECRET}@x", 4),  # '@' in the path is no credential
    ]
    problems = {p.line: p.message for p in manifest.problems}
    assert "unsupported scheme '(none)'" in problems[2]
    assert "space (U+0020)" in problems[3]


# --- manifests as people write them --------------------------------------------------------


def test_csv_with_bom_and_crlf_keeps_every_row(tmp_path: Path) -> None:
    text = f"url,kind,tag_team\r\n{GOOD[0]},web,docs\r\n{GOOD[1]},video,\r\n"
    manifest = read(tmp_path, "excel.csv", codecs.BOM_UTF8 + text.encode())
    assert [(e.url, e.kind, e.tags, e.line) for e in manifest.entries] == [
        (GOOD[0], "web", {"team": "docs"}, 2),
        (GOOD[1], "video", {}, 3),
    ]
    assert manifest.problems == []


def test_jsonl_with_bom_keeps_its_first_line(tmp_path: Path) -> None:
    text = "\r\n".join(f'{{"url": "{u}"}}' for u in GOOD) + "\r\n"
    manifest = read(tmp_path, "m.jsonl", codecs.BOM_UTF8 + text.encode())
    assert [(e.url, e.line) for e in manifest.entries] == [(GOOD[0], 1), (GOOD[1], 2)]
    assert manifest.problems == []


def test_files_joined_with_cat_keep_the_second_bom_line(tmp_path: Path) -> None:
    part = codecs.BOM_UTF8 + f'{{"url": "{GOOD[0]}"}}\n'.encode()
    second = codecs.BOM_UTF8 + f'{{"url": "{GOOD[1]}"}}\n'.encode()
    manifest = read(tmp_path, "m.jsonl", part + second)
    assert [e.url for e in manifest.entries] == GOOD and manifest.problems == []


def test_latin1_by_mistake_keeps_the_rows_with_a_warning(tmp_path: Path) -> None:
    text = f"url,tag_city\n{GOOD[0]},Zürich\n{GOOD[1]},Genève\n"
    manifest = read(tmp_path, "m.csv", text.encode("latin-1"))
    assert [(e.url, e.tags) for e in manifest.entries] == [
        (GOOD[0], {"city": "Zürich"}),
        (GOOD[1], {"city": "Genève"}),
    ]
    [warning] = manifest.problems
    assert (warning.line, warning.severity) == (2, "warning")
    assert "not UTF-8" in warning.message and "rows kept" in warning.message


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    text = "url\r\n" + "\r\n".join(GOOD) + "\r\n"
    manifest = read(tmp_path, "notepad.csv", codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert [e.url for e in manifest.entries] == GOOD and manifest.problems == []


def test_txt_list_with_comments_and_blank_lines(tmp_path: Path) -> None:
    text = f"# seeds for March\n\n{GOOD[0]}#section  # the fragment stays\r\n   \n{GOOD[1]}\n"
    manifest = read(tmp_path, "urls.txt", text)
    assert [(e.url, e.line) for e in manifest.entries] == [
        (f"{GOOD[0]}#section", 3),
        (GOOD[1], 5),
    ]
    assert manifest.problems == []


def test_unknown_extension_with_plain_urls_is_a_list(tmp_path: Path) -> None:
    manifest = read(tmp_path, "urls", "\n".join(GOOD) + "\n")
    assert [e.url for e in manifest.entries] == GOOD


def test_unknown_extension_with_json_objects_is_json_lines(tmp_path: Path) -> None:
    manifest = read(tmp_path, "urls.manifest", jsonl_around('{"url": 5}'))
    assert [e.url for e in manifest.entries] == GOOD
    assert [p.line for p in manifest.problems] == [2]


def test_json_array_is_read_with_line_numbers(tmp_path: Path) -> None:
    text = f'[\n  {{"url": "{GOOD[0]}", "kind": "Video"}},\n  "{GOOD[1]}",\n  5\n]\n'
    manifest = read(tmp_path, "m.json", text)
    assert [(e.url, e.kind, e.line) for e in manifest.entries] == [
        (GOOD[0], "video", 2),
        (GOOD[1], "web", 3),
    ]
    assert [(p.line, p.message) for p in manifest.problems] == [
        (4, "expected a JSON object with a 'url' field, got a number (5)")
    ]


def test_spreadsheet_csv_dialects(tmp_path: Path) -> None:
    semicolons = read(tmp_path, "eu.csv", f"URL;Kind\n{GOOD[0]};video\n{GOOD[1]};\n")
    assert [(e.url, e.kind) for e in semicolons.entries] == [(GOOD[0], "video"), (GOOD[1], "web")]
    tabs = read(tmp_path, "m.tsv", f"\n# exported\nkind\turl\n\t{GOOD[0]}\n")
    assert [(e.url, e.line) for e in tabs.entries] == [(GOOD[0], 4)]


# --- files that cannot be read at all ------------------------------------------------------

UNREADABLE: dict[str, tuple[str, bytes | None, str]] = {
    "binary with NUL bytes": ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
    "binary without NUL bytes": ("blob.csv", bytes(range(1, 32)) * 40, "control characters"),
    "broken UTF-16": ("m.csv", codecs.BOM_UTF16_LE + b"u\x00r\x00l", "broken UTF-16"),
    "CSV without a url column": ("m.csv", b"address,kind\nhttps://x.example/,web\n", "no 'url'"),
    "CSV without a header": ("m.csv", b"https://x.example/\nhttps://y.example/\n", "no header"),
    "JSON object over lines": ("m.json", b'{\n "url": "https://x.example/"\n}\n', "one JSON"),
    "prose, unknown extension": ("notes.md", b"Pages to add:\n- the guide\n", "cannot tell"),
    "a directory": ("folder.jsonl", None, "is a directory"),
    "a missing file": ("missing.jsonl", b"", "no such file"),
}


def make_unreadable(tmp_path: Path, name: str, content: bytes | None) -> Path:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif name.startswith("missing"):
        assert not path.exists()
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "expected"), UNREADABLE.values(), ids=list(UNREADABLE))
def test_unreadable_file_is_refused_naming_it(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = make_unreadable(tmp_path, name, content)
    with pytest.raises(ManifestError, match=expected) as refused:
        read_manifest(path)
    assert str(refused.value).startswith(f"manifest {path}")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(fifo)


def test_refusal_names_the_line_where_it_applies(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "\n\naddress\nhttps://x.example/\n")
    with pytest.raises(ManifestError) as refused:
        read_manifest(path)
    assert str(refused.value).startswith(f"manifest {path} line 3: the header row has no 'url'")


def ingest_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`media-assets ingest ARGS` in a fresh home, with no manifest named by the environment."""
    env = {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "MEDIA_ASSETS_DATA": str(tmp_path / "data"),
        "MEDIA_ASSETS_MANIFEST": "",
    }
    return run_cli(env, "ingest", *args, timeout_s=120)


@pytest.mark.parametrize(("name", "content", "expected"), UNREADABLE.values(), ids=list(UNREADABLE))
def test_command_line_refuses_unreadable_file_without_traceback(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = make_unreadable(tmp_path, name, content)
    done = ingest_cli(tmp_path, str(path))
    assert done.returncode == 2, done.stderr
    assert f"error: manifest {path}" in done.stderr and expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "dagster_home").exists()  # refused before any instance was made


def test_command_line_without_a_manifest_says_what_to_pass(tmp_path: Path) -> None:
    done = ingest_cli(tmp_path)
    assert done.returncode == 2
    assert "MEDIA_ASSETS_MANIFEST" in done.stderr and "Traceback" not in done.stderr


def test_command_line_lists_skipped_lines_and_warnings(tmp_path: Path) -> None:
    # Only bad lines (and a Latin-1 caveat), so nothing is fetched: the report is the point.
    lines = ['{"url": "https://s.example/Zürich x"}', f'{{"url": "http://u:{SECRET}@h.example/"}}']
    path = write(tmp_path, "m.jsonl", "\n".join(lines).encode("latin-1"))
    done = ingest_cli(tmp_path, str(path))
    assert done.returncode == 0, done.stderr
    assert f"warning: {path} line 1: not UTF-8" in done.stdout
    assert f"skipped {path} line 1: URL" in done.stdout
    assert f"skipped {path} line 2: credentials (user:password@)" in done.stdout
    assert SECRET not in done.stdout + done.stderr


# --- the sensor reads the same way --------------------------------------------------------
# (The sensor itself runs under the daemon in tests/test_daemon.py; here, what it reads and plans.)


def test_sensor_plans_every_row_of_an_excel_csv(tmp_path: Path) -> None:
    text = f"url\r\n{GOOD[0]}\r\nhttp://u:{SECRET}@h.example/\r\n{GOOD[1]}\r\n"
    path = write(tmp_path, "excel.csv", codecs.BOM_UTF8 + text.encode())
    plan = sensor_module.plan_ingest(read_manifest(path)[0], {}, batch_size=50)
    added = [key for request in plan.partition_requests for key in request.partition_keys]
    assert added == [partition_key(u) for u in GOOD]
    assert plan.bad_lines == 1 and "1 bad line skipped" in plan.summary()


def test_sensor_never_takes_an_unreadable_manifest_for_an_empty_one(tmp_path: Path) -> None:
    # The sensor skips its tick with this message (and plans no removal) when reading fails.
    path = write(tmp_path, "m.csv", b"address\nhttps://x.example/\n")
    with pytest.raises(ManifestError, match="no 'url'") as refused:
        read_manifest(path)
    assert str(path) in str(refused.value)
