"""Word and OpenDocument files (issue 34 items 1 and 5): made by the tests with python-docx and odfpy,
read back through the loader — text, lists, table rows, footnotes, properties — and hostile ones
(corrupt, zip bomb, XML entity expansion, password-protected) refused with one clear line each while
the rest of the folder loads."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from rag.ingest.documents import MAX_INFLATED_BYTES, checked_zip
from rag.ingest.formats import LoadError
from rag.ingest.load import load_file, load_paths

FOOTNOTES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             b'<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
             b'<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:t>--</w:t></w:r></w:p></w:footnote>'
             b'<w:footnote w:id="1"><w:p><w:r><w:t>Source: the 2024 appropriations table.</w:t></w:r></w:p></w:footnote>'
             b'</w:footnotes>')


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Grant programs memo"
    document.core_properties.author = "Jane Analyst"
    document.core_properties.created = datetime(2025, 2, 3, 9, 0)
    document.add_heading("Overview", 1)
    document.add_paragraph("The agency funds two grant programs for small towns.")
    document.add_paragraph("Apply by March", style="List Bullet")
    document.add_paragraph("Report by June", style="List Bullet")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["Program", "2023", "2024"], ["Broadband", "$1.2M", "$1.5M"], ["Water", "$0.4M", "$0.7M"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    # python-docx writes no footnotes: add the part (Word keeps them in word/footnotes.xml).
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, source.read(item))
        out.writestr("word/footnotes.xml", FOOTNOTES)
    return path


def make_odt(path: Path) -> Path:
    from odf.dc import Title
    from odf.meta import CreationDate, InitialCreator
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, Note, NoteBody, NoteCitation, P

    document = OpenDocumentText()
    for element in (Title(text="Site inspection report"), InitialCreator(text="Sam Writer"),
                    CreationDate(text="2025-03-04T10:00:00")):
        document.meta.addElement(element)
    document.text.addElement(H(outlinelevel=1, text="Findings"))
    paragraph = P(text="Inspectors visited 12 sites in the spring.")
    note, body = Note(noteclass="footnote"), NoteBody()
    note.addElement(NoteCitation(text="1"))
    body.addElement(P(text="The site list is in annex B."))
    note.addElement(body)
    paragraph.addElement(note)
    document.text.addElement(paragraph)
    bullets, item = List(), ListItem()
    item.addElement(P(text="Two roofs leaked"))
    bullets.addElement(item)
    document.text.addElement(bullets)
    table = Table()
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in [["Site", "Score"], ["North", "7"], ["South", "9"]]:
        table_row = TableRow()
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            table_row.addElement(cell)
        table.addElement(table_row)
    document.text.addElement(table)
    document.save(str(path))
    return path


def test_a_docx_keeps_its_heading_list_table_rows_footnote_and_properties(tmp_path):
    article = load_file(make_docx(tmp_path / "memo.docx"))
    assert (article.title, article.author, article.date) == ("Grant programs memo", "Jane Analyst", "2025-02-03")
    text = article.text
    for expected in ("Overview", "The agency funds two grant programs", "- Apply by March", "- Report by June",
                     "Program | 2023 | 2024", "Broadband | $1.2M | $1.5M", "Water | $0.4M | $0.7M",
                     "[1] Source: the 2024 appropriations table."):
        assert expected in text, expected
    assert text.index("Broadband") < text.index("Water") < text.index("appropriations"), "in document order"
    assert "--" not in text, "Word's separator note is not a note"
    assert [h[2] for h in article.headings] == ["Overview", "Notes"]


def test_an_odt_keeps_its_heading_list_table_rows_footnote_and_properties(tmp_path):
    article = load_file(make_odt(tmp_path / "report.odt"))
    assert (article.title, article.author, article.date) == ("Site inspection report", "Sam Writer", "2025-03-04")
    for expected in ("Findings", "Inspectors visited 12 sites in the spring.[1]", "- Two roofs leaked", "Site | Score",
                     "North | 7", "South | 9", "[1] The site list is in annex B."):
        assert expected in article.text, expected


def few_kb_bomb(path: Path, copies: int = 200, each: int = 10 * 1024 * 1024) -> Path:
    """~25 KB that inflate to 2 GB: one deflated part of zeros, named 200 times in the zip's directory
    (every entry points at the same data, as overlapping-file zip bombs do)."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        out.writestr("word/document.xml", bytes(each))
    data = buffer.getvalue()
    size, offset = struct.unpack("<II", data[-22:][12:20])  # the end record: the directory's size and offset
    entry = data[offset:offset + size]
    entries = b"".join(entry.replace(b"word/document.xml", f"word/p{n:07d}.xml".encode()) for n in range(copies))
    end = data[-22:-14] + struct.pack("<HH", copies, copies) + struct.pack("<II", len(entries), offset) + data[-2:]
    path.write_bytes(data[:offset] + entries + end)
    return path


