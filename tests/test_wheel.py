"""`pip install htc_dl`: the wheel and sdist build, hold the package and its licence and nothing
else, declare ranges and extras, the wheel installs into a fresh virtual environment and every
public helper imports from it; the extras keep the footprint honest. (tests/test_install.py
installs the wheel with its dependencies.)

Offline and fast: `python -m build --no-isolation` uses this venv's setuptools, and the fresh venv
reuses this venv's installed dependencies through a .pth file, so `pip install --no-deps --no-index`
downloads nothing.
"""
import ast, email, json, os, subprocess, sys, sysconfig, tarfile, zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pins import ROOT, extras, named_distributions, project_requirements, pyproject
from htc_dl.offline import REVIEWS_FILE

DEV_ONLY = {"nbdev", "jupyterlab", "pytest", "playwright", "build", "nbclient", "psutil"}


def run(cmd, **kw):
    "Run `cmd`, raising with its output when it fails."
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n"
                             f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


@pytest.fixture(scope="module")
def fresh_venv(built, tmp_path_factory):
    """A new venv with the wheel installed; the pinned dependencies come from this venv through a
    .pth file."""
    venv = tmp_path_factory.mktemp("venv")/"v"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv/"bin"/"python"
    site = Path(run([str(py), "-c",
                     "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    (site/"project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
         "-q", str(built[0])])
    return py, site


def public_names(module_path):
    "The names in a module's `__all__`, read from its source."
    for node in ast.parse(module_path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return []


def specifiers(reqs):
    "{canonical name: SpecifierSet} of requirements (their markers left aside)."
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def test_wheel_holds_the_modules_and_the_licence_and_no_notebook_test_or_build_output(built):
    wheel, sdist = built
    modules = sorted(p.name for p in (ROOT/"htc_dl").glob("*.py"))
    infos = zipfile.ZipFile(wheel).infolist()
    names = [i.filename for i in infos]
    package = sorted(n.split("/", 1)[1] for n in names if n.startswith("htc_dl/"))
    # the text lesson's offline corpus (CC0) is the one data file
    expected = sorted(modules + [f"data_files/{REVIEWS_FILE}"])
    assert package == expected, f"differs from htc_dl/*.py: {sorted(set(package) ^ set(expected))}"
    folders = {n.split("/")[0] for n in names}
    assert folders == {"htc_dl", f"htc_dl-{pyproject_version()}.dist-info"}, folders
    dist_info = sorted(n.split("/", 1)[1] for n in names if not n.startswith("htc_dl/"))
    assert dist_info == ["METADATA", "RECORD", "WHEEL", "entry_points.txt", "licenses/LICENSE",
                         "top_level.txt"]
    licence = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/LICENSE"))).decode()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert (ROOT/"LICENSE").read_text() == licence
    assert not [n for n in names if n.endswith((".ipynb", ".pyc")) or "tests/" in n]
    corpus = next(i for i in infos if i.filename.endswith(REVIEWS_FILE))
    assert corpus.file_size == (ROOT/"htc_dl/data_files"/REVIEWS_FILE).stat().st_size < 3_000_000
    assert max(i.file_size for i in infos if i is not corpus) < 300_000, \
        "a module or data file is unexpectedly large"
    sdist_names = tarfile.open(sdist).getnames()
    for m in modules:
        assert any(n.endswith(f"htc_dl/{m}") for n in sdist_names), f"{m} missing from the sdist"
    for name in ("pyproject.toml", "LICENSE"):
        assert any(n.endswith(f"/{name}") for n in sdist_names), f"{name} missing from the sdist"


def pyproject_version():
    import htc_dl
    return htc_dl.__version__


def test_wheel_metadata_declares_the_ranges_the_extras_and_python_3_10_or_newer(built):
    wheel, _ = built
    zf = zipfile.ZipFile(wheel)
    metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(zf.read(metadata))
    assert meta["Version"] == pyproject_version()
    assert meta["Requires-Python"] == ">=3.10", "Python 3.9 must be refused at install time"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("Provides-Extra") == extras()
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    bare = [r for r in requires if r.marker is None]
    assert specifiers(bare) == specifiers(project_requirements("")), "not pyproject's ranges"
    assert all(str(r.specifier) and "==" not in str(r.specifier) for r in bare), bare
    assert specifiers(bare)["torch"].contains("2.13.0+cpu")
    for extra in extras():
        got = [r for r in requires if r.marker and r.marker.evaluate({"extra": extra})]
        assert specifiers(got) == specifiers(project_requirements(extra)), extra
    course = [r for r in requires if r.marker and r.marker.evaluate({"extra": "course"})]
    assert [(r.name, sorted(r.extras)) for r in course] == [
        ("htc_dl", ["apps", "deploy", "interpret", "multi", "text"])]
    heavy = set(named_distributions(["deploy", "interpret", "multi"])) | {"voila"} | DEV_ONLY
    assert not set(specifiers(bare)) & heavy, "bare pulls an extra or a dev tool"
    ep = zf.read(next(n for n in zf.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "[nbdev]" in ep and "htc_dl = htc_dl._modidx:d" in ep


def test_fresh_venv_imports_every_public_helper_from_the_installed_wheel(fresh_venv, tmp_path):
    py, site = fresh_venv
    modules = sorted(p.stem for p in (ROOT/"htc_dl").glob("*.py") if p.stem != "__init__")
    expected = {m: public_names(ROOT/"htc_dl"/f"{m}.py") for m in modules}
    assert sum(map(len, expected.values())) >= 10, expected
    probe = ("import importlib, json, sys, htc_dl\n"
             f"out = {{'file': htc_dl.__file__, 'version': htc_dl.__version__, 'missing': []}}\n"
             f"for m, names in {expected!r}.items():\n"
             "    mod = importlib.import_module('htc_dl.' + m)\n"
             "    out['missing'] += [f'{m}.{n}' for n in names if not hasattr(mod, n)]\n"
             "    out['missing'] += [f'{m}.__all__ differs' for _ in [0]"
             " if list(getattr(mod, '__all__', [])) != names]\n"
             "print(json.dumps(out))\n")
    # run outside the repository, so `import htc_dl` cannot find the source tree instead of the
    # wheel
    out = json.loads(run([str(py), "-c", probe], cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
                     .strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(site), \
        f"imported {out['file']}, not the installed wheel"
    import htc_dl
    assert out["version"] == htc_dl.__version__
    assert out["missing"] == []


def _imported_distributions(module_path, top_level_only=False):
    """Third-party distributions a module imports: at its top level only, or anywhere (inside
    functions too)."""
    from importlib.metadata import packages_distributions
    dists, stdlib = packages_distributions(), sys.stdlib_module_names
    tree = ast.parse(module_path.read_text())
    found = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if (isinstance(node, ast.ImportFrom) and node.level == 0
                                  and node.module) else []
        for n in names:
            top = n.split(".")[0]
            if top in stdlib or top == "htc_dl": continue
            found |= {canonicalize_name(d) for d in dists.get(top, [top])}
    return found


def _closure(names):
    """The distributions `names` bring with them: themselves and their requirements, recursively (no
    extras)."""
    from importlib.metadata import requires
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen: continue
        seen.add(n)
        for r in requires(n) or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def _required_extras(module_path):
    "The extras a module asks for with `require_extra(...)` at its top level, in order."
    calls = [getattr(node, "value", None) for node in ast.parse(module_path.read_text()).body]
    return tuple(call.args[0].value for call in calls
                 if isinstance(call, ast.Call)
                 and getattr(call.func, "id", None) == "require_extra")


def test_bare_install_imports_every_module_that_asks_for_no_extra_and_the_others_name_theirs():
    """`pip install htc_dl` must import every module that does not call `require_extra` (their
    top-level imports are in the bare requirements' closure); a module that imports an extra's
    package anywhere asks for that extra at its top; nothing imports an undeclared package."""
    bare = set(named_distributions([""]))
    with_extra = {e: _closure(bare | set(named_distributions([e])))
                  for e in extras() if e not in ("course", "dev")}
    everything = _closure(bare | set(named_distributions(list(with_extra))))
    extra_only = {d: e for e in with_extra for d in named_distributions([e]) if d not in bare}
    problems, guarded = [], {}
    for path in sorted((ROOT/"htc_dl").glob("*.py")):
        anywhere, top = (_imported_distributions(path),
                         _imported_distributions(path, top_level_only=True))
        asked = _required_extras(path)
        if asked: guarded[path.stem] = asked
        where = f"htc_dl/{path.name} imports"
        problems += [f"{where} {d}, which neither the package nor an extra provides"
                     for d in anywhere - everything]
        problems += [f"{where} the dev tool {d}" for d in anywhere & DEV_ONLY]
        allowed = set().union(*(with_extra[e] for e in asked)) if asked else _closure(bare)
        problems += [f"{where} {d} at its top level, which a bare install lacks: start the module "
                     f"with require_extra(...)" for d in top - allowed]
        problems += [f"{where} {d} without require_extra({extra_only[d]!r}) at its top"
                     for d in anywhere & set(extra_only) if extra_only[d] not in asked]
    assert not problems, "\n".join(problems)
    assert guarded == {"attacks": ("interpret",), "blog": ("apps",), "deploy": ("deploy",),
                       "serving": ("apps",), "text": ("text", "interpret"),
                       "vision_plus": ("multi",)}, guarded


def test_no_helper_can_unpickle_a_file_so_no_model_from_an_upload_runs_code():
    """torch.load only with weights_only=True, np.load only with allow_pickle=False, and no
    pickle/joblib/load_learner at all."""
    problems = []
    for path in sorted((ROOT/"htc_dl").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call): continue
            f = node.func
            name = (f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute)
                    else getattr(f, "id", "?"))
            kw = {k.arg: k.value for k in node.keywords}
            def is_const(arg, value):
                return arg in kw and isinstance(kw[arg], ast.Constant) and kw[arg].value is value
            where = f"htc_dl/{path.name}:{node.lineno} {name}(...)"
            if name == "torch.load" and not is_const("weights_only", True):
                problems.append(f"{where} without weights_only=True")
            if name == "np.load" and not is_const("allow_pickle", False):
                problems.append(f"{where} without allow_pickle=False")
            if name in {"pickle.load", "pickle.loads", "joblib.load", "load_learner",
                        "torch.jit.load", "dill.load"}:
                problems.append(f"{where} can run code from the file it reads")
    assert not problems, "\n".join(problems)



def test_release_workflow_tests_the_lock_then_publishes_wheel_and_sdist_by_trusted_publishing():
    import yaml
    flow = yaml.safe_load((ROOT/".github"/"workflows"/"release.yml").read_text())
    assert flow[True] == {"push": {"tags": ["v*"]}}, "version tags only"   # YAML reads `on` as True
    build, publish = flow["jobs"]["test-and-build"], flow["jobs"]["publish"]
    runs = [s.get("run", "") for s in build["steps"]]
    test_step = next(i for i, r in enumerate(runs) if "make test" in r)
    dist_step = next(i for i, r in enumerate(runs) if "make dist" in r)
    assert test_step < dist_step, "build and publish only what passed the tests"
    assert "python -m build" in (ROOT/"Makefile").read_text().split("\ndist:")[1].split("\n\n")[0]
    assert flow["permissions"] == {"contents": "read"}, "only the publish job may ask for a token"
    assert publish["needs"] == "test-and-build" and publish["permissions"] == {"id-token": "write"}
    assert publish["steps"][-1]["uses"] == "pypa/gh-action-pypi-publish@release/v1"
