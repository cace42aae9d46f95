"""Ingest — sources in, an index out: load (formats, clean, fetch, feeds, watch) → chunk → embed → store + lexical, run by index.
May import: the shared top level (settings, schema, redact, db) and itself; never answer, quality or web."""
