"""`pip install htc_dl`: the wheel and sdist build, the wheel installs into a fresh virtual environment and every
public helper imports from it; the extras keep the footprint honest.

Offline and fast: `python -m build --no-isolation` uses this venv's setuptools, and the fresh venv reuses this
venv's installed dependencies through a .pth file, so `pip install --no-deps --no-index` downloads nothing.
"""
import ast, email, json, os, shutil, subprocess, sys, sysconfig, tarfile, zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pins import ROOT, project_pins, pyproject

DEV_ONLY = {"nbdev", "jupyterlab", "pytest", "playwright", "build", "nbconvert", "nbclient", "psutil"}
WIDGET_DISTS = {"ipywidgets", "voila"}
WIDGET_STACK = WIDGET_DISTS | {"jupyter-server", "ipython"}   # what a module serving or drawing widgets imports


def run(cmd, **kw):
    "Run `cmd`, raising with its output when it fails."
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode: raise AssertionError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "Build the sdist and the wheel from a copy of the sources (so the shared tree gets no build/ or egg-info)."
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp/"src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md", "LICENSE", "settings.ini"]:
        if (ROOT/name).exists(): shutil.copy(ROOT/name, src/name)
    assert (src/"README.md").exists(), "pyproject.toml names README.md as the long description: it must exist to build"
    shutil.copytree(ROOT/"htc_dl", src/"htc_dl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(tmp/"dist"), str(src)])
    wheels, sdists = list((tmp/"dist").glob("*.whl")), list((tmp/"dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(tmp/"dist")
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def fresh_venv(built, tmp_path_factory):
    "A new venv with the wheel installed; the pinned dependencies come from this venv through a .pth file."
    venv = tmp_path_factory.mktemp("venv")/"v"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv/"bin"/"python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    (site/"project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(built[0])])
    return py, site


def public_names(module_path):
    "The names in a module's `__all__`, read from its source."
    for node in ast.parse(module_path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)
    return []


def test_wheel_and_sdist_hold_every_module_and_the_wheel_declares_the_pins_and_extras(built):
    wheel, sdist = built
    modules = sorted(p.name for p in (ROOT/"htc_dl").glob("*.py"))
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.split("/")[1] for n in names if n.startswith("htc_dl/") and n.endswith(".py")) == modules
    sdist_names = tarfile.open(sdist).getnames()
    for m in modules: assert any(n.endswith(f"htc_dl/{m}") for n in sdist_names), f"{m} missing from the sdist"
    assert any(n.endswith("/pyproject.toml") for n in sdist_names)
    meta = email.message_from_bytes(zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    import htc_dl
    assert meta["Version"] == htc_dl.__version__
    assert set(meta.get_all("Provides-Extra")) == {"apps", "dev"}
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    bare = {canonicalize_name(r.name): str(r.specifier) for r in requires if r.marker is None}
    assert bare == {n: f"=={v}" for n, (_, v) in project_pins(("",)).items()}
    for extra in ["apps", "dev"]:
        got = {canonicalize_name(r.name): str(r.specifier) for r in requires if r.marker and r.marker.evaluate({"extra": extra})}
        assert got == {n: f"=={v}" for n, (_, v) in project_pins((extra,)).items()}, extra
    assert not (set(bare) & (DEV_ONLY | WIDGET_DISTS)), "the bare package must not pull notebook, test or app tools"
    ep = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
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
             "    out['missing'] += [f'{m}.__all__ differs' for _ in [0] if list(getattr(mod, '__all__', [])) != names]\n"
             "print(json.dumps(out))\n")
    # run outside the repository, so `import htc_dl` cannot find the source tree instead of the wheel
    out = json.loads(run([str(py), "-c", probe], cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(site), f"imported {out['file']}, not the installed wheel"
    import htc_dl
    assert out["version"] == htc_dl.__version__
    assert out["missing"] == []


def _imported_distributions(module_path, top_level_only=False):
    "Third-party distributions a module imports: at its top level only, or anywhere (inside functions too)."
    from importlib.metadata import packages_distributions
    dists, stdlib = packages_distributions(), sys.stdlib_module_names
    tree = ast.parse(module_path.read_text())
    found = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for n in names:
            top = n.split(".")[0]
            if top in stdlib or top == "htc_dl": continue
            found |= {canonicalize_name(d) for d in dists.get(top, [top])}
    return found


def _closure(names):
    "The distributions `names` bring with them: themselves and their requirements, recursively (no extras)."
    from importlib.metadata import requires
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen: continue
        seen.add(n)
        for r in requires(n) or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}): todo.append(canonicalize_name(req.name))
    return seen


def test_bare_install_imports_every_lesson_module_and_the_apps_extra_covers_the_widget_modules():
    """`pip install htc_dl` must import every lesson module (their top-level imports are in the bare pins' closure);
    a module whose top level imports the widget/server stack needs `htc_dl[apps]`; nothing imports an undeclared package."""
    bare_env = _closure(project_pins(("",)))
    apps_env = _closure(set(project_pins(("",))) | set(project_pins(("apps",))))
    problems, widget_modules = [], []
    for path in sorted((ROOT/"htc_dl").glob("*.py")):
        anywhere, top = _imported_distributions(path), _imported_distributions(path, top_level_only=True)
        problems += [f"htc_dl/{path.name} imports {d}, which neither the bare package nor [apps] provides" for d in anywhere - apps_env]
        problems += [f"htc_dl/{path.name} imports the dev tool {d}" for d in anywhere & DEV_ONLY]
        if top & WIDGET_STACK: widget_modules.append(path.stem)
        else: problems += [f"htc_dl/{path.name} imports {d} at its top level: a bare install could not import it" for d in top - bare_env]
    assert not problems, "\n".join(problems)
    print("modules that need htc_dl[apps]:", widget_modules)


def test_no_helper_can_unpickle_a_file_so_no_model_from_an_upload_runs_code():
    "torch.load only with weights_only=True, np.load only with allow_pickle=False, and no pickle/joblib/load_learner at all."
    problems = []
    for path in sorted((ROOT/"htc_dl").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call): continue
            f = node.func
            name = f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute) else getattr(f, "id", "?")
            kw = {k.arg: k.value for k in node.keywords}
            def is_const(arg, value): return arg in kw and isinstance(kw[arg], ast.Constant) and kw[arg].value is value
            where = f"htc_dl/{path.name}:{node.lineno} {name}(...)"
            if name == "torch.load" and not is_const("weights_only", True): problems.append(f"{where} without weights_only=True")
            if name == "np.load" and not is_const("allow_pickle", False): problems.append(f"{where} without allow_pickle=False")
            if name in {"pickle.load", "pickle.loads", "joblib.load", "load_learner", "torch.jit.load", "dill.load"}:
                problems.append(f"{where} can run code from the file it reads")
    assert not problems, "\n".join(problems)
