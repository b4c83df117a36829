"""Convert a document by its file extensions with LibreOffice (headless).

usage: python scripts/convert.py IN.ext OUT.ext
"""

import os
import shutil
import subprocess
import sys
import tempfile

TEXT_INPUTS = {".docx", ".doc", ".odt", ".rtf", ".txt", ".html", ".htm"}
SHEET_INPUTS = {".xlsx", ".xls", ".ods", ".csv"}
SLIDE_INPUTS = {".pptx", ".odp"}
# Output extension -> LibreOffice filter, per kind of input.
FILTERS = {
    "text": {
        ".pdf": "pdf:writer_pdf_Export",
        ".docx": "docx:MS Word 2007 XML",
        ".odt": "odt:writer8",
        ".rtf": "rtf:Rich Text Format",
        ".txt": "txt:Text (encoded):UTF8",
        ".html": "html:XHTML Writer File:UTF8",
    },
    "sheet": {
        ".pdf": "pdf:calc_pdf_Export",
        ".xlsx": "xlsx:Calc MS Excel 2007 XML",
        ".ods": "ods:calc8",
        ".csv": "csv:Text - txt - csv (StarCalc):44,34,76",
        ".html": "html:XHTML Calc File:UTF8",
    },
    "slides": {".pdf": "pdf:impress_pdf_Export"},
}


def kind_of(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in TEXT_INPUTS:
        return "text"
    if ext in SHEET_INPUTS:
        return "sheet"
    if ext in SLIDE_INPUTS:
        return "slides"
    raise ValueError(f"cannot read {ext or 'files without an extension'}: use one of "
                     + " ".join(sorted(TEXT_INPUTS | SHEET_INPUTS | SLIDE_INPUTS)))


def filter_for(source, target):
    """The LibreOffice --convert-to argument turning `source` into `target`."""
    kind = kind_of(source)
    ext = os.path.splitext(target)[1].lower()
    try:
        return FILTERS[kind][ext]
    except KeyError:
        raise ValueError(f"a {kind} document cannot become {ext or 'a file without an extension'}: use one of "
                         + " ".join(sorted(FILTERS[kind]))) from None


def convert(source, target, timeout=100):
    """Convert `source` to `target` with soffice; raise RuntimeError with its reason when it fails."""
    convert_to = filter_for(source, target)
    work = tempfile.mkdtemp(prefix="convert-")
    try:
        command = [
            "soffice", "--headless", "--norestore", "--nologo", "--nolockcheck",
            f"-env:UserInstallation=file://{work}/profile",
            "--convert-to", convert_to, "--outdir", f"{work}/out", source,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        produced = os.path.join(work, "out", os.path.splitext(os.path.basename(source))[0]
                                + os.path.splitext(target)[1].lower())
        if done.returncode != 0 or not os.path.exists(produced):
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"LibreOffice could not convert {source}: {reason[-1] if reason else 'no output'}")
        shutil.move(produced, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv):
    if len(argv) != 2:
        print("usage: convert.py IN.ext OUT.ext", file=sys.stderr)
        return 2
    source, target = argv
    if not os.path.isfile(source):
        print(f"error: {source}: no such file", file=sys.stderr)
        return 2
    try:
        convert(source, target)
    except (ValueError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{source} -> {target} ({os.path.getsize(target)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
