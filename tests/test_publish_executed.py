"""The branch `executed` (docs/publish_executed.py) that the lessons' Colab and GitHub links open:
every notebook of nbs/ with the outputs of `make site`'s run, never a copy whose code differs.

`make test` runs `make site` against the simulated-online mirror before pytest, as the Pages
workflow runs it on the real data sets."""
import json, re, shutil, subprocess, sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/"docs"))
from publish_executed import publish  # noqa: E402

EXECUTED = ROOT/"build"/"executed"/"online"/"nbs"
NOT_NOTEBOOKS = shutil.ignore_patterns("*.pth", "*.onnx", "*.safetensors")


@pytest.fixture(scope="module")
def executed():
    if not EXECUTED.exists():
        pytest.fail(f"no executed notebooks at {EXECUTED}: run `make site`", pytrace=False)
    return EXECUTED


def test_every_notebook_is_published_and_every_lesson_shows_its_outputs(executed, tmp_path):
    count = publish(executed, tmp_path/"out", "abc1234")
    def notebooks(folder): return sorted(p.relative_to(folder) for p in folder.rglob("*.ipynb"))
    assert count == len(notebooks(ROOT/"nbs"))
    assert notebooks(tmp_path/"out"/"nbs") == notebooks(ROOT/"nbs")
    for lesson in (tmp_path/"out"/"nbs"/"lessons").glob("*.ipynb"):
        cells = json.loads(lesson.read_text())["cells"]
        with_outputs = [c for c in cells if c["cell_type"] == "code" and c.get("outputs")]
        assert len(with_outputs) >= 5, (lesson.name, len(with_outputs))
        printed = [o for c in with_outputs for o in c["outputs"] if o["output_type"] == "stream"]
        bars = [o for o in printed if re.search(r"\|[█-]+\| *\d+\.\d+%", "".join(o["text"]))]
        assert not bars, f"{lesson.name} keeps a progress bar"
    assert "abc1234" in (tmp_path/"out"/"README.md").read_text()


def test_no_lesson_shows_the_text_of_a_plot_object_under_its_figure(executed):
    "A plot cell ends with `plt.show()`: the reader sees the figure, not `Text(0.5, 1.0, ...)`."
    shown = []
    for lesson in sorted((executed/"lessons").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(lesson.read_text())["cells"]):
            for o in cell.get("outputs", []):
                text = "".join(o.get("data", {}).get("text/plain", "")) if (
                    o["output_type"] == "execute_result") else ""
                if re.match(r"\[?(Text\(|<matplotlib\.|<Axes)", text):
                    shown.append((lesson.name, i, text))
    assert not shown, shown


def test_a_copy_whose_code_differs_from_nbs_is_refused(executed, tmp_path):
    stale = tmp_path/"stale"
    shutil.copytree(executed, stale, ignore=NOT_NOTEBOOKS)
    lesson = stale/"lessons"/"03b_mnist_basics.ipynb"
    nb = json.loads(lesson.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = ["print('changed after the run')\n"] + code["source"]
    lesson.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="03b_mnist_basics.ipynb has other code"):
        publish(stale, tmp_path/"out", "abc1234")
    assert not (tmp_path/"out").exists()


def test_a_lesson_that_was_not_executed_is_refused(executed, tmp_path):
    unrun = tmp_path/"unrun"
    shutil.copytree(executed, unrun, ignore=NOT_NOTEBOOKS)
    lesson = Path("lessons")/"04_sgd_from_scratch.ipynb"
    shutil.copyfile(ROOT/"nbs"/lesson, unrun/lesson)
    with pytest.raises(ValueError, match="04_sgd_from_scratch.ipynb has no outputs"):
        publish(unrun, tmp_path/"out", "abc1234")


def make_dry_run(*args):
    return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_the_pages_workflow_runs_make_site_on_real_data_and_make_test_runs_it_on_the_mirror():
    workflow = yaml.safe_load((ROOT/".github"/"workflows"/"docs.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert "make site MIRROR=0" in runs
    assert any("docs/publish_executed.py build/executed/online/nbs" in run for run in runs)
    real, mirror = make_dry_run("site", "MIRROR=0"), make_dry_run("site")
    assert "serve.py" not in real and "HTC_DL_URL_BASE" not in real
    assert "serve.py" in mirror and "HTC_DL_URL_BASE=http://127.0.0.1:" in mirror
    for dry in (real, mirror):
        assert "docs/build_site.py build/executed/online/nbs build/site" in dry
    makefile = (ROOT/"Makefile").read_text()
    assert re.search(r"^site: nbtest-online site-html$", makefile, re.M)
    test_steps = re.search(r"^TEST_STEPS := (.*)$", makefile, re.M)[1].split()
    order = [test_steps.index(step) for step in ("notebooks", "site-html", "pytest")]
    assert order == sorted(order)
