"""`make bench` fails loudly: a section that crashes makes bench/run_all.py exit non-zero and name
the section, after the report of the sections that worked is written. It runs on a copy of bench/
whose section scripts are small stand-ins, so no real benchmark runs."""
import os, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run_all import crashed   # noqa: E402

STAND_INS = {
    "imports.py": 'raise SystemExit("imports stand-in: simulated crash")\n',
    "apps_latency.py": ('import json, sys\n'
                        'json.dump([], open(sys.argv[sys.argv.index("--json") + 1], "w"))\n'),
    "latent.py": 'def run(): raise RuntimeError("latent stand-in: simulated crash")\n',
}


def run_bench(tmp_path, sections):
    "run_all.py from a copy of bench/ with the stand-ins, for `sections`: (exit status, stderr)."
    bench = tmp_path / "bench"
    shutil.copytree(ROOT / "bench", bench,
                    ignore=shutil.ignore_patterns("__pycache__", "RESULTS.md"))
    for name, code in STAND_INS.items(): (bench / name).write_text(code)
    env = dict(os.environ, BENCH_SECTIONS=sections, BENCH_OUT=str(tmp_path / "RESULTS.md"),
               PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(bench / "run_all.py")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stderr


def test_crashing_sections_fail_the_run_and_are_named_after_the_report_is_written(tmp_path):
    code, err = run_bench(tmp_path, "imports,apps,latent")
    assert code == 1, (code, err[-2000:])
    fails = [l for l in err.splitlines() if l.startswith("FAIL: bench section")]
    assert len(fails) == 2, fails
    assert fails[0] == "FAIL: bench section imports: exit 1: imports stand-in: simulated crash"
    assert fails[1].startswith("FAIL: bench section latent: exit 1:")
    assert "latent stand-in: simulated crash" in fails[1]
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## 3. App latency" in report and "not measured: exit 1: imports stand-in" in report


def test_a_run_whose_sections_all_work_exits_zero(tmp_path):
    code, err = run_bench(tmp_path, "apps")
    assert code == 0, err[-2000:]
    assert "FAIL" not in err and "## 3. App latency" in (tmp_path / "RESULTS.md").read_text()


def test_budget_stops_and_notebook_time_limits_are_not_crashes_but_failed_notebooks_are():
    ok, timeout, skipped = {"status": "ok"}, {"status": "timeout"}, {"status": "not run (budget)"}
    notebooks = [{"notebook": "03b.ipynb", "small": ok, "full": skipped},
                 {"notebook": "06a.ipynb", "small": timeout, "full": skipped},
                 {"notebook": "05.ipynb", "small": {"status": "error"}, "full": skipped},
                 {"notebook": "06f.ipynb", "small": ok, "full": {"status": "dead"}}]
    run = {"sections": {"notebooks": notebooks, "imports": {"error": "not run (BENCH_SECTIONS)"},
                        "apps": {"error": "not run (budget)"}, "deploy": {"markdown": "| ok |"},
                        "memory": {"error": "timed out after 3600 s"}}}
    assert crashed(run) == {"notebooks": "failed: 05.ipynb (small), 06f.ipynb (full)",
                            "memory": "timed out after 3600 s"}
    crash = {"sections": {"notebooks": []}, "crashes": {"notebooks": "KeyError: 'x'"}}
    assert crashed(crash) == {"notebooks": "KeyError: 'x'"}
