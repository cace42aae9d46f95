"""Hostile and odd input: nothing crashes, nothing is lost, nothing leaks."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from pydantic import SecretStr

from rag.answer.llm import chat_generator
from rag.answer.pipeline import QuestionError, build_pipeline, clean_question
from rag.web.admin import Admin, AdminError


def test_control_characters_are_removed_from_questions():
    assert clean_question("Who\x00 signed\x1b[31m the\u200b order?\r\n", 2000) == "Who signed [31m the order?"


def test_a_100000_character_question_is_refused_with_the_limit():
    with pytest.raises(QuestionError, match="limit is 2,000"):
        clean_question("why " * 25_000, 2000)


@pytest.mark.parametrize("question", ["¿Qué modelos cubría la directiva?", "哪些模型受到出口管制？", "Какие модели?"])
def test_questions_in_other_languages_get_an_answer_or_an_honest_refusal(indexed, question):
    answer = indexed.pipeline.ask(question)
    assert answer.refused or answer.citations


def test_llm_failing_mid_stream_falls_back_and_says_so(indexed):
    class DiesMidway(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            yield from list(super()._stream(*args, **kwargs))[:2]
            raise ConnectionError("server went away")

    generator = chat_generator("openai/flaky", DiesMidway(messages=iter(["The council cut tolls by 40 percent."])))
    settings = indexed.settings.model_copy(update={"llm_fallback": True})
    answer = build_pipeline(settings, indexed.retriever, generator).ask("How much were fishing boat tolls cut?")
    assert "fallback" in answer.llm and "40 percent" in answer.answer and answer.citations


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("archive.zip", b"PK\x03\x04", "only"),
    ("run.exe", b"MZ", "only"),
    ("big.pdf", b"%PDF" + b"0" * (2 * 1024 * 1024), "larger than"),
])
def test_uploads_of_the_wrong_type_or_size_are_refused(indexed, tmp_path, name, content, reason):
    upload = tmp_path / name
    upload.write_bytes(content)
    admin = Admin(indexed)
    admin.settings = indexed.settings.model_copy(update={"admin_password": SecretStr("pw"), "max_upload_mb": 1})
    with pytest.raises(AdminError, match=reason):
        admin.accept_uploads("pw", [str(upload)])
    assert not admin.uploads.exists() or not any(admin.uploads.iterdir()), "nothing was written"


def test_upload_names_cannot_escape_the_uploads_folder(indexed, tmp_path):
    sneaky = tmp_path / "..%2F..%2Fetc" / "passwd.txt"
    sneaky.parent.mkdir()
    sneaky.write_text("root:x:0:0")
    admin = Admin(indexed)
    admin.settings = indexed.settings.model_copy(update={"admin_password": SecretStr("pw")})
    [stored] = admin.accept_uploads("pw", [str(sneaky)])
    assert stored.startswith(str(admin.uploads)) and stored.endswith("passwd.txt")


def test_admin_actions_refuse_a_wrong_or_missing_password(indexed):
    admin = Admin(indexed)
    with pytest.raises(AdminError, match="disabled"):
        admin.articles("anything")
    admin.settings = indexed.settings.model_copy(update={"admin_password": SecretStr("pw")})
    for call in (lambda: admin.articles(""), lambda: admin.remove("PW", ["x"]), lambda: admin.reindex_all(None)):
        with pytest.raises(AdminError, match="wrong admin password"):
            call()
