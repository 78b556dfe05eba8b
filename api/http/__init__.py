"""The HTTP API (FastAPI): `create_app(settings)` in `app.py`. Routes are thin adapters over the same use
cases as the CLI: they parse, call one use case with the caller's `Principal`, and render its result."""
