"""The commands that serve other agents: `serve` (the HTTP API), `proxy` (the API and an
OpenAI-compatible endpoint in front of a model) and `mcp` (the MCP server). Imported only
when used: their stacks would cost every other command about a second."""

from __future__ import annotations

import signal

import click

from ..config import get_settings
from ..errors import ConfigError
from ..serving import DEFAULT_MAX_RUNS
from .errors import Command
from .signals import exit_on_signals

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8700


def console_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, tls: bool = False) -> str:
    """Where `skillyard serve --host HOST --port PORT` serves the operators' console."""
    shown = "<this host's address>" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/ui"


@click.command("serve", cls=Command)
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option(
    "--max-runs", type=int, default=None, help=f"Concurrent runs per tenant (default {DEFAULT_MAX_RUNS})."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve over TLS with this certificate (PEM); the console's cookies are then Secure.",
)
@click.option(
    "--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None, help="The certificate's key."
)
@click.option(
    "--cluster",
    "cluster",
    default=None,
    metavar="ADDRESS",
    help="Run gates and calls on the Ray cluster whose head is at ADDRESS (HOST:PORT; default "
    "SKILLYARD_CLUSTER); see docs/SCALING.md.",
)
def serve_command(
    host: str,
    port: int,
    max_runs: int | None,
    log_level: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    cluster: str | None,
) -> None:
    """Serve the HTTP API (see docs/API.md) and the operators' console at /ui. Requests need a
    tenant key: `skillyard tenant add NAME`."""
    import uvicorn

    from .. import logs
    from ..embeddings import warm_up_in_background
    from ..http import create_app
    from ..http.accesslog import log_config
    from ..tenants import Tenants

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("TLS needs both --ssl-certfile and --ssl-keyfile")
    logs.configure(log_level.upper(), json_logs=True)
    use_cluster(cluster)
    settings = get_settings()
    if not Tenants(settings.home):
        click.echo(
            "skillyard: no tenants yet, so every /v1 request will get 401; add one with "
            "`skillyard tenant add NAME --admin`",
            err=True,
        )
    app = create_app(settings, max_concurrent_runs=max_runs)
    url = console_url(host, port, tls=bool(ssl_certfile))
    click.echo(f"skillyard: the API is at /v1 and the console at {url}", err=True)
    warm_up_in_background()  # search's query embedding: the model and its fast encoder, off the request path
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(),  # credentials in request targets never reach the access log
        server_header=False,
        proxy_headers=False,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


def use_cluster(address: str | None) -> None:
    """Make every yard of this process run on the cluster at `address` (as SKILLYARD_CLUSTER
    would), after checking that it answers: a server must not start on a wrong address."""
    if not address:
        return
    import os

    from ..cluster import cluster_backend

    os.environ["SKILLYARD_CLUSTER"] = address
    get_settings.cache_clear()
    cluster_backend(get_settings()).cluster.connect()  # ClusterUnavailable says what to do


@click.command("proxy", cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8702, show_default=True)
@click.option(
    "--upstream",
    default=None,
    metavar="URL",
    help="The upstream OpenAI-compatible endpoint (default SKILLYARD_UPSTREAM_BASE_URL, else "
    "OPENAI_BASE_URL). Its key comes from SKILLYARD_UPSTREAM_API_KEY or OPENAI_API_KEY, never a flag.",
)
@click.option(
    "--model", default=None, help="The model used when a request names none (default SKILLYARD_MODEL)."
)
@click.option(
    "--top-k", type=click.IntRange(0, 20), default=None, help="Skills injected per request, at most."
)
@click.option(
    "--threshold", type=click.FloatRange(-1, 1), default=None, help="Retrieval score a skill needs (cosine)."
)
@click.option(
    "--max-rounds", type=click.IntRange(1, 32), default=None, help="Upstream requests per chat request."
)
@click.option("--no-learn", is_flag=True, help="Do not learn from the conversations.")
@click.option(
    "--max-runs", type=int, default=None, help=f"Concurrent runs per tenant (default {DEFAULT_MAX_RUNS})."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def proxy_command(
    host: str,
    port: int,
    upstream: str | None,
    model: str | None,
    top_k: int | None,
    threshold: float | None,
    max_rounds: int | None,
    no_learn: bool,
    max_runs: int | None,
    log_level: str,
) -> None:
    """Serve an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models) in front of an
    upstream model: each request gets the tenant's matching skills in its context, the
    verified ones as tools run in the sandbox, and conversations teach new skills in the
    background. Clients use a tenant key as their API key; the HTTP API is served beside it."""
    import uvicorn

    from .. import logs
    from ..embeddings import warm_up_in_background
    from ..http import create_app
    from ..llm import LLM
    from ..tenants import Tenants

    logs.configure(log_level.upper(), json_logs=True)
    base = get_settings()
    changes = {
        "upstream_base_url": upstream,
        "proxy_top_k": top_k,
        "proxy_threshold": threshold,
        "proxy_max_rounds": max_rounds,
        "model": model,
    }
    settings = base.model_copy(update={k: v for k, v in changes.items() if v is not None})
    if no_learn:
        settings = settings.model_copy(update={"proxy_learn": False})
    key = settings.upstream_api_key or settings.openai_api_key
    upstream_llm = LLM(
        settings,
        base_url=settings.upstream_base_url or settings.openai_base_url,
        api_key=key.get_secret_value() if key is not None else None,
    )
    if not Tenants(settings.home):
        click.echo(
            "skillyard: no tenants yet, so every request will get 401; add one with "
            "`skillyard tenant add NAME` and use its key as the client's API key",
            err=True,
        )
    app = create_app(settings, max_concurrent_runs=max_runs, upstream=upstream_llm)
    warm_up_in_background()
    click.echo(
        f"skillyard proxy: http://{host}:{port}/v1 in front of {upstream_llm.base_url or 'the OpenAI API'}",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, proxy_headers=False)


@click.command("mcp", cls=Command)
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP only.")
@click.option("--port", type=int, default=8701, show_default=True, help="HTTP only.")
@click.option(
    "--tenant", default=None, help="Serve this tenant's view (stdio), or admit only its keys (http)."
)
@click.option(
    "--max-runs",
    type=int,
    default=None,
    help="Concurrent runs per tenant in this process "
    f"(default SKILLYARD_MAX_CONCURRENT_RUNS, else {DEFAULT_MAX_RUNS}).",
)
def mcp_command(transport: str, host: str, port: int, tenant: str | None, max_runs: int | None) -> None:
    """Serve the registered skills as MCP tools (stdio for a local agent, http for remote ones)."""
    import anyio

    from .. import logs
    from ..embeddings import warm_up_in_background
    from ..mcp_server import SkillTools, http_app, serve_stdio

    logs.configure("WARNING")  # stderr: stdout is the MCP wire over stdio
    exit_on_signals(clean=True, signals=(signal.SIGTERM,))  # so `finally` removes our warm containers
    tools = SkillTools(get_settings(), tenant=tenant, http=transport == "http", max_concurrent_runs=max_runs)
    warm_up_in_background()  # search's query embedding: the model and its fast encoder, off the request path
    try:
        if transport == "stdio":
            anyio.run(serve_stdio, tools)
        else:
            import uvicorn

            from ..http.accesslog import log_config

            if not tools.service.tenants:
                raise ConfigError(
                    "the HTTP transport needs API keys: add a tenant with `skillyard tenant add NAME`"
                )
            uvicorn.run(
                http_app(tools, host=host),
                host=host,
                port=port,
                log_level="warning",
                log_config=log_config(),
                server_header=False,
            )
    finally:
        tools.close()
