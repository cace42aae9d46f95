"""Scale-out through existing engines: a real `chroma run` server and a real OpenAI-compatible server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.components import Components
from rag.index import index_articles, open_record_manager
from rag.llm import make_generator
from rag.llm_local import ensure_model_file, model_spec, start_server
from rag.load import load_paths
from rag.settings import Settings

from .conftest import REPO
from .test_web import free_port

pytestmark = pytest.mark.slow


def start_chroma(folder: Path, port: int) -> subprocess.Popen:
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if chroma is None:
        pytest.skip("the chroma command is not installed")
    log = (folder / "server.log").open("a")
    process = subprocess.Popen([chroma, "run", "--path", str(folder / "db"), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    import chromadb

    deadline = time.time() + 60
    while True:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            return process
        except Exception:
            if process.poll() is not None or time.time() > deadline:
                pytest.fail(f"chroma run did not start: {(folder / 'server.log').read_text()[-1500:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    process = start_chroma(tmp_path_factory.mktemp("chroma-server"), port)
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_index_and_answer_through_a_chroma_server(chroma_server, tmp_path, embedding_model):
    settings = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=chroma_server,
                        llm="extractive", _env_file=None)
    parts = Components(settings, embedding_model=embedding_model)
    summary = index_articles(load_paths([REPO / "corpus"]).articles, store=parts.store(create=True),
                             record_manager=open_record_manager(settings), chunker=parts.chunker)
    assert summary.added == ["us-ai-export-controls-anthropic"]
    assert not (settings.data_dir / "chroma").exists(), "nothing went into an embedded store"
    answer = parts.pipeline.ask("Which Chinese model has comparable exploitation capabilities?")
    assert "Kimi" in answer.answer and answer.citations

    # A second process's view of the same server (a second app instance) sees the same index.
    other = Components(settings.model_copy(update={"data_dir": tmp_path / "other"}), embedding_model=embedding_model)
    assert other.store()._collection.count() == parts.store()._collection.count()


def test_chroma_server_stopped_and_restarted(tmp_path, embedding_model):
    from rag.store import StoreError

    port = free_port()
    server = start_chroma(tmp_path, port)
    settings = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=port, llm="extractive",
                        _env_file=None)
    parts = Components(settings, embedding_model=embedding_model)
    index_articles(load_paths([REPO / "corpus"]).articles, store=parts.store(create=True),
                   record_manager=open_record_manager(settings), chunker=parts.chunker)
    question = "Which Chinese model has comparable exploitation capabilities?"
    assert "Kimi" in parts.pipeline.ask(question).answer
    server.terminate()
    server.wait(timeout=30)
    with pytest.raises(StoreError, match="not answering"):
        parts.pipeline.ask(question)
    server = start_chroma(tmp_path, port)  # same data folder, same port
    try:
        assert "Kimi" in parts.pipeline.ask(question).answer, "answers resume without restarting the app"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_second_process_on_the_same_chroma_server_sees_the_index(chroma_server, tmp_path):
    import os

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "proc"), "RAG_CHROMA_HOST": "127.0.0.1",
           "RAG_CHROMA_PORT": str(chroma_server), "RAG_LLM": "extractive"}
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "ferries.md").write_text("# Night Ferries Return\n\nDate: 2025-05-01\n\nThe harbour authority "
                                      "restored night ferries to the islands, running every 40 minutes.\n")
    subprocess.run([sys.executable, "-m", "rag", "index", str(extra)], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    answer = subprocess.run([sys.executable, "-m", "rag", "ask", "How often do the night ferries run?", "--json"],
                            cwd=REPO, env={**env, "RAG_DATA_DIR": str(tmp_path / "other")}, capture_output=True,
                            text=True, timeout=300)
    assert '"ferries"' in answer.stdout and "40 minutes" in answer.stdout


def test_openai_backend_against_a_real_openai_compatible_server(tmp_path):
    spec = model_spec("qwen2.5-coder-0.5b")
    path = ensure_model_file(spec, REPO / "data" / "models")  # assembled once, shared with `make run`
    _server, base_url = start_server(str(path), 2, 2048)
    settings = Settings(llm="openai", llm_base_url=base_url, llm_model="qwen2.5-coder-0.5b", llm_max_tokens=40,
                        _env_file=None)
    generator = make_generator(settings)
    assert generator.name == "openai/qwen2.5-coder-0.5b"
    from rag.schema import Passage

    passages = [Passage(chunk_id="a", doc_id="d", title="Harbour", text="The harbour toll was cut by 40 percent.")]
    pieces = list(generator.runnable.stream({"question": "By how much was the harbour toll cut?", "passages": passages}))
    assert len(pieces) > 1, "the answer streams in pieces"
    assert "40" in "".join(pieces)


def test_openai_backend_with_the_server_down_is_a_clear_error():
    settings = Settings(llm="openai", llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_timeout_s=5,
                        _env_file=None)
    from rag.schema import Passage

    generator = make_generator(settings)
    with pytest.raises(Exception, match="(?i)connect"):
        generator.runnable.invoke({"question": "q?", "passages": [Passage(chunk_id="a", doc_id="d", title="t", text="x")]})
