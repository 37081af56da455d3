"""Valid documents nested deeper than Python's recursion limit: converted, or refused as such."""

from pathlib import Path

import pytest

from ingest.convert import Limits, convert_file
from tests.conftest import IngestRun, by_name

LIMITS = Limits(timeout_s=60, memory_mb=1024, max_file_mb=512, max_expand_mb=200)
DEPTH = 5000  # far past the 1000 levels json.loads and a recursive walk follow
NESTINGS = {
    "div": ("<div>", "<p>{}</p>", "</div>"),
    "quote": ("<blockquote>", "<p>{}</p>", "</blockquote>"),
    "list": ("<ul><li>", "{}", "</li></ul>"),
    "span": ("<span>", "{}", "</span>"),
}


def nested_html(path: Path, opening: str, inner: str, closing: str, text: str) -> Path:
    body = opening * DEPTH + inner.format(text) + closing * DEPTH
    path.write_text(f"<html><body>{body}</body></html>")
    return path


@pytest.mark.parametrize("kind", NESTINGS)
def test_thousands_of_nested_elements_convert(tmp_path: Path, kind: str) -> None:
    text = "The lighthouse lens is cleaned every fourteen days."
    path = nested_html(tmp_path / f"{kind}.html", *NESTINGS[kind], text)
    assert [b.text for b in convert_file(path, LIMITS).blocks] == [text]


def test_nesting_deeper_than_the_converter_follows_is_too_deep_not_corrupt(
    run_ingest: IngestRun, docs: Path
) -> None:
    tables = ("<table><tr><td>", "{}", "</td></tr></table>")
    nested_html(docs / "layout.html", *tables, "Innermost cell.")
    result = by_name(run_ingest(docs))["layout.html"]
    assert (result.status, result.reason) == ("failed", "too-deep")
    assert result.error is not None
    assert result.error.startswith("layout.html: nested too deeply for the converter to follow")
    assert "save a flatter copy" in result.error
