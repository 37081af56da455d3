"""Formats read through pandoc: its JSON AST is walked into blocks under their heading path."""

import json
import resource
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pypandoc

from ingest.budget import held_mb
from ingest.document import Block, Converted, HeadingPath
from ingest.epub import spine_html
from ingest.errors import Corrupt, Encrypted, NoTextLayer, OutOfMemory, TimedOut, TooLarge
from ingest.text import decode_text

ZIP_FORMATS = {".docx": "docx", ".odt": "odt", ".epub": "epub", ".pptx": "pptx", ".xlsx": "xlsx"}
TEXT_FORMATS = {
    ".html": "html", ".htm": "html", ".xhtml": "html", ".rtf": "rtf", ".rst": "rst",
    ".tex": "latex", ".latex": "latex", ".org": "org", ".ipynb": "ipynb", ".csv": "csv",
    ".tsv": "tsv", ".textile": "textile", ".wiki": "mediawiki", ".dbk": "docbook",
    ".fb2": "fb2", ".typ": "typst", ".opml": "opml", ".muse": "muse",
}  # fmt: skip
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # encrypted OOXML files are OLE containers
# Pandoc's readers held 75-330 times their input at their peak here (resident memory, 4-6 MB
# inputs: org 75x, ipynb 85x, LaTeX 104x, HTML 109x, CSV 116x, RST 120x, pandoc's own HTML
# 333x): a text input over 1/50 of the memory left cannot fit, and is refused at once rather
# than after minutes of a core (a 50 MB one-line HTML: 72 s and 2.2 GB, then out of heap).
_PANDOC_INPUT_FACTOR = 50
# Pandoc allocates a little outside its capped heap: its anonymous resident memory peaked 6-21
# MB over the cap here (-M128m to -M363m: a LaTeX macro bomb, a 2-million-column CSV, 5 MB of
# HTML, a sheet with a far cell); the pages of its program (up to 92 MB, shared) come on top.
_OUTSIDE_HEAP_MB = 32
_MIN_HEAP_MB = 64


def convert_with_pandoc(
    path: Path, *, timeout_s: float, memory_mb: int, max_expand_mb: int
) -> Converted:
    """Convert one file through pandoc, bounded in time and memory."""
    suffix = path.suffix.lower()
    if suffix in ZIP_FORMATS:
        _check_archive(path, max_expand_mb)
        try:
            ast = run_pandoc(
                ["-f", ZIP_FORMATS[suffix], str(path)], None, path.name, timeout_s, memory_mb
            )
        except Corrupt:
            if suffix != ".epub":
                raise
            html = _epub_spine(path)
            ast = run_pandoc(["-f", "html"], html.encode(), path.name, timeout_s, memory_mb)
    else:
        text = decode_text(path.read_bytes(), path.name)
        ast = run_pandoc(
            ["-f", TEXT_FORMATS[suffix]], text.encode(), path.name, timeout_s, memory_mb
        )
    blocks = blocks_from_ast(ast)
    if not blocks:
        raise NoTextLayer(f"{path.name}: converted, but holds no text")
    return Converted(suffix.lstrip("."), blocks, title=meta_title(ast))


def _epub_spine(path: Path) -> str:
    try:
        return spine_html(path)
    except (KeyError, StopIteration, ElementTree.ParseError, zipfile.BadZipFile) as error:
        raise Corrupt(f"{path.name}: damaged EPUB ({error})") from None


