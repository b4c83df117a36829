"""LLM access through the openai SDK to any OpenAI-compatible endpoint.

Every call's usage (as the API reports it) is measured together with tiktoken's own
count of the prompt, and the caller records it in the ledger with the outcome.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog

from .config import Settings
from .errors import LLMError, LLMUnavailable
from .tokens import encoding_for_model

log = structlog.get_logger(__name__)


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
    SKILLYARD_LLM_TIMEOUT and SKILLYARD_LLM_MAX_RETRIES."""

    def __init__(
        self, settings: Settings, *, timeout: float | None = None, max_retries: int | None = None
    ) -> None:
        self.settings = settings
        if not settings.openai_base_url and not settings.openai_api_key:
            raise LLMUnavailable(
                "no LLM endpoint is configured: set OPENAI_BASE_URL (any OpenAI-compatible server) and "
                "OPENAI_API_KEY, and SKILLYARD_MODEL for the model name. "
                "Everything except fix and create works without one."
            )
        from openai import DefaultHttpxClient, OpenAI

        self.model = settings.model
        self.timeout = float(settings.llm_timeout if timeout is None else timeout)
        self.max_retries = int(settings.llm_max_retries if max_retries is None else max_retries)
        self._local = threading.local()  # HTTP requests sent by this thread's current chat()

        def count_request(_request: Any) -> None:
            self._local.sent = getattr(self._local, "sent", 0) + 1

        self.client = OpenAI(
            base_url=settings.openai_base_url or None,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none",
            timeout=self.timeout,
            max_retries=self.max_retries,
            http_client=DefaultHttpxClient(event_hooks={"request": [count_request]}),
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The USD cost of a request at the configured prices."""
        s = self.settings
        return (
            prompt_tokens * s.price_input_per_mtok / 1e6 + completion_tokens * s.price_output_per_mtok / 1e6
        )

    def chat(self, messages: list[dict[str, str]], *, json_mode: bool = True) -> LLMReply:
        """One chat request (JSON mode by default); LLMError says what failed and what was spent."""
        import openai

        expected = count_prompt_tokens(messages, self.model)
        started = time.monotonic()
        self._local.sent = 0
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}

        def fail(message: str, exc: Exception) -> LLMError:
            attempts = max(1, getattr(self._local, "sent", 0))
            elapsed = time.monotonic() - started
            spent = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
            return LLMError(message.replace("{spent}", spent), attempts=attempts, elapsed_s=elapsed)

        try:
            resp = self.client.chat.completions.create(**kwargs)
        except openai.RateLimitError as exc:
            raise fail(
                f"the LLM endpoint is rate-limiting us (429) after {{spent}}: {exc.message}. "
                "Wait and retry, or raise your rate limit.",
                exc,
            ) from exc
        except openai.APITimeoutError as exc:
            raise fail(
                f"the LLM endpoint did not answer in time: {{spent}} "
                f"(timeout {self.timeout:g} s per attempt, SKILLYARD_LLM_TIMEOUT; "
                "retries: SKILLYARD_LLM_MAX_RETRIES); retry later",
                exc,
            ) from exc
        except openai.APIConnectionError as exc:
            raise fail(
                f"cannot reach the LLM endpoint at {self.settings.openai_base_url} ({{spent}}): {exc}. "
                "Check OPENAI_BASE_URL and that the server is up.",
                exc,
            ) from exc
        except openai.AuthenticationError as exc:
            raise fail("the LLM endpoint refused our key (401): check OPENAI_API_KEY", exc) from exc
        except openai.APIStatusError as exc:
            raise fail(
                f"the LLM endpoint answered HTTP {exc.status_code} after {{spent}}: {exc.message}", exc
            ) from exc
        latency = (time.monotonic() - started) * 1000
        if not resp.choices:
            raise LLMError(
                "the LLM endpoint returned no choices",
                attempts=max(1, getattr(self._local, "sent", 0)),
                elapsed_s=latency / 1000,
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
            attempts=max(1, getattr(self._local, "sent", 0)),
        )
        log.info(
            "llm_call",
            model=reply.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached=cached,
            tiktoken_prompt_tokens=expected,
            latency_ms=round(latency, 1),
        )
        return reply
