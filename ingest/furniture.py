"""Page furniture: the running headers, footers and page numbers a printed document repeats at
the top or bottom of its pages. Left in the text, "Chapter 1: Introduction and preliminaries 4"
opened a paragraph of R's manual and a quote of it; a filing's "Table of Contents" link and
page number ran into the first and last sentence of each of its pages.

A line is furniture when it sits among the first or last EDGE_LINES lines of its page and
- it begins or ends with a number that goes up with the page ("… preliminaries 4" on page 10,
  "… 5" on 11: the same words, the number minus the page index the same) on MIN_PAGES pages
  or more, or
- it is the same line on MIN_PAGES pages or more and on at least SAME_SHARE of the pages,
and it is short and does not end a sentence ("… listed on page 4." is the page's own).
A table's last row or a line of code that happens to close several pages has numbers that do
not follow the pages, or words that differ; those stay.
"""

import re
from collections import defaultdict
from collections.abc import Sequence

EDGE_LINES = 2  # a header may sit above a section title, a footer below a footnote rule
MIN_PAGES = 3
SAME_SHARE = 0.5
_NUMBER = re.compile(r"\d+")
_LAST_NUMBER = re.compile(r"(\d+)[\W_]*$")
_FIRST_NUMBER = re.compile(r"[\W_]*(?:page\s*)?(\d+)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;,:]\s*$")
_MAX_WORDS = 15  # furniture is short: a title, a chapter's name, a page number


def without_furniture(pages: Sequence[str]) -> list[str]:
    """The pages' texts without their running headers, footers and page numbers."""
    # Each line that may be furniture: its page, line number, text, and for a numbered line its
    # words with the numbers blanked and its number minus the page index.
    candidates: list[tuple[int, int, str, tuple[str, int] | None]] = []
    numbered: dict[tuple[str, int], set[int]] = defaultdict(set)  # pages of each numbered line
    same: dict[str, set[int]] = defaultdict(set)  # pages of each line
    for page, text in enumerate(pages):
        for line_number, line in _edges(text):
            key = " ".join(line.split())
            if len(key.split()) > _MAX_WORDS or _SENTENCE_END.search(key):
                continue  # furniture is short, and never ends a sentence
            number = _page_number(key)
            group = None if number is None else (_NUMBER.sub("#", key), int(number) - page)
            candidates.append((page, line_number, key, group))
            same[key].add(page)
            if group is not None:
                numbered[group].add(page)
    needed = max(MIN_PAGES, SAME_SHARE * len(pages))
    furniture: dict[int, set[int]] = defaultdict(set)  # page -> its line numbers to drop
    for page, line_number, key, group in candidates:
        if (group is not None and len(numbered[group]) >= MIN_PAGES) or len(same[key]) >= needed:
            furniture[page].add(line_number)
    return [
        _dropped(text, furniture[page]) if page in furniture else text
        for page, text in enumerate(pages)
    ]


def _page_number(line: str) -> str | None:
    """The number a line ends or begins with ("… preliminaries 4", "Page 4", "- 4 -", "A-4",
    "4 | Annual Report")."""
    found = _LAST_NUMBER.search(line) or _FIRST_NUMBER.match(line)
    return found[1] if found else None


def _edges(text: str) -> list[tuple[int, str]]:
    """The first and last EDGE_LINES non-blank lines of a page, with their line numbers."""
    lines = [(n, line) for n, line in enumerate(text.split("\n")) if line.strip()]
    if len(lines) <= 2 * EDGE_LINES:
        return lines
    return lines[:EDGE_LINES] + lines[-EDGE_LINES:]


def _dropped(text: str, line_numbers: set[int]) -> str:
    return "\n".join(line for n, line in enumerate(text.split("\n")) if n not in line_numbers)
