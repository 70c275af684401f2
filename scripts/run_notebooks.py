"""Execute the notebooks of one or more passes (offline, online) on a fixed number of slots, the
longest first, so no long lesson starts last and finishes alone.

Each pass has its folder of notebooks and its own environment: its notebooks run in worker
processes started with that environment, with nbdev's `test_nb` (as `nbdev-test` does, outputs
saved). A notebook in a --fresh folder (the lessons) gets a new process, like a learner's fresh
kernel, so what an earlier notebook left behind cannot change its results; the others share workers.
A pass may wait for a command (the simulated-online mirror) that runs beside the first notebooks.
The same notebook never runs in two passes at once, since both copies may write the same files.
The seconds each notebook took go to --record and to the table printed at the end; --expected
(such a record, from an earlier run) sets the order, and a notebook it does not list goes first.

    python scripts/run_notebooks.py --pass offline build/executed/offline/nbs \\
        --env offline "HTC_DL_SMALL=1 HTC_DL_OFFLINE=1" --skip online "00a_offline 05_ethics" ...
"""
import argparse, json, os, shlex, subprocess, sys, threading, time
from pathlib import Path

HERE = Path(__file__).resolve()


class Job:
    def __init__(self, pass_name, path, expected, fresh):
        self.pass_name, self.path, self.expected, self.fresh = pass_name, path, expected, fresh
        self.ok, self.seconds = None, None

    @property
    def name(self): return self.path.stem


class Worker:
    "A Python process with one pass's environment that runs the notebooks it is sent, in turn."
    def __init__(self, env):
        read_end, write_end = os.pipe()
        cmd = [sys.executable, str(HERE), "--worker", str(write_end)]
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdin=subprocess.PIPE,
                                     pass_fds=(write_end,), text=True)
        os.close(write_end)
        self.replies = os.fdopen(read_end)

    def run(self, path):
        "(passed, seconds) for the notebook at `path`; (False, seconds) if the process died."
        start = time.time()
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            reply = self.replies.readline()
        except BrokenPipeError: reply = ""
        if not reply: return False, time.time() - start
        answer = json.loads(reply)
        return answer["ok"], answer["seconds"]

    def alive(self): return self.proc.poll() is None

    def stop(self):
        if self.alive(): self.proc.stdin.close()
        self.proc.wait()


class Scheduler:
    "Hands the longest waiting notebook to the next free slot, within the rules in the docstring."
    def __init__(self, jobs, envs, waits_for):
        self.pending = sorted(jobs, key=lambda j: -j.expected)
        self.envs, self.waits_for = envs, waits_for
        self.ready = {p: p not in waits_for for p in envs}
        self.running, self.idle = set(), {p: [] for p in envs}
        self.lock = threading.Condition()

    def next_job(self):
        with self.lock:
            while self.pending:
                for job in self.pending:
                    if self.ready[job.pass_name] and job.name not in self.running:
                        self.pending.remove(job)
                        self.running.add(job.name)
                        print(f"[{job.pass_name}] starting {job.path.name}", flush=True)
                        return job
                self.lock.wait()
            return None

    def finish(self, job, worker):
        with self.lock:
            self.running.discard(job.name)
            if job.fresh: worker.stop()
            elif worker.alive(): self.idle[job.pass_name].append(worker)
            if not any(j.pass_name == job.pass_name for j in self.pending):
                for w in self.idle.pop(job.pass_name, []): w.stop()
                self.idle[job.pass_name] = []
            self.lock.notify_all()

    def worker_for(self, job):
        with self.lock:
            if self.idle[job.pass_name] and not job.fresh: return self.idle[job.pass_name].pop()
        return Worker(self.envs[job.pass_name])

    def slot(self):
        while (job := self.next_job()) is not None:
            worker = self.worker_for(job)
            job.ok, job.seconds = worker.run(job.path)
            print(f"[{job.pass_name}] {'passed' if job.ok else 'FAILED'} {job.path.name} "
                  f"in {job.seconds:.0f} s", flush=True)
            self.finish(job, worker)

    def run_first(self, pass_name, command):
        "Runs `command` (a shell line); the pass's notebooks start once it succeeds, else fail."
        ok = subprocess.run(command, shell=True).returncode == 0
        with self.lock:
            if not ok:
                print(f"FAIL: {command!r} failed, so the {pass_name} pass cannot run", flush=True)
                for job in [j for j in self.pending if j.pass_name == pass_name]:
                    job.ok, job.seconds = False, 0.0
                    self.pending.remove(job)
            self.ready[pass_name] = True
            self.lock.notify_all()

    def run(self, slots):
        threads = [threading.Thread(target=self.run_first, args=item, daemon=True)
                   for item in self.waits_for.items()]
        threads += [threading.Thread(target=self.slot) for _ in range(slots)]
        for t in threads: t.start()
        for t in threads: t.join()
        for workers in self.idle.values():
            for w in workers: w.stop()


