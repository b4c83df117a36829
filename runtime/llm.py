"""LLM access through the openai SDK to any OpenAI-compatible endpoint.

Every call's usage (as the API reports it) is measured together with tiktoken's own
count of the prompt, and the caller records it in the ledger with the outcome.

Retries are ours, written once here (`LLM.chat`), not the SDK's: the SDK's hide the
requests they repeat, and the ledger must hold one row per HTTP request. A request that
timed out, was rate-limited (429), failed with a 5xx or could not connect is retried up to
SKILLYARD_LLM_MAX_RETRIES times with exponential backoff (honouring Retry-After); each
failed request is returned to the caller (`LLMReply.failed`, `LLMError.failed`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from .config import Settings
from .errors import LLMError, LLMUnavailable
from .tokens import encoding_for_model

log = structlog.get_logger(__name__)


@dataclass
class FailedRequest:
    """One HTTP request that failed: why, its HTTP status if it got one, and how long it took."""

    reason: str  # timeout, rate_limited, server_error, connection, refused, bad_answer
    message: str
    elapsed_s: float
    status: int | None = None
    # the endpoint's own error object ({"message", "type", "code", ...}) when it sent one: the
    # proxy relays it to its client
    error: dict[str, Any] | None = None


RETRYABLE = ("timeout", "rate_limited", "server_error", "connection")
MAX_BACKOFF_S = 8.0


@dataclass
class LLMReply:
    """One answer of the LLM, with its usage (the API's, or tiktoken's count when it gave none)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    tiktoken_prompt_tokens: int
    latency_ms: float
    cost_usd: float
    request_id: str = ""
    # "api": the endpoint reported usage; "tiktoken": it did not, and the tokens are our own count
    usage_source: str = "api"
    attempts: int = 1
    failed: list[FailedRequest] = field(default_factory=list)  # the requests before this one that failed

    @property
    def total_tokens(self) -> int:
        """Prompt + completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def count_prompt_tokens(messages: list[dict[str, str]], model: str) -> int:
    """tiktoken's count of a chat prompt (OpenAI's accounting: ~3 tokens per message, and 3
    to prime the reply)."""
    enc = encoding_for_model(model)
    total = 3
    for m in messages:
        total += (
            3
            + len(enc.encode(m.get("content") or "", disallowed_special=()))
            + len(enc.encode(m.get("role", "")))
        )
    return total


class LLM:
    """timeout (seconds per request) and max_retries default to the settings'
    SKILLYARD_LLM_TIMEOUT and SKILLYARD_LLM_MAX_RETRIES; base_url, api_key and model to the
    settings' OPENAI_BASE_URL, OPENAI_API_KEY and SKILLYARD_MODEL (the proxy passes its
    upstream's)."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = base_url or settings.openai_base_url
        if api_key is None and settings.openai_api_key is not None:
            api_key = settings.openai_api_key.get_secret_value()
        if not self.base_url and not api_key:
            raise LLMUnavailable(
                "no LLM endpoint is configured: set OPENAI_BASE_URL (any OpenAI-compatible server) and "
                "OPENAI_API_KEY, and SKILLYARD_MODEL for the model name. "
                "Everything except fix, create, learn and merges works without one."
            )
        from openai import OpenAI

        self.model = model or settings.model
        self.timeout = float(settings.llm_timeout if timeout is None else timeout)
        self.max_retries = int(settings.llm_max_retries if max_retries is None else max_retries)
        self.client = OpenAI(
            base_url=self.base_url or None,
            api_key=api_key or "none",
            timeout=self.timeout,
            max_retries=0,  # ours, below: every request is the ledger's
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The USD cost of a request at the configured prices."""
        s = self.settings
        return (
            prompt_tokens * s.price_input_per_mtok / 1e6 + completion_tokens * s.price_output_per_mtok / 1e6
        )

    def chat(self, messages: list[dict[str, str]], *, json_mode: bool = True) -> LLMReply:
        """One chat completion (JSON mode by default), retried on timeouts, 429, 5xx and
        connection errors. The reply lists the requests that failed before it; an LLMError
        lists them all and says what to do."""
        expected = count_prompt_tokens(messages, self.model)
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        resp, sent, failed = self._send(kwargs)
        return self._reply(resp, expected, sent, failed)

    def forward(self, body: dict[str, Any], *, stream: bool) -> tuple[Any, list[FailedRequest]]:
        """Send a client's chat completion request as it is (the proxy's upstream request):
        `body` keeps every field the client set; a streamed one asks for the usage chunk.
        Retried like `chat` until a response starts; returns (the SDK's ChatCompletion or
        Stream, the requests that failed before it). An LLMError carries them all."""
        rest = {k: v for k, v in body.items() if k not in ("model", "messages", "stream", "stream_options")}
        kwargs: dict[str, Any] = {
            "model": body.get("model") or self.model,
            "messages": body["messages"],
            "stream": stream,
            "extra_body": rest,
        }
        if stream:
            kwargs["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        resp, _, failed = self._send(kwargs)
        return resp, failed

    def _send(self, kwargs: dict[str, Any]) -> tuple[Any, float, list[FailedRequest]]:
        """One request under the retry policy (see the module docstring): (response, when the
        answered request was sent, the requests that failed before it)."""
        failed: list[FailedRequest] = []
        started = time.monotonic()
        for attempt in range(self.max_retries + 1):
            sent = time.monotonic()
            try:
                return self.client.chat.completions.create(**kwargs), sent, failed
            except Exception as exc:
                request = self._failed_request(exc, time.monotonic() - sent)
                if request is None:
                    raise
                failed.append(request)
                if request.reason not in RETRYABLE or attempt == self.max_retries:
                    raise self._error(request, failed, started) from exc
                delay = self._backoff(attempt, exc)
                log.info("llm_retry", reason=request.reason, attempt=attempt + 1, wait_s=round(delay, 2))
                time.sleep(delay)
        raise AssertionError("unreachable")

    def models(self) -> list[dict[str, Any]]:
        """The endpoint's model list (GET /models), one retry-free request; LLMError if it fails."""
        started = time.monotonic()
        try:
            return [m.to_dict() for m in self.client.models.list()]
        except Exception as exc:
            request = self._failed_request(exc, time.monotonic() - started)
            if request is None:
                raise
            raise self._error(request, [request], started) from exc

    @staticmethod
    def _failed_request(exc: Exception, elapsed: float) -> FailedRequest | None:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return FailedRequest("timeout", str(exc), elapsed)
        if isinstance(exc, openai.APIConnectionError):
            return FailedRequest("connection", str(exc), elapsed)
        body = getattr(exc, "body", None)
        error = body if isinstance(body, dict) else None
        if isinstance(exc, openai.RateLimitError):
            return FailedRequest("rate_limited", exc.message, elapsed, 429, error)
        if isinstance(exc, openai.APIStatusError):
            reason = "server_error" if exc.status_code >= 500 else "refused"
            return FailedRequest(reason, exc.message, elapsed, exc.status_code, error)
        return None

    @staticmethod
    def _backoff(attempt: int, exc: Exception) -> float:
        """Exponential with jitter; a Retry-After header (seconds, up to 30) wins."""
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            try:
                return min(30.0, max(0.0, float(header)))
            except ValueError:
                pass
        return min(MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.5 + random.random() / 2)

    def _error(self, last: FailedRequest, failed: list[FailedRequest], started: float) -> LLMError:
        attempts = len(failed)
        elapsed = time.monotonic() - started
        spent = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
        messages = {
            "rate_limited": f"the LLM endpoint is rate-limiting us (429) after {spent}: {last.message}. "
            "Wait and retry, or raise your rate limit.",
            "timeout": f"the LLM endpoint did not answer in time: {spent} (timeout {self.timeout:g} s per "
            "attempt, SKILLYARD_LLM_TIMEOUT; retries: SKILLYARD_LLM_MAX_RETRIES); retry later",
            "connection": f"cannot reach the LLM endpoint at {self.base_url} ({spent}): "
            f"{last.message}. Check OPENAI_BASE_URL and that the server is up.",
            "server_error": f"the LLM endpoint answered HTTP {last.status} after {spent}: {last.message}",
        }
        if last.status == 401:
            message = "the LLM endpoint refused our key (401): check OPENAI_API_KEY"
        else:
            message = messages.get(
                last.reason, f"the LLM endpoint answered HTTP {last.status} after {spent}: {last.message}"
            )
        return LLMError(message, attempts=attempts, elapsed_s=elapsed, failed=failed)

    def _reply(self, resp: Any, expected: int, sent: float, failed: list[FailedRequest]) -> LLMReply:
        latency = (time.monotonic() - sent) * 1000
        if not resp.choices:
            request = FailedRequest("bad_answer", "the LLM endpoint returned no choices", latency / 1000)
            raise LLMError(
                "the LLM endpoint returned no choices",
                attempts=len(failed) + 1,
                elapsed_s=latency / 1000,
                failed=[*failed, request],
            )
        usage = resp.usage
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        completion = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
        if usage is None:
            log.warning(
                "llm_no_usage", hint="the endpoint reported no usage; the ledger uses tiktoken's count"
            )
            prompt = expected
            enc = encoding_for_model(self.model)
            completion = len(enc.encode(resp.choices[0].message.content or "", disallowed_special=()))
        reply = LLMReply(
            text=resp.choices[0].message.content or "",
            model=resp.model or self.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            tiktoken_prompt_tokens=expected,
            latency_ms=latency,
            cost_usd=self.cost(prompt, completion),
            request_id=getattr(resp, "id", "") or "",
            usage_source="api" if usage is not None else "tiktoken",
            attempts=len(failed) + 1,
            failed=list(failed),
        )
        log.info(
            "llm_call",
            model=reply.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached=cached,
            tiktoken_prompt_tokens=expected,
            latency_ms=round(latency, 1),
            failed_before=len(failed),
        )
        return reply
