"""The dev container (.devcontainer/, for Codespaces and VS Code): the Python of the Binder lock,
the CPU-only pinned environment in .venv marked installed for the Makefile, and the ports `make
start` and `make lab` serve on."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = json.loads((ROOT/".devcontainer"/"devcontainer.json").read_text())
POST_CREATE = (ROOT/".devcontainer"/"post_create.sh").read_text()
MAKEFILE = (ROOT/"Makefile").read_text()


def test_container_python_is_the_python_the_binder_lock_was_compiled_for():
    runtime = (ROOT/"binder"/"runtime.txt").read_text().strip()          # python-3.11
    image_python = re.search(r"python:\d+-(\d+\.\d+)-", CONFIG["image"])[1]
    assert runtime == f"python-{image_python}", (runtime, CONFIG["image"])


def test_post_create_installs_the_cpu_lock_into_the_venv_the_makefile_uses():
    assert CONFIG["postCreateCommand"] == "bash .devcontainer/post_create.sh"
    assert "pip install -q -r binder/requirements.txt" in POST_CREATE    # every pin, CPU-only torch
    assert "--no-deps -e ." in POST_CREATE                        # the package, nothing re-resolved
    venv = re.search(r"^VENV := (\S+)", MAKEFILE, re.M)[1]
    stamp = re.search(r"^STAMP := \$\(VENV\)/(\S+)", MAKEFILE, re.M)[1]
    assert f"touch {venv}/{stamp}" in POST_CREATE, ("the Makefile would install the CUDA "
                                                    "environment again")
    assert ("torch==" in (ROOT/"binder"/"requirements.txt").read_text()
            and "+cpu" in (ROOT/"binder"/"requirements.txt").read_text())


def test_forwarded_ports_are_the_ones_make_start_and_make_lab_serve():
    ports = {int(re.search(rf"^{name} \?= (\d+)", MAKEFILE, re.M)[1])
             for name in ("PORT", "LAB_PORT")}
    assert set(CONFIG["forwardPorts"]) == ports
    assert set(map(int, CONFIG["portsAttributes"])) == ports
