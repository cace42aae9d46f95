"""The command line as a user runs it: real subprocesses, the extractive backend."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO


def rag(*args: str, data_dir, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive", **env}
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO, env=environment, input=input,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    result = rag("index", "corpus", data_dir=folder)
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout
    return folder


def test_ask_json_has_the_documented_shape(data_dir):
    result = rag("ask", "Which Chinese model has comparable exploitation capabilities?", "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= {"id", "question", "answer", "refused", "citations", "contexts", "timings", "llm"}
    assert "Kimi" in answer["answer"] and not answer["refused"]
    citation = answer["citations"][0]
    assert set(citation) == {"n", "doc_id", "title", "chunk_id", "text", "start", "end"}
    assert set(answer["contexts"][0]) >= {"doc_id", "chunk_id", "text", "score"}
    assert set(answer["timings"]) == {"retrieve_ms", "first_token_ms", "total_ms"}


def test_ask_markdown_has_the_answer_and_its_citations_as_footnotes(data_dir):
    result = rag("ask", "Which Chinese model has comparable exploitation capabilities?", "--markdown",
                 data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "## Which Chinese model has comparable exploitation capabilities?"
    assert "Kimi" in lines[2] and "[^1-" in lines[2]
    footnotes = [line for line in lines if line.startswith("[^1-")]
    assert footnotes and "Kimi" in " ".join(footnotes)


def test_ask_explain_shows_every_stage_of_the_answer(data_dir):
    result = rag("ask", "Which Chinese model has comparable exploitation capabilities?", "--explain", "--json",
                 data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    trace = json.loads(result.stdout)["trace"]
    assert trace["decision"].startswith("answered")
    first = trace["ranking"][0]
    assert first["dense_rank"] and first["bm25_rank"] and first["fused"] > 0, "both retrievers' ranks, fused"
    assert "<passages>" in trace["prompt"] and trace["prompt_tokens"] > 0
    assert "Kimi" in trace["model_output"]
    assert any(s["supported"] and s["cites"] for s in trace["sentences"])
    assert {"retrieve_ms", "first_token_ms", "total_ms"} <= set(trace["timings"])
    text = rag("ask", "Which Chinese model has comparable exploitation capabilities?", "--explain", data_dir=data_dir)
    assert all(part in text.stdout for part in ("DECISION", "RETRIEVAL", "PROMPT", "MODEL OUTPUT", "CHECKER", "TIMINGS"))


def test_batch_reads_jsonl_and_writes_one_object_per_line(data_dir, tmp_path):
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"id": "a", "question": "Who wrote the article?", "extra": 1}\n'
                     '{"id": "b", "question": "How many executives signed the letter?"}\n')
    result = rag("ask", "--batch", str(batch), data_dir=data_dir)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]


def test_index_twice_skips_unchanged(data_dir):
    result = rag("index", "corpus", data_dir=data_dir)
    assert "1 unchanged" in result.stdout and "0 chunks written" in result.stdout


@pytest.mark.parametrize("question", ["", "   ", "x" * 50_000])
def test_bad_questions_are_one_line_errors(data_dir, question):
    result = rag("ask", question, data_dir=data_dir)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_index_is_a_one_line_error(tmp_path):
    result = rag("ask", "Anything?", data_dir=tmp_path / "empty")
    assert result.returncode != 0 and "python -m rag index" in result.stderr and "Traceback" not in result.stderr


def test_docs_lists_the_indexed_article(data_dir):
    rows = json.loads(rag("docs", "--json", data_dir=data_dir).stdout)
    assert [r["doc_id"] for r in rows] == ["us-ai-export-controls-anthropic"]
    assert rows[0]["chunks"] > 10 and rows[0]["indexed_at"]


def test_a_corrupted_index_says_how_to_recover(tmp_path):
    assert rag("index", "corpus", data_dir=tmp_path).returncode == 0
    (tmp_path / "chroma" / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    result = rag("ask", "Who wrote the article?", data_dir=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "delete" in result.stderr and "python -m rag index --rebuild" in result.stderr
    # Following the message brings answers back.
    shutil.rmtree(tmp_path / "chroma")
    assert rag("index", "corpus", "--rebuild", data_dir=tmp_path).returncode == 0
    docs = json.loads(rag("docs", "--json", data_dir=tmp_path).stdout)
    assert [d["doc_id"] for d in docs] == ["us-ai-export-controls-anthropic"] and docs[0]["chunks"] > 10
    assert rag("ask", "Who wrote the article?", data_dir=tmp_path).returncode == 0


def test_a_missing_embedding_model_is_a_one_line_error(tmp_path):
    result = rag("index", "corpus", data_dir=tmp_path, RAG_EMBED_MODEL=str(tmp_path / "no-such-model"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "RAG_EMBED_MODEL" in result.stderr and "no-such-model" in result.stderr
