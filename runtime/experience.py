"""An experience to learn from: a conversation (OpenAI-format messages) or a list of
behaviour/event records, as it enters skillyard and as the extraction step reads it.

The boundary is pydantic (``ExperienceIn``): bounded sizes, known roles, exactly one of
``messages`` or ``events``. Inside it is an :class:`Experience` dataclass.

Durable signals. Most conversations are one-off requests ("what is 2+2?") that teach
nothing lasting; sending each to a model would spend tokens to learn that. A cheap,
deterministic scan (:func:`durable_signals`) looks for what a skill is made of: a stated
preference or constraint ("always ...", "never ...", "from now on ...", "I prefer ..."),
a correction of the assistant ("no, ...", "that's wrong", "instead ..."), or a procedure
(numbered steps, "first ... then ..."). Only an experience with at least one signal goes
to the model, unless the caller forces it (``skillyard learn --now``). The scan is a
gate on spending, not the judge: the model still decides, and may find nothing.

Evidence. The model must quote the user's own words that carry the durable rule; a
quote that is not in the experience (:meth:`Experience.contains`) means the candidate
was invented, and it is discarded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGES = 500
MAX_EVENTS = 1000
MAX_TEXT = 100_000  # characters of one message's or event's text
TRANSCRIPT_TOKENS = 12_000  # of the experience shown to the extraction model (the newest part)

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessageIn(BaseModel):
    """One OpenAI-format chat message. Content is text or a list of parts (only text parts
    are read); other fields (name, tool_calls, tool_call_id) are kept as they come."""

    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[dict[str, Any]] | None = None


class EventIn(BaseModel):
    """One behaviour or event record: what happened (`type`), in words (`text`), with
    optional structured `data`, an `outcome` and a time."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    data: dict[str, Any] | None = None
    outcome: str | None = Field(default=None, max_length=64)
    ts: str | None = Field(default=None, max_length=64)


