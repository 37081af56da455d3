"""A generated hostile corpus: every file is ingested or fails with its specific reason, in
bounded time and bounded total memory, and nothing outside the folder is read or written."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from ingest.ingester import IngestReport
from ingest.store import ChunkStore
from tests.fixtures import HANDBOOK_MD, make_random_bytes, make_with_pandoc, make_zip_bomb
from tests.ingest import hostile_files as h
from tests.ingest.memory import MemorySampler

# All conversions together get 512 MB: two workers convert at once, each within a share.
BUDGET_MB = 512
# Processes of the pool that convert nothing: the fork server (~21 MB allocated, measured)
# and multiprocessing's resource tracker (~6 MB).
POOL_MB = 32
# The pages of the programs themselves, shared and droppable: the interpreter and its
# libraries (~20 MB across the fork server and workers) and pandoc's binary (up to 92 MB
# resident, shared by the pandoc processes).
PROGRAM_PAGES_MB = 128
# Each conversion has 60 s; the run as a whole took 40-130 s here, depending on what else ran
# on the two cores (before conversions were bounded, a 50 MB HTML alone held a core 72 s).
RUN_LIMIT_S = 240

Write = Callable[[Path, Path], object]  # (the file's path, a folder outside the corpus)
Result = tuple[str, str | None] | None  # (status, reason); None: not listed at all
INGESTED: Result = ("ingested", None)


def failed(reason: str) -> Result:
    return ("failed", reason)


@dataclass(frozen=True)
class Hostile:
    """One hostile input: its name in the folder, how to write it, the result it must get."""

    name: str
    write: Write
    expected: Result


def text(content: str) -> Write:
    return lambda path, _: path.write_text(content)


def link(target: str) -> Write:
    """A symbolic link; `{outside}` in the target is the folder outside the corpus."""
    return lambda path, outside: h.make_link(path, target.format(outside=outside))


def made(maker: Callable[[Path], object]) -> Write:
    return lambda path, _: maker(path)


def xml_laughs(root: str, body: str) -> Write:
    return lambda path, _: h.make_xml_laughs(path, root, body)


def including(template: str) -> Write:
    """A file whose text names the secret file outside the folder: `{secret}`."""
    return lambda path, outside: path.write_text(template.format(secret=outside / "secret.txt"))


FB2 = '<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0"><body><section><p>{}</p>'
NON_UTF8_NAME = os.fsdecode(b"caf\xe9 menu.txt")

CORPUS = [
    # Links, pipes, sockets, devices: refused before anything opens them.
    Hostile("dangling.txt", link("gone.txt"), failed("unreadable")),
    Hostile("self-loop.md", link("self-loop.md"), failed("unreadable")),
    Hostile("ping.txt", link("pong.txt"), failed("unreadable")),
    Hostile("pong.txt", link("ping.txt"), failed("unreadable")),
    Hostile("fifo.txt", made(h.make_fifo), failed("unsupported")),
    Hostile("socket.md", made(h.make_socket), failed("unsupported")),
    Hostile("zero.txt", made(h.make_zero_device), failed("unsupported")),
    Hostile("secret-link.txt", link("{outside}/secret.txt"), failed("outside-folder")),
    Hostile("relative-escape.txt", link("../outside/secret.txt"), failed("outside-folder")),
    Hostile("etc-passwd.txt", link("/etc/passwd"), failed("outside-folder")),
    Hostile("environ.txt", link("/proc/self/environ"), failed("outside-folder")),
    Hostile("dev-zero.txt", link("/dev/zero"), failed("outside-folder")),
    Hostile("outside-dir", link("{outside}"), None),  # a folder link: not walked
    Hostile("up", link(".."), None),
    Hostile("here", link("."), None),
    Hostile("inside-link.md", link("trap.pdf/inside.md"), INGESTED),
    Hostile("trap.pdf/inside.md", text("# Inside\n\nA folder named like a PDF.\n"), INGESTED),
    # Names
    Hostile("two\nlines.txt", text("A name with a newline in it.\n"), INGESTED),
    Hostile("..\\..\\escape.txt", text("A hidden name: dot first.\n"), None),
    Hostile("notes..md", text("Two dots before the extension.\n"), INGESTED),
    Hostile("a..b", text("Dots and no extension.\n"), failed("unsupported")),
    Hostile("-o pwned.docx", lambda p, _: make_with_pandoc(p, "Looks like an option."), INGESTED),
    Hostile("\x1b[2J\x1b[31mred.txt", text("A name with terminal escapes.\n"), INGESTED),
    Hostile("x" * 240 + ".md", text("A name near the 255-byte limit.\n"), INGESTED),
    Hostile(NON_UTF8_NAME, text("A Latin-1 name from an old disk.\n"), failed("bad-name")),
    # PDFs
    Hostile("empty-pages.pdf", made(h.make_empty_pages_pdf), failed("no-text")),
    Hostile("huge-text.pdf", made(h.make_huge_text_pdf), INGESTED),
    Hostile("content-bomb.pdf", made(h.make_content_bomb_pdf), failed("too-large")),
    Hostile("many-operators.pdf", made(h.make_many_operators_pdf), failed("too-large")),
    Hostile("page-count.pdf", made(h.make_lying_page_count_pdf), INGESTED),
    Hostile("page-loop.pdf", made(h.make_page_tree_loop_pdf), failed("no-text")),
    Hostile("junk.pdf", made(make_random_bytes), failed("corrupt")),
    # Pictures of pages (refused as such whether or not OCR is installed)
    Hostile("pixel-bomb.png", made(h.make_pixel_bomb_png), failed("too-large")),
    Hostile("truncated.png", made(h.make_truncated_png), failed("corrupt")),
    Hostile("junk.jpg", made(make_random_bytes), failed("corrupt")),
    # Archives
    Hostile("zip-bomb.docx", lambda p, _: make_zip_bomb(p, 4000), failed("too-large")),
    Hostile("lying-bomb.docx", made(h.make_lying_zip_bomb_docx), failed("corrupt")),
    Hostile("overlap-bomb.docx", made(h.make_overlapping_zip_bomb_docx), failed("too-large")),
    Hostile("laughs.docx", made(h.make_docx_laughs), failed("corrupt")),
    Hostile("traversal.docx", h.make_traversal_archive, INGESTED),
    Hostile("traversal.epub", h.make_traversal_archive, INGESTED),
    Hostile("spine-escape.epub", h.make_epub_spine_escape, failed("corrupt")),
    Hostile("container-laughs.epub", made(h.make_epub_container_laughs), failed("corrupt")),
    Hostile("far-cell.xlsx", made(h.make_far_cell_xlsx), failed("too-large")),
    # Markup: entity and macro bombs, includes of files outside, sizes pandoc cannot hold
    Hostile(
        "laughs.dbk", xml_laughs("article", "<article><para>{}</para></article>"), failed("corrupt")
    ),
    Hostile(
        "laughs.fb2",
        xml_laughs("FictionBook", FB2 + "</section></body></FictionBook>"),
        failed("corrupt"),
    ),
    Hostile(
        "laughs.opml",
        xml_laughs("opml", '<opml version="2.0"><body><outline text="{}"/></body></opml>'),
        failed("corrupt"),
    ),
    Hostile("laughs.xhtml", xml_laughs("html", "<html><body><p>{}</p></body></html>"), INGESTED),
    Hostile("macro-loop.tex", text("\\def\\x{\\x x}\n\\x\n"), failed("corrupt")),
    Hostile(
        "include.rst", including("Title\n=====\n\n.. include:: {secret}\n\nAfter.\n"), INGESTED
    ),
    Hostile("include.org", including('* Title\n#+INCLUDE: "{secret}"\nAfter.\n'), INGESTED),
    Hostile(
        "input.tex",
        including("\\begin{{document}}\\input{{{secret}}}After.\\end{{document}}"),
        INGESTED,
    ),
    Hostile("include.typ", including('= Title\n#include "{secret}"\nAfter.\n'), failed("corrupt")),
    Hostile(
        "iframe.html", including('<iframe src="file://{secret}"></iframe><p>After.</p>'), INGESTED
    ),
    Hostile("one-line.html", made(h.make_one_line_html), failed("too-large")),
    Hostile("wide.csv", made(h.make_wide_csv), failed("too-large")),
    Hostile("deep.rtf", text("{\\rtf1 " + "{" * 200_000 + "deep" + "}" * 200_000 + "}"), INGESTED),
    Hostile(
        "deep.ipynb",
        text('{"nbformat": 4, "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        failed("corrupt"),
    ),
    Hostile("handbook.rst", lambda p, _: make_with_pandoc(p, HANDBOOK_MD), INGESTED),
    # Text
    Hostile("one-line.txt", lambda p, _: h.make_one_line_text(p, 10), INGESTED),
    Hostile("one-word.md", lambda p, _: h.make_one_word_text(p, 4), INGESTED),
    Hostile("binary.txt", made(make_random_bytes), failed("corrupt")),
    Hostile("blank.md", text(" \n\n\t\n"), failed("no-text")),
    Hostile("nested.eml", made(h.make_nested_email), failed("too-deep")),
]


def shown(name: str) -> str:
    """A name as reports show it: bytes that are not UTF-8 as \\x escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def write_corpus(corpus: list[Hostile], folder: Path, outside: Path) -> dict[str, Result]:
    """Write every hostile input; the result expected of each one that could be written."""
    outside.mkdir()
    (outside / "secret.txt").write_text(h.SECRET + "\n")
    (outside / "secret.xhtml").write_text(f"<html><body><p>{h.SECRET}</p></body></html>")
    expected = {}
    for item in corpus:
        path = folder / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            item.write(path, outside)
        except PermissionError:  # a device needs root
            continue
        expected[shown(item.name)] = item.expected
    return expected


