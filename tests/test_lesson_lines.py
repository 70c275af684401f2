"""Every code line of every notebook (lessons, core and apps) fits on the site: at most 100
characters, so a reader never scrolls sideways in a code box. Markdown cells are prose and are not
counted."""
import json
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parent.parent/"nbs"
LESSONS = sorted((NBS/"lessons").glob("*.ipynb"))
NOTEBOOKS = LESSONS + sorted((NBS/"core").glob("*.ipynb")) + sorted((NBS/"apps").glob("*.ipynb"))
LIMIT = 100


def long_code_lines(notebook, limit=LIMIT):
    "(cell index, line) for each line of a code cell in `notebook` longer than `limit` characters."
    cells = json.loads(Path(notebook).read_text())["cells"]
    return [(n, line) for n, cell in enumerate(cells) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > limit]


def test_long_code_lines_counts_code_cells_only(tmp_path):
    cell = lambda kind, text: dict(cell_type=kind, metadata={}, source=text.splitlines(True))
    notebook = tmp_path/"lesson.ipynb"
    notebook.write_text(json.dumps(dict(cells=[
        cell("markdown", "x" * 300),
        cell("code", "x = 1\n" + "y = " + "1" * 96 + "\n" + "z = " + "2" * 97),
    ])))
    found = long_code_lines(notebook)
    assert [(n, len(line)) for n, line in found] == [(1, 101)]


def test_there_are_lessons_to_check():
    assert len(LESSONS) >= 13, [p.name for p in LESSONS]


@pytest.mark.parametrize("lesson", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_code_lines_fit_in_100_characters(lesson):
    found = long_code_lines(lesson)
    listed = "\n".join(f"  cell {n}, {len(line)} characters: {line.strip()[:70]}"
                       for n, line in found)
    assert not found, (f"{lesson.name} has {len(found)} code lines over {LIMIT} characters; "
                       f"split them over lines (fastbook style, see STYLE.md):\n{listed}")
