"""The OpenAI-compatible proxy: an unchanged OpenAI client talks to skillyard as if it were
the model, and gets answers that used -- and ran -- the tenant's skills.

For each chat request (an *exchange*):

1. **Retrieval** (runtime/retrieval.py): the skills for the conversation, within the
   score threshold and top-k, as the tenant sees them (its private skills and the shared
   ones).
2. **Injection**: the selected skills' instructions go into one system message, after the
   client's own system messages.
3. **Execution**: each selected *verified* skill (runtime/tiers.py) is also offered as a
   tool (runtime/exports.py's Chat Completions definition). When the upstream model calls
   one, the proxy runs it in the sandbox through the tenant call path (runtime/serving.py:
   input check, run slot, audit), feeds the result back as a tool message and asks again,
   until the model answers or ``max_rounds`` upstream requests were made (the last one is
   sent with ``tool_choice: "none"``). The client sees one ordinary completion, streamed
   or not: one id, the content of every round in order, the usage summed over the rounds.
   Tools the client sent stay the client's: their calls go back to the client as the
   upstream made them (streamed as tool-call deltas). A round that calls both the
   client's tools and skill tools goes back to the client with the client's calls only
   (the skill calls are not run: the client cannot answer them).
4. **Accounting**: one ``chat`` audit entry per request (skills, rounds, tokens, outcome;
   each tool run is a ``call`` entry of its own), and per selected skill one ``proxy_uses``
   ledger row in the store that holds it (runtime/ledger.py): the tokens it put into the
   upstream's prompts over every round (instructions, tool definition, its tool results),
   its tool runs and failures, and the usage the upstream reported for the request.
   Written off the response's path.
5. **Learning**: when the client's last message carries a durable signal
   (runtime/experience.py), the conversation (with the answer) is handed to `learn`, which
   the server runs as a background job -- never on the response's path.

Invariants: the upstream key never leaves the server (the client's key is skillyard's
tenant key and is never forwarded); nothing of the injected context or the tool runs
reaches the client except through the model's answer; an upstream failure before the
response starts is an UpstreamError (the surface answers with an OpenAI-style error),
after it has started an in-band ``error`` event, as OpenAI's own streams carry them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from .accounting import Writer
from .errors import InvalidInput, LLMError, TooManyRuns, UpstreamError
from .experience import Experience
from .exports import call_input
from .llm import count_prompt_tokens
from .retrieval import Candidate, Retrieval, Retriever
from .tokens import count_tokens

if TYPE_CHECKING:
    from .llm import LLM
    from .serving import Service
    from .views import TenantView

log = structlog.get_logger(__name__)

DEFAULT_MAX_ROUNDS = 6
MODELS_TTL_S = 60.0  # how long the upstream's model list is kept
LEARNT_KEPT = (
    1024  # (tenant, last user message) pairs already handed to learning: a retry is not learnt twice
)
MAX_RESULT_CHARS = 16_000  # of a tool result fed back to the model

Learn = Callable[["TenantView", list[dict[str, Any]], str], None]


@dataclass
class Share:
    """One selected skill's part in an exchange."""

    candidate: Candidate
    context_tokens: int = 0  # what it put into the upstream's prompts, over every round
    result_tokens: int = 0  # of its tool results so far (in every later round's prompt)
    tool_runs: int = 0
    tool_failures: int = 0


