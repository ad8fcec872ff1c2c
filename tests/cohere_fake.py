"""A local server that speaks Cohere's v2 wire format (``/v2/embed``, ``/v2/chat``) on 127.0.0.1,
records every request, and can answer 429 on cue. It stands in for the paid remote API only.

Embeddings are hashed bags of words (same words, similar vectors), so search over them behaves.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


def bag_of_words(text: str, dimension: int) -> list[float]:
    vector = np.zeros(dimension)
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,;:!?").encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimension] += 1.0
    return (vector / max(np.linalg.norm(vector), 1e-12)).tolist()


@dataclass
class FakeCohere:
    base_url: str = ""
    dimension: int = 1024
    requests: list[dict[str, Any]] = field(default_factory=list)
    throttle: int = 0  # answer this many next requests with 429
    chat_answer: str = ""


def _handler(state: FakeCohere) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            if state.throttle > 0:
                state.throttle -= 1
                self._send(429, {"message": "You are using a Trial key, too many requests"})
            elif self.path == "/v2/embed":
                texts = body["texts"]
                if len(texts) > 96:
                    self._send(400, {"message": "too many texts: at most 96"})
                    return
                self._send(
                    200,
                    {
                        "id": "fake-embed",
                        "response_type": "embeddings_by_type",
                        "embeddings": {"float": [bag_of_words(t, state.dimension) for t in texts]},
                        "texts": texts,
                        "meta": {"api_version": {"version": "2"}},
                    },
                )
            elif self.path == "/v2/chat":
                self._send(
                    200,
                    {
                        "id": "fake-chat",
                        "finish_reason": "COMPLETE",
                        "message": {
                            "role": "assistant",
                            "content": [{"type": "text", "text": state.chat_answer}],
                        },
                        "usage": {"tokens": {"input_tokens": 1, "output_tokens": 1}},
                    },
                )
            else:
                self._send(404, {"message": f"no such endpoint {self.path}"})

    return Handler


@contextmanager
def fake_cohere(dimension: int = 1024) -> Iterator[FakeCohere]:
    state = FakeCohere(dimension=dimension)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