@dataclass(frozen=True)
class HostileRun:
    folder: Path
    expected: dict[str, Result]
    report: IngestReport
    seconds: float
    memory: MemorySampler
    settings: Settings


def ingest_sampled(
    root: Path, corpus: list[Hostile], memory_mb: int, timeout_s: float = 60
) -> HostileRun:
    """Write a corpus under `root` and ingest it through the service, two workers within
    `memory_mb`, sampling the memory of the conversion processes all along."""
    folder = root / "docs"
    expected = write_corpus(corpus, folder, root / "outside")
    settings = Settings(
        data=root / "data",
        workers=2,
        convert_timeout_s=timeout_s,
        convert_memory_mb=memory_mb,
        llm="none",
    )
    with Archivist(settings) as service:
        service.pool.warm()  # (the fork server's imports are no conversion's)
        with MemorySampler() as memory:
            started = time.monotonic()
            report = service.ingest([folder], index=False).report
            seconds = time.monotonic() - started
    return HostileRun(folder.resolve(), expected, report, seconds, memory, settings)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    """The corpus ingested once."""
    return ingest_sampled(tmp_path_factory.mktemp("hostile"), CORPUS, BUDGET_MB)


def results(run: HostileRun) -> dict[str, Result]:
    found: dict[str, Result] = {}
    for result in run.report.files:
        name = str(Path(result.path).relative_to(run.folder))
        found[name] = (result.status, result.reason)
    return found