def bomb(path: Path, members: int = 120, each: int = 10 * 1024 * 1024) -> Path:
    """A real .docx skeleton plus parts of zeros: ~1 MB on disk, ~1.2 GB inflated."""
    zeros = bytes(each)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        out.writestr("[Content_Types].xml", b"<Types/>")
        out.writestr("word/document.xml", b"<document/>")
        for n in range(members):
            out.writestr(f"word/media/part{n}.xml", zeros)
    return path


ENTITIES = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
            b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
            b'<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>'
            b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
            b'<w:t>&h;</w:t></w:r></w:p></w:body></w:document>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
            b'<w:t>&x;</w:t></w:r></w:p></w:body></w:document>')


def with_document_xml(good: Path, path: Path, document_xml: bytes) -> Path:
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, document_xml if item.filename == "word/document.xml" else source.read(item))
    return path


def test_hostile_office_files_get_one_clear_error_each_fast_with_bounded_memory_and_the_rest_loads(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = make_docx(tmp_path / "good.docx")
    (folder / "memo.docx").write_bytes(good.read_bytes())
    make_odt(folder / "report.odt")
    (folder / "corrupt.docx").write_bytes(good.read_bytes()[:700] + b"\x00garbage" * 50)
    bomb(folder / "bomb.docx")
    few_kb_bomb(folder / "tiny-bomb.docx")
    with_document_xml(good, folder / "laughs.docx", ENTITIES)
    with_document_xml(good, folder / "external.docx", EXTERNAL)
    (folder / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))  # Word's encrypted package
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    with (folder / "locked.pdf").open("wb") as pdf:
        writer.write(pdf)
    assert (folder / "bomb.docx").stat().st_size < 2 * 1024 * 1024

    tracemalloc.start()
    started = time.perf_counter()
    result = load_paths([folder])
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert sorted(a.doc_id for a in result.articles) == ["memo", "report"]
    reasons = {Path(source).name: reason for source, reason in result.failures}
    assert set(reasons) == {"corrupt.docx", "bomb.docx", "tiny-bomb.docx", "laughs.docx", "external.docx",
                            "locked.docx", "locked.pdf"}
    assert (folder / "tiny-bomb.docx").stat().st_size < 64 * 1024 and "zip bomb" in reasons["tiny-bomb.docx"]
    assert "broken .docx" in reasons["corrupt.docx"]
    assert "inflate" in reasons["bomb.docx"] and "zip bomb" in reasons["bomb.docx"]
    assert "entit" in reasons["laughs.docx"] and "entit" in reasons["external.docx"]
    assert "password-protected" in reasons["locked.docx"] and "encrypted PDF" in reasons["locked.pdf"]
    assert all("\n" not in reason and len(reason) < 300 for reason in reasons.values()), reasons
    assert "root:" not in " ".join(reasons.values())
    assert seconds < 10, seconds
    assert peak < 60 * 1024 * 1024, f"peak {peak >> 20} MB while refusing a 1.2 GB bomb"


def test_a_zip_that_lies_about_its_size_is_stopped_while_inflating(tmp_path, monkeypatch):
    """The declared sizes pass, the inflated bytes do not: the budget is checked block by block."""
    import rag.ingest.documents as documents

    monkeypatch.setattr(documents, "MAX_INFLATED_BYTES", 3 * 1024 * 1024)
    path = bomb(tmp_path / "small.docx", members=1, each=2 * 1024 * 1024)
    with zipfile.ZipFile(path) as archive:
        parts = {i.filename: archive.read(i) for i in archive.infolist()}
    path.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
        out.writestr("word/extra.xml", bytes(2 * 1024 * 1024))  # 4 MB in all: over the (patched) 3 MB
    with pytest.raises(LoadError, match="inflate"):
        checked_zip(path.read_bytes(), ".docx")
    assert MAX_INFLATED_BYTES >= 100 * 1024 * 1024, "the real limit leaves room for long documents"


def test_an_odt_declaring_entities_is_refused_and_rag_index_indexes_the_rest_of_the_folder(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from .conftest import REPO

    folder = tmp_path / "inbox"
    folder.mkdir()
    good = make_odt(folder / "report.odt")
    make_docx(folder / "memo.docx")
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(folder / "laughs.odt", "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "content.xml":  # the same document, with entities declared before its root
                data = data.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>', 1)
            out.writestr(item, data)
    few_kb_bomb(folder / "bomb.docx")
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "extractive"}
    run = subprocess.run([sys.executable, "-m", "rag", "index", str(folder)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # some sources failed: said, and the rest indexed
    assert "laughs.odt" in run.stderr and "entit" in run.stderr and "bomb.docx" in run.stderr, run.stderr
    docs = subprocess.run([sys.executable, "-m", "rag", "docs", "--json"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert sorted(row["doc_id"] for row in json.loads(docs.stdout)) == ["memo", "report"]
