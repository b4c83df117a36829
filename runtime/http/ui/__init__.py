"""The operators' console: web pages at /ui over the same services as the API
(server-rendered Jinja2 templates with htmx; no build step). See console.py for its
invariants and docs/SECURITY.md for its threat model."""

from .console import install as install_console

__all__ = ["install_console"]
