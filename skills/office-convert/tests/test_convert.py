"""Conversions run in the skill's sandbox (documents family: LibreOffice and poppler)."""

import io
import re
import zipfile

import pytest

CONVERT = ["python", "scripts/convert.py"]


def convert(skill, name, data, target):
    return skill.run(CONVERT + [name, target], files={name: data}, outputs=[target])


def pdf_text(skill, pdf):
    result = skill.run(["pdftotext", "in.pdf", "-"], files={"in.pdf": pdf})
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_text_to_pdf_and_back(skill):
    result = convert(skill, "notes.txt", "First line\nSecond line\n", "notes.pdf")
    assert result.returncode == 0, result.stderr
    pdf = result.files["notes.pdf"]
    assert pdf.startswith(b"%PDF-")
    assert result.stdout.decode().startswith("notes.txt -> notes.pdf (")
    text = pdf_text(skill, pdf)
    assert "First line" in text and "Second line" in text
    info = skill.run(["pdfinfo", "in.pdf"], files={"in.pdf": pdf})
    assert re.search(rb"^Pages:\s+1$", info.stdout, re.M), info.stdout


def test_html_to_docx(skill):
    html = "<html><body><p>Quarterly report</p><p>All good.</p></body></html>"
    result = convert(skill, "report.html", html, "report.docx")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(io.BytesIO(result.files["report.docx"])) as docx:
        body = docx.read("word/document.xml").decode()
    assert "Quarterly report" in body and "All good." in body


def test_csv_to_xlsx(skill):
    result = convert(skill, "table.csv", "name,qty\napples,3\npears,5\n", "table.xlsx")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(io.BytesIO(result.files["table.xlsx"])) as xlsx:
        names = xlsx.namelist()
        strings = xlsx.read("xl/sharedStrings.xml").decode()
    assert "xl/worksheets/sheet1.xml" in names
    assert "apples" in strings and "pears" in strings


@pytest.mark.parametrize(
    "source,target,message",
    [
        ("a.txt", "a.xlsx", b"a text document cannot become .xlsx"),
        ("a.csv", "a.docx", b"a sheet document cannot become .docx"),
        ("a.pptx", "a.txt", b"a slides document cannot become .txt"),
        ("a.bin", "a.pdf", b"cannot read .bin"),
        ("noext", "a.pdf", b"cannot read files without an extension"),
        ("a.txt", "out", b"cannot become a file without an extension"),
    ],
)
def test_unsupported_formats(skill, source, target, message):
    result = convert(skill, source, "x", target)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.files == {} and result.stdout == b""


def test_usage_and_missing_input(skill):
    result = skill.run(CONVERT + ["only-one.txt"])
    assert result.returncode == 2 and b"usage: convert.py IN.ext OUT.ext" in result.stderr
    result = skill.run(CONVERT + ["missing.txt", "out.pdf"])
    assert result.returncode == 2 and b"error: missing.txt: no such file" in result.stderr


def test_filters_as_functions():
    from scripts.convert import filter_for

    assert filter_for("A.DOCX", "b.PDF") == "pdf:writer_pdf_Export"
    assert filter_for("t.ods", "t.csv") == "csv:Text - txt - csv (StarCalc):44,34,76"
    assert filter_for("s.odp", "s.pdf") == "pdf:impress_pdf_Export"
    with pytest.raises(ValueError, match="cannot become .docx"):
        filter_for("t.xls", "t.docx")
