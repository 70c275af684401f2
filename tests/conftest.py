"Shared test set-up: every test session gets its own data folder and never touches the network."
import os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope="session", autouse=True)
def offline_data_folder():
    """Point HTC_DL_DATA at a session-wide temporary folder (reused by all tests) and skip download
    attempts."""
    # set it to reuse generated data between runs while developing
    keep = os.environ.get("HTC_DL_TEST_DATA")
    folder = keep or tempfile.mkdtemp(prefix="htc_dl_test_data-")
    os.environ.update(HTC_DL_DATA=folder, HTC_DL_OFFLINE="1", HTC_DL_SMALL="1")
    yield folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run several times faster on one thread on a busy 2-core machine; the setting is
    put back afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The wheel and the sdist, built once from a copy of the sources (the tree gets no build/ or
    egg-info)."""
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp/"src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md", "LICENSE", "settings.ini"]:
        shutil.copy(ROOT/name, src/name)
    shutil.copytree(ROOT/"htc_dl", src/"htc_dl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                            "--outdir", str(tmp/"dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheels, sdists = list((tmp/"dist").glob("*.whl")), list((tmp/"dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(tmp/"dist")
    return wheels[0], sdists[0]
