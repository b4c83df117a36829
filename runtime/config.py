"""Settings: one pydantic model, read from SKILLYARD_* environment variables and
an optional `.skillyard/config.toml`-free `skillyard.env` file. Nothing here touches disk."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting, from SKILLYARD_* variables (and OPENAI_* for the LLM) or skillyard.env."""

    model_config = SettingsConfigDict(
        env_prefix="SKILLYARD_", env_file="skillyard.env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(default=Path(".skillyard"), description="State directory (store, wheelhouse, locks).")
    store_uri: str | None = Field(default=None, description="LanceDB URI; default: HOME/store.")
    wheelhouse: Path | None = Field(default=None, description="Host wheelhouse; default: HOME/wheelhouse.")
    base: str = Field(
        default="auto", description="Base image source: auto, offline (debootstrap) or registry."
    )
    runner_image: str | None = Field(
        default=None, description="Use this runner image instead of building one."
    )
    coverage_threshold: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="Obsolete: line coverage is reported as information, never enforced (the mutation check "
        "replaced it).",
    )
    mutation_threshold: float = Field(
        default=60.0,
        ge=0,
        le=100,
        description="Share of sampled mutants (%) the tests must kill; a package may raise it, not lower it.",
    )
    mutants: int = Field(
        default=10, ge=0, le=500, description="Mutants sampled per gate; 0 turns the mutation check off."
    )
    gate_timeout: float = Field(default=180.0, gt=0)
    max_file_bytes: int = 5 * 1024 * 1024
    max_package_bytes: int = 20 * 1024 * 1024
    max_files: int = 1000
    runtime: str | None = Field(default=None, description="OCI runtime for containers (e.g. runsc).")
    pool_size: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Warm containers kept per skill image and tenant; "
        "0 = every call in a fresh one-shot container (strict isolation).",
    )
    pool_max_calls: int = Field(
        default=100, ge=1, description="Calls a warm container serves before it is recycled."
    )
    pool_idle_s: float = Field(
        default=300.0, gt=0, description="Idle seconds before a warm container is removed."
    )
    cluster: str | None = Field(
        default=None,
        description="A Ray cluster's head address (HOST:PORT) to run gates and calls on (docs/SCALING.md); "
        "unset: this machine's Docker engine. Needs `pip install 'skillyard[cluster]'`.",
    )
    cluster_name: str = Field(
        default="skillyard",
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="Labels the containers of one cluster's nodes: clusters sharing a Docker engine need "
        "different names (a node removes only its own cluster's leftovers).",
    )
    image_registry: str | None = Field(
        default=None,
        description="On a cluster: a registry (HOST[:PORT]/PREFIX) the first node to need a skill image "
        "pushes it to and the others pull it from; unset: every node builds its own.",
    )

    # Image retention (runtime/image_retention.py): what a server keeps of its skill images.
    image_budget: str | None = Field(
        default=None,
        description="Disk budget for the images of skill versions that are not current (e.g. 5g); "
        "none: every recently used one is kept.",
    )
    image_keep_recent: str = Field(
        default="7d", description="Keep the images of versions used within this long (30m, 12h, 7d, 2w)."
    )
    image_grace: str = Field(
        default="1h", description="Never remove an image younger than this (a gate may be using it)."
    )
    image_gc_interval_s: float = Field(
        default=3600.0, ge=0, description="Seconds between a server's retention passes; 0 = never."
    )

    @field_validator("image_budget")
    @classmethod
    def _image_budget(cls, v: str | None) -> str | None:
        if v is not None and v.strip():
            from sandbox.limits import parse_size

            parse_size(v.strip())  # ValueError: a field error naming the setting
            return v.strip()
        return None

    @field_validator("image_keep_recent", "image_grace")
    @classmethod
    def _duration(cls, v: str) -> str:
        from .times import parse_duration

        parse_duration(v)
        return v

    # LLM access (issue: auto-fix). Read without the SKILLYARD_ prefix too, as the openai SDK does.
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    model: str = Field(default="gpt-4o-mini")
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    default_baseline_tokens: int = Field(
        default=4000,
        ge=0,
        description="Tokens a task costs without a skill, when the skill states no baseline_tokens.",
    )
    llm_timeout: float = Field(
        default=120.0, gt=0, description="Seconds to wait for one LLM request (each attempt)."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Retries after a failed LLM request "
        "(timeouts, 429, 5xx, connection errors); attempts = 1 + retries.",
    )

    # The proxy (`skillyard proxy`): its upstream model, and how it retrieves and runs skills.
    upstream_base_url: str | None = Field(
        default=None, description="The proxy's upstream OpenAI-compatible endpoint; default OPENAI_BASE_URL."
    )
    upstream_api_key: SecretStr | None = Field(
        default=None, description="The upstream's key (it stays on the server); default OPENAI_API_KEY."
    )
    proxy_top_k: int = Field(default=3, ge=0, le=20, description="Skills injected per request, at most.")
    proxy_threshold: float = Field(
        default=0.35, ge=-1, le=1, description="Retrieval score (cosine) a skill needs to be injected."
    )
    proxy_budget_tokens: int = Field(
        default=3000, ge=0, description="Tokens of skill instructions injected per request, at most."
    )
    proxy_max_rounds: int = Field(
        default=6, ge=1, le=32, description="Upstream requests per chat request (tool runs in between)."
    )
    proxy_learn: bool = Field(default=True, description="Learn from proxied conversations in the background.")

    @property
    def store(self) -> str:
        """The LanceDB URI: store_uri, else HOME/store."""
        return self.store_uri or str(self.home / "store")

    @property
    def wheel_dir(self) -> Path:
        """The host wheelhouse: wheelhouse, else HOME/wheelhouse."""
        return self.wheelhouse or (self.home / "wheelhouse")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (tests clear the cache)."""
    return Settings()


def version() -> str:
    """skillyard's installed version ("0" in a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("skillyard")
    except PackageNotFoundError:
        return "0"
