"""Extract a PDF's text, page by page."""

import sys

from pypdf import PdfReader


def main(source: str, target: str) -> None:
    reader = PdfReader(source)
    with open(target, "w", encoding="utf-8") as out:
        out.write("\f".join(page.extract_text() or "" for page in reader.pages))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
