"""Web — the reader's chat and the operators' and staff's tabs (Gradio on FastAPI behind the request guard); app.py launches it.
May import: everything below it (shared top level, ingest, answer, quality); nothing imports web but app.py and the CLI."""
