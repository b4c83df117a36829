"""The OpenAI-compatible proxy's routes (runtime/proxy.py does the work): chat completions,
streamed or not, the upstream's models, and a preview of what retrieval would inject.

The client authenticates with its skillyard tenant key (``Authorization: Bearer sy_...``,
as the OpenAI SDK sends its api_key); the upstream key stays on the server. Errors on
these paths take OpenAI's shape (runtime/http/errors.py). `X-Skillyard-Scope: private |
shared | all` narrows which skills a request may use (default all).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ...errors import ConfigError
from ...experience import MAX_MESSAGES, ChatMessageIn
from ...proxy import Proxy
from ..deps import State, View
from ..errors import request_id
from ..schemas import COMMON_ERRORS, error_doc

router = APIRouter(tags=["proxy"])
ScopeH = Annotated[Literal["all", "private", "shared"], Header(alias="X-Skillyard-Scope")]


class ChatRequest(BaseModel):
    """An OpenAI chat completion request. Fields beyond these go to the upstream as they came."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=8)


class PreviewRequest(BaseModel):
    """What to preview retrieval for: a conversation, or a query."""

    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessageIn] | None = Field(default=None, max_length=MAX_MESSAGES)
    query: str | None = Field(default=None, max_length=2000)
    top_k: int | None = Field(default=None, ge=0, le=20)
    threshold: float | None = Field(default=None, ge=-1, le=1)
    scope: Literal["all", "private", "shared"] = "all"


def _proxy(state: State) -> Proxy:
    proxy = getattr(state, "proxy", None)
    if proxy is None:  # the routes are only mounted with a proxy; belt and braces
        raise ConfigError("this server has no upstream model: start it with `skillyard proxy`")
    return proxy


@router.post(
    "/chat/completions",
    responses={
        **COMMON_ERRORS,
        200: {
            "description": "A chat.completion object, or with stream=true server-sent chat.completion.chunk "
            "events ending with `data: [DONE]`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        400: error_doc("Invalid request (OpenAI's error shape)"),
        429: error_doc("Rate-limited by the upstream"),
        502: error_doc("The upstream model failed"),
        504: error_doc("The upstream model did not answer in time"),
    },
)
def chat_completions(
    request: Request,
    state: State,
    view: View,
    body: ChatRequest,
    scope: ScopeH = "all",
) -> Any:
    """OpenAI's chat completions, in front of the upstream model: the conversation's skills
    are injected, the verified ones offered as tools and run in the sandbox when the model
    calls them; the answer is one ordinary completion (streamed with `stream: true`)."""
    proxy = _proxy(state)
    data = body.model_dump(exclude_none=True)
    data["messages"] = [m.model_dump(exclude_none=True) for m in body.messages]
    exchange = proxy.open(view, data, request_id=request_id(request) or "", scope=scope)
    if not exchange.stream:
        return JSONResponse(proxy.complete(exchange))
    events = proxy.start(exchange)  # the first upstream request: its failure is still an HTTP error
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/models", responses={**COMMON_ERRORS, 502: error_doc("The upstream model failed")})
def models(state: State, view: View) -> dict[str, Any]:
    """The upstream's models (an upstream without a model list: the configured model)."""
    return {"object": "list", "data": _proxy(state).models()}


@router.post("/retrieval/preview", responses=COMMON_ERRORS)
def preview(state: State, view: View, body: PreviewRequest) -> dict[str, Any]:
    """What the proxy would inject for this conversation (or query): every candidate with its
    score, whether it was selected and why, and the system message it would add."""
    proxy = _proxy(state)
    messages = [m.model_dump(exclude_none=True) for m in body.messages or []]
    return proxy.retriever.retrieve(
        view, messages, top_k=body.top_k, threshold=body.threshold, query=body.query, scope=body.scope
    ).to_dict()


@router.get("/retrieval/preview", responses=COMMON_ERRORS)
def preview_query(
    state: State,
    view: View,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    top_k: Annotated[int | None, Query(ge=0, le=20)] = None,
    threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
    scope: Literal["all", "private", "shared"] = "all",
) -> dict[str, Any]:
    """The preview for a query (`q`) rather than a conversation."""
    proxy = _proxy(state)
    return proxy.retriever.retrieve(
        view, [], top_k=top_k, threshold=threshold, query=q, scope=scope
    ).to_dict()
