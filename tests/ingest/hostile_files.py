"""Writers of hostile inputs for test_hostile_corpus.py: files, links, pipes and devices that
try to hang, exhaust, escape or confuse ingestion. Each writes one path and returns it."""

import io
import os
import socket
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from tests.fixtures import HANDBOOK_MD, make_with_pandoc

MB = 1024 * 1024
SECRET = "SECRET-MARKER-7f3a: the line that must never be indexed"


# Filesystem oddities


def make_fifo(path: Path) -> Path:
    """A named pipe: opening it to read blocks until a writer comes."""
    os.mkfifo(path)
    return path


def make_socket(path: Path) -> Path:
    """A Unix socket, left behind by the process that bound it."""
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
    return path


def make_zero_device(path: Path) -> Path:
    """A character device like /dev/zero (endless bytes); needs root, else a PermissionError."""
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    return path


def make_link(path: Path, target: Path | str) -> Path:
    """A symbolic link to `target` (which may not exist)."""
    path.symlink_to(target)
    return path


# PDFs written object by object: shapes no PDF library would write on purpose.


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (object 1 is the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, *, deflate: bool = False) -> bytes:
    if deflate:
        data = zlib.compress(data, 9)
    flate = b" /Filter /FlateDecode" if deflate else b""
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data)


def _pages_pdf(contents: list[bytes | None], *, claimed_pages: int | None = None) -> bytes:
    """One page per content stream (None: a page with no content), Helvetica as /F1."""
    count = len(contents)
    kids = b" ".join(b"%d 0 R" % (4 + index) for index in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, claimed_pages or count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    streams: list[bytes] = []
    for content in contents:
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        page += b" /Resources << /Font << /F1 3 0 R >> >>"
        if content is not None:
            page += b" /Contents %d 0 R" % (4 + count + len(streams))
            streams.append(content)
        objects.append(page + b" >>")
    return _pdf(objects + streams)


def make_empty_pages_pdf(path: Path, pages: int = 10_000) -> Path:
    """A PDF of thousands of pages, none with anything on it."""
    path.write_bytes(_pages_pdf([None] * pages))
    return path


def make_huge_text_pdf(path: Path, mb: int = 24) -> Path:
    """One page drawing one text string of `mb` megabytes."""
    text = b"lorem ipsum dolor sit amet " * (mb * MB // 27)
    path.write_bytes(_pages_pdf([_stream(b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text)]))
    return path


def make_content_bomb_pdf(path: Path, expanded_mb: int = 1024) -> Path:
    """One page whose 1 MB content stream inflates to `expanded_mb` MB (of spaces)."""
    spaces = b" " * MB
    compressor = zlib.compressobj(9)
    first = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)  # with the header
    block = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(expanded_mb):
        checksum = zlib.adler32(spaces, checksum)
    # A full flush resets the compressor, so every megabyte deflates alike: repeat one instead
    # of deflating them all, then end the stream by hand (an empty final block, the Adler-32).
    end = b"\x03\x00" + struct.pack(">I", checksum)
    data = first + block * (expanded_mb - 1) + end
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)
    path.write_bytes(_pages_pdf([stream]))
    return path


def make_many_operators_pdf(path: Path, operators: int = 3_000_000) -> Path:
    """One page of millions of tiny text-drawing operators (80 KB deflated)."""
    content = b"BT /F1 12 Tf " + b"(a) Tj 0 -1 Td " * operators + b"ET"
    path.write_bytes(_pages_pdf([_stream(content, deflate=True)]))
    return path


def make_lying_page_count_pdf(path: Path) -> Path:
    """One real page, while the page tree claims two billion."""
    content = _stream(b"BT /F1 12 Tf 72 720 Td (The one real page.) Tj ET")
    path.write_bytes(_pages_pdf([content], claimed_pages=2_000_000_000))
    return path


def make_page_tree_loop_pdf(path: Path) -> Path:
    """A page tree that lists itself among its own kids."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    path.write_bytes(_pdf(objects))
    return path


# Archives: zip bombs, traversal names, entity bombs inside Office and EPUB files


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of deflated members given as (name, deflated bytes, crc, claimed size)."""
    local, central = bytearray(), bytearray()
    for name, packed, crc, claimed in members:
        encoded = name.encode()
        fields = (20, 0, 8, 0, 0x21, crc, len(packed), claimed, len(encoded))
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + encoded + packed
        central += struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIH", *fields)
        central += struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset) + encoded
    count = len(members)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(local), 0)
    return bytes(local + central + end)