class ExperienceIn(BaseModel):
    """A conversation or a list of events (exactly one, not empty)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessageIn] | None = Field(default=None, max_length=MAX_MESSAGES)
    events: list[EventIn] | None = Field(default=None, max_length=MAX_EVENTS)

    @model_validator(mode="after")
    def _one_kind(self) -> ExperienceIn:
        if bool(self.messages) == bool(self.events):
            raise ValueError("give either a non-empty `messages` list or a non-empty `events` list")
        return self

    def experience(self) -> Experience:
        """The experience inside."""
        if self.messages:
            return Experience.of_messages([m.model_dump(exclude_none=True) for m in self.messages])
        return Experience.of_events([e.model_dump(exclude_none=True) for e in self.events or []])


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content[:MAX_TEXT]
    if isinstance(content, list):
        parts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"
        ]
        return "".join(str(p) for p in parts)[:MAX_TEXT]
    return str(content)[:MAX_TEXT]


# -- durable signals ----------------------------------------------------------------------------
# Each pattern is one kind of lasting information. Matched on the user's words (and event
# texts), case-insensitive, on word boundaries. English only: an experience in another
# language needs --now (the model reads any language).
SIGNALS: dict[str, tuple[str, ...]] = {
    "preference": (
        r"always",
        r"never",
        r"from now on",
        r"going forward",
        r"in (the )?future",
        r"every time",
        r"whenever",
        r"by default",
        r"i (would )?prefer",
        r"make sure",
        r"remember (to|that)",
        r"do not|don't|dont",
        r"must (always|never|be|use|include)",
        r"please (always|keep|stop)",
    ),
    "correction": (
        r"no,",
        r"not what i (asked|wanted|meant)",
        r"that'?s (wrong|incorrect|not right)",
        r"wrong",
        r"instead( of)?",
        r"actually,",
        r"you (forgot|missed|ignored)",
        r"stop (doing|using|adding)",
    ),
    "procedure": (
        r"step \d",
        r"first,? .{0,200}\bthen\b",
        r"1[.)]\s+\S[^\n]*\n\s*2[.)]\s+\S",  # a numbered list of steps
    ),
}
_COMPILED = {
    kind: [re.compile(rf"(?<![\w]){p}", re.IGNORECASE | re.DOTALL) for p in patterns]
    for kind, patterns in SIGNALS.items()
}
EVENT_SIGNAL_TYPES = re.compile(r"correct|prefer|feedback|rule|constraint|policy|retry|fail|reject", re.I)
REPEATED_EVENTS = 3  # the same event type this many times is a pattern worth a look


@dataclass
class Signal:
    """One durable signal: its kind and the words that showed it."""

    kind: str  # preference, correction, procedure, events
    excerpt: str

    def to_dict(self) -> dict[str, str]:
        """As JSON-ready data."""
        return {"kind": self.kind, "excerpt": self.excerpt}


@dataclass
class Experience:
    """A conversation (`messages`, OpenAI format) or behaviour records (`events`)."""

    kind: Literal["conversation", "events"]
    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of_messages(cls, messages: list[dict[str, Any]]) -> Experience:
        """A conversation."""
        return cls("conversation", messages=list(messages))

    @classmethod
    def of_events(cls, events: list[dict[str, Any]]) -> Experience:
        """A list of event records."""
        return cls("events", events=list(events))

    def user_texts(self) -> list[str]:
        """What the user said (conversation), or what the events say: where evidence must come from."""
        if self.kind == "conversation":
            return [text_of(m.get("content")) for m in self.messages if m.get("role") == "user"]
        out = []
        for e in self.events:
            out.append(str(e.get("text") or ""))
            if e.get("data") is not None:
                out.append(json.dumps(e["data"], sort_keys=True, default=str))
        return out

    def user_turns(self) -> int:
        """How many user messages (or events) the experience holds."""
        if self.kind == "conversation":
            return sum(1 for m in self.messages if m.get("role") == "user")
        return len(self.events)

    def signals(self) -> list[Signal]:
        """The durable signals in the experience (see the module docstring), at most one per kind."""
        found: dict[str, Signal] = {}
        for text in self.user_texts():
            for kind, patterns in _COMPILED.items():
                if kind in found:
                    continue
                for pattern in patterns:
                    m = pattern.search(text)
                    if m:
                        start = max(0, m.start() - 40)
                        found[kind] = Signal(kind, " ".join(text[start : m.end() + 40].split())[:160])
                        break
        if self.kind == "events":
            types = [str(e.get("type", "")) for e in self.events]
            flagged = [t for t in types if EVENT_SIGNAL_TYPES.search(t)]
            repeated = [t for t in set(types) if types.count(t) >= REPEATED_EVENTS]
            if flagged or repeated:
                found["events"] = Signal(
                    "events", f"event types: {', '.join(sorted(set(flagged) | set(repeated)))[:150]}"
                )
        return list(found.values())

    def contains(self, quote: str) -> bool:
        """Whether `quote` is in what the user said (case and spacing ignored)."""
        want = _normal(quote)
        if len(want) < 3:
            return False
        return any(want in _normal(text) for text in self.user_texts())

    def transcript(self, max_tokens: int = TRANSCRIPT_TOKENS, model: str = "gpt-4o-mini") -> str:
        """The experience as text for the extraction prompt: role-tagged messages (tool calls
        named, tool results cut short) or one line per event; the newest part when it is
        longer than `max_tokens`."""
        from .tokens import encoding_for_model

        lines: list[str] = []
        if self.kind == "conversation":
            for m in self.messages:
                role = str(m.get("role", "?"))
                text = text_of(m.get("content"))
                if role == "tool":
                    text = text[:600] + (" ..." if len(text) > 600 else "")
                calls = m.get("tool_calls") or []
                if calls:
                    names = ", ".join(str((c.get("function") or {}).get("name", "?")) for c in calls)
                    text = (text + f" [called tools: {names}]").strip()
                if text:
                    lines.append(f"[{role}] {text}")
        else:
            for e in self.events:
                parts = [f"[event {e.get('type')}]", str(e.get("text") or "")]
                if e.get("data") is not None:
                    parts.append(json.dumps(e["data"], sort_keys=True, default=str)[:600])
                if e.get("outcome"):
                    parts.append(f"(outcome: {e['outcome']})")
                lines.append(" ".join(p for p in parts if p))
        text = "\n".join(lines)
        enc = encoding_for_model(model)
        tokens = enc.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        return "[... earlier part cut ...]\n" + enc.decode(tokens[-max_tokens:])

    def fingerprint(self) -> str:
        """A stable hash of the experience (the proxy's "learnt from this already" check)."""
        import hashlib

        data = self.messages if self.kind == "conversation" else self.events
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[\"'`“”‘’]", "", text).lower().split())