@dataclass
class Exchange:
    """One client chat request in flight: what was retrieved, what the upstream is sent,
    and what it cost so far."""

    request_id: str
    view: TenantView
    body: dict[str, Any]  # the client's request, as it came
    retrieval: Retrieval
    messages: list[dict[str, Any]]  # the client's messages with the skills' context
    tools: list[dict[str, Any]]  # the client's tools and the verified skills'
    shares: dict[str, Share]  # by skill name: every selected skill
    runnable: set[str]  # the skill tools offered this exchange
    completion_id: str
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.monotonic)
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    usage_sources: set[str] = field(default_factory=set)
    contents: list[str] = field(default_factory=list)
    outcome: str = ""
    accounted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def stream(self) -> bool:
        """Whether the client asked for a stream."""
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        """Whether the client's stream asked for the usage chunk."""
        return bool((self.body.get("stream_options") or {}).get("include_usage"))

    def usage(self) -> dict[str, Any]:
        """The usage over every round, in OpenAI's shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }

    @property
    def usage_source(self) -> str:
        """ "api" when the upstream reported every round's usage, "tiktoken" when some are our
        count, "none" when no round answered."""
        if not self.usage_sources:
            return "none"
        return "api" if self.usage_sources == {"api"} else "tiktoken"


def inject(messages: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    """`messages` with a system message holding `text` after the client's leading system
    (and developer) messages: the client's own instructions stay first."""
    if not text:
        return list(messages)
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    return [*messages[:at], {"role": "system", "content": text}, *messages[at:]]


