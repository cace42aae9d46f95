"""Scale-out through existing engines: a real `chroma run` server and a real OpenAI-compatible server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from rag.answer.llm import make_generator
from rag.answer.llm_local import ensure_model_file, model_spec, start_server
from rag.components import Components
from rag.ingest.index import index_articles, open_record_manager
from rag.ingest.load import load_paths
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
    from rag.ingest.store import StoreError

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


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            if ($http_x_chroma_token != "{token}") {{ return 401; }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            # Stream bodies: nginx's workers may not be allowed to write temp files in pytest's tmp dir.
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""


def start_token_proxy(folder: Path, upstream: int, token: str) -> tuple[subprocess.Popen, int]:
    """nginx in front of `chroma run`, letting through only requests that carry the token:
    Chroma 1.x servers have no auth of their own, and its docs put a proxy in front."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (.ci/run installs it)")
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(folder=folder, port=port, upstream=upstream, token=token))
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder)], stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.time() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            return process, port
        except httpx.HTTPError:
            if process.poll() is not None or time.time() > deadline:
                pytest.fail(f"nginx did not start: {(folder / 'nginx-error.log').read_text()[-1500:]}")
            time.sleep(0.2)


def test_a_token_protected_chroma_server(chroma_server, tmp_path, embedding_model):
    from rag.ingest.store import StoreError

    proxy, port = start_token_proxy(tmp_path, chroma_server, token="s3cret-token")
    try:
        base = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=port, llm="extractive",
                        collection="guarded", chroma_token_header="X-Chroma-Token", _env_file=None)
        for token in (None, "wrong-token"):
            with pytest.raises(StoreError, match="refused the request") as refused:
                Components(base.model_copy(update={"chroma_token": token and SecretStr(token)}),
                           embedding_model=embedding_model).store(create=True)
            assert "s3cret" not in str(refused.value)

        settings = base.model_copy(update={"chroma_token": SecretStr("s3cret-token")})
        parts = Components(settings, embedding_model=embedding_model)
        summary = index_articles(load_paths([REPO / "corpus"]).articles, store=parts.store(create=True),
                                 record_manager=open_record_manager(settings), chunker=parts.chunker)
        assert summary.added == ["us-ai-export-controls-anthropic"]
        answer = parts.pipeline.ask("Which Chinese model has comparable exploitation capabilities?")
        assert "Kimi" in answer.answer and answer.citations
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def test_a_second_process_on_the_same_chroma_server_sees_the_index(chroma_server, tmp_path):
    import os

    # Separate data dirs (as on two machines); the Chroma server and the record database (which holds
    # the lexical index) are shared.
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "proc"), "RAG_CHROMA_HOST": "127.0.0.1",
           "RAG_CHROMA_PORT": str(chroma_server), "RAG_LLM": "extractive",
           "RAG_RECORD_DB_URL": f"sqlite:///{tmp_path / 'shared' / 'records.sqlite'}"}
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


def test_two_app_processes_on_one_chroma_server_answer_alike_and_see_each_others_reindexing(chroma_server, tmp_path):
    from gradio_client import Client, handle_file

    from .test_live_reindex import NEW_ARTICLE, QUESTION
    from .test_web import start_app

    # Separate data dirs (as on two machines); the Chroma server and the record manager's database are shared.
    shared = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(chroma_server), "RAG_COLLECTION": "two_apps",
              "RAG_RECORD_DB_URL": f"sqlite:///{tmp_path / 'records.sqlite'}", "RAG_LLM": "extractive",
              "RAG_ADMIN_PASSWORD": "operators only"}
    env_a = {**os.environ, **shared, "RAG_DATA_DIR": str(tmp_path / "a"), "RAG_PORT": str(free_port())}
    env_b = {**os.environ, **shared, "RAG_DATA_DIR": str(tmp_path / "b"), "RAG_PORT": str(free_port())}
    with start_app(env_a) as url_a, start_app(env_b) as url_b:
        a, b = Client(url_a, verbose=False), Client(url_b, verbose=False)
        question = "Which Chinese model has comparable exploitation capabilities?"
        from_a, from_b = a.predict(question, api_name="/ask"), b.predict(question, api_name="/ask")
        assert "Kimi" in from_a["answer"] and from_a["answer"] == from_b["answer"]
        assert [c["chunk_id"] for c in from_a["citations"]] == [c["chunk_id"] for c in from_b["citations"]]
        assert b.predict(QUESTION, api_name="/ask")["refused"]

        article = tmp_path / "lighthouse.md"
        article.write_text(NEW_ARTICLE)
        a.predict("operators only", [handle_file(str(article))], "", api_name="/admin_add")  # indexed by app A...
        seen = b.predict(QUESTION, api_name="/ask")  # ...answered by app B, no restart
        assert not seen["refused"] and "keepers" in seen["answer"], seen
        assert seen["citations"][0]["doc_id"] == "lighthouse"

        b.predict("operators only", ["lighthouse"], api_name="/admin_remove")  # removed by B, gone for A
        assert a.predict(QUESTION, api_name="/ask")["refused"]


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


EMBEDDING_SERVER = """
import sys, time, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.embedding = True
params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
params.n_ctx = 2048
params.n_batch = params.n_ubatch = 512
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
params.hostnames = ["127.0.0.1"]
params.port = 0
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
time.sleep(3600)
"""


def test_indexing_and_questions_through_a_real_embeddings_server(tmp_path, corpus_dir):
    """llama.cpp's server in its own process, serving /v1/embeddings (the 0.5B model with mean
    pooling: a real OpenAI-compatible embeddings endpoint, whatever its retrieval quality)."""
    path = ensure_model_file(model_spec("qwen2.5-coder-0.5b"), REPO / "data" / "models")
    server = subprocess.Popen([sys.executable, "-c", EMBEDDING_SERVER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        address = server.stdout.readline().strip()
        base_url = (address if address.startswith("http") else f"http://{address}") + "/v1"
        settings = Settings(data_dir=tmp_path / "data", llm="extractive", embed_base_url=base_url,
                            embed_server_model="qwen2.5-coder-0.5b", _env_file=None)
        parts = Components(settings)
        assert parts.embedding_model.dimension == 896  # asked of the server
        index_articles(load_paths([corpus_dir]).articles, store=parts.store(create=True),
                       record_manager=open_record_manager(settings), chunker=parts.chunker)
        answer = parts.pipeline.ask("How much were fishing boat tolls cut?")
        assert "40 percent" in answer.answer and answer.citations[0].doc_id == "harbour-tolls"
        metadata = parts.store()._collection.metadata
        assert metadata["embed_model"] == "qwen2.5-coder-0.5b" and metadata["embed_dim"] == 896

        from rag.ingest.store import IndexMismatchError

        local = Components(Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None))
        with pytest.raises(IndexMismatchError, match="qwen2.5-coder-0.5b"):
            local.store()
    finally:
        server.kill()
        server.wait()


def test_an_embeddings_server_that_is_down_is_a_clear_error(tmp_path):
    from rag.ingest.embed import EmbeddingModelError

    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", embed_base_url=f"http://user:secret@127.0.0.1:{port}/v1",
                        embed_server_model="m", _env_file=None)
    with pytest.raises(EmbeddingModelError, match="did not answer") as error:
        _ = Components(settings).embedding_model.dimension
    assert "secret" not in str(error.value)
