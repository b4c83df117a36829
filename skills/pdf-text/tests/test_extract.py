"""The extractor runs as a command in its sandbox (`skill` fixture) on PDFs built here."""

import json

import pytest
from pdfmaker import make_pdf

CMD = ["python", "scripts/extract.py"]


def extract(skill, pages, *args, **meta):
    return skill.run(CMD + ["doc.pdf", *args], files={"doc.pdf": make_pdf(pages, **meta)}, outputs=["out.txt"])


def test_every_page_to_a_file(skill):
    result = extract(skill, ["Hello world", "Second (page)"], "out.txt")
    assert result.returncode == 0, result.stderr
    assert result.files["out.txt"] == b"Hello world\fSecond (page)\n"
    assert result.stdout == b"2 page(s), 25 characters -> out.txt\n"


def test_stdout_is_the_default(skill):
    result = extract(skill, ["only page"])
    assert result.returncode == 0 and result.stdout == b"only page\n"
    assert result.missing_files == ["out.txt"]


def test_page_ranges_keep_their_order(skill):
    result = extract(skill, ["one", "two", "three", "four"], "-", "--pages", "2-3,1", "--separator", "|")
    assert result.stdout == b"two|three|one\n", result.stderr
    assert extract(skill, ["one", "two", "three", "four"], "-", "--pages", "4").stdout == b"four\n"
    assert extract(skill, ["one", "two"], "-", "--pages", "1-2").stdout == b"one\ftwo\n"


@pytest.mark.parametrize("spec", ["0", "5", "3-2", "2-5", "x", "1,,2", "a-b"])
def test_bad_page_ranges(skill, spec):
    result = extract(skill, ["one", "two", "three", "four"], "-", "--pages", spec)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.startswith(b"error: ")


def test_info(skill):
    result = extract(skill, ["a", "b", "c"], "--info", title="Report", author="Ada (L.)")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"pages": 3, "title": "Report", "author": "Ada (L.)", "subject": None}
    plain = extract(skill, ["a"], "--info")
    assert json.loads(plain.stdout) == {"pages": 1, "title": None, "author": None, "subject": None}


def test_not_a_pdf(skill):
    result = skill.run(CMD + ["doc.pdf", "-"], files={"doc.pdf": b"this is not a PDF"})
    assert result.returncode == 2
    assert b"error: cannot read doc.pdf" in result.stderr


def test_parse_pages_as_a_function():
    from scripts.extract import parse_pages

    assert parse_pages("1-3,5", 5) == [0, 1, 2, 4]
    assert parse_pages(" 2 ", 2) == [1]
    with pytest.raises(ValueError, match="outside 1-5"):
        parse_pages("6", 5)
    with pytest.raises(ValueError, match="not a page"):
        parse_pages("1-x", 5)