class Proxy:
    """The proxy's domain side: open an exchange, then `complete` it (one JSON answer) or
    `start` it and iterate its server-sent events. See the module docstring.

    `learn(view, messages, request_id)` receives conversations worth learning from (the
    server turns each into a background job); `writer` does the accounting off the path."""

    def __init__(
        self,
        service: Service,
        upstream: LLM,
        retriever: Retriever | None = None,
        *,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        learn: Learn | None = None,
    ) -> None:
        self.service = service
        self.upstream = upstream
        self.retriever = retriever or Retriever()
        self.max_rounds = max(1, int(max_rounds))
        self.learn = learn
        self.writer = Writer(background=True)
        self._models: tuple[float, list[dict[str, Any]]] | None = None
        self._models_lock = threading.Lock()
        self._learnt: OrderedDict[str, None] = OrderedDict()

    def models(self) -> list[dict[str, Any]]:
        """The upstream's models (kept MODELS_TTL_S); an upstream without a model list (404)
        offers the configured model. UpstreamError if the upstream fails."""
        with self._models_lock:
            if self._models is not None and time.monotonic() - self._models[0] < MODELS_TTL_S:
                return self._models[1]
        try:
            data = self.upstream.models()
        except LLMError as exc:
            failure = UpstreamError.of(exc)
            if failure.status != 404:
                raise failure from exc
            data = [{"id": self.upstream.model, "object": "model", "created": 0, "owned_by": "skillyard"}]
        with self._models_lock:
            self._models = (time.monotonic(), data)
        return data

    # -- opening -----------------------------------------------------------------------------
    def open(
        self, view: TenantView, body: dict[str, Any], *, request_id: str, scope: str = "all"
    ) -> Exchange:
        """Retrieve the skills for the request and prepare what the upstream is sent."""
        messages = list(body.get("messages") or [])
        retrieval = self.retriever.retrieve(view, messages, scope=scope)
        client_tools = list(body.get("tools") or [])
        taken = {str((t.get("function") or {}).get("name", "")) for t in client_tools if isinstance(t, dict)}
        # One choice only: the tool loop answers one conversation. With n > 1 skills are injected, not run.
        single = int(body.get("n") or 1) == 1 and body.get("tool_choice") != "none"
        tools = list(client_tools)
        runnable: set[str] = set()
        for cand in retrieval.selected:
            if cand.tool is not None and single and cand.name not in taken:
                tools.append(cand.tool)
                runnable.add(cand.name)
        shares = {c.name: Share(c) for c in retrieval.selected}
        exchange = Exchange(
            request_id=request_id,
            view=view,
            body=body,
            retrieval=retrieval,
            messages=inject(messages, retrieval.system_message()),
            tools=tools,
            shares=shares,
            runnable=runnable,
            completion_id=f"chatcmpl-sy{request_id}",
        )
        log.info(
            "proxy_request",
            request_id=request_id,
            tenant=view.name,
            stream=exchange.stream,
            injected=sorted(shares),
            tools=sorted(runnable),
        )
        return exchange

    # -- one upstream round -------------------------------------------------------------------
    def _round_body(self, ex: Exchange) -> dict[str, Any]:
        """What round `ex.rounds + 1` sends upstream (and its context counted per skill)."""
        body = {k: v for k, v in ex.body.items() if k not in ("stream", "stream_options", "tools")}
        body["messages"] = ex.messages
        if ex.tools:
            body["tools"] = ex.tools
        if ex.runnable and ex.rounds + 1 >= self.max_rounds:
            body["tool_choice"] = "none"  # the last round must answer
        for share in ex.shares.values():
            cand = share.candidate
            offered = cand.tool_tokens if cand.name in ex.runnable else 0
            share.context_tokens += cand.tokens + offered + share.result_tokens
        return body

    def _send(self, ex: Exchange, *, stream: bool) -> Any:
        body = self._round_body(ex)
        ex.rounds += 1
        try:
            response, _ = self.upstream.forward(body, stream=stream)
        except LLMError as exc:
            raise UpstreamError.of(exc) from exc
        return response

    def _count_usage(self, ex: Exchange, usage: Any, messages: list[dict[str, Any]], completion: str) -> None:
        if usage:
            ex.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            ex.completion_tokens += int(usage.get("completion_tokens") or 0)
            ex.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            ex.usage_sources.add("api")
            return
        model = str(ex.body.get("model") or self.upstream.model)
        ex.prompt_tokens += count_prompt_tokens(_as_text(messages), model)
        ex.completion_tokens += count_tokens(completion)
        ex.usage_sources.add("tiktoken")

    # -- running skills ------------------------------------------------------------------------
    def _run_tool(self, ex: Exchange, name: str, arguments: str) -> str:
        """Run one tool call of a skill; the tool message's content (JSON)."""
        share = ex.shares[name]
        target = share.candidate.target
        try:
            params = json.loads(arguments or "{}")
        except ValueError as exc:
            content = _tool_error("invalid_input", f"the arguments are not JSON: {exc}")
            share.tool_runs += 1
            share.tool_failures += 1
        else:
            try:
                # Unwrapped as the tool's portable schema wrapped it (runtime/exports.py).
                params = call_input(share.candidate.package.config.input_schema, params)
                result = self.service.call(
                    ex.view, target, params, ledger_use=False, request_id=ex.request_id, via="proxy"
                )
            except (TooManyRuns, InvalidInput) as exc:  # over the run limit; input no JSON reader should see
                content = _tool_error(exc.kind, str(exc))
                ok = False
            except Exception as exc:  # noqa: BLE001 - a run the runtime could not make must not sink the answer
                log.error(
                    "proxy_tool_run_failed", request_id=ex.request_id, skill=name, error=repr(exc)[:300]
                )
                content = _tool_error("internal", "the skill could not be run; the server log has details")
                ok = False
            else:
                ok = result.ok
                if result.ok:
                    content = json.dumps(result.output, ensure_ascii=False, default=str)
                else:
                    err = result.error
                    content = _tool_error(
                        err.kind if err else "error", err.message if err else "the call failed"
                    )
            share.tool_runs += 1
            share.tool_failures += 0 if ok else 1
        if len(content) > MAX_RESULT_CHARS:
            content = content[:MAX_RESULT_CHARS] + " ...[cut]"
        share.result_tokens += count_tokens(content)
        return content

    def _run_calls(self, ex: Exchange, calls: list[dict[str, Any]], content: str | None) -> Iterator[str]:
        """Run the round's skill calls and extend the conversation; yields the name of each
        skill as it starts (a stream sends a keep-alive comment)."""
        ex.messages = [
            *ex.messages,
            {
                "role": "assistant",
                "content": content or None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls
                ],
            },
        ]
        for call in calls:
            yield call["name"]
            result = self._run_tool(ex, call["name"], call["arguments"])
            ex.messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})

    # -- not streamed ---------------------------------------------------------------------------
    def complete(self, ex: Exchange) -> dict[str, Any]:
        """Answer the exchange with one chat.completion object (UpstreamError if the upstream
        fails)."""
        try:
            answer = self._complete(ex)
        except UpstreamError:
            self.finish(ex, "upstream_error")
            raise
        except BaseException:
            self.finish(ex, "error")
            raise
        self.finish(ex, "ok")
        return answer

    def _complete(self, ex: Exchange) -> dict[str, Any]:
        while True:
            sent = ex.messages
            response = self._send(ex, stream=False).to_dict()
            choices = response.get("choices") or []
            message = (choices[0].get("message") or {}) if choices else {}
            content = message.get("content")
            self._count_usage(ex, response.get("usage"), sent, content or "")
            if len(choices) != 1:
                break  # n > 1: no tool loop
            if content:
                ex.contents.append(content)
            calls = [_call_of(c) for c in message.get("tool_calls") or []]
            ours = [c for c in calls if c["name"] in ex.runnable]
            theirs = [c for c in calls if c["name"] not in ex.runnable]
            if ours and not theirs and ex.rounds < self.max_rounds:
                for _ in self._run_calls(ex, ours, content):
                    pass
                continue
            final = dict(message)
            final["content"] = "".join(ex.contents) if ex.contents else content
            if ours:  # not run: dropped (see the module docstring)
                log.info(
                    "proxy_skill_calls_dropped", request_id=ex.request_id, calls=[c["name"] for c in ours]
                )
                kept = [c for c in message.get("tool_calls") or [] if _call_of(c)["name"] not in ex.runnable]
                if kept:
                    final["tool_calls"] = kept
                else:
                    final.pop("tool_calls", None)
                choices[0]["finish_reason"] = "tool_calls" if kept else "stop"
            choices[0]["message"] = final
            break
        response["id"] = ex.completion_id
        response["usage"] = ex.usage()
        return response

    # -- streamed -------------------------------------------------------------------------------
    def start(self, ex: Exchange) -> Iterator[str]:
        """Open the first upstream stream now (an UpstreamError is raised here, before the
        client's response starts) and return the exchange's server-sent events."""
        try:
            first = self._send(ex, stream=True)
        except BaseException:
            self.finish(ex, "upstream_error")
            raise
        return self._events(ex, first)

    def _chunk(self, ex: Exchange, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": ex.completion_id,
            "object": "chat.completion.chunk",
            "created": ex.created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def _events(self, ex: Exchange, stream: Any) -> Iterator[str]:
        outcome = "cancelled"  # until the stream ends one way or another
        model = str(ex.body.get("model") or self.upstream.model)
        sent_role = False
        try:
            while True:
                sent = ex.messages
                calls: dict[int, dict[str, Any]] = {}
                theirs_out: dict[int, int] = {}  # upstream index -> the index the client sees
                finish: str | None = None
                usage: dict[str, Any] | None = None
                content: list[str] = []
                passthrough = False
                try:
                    for chunk in stream:
                        data = chunk.to_dict()
                        model = str(data.get("model") or model)
                        if data.get("usage"):
                            usage = data["usage"]
                        choices = data.get("choices") or []
                        if any(int(c.get("index") or 0) != 0 for c in choices) or passthrough:
                            passthrough = True  # n > 1: relayed as it comes, ids ours
                            if choices:
                                relayed = {**data, "id": ex.completion_id, "usage": None}
                                yield f"data: {json.dumps(relayed)}\n\n"
                            continue
                        for choice in choices:
                            delta = dict(choice.get("delta") or {})
                            out: dict[str, Any] = {}
                            role = delta.pop("role", None)
                            if role and not sent_role:
                                out["role"] = role
                                sent_role = True
                            text = delta.pop("content", None)
                            if text:
                                out["content"] = text
                                content.append(text)
                            for tc in delta.pop("tool_calls", None) or []:
                                relay = _track_call(calls, tc, ex.runnable)
                                if relay is not None:
                                    index = theirs_out.setdefault(relay["index"], len(theirs_out))
                                    out.setdefault("tool_calls", []).append({**relay, "index": index})
                            out.update({k: v for k, v in delta.items() if v is not None})
                            if choice.get("finish_reason"):
                                finish = choice["finish_reason"]
                            if out:
                                yield self._chunk(ex, model, out)
                except Exception as exc:  # noqa: BLE001 - the upstream broke off: an in-band error, as OpenAI sends
                    self._count_usage(ex, usage, sent, "".join(content))
                    outcome = "upstream_error"
                    log.warning("proxy_upstream_broke_off", request_id=ex.request_id, error=str(exc)[:300])
                    yield _error_event(
                        "the upstream model's stream broke off; retry the request", "upstream_error"
                    )
                    return
                finally:
                    _close(stream)
                self._count_usage(ex, usage, sent, "".join(content))
                text = "".join(content)
                if text:
                    ex.contents.append(text)
                if passthrough:
                    break
                done = [c for c in calls.values() if c.get("name")]
                ours = [c for c in done if c["ours"]]
                theirs = [c for c in done if not c["ours"]]
                if ours and not theirs and ex.rounds < self.max_rounds:
                    for name in self._run_calls(ex, ours, text):
                        yield f": running the skill {name}\n\n"
                    try:
                        stream = self._send(ex, stream=True)
                    except UpstreamError as exc:
                        outcome = "upstream_error"
                        yield _error_event(exc.client_message(), "upstream_error")
                        return
                    continue
                if ours:
                    log.info(
                        "proxy_skill_calls_dropped", request_id=ex.request_id, calls=[c["name"] for c in ours]
                    )
                    finish = "tool_calls" if theirs else "stop"
                if not sent_role:
                    yield self._chunk(ex, model, {"role": "assistant", "content": ""})
                yield self._chunk(ex, model, {}, finish or "stop")
                break
            if ex.include_usage:
                usage_chunk = {
                    "id": ex.completion_id,
                    "object": "chat.completion.chunk",
                    "created": ex.created,
                    "model": model,
                    "choices": [],
                    "usage": ex.usage(),
                }
                yield f"data: {json.dumps(usage_chunk)}\n\n"
            yield "data: [DONE]\n\n"
            outcome = "ok"
        finally:
            self.finish(ex, outcome)

    # -- after the answer -----------------------------------------------------------------------
    def finish(self, ex: Exchange, outcome: str) -> None:
        """Account for the exchange (once) and hand a conversation worth learning from to
        `learn`. Runs when the answer is complete, or the exchange failed or was cancelled."""
        with ex.lock:
            if ex.accounted:
                return
            ex.accounted = True
        ex.outcome = outcome
        duration_ms = round((time.monotonic() - ex.started) * 1000, 1)
        for name, share in ex.shares.items():
            self.writer.submit("record a proxy use", _proxy_row(ex, share, outcome, duration_ms), skill=name)
        self.service.audit.record(
            "chat",
            tenant=ex.view.name,
            outcome=outcome,
            skills=sorted(ex.shares) or None,
            tool_runs=sum(s.tool_runs for s in ex.shares.values()) or None,
            rounds=ex.rounds,
            tokens=ex.prompt_tokens + ex.completion_tokens,
            duration_ms=duration_ms,
            request_id=ex.request_id,
            via="proxy",
        )
        log.info(
            "proxy_answered",
            request_id=ex.request_id,
            outcome=outcome,
            rounds=ex.rounds,
            prompt_tokens=ex.prompt_tokens,
            completion_tokens=ex.completion_tokens,
            skills=sorted(ex.shares),
            tool_runs=sum(s.tool_runs for s in ex.shares.values()),
        )
        if outcome == "ok" and self.learn is not None:
            self._maybe_learn(ex)

    def _maybe_learn(self, ex: Exchange) -> None:
        """Hand the conversation to `learn` when the client's last message says something durable."""
        messages = list(ex.body.get("messages") or [])
        last_user = [m for m in messages if m.get("role") == "user"][-1:]
        if not last_user or not Experience.of_messages(last_user).signals():
            return
        seen = f"{ex.view.name}:{Experience.of_messages(last_user).fingerprint()}"
        with self._models_lock:
            if seen in self._learnt:
                return  # the same lesson again (a retried request): learnt once
            self._learnt[seen] = None
            while len(self._learnt) > LEARNT_KEPT:
                self._learnt.popitem(last=False)
        answer = "".join(ex.contents)
        conversation = [*messages, {"role": "assistant", "content": answer}] if answer else messages
        try:
            assert self.learn is not None
            self.learn(ex.view, conversation, ex.request_id)
        except Exception as exc:  # noqa: BLE001 - learning is never the answer's problem
            log.warning("proxy_learning_not_started", request_id=ex.request_id, error=str(exc)[:200])

    def close(self) -> None:
        """Wait for the accounting writes (at shutdown)."""
        self.writer.flush()


def _proxy_row(ex: Exchange, share: Share, outcome: str, duration_ms: float) -> Callable[[], object]:
    cand = share.candidate
    if outcome == "ok" and share.tool_failures:
        outcome = "tool_failed"
    mode = "inject+tool" if share.tool_runs else "inject"
    fields = {
        "request_id": ex.request_id,
        "tenant": ex.view.name,
        "skill": cand.name,
        "version": cand.target.record.version,
        "mode": mode,
        "context_tokens": share.context_tokens,
        "tool_runs": share.tool_runs,
        "tool_failures": share.tool_failures,
        "rounds": ex.rounds,
        "upstream_prompt_tokens": ex.prompt_tokens,
        "upstream_completion_tokens": ex.completion_tokens,
        "upstream_cached_tokens": ex.cached_tokens,
        "usage_source": ex.usage_source,
        "outcome": outcome,
        "duration_ms": duration_ms,
    }
    ledger = cand.target.yard.ledger
    return lambda: ledger.record_proxy_use(**fields)


def _call_of(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "id": str(call.get("id") or ""),
        "name": str(fn.get("name") or ""),
        "arguments": fn.get("arguments") or "",
    }


def _track_call(
    calls: dict[int, dict[str, Any]], delta: dict[str, Any], runnable: set[str]
) -> dict[str, Any] | None:
    """Follow one streamed tool-call delta. Returns the delta to relay to the client (a call
    of the client's own tools, with what was held back until its name was known), or None (a
    skill call, or a call whose name has not come yet)."""
    index = int(delta.get("index") or 0)
    state = calls.setdefault(index, {"id": "", "name": "", "arguments": "", "ours": None})
    fn = delta.get("function") or {}
    if delta.get("id"):
        state["id"] = delta["id"]
    if fn.get("name"):
        state["name"] += fn["name"]
    if fn.get("arguments"):
        state["arguments"] += fn["arguments"]
    if state["ours"] is None:
        if not state["name"]:
            return None  # held: its arguments so far go out with its first relayed delta
        state["ours"] = state["name"] in runnable
        if state["ours"]:
            return None
        # The client's call: its first relayed delta carries id, type and name, and what was held.
        first = {
            "index": index,
            "id": state["id"],
            "type": "function",
            "function": {"name": state["name"], "arguments": state["arguments"]},
        }
        return first
    if state["ours"]:
        return None
    return {"index": index, "function": {"arguments": fn.get("arguments") or ""}}


def _tool_error(kind: str, message: str) -> str:
    return json.dumps({"error": {"kind": kind, "message": message[:2000]}}, ensure_ascii=False)


def _error_event(message: str, kind: str) -> str:
    return (
        f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': None, 'code': None}})}\n\n"
    )


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - closing a finished stream: nothing to save
            log.debug("upstream_stream_close_failed", error=str(exc)[:200])


def _as_text(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages with text content only, for tiktoken's count."""
    from .experience import text_of

    out = []
    for m in messages:
        text = text_of(m.get("content"))
        if m.get("tool_calls"):
            text += json.dumps(m["tool_calls"])
        out.append({"role": str(m.get("role", "")), "content": text})
    return out
