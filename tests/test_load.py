"""Loading: each format, its metadata, the cleaning, and bad files."""

from pathlib import Path

import pytest

from rag.ingest.formats import LoadError
from rag.ingest.load import load_file, load_paths

from .conftest import REPO


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_markdown_header_lines_give_title_date_author_source(corpus_dir):
    article = load_file(corpus_dir / "harbour-tolls.md")
    assert article.doc_id == "harbour-tolls"
    assert article.title == "Harbour Toll Reform Passes"
    assert (article.date, article.author, article.source) == ("2024-03-05", "Mira Okafor", "https://example.org/harbour-tolls")
    assert "Date:" not in article.text and article.text.startswith("The city council voted")
    assert [h[2] for h in article.headings] == ["Reactions"]


def test_hard_wrapped_lines_are_joined_into_paragraphs(corpus_dir):
    article = load_file(corpus_dir / "harbour-tolls.md")
    assert "fishing boats by 40 percent. The reform takes effect" in article.text


def test_html_meta_tags_and_only_visible_article_text(corpus_dir):
    article = load_file(corpus_dir / "solar-schools.html")
    assert article.title == "Solar Panels for Every School"
    assert (article.author, article.date, article.source) == ("Lena Park", "2025-06-30", "https://example.org/solar-schools")
    assert "42 public schools" in article.text
    for hidden in ("Ignore previous instructions", "alert(", "Home | News", "Copyright"):
        assert hidden not in article.text


def test_text_file_title_line_and_comments_trailer(corpus_dir):
    article = load_file(corpus_dir / "library-hours.txt")
    assert article.title == "Public Library Extends Weekend Hours"
    assert article.date == "2023-11-20"
    assert not article.text.rstrip().endswith("Comments")


def test_shipped_article_is_cleaned():
    article = load_file(REPO / "corpus" / "us-ai-export-controls-anthropic.txt")
    assert article.title.startswith("U.S. Risks Falling Behind in AI Race")
    assert article.author == "Artūras Malašauskas"
    assert article.text.count("is an AI Systems Integrator") == 1, "the repeated bio is dropped"
    assert not article.text.rstrip().endswith("Comments")
    assert "The Cybersecurity Paradox and Adversary Advantage" in [h[2] for h in article.headings]


def minimal_pdf(text: str, title: str) -> bytes:
    """A valid one-page PDF with a Helvetica text line and an info dictionary."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) /Author (Ada Byron) /CreationDate (D:20240102120000) >>".encode(),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_and_document_info(tmp_path):
    path = write(tmp_path, "budget.pdf", minimal_pdf("The port budget grew by 12 percent in 2024.", "Port Budget"))
    article = load_file(path)
    assert article.title == "Port Budget"
    assert article.author == "Ada Byron" and article.date == "2024-01-02"
    assert "port budget grew by 12 percent" in article.text


def test_legacy_encoding_is_detected(tmp_path):
    text = "Café owners in Zürich said the new rules were “unworkable” and costly for small businesses."
    article = load_file(write(tmp_path, "cafe.txt", text.encode("cp1252")))
    assert "Zürich" in article.text and "“unworkable”" in article.text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"   \n\n", "empty file"),
        ("blob.txt", bytes(range(256)) * 40, "binary"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "PDF"),
        ("photo.png", b"\x89PNG\r\n", "unsupported file type"),
        ("tags.html", b"<html><body><script>x()</script></body></html>", "no article text"),
    ],
)
def test_bad_files_raise_a_clear_reason(tmp_path, name, data, reason):
    with pytest.raises(LoadError, match=reason):
        load_file(write(tmp_path, name, data))


def test_a_bad_file_is_reported_and_the_rest_still_load(tmp_path, corpus_dir):
    write(corpus_dir, "broken.pdf", b"%PDF-1.4 garbage")
    result = load_paths([corpus_dir])
    assert sorted(a.doc_id for a in result.articles) == ["harbour-tolls", "library-hours", "solar-schools"]
    assert len(result.failures) == 1 and result.failures[0][0].endswith("broken.pdf")


def test_links_that_leave_an_indexed_folder_are_refused_and_links_inside_it_load(tmp_path, corpus_dir):
    from rag.ingest.load import load_sources

    private = tmp_path / "private"
    private.mkdir()
    (private / ".env").write_text("RAG_ADMIN_PASSWORD=hunter2-hunter2\nOPENAI_API_KEY=sk-live-123\n")
    (private / "notes.md").write_text("# Private Notes\n\nThe vault code is 4711.\n")
    (corpus_dir / "notes.txt").symlink_to(private / ".env")  # a link to a file outside
    (corpus_dir / "linked").symlink_to(private, target_is_directory=True)  # a link to a folder outside
    (corpus_dir / "records.jsonl").symlink_to(private / "notes.md")  # lists are read through links too
    (corpus_dir / "same-article.md").symlink_to(corpus_dir / "harbour-tolls.md")  # inside: fine
    result = load_sources([str(corpus_dir)])
    texts = " ".join(a.text for a in result.articles)
    assert "hunter2" not in texts and "sk-live" not in texts and "4711" not in texts
    assert {a.doc_id for a in result.articles} == {"harbour-tolls", "library-hours", "solar-schools", "same-article"}
    refused = {Path(source).name for source, reason in result.failures if "leading out of the indexed folder" in reason}
    assert {"notes.txt", "records.jsonl"} <= refused, result.failures
    # The watcher names files one by one: they must still lie inside a watched folder when read
    # (a link swapped in after its check changes nothing).
    swapped = load_sources([str(corpus_dir / "notes.txt")], within=[corpus_dir])
    assert not swapped.articles and "leading out" in swapped.failures[0][1]
    outside = load_sources([str(private / "notes.md")], within=[corpus_dir])
    assert not outside.articles and "outside the watched folders" in outside.failures[0][1]
    # A file the operator names directly is theirs to choose, link or not.
    assert [a.doc_id for a in load_sources([str(corpus_dir / "same-article.md")]).articles] == ["same-article"]
