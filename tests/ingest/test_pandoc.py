"""Formats read through pandoc keep their heading structure; hostile archives are refused."""

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.convert import Limits, convert_file
from ingest.errors import Corrupt, Encrypted, TimedOut, TooLarge, UnsupportedType
from tests.fixtures import HANDBOOK_MD, make_random_bytes, make_with_pandoc, make_zip_bomb

LIMITS = Limits(timeout_s=30, memory_mb=1024, max_file_mb=512, max_expand_mb=200)
LATE_FEES = ("Staff Handbook", "Lending Rules", "Late Fees")


@pytest.mark.parametrize("suffix", [".docx", ".odt", ".epub", ".html", ".rst", ".org", ".rtf"])
def test_heading_path_survives_conversion(tmp_path: Path, suffix: str) -> None:
    path = make_with_pandoc(tmp_path / f"handbook{suffix}", HANDBOOK_MD)
    blocks = convert_file(path, LIMITS).blocks
    fee_block = next(b for b in blocks if "20 cents per item" in b.text)
    assert fee_block.heading_path == LATE_FEES


def test_html_headings_that_skip_levels_are_siblings(tmp_path: Path) -> None:
    path = tmp_path / "contents.html"
    path.write_text(
        "<h1>Manual</h1><h4>1. About</h4><h5>1.1 Impatient</h5><p>Read on.</p>"
        "<h5>1.2 Terms</h5><p>Words.</p><h4>2. Use</h4><p>Run it.</p>"
    )
    paths = {b.text: b.heading_path for b in convert_file(path, LIMITS).blocks}
    assert paths["Words."] == ("Manual", "1. About", "1.2 Terms")
    assert paths["Run it."] == ("Manual", "2. Use")


def test_tables_become_rows_of_cells(tmp_path: Path) -> None:
    markdown = "# Prices\n\n| Item | Cost |\n|---|---|\n| Tea | 2 |\n| Cake | 4 |\n"
    path = make_with_pandoc(tmp_path / "prices.docx", markdown)
    texts = [b.text for b in convert_file(path, LIMITS).blocks]
    assert "Cake | 4" in texts


def test_zip_bomb_is_refused_before_pandoc_sees_it(tmp_path: Path) -> None:
    path = make_zip_bomb(tmp_path / "bomb.docx", expanded_mb=300)
    with pytest.raises(TooLarge, match=r"bomb\.docx: expands to 300 MB, over the 200 MB limit"):
        convert_file(path, LIMITS)


def test_not_a_zip_is_reported_as_damaged(tmp_path: Path) -> None:
    path = make_random_bytes(tmp_path / "junk.docx")
    with pytest.raises(Corrupt, match=r"junk\.docx: damaged or not a real \.docx file"):
        convert_file(path, LIMITS)


def test_office_file_in_an_encrypted_container_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(Encrypted, match=r"locked\.xlsx: password-protected"):
        convert_file(path, LIMITS)


def test_broken_member_inside_a_real_zip_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<not really word")
    with pytest.raises(Corrupt, match=r"broken\.docx: could not be read"):
        convert_file(path, LIMITS)


def test_pandoc_time_limit_is_enforced(tmp_path: Path) -> None:
    path = make_with_pandoc(tmp_path / "slow.html", HANDBOOK_MD * 200)
    with pytest.raises(TimedOut, match=r"slow\.html: conversion took longer than 0.001 s"):
        convert_file(path, replace(LIMITS, timeout_s=0.001))


def test_empty_and_oversized_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.docx"
    empty.touch()
    with pytest.raises(Exception, match=r"empty\.docx: the file is empty \(0 bytes\)"):
        convert_file(empty, LIMITS)
    big = make_random_bytes(tmp_path / "big.txt", size=2 * 1024 * 1024)
    with pytest.raises(TooLarge, match=r"big\.txt: 2 MB is over the 1 MB limit"):
        convert_file(big, replace(LIMITS, max_file_mb=1))


def test_unknown_extension_is_unsupported_with_a_way_out(tmp_path: Path) -> None:
    legacy = make_random_bytes(tmp_path / "old.doc")
    with pytest.raises(UnsupportedType, match=r"old\.doc: .* save it as \.docx"):
        convert_file(legacy, LIMITS)
