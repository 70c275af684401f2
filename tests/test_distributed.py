"""Lesson 6's transfer-learning run on two CPU processes with Hugging Face Accelerate (`accelerate
launch`, gloo), through fastai's `learn.distrib_ctx()` (scripts/fine_tune_pets.py ->
htc_dl.vision_plus.fine_tune_pets): it really runs on two processes, each with half the batch, and
its metrics match a one-process run of the same recipe."""
import json, os, socket, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT/"scripts"/"fine_tune_pets.py"
# tiny: one frozen + one unfrozen epoch
RECIPE = ["--size", "small", "--img_size", "64", "--epochs", "1", "--bs", "32", "--lr", "8e-3"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start the one-process run and the two-process `accelerate launch` run side by side; return
    both metrics."""
    from htc_dl.data import pets
    # write the data once, before two processes race for it
    pets(source="offline", size="small")
    out = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
              "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port())]
    jobs = {"one": subprocess.Popen([sys.executable, str(SCRIPT), *RECIPE,
                                     "--out", str(out/"one.json")], env=env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            "two": subprocess.Popen([*launch, str(SCRIPT), *RECIPE, "--out", str(out/"two.json")],
                                    env=env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)}
    logs = {name: job.communicate(timeout=900)[0] for name, job in jobs.items()}
    for name, job in jobs.items():
        assert job.returncode == 0, f"{name} failed:\n{logs[name][-3000:]}"
    return {name: json.loads((out/f"{name}.json").read_text()) for name in jobs}


def test_accelerate_launch_runs_two_processes_each_with_half_the_batch(runs):
    assert runs["one"]["processes"] == 1 and runs["one"]["batch_per_process"] == 32
    assert runs["two"]["processes"] == 2 and runs["two"]["batch_per_process"] == 16
    assert runs["two"]["rank"] == 0                               # only rank 0 reports


def test_two_process_metrics_match_the_one_process_run(runs):
    one, two = runs["one"], runs["two"]
    # 12 drawn breeds; one short epoch each way
    chance = 1 - 1/12
    # both learned
    assert one["error_rate"] < chance - 0.3 and two["error_rate"] < chance - 0.3, (one, two)
    assert abs(one["error_rate"] - two["error_rate"]) <= 0.1, (one, two)
    assert abs(one["valid_loss"] - two["valid_loss"]) <= 0.25 * one["valid_loss"], (one, two)
