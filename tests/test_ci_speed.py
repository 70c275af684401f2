"""What keeps `make test` fast stays honest. The simulated-online pass skips only the notebooks in
tests/online/same_in_both_modes.txt, and the offline pass's record (tests/online/mode_guard) shows
that each read no mode or folder variable and opened no connection, so online it would do the same.
`make test` prints the seconds of each step, also when one fails."""
import json, shlex, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import run_notebooks
LISTED = ROOT / "tests" / "online" / "same_in_both_modes.txt"
OFFLINE = ROOT / "build" / "executed" / "offline"
RECORD = OFFLINE / "mode-reads.jsonl"
# modules that walk through the whole environment for their own variables only (tqdm: TQDM_*)
SCANS_FOR_THEIR_OWN = ("scan by tqdm.utils:",)


def listed():
    lines = (l.split("#")[0].strip() for l in LISTED.read_text().splitlines())
    return [ROOT / l for l in lines if l]


def make_expand(**expressions):
    "{name: what make expands the expression to}, with the Makefile's variables and functions."
    show = "".join(f"SHOW_{k} = {e}\n" for k, e in expressions.items())
    show += "show:\n" + "".join(f"\t$(info {k}=$(SHOW_{k}))\n" for k in expressions) + "\t@:\n"
    p = subprocess.run(["make", "--no-print-directory", "-s", "-f", "Makefile", "-f", "-", "show"],
                       input=show, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(l.split("=", 1) for l in p.stdout.splitlines())


def test_the_online_pass_skips_exactly_the_listed_notebooks():
    names = [p.name for p in listed()]
    assert names and all(p.exists() for p in listed()), [str(p) for p in listed()]
    every = sorted(ROOT.glob("nbs/**/*.ipynb"))
    assert len({p.name for p in every}) == len(every), "the passes skip notebooks by name"
    v = make_expand(ONLY="$(OFFLINE_ONLY)", ONLINE="$(ONLINE_PASS)", OFFLINE="$(OFFLINE_PASS)")
    assert v["ONLY"].split() == [n.removesuffix(".ipynb") for n in names]
    online, offline = shlex.split(v["ONLINE"]), shlex.split(v["OFFLINE"])
    assert online[online.index("--skip") + 1:][:2] == ["online", v["ONLY"]]
    assert "--skip" not in offline
    skipped = set(online[online.index("--skip") + 2].split())
    ran = {p.stem for p in run_notebooks.notebooks(ROOT / "nbs", skipped)}
    assert ran == {p.stem for p in every} - {n.removesuffix(".ipynb") for n in names}


def test_listed_notebooks_read_no_mode_variable_and_open_no_connection_in_the_offline_pass():
    if not RECORD.exists():
        pytest.fail(f"no {RECORD}: `make nbtest` writes it (the offline pass)", pytrace=False)
    records = [json.loads(l) for l in RECORD.read_text().splitlines()]
    # the guard was on in that pass: the notebook of the data loaders was seen reading HTC_DL_DATA
    assert {"notebook": "00_data.ipynb", "what": "read HTC_DL_DATA"} in [
        {k: r[k] for k in ("notebook", "what")} for r in records]
    names = {p.name for p in listed()}
    made = [r for r in records if (r["notebook"] in names or r["notebook"] is None)
            and not r["what"].startswith(SCANS_FOR_THEIR_OWN)]
    assert not made, (f"these make a notebook's run depend on the mode: remove the read, or remove "
                      f"the notebook from {LISTED.name}: {made[:10]}")
    for p in listed():   # each ran and passed in that pass (nbdev-test --save keeps its outputs)
        cells = json.loads((OFFLINE / p.relative_to(ROOT)).read_text())["cells"]
        code = [c for c in cells
                if c["cell_type"] == "code" and "notest" not in "".join(c["source"])]
        assert code and all("execution" in c["metadata"] for c in code), \
            f"{p.name} was not executed in the offline pass"


def test_the_site_gets_the_listed_notebooks_as_the_offline_pass_executed_them():
    "`make notebooks` copies them into the online folder the site is built from, not run again."
    online = ROOT / "build" / "executed" / "online"
    if not (online / "offline-only-copied").exists():
        pytest.fail(f"no {online}/offline-only-copied: `make notebooks` writes it", pytrace=False)
    for p in listed():
        where = p.relative_to(ROOT)
        assert (online / where).read_bytes() == (OFFLINE / where).read_bytes(), where
        cells = json.loads((online / where).read_text())["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), where

def test_make_test_prints_each_steps_seconds_and_stops_at_the_first_failing_step(tmp_path):
    (tmp_path / "Makefile").write_text(f"include {ROOT / 'Makefile'}\n"
                                       "quick: ; @sleep 1; echo quick ran\n"
                                       "broken: ; @echo broken ran; exit 3\n"
                                       "never: ; @echo never ran\n")
    def make_test(steps):
        return subprocess.run(["make", "--no-print-directory", "test", f"TEST_STEPS={steps}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    p = make_test("quick broken never")
    assert p.returncode != 0
    assert "quick ran" in p.stdout and "broken ran" in p.stdout and "never ran" not in p.stdout
    table = p.stdout.split("make test, seconds per step:\n", 1)[1].splitlines()
    assert [l.split()[0] for l in table] == ["quick", "broken", "total"], table
    assert 1 <= int(table[0].split()[1]) <= int(table[2].split()[1]) < 30
    assert table[1].split()[2:] == ["FAILED"] and len(table[0].split()) == 2
    p = make_test("quick")
    assert p.returncode == 0
    assert p.stdout.split("seconds per step:\n")[1].split()[::2] == ["quick", "total"]
