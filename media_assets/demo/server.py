"""A static HTTP server on 127.0.0.1 that sends a charset, counts requests and can misbehave on cue.

Python's ``http.server`` sends HTML without a charset; Chromium then guesses windows-1252 and
mangles UTF-8 text, so this one always says ``charset=utf-8`` for text types.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SITE_DIR = Path(__file__).parent / "site"
TEXT_TYPES = (
    "text/html",
    "text/plain",
    "text/css",
    "text/vtt",
    "application/javascript",
    "application/json",
    "text/javascript",
)

# A hook may answer a request itself: it returns (status, headers, body) or None to serve the file.
# A body given as an iterable of chunks is streamed (each chunk flushed), e.g. to trickle; its
# Content-Length is whatever the hook declares, if anything.
Hook = Callable[[str], tuple[int, dict[str, str], bytes | Iterable[bytes]] | None]


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def guess_type(self, path: str | Path) -> str:
        guessed = super().guess_type(path)
        if guessed in TEXT_TYPES or str(path).endswith((".html", ".htm")):
            base = "text/html" if str(path).endswith((".html", ".htm")) else guessed
            return f"{base}; charset=utf-8"
        return guessed

    def _hooked(self) -> bool:
        self.server.requests[self.path.split("?")[0]] += 1
        for hook in self.server.hooks:
            answer = hook(self.path)
            if answer is not None:
                status, headers, body = answer
                self.send_response(status)
                if isinstance(body, bytes):
                    headers = {"Content-Length": str(len(body)), **headers}
                    body = [body]
                else:
                    self.close_connection = True  # a stream ends when the connection does
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self._stream(body)
                return True
        return False

    def _stream(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                self.server.bytes_sent[self.path.split("?")[0]] += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (or was made to)

    def copyfile(self, source: Any, outputfile: Any) -> None:
        data = source.read()
        try:
            outputfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client stopped reading (ffprobe reads only what it needs)
        self.server.bytes_sent[self.path.split("?")[0]] += len(data)

    def _gauntlet(self) -> bool:
        """Gauntlet pages name the silent third-party host as ``{{HANG_ORIGIN}}``: it is filled
        in here, since that host's port is only known once the server runs."""
        path = self.path.split("?")[0]
        if not (path.startswith("/gauntlet/") and path.endswith(".html")):
            return False
        file = Path(self.translate_path(path))
        if not file.is_file():
            return False
        body = file.read_bytes().replace(b"{{HANG_ORIGIN}}", self.server.silent.origin.encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.bytes_sent[path] += len(body)
        return True

    def do_GET(self) -> None:
        if not self._hooked() and not self._gauntlet():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._hooked():
            super().do_HEAD()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: Counter[str]
    bytes_sent: Counter[str]
    hooks: list[Hook]
    silent: _SilentHost


class _SilentHost:
    """A host that accepts TCP connections and never answers (a third-party script server that
    hangs), on another loopback address so that it is another site to the browser."""

    def __init__(self, host: str = "127.0.0.3") -> None:
        self._socket = socket.create_server((host, 0))
        self.origin = f"http://{host}:{self._socket.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="silent-host").start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            self.accepted.append(connection)  # held open, never read, never answered

    def close(self) -> None:
        self._socket.close()
        for connection in self.accepted:
            connection.close()


class SiteServer:
    """A running server; ``base_url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, server: _Server):
        self._server = server

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> Counter[str]:
        """Requests seen so far, by path without query."""
        return self._server.requests

    @property
    def bytes_sent(self) -> Counter[str]:
        """Response body bytes sent so far, by path without query."""
        return self._server.bytes_sent

    def add_hook(self, hook: Hook) -> None:
        self._server.hooks.append(hook)

    @property
    def hang_origin(self) -> str:
        """Origin of a host that accepts connections and never answers (``{{HANG_ORIGIN}}`` in
        the gauntlet's pages)."""
        return self._server.silent.origin

    @property
    def hang_connections(self) -> int:
        """Connections the silent host has accepted (and left unanswered) so far."""
        return len(self._server.silent.accepted)


@contextmanager
def serve(root: Path = SITE_DIR, port: int = 0, host: str = "127.0.0.1") -> Iterator[SiteServer]:
    """Serve ``root`` on a loopback address (``port=0`` picks a free port) until the block ends."""
    server = _Server((host, port), partial(_Handler, directory=str(root)))
    server.requests, server.bytes_sent, server.hooks = Counter(), Counter(), []
    server.silent = silent = _SilentHost()
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="site-server")
    thread.start()
    try:
        yield SiteServer(server)
    finally:
        server.shutdown()
        server.server_close()
        silent.close()


def folder_hook(prefix: str, folder: Path) -> Hook:
    """Serve the files of ``folder`` under the URL path ``prefix`` (e.g. generated media)."""
    import mimetypes

    def hook(path: str) -> tuple[int, dict[str, str], bytes] | None:
        clean = path.split("?")[0]
        if not clean.startswith(prefix):
            return None
        file = folder / clean.removeprefix(prefix)
        if not file.is_file() or folder.resolve() not in file.resolve().parents:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return 200, {"Content-Type": kind}, file.read_bytes()

    return hook


def gzip_page_hook(pages: dict[str, Path]) -> Hook:
    """Serve gzip-compressed files (e.g. the eval pages) decompressed at the given paths."""

    def hook(path: str) -> tuple[int, dict[str, str], bytes] | None:
        source = pages.get(path.split("?")[0])
        if source is None:
            return None
        return (
            200,
            {"Content-Type": "text/html; charset=utf-8"},
            gzip.decompress(source.read_bytes()),
        )

    return hook
