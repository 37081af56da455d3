"""Plain values that flow from a converter to the chunker."""

from collections.abc import Callable
from dataclasses import dataclass, field

# `on_page(done, count)`: a paged converter's progress, page by page (count: pages in all).
PageProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Block:
    """One paragraph-like unit of a converted file, with where it sits in the file."""

    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # 1-based page number, for paged formats (PDF)


class HeadingPath:
    """The headings above the text read so far. A heading closes every open heading of its
    level or deeper, so levels may skip: in an EPUB's contents page of <h1>, <h4>, <h5>, <h5>,
    the second <h5> is the first one's sibling ("1.1 For the impatient", then "1.2 Terms"),
    where cutting the path at the level's depth made it the first one's child."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._open)


@dataclass(frozen=True)
class Converted:
    """A file turned into text blocks, plus what the converter learned about it."""

    file_type: str
    blocks: list[Block] = field(default_factory=list)
    page_count: int | None = None
    pages_without_text: int = 0
    ocr_pages: int = 0  # pages read by OCR (pictures of pages, without a text layer)
    low_confidence_pages: tuple[int, ...] = ()  # of those, the ones read with low confidence
    title: str | None = None  # the file's own title (PDF or Office metadata, HTML <title>)
