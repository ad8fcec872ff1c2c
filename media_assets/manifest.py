"""The URL manifest: JSON Lines, CSV or a bare list of URLs in, validated entries and per-line
problems out.

Manifests are read as people write them: UTF-8 with or without a byte-order mark, UTF-16 with
one, Windows line endings, Latin-1 by mistake (read, with a warning). A line that is wrong is a
problem for that line and the rest proceed; a file that cannot be read at all is a
``ManifestError`` naming the file, never a manifest of zero entries (which the sensor would take
as "remove every URL").
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from partitions.keys import InvalidURLError, normalize_url, normalized_key

Kind = Literal["web", "video"]
KINDS: tuple[Kind, ...] = ("web", "video")
Format = Literal["jsonl", "csv", "list"]
FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "list",
}
FORMAT_HELP = "name it .jsonl (JSON Lines), .csv (with a 'url' column) or .txt (one URL a line)"
MEDIA_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".webm",
        ".mkv",
        ".avi",
        ".mp3",
        ".m4a",
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".aac",
        ".m3u8",
        ".mpd",
    }
)
# Spreadsheets export with commas, semicolons (where the comma is the decimal sign) or tabs.
CSV_DELIMITERS = ",;\t|"
# Text has next to no control characters; a file where one character in 20 is one is binary.
BINARY_CONTROL_SHARE = 0.05
_URL_SHAPE = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
# A '#' starts a comment at the start of a line or after whitespace; inside a URL it is a fragment.
_LIST_COMMENT = re.compile(r"(?:^|\s)#.*")


class ManifestError(ValueError):
    """A manifest that cannot be read at all; the message names the file and, where it applies,
    the line."""

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None) -> None:
        self.reason, self.path, self.line = reason, path, line
        where = f"manifest {path}" if path else "manifest"
        super().__init__(f"{where}{f' line {line}' if line else ''}: {reason}")


@dataclass(frozen=True)
class ManifestEntry:
    url: str
    normalized_url: str
    key: str
    kind: Kind
    line: int
    tags: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        return {
            "url": self.url,
            "normalized_url": self.normalized_url,
            "key": self.key,
            "kind": self.kind,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class ManifestProblem:
    """A line that was skipped (``error``), or read with a caveat (``warning``: rows kept)."""

    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    problems: list[ManifestProblem]

    def by_kind(self, kind: Kind) -> list[ManifestEntry]:
        return [e for e in self.entries if e.kind == kind]


@cache
def _video_extractors() -> tuple[tuple[Any, str], ...]:
    """yt-dlp's site extractors with their URL patterns, without the generic one (it accepts
    any URL) and those for news articles (mostly text around an occasional clip)."""
    from yt_dlp.extractor import gen_extractor_classes

    found = []
    for ie in gen_extractor_classes():
        pattern = getattr(ie, "_VALID_URL", None)
        patterns = pattern if isinstance(pattern, list | tuple) else [pattern]
        text = " ".join(p for p in patterns if isinstance(p, str)).lower()
        if text and ie.ie_key() != "Generic" and "Article" not in ie.ie_key():
            found.append((ie, text))
    return tuple(found)


@cache
def _extractors_naming(label: str) -> tuple[Any, ...]:
    return tuple(ie for ie, pattern in _video_extractors() if label in pattern)


def is_platform_video(url: str) -> bool:
    """True when a yt-dlp site extractor claims the URL by its pattern (no request is made).

    Only extractors whose pattern names a label of the URL's host are tried ("youtube" for
    www.youtube.com): trying all 1,700 costs ~13 ms a URL, which a 10k-line manifest feels.
    """
    host = (urlsplit(url).hostname or "").lower()
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return False  # an IP address is nobody's platform
    labels = [label for label in host.split(".")[:-1] if label not in ("www", "m")]
    return any(ie.suitable(url) for label in labels for ie in _extractors_naming(label))


def detect_kind(url: str) -> Kind:
    """Kind of a URL given without one: a media file extension, or a URL one of yt-dlp's site
    extractors recognises (YouTube, Vimeo, …), makes it a video."""
    suffix = posixpath.splitext(urlsplit(url).path)[1].lower()  # PurePosixPath costs 20 µs
    return "video" if suffix in MEDIA_EXTENSIONS or is_platform_video(url) else "web"


# --- bytes to text -------------------------------------------------------------------------


def decode_manifest(data: bytes) -> tuple[str, list[ManifestProblem]]:
    """Text of a manifest file, and a warning when it was not UTF-8.

    Raises ``ManifestError`` (without a path) for binary data.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad's "Unicode"
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise ManifestError(f"broken UTF-16 text ({exc.reason}): save it as UTF-8") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise ManifestError(
            f"binary data (a NUL byte at offset {nul}), not a text manifest: "
            f"{FORMAT_HELP}, saved as UTF-8 text"
        )
    warnings: list[ManifestProblem] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Windows-1252 is what "Latin-1" means on most machines that write one by mistake;
        # its five unassigned bytes fall back to true Latin-1, which decodes anything.
        try:
            text, encoding = data.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "Latin-1"
        warnings.append(
            ManifestProblem(
                data.count(b"\n", 0, exc.start) + 1,
                f"not UTF-8 (byte 0x{data[exc.start]:02X}); read as {encoding} and the rows "
                "kept: check its accented characters and save the file as UTF-8",
                "warning",
            )
        )
    sample = text[:8192]
    controls = sum(1 for c in sample if c < " " and c not in "\t\n\r\f")
    if sample and controls / len(sample) > BINARY_CONTROL_SHARE:
        raise ManifestError(
            f"binary data ({controls} control characters in its first {len(sample)}), "
            f"not a text manifest: {FORMAT_HELP}"
        )
    return text, warnings