def notebooks(folder, skipped):
    "The notebooks under `folder` that nbdev-test would run, minus the names in `skipped`."
    from nbdev.doclinks import nbglob
    return [p.resolve() for p in sorted(nbglob(folder, as_path=True)) if p.stem not in skipped]


def serve_notebooks(reply_fd):
    "The worker: runs each notebook path read from stdin, answers one JSON line per notebook."
    from nbdev.config import get_config
    from nbdev.test import test_nb
    replies = os.fdopen(reply_fd, "w", buffering=1)
    for line in sys.stdin:
        path = Path(line.strip())
        cfg = get_config(path.parent)
        os.chdir(cfg.nbs_path if cfg.nbs_path.exists() else path.parent)
        flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else cfg.tst_flags
        ok, seconds = test_nb(path, skip_flags=flags, basepath=cfg.config_path, save=True,
                              cell_timeout=int(cfg.cell_timeout) or None)
        replies.write(json.dumps({"ok": bool(ok), "seconds": seconds}) + "\n")


def report(jobs, record, wall):
    "Prints seconds per notebook and pass, writes them to `record`; True if every notebook passed."
    passes = list(dict.fromkeys(j.pass_name for j in jobs))
    seconds = {p: {j.name: round(j.seconds) for j in jobs if j.pass_name == p} for p in passes}
    longest = lambda name: max(s.get(name, 0) for s in seconds.values())
    names = sorted({j.name for j in jobs}, key=longest, reverse=True)
    print("\nseconds per notebook:\n" + f"{'notebook':34}" + "".join(f"{p:>9}" for p in passes))
    for n in names:
        print(f"{n:34}" + "".join(f"{seconds[p].get(n, '-'):>9}" for p in passes))
    print(f"{'sum':34}" + "".join(f"{sum(seconds[p].values()):>9}" for p in passes))
    print(f"{len(jobs)} notebook runs in {wall:.0f} s")
    if record:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        Path(record).write_text(json.dumps(seconds, indent=1) + "\n")
    failed = [f"{j.pass_name}: {j.path}" for j in jobs if not j.ok]
    if failed: print("FAIL: these notebooks failed (errors above):\n  " + "\n  ".join(failed))
    return not failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pass", dest="passes", nargs=2, action="append", default=[],
                    metavar=("NAME", "FOLDER"), help="a pass and the folder of its notebooks")
    ap.add_argument("--env", nargs=2, action="append", default=[], metavar=("NAME", "VARS"),
                    help="'VAR=VALUE ...' for that pass's worker processes")
    ap.add_argument("--skip", nargs=2, action="append", default=[], metavar=("NAME", "NOTEBOOKS"),
                    help="space-separated notebook names (no .ipynb) that pass leaves out")
    ap.add_argument("--first", nargs=2, action="append", default=[], metavar=("NAME", "COMMAND"),
                    help="a shell command that must succeed before that pass's notebooks start")
    ap.add_argument("--fresh", action="append", default=[], metavar="FOLDER",
                    help="the name of a folder whose notebooks each get a new process")
    ap.add_argument("--slots", type=int, default=2, help="notebooks running at once")
    ap.add_argument("--expected", help="the --record of an earlier run, which sets the order")
    ap.add_argument("--record", help="where to write the seconds of this run, by pass")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker is not None: return serve_notebooks(a.worker)
    expected = {}   # each notebook's longest time in the record of an earlier run
    for seconds in (json.loads(Path(a.expected).read_text()) if a.expected else {}).values():
        for name, s in seconds.items(): expected[name] = max(s, expected.get(name, 0))
    envs = {name: {} for name, _ in a.passes}
    for name, assignments in a.env:
        envs[name].update(v.split("=", 1) for v in shlex.split(assignments))
    skipped = {name: set(names.split()) for name, names in a.skip}
    fresh = set(a.fresh)
    jobs = [Job(name, path, expected.get(path.stem, float("inf")), bool(fresh & set(path.parts)))
            for name, folder in a.passes for path in notebooks(folder, skipped.get(name, ()))]
    start = time.time()
    Scheduler(jobs, envs, dict(a.first)).run(a.slots)
    return 0 if report(jobs, a.record, time.time() - start) else 1


if __name__ == "__main__":
    sys.exit(main())
