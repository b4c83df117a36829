"""A scripted OpenAI-compatible server on 127.0.0.1, over real HTTP, for tests.

Each request to /v1/chat/completions takes the next scripted step: a reply (with the
usage to report, and tool calls if scripted), an HTTP error, or a delay. A request with
``"stream": true`` gets the reply as server-sent chunks in OpenAI's format (content in
pieces, tool calls as deltas, a usage chunk when ``stream_options.include_usage``), or a
stream that breaks off with an in-band error (`stream_error`). GET /v1/models lists
`models`. Every request body is recorded.
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
    def __init__(self, models: tuple[str, ...] = ("scripted-model",)) -> None:
        self.models = models
        self.steps: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._received = 0

    # -- script -----------------------------------------------------------------------------
    def reply(
        self,
        content: str | None | Callable[[dict[str, Any]], str],
        *,
        prompt_tokens: int = 1000,
        completion_tokens: int = 500,
        cached_tokens: int = 0,
        usage: bool = True,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> ScriptedLLM:
        """`tool_calls`: [{"name": ..., "arguments": {...} or "raw json"}]; ids are made up."""
        self.steps.append(
            {
                "kind": "reply",
                "content": content,
                "prompt": prompt_tokens,
                "completion": completion_tokens,
                "cached": cached_tokens,
                "usage": usage,
                "tool_calls": tool_calls or [],
            }
        )
        return self

    def tool_call(self, name: str, arguments: Any, **usage: Any) -> ScriptedLLM:
        """A reply that only calls the tool `name` with `arguments`."""
        return self.reply(None, tool_calls=[{"name": name, "arguments": arguments}], **usage)

    def stream_error(self, content: str, message: str = "upstream broke off") -> ScriptedLLM:
        """A stream that sends `content` and then an in-band error event (status 200)."""
        self.steps.append({"kind": "stream_error", "content": content, "message": message})
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

            def do_GET(self) -> None:  # http.server's naming
                if not self.path.endswith("/models"):
                    return self._send(404, {"error": {"message": "not found"}})
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                    for m in scripted.models
                ]
                return self._send(200, {"object": "list", "data": data})

            def _stream(self, chunks: list[dict[str, Any]], error: str | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if error is not None:
                    body = {"error": {"message": error, "type": "server_error"}}
                    self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
                else:
                    self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

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
                head = {
                    "id": f"chatcmpl-scripted-{n}",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                }
                if step["kind"] == "stream_error":
                    piece = {**head, "object": "chat.completion.chunk"}
                    delta = {"role": "assistant", "content": step["content"]}
                    chunk = {**piece, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    return self._stream([chunk], error=step["message"])
                content = step["content"](body) if callable(step["content"]) else step["content"]
                calls = [
                    {
                        "id": f"call_{n}_{i}",
                        "type": "function",
                        "function": {
                            "name": c["name"],
                            "arguments": c["arguments"]
                            if isinstance(c["arguments"], str)
                            else json.dumps(c["arguments"]),
                        },
                    }
                    for i, c in enumerate(step["tool_calls"])
                ]
                finish = "tool_calls" if calls else "stop"
                usage = None
                if step["usage"]:
                    usage = {
                        "prompt_tokens": step["prompt"],
                        "completion_tokens": step["completion"],
                        "total_tokens": step["prompt"] + step["completion"],
                        "prompt_tokens_details": {"cached_tokens": step["cached"]},
                    }
                if body.get("stream"):
                    return self._stream(stream_chunks(head, content, calls, finish, usage, body))
                message: dict[str, Any] = {"role": "assistant", "content": content}
                if calls:
                    message["tool_calls"] = calls
                out: dict[str, Any] = {
                    **head,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                }
                if usage is not None:
                    out["usage"] = usage
                return self._send(200, out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def stream_chunks(
    head: dict[str, Any],
    content: str | None,
    calls: list[dict[str, Any]],
    finish: str,
    usage: dict[str, Any] | None,
    body: dict[str, Any],
) -> list[dict[str, Any]]:
    """A reply as OpenAI streams it: a role delta, the content in pieces of 7 characters,
    each tool call as a first delta (id, name) and its arguments in two halves, the finish
    reason, and a usage chunk (no choices) when the request asked for one."""
    base = {**head, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    out = [chunk({"role": "assistant", "content": ""})]
    text = content or ""
    out += [chunk({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
    for i, call in enumerate(calls):
        args = call["function"]["arguments"]
        half = len(args) // 2
        first = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        out.append(chunk({"tool_calls": [first]}))
        for part in (args[:half], args[half:]):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}))
    out.append(chunk({}, finish))
    if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": usage})
    return out
