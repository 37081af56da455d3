"""How far an OCR reading is from the text on the page: the character error rate."""

import unicodedata

_ASCII = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'",
                        "—": "-", "–": "-"})  # fmt: skip


def normalized(text: str) -> str:
    """NFKC, curly quotes and dashes as ASCII, all whitespace collapsed (the convention of the
    dev scans' SOURCES.md)."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_ASCII).split())


def character_error_rate(read: str, truth: str) -> float:
    """Edit distance between the normalized texts over the ground truth's length."""
    a, b = normalized(read), normalized(truth)
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
        previous = current
    return previous[-1] / max(1, len(b))