def test_the_corpus_has_at_least_forty_hostile_inputs(run: HostileRun) -> None:
    assert len(run.expected) >= 40


@pytest.mark.parametrize("item", CORPUS, ids=lambda item: ascii(item.name)[1:-1][:40])
def test_each_input_is_ingested_or_fails_with_its_reason(run: HostileRun, item: Hostile) -> None:
    name = shown(item.name)
    if name not in run.expected:
        pytest.skip(f"{name!r} could not be made here (a device needs root)")
    assert results(run).get(name) == item.expected


def test_every_failure_names_its_file(run: HostileRun) -> None:
    for result in run.report.files:
        if result.status == "failed":
            assert result.error and result.error.startswith(Path(result.path).name + ": ")


def test_nothing_outside_the_folder_is_stored(run: HostileRun) -> None:
    store = ChunkStore(run.settings.database)
    try:
        paths = [record.path for record in store.documents()]
        texts = [text for (text,) in store.db.execute("SELECT text FROM chunks")]
    finally:
        store.close()
    assert all(Path(path).is_relative_to(run.folder) for path in paths)
    assert not any(h.SECRET.split(":")[0] in text for text in texts)
    assert not any("root:x:0:0" in text or "planted by" in text for text in texts)


def test_archive_members_named_outside_are_not_written_anywhere(run: HostileRun) -> None:
    root = run.folder.parent
    assert list(root.rglob("planted.txt")) == []
    assert not (Path.cwd() / "planted.txt").exists()


def test_the_run_finishes_in_bounded_time(run: HostileRun) -> None:
    assert run.seconds < RUN_LIMIT_S
    assert not [r.path for r in run.report.files if r.reason == "timeout"]


def test_what_conversions_allocate_at_once_stays_within_the_budget(run: HostileRun) -> None:
    held = sorted(run.memory.peak_processes.items(), key=lambda item: -item[1][1])
    assert run.memory.peak_anon_mb <= BUDGET_MB + POOL_MB, held


def test_with_their_programs_pages_the_conversions_stay_bounded(run: HostileRun) -> None:
    assert run.memory.peak_mb <= BUDGET_MB + POOL_MB + PROGRAM_PAGES_MB


HEAVY = [
    Hostile("laughs.tex", made(h.make_latex_laughs), failed("too-large")),
    Hostile("far-cell.xlsx", made(h.make_far_cell_xlsx), failed("too-large")),
]


@pytest.mark.reliability
def test_the_default_budget_bounds_two_pandoc_bombs_side_by_side(tmp_path: Path) -> None:
    """Two small files that fill any pandoc heap, at the default 2048 MB (two pandoc
    processes held 2.2 + 1.4 GB at once before): what the conversions allocate at once stays
    within the budget, and each fails as too large. Minutes on two cores."""
    heavy = ingest_sampled(tmp_path, HEAVY, 2048, timeout_s=600)
    held = sorted(heavy.memory.peak_processes.items(), key=lambda item: -item[1][1])
    assert heavy.memory.peak_anon_mb <= 2048 + POOL_MB, held
    assert results(heavy) == heavy.expected
