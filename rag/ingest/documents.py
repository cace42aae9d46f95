"""Stage 1a, office documents — ``.docx`` (python-docx) and ``.odt`` (odfpy): the bytes in, text
blocks and metadata out, as ``rag.ingest.formats`` does for the other formats.

Kept: headings, paragraphs, list items ("- item"), tables (one ``cell | cell | cell`` line per
row, the header row repeated: ``rag.ingest.tables``), footnotes and endnotes (as a "Notes" section at the end), and the document properties
(title, author, created or modified date). Ignored: macros, embedded objects, images (nothing is
ever fetched), comments, tracked deletions.

Both formats are a zip of XML written by whoever sent the file, so before any library reads it:
- the zip may hold at most ``MAX_MEMBERS`` files inflating to at most ``MAX_INFLATED_BYTES`` in all,
  read by ``zipfile``'s own headers and then checked while inflating (a zip bomb of a few KB that
  claims to be small is stopped at the limit, memory flat);
- every XML part is parsed first with ``defusedxml``, which refuses DTDs, entity declarations (the
  "billion laughs") and external entities;
- a password-protected Word file (an OLE container, not a zip) gets its own clear message.
"""

from __future__ import annotations

import io
import re
import zipfile

from rag.ingest.formats import LoadError, Parsed, normalise_date
from rag.ingest.tables import table_blocks

MAX_MEMBERS = 2_000
MAX_INFLATED_BYTES = 200 * 1024 * 1024  # all XML parts together, inflated
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted .docx, and old binary .doc
HEADING_STYLE = re.compile(r"^(heading \d|title|subtitle)$", re.IGNORECASE)


def checked_zip(data: bytes, kind: str) -> dict[str, bytes]:
    """The XML parts of an office document, each parsed once by ``defusedxml`` (which refuses
    entity tricks); raises ``LoadError`` for anything else: not a zip, too many or too big parts."""
    if data.startswith(OLE_MAGIC):
        raise LoadError(f"password-protected (or an old binary format): save it as a {kind} without a password")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(f"broken {kind}: not a readable zip ({exc})") from None
    if len(members) > MAX_MEMBERS:
        raise LoadError(f"refused {kind}: {len(members)} parts (at most {MAX_MEMBERS})")
    if sum(m.file_size for m in members) > MAX_INFLATED_BYTES:
        raise LoadError(f"refused {kind}: it would inflate to more than {MAX_INFLATED_BYTES >> 20} MB (a zip bomb?)")
    parts: dict[str, bytes] = {}
    budget = MAX_INFLATED_BYTES
    for member in members:
        if not member.filename.endswith((".xml", ".rels")) or member.is_dir():
            continue  # images, embedded objects, macros (vbaProject.bin): never read
        parts[member.filename] = _inflate(archive, member, budget, kind)
        budget -= len(parts[member.filename])
        _refuse_entities(parts[member.filename], member.filename, kind)
    return parts


def _inflate(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int, kind: str) -> bytes:
    """One part's bytes, inflated a block at a time and stopped at ``budget`` whatever its header says."""
    out = bytearray()
    try:
        with archive.open(member) as stream:
            while block := stream.read(1 << 20):
                out += block
                if len(out) > budget:
                    raise LoadError(f"refused {kind}: it inflates to more than {MAX_INFLATED_BYTES >> 20} MB (a zip bomb?)")
    except LoadError:
        raise
    except (zipfile.BadZipFile, RuntimeError, ValueError, OSError, EOFError) as exc:  # RuntimeError: an encrypted member
        raise LoadError(f"broken {kind}: {member.filename} cannot be read ({exc})") from None
    return bytes(out)


def _refuse_entities(xml: bytes, name: str, kind: str) -> None:
    """Read through the part with defusedxml's SAX parser (no tree is built: memory stays flat
    however large the part), which refuses a DTD, entity declarations and external entities."""
    from xml.sax.handler import ContentHandler

    from defusedxml import DefusedXmlException
    from defusedxml.sax import parseString

    try:
        parseString(xml, ContentHandler(), forbid_dtd=True)
    except DefusedXmlException:
        raise LoadError(f"refused {kind}: {name} declares a DTD or entities (an XML entity attack?)") from None
    except Exception as exc:  # xml.sax.SAXParseException
        raise LoadError(f"broken {kind}: {name} is not well-formed XML ({exc})") from None


# --- Word ------------------------------------------------------------------------------------------


