"""The HTTP API's routes, one module per concept; app.py mounts them under /v1."""
