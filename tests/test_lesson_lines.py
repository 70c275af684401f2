"""Every code line of every notebook (lessons, core and apps) fits on the site: at most 100
characters, so a reader never scrolls sideways in a code box. Markdown cells are prose and are not
counted. The project's Python files outside the package (bench, tests, docs, scripts) keep the same
width; the package itself is generated from the notebooks."""
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


ROOT = NBS.parent
SCRIPTS = sorted(p for folder in ("bench", "tests", "docs", "scripts")
                 for p in (ROOT/folder).rglob("*.py") if "__pycache__" not in p.parts)


def long_python_lines(path, limit=LIMIT):
    """(line number, line) for each line of a Python file longer than `limit` characters, except
    Markdown table rows in a docstring, which cannot wrap."""
    lines = Path(path).read_text().splitlines()
    return [(n, line) for n, line in enumerate(lines, 1)
            if len(line) > limit and not line.lstrip().startswith("|")]


def test_long_python_lines_counts_characters_and_lets_table_rows_through(tmp_path):
    script = tmp_path/"script.py"
    script.write_text("x = '" + "é" * 94 + "'\n"      # 100 characters, more bytes
                      + "y = " + "1" * 97 + "\n"       # 101
                      + "| a | " + "b" * 100 + " |\n")
    assert [(n, len(line)) for n, line in long_python_lines(script)] == [(2, 101)]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_lines_fit_in_100_characters(script):
    found = long_python_lines(script)
    listed = "\n".join(f"  line {n}, {len(line)} characters: {line.strip()[:70]}"
                       for n, line in found)
    assert not found, f"{script.name} has {len(found)} lines over {LIMIT} characters:\n{listed}"
