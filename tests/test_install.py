"""`pip install htc_dl` where learners already are: beside an older PyTorch the wheel keeps it,
installs the oldest versions pyproject.toml admits, and the core helpers run there; with the lock's
versions it changes nothing; a module that needs an extra names it when the extra is missing.

The two tests that build virtual environments are marked `install` (about 3 minutes on 2 cores,
most of it pip installing the floors; downloads are cached in the temporary folder between runs).
"""
import json, os, sys, tempfile
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from pins import ROOT, extras, lock_pins, named_distributions, project_requirements
from test_wheel import run

OLD_TORCH = "2.13.0"          # the floor `torch>=2.13`: an older PyTorch a learner already has
OLD_TORCH_WHEEL = Path(os.environ.get(
    "HTC_DL_OLD_TORCH_WHEEL", "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"))
OLD_TORCHVISION = "0.28.0"    # the torchvision release made for torch 2.13
PIP_CACHE = Path(tempfile.gettempdir())/"htc_dl-pip-cache"

# Real inputs through the core helpers: one SGD step on two separable clouds, a collab fit on a few
# hundred ratings with a planted pattern, a quiz answer checked. No torchvision (see old_venv).
CORE_CHECKS = '''
import json, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd, torch
import htc_dl
from htc_dl.sgd import init_params, linear1, mnist_loss, calc_grad
from htc_dl.collab import fit_collab
from htc_dl.quiz import Question, check_answer, quiz
torch.manual_seed(0)
x = torch.cat([torch.randn(32, 4) + 2, torch.randn(32, 4) - 2])
y = torch.cat([torch.ones(32, 1), torch.zeros(32, 1)])
w, b = init_params((4, 1)), init_params(1)
model = lambda xb: linear1(xb, w, b)
before = calc_grad(x, y, model).item()
with torch.no_grad():
    for p in (w, b): p -= 1.0 * p.grad
after = mnist_loss(model(x), y).item()
rng = np.random.default_rng(0)
ratings = pd.DataFrame({"user": rng.integers(0, 20, 400), "movie": rng.integers(0, 30, 400)})
ratings["rating"] = (ratings.user % 2 == ratings.movie % 2) * 3.0 + 1 + rng.normal(0, 0.1, 400)
_, mse = fit_collab(ratings[:300], ratings[300:], n_factors=4, epochs=10, lr=0.1, bs=64)
q = Question("What does 2 + 2 make?", ["3", "4"], 1, "Counting.")
print(json.dumps({"torch": torch.__version__, "file": htc_dl.__file__, "sgd": [before, after],
                  "mse": mse, "quiz": [check_answer(q, 1)[0], check_answer(q, 0)[0]],
                  "widget": type(quiz([q])).__name__}))
'''


def pip(python, *args):
    "Run this venv's pip on the environment of `python`, with the shared download cache."
    return run([sys.executable, "-m", "pip", "--python", str(python), *map(str, args)],
               env={**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE)})


def floors():
    "{name: version} of the lowest version each bare dependency admits (its `>=`)."
    return {canonicalize_name(r.name): next(s.version for s in r.specifier if s.operator == ">=")
            for r in project_requirements("")}


def check_core(python, cwd):
    "Run CORE_CHECKS with `python` outside the repository and check what came out."
    out = json.loads(run([str(python), "-c", CORE_CHECKS], cwd=cwd,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).strip().splitlines()[-1])
    before, after = out["sgd"]
    assert after < before * 0.8, f"one SGD step did not lower the loss: {before:.3f} -> {after:.3f}"
    assert out["mse"][-1] < 0.3 < out["mse"][0], f"collab missed the planted pattern: {out['mse']}"
    assert out["quiz"] == [True, False] and out["widget"] == "VBox"
    return out


@pytest.fixture(scope="session")
def wheel(built):
    "The wheel built once per session (tests/conftest.py)."
    return built[0]


@pytest.fixture(scope="module")
def old_venv(wheel, tmp_path_factory):
    """A fresh venv holding torch 2.13.0+cpu (the PyTorch already there), then the wheel, no extras,
    at the floors.

    torchvision 0.28.0, the release for torch 2.13, goes in first with --no-deps so pip sees it as
    satisfied. The one this machine's index offers is a CUDA build that does not import beside the
    CPU torch, so the core checks use only helpers that need no torchvision."""
    venv = tmp_path_factory.mktemp("old")/"v"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv/"bin"/"python"
    if OLD_TORCH_WHEEL.exists(): pip(py, "install", "-q", "--no-compile", OLD_TORCH_WHEEL)
    else: pip(py, "install", "-q", "--no-compile", f"torch=={OLD_TORCH}",
              "--extra-index-url", "https://download.pytorch.org/whl/cpu")
    pip(py, "install", "-q", "--no-deps", f"torchvision=={OLD_TORCHVISION}")
    constraints = venv.parent/"floors.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in floors().items()))
    pip(py, "install", "-q", "--no-compile", "-c", constraints, wheel)
    return py