def run_pandoc(
    args: list[str], stdin: bytes | None, name: str, timeout_s: float, memory_mb: int
) -> dict[str, Any]:
    """Run pandoc to its JSON AST within a wall-clock timeout and the memory this conversion
    has left (`memory_mb` less what a worker process holds itself), through pandoc's heap cap."""
    left_mb = memory_mb - held_mb()
    heap_mb = left_mb * 7 // 8 - _OUTSIDE_HEAP_MB
    too_big = stdin is not None and len(stdin) * _PANDOC_INPUT_FACTOR > left_mb * 1024 * 1024
    if too_big or heap_mb < _MIN_HEAP_MB:
        raise _out_of_memory(name, memory_mb)
    command = [pypandoc.get_pandoc_path(), "--sandbox", "-t", "json", *args]
    command += ["+RTS", f"-M{heap_mb}m", "-RTS"]
    try:
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=_lift_soft_limit,
        )
    except subprocess.TimeoutExpired:
        raise TimedOut(f"{name}: conversion took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        if "Heap exhausted" in message or "heap overflow" in message:
            raise _out_of_memory(name, memory_mb)
        first_line = message.splitlines()[0] if message else f"exit code {done.returncode}"
        raise Corrupt(f"{name}: could not be read ({first_line})")
    return dict(_loads(done.stdout))


def _out_of_memory(name: str, memory_mb: int) -> OutOfMemory:
    return OutOfMemory(
        f"{name}: converting it needs more than {memory_mb} MB of memory "
        "(ARCHIVIST_CONVERT_MEMORY_MB)"
    )


def _loads(output: bytes) -> Any:
    """Pandoc's JSON; nesting deeper than `json.loads` recurses (thousands of <div>s, valid
    HTML) is decoded without recursion instead (slower, so only when needed)."""
    try:
        return json.loads(output)
    except RecursionError:
        return _loads_flat(output.decode())


def _loads_flat(text: str) -> Any:
    """Decode JSON keeping open arrays and objects on a list rather than the call stack: its
    depth is bounded by memory (which pandoc's heap cap bounds) instead of the recursion limit.
    Strings, numbers and literals are decoded by the json module (they do not nest)."""
    scalar = json.JSONDecoder().raw_decode
    # Each open container with the key it will have in its parent (None in an array).
    opened: list[tuple[list[Any] | dict[str, Any], str | None]] = []
    key: str | None = None
    position = 0
    while position < len(text):
        char = text[position]
        if char in " \t\n\r,:":
            position += 1
            continue
        if char in "[{":
            opened.append(([] if char == "[" else {}, key))
            key, position = None, position + 1
            continue
        if char in "]}":
            value, key = opened.pop()
            position += 1
        else:
            value, position = scalar(text, position)
            if opened and isinstance(opened[-1][0], dict) and key is None:
                key = value  # an object's key: its value comes next
                continue
        if not opened:
            return value
        parent = opened[-1][0]
        if isinstance(parent, list):
            parent.append(value)
        else:
            parent[key], key = value, None  # type: ignore[index]
    raise ValueError("pandoc's JSON output ended early")


def _lift_soft_limit() -> None:
    # The worker caps its own address space; pandoc is bounded by its heap cap instead.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _check_archive(path: Path, max_expand_mb: int) -> None:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic == _OLE_MAGIC:
        raise Encrypted(
            f"{path.name}: password-protected (or an old binary Office file renamed "
            f"{path.suffix}) — save an unprotected copy in {path.suffix} format and add that"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            expanded = sum(info.file_size for info in members)
            if expanded > max_expand_mb * 1024 * 1024:
                raise TooLarge(
                    f"{path.name}: expands to {expanded // (1024 * 1024)} MB, over the "
                    f"{max_expand_mb} MB limit (ARCHIVIST_MAX_EXPAND_MB)"
                )
            for info in members:
                _check_member(archive, info, path.name)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise Corrupt(f"{path.name}: damaged or not a real {path.suffix} file ({error})") from None


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> None:
    """Inflate a member as far as its header says it goes, checking its CRC: a header can
    understate what a member inflates to (a zip bomb that hides from the size check above),
    and pandoc reads on past what the header says (a 2 GB member claiming 1 KB held its heap
    cap and a core until the time limit)."""
    try:
        with archive.open(info) as member:
            while member.read(1024 * 1024):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise Corrupt(
            f"{name}: damaged, or a zip bomb hiding its size: {info.filename} does not match "
            f"its zip header ({error})"
        ) from None
    except RuntimeError:  # zipfile: "File ... is encrypted, password required"
        raise Encrypted(
            f"{name}: {info.filename} is password-protected inside the archive — save an "
            "unprotected copy and add that"
        ) from None
    except NotImplementedError as error:  # a compression method neither zipfile nor pandoc reads
        raise Corrupt(f"{name}: {info.filename} cannot be unpacked ({error})") from None


def meta_title(ast: dict[str, Any]) -> str | None:
    """The document's title from pandoc's metadata (Office core properties, HTML <title>,
    EPUB dc:title, a Markdown/LaTeX title block), if it has one."""
    title = ast.get("meta", {}).get("title")
    if not title:
        return None
    kind, content = title.get("t"), title.get("c")
    if kind == "MetaString":
        return str(content)
    if kind == "MetaInlines":
        return inline_text(content)
    if kind == "MetaBlocks":
        return " ".join(b.text for b in blocks_from_ast({"blocks": content}))
    return None


def blocks_from_ast(ast: dict[str, Any]) -> list[Block]:
    """Walk pandoc's block list into paragraphs, tracking the heading path."""
    walker = _Walker()
    walker.walk(ast.get("blocks", []))
    return walker.blocks


class _Walker:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.path = HeadingPath()

    def emit(self, text: str) -> None:
        text = " ".join(text.split()) if "\n" not in text else text.strip()
        if text:
            self.blocks.append(Block(text, self.path.titles))

    def walk(self, blocks: list[dict[str, Any]]) -> None:
        # A stack of block lists instead of recursion: valid HTML can nest <div>s, quotes and
        # lists thousands deep, past Python's recursion limit.
        pending = [iter(blocks)]
        while pending:
            block = next(pending[-1], None)
            if block is None:
                pending.pop()
                continue
            inside = self.block(block.get("t", ""), block.get("c"))
            pending.extend(iter(child) for child in reversed(inside))

    def block(self, kind: str, content: Any) -> list[list[dict[str, Any]]]:
        """Emit what this block says itself; return the block lists inside it, to walk next."""
        if kind in ("Para", "Plain"):
            self.emit(inline_text(content))
        elif kind == "Header":
            level, _, inlines = content
            title = " ".join(inline_text(inlines).split())
            self.path.enter(level, title)
            self.emit(title)
        elif kind == "CodeBlock":
            self.emit(content[1])
        elif kind == "LineBlock":
            self.emit("\n".join(inline_text(line) for line in content))
        elif kind in ("BlockQuote", "Div", "Figure"):
            return [content if kind == "BlockQuote" else content[-1]]
        elif kind in ("BulletList", "OrderedList"):
            return list(content if kind == "BulletList" else content[1])
        elif kind == "DefinitionList":
            # Each term is emitted as a paragraph just before its definitions.
            return [
                blocks
                for term, definitions in content
                for blocks in [[{"t": "Plain", "c": term}], *definitions]
            ]
        elif kind == "Table":
            self.table(content)
        return []

    def table(self, content: list[Any]) -> None:
        _, caption, _, head, bodies, foot = content
        self.walk(caption[1])
        rows = list(head[1])
        for body in bodies:
            rows += body[2] + body[3]
        rows += foot[1]
        for row in rows:
            cells = (" ".join(_cell_text(cell).split()) for cell in row[1])
            self.emit(" | ".join(cell for cell in cells if cell))


def _cell_text(cell: list[Any]) -> str:
    walker = _Walker()
    walker.walk(cell[4])
    return " ".join(block.text for block in walker.blocks)


def inline_text(inlines: list[dict[str, Any]]) -> str:
    """Flatten pandoc inlines to plain text (links keep their text, images their alt text)."""
    parts: list[str] = []
    pending = [iter(inlines)]  # a stack, not recursion: <span>s can nest thousands deep
    while pending:
        inline = next(pending[-1], None)
        if inline is None:
            pending.pop()
            continue
        kind, content = inline.get("t"), inline.get("c", [])
        if kind == "Str":
            parts.append(content)
        elif kind in ("Space", "SoftBreak"):
            parts.append(" ")
        elif kind == "LineBreak":
            parts.append("\n")
        elif kind in ("Code", "Math"):
            parts.append(content[1])
        elif kind in ("Emph", "Strong", "Underline", "Strikeout", "Superscript", "Subscript",
                      "SmallCaps"):  # fmt: skip
            pending.append(iter(content))
        elif kind in ("Quoted", "Cite", "Span") or kind in ("Link", "Image"):
            pending.append(iter(content[1]))
        elif kind == "Note":
            walker = _Walker()
            walker.walk(content)
            parts.append(" (" + " ".join(b.text for b in walker.blocks) + ")")
    return "".join(parts)
