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


def synthetic_run():
    """A run record with one slow lesson, one app over its target and a section that brings its own
    goals."""
    nb = lambda name, wall, binder: {"notebook": name, "full": {"status": "not run (budget)"},
                                     "small": {"status": "ok", "wall_s": wall, "cpu_s": wall,
                                               "peak_rss_mib": 900, "kernel_peak_mib": binder + 300,
                                               "binder_peak_mib": binder}}
    apps = [{"app": "recommender (recommender.recommender_app)", "response": "slider",
             "target": "< 200 ms", "p50_ms": 90.0, "p95_ms": 250.0, "n": 30},
            {"app": "threshold (multilabel.threshold_app)", "response": "slider", "target": "-",
             "p95_ms": 5.0}]
    voila = [{"app": "index", "server_up_s": 1.0, "first_render_s": 1.2, "launch_to_render_s": 2.2},
             {"app": "classifier", "server_up_s": 1.0, "first_render_s": 6.5,
              "launch_to_render_s": 7.5}]
    deploy = {"markdown": "## Deployment", "goals": [{"goal": "int8 model agrees with fp32 (top-1)",
                                                      "target": ">= 98%", "measured": "99.0%",
                                                      "met": True}]}
    return {"started": "2026-12-07 08:00", "elapsed_s": 3600, "budget_s": 4500, "cpu": "AMD EPYC",
            "cores": 2, "mem_gib": 23, "int8_flags": ["avx512_vnni"], "cuda": False, "gpu": None,
            "versions": {"torch": "2.14.1"}, "cached": [], "env": {}, "loads": [1.0, 1.2],
            "sections": {"notebooks": [nb("03b_mnist_basics.ipynb", 20.0, 700),
                                       nb("06a_x.ipynb", 320.0, 1500)],
                         "imports": {"error": "not run (BENCH_SECTIONS)"}, "apps": {"result": apps},
                         "voila": {"result": voila},
                         "precision": {"error": "not run (BENCH_SECTIONS)"},
                         "deploy": deploy}}


def test_goals_table_reads_each_target_from_the_run_and_says_which_were_missed(tmp_path):
    from goals import ci_goal, collect
    rows = {g["goal"]: g for g in collect(synthetic_run())}
    slow = rows["each notebook runs in small mode on this machine"]
    assert (slow["measured"], slow["met"]) == ("slowest 5.3 min: 06a_x.ipynb", False)
    memory = rows["every notebook kernel fits Binder, small mode (offline)"]
    assert (memory["measured"], memory["met"]) == ("largest 1,500 MiB: 06a_x.ipynb", False)
    voila = rows["every app's first widget, no preheating"]
    assert (voila["measured"], voila["met"]) == ("slowest 6.5 s: classifier", False)
    handler = rows["recommender: slider"]
    assert (handler["target"], handler["measured"], handler["met"]) == \
        ("< 200 ms (p95)", "250 ms", False)
    assert "threshold: slider" not in rows   # no target stated
    assert rows["int8 model agrees with fp32 (top-1)"]["met"] is True
    assert rows["full mode and fp16 against fp32 per epoch, peak GPU memory"]["met"] is None
    times = tmp_path / "make-test-seconds.txt"
    times.write_text("install           113\nnbtest            539\npytest            451\n")
    assert (ci_goal(times)["measured"] == "18 min, last run in this checkout"
            and ci_goal(times)["met"])
    times.write_text("install           113\nnbtest           2900  FAILED\n")
    assert ci_goal(times)["met"] is False and ci_goal(times)["measured"].endswith("it failed")
    assert ci_goal(tmp_path / "missing.txt")["met"] is None


def test_results_page_opens_with_the_machine_and_the_goals_table():
    from report import render
    page = render(synthetic_run())
    head, goals = page.split("## Goals")[0], page.split("## Goals")[1].split("\n## ")[0]
    assert "int8/bf16 dot-product instructions: avx512_vnni" in head
    assert "| recommender: slider | < 200 ms (p95) | 250 ms | **no** |" in goals
    assert "| int8 model agrees with fp32 (top-1) | >= 98% | 99.0% | yes |" in goals
    assert page.index("## Goals") < page.index("## 1. Course run time") \
        < page.index("## Deployment (`bench/deploy.py`)")
    assert page.count("## Deployment") == 1
    assert "session" not in page.lower() and "measured by hand" not in page.lower()