@pytest.mark.install
def test_old_torch_stays_the_floors_install_pip_check_is_clean_and_core_helpers_run(old_venv,
                                                                                   tmp_path):
    installed = {canonicalize_name(d["name"]): d["version"]
                 for d in json.loads(pip(old_venv, "list", "--format", "json"))}
    assert installed["torch"] == f"{OLD_TORCH}+cpu", "pip replaced the PyTorch already installed"
    wrong = {n: (installed.get(n), v) for n, v in floors().items()
             if Version(Version(installed.get(n, "0")).public) != Version(v)}
    assert not wrong, f"(installed, floor) differ, so the floors were not what was tested: {wrong}"
    extra_only = set(named_distributions(["deploy", "interpret", "multi"])) | {"voila"}
    assert not extra_only & set(installed), "a bare install pulled an extra's runtime"
    assert "No broken requirements found" in pip(old_venv, "check")
    out = check_core(old_venv, tmp_path)
    assert out["torch"] == f"{OLD_TORCH}+cpu"
    assert Path(out["file"]).is_relative_to(old_venv.parent.parent), out["file"]
    probe = "try:\n    import htc_dl.deploy\nexcept ImportError as e: print(e)"
    message = run([str(old_venv), "-c", probe], cwd=tmp_path)
    assert 'pip install "htc_dl[deploy]"' in message and "onnx" in message, message


@pytest.mark.install
def test_at_the_lock_versions_core_helpers_run_and_installing_the_wheel_changes_nothing_else(wheel,
                                                                                          tmp_path):
    "This venv is the lock (checked below), so it stands in for a fresh venv of the lock versions."
    lock = lock_pins()
    for name in named_distributions():
        assert Version(version(name)) == Version(lock[name][1]), f"{name}: not the lock's"
    out = check_core(sys.executable, tmp_path)
    assert Version(out["torch"]).public == lock["torch"][1]   # this venv's build is 2.14.1+cu130
    report = tmp_path/"report.json"
    pip(sys.executable, "install", "--dry-run", "--no-index", "--report", report,
        f"{wheel}[course,dev]")
    would = [(i["metadata"]["name"], i["metadata"]["version"])
             for i in json.loads(report.read_text())["install"]]
    import htc_dl
    assert would == [("htc_dl", htc_dl.__version__)], f"pip would change the locked venv: {would}"


def test_the_extras_module_names_exactly_the_packages_pyproject_puts_in_each_extra():
    from htc_dl.extras import EXTRAS
    assert list(EXTRAS) == [e for e in extras() if e not in ("course", "dev")]
    for extra, packages in EXTRAS.items():
        assert set(map(canonicalize_name, packages)) == set(named_distributions([extra])), extra


@pytest.mark.parametrize("module, extra, package", [
    ("deploy", "deploy", "onnx"), ("deploy", "deploy", "onnxscript"),
    ("deploy", "deploy", "onnxruntime"), ("deploy", "deploy", "openvino"),
    ("attacks", "interpret", "captum"), ("vision_plus", "multi", "accelerate"),
    ("serving", "apps", "voila")])
def test_a_module_without_its_extra_raises_an_import_error_that_names_the_extra(module, extra,
                                                                              package, tmp_path):
    probe = (f"import sys\nsys.modules[{package!r}] = None   # hidden, as if not installed\n"
             f"try:\n    import htc_dl.{module}\nexcept ImportError as e: print(repr(e.name), e)\n"
             f"else: print('imported')")
    out = run([sys.executable, "-c", probe], cwd=tmp_path).strip()
    assert out.startswith(f"{package!r} {package} not installed"), out
    assert f'needs the {extra!r} extra. Install it with: pip install "htc_dl[{extra}]"' in out, out


def test_core_modules_import_with_every_extra_hidden(tmp_path):
    hidden = sorted(set(named_distributions(["deploy", "interpret", "multi"])) | {"voila"})
    probe = (f"import sys\nsys.modules.update(dict.fromkeys({hidden!r}))\n"
             "import htc_dl, htc_dl.data, htc_dl.sgd, htc_dl.losses, htc_dl.quiz, htc_dl.collab\n"
             "print('ok')")
    assert run([sys.executable, "-c", probe], cwd=tmp_path).strip() == "ok"
