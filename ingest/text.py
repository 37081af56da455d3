"""Plain text and Markdown: encoding detection and paragraph/heading splitting."""

import re

from ingest.document import Block, Converted, HeadingPath
from ingest.errors import Corrupt, NoTextLayer

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_HYPHENATED = re.compile(r"(\w)-\n(?=[a-z])")
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*")
# A line that starts a list item: a bullet sign, or a dash or asterisk before a capital or a
# digit ("- Log book up to date and signed"; a wrapped line "- (non-GAAP measures)" is not one).
_LIST_ITEM = re.compile(r"[•●▪◦·][ \t]|[-–*][ \t]+[A-Z0-9]")


def decode_text(data: bytes, name: str) -> str:
    """Decode bytes as text: BOM, then UTF-16 by NUL pattern, then UTF-8, then cp1252."""
    text = _decode(data)
    if text is None or len(_CONTROL.findall(text)) > max(8, len(text) // 100):
        raise Corrupt(
            f"{name}: not readable as text (tried UTF-8, UTF-16, UTF-32 and cp1252; "
            "it looks like binary data) — check the file or give it its real extension"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _try(data[len(bom) :], encoding)
    if data.count(0) > len(data) // 4:
        even_nuls = data[0::2].count(0)
        odd_nuls = data[1::2].count(0)
        return _try(data, "utf-16-be" if even_nuls > odd_nuls else "utf-16-le")
    return _try(data, "utf-8") or _try(data, "cp1252") or _try(data, "latin-1")


def _try(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def page_paragraphs(text: str) -> list[str]:
    """Paragraphs of a printed page's text (a PDF's text layer, or OCR's), with line breaks and
    end-of-line hyphenation undone — except before a list item, so that each item can be
    quoted alone ("Log book up to date and signed", not the whole checklist)."""
    text = text.replace("\x02", "").replace("\ufffe", "")
    return [_unwrapped(_HYPHENATED.sub(r"\1", p)) for p in split_paragraphs(text)]


def _unwrapped(paragraph: str) -> str:
    def joined(line_break: re.Match[str]) -> str:
        return "\n" if _LIST_ITEM.match(paragraph, line_break.end()) else " "

    return _LINE_BREAK.sub(joined, paragraph)


def split_paragraphs(text: str) -> list[str]:
    """Split text on blank lines; drop empty pieces."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def convert_plain(data: bytes, name: str) -> Converted:
    """Plain text: paragraphs, no headings."""
    blocks = [Block(p) for p in split_paragraphs(decode_text(data, name))]
    return _require_text(Converted("txt", blocks), name)


def convert_markdown(data: bytes, name: str) -> Converted:
    """Markdown: paragraphs under their ATX heading path; fenced code is kept as one block."""
    blocks: list[Block] = []
    path = HeadingPath()
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        blocks.extend(Block(p, path.titles) for p in split_paragraphs("\n".join(lines)))
        lines.clear()

    for line in decode_text(data, name).split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _ATX.match(line)
        if heading:
            flush()
            path.enter(len(heading.group(1)), heading.group(2))
            lines.append(heading.group(2))
        else:
            lines.append(line)
    flush()
    return _require_text(Converted("md", blocks), name)


def _require_text(converted: Converted, name: str) -> Converted:
    if not converted.blocks:
        raise NoTextLayer(f"{name}: the file holds no text (it is empty or only whitespace)")
    return converted
