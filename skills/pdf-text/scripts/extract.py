"""Extract the text of a PDF, page by page, with pypdf.

usage: python scripts/extract.py IN.pdf [OUT.txt|-] [--pages 1-3,5] [--separator S] [--info]
"""

import argparse
import json
import sys

from pypdf import PdfReader
from pypdf.errors import PdfReadError


def parse_pages(spec, count):
    """'1-3,5' -> [0, 1, 2, 4]: 0-based page indexes, each within 1..count."""
    pages = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ValueError("an empty page range")
        first, sep, last = part.partition("-")
        try:
            start = int(first)
            end = int(last) if sep else start
        except ValueError:
            raise ValueError(f"{part!r} is not a page or a range like 2-4") from None
        if start < 1 or end > count or start > end:
            raise ValueError(f"pages {part} are outside 1-{count}")
        pages.extend(range(start - 1, end))
    return pages


def info(reader):
    """Page count and the document's title, author and subject (None when absent)."""
    meta = reader.metadata or {}
    return {
        "pages": len(reader.pages),
        "title": meta.get("/Title"),
        "author": meta.get("/Author"),
        "subject": meta.get("/Subject"),
    }


def extract(reader, pages, separator):
    """The text of `pages`, joined by `separator`; a page without text gives ''."""
    return separator.join((reader.pages[i].extract_text() or "").strip() for i in pages)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Extract the text of a PDF.")
    parser.add_argument("pdf")
    parser.add_argument("out", nargs="?", default="-", help="where the text goes ('-': stdout)")
    parser.add_argument("--pages", help="pages to extract, e.g. 1-3,5 (default: all)")
    parser.add_argument("--separator", default="\f", help="between pages (default: form feed)")
    parser.add_argument("--info", action="store_true", help="print page count and metadata as JSON")
    args = parser.parse_args(argv)
    try:
        reader = PdfReader(args.pdf)
        count = len(reader.pages)
    except (OSError, PdfReadError, ValueError) as exc:
        print(f"error: cannot read {args.pdf}: {exc}", file=sys.stderr)
        return 2
    if args.info:
        print(json.dumps(info(reader)))
        return 0
    try:
        pages = parse_pages(args.pages, count) if args.pages else list(range(count))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = extract(reader, pages, args.separator)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        print(f"{len(pages)} page(s), {len(text)} characters -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
