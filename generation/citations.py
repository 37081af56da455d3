"""Reading the source numbers an answer cites: [1], [1, 2], [1][2], [1-3], [Source 2]."""

import re
from dataclasses import dataclass

# Square brackets, and the full-width ones some multilingual models write: 【1】.
_BRACKETED = re.compile(r"[\[【]([^\[\]【】\n]{1,60})[\]】]")
_SEPARATORS = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.I)
_ITEM = re.compile(
    r"(?:(?:sources?|src|refs?|docs?)\s*)?[#^]?\s*(\d{1,3})(?:\s*[-–—]\s*[#^]?\s*(\d{1,3}))?", re.I
)
# A range longer than this is not a believable citation; only its two ends are kept.
_MAX_RANGE = 20


@dataclass(frozen=True)
class Citations:
    """Source numbers cited, in order of first appearance; `unknown` ones match no source."""

    cited: list[int]
    unknown: list[int]


def parse_citations(answer: str, source_count: int) -> Citations:
    """The source numbers an answer cites, checked against the `source_count` sources given."""
    cited: list[int] = []
    unknown: list[int] = []
    for match in _BRACKETED.finditer(answer):
        for number in _numbers(match.group(1)):
            found = cited if 1 <= number <= source_count else unknown
            if number not in found:
                found.append(number)
    return Citations(cited, unknown)


def _numbers(inside: str) -> list[int]:
    """The numbers in one bracket, or none if it is not a citation ("[a]", "[1.2]", "[see]")."""
    numbers: list[int] = []
    for part in _SEPARATORS.split(inside.strip()):
        item = _ITEM.fullmatch(part)
        if item is None:
            return []
        first = int(item.group(1))
        last = int(item.group(2)) if item.group(2) else first
        low, high = min(first, last), max(first, last)
        numbers += [first, last] if high - low > _MAX_RANGE else range(low, high + 1)
    return numbers