def _unify_lines(text: str) -> str:
    """``\\n`` line ends only, and no byte-order marks at line starts (left by files joined
    with ``cat``). ``str.splitlines`` is not used: it also breaks at form feeds, U+0085 and
    U+2028, which shifts the line numbers people look up."""
    unified = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n\ufeff", "\n")
    return unified.removeprefix("\ufeff")


def _looks_like_url(text: str) -> bool:
    return bool(_URL_SHAPE.fullmatch(text.strip()))


def _meaningful_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(_unify_lines(text).split("\n"), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _csv_delimiter(header: str) -> str | None:
    """The delimiter that makes ``header`` a row with a 'url' column, if any does."""
    for delimiter in CSV_DELIMITERS:
        names = next(csv.reader([header], delimiter=delimiter), [])
        if "url" in (name.strip().lower() for name in names):
            return delimiter
    return None


def manifest_format(name: str, text: str = "") -> Format:
    """Format of a manifest by its file name, else by its content when that is plain: JSON
    objects, a CSV header with a 'url' column, or URLs."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[suffix]
    first = next((line for _, line in _meaningful_lines(text)), None)
    if first is None or _looks_like_url(first):
        return "list"
    if first.startswith(("{", "[")):
        return "jsonl"
    if _csv_delimiter(first):
        return "csv"
    raise ManifestError(f"cannot tell its format from the name or the content: {FORMAT_HELP}")


# --- text to rows --------------------------------------------------------------------------

# A row is a line number and a JSON value (a CSV row takes the shape of a JSON object); a line
# already known to be bad comes as its problem instead.
Row = tuple[int, object] | ManifestProblem


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "an array" if isinstance(value, list) else "an object"


def _skip_json_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position


def _json_array_items(text: str) -> Iterator[Row]:
    """Items of a file that is one JSON array, each with the line it starts on. Called only
    once ``json.loads`` accepted the text, so the scan cannot go astray."""
    decoder = json.JSONDecoder()
    position = _skip_json_whitespace(text, text.index("[") + 1)
    line, counted = 1, 0
    while text[position] != "]":
        line += text.count("\n", counted, position)
        counted = position
        item, end = decoder.raw_decode(text, position)
        yield line, item
        position = _skip_json_whitespace(text, end)
        if text[position] == ",":
            position = _skip_json_whitespace(text, position + 1)


def _rows_jsonl(text: str) -> Iterator[Row]:
    stripped = text.strip()
    if "\n" in stripped and stripped.startswith(("[", "{")):
        # One JSON document over several lines (a JSON Lines file fails here at its line 2).
        try:
            whole = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if isinstance(whole, list):
            yield from _json_array_items(text)
            return
        if isinstance(whole, dict):
            raise ManifestError(
                "one JSON object spread over several lines: JSON Lines wants one object a line "
                '({"url": ...}), or give a JSON array of such objects',
                line=1,
            )
    for number, line in _meaningful_lines(text):
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            hint = (
                ': a bare URL? write {"url": "…"}, or list bare URLs in a .txt file'
                if _looks_like_url(line)
                else ""
            )
            yield ManifestProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno}){hint}")
        except RecursionError:
            yield ManifestProblem(number, "not valid JSON (nested too deeply)")


def _rows_csv(text: str) -> Iterator[Row]:
    first = next((line for _, line in _meaningful_lines(text)), None)
    if first is None:
        return
    delimiter = _csv_delimiter(first)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter or ",")
    header: list[str] | None = None
    last_line = 0
    try:
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                if delimiter is None:
                    raise ManifestError(_no_url_column(cells), line=start)
                header = [cell.strip() for cell in cells]
            elif len(cells) > len(header):
                yield ManifestProblem(
                    start,
                    f"{len(cells)} fields but the header has {len(header)}: quote a URL that "
                    f"contains {delimiter!r}",
                )
            elif any("\n" in cell for cell in cells):
                yield ManifestProblem(
                    start,
                    f"a quoted field runs on to line {last_line}: an unmatched '\"'? "
                    f"lines {start} to {last_line} are skipped",
                )
            else:
                yield start, _csv_row(dict(zip(header, cells, strict=False)))
    except csv.Error as exc:
        raise ManifestError(f"not readable as CSV: {exc}", line=reader.line_num) from None


def _no_url_column(cells: list[str]) -> str:
    if cells and _looks_like_url(cells[0]):
        return (
            "no header row: the first line is a URL; add a first line 'url' (optionally "
            "',kind' and 'tag_<name>' columns), or name the file .txt for a bare list"
        )
    found = ", ".join(repr(cell.strip()) for cell in cells)
    return f"the header row has no 'url' column (found {found}): add one"


def _csv_row(cells: dict[str, str]) -> dict[str, object]:
    """A CSV row in the shape of a JSON Lines object; column names match case-insensitively."""
    row: dict[str, object] = {}
    tags: dict[str, str] = {}
    for name, value in cells.items():
        lowered, value = name.lower(), value.strip()
        if lowered in ("url", "kind"):
            row[lowered] = value or None
        elif lowered.startswith("tag_") and value:
            tags[name[len("tag_") :]] = value
    return {**row, "tags": tags}


def _rows_list(text: str) -> Iterator[Row]:
    for number, line in enumerate(_unify_lines(text).split("\n"), start=1):
        url = _LIST_COMMENT.sub("", line, count=1).strip()
        if url:
            yield number, {"url": url}


_ROWS = {"jsonl": _rows_jsonl, "csv": _rows_csv, "list": _rows_list}


# --- rows to entries -----------------------------------------------------------------------


def _fields(row: object) -> tuple[str, Kind | None, dict[str, str]] | str:
    """URL, kind and tags of one row, or what is wrong with it (every fault, not the first)."""
    if isinstance(row, str):  # a JSON string is a URL given bare
        row = {"url": row}
    if not isinstance(row, dict):
        return f"expected a JSON object with a 'url' field, got {_json_type(row)}"
    faults: list[str] = []
    url = row.get("url")
    if url is None:
        found = f" (it has {', '.join(repr(k) for k in row)})" if row else ""
        faults.append(f"missing 'url'{found}")
    elif not isinstance(url, str):
        faults.append(f"'url' must be a string, got {_json_type(url)}")
    elif not url.strip():
        faults.append("'url' is empty")
    kind = row.get("kind")
    if kind is not None and not isinstance(kind, str):
        faults.append(f"'kind' must be the string 'web' or 'video', got {_json_type(kind)}")
    elif isinstance(kind, str) and kind.strip().lower() not in KINDS:
        faults.append(f"kind {kind!r} is not one of {list(KINDS)}")
    tags = row.get("tags")
    if tags is not None and not isinstance(tags, dict):
        faults.append(f"'tags' must be an object of name: value, got {_json_type(tags)}")
    elif tags:
        faults += [
            f"tag {name!r} must be a string or a number, got {_json_type(value)}"
            for name, value in tags.items()
            if value is None or isinstance(value, dict | list)
        ]
    if faults:
        return "; ".join(faults)
    clean_kind = cast(Kind, kind.strip().lower()) if isinstance(kind, str) else None
    clean_tags = {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in (tags or {}).items()
    }
    return cast(str, url).strip(), clean_kind, clean_tags


def parse_manifest(text: str, fmt: Format) -> Manifest:
    """Parse a manifest; bad lines become problems with their line numbers, the rest proceed.

    Raises ``ManifestError`` when the text as a whole cannot be a manifest of that format.
    """
    entries: list[ManifestEntry] = []
    problems: list[ManifestProblem] = []
    first_line_of: dict[str, int] = {}
    for row in _ROWS[fmt](_unify_lines(text)):
        if isinstance(row, ManifestProblem):
            problems.append(row)
            continue
        number, value = row
        fields = _fields(value)
        if isinstance(fields, str):
            problems.append(ManifestProblem(number, fields))
            continue
        url, kind, tags = fields
        try:
            normalized = normalize_url(url)
        except InvalidURLError as exc:
            problems.append(ManifestProblem(number, str(exc)))
            continue
        key = normalized_key(normalized)
        if key in first_line_of:
            problems.append(
                ManifestProblem(
                    number,
                    f"duplicate of line {first_line_of[key]} after normalization ({normalized})",
                )
            )
            continue
        first_line_of[key] = number
        entries.append(
            ManifestEntry(
                url=url,
                normalized_url=normalized,
                key=key,
                kind=kind or detect_kind(normalized),
                line=number,
                tags=tags,
            )
        )
    return Manifest(entries, problems)


def read_manifest_bytes(path: str | Path) -> bytes:
    """The bytes of a manifest file; ``ManifestError`` naming the file when it cannot be read."""
    file = Path(path)
    try:
        info = file.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ManifestError("is a directory; give the manifest file inside it", path=str(path))
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise ManifestError("is not a regular file", path=str(path))
        return file.read_bytes()
    except FileNotFoundError:
        raise ManifestError("no such file", path=str(path)) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from None


def parse_manifest_bytes(data: bytes, path: str | Path) -> Manifest:
    """Parse a whole manifest file's bytes (``path`` names it and gives its format)."""
    try:
        text, warnings = decode_manifest(data)
        manifest = parse_manifest(text, manifest_format(Path(path).name, text))
    except ManifestError as exc:
        raise ManifestError(exc.reason, path=str(path), line=exc.line) from None
    manifest.problems[:0] = warnings
    return manifest


def read_manifest(path: str | Path) -> tuple[Manifest, str]:
    """Read and parse a manifest file, with the SHA-256 of its bytes.

    The one place a whole manifest file is read: ``media-assets ingest`` calls it, and the sensor
    reads it a page at a time through ``manifest_page``.
    Raises ``ManifestError`` naming the file when it cannot be read at all.
    """
    data = read_manifest_bytes(path)
    return parse_manifest_bytes(data, path), hashlib.sha256(data).hexdigest()


# --- pages ---------------------------------------------------------------------------------

# Lines parsed per sensor tick: ~0.5 s of parsing, and fewer keys than SQLite's variable limit.
PAGE_LINES = 10_000


@dataclass(frozen=True)
class ManifestPage:
    """The entries and problems of the lines ``[start, end)`` (bytes) of a manifest file, with
    their line numbers in the file."""

    manifest: Manifest
    start: int
    end: int
    line: int  # number of the page's first line
    next_line: int  # number of the first line after the page
    size: int  # the file's size when read

    @property
    def complete(self) -> bool:
        """The page reaches the end of the file."""
        return self.end >= self.size


def _pageable(data: bytes, text: str, warnings: list[ManifestProblem], fmt: Format) -> bool:
    """Only UTF-8 line formats are cut at line ends; a file in another encoding or one JSON
    array is read whole each time (such files are hand-made and small)."""
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    array = fmt == "jsonl" and text.lstrip().startswith("[")
    return not (warnings or utf16 or array)


def manifest_page(
    data: bytes,
    path: str | Path,
    start: int = 0,
    line: int = 1,
    max_lines: int = PAGE_LINES,
    *,
    take_tail: bool = True,
) -> ManifestPage:
    """At most ``max_lines`` lines of the manifest ``data`` from byte ``start`` (the start of
    line number ``line``), parsed as ``parse_manifest`` parses the whole file.

    A last line without its line end is left for a later page unless ``take_tail`` (a writer may
    still be appending it). Duplicates are reported within a page; across pages the later one is
    simply a known key. Raises ``ManifestError`` naming the file when it cannot be a manifest.
    """
    name = Path(path).name
    try:
        text, warnings = decode_manifest(data)
        fmt = manifest_format(name, text)
        if not _pageable(data, text, warnings, fmt):
            manifest = parse_manifest(text, fmt)
            manifest.problems[:0] = warnings
            manifest.entries[:] = [e for e in manifest.entries if e.line >= line]
            manifest.problems[:] = [p for p in manifest.problems if p.line >= line]
            lines = _unify_lines(text).count("\n") + 1
            return ManifestPage(manifest, start, len(data), line, lines + 1, len(data))
        end = start
        for _ in range(max_lines):
            newline = data.find(b"\n", end)
            if newline < 0:
                if take_tail or not data[end:].strip():
                    end = len(data)
                break
            end = newline + 1
        chunk = data[start:end].decode("utf-8-sig" if start == 0 else "utf-8")
        # Blank lines in front keep the file's line numbers; a CSV page needs the header row.
        lead = "\n" * (line - 1)
        if fmt == "csv" and start > 0:
            header = next((row for _, row in _meaningful_lines(text)), "")
            lead = header + "\n" * (line - 1)
        manifest = parse_manifest(lead + chunk, fmt)
    except ManifestError as exc:
        raise ManifestError(exc.reason, path=str(path), line=exc.line) from None
    next_line = line + data.count(b"\n", start, end)
    return ManifestPage(manifest, start, end, line, next_line, len(data))