def _deflated(data: bytes) -> tuple[bytes, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data)


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"><Default Extension="rels" ContentType="application/'
    'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
    '"application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def make_lying_zip_bomb_docx(path: Path, expanded_mb: int = 2048) -> Path:
    """A DOCX whose document.xml inflates to `expanded_mb` MB of paragraphs while the zip's
    headers claim 1 KB: a size check that trusts the headers lets it through."""
    head = f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    paragraph = b"<w:p><w:r><w:t>lol</w:t></w:r></w:p>"
    unit = paragraph * (MB // len(paragraph))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    packed += block * expanded_mb + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(expanded_mb):
        crc = zlib.crc32(unit, crc)
    members = [
        ("[Content_Types].xml", *_deflated(_CONTENT_TYPES.encode())),
        ("_rels/.rels", *_deflated(_RELS.encode())),
        ("word/document.xml", packed, crc),
    ]
    path.write_bytes(_zip([(name, data, crc, 1024) for name, data, crc in members]))
    return path


def make_overlapping_zip_bomb_docx(path: Path, entries: int = 2000) -> Path:
    """A DOCX (after Fifield's "better zip bomb") whose thousands of directory entries all point
    at one 1 MB-inflating member: 2 GB claimed in total from a file of a few hundred KB."""
    data, crc = _deflated(bytes(MB))
    encoded = b"word/document.xml"
    fields = (20, 0, 8, 0, 0x21, crc, len(data), MB, len(encoded))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + encoded + data
    central = b"".join(
        struct.pack("<IH", 0x02014B50, 20)
        + struct.pack("<HHHHHIIIH", *fields[:-1], len(f"media/{n}.bin"))
        + struct.pack("<HHHHII", 0, 0, 0, 0, 0, 0)
        + f"media/{n}.bin".encode()
        for n in range(entries)
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), len(local), 0)
    path.write_bytes(local + central + end)
    return path


def make_docx_laughs(path: Path) -> Path:
    """A real DOCX whose word/document.xml declares a billion laughs and uses it."""
    source = make_with_pandoc(path.with_name(path.name + ".source.docx"), "Laughing.")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                head, rest = data.decode().split("?>", 1)
                entity = billion_laughs("w:document")
                data = (head + "?>\n" + entity + rest.replace("Laughing.", "&lol9;")).encode()
            out.writestr(info, data)
    source.unlink()
    return path


def make_traversal_archive(path: Path, outside: Path) -> Path:
    """A real DOCX or EPUB with extra members named ../../x, /abs/x and C:\\x (a careless
    extractor writes them outside its folder), plus its handbook text."""
    source = make_with_pandoc(path.with_name(path.name + ".source" + path.suffix), HANDBOOK_MD)
    names = ["../../../" + outside.name + "/planted.txt", str(outside / "planted.txt")]
    names.append("C:\\Windows\\planted.txt")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for name in names:
            out.writestr(zipfile.ZipInfo(name), "planted by a path-traversal entry\n")
    source.unlink()
    return path


def make_epub_spine_escape(path: Path, outside: Path) -> Path:
    """An EPUB whose spine item is a file outside the book (../../ and an absolute path)."""
    package = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="id">x</dc:identifier><dc:title>Escape</dc:title>'
        "<dc:language>en</dc:language></metadata><manifest>"
        f'<item id="a" href="../../../../../../..{outside}/secret.xhtml" '
        'media-type="application/xhtml+xml"/>'
        f'<item id="b" href="file://{outside}/secret.xhtml" media-type="application/xhtml+xml"/>'
        '</manifest><spine><itemref idref="a"/><itemref idref="b"/></spine></package>'
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:'
        'xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
        'media-type="application/oebps-package+xml"/></rootfiles></container>'
    )
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
        book.writestr("OEBPS/content.opf", package)
    return path


def make_epub_container_laughs(path: Path) -> Path:
    """An EPUB whose META-INF/container.xml is a billion laughs."""
    container = (
        '<?xml version="1.0"?>\n'
        + billion_laughs("container")
        + '<container version="1.0"><rootfiles><rootfile full-path="&lol9;"/></rootfiles>'
        "</container>"
    )
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
    return path


