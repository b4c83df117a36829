"""The HTTP API surface (FastAPI). Domain modules never import it; it imports them."""

from .app import create_app

__all__ = ["create_app"]
