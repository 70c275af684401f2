"""Every lesson opens where learners run it: its first cell links to Colab and Binder at its own path, and a hidden
first code cell installs the package when the notebook runs on Colab (where nothing of this course is installed)."""
import json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPO = "htc-education/htc_dl"
LESSONS = sorted((ROOT/"nbs"/"lessons").glob("*.ipynb"))


def test_there_are_lessons():
    assert len(LESSONS) >= 9


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_lesson_links_to_colab_and_binder_at_its_own_path(nb_path):
    nb = json.loads(nb_path.read_text())
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
    rel = nb_path.relative_to(ROOT).as_posix()
    colab = re.findall(r"\[Open in Colab\]\((\S+)\)", first)
    assert colab == [f"https://colab.research.google.com/github/{REPO}/blob/main/{rel}"], colab
    assert f"https://mybinder.org/v2/gh/{REPO}/HEAD?urlpath=lab/tree/{rel}" in first


@pytest.mark.parametrize("nb_path", LESSONS, ids=lambda p: p.stem)
def test_lesson_installs_the_package_first_when_it_runs_on_colab(nb_path):
    code = ["".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
    setup = code[0]
    assert setup.startswith("#| hide") and '"google.colab" in sys.modules' in setup, setup[:200]
    assert f"git+https://github.com/{REPO}" in setup
