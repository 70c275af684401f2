"""scripts/run_notebooks.py, which runs CI's two notebook passes: the longest notebook first, each
pass in its own environment, a pass that waits for its mirror, no notebook in two passes at once,
and a failing notebook named at the end with a non-zero exit."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run_notebooks.py"


def notebook(path, *cells):
    "A notebook at `path` whose code cells are `cells`."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],
                   "execution_count": None, "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))


def log_line(name, up):
    "A cell that appends (pass, notebook, start, end, process) to log.jsonl `up` folders up."
    return ("import json, os, time\nstart = time.time(); time.sleep(0.6)\n"
            f"with open('{'../' * up}log.jsonl', 'a') as f:\n"
            f"    f.write(json.dumps([os.environ['PASS'], '{name}', start, time.time(), "
            "os.getpid()]) + '\\n')")


def run(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_two_passes_run_longest_first_each_in_its_environment_and_the_second_waits(tmp_path):
    for mode in ("a", "b"):
        for name in ("short", "long", "middle", "new"):
            notebook(tmp_path / mode / "nbs" / f"{name}.ipynb", log_line(name, 2))
        for name in ("lesson1", "lesson2"):
            notebook(tmp_path / mode / "nbs" / "lessons" / f"{name}.ipynb", log_line(name, 3))
    (tmp_path / "expected.json").write_text(json.dumps({"a": {"short": 1, "long": 90},
                                                        "b": {"middle": 30}}))
    p = run(tmp_path, "--slots", "2", "--expected", "expected.json", "--record", "rec.json",
            "--fresh", "lessons",
            "--pass", "a", "a/nbs", "--env", "a", "PASS=first",
            "--pass", "b", "b/nbs", "--env", "b", "PASS=second", "--skip", "b", "short",
            "--first", "b", "sleep 2 && touch mirror-up")
    assert p.returncode == 0, p.stdout + p.stderr
    log = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r[0] for r in log].count("first") == 6 and [r[0] for r in log].count("second") == 5
    # unknown ('new', the lessons) first, then by the longest time either pass recorded
    started = [l.split()[-1] for l in p.stdout.splitlines() if l.startswith("[a] starting")]
    assert started[3:] == ["long.ipynb", "middle.ipynb", "short.ipynb"], started
    # each lesson in a process of its own; the other notebooks of a pass share theirs
    lesson_pids = [r[4] for r in log if r[1].startswith("lesson")]
    other_pids = [r[4] for r in log if not r[1].startswith("lesson")]
    assert len(set(lesson_pids)) == 4 and not set(lesson_pids) & set(other_pids)
    assert len(set(other_pids)) < len(other_pids)
    mirror = (tmp_path / "mirror-up").stat().st_mtime
    assert all(r[2] >= mirror - 0.1 for r in log if r[0] == "second")
    for name in ("new", "long", "middle", "lesson1"):   # never one notebook in two passes at once
        (a,), (b,) = ([r[2:4] for r in log if r[1] == name and r[0] == m]
                      for m in ("first", "second"))
        assert a[1] <= b[0] or b[1] <= a[0], (name, a, b)
    overlap = [(x[:2], y[:2]) for x in log for y in log if x is not y and x[2] < y[2] < x[3]]
    assert overlap, log   # two slots: some notebooks ran at the same time
    record = json.loads((tmp_path / "rec.json").read_text())
    assert set(record["a"]) == {"short", "long", "middle", "new", "lesson1", "lesson2"}
    assert "short" not in record["b"]
    saved = json.loads((tmp_path / "a" / "nbs" / "long.ipynb").read_text())
    assert "execution" in saved["cells"][0]["metadata"]   # outputs kept, as nbdev-test --save


def test_a_failing_notebook_or_mirror_is_named_and_the_exit_is_not_zero(tmp_path):
    notebook(tmp_path / "a" / "nbs" / "fine.ipynb", "x = 1")
    notebook(tmp_path / "a" / "nbs" / "broken.ipynb", "raise ValueError('planted')")
    notebook(tmp_path / "b" / "nbs" / "fine.ipynb", "x = 1")
    p = run(tmp_path, "--pass", "a", "a/nbs", "--pass", "b", "b/nbs", "--first", "b", "exit 3")
    assert p.returncode == 1
    assert "planted" in p.stderr
    failed = p.stdout.split("FAIL: these notebooks failed")[1]
    assert "a: " + str(tmp_path / "a" / "nbs" / "broken.ipynb") in failed
    assert "b: " + str(tmp_path / "b" / "nbs" / "fine.ipynb") in failed
    assert "a: " + str(tmp_path / "a" / "nbs" / "fine.ipynb") not in failed
    assert "'exit 3' failed, so the b pass cannot run" in p.stdout
