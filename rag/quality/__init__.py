"""Quality — measuring answers: question sets through the pipeline (evaluate), stored runs and comparisons, HTML reports, retrieval benchmarks.
May import: the shared top level, ingest and answer; never web."""
