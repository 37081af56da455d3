"""EPUB fallback: read the spine ourselves when pandoc's EPUB reader rejects a book."""

import posixpath
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

_BODY = re.compile(r"<body[^>]*>(.*?)</body>", re.DOTALL | re.IGNORECASE)


def spine_html(path: Path) -> str:
    """The book's XHTML files in reading order, joined into one HTML document."""
    with zipfile.ZipFile(path) as book:
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        opf_path = next(e.get("full-path") for e in container.iter() if e.get("full-path"))
        assert opf_path is not None
        opf = ElementTree.fromstring(book.read(opf_path))
        base = posixpath.dirname(opf_path)
        hrefs = {e.get("id"): e.get("href") or "" for e in opf.iter() if _local(e.tag) == "item"}
        spine = [e.get("idref") for e in opf.iter() if _local(e.tag) == "itemref"]
        files = [hrefs.get(idref, "").split("#")[0] for idref in spine]
        bodies = []
        for href in dict.fromkeys(files):  # in order, each file once
            if href:
                xhtml = book.read(posixpath.join(base, href)).decode("utf-8", "replace")
                match = _BODY.search(xhtml)
                bodies.append(match.group(1) if match else xhtml)
    return "<html><body>" + "\n".join(bodies) + "</body></html>"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
