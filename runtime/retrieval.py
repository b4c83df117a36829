"""Which skills a conversation gets: retrieval for the proxy (and its preview).

For each chat request the query is what the user said last (the last user message, and
the one before it when the last is short), and the candidates are the hybrid search's
hits over what the tenant sees (its private skills and the shared ones, runtime/views.py).
The search's scores are rank-fusion scores, comparable within one list only, so the
threshold is applied to a score with a meaning of its own: the cosine similarity of the
query and the skill's "name: description" (the registry's embedder; the word-Jaccard
index without one). A hit is selected when its score reaches `threshold`, it is among the
`top_k` best, and its instructions fit the token budget left.

A selected skill's instructions go into the context; a *verified* one (tier verified,
runtime/tiers.py: registered code whose gate ran its tests and passed) is also offered as a
tool; an instructions-only one never runs.

Skill vectors are cached per (store, name, version): a version's text never changes, so a
request embeds only its query (and skills it has not seen before).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from . import tiers
from .experience import text_of
from .exports import openai_tool
from .maintain import jaccard
from .records import embed_text
from .tokens import count_tokens

if TYPE_CHECKING:
    from .package import SkillPackage
    from .views import Target, TenantView

log = structlog.get_logger(__name__)

DEFAULT_TOP_K = 3
DEFAULT_THRESHOLD = 0.35  # all-MiniLM-L6-v2: unrelated texts score about -0.1..0.15, paraphrases 0.3+
DEFAULT_BUDGET = 3000  # tokens of instructions injected per request, all skills together
SHORT_QUERY = 40  # characters: a last user message this short takes the one before it along
MAX_QUERY = 2000
VECTOR_CACHE = 4096


@dataclass
class Candidate:
    """A skill the search found for the conversation, scored, selected or not (and why)."""

    target: Target
    package: SkillPackage
    score: float
    search_score: float
    selected: bool = False
    why: str = ""
    text: str = ""  # what goes into the context
    tokens: int = 0  # of `text`
    tool: dict[str, Any] | None = None  # the Chat Completions tool definition, for a verified skill
    tool_tokens: int = 0

    @property
    def name(self) -> str:
        """The skill's name."""
        return self.target.name

    def to_dict(self) -> dict[str, Any]:
        """As the preview shows it."""
        return {
            "name": self.name,
            "scope": self.target.scope,
            "version": self.target.record.version,
            "score": round(self.score, 4),
            "search_score": round(self.search_score, 6),
            "selected": self.selected,
            "why": self.why,
            "tier": self.target.record.tier,
            "tool": self.tool is not None,
            "context_tokens": self.tokens,
            "tool_tokens": self.tool_tokens,
        }


@dataclass
class Retrieval:
    """The skills for one conversation: every candidate, the selected ones first."""

    query: str
    threshold: float
    top_k: int
    budget: int
    candidates: list[Candidate] = field(default_factory=list)
    method: str = "embedding"

    @property
    def selected(self) -> list[Candidate]:
        """The skills that go into the request."""
        return [c for c in self.candidates if c.selected]

    def system_message(self) -> str | None:
        """The context added to the request (None when nothing was selected)."""
        chosen = self.selected
        if not chosen:
            return None
        head = (
            "# Skills\nThese skills (from skillyard) apply to this conversation: follow their "
            "instructions. A skill marked as a tool runs in a sandbox when you call it, and "
            "returns JSON."
        )
        return "\n\n".join([head, *(c.text for c in chosen)])

    def to_dict(self) -> dict[str, Any]:
        """The preview's answer."""
        return {
            "query": self.query,
            "threshold": self.threshold,
            "top_k": self.top_k,
            "budget_tokens": self.budget,
            "method": self.method,
            "injected_tokens": sum(c.tokens for c in self.selected),
            "skills": [c.to_dict() for c in self.candidates],
            "system_message": self.system_message(),
        }


def query_of(messages: list[dict[str, Any]]) -> str:
    """The retrieval query of a conversation: its last user message, with the previous
    one when the last is short ("and in Celsius?")."""
    said = [text_of(m.get("content")).strip() for m in messages if m.get("role") == "user"]
    said = [s for s in said if s]
    if not said:
        return ""
    query = said[-1]
    if len(query) < SHORT_QUERY and len(said) > 1:
        query = f"{said[-2]}\n{query}"
    return query[-MAX_QUERY:]