def make_far_cell_xlsx(path: Path) -> Path:
    """A spreadsheet of two cells, A1 and XFD1048576: a converter that builds the grid between
    them builds 17 billion cells."""
    sheet = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
        '2006/main"><dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c r="A1" '
        't="inlineStr"><is><t>corner</t></is></c></row><row r="1048576"><c r="XFD1048576" '
        't="inlineStr"><is><t>far away</t></is></c></row></sheetData></worksheet>'
    )
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    relationships = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.'
            'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
            f'"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="{main}.'
            'sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType='
            f'"{main}.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{package}"><Relationship Id="rId1" '
            f'Type="{relationships}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main" xmlns:r="{relationships}"><sheets><sheet name="S" '
            'sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{package}"><Relationship Id="rId1" '
            f'Type="{relationships}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, text in files.items():
            book.writestr(name, text)
    return path


# Text formats


def billion_laughs(root: str, levels: int = 10) -> str:
    """A DOCTYPE whose entity `&lol9;` (levels=10) expands to 3 * 10**9 bytes."""
    lines = [f"<!DOCTYPE {root} [", '<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{n} "' + f"&lol{n - 1};" * 10 + '">' for n in range(1, levels)]
    return "\n".join(lines) + "\n]>\n"


def make_xml_laughs(path: Path, root: str, body: str) -> Path:
    """An XML file whose text is a billion laughs; `body` holds `{}` where the entity goes."""
    text = '<?xml version="1.0"?>\n' + billion_laughs(root) + body.format("&lol9;")
    path.write_text(text)
    return path


def make_latex_laughs(path: Path) -> Path:
    """LaTeX macros that expand tenfold per level: ten levels make 15 GB of text."""
    names = [f"lol{chr(ord('a') + n)}" for n in range(10)]
    lines = [f"\\newcommand{{\\{names[0]}}}{{lollollollollol}}"]
    lines += [
        f"\\newcommand{{\\{name}}}{{" + f"\\{previous}" * 10 + "}"
        for previous, name in zip(names, names[1:], strict=False)
    ]
    path.write_text("\n".join(lines) + f"\n\\begin{{document}}\\{names[-1]}\\end{{document}}\n")
    return path


def make_one_line_html(path: Path, mb: int = 50) -> Path:
    """An HTML page of `mb` megabytes on a single line."""
    paragraph = "<p>" + "lorem ipsum dolor sit amet " * 10 + "</p>"
    body = paragraph * (mb * MB // len(paragraph))
    path.write_text(f"<html><body>{body}</body></html>")
    return path


def make_one_line_text(path: Path, mb: int = 50) -> Path:
    """`mb` megabytes of words on one line, no paragraph break anywhere."""
    path.write_text("lorem ipsum dolor sit amet " * (mb * MB // 27))
    return path


def make_one_word_text(path: Path, mb: int = 20) -> Path:
    """`mb` megabytes of one letter: one word, no space anywhere."""
    path.write_text("a" * (mb * MB))
    return path


def make_wide_csv(path: Path, columns: int = 2_000_000) -> Path:
    """A CSV of one row and millions of columns."""
    path.write_text(",".join(f"c{n}" for n in range(columns)) + "\n")
    return path


def make_nested_email(path: Path, depth: int = 5000) -> Path:
    """An e-mail whose body is a multipart nested thousands deep, text at the bottom."""
    lines = ["From: a@example.com", "To: b@example.com", "Subject: Nested", "MIME-Version: 1.0"]
    for level in range(depth):
        lines += [f'Content-Type: multipart/mixed; boundary="b{level}"', "", f"--b{level}"]
    lines += ["Content-Type: text/plain", "", "The bottom of the nesting."]
    lines += [f"--b{level}--" for level in reversed(range(depth))]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_pixel_bomb_png(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A PNG of a few hundred bytes whose header claims `width` x `height` pixels (2.5 billion
    by default: 7.5 GB decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


def make_truncated_png(path: Path) -> Path:
    """A real PNG of noise (800 x 600), cut off halfway through its pixels."""
    buffer = io.BytesIO()
    Image.frombytes("L", (800, 600), os.urandom(800 * 600)).save(buffer, "PNG")
    whole = buffer.getvalue()
    path.write_bytes(whole[: len(whole) // 2])
    return path
