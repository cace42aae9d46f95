"""Progress for long work (indexing, evaluation, assembling the local model), on stderr.

A tqdm bar on a terminal; on a pipe or in a log file, one plain line every ~10% instead
(carriage-return redraws make logs unreadable).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
Progress = Callable[[Iterable[T], int], Iterable[T]]


def progress_bar(label: str, unit: str) -> Progress:
    """A wrapper ``(items, total) -> items`` that reports progress as the items are consumed."""

    def wrap(items: Iterable[T], total: int) -> Iterable[T]:
        if sys.stderr.isatty():
            from tqdm import tqdm

            return tqdm(items, total=total, desc=label, unit=f" {unit}", file=sys.stderr)
        return log_every(items, total, label, unit)

    return wrap


def progress_over(total: int, label: str, unit: str) -> Callable[[Iterable[T]], Iterable[T]]:
    """``progress_bar`` for a caller that takes a one-argument wrapper (``rag.quality.evaluate.run``)."""
    bar = progress_bar(label, unit)
    return lambda items: bar(items, total)


def log_every(items: Iterable[T], total: int, label: str, unit: str) -> Iterator[T]:
    step = max(1, total // 10)
    for i, item in enumerate(items, 1):
        if i % step == 0 or i == total:
            print(f"{label}: {i}/{total} {unit}", file=sys.stderr, flush=True)
        yield item