def skill_text(pkg: SkillPackage, verified: bool, semver: str | None) -> str:
    """A skill as it is injected: name and version, description, instructions, and how to run it."""
    label = f"v{semver}" if semver else ""
    lines = [f"## {pkg.name} {label}".rstrip(), pkg.description.strip(), pkg.instructions.strip()]
    if verified:
        lines.append(f"(Run it with the tool `{pkg.name}`: the result is computed, not guessed.)")
    return "\n".join(line for line in lines if line)


class Retriever:
    """Retrieval with a cache of skill vectors (see the module docstring); thread-safe."""

    def __init__(
        self,
        *,
        top_k: int = DEFAULT_TOP_K,
        threshold: float = DEFAULT_THRESHOLD,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        self.top_k = top_k
        self.threshold = threshold
        self.budget = budget
        self._vectors: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def retrieve(
        self,
        view: TenantView,
        messages: list[dict[str, Any]],
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        budget: int | None = None,
        query: str | None = None,
        scope: str = "all",
    ) -> Retrieval:
        """The skills for `messages` as `view` sees them (`scope`: all, private, shared)."""
        from .learning import semver_of

        top_k = self.top_k if top_k is None else top_k
        threshold = self.threshold if threshold is None else threshold
        budget = self.budget if budget is None else budget
        query = query_of(messages) if query is None else query[:MAX_QUERY]
        result = Retrieval(query=query, threshold=threshold, top_k=top_k, budget=budget)
        if not query or top_k < 1:
            return result
        embedder = view.shared.registry.embedder
        result.method = "embedding" if embedder is not None else "jaccard"
        # The query is embedded once, for both stores' searches and the scores below.
        qv = np.asarray(embedder.embed([query])[0], dtype=np.float64) if embedder is not None else None
        hits = view.search(query, limit=max(top_k * 3, 5), query_vector=qv)
        targets = [
            (view.target_of(rec, "private" if hit_scope == "private" else "shared"), search_score)
            for rec, search_score, hit_scope in hits
            if scope in ("all", hit_scope)
        ]
        if not targets:
            return result
        scores = self._scores(query, qv, [t for t, _ in targets], embedder)
        for (target, search_score), score in zip(targets, scores, strict=True):
            pkg = target.yard.package(target.name, target.record.version)
            result.candidates.append(Candidate(target, pkg, score, search_score))
        result.candidates.sort(key=lambda c: -c.score)
        used = 0
        for cand in result.candidates:
            if cand.score < threshold:
                cand.why = f"score {cand.score:.2f} below the threshold {threshold:g}"
                continue
            if len(result.selected) >= top_k:
                cand.why = f"beyond the top {top_k}"
                continue
            verified = tiers.verified(cand.target.record, cand.package)
            cand.text = skill_text(cand.package, verified, semver_of(cand.package))
            cand.tokens = count_tokens(cand.text)
            if used + cand.tokens > budget:
                cand.why = f"its {cand.tokens} tokens do not fit the {budget - used} left of the budget"
                cand.text, cand.tokens = "", 0
                continue
            used += cand.tokens
            cand.selected = True
            cand.why = "selected"
            if verified:
                cand.tool = openai_tool(cand.package, style="chat")
                cand.tool_tokens = count_tokens(str(cand.tool))
        return result

    def _scores(self, query: str, qv: np.ndarray | None, targets: list[Target], embedder: Any) -> list[float]:
        """Cosine of the query (`qv`) and each skill's text (word Jaccard without an embedder)."""
        if not targets:
            return []
        texts = [embed_text(t.name, t.record.description, t.record.tags) for t in targets]
        if embedder is None or qv is None:
            return [jaccard(query, text) for text in texts]
        keys = [(t.yard.registry.uri, t.name, t.record.version) for t in targets]
        with self._lock:
            missing = [i for i, k in enumerate(keys) if k not in self._vectors]
        fresh = embedder.embed([texts[i] for i in missing]) if missing else []
        with self._lock:
            for row, i in enumerate(missing):
                self._vectors[keys[i]] = np.asarray(fresh[row], dtype=np.float64)
            vectors = [self._vectors[k] for k in keys]
            for k in keys:
                self._vectors.move_to_end(k)
            while len(self._vectors) > VECTOR_CACHE:
                self._vectors.popitem(last=False)
        out = []
        for v in vectors:
            norm = float(np.linalg.norm(qv) * np.linalg.norm(v)) or 1.0
            out.append(float(np.clip(qv @ v / norm, -1.0, 1.0)))
        return out
