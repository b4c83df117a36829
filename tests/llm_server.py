"""A scripted OpenAI-compatible server on 127.0.0.1, over real HTTP, for tests.

Each request to /v1/chat/completions takes the next scripted step: a reply (with the
usage to report), an HTTP error, or a delay. Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedLLM:
    def __init__(self) -> None:
        self.steps: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._received = 0

    # -- script -----------------------------------------------------------------------------
    def reply(
        self,
        content: str | Callable[[dict[str, Any]], str],
        *,
        prompt_tokens: int = 1000,
        completion_tokens: int = 500,
        cached_tokens: int = 0,
        usage: bool = True,
    ) -> ScriptedLLM:
        self.steps.append(
            {
                "kind": "reply",
                "content": content,
                "prompt": prompt_tokens,
                "completion": completion_tokens,
                "cached": cached_tokens,
                "usage": usage,
            }
        )
        return self

    def error(self, status: int, message: str = "scripted error") -> ScriptedLLM:
        self.steps.append({"kind": "error", "status": status, "message": message})
        return self

    def delay(self, seconds: float) -> ScriptedLLM:
        self.steps.append({"kind": "delay", "seconds": seconds})
        return self

    def take(self, request: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        """Record `request`; the next scripted step (None when the script is exhausted) and
        the request's number, from 1."""
        with self._lock:
            self.requests.append(request)
            self._received += 1
            return (self.steps.popleft() if self.steps else None), self._received

    # -- server -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedLLM:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = {"path": self.path, "body": body, "auth": self.headers.get("Authorization", "")}
                step, n = scripted.take(request)
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if step is None:
                    return self._send(500, {"error": {"message": "script exhausted", "type": "server_error"}})
                if step["kind"] == "delay":
                    time.sleep(step["seconds"])
                    return self._send(500, {"error": {"message": "delayed", "type": "server_error"}})
                if step["kind"] == "error":
                    headers = {"retry-after": "0"} if step["status"] == 429 else {}
                    return self._send(
                        step["status"], {"error": {"message": step["message"], "type": "scripted"}}, headers
                    )
                content = step["content"](body) if callable(step["content"]) else step["content"]
                out: dict[str, Any] = {
                    "id": f"chatcmpl-scripted-{n}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                }
                if step["usage"]:
                    out["usage"] = {
                        "prompt_tokens": step["prompt"],
                        "completion_tokens": step["completion"],
                        "total_tokens": step["prompt"] + step["completion"],
                        "prompt_tokens_details": {"cached_tokens": step["cached"]},
                    }
                return self._send(200, out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
