"""A document's identity as the indexes see it: a readable title and its file name.

A chunk's own text rarely says which document it belongs to — a balance sheet page does not
name the company, a review does not name the product. Both search legs index each chunk led by
this identity, so "effective tax rate of Best Buy" can match Best Buy's filing and not another
company's; the stored chunk text and the snippets stay as they were.
"""

import re
from collections.abc import Sequence
from pathlib import PurePath

from ingest.document import Block

# Producer boilerplate that PDF and Office metadata titles often carry in front of the name.
_PRODUCER_PREFIX = re.compile(r"^(microsoft (word|powerpoint|excel)|untitled)\s*-\s*", re.I)
_WORDS = re.compile(r"[^\W_]+")
_SEPARATORS = re.compile(r"[\s_.+\-]+")


def readable(title: str | None) -> str:
    """The title with whitespace collapsed and producer boilerplate dropped; "" when it is no
    title a person would read (empty, or an id such as "0001018724-18-000005")."""
    text = _PRODUCER_PREFIX.sub("", " ".join((title or "").split()))
    return text if re.search(r"[^\W\d_]{3,}", text) else ""


def document_title(metadata_title: str | None, blocks: Sequence[Block]) -> str:
    """The file's metadata title when readable, else its first heading, else ""."""
    first_heading = next((b.heading_path[0] for b in blocks if b.heading_path), "")
    return readable(metadata_title) or readable(first_heading)


def name_words(path: str) -> str:
    """A file name as words: "AMCOR_2023_10K.pdf" -> "AMCOR 2023 10K"; "" for "0000123.md"."""
    words = _SEPARATORS.sub(" ", PurePath(path).stem).strip()
    return words if re.search(r"[^\W\d_]", words) else ""


def identity(title: str, name: str) -> str:
    """The title, followed by the file name's words when they add any:
    "10-K - 3M Company (3M 2018 10K)", "Employee Handbook" for handbook.md."""
    seen = {w.lower() for w in _WORDS.findall(title)}
    adds = any(w.lower() not in seen for w in _WORDS.findall(name))
    if not title:
        return name
    return f"{title} ({name})" if name and adds else title


def context_parts(document: str, heading_path: Sequence[str], page_opening: str = "") -> list[str]:
    """The document identity, the section path, then the first words of the page, without
    repeating the title (a Markdown file's title is usually its first heading too)."""
    path = list(heading_path)
    if path and document.startswith(path[0]):
        path = path[1:]
    return [p for p in dict.fromkeys([document, *path, page_opening]) if p]
