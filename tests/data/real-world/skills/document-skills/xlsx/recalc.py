"""Recalculate a workbook's formulas (needs LibreOffice)."""

import subprocess
import sys

subprocess.run(["soffice", "--headless", "--convert-to", "xlsx", sys.argv[1]], check=True)
