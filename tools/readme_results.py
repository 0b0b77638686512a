"""Regenerate the README's results section from `mbmrl eval --markdown` output (no hand-typed numbers).

    mbmrl eval ARTIFACT --out eval --markdown && python tools/readme_results.py eval/results.md
"""

import re
import sys
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"


def main(results_md: str, readme: str = "README.md") -> None:
    """Replace the text between the README's results markers with the generated tables."""
    text = Path(readme).read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    body = Path(results_md).read_text().strip()
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{body}\n{END}", text, flags=re.S)
    Path(readme).write_text(new)
    print(f"updated {readme} from {results_md}")


if __name__ == "__main__":
    main(*sys.argv[1:])