def parse_docx(data: bytes) -> Parsed:
    parts = checked_zip(data, ".docx")
    if "word/document.xml" not in parts:
        raise LoadError("broken .docx: no word/document.xml inside")
    import docx
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several kinds for a damaged package
        raise LoadError(f"broken .docx: {type(exc).__name__}: {str(exc)[:200]}") from None
    blocks: list[tuple[str, str]] = []
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            paragraph = Paragraph(child, document)
            text = _clean(paragraph.text)
            if not text:
                continue
            style = paragraph.style.name if paragraph.style is not None else ""
            if HEADING_STYLE.match(style or ""):
                blocks.append(("heading", text))
            elif child.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None or "List" in (style or ""):
                blocks.append(("para", f"- {text}"))
            else:
                blocks.append(("para", text))
        elif child.tag == qn("w:tbl"):
            blocks.extend(("para", block) for block in table_blocks(
                [[cell.text for cell in row.cells] for row in Table(child, document).rows]))
    notes = [_clean(note) for name in ("word/footnotes.xml", "word/endnotes.xml") if name in parts
             for note in _word_notes(parts[name])]
    if notes := [note for note in notes if note]:
        blocks += [("heading", "Notes")] + [("para", f"[{n}] {note}") for n, note in enumerate(notes, 1)]
    if not blocks:
        raise LoadError("empty .docx: no text in it")
    properties = document.core_properties
    moment = properties.created or properties.modified
    return Parsed(blocks=blocks, title=_clean(properties.title or ""), author=_clean(properties.author or ""),
                  date=normalise_date(moment.isoformat()) if moment else "")


def _word_notes(xml: bytes) -> list[str]:
    """Footnote or endnote texts, skipping Word's separator notes (ids -1 and 0 / type="separator")."""
    from defusedxml.ElementTree import fromstring

    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    notes = []
    for note in fromstring(xml):
        if note.get(f"{w}type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        notes.append(" ".join("".join(t.text or "" for t in p.iter(f"{w}t")) for p in note.iter(f"{w}p")))
    return notes


# --- OpenDocument ----------------------------------------------------------------------------------


def parse_odt(data: bytes) -> Parsed:
    parts = checked_zip(data, ".odt")
    if "content.xml" not in parts:
        raise LoadError("broken .odt: no content.xml inside")
    from odf import teletype
    from odf.namespaces import DCNS, METANS, TABLENS, TEXTNS
    from odf.opendocument import load

    try:
        document = load(io.BytesIO(data))
    except Exception as exc:  # odfpy raises what its XML reader or zipfile raise
        raise LoadError(f"broken .odt: {type(exc).__name__}: {str(exc)[:200]}") from None
    blocks: list[tuple[str, str]] = []
    notes: list[str] = []

    def walk(element, in_list: bool = False) -> None:
        for child in element.childNodes:
            qname = getattr(child, "qname", None)
            if qname == (TEXTNS, "h"):
                if text := _clean(_odf_text(child, notes)):
                    blocks.append(("heading", text))
            elif qname == (TEXTNS, "p"):
                if text := _clean(_odf_text(child, notes)):
                    blocks.append(("para", f"- {text}" if in_list else text))
            elif qname in ((TEXTNS, "list"), (TEXTNS, "list-item")):
                walk(child, in_list=True)
            elif qname == (TABLENS, "table"):
                rows = [[_clean(teletype.extractText(cell)) for cell in row.childNodes
                         if getattr(cell, "qname", None) == (TABLENS, "table-cell")]
                        for row in child.getElementsByType(_table_row())]
                blocks.extend(("para", block) for block in table_blocks(rows))
            elif qname == (TEXTNS, "section"):
                walk(child, in_list)

    walk(document.text)
    if notes:
        blocks += [("heading", "Notes")] + [("para", f"[{n}] {note}") for n, note in enumerate(notes, 1)]
    if not blocks:
        raise LoadError("empty .odt: no text in it")
    meta = {}
    for element in document.meta.childNodes:
        if getattr(element, "qname", None) in ((DCNS, "title"), (DCNS, "creator"), (METANS, "initial-creator"),
                                               (METANS, "creation-date"), (DCNS, "date")):
            meta[element.qname[1]] = _clean(teletype.extractText(element))
    date = meta.get("creation-date") or meta.get("date") or ""
    return Parsed(blocks=blocks, title=meta.get("title", ""), author=meta.get("initial-creator") or meta.get("creator", ""),
                  date=normalise_date(date) if date else "")


def _table_row():
    from odf.table import TableRow

    return TableRow


def _odf_text(element, notes: list[str]) -> str:
    """A paragraph's text with its footnotes taken out (and added to ``notes``) and marked [n]."""
    from odf import teletype
    from odf.namespaces import TEXTNS

    pieces = []
    for child in element.childNodes:
        if getattr(child, "qname", None) == (TEXTNS, "note"):
            body = [node for node in child.childNodes if getattr(node, "qname", None) == (TEXTNS, "note-body")]
            notes.append(_clean(" ".join(teletype.extractText(node) for node in body)))
            pieces.append(f"[{len(notes)}]")
        elif child.nodeType == child.TEXT_NODE:
            pieces.append(str(child))
        else:
            pieces.append(_odf_text(child, notes) if child.childNodes else teletype.extractText(child))
    return "".join(pieces)




def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()
