"""Every lesson follows one template: a title, a one-line subtitle naming its place in the course,
one Colab and one Binder link at its own path, the same Colab setup cell, a "What we did" recap
whose bullets point back at the lesson's sections, and the self-check quiz in the last code
cells."""
import json, re
from pathlib import Path

import pytest

from htc_dl.quiz import notebook_questions

ROOT = Path(__file__).resolve().parent.parent
REPO = "htc-education/htc_dl"
LESSONS = sorted((ROOT/"nbs"/"lessons").glob("*.ipynb"))
SETUP = """#| hide
import sys
# On Colab: install the course's package, keeping Colab's PyTorch (about 4 minutes the first time)
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "htc_dl[course] @ git+https://github.com/htc-education/htc_dl"], check=True)"""
QUIZ_START = "from htc_dl.quiz import Question, quiz\nquestions = [\n"
QUIZ_MORE, QUIZ_END = "questions += [\n", "quiz(questions)"


def cells(nb_path):
    return [(c["cell_type"], "".join(c["source"]))
            for c in json.loads(nb_path.read_text())["cells"]]


def ending(nb_path):
    "(cells before the recap, recap, heading, quiz cells): what follows the last markdown cell."
    found = cells(nb_path)
    last = max(n for n, (kind, _) in enumerate(found) if kind == "markdown")
    return found[:last - 1], found[last - 1], found[last], found[last + 1:]


def place_in_course(nb_path):
    "(lesson, part, parts): the number the file name starts with, and its rank among those files."
    number = int(nb_path.stem[:2])
    siblings = [p for p in LESSONS if int(p.stem[:2]) == number]
    return number, siblings.index(nb_path) + 1, len(siblings)


def expected_links(nb_path):
    """Colab and GitHub readers open branch `executed`: the notebooks as the site workflow last ran
    them."""
    rel = nb_path.relative_to(ROOT).as_posix()
    return ("[Open in Colab]"
            f"(https://colab.research.google.com/github/{REPO}/blob/executed/{rel}) · "
            f"[Run on Binder](https://mybinder.org/v2/gh/{REPO}/HEAD?urlpath=lab/tree/{rel}) · "
            f"[Read with outputs](https://github.com/{REPO}/blob/executed/{rel})")


def test_course_order_comes_from_the_file_names():
    places = {p.stem[:3].rstrip("_"): place_in_course(p) for p in LESSONS}
    assert len(LESSONS) == 15, [p.stem for p in LESSONS]
    assert (places["03a"], places["03c"], places["04"], places["04b"]) == ((3, 1, 3), (3, 3, 3),
                                                                           (4, 1, 3), (4, 3, 3))
    assert (places["05"], places["06a"], places["06f"]) == ((5, 1, 1), (6, 1, 8), (6, 6, 8))
    assert (places["06g"], places["06h"]) == ((6, 7, 8), (6, 8, 8))


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_first_cell_is_the_title_the_subtitle_with_its_place_and_the_links(nb_path):
    kind, first = cells(nb_path)[0]
    lines = [line for line in first.splitlines() if line.strip()]
    assert kind == "markdown" and len(lines) == 3, lines
    title, subtitle, links = lines
    assert title.startswith("# ") and not title.startswith("# Lesson"), title
    number, part, parts = place_in_course(nb_path)
    place = f"> Lesson {number}" + (f", part {part} of {parts}" if parts > 1 else "")
    assert re.match(re.escape(place) + r"( \([^)]+\))?: \S", subtitle), (place, subtitle)
    assert links == expected_links(nb_path)


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_exactly_one_colab_and_one_binder_launch_link(nb_path):
    text = "\n".join(source for _, source in cells(nb_path))
    assert text.count("https://colab.research.google.com/") == 1
    assert text.count("https://mybinder.org/v2/") == 1


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_course_s_colab_setup(nb_path):
    first_code = next(source for kind, source in cells(nb_path) if kind == "code")
    assert first_code == SETUP


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_lesson_ends_with_what_we_did_then_the_self_check_quiz(nb_path):
    "The quiz: `questions = [...]`, then `questions += [...]` cells, then `quiz(questions)`."
    _, (recap_kind, recap), (heading_kind, heading), quiz_cells = ending(nb_path)
    assert recap_kind == "markdown" and recap.startswith("## What we did\n"), recap[:80]
    assert heading_kind == "markdown" and heading.startswith("## Self-check"), heading[:80]
    assert len(quiz_cells) >= 2, quiz_cells
    assert all(kind == "code" for kind, _ in quiz_cells), [kind for kind, _ in quiz_cells]
    first, *middle, last = [source for _, source in quiz_cells]
    assert first.startswith(QUIZ_START), first[:80]
    assert all(source.startswith(QUIZ_MORE) for source in middle), [s[:40] for s in middle]
    assert all(source.endswith("\n]") for source in [first, *middle]), "a list left open"
    assert last == QUIZ_END, last[:80]
    assert max(len(source.splitlines()) for source in [first, *middle]) <= 15, "over 15 lines"


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_recap_bullets_each_point_back_at_a_section_of_the_lesson(nb_path):
    before, (_, recap), *_ = ending(nb_path)
    sections = [line.split(" ", 1)[1] for kind, source in before if kind == "markdown"
                for line in source.splitlines() if line.startswith(("## ", "### "))]
    bullets = [line for line in recap.splitlines() if line.startswith("- ")]
    assert 4 <= len(bullets) <= 6, bullets
    named = [re.match(r"- \*\*(.+?)\*\*", b) for b in bullets]
    assert all(named), [b for b, m in zip(bullets, named) if not m]
    pointed = [[s for s in sections if s.startswith(m.group(1))] for m in named]
    assert all(pointed), [m.group(1) for m, p in zip(named, pointed) if not p]
    assert len({p[0] for p in pointed}) == len(pointed), "two bullets point at the same section"


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_self_check_has_four_to_eight_different_questions(nb_path):
    questions = notebook_questions(nb_path)
    assert 4 <= len(questions) <= 8, len(questions)
    assert len({q.prompt for q in questions}) == len(questions), "two questions share a prompt"
