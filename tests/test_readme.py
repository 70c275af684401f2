"The README's launch badges and file names point at what the repository really holds."
import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT/"README.md").read_text()
REPO = "htc-education/htc_dl"
APPS = sorted(p.stem for p in (ROOT/"nbs/apps").glob("*.ipynb") if p.stem != "index")


def binder_paths():
    "The `urlpath` of every Binder link: (kind, path in the repository)."
    found = re.findall(rf"https://mybinder\.org/v2/gh/{REPO}/HEAD\?urlpath=(lab/tree|voila/render)/([^)\s]+)", README)
    return [(kind, unquote(path)) for kind, path in found]


def test_every_binder_link_opens_a_file_or_folder_that_exists():
    links = binder_paths()
    assert len(links) >= 3, links
    for kind, path in links:
        if "<" in path: continue   # the documented pattern, not a link
        assert (ROOT/path).exists(), f"README links Binder to {path}, which is not in the repository"
        if kind == "voila/render": assert path.startswith("nbs/apps/") and path.endswith(".ipynb"), path


def test_every_app_has_a_badge_that_opens_it_directly_in_voila():
    in_voila = {Path(p).stem for kind, p in binder_paths() if kind == "voila/render"}
    assert "index" in in_voila, "the gallery needs its own Voila badge"
    missing = [app for app in APPS if app not in in_voila]
    assert not missing, f"apps without a Voila badge in README.md: {missing}"


def test_gradient_badge_points_at_this_repository_with_a_python_311_container():
    m = re.search(r"https://console\.paperspace\.com/github/([\w.-]+/[\w.-]+)\?machine=[\w-]+&container=([^)\s]+)", README)
    assert m and m.group(1) == REPO, "the Gradient badge must open this repository"
    assert "py311" in m.group(2), "Gradient's container must match the Python of binder/runtime.txt (3.11)"
    assert (ROOT/"binder/runtime.txt").read_text().strip() == "python-3.11"


def test_every_notebook_the_readme_names_exists():
    named = set(re.findall(r"`(nbs/[\w/.-]+\.ipynb)`", README))
    assert len(named) >= 8, named
    missing = sorted(n for n in named if not (ROOT/n).exists())
    assert not missing, f"README names notebooks that do not exist: {missing}"


def test_the_readme_lists_every_lesson_and_support_notebook():
    named = set(re.findall(r"`(nbs/[\w/.-]+\.ipynb)`", README))
    for folder in ("lessons", "core"):
        missing = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/"nbs"/folder).glob("*.ipynb")
                         if p.relative_to(ROOT).as_posix() not in named)
        assert not missing, f"README's tables leave out {missing}"
