"""Answer — a question in, a cited Answer out: retrieve (timeframe) → context → prompt → llm → citations, run by pipeline; explain traces it.
May import: the shared top level and ingest (the store, the lexical index, the chunker's helpers); never quality or web."""
