"""The README's launch badges and file names point at what the repository really holds, and its
measured figures are only those that `make bench` copies into it from bench/RESULTS.md."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT/"README.md").read_text()
REPO = "htc-education/htc_dl"
APPS = sorted(p.stem for p in (ROOT/"nbs/apps").glob("*.ipynb") if p.stem != "index")


def binder_paths():
    "The `urlpath` of every Binder link: (kind, path in the repository)."
    found = re.findall(rf"https://mybinder\.org/v2/gh/{REPO}/HEAD"
                       r"\?urlpath=(lab/tree|voila/render)/([^)\s]+)", README)
    return [(kind, unquote(path)) for kind, path in found]


def test_every_binder_link_opens_a_file_or_folder_that_exists():
    links = binder_paths()
    assert len(links) >= 3, links
    for kind, path in links:
        if "<" in path: continue   # the documented pattern, not a link
        assert (ROOT/path).exists(), \
            f"README links Binder to {path}, which is not in the repository"
        if kind == "voila/render":
            assert path.startswith("nbs/apps/") and path.endswith(".ipynb"), path


def test_every_app_has_a_badge_that_opens_it_directly_in_voila():
    in_voila = {Path(p).stem for kind, p in binder_paths() if kind == "voila/render"}
    assert "index" in in_voila, "the gallery needs its own Voila badge"
    missing = [app for app in APPS if app not in in_voila]
    assert not missing, f"apps without a Voila badge in README.md: {missing}"


def test_gradient_badge_points_at_this_repository_with_a_python_311_container():
    m = re.search(r"https://console\.paperspace\.com/github/([\w.-]+/[\w.-]+)"
                  r"\?machine=[\w-]+&container=([^)\s]+)", README)
    assert m and m.group(1) == REPO, "the Gradient badge must open this repository"
    assert "py311" in m.group(2), \
        "Gradient's container must match the Python of binder/runtime.txt (3.11)"
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


sys.path.insert(0, str(ROOT/"bench"))
from report import README_END, README_START, write_readme_goals   # noqa: E402

RESULTS = ROOT/"bench"/"RESULTS.md"
# a number followed by a unit: a measured figure, unless it is one of the targets and settings below
FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s*(?:-|–|to)\s*\d[\d,]*(?:\.\d+)?)?\s*"
                    r"(?:ms|s|secs?|seconds?|minutes?|mins?|hours?|[KMG]i?B|kB|%|answers/s"
                    r"|answers per second|per second|x faster|x|fps)(?![\w/])")
TARGETS_AND_SETTINGS = {
    "5 s": "the apps' cold-start target, and Voila's fill_delay in nbs/apps/voila.json",
    "16 MiB": "the server's upload limit (nbs/apps/voila.json)",
    "64 MiB": "tornado's websocket message limit (nbs/apps/voila.json)",
    "15 MB": "the classifier's own upload limit (MAX_UPLOAD_MB)",
    "1.5 GB": "the memory target of one kernel on Binder",
    "2 GB": "the memory Binder gives a user",
    "95%": "own_webapp's default share of right answers kept (--keep)",
    "100 MB": "GitHub's file size limit, above which Git LFS is needed",
}


def goals_block(readme):
    "What lies between README's goals markers."
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1, \
        f"README.md needs the lines {README_START} and {README_END} once each"
    return readme.split(README_START)[1].split(README_END)[0]


def results_goals_table(results):
    "The table lines of the '## Goals' section of a RESULTS.md."
    lines = results.splitlines()
    assert "## Goals" in lines, "RESULTS.md has no '## Goals' section: run `make bench`"
    section = lines[lines.index("## Goals") + 1:]
    ends = [i for i, l in enumerate(section) if l.startswith("## ")] + [len(section)]
    return [l for l in section[:ends[0]] if l.startswith("|")]


def assert_block_copies_results(readme, results):
    "README's goals block: RESULTS.md's Goals table, each other line copied from RESULTS.md too."
    block, expected = goals_block(readme).splitlines(), results_goals_table(results)
    assert len(expected) >= 3, f"RESULTS.md's Goals section holds no table: {expected}"
    fix = "run `python bench/run_all.py --render`"
    table = [l for l in block if l.startswith("|")]
    assert table == expected, f"README.md's goals table differs from bench/RESULTS.md's: {fix}"
    typed = [l for l in block if l.strip() and l not in results.splitlines()]
    assert not typed, f"README.md's goals block has lines bench/RESULTS.md does not: {typed}"


def test_the_readme_goals_block_is_the_goals_table_of_bench_results():
    assert_block_copies_results(README, RESULTS.read_text())


def test_outside_the_goals_block_the_readme_quotes_no_measured_figure():
    outside = README.split(README_START)[0] + README.split(README_END)[-1]
    figures = {" ".join(m.group().split()) for m in FIGURE.finditer(outside)}
    assert "5 s" in figures and "16 MiB" in figures, "the pattern no longer finds figures"
    unexpected = sorted(figures - set(TARGETS_AND_SETTINGS))
    assert not unexpected, (f"README.md quotes figures {unexpected}: point to the goals block or "
                            "bench/RESULTS.md instead (a target or setting: TARGETS_AND_SETTINGS)")


def test_the_readme_names_results_sections_by_title_and_speaks_only_of_the_project():
    assert not re.search(r"(?i)\bsections?\s+\d", README), "name RESULTS.md's sections by title"
    words = re.findall(r"(?i)\bsessions?\b|\blent\b|\bby hand\b", README)
    assert not words, f"README.md speaks of {words}"


def test_the_readme_writer_replaces_the_block_and_leaves_the_rest_byte_identical(tmp_path):
    from test_bench import synthetic_run
    from report import render
    results = render(synthetic_run())
    before = f"# A page\r\nwith CRLF — and more\n\n{README_START}\n"
    after = f"{README_END}\ntail\n"
    readme = tmp_path/"README.md"
    readme.write_bytes((before + "| an old | table |\n" + after).encode())
    write_readme_goals(results, readme)
    data = readme.read_bytes().decode()
    assert data.startswith(before) and data.endswith(after) and "an old" not in data
    assert_block_copies_results(data, results)
    assert "| recommender: slider | < 200 ms (p95) | 250 ms | **no** |" in goals_block(data)
    assert "- Date: 2026-12-07 08:00 UTC" in goals_block(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]   # no temp file left
    # a later run with another figure: the old block no longer agrees, until it is written again
    run = synthetic_run()
    run["sections"]["apps"]["result"][0]["p95_ms"] = 150.0
    later = render(run)
    with pytest.raises(AssertionError, match="differs"): assert_block_copies_results(data, later)
    write_readme_goals(later, readme)
    assert_block_copies_results(readme.read_text(), later)


def test_the_readme_writer_without_markers_names_them_and_changes_nothing(tmp_path):
    from test_bench import synthetic_run
    from report import render
    readme = tmp_path/"README.md"
    for text in ("# no markers\n", f"{README_END}\n{README_START}\n"):
        readme.write_text(text)
        with pytest.raises(ValueError) as e: write_readme_goals(render(synthetic_run()), readme)
        assert README_START in str(e.value) and README_END in str(e.value)
        assert readme.read_text() == text


def test_bench_render_writes_results_and_the_readme_block_from_a_run_record(tmp_path):
    from test_bench import synthetic_run
    shutil.copytree(ROOT/"bench", tmp_path/"bench", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path/"test-output"/"bench").mkdir(parents=True)
    (tmp_path/"test-output"/"bench"/"run.json").write_text(json.dumps(synthetic_run()))
    (tmp_path/"README.md").write_text(f"intro\n{README_START}\n{README_END}\nend\n")
    env = {k: v for k, v in os.environ.items() if k != "BENCH_OUT"}
    p = subprocess.run([sys.executable, str(tmp_path/"bench"/"run_all.py"), "--render"],
                       cwd=tmp_path, env=dict(env, PYTHONWARNINGS="ignore"), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    readme = (tmp_path/"README.md").read_text()
    results = (tmp_path/"bench"/"RESULTS.md").read_text()
    assert readme.startswith(f"intro\n{README_START}\n") and readme.endswith(f"{README_END}\nend\n")
    assert_block_copies_results(readme, results)
