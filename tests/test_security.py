"""Security hardening (SECURITY.md points at each test here): article content must not speak in
the product's voice, fetches must not reach inside, and nothing grows without bound."""

from __future__ import annotations

import time

from rag.load import load_sources


def test_adversarial_100kb_lines_load_in_under_a_second(tmp_path, embedding_model):
    """Lines built to make backtracking regexes explode (a heading with a run of spaces, a run of
    brackets, a short line + spaces + x, an unclosed link) must load and chunk in linear time."""
    from rag.components import Components
    from rag.settings import Settings

    n = 100_000
    (tmp_path / "heading.md").write_text("# a" + " " * n + "b\n\nA paragraph.\n")
    (tmp_path / "brackets.md").write_text("Title line\n\n" + "[" * n + "\n\nA paragraph.\n")
    (tmp_path / "spaces.txt").write_text("ab" + " " * n + "x\n\nDate: 2024" + " " * n + "x\n\nA paragraph.\n")
    (tmp_path / "link.md").write_text("Title line\n\n[a](" + "(" * n + "\n\n![" + "[" * n + "\n\nText.\n")
    (tmp_path / "key.md").write_text("**Date" + " " * n + ":" + " " * n + "x\n\nA paragraph.\n")
    chunker = Components(Settings(data_dir=tmp_path / "data", _env_file=None), embedding_model=embedding_model).chunker
    chunker.split(load_sources([str(tmp_path / "heading.md")]).articles[0])  # warm up the tokenizer

    started = time.perf_counter()
    loaded = load_sources([str(tmp_path)])
    chunks = [c for article in loaded.articles for c in chunker.split(article)]
    elapsed = time.perf_counter() - started

    assert not loaded.failures and len(loaded.articles) == 5 and chunks
    assert elapsed < 1.0, f"loading five 100 KB adversarial lines took {elapsed:.1f} s"
