"""Peak resident memory of the kernel process itself, for every lesson/support notebook and every
app notebook, in small mode, offline and (when a simulated-online server is given) online.

App notebooks run every cell, as Voila does, and the reading ends only once an app that loads its
model behind its page (a thread named `htc_dl.app_toolkit.LOADING_THREAD`) has finished loading it.

What is measured: the RSS of the kernel's own process (psutil, sampled every 0.1 s, plus the
kernel's own `ru_maxrss` read at the end), never a sum over DataLoader workers, which share most of
their pages with the kernel and would be counted twice. That is the figure Binder's ~2 GB limit
applies to, and the one `/usr/bin/time -f %M jupyter nbconvert --execute` reports (the largest
process). The limit checked is 1.5 GB, here and for Binder's CPU-only PyTorch: the same peak less
the kernel's resident pages of the CUDA-only libraries this machine's PyTorch build maps.

Run alone:
    .venv/bin/python bench/memory.py [--modes offline,online] [--only 05,06a] [--per-cell]
        [--url-base URL] [--budget-s S]
`make bench` measures the online mode here (its notebook pass measures the offline one); with
`--budget-s` it starts no notebook after that many seconds and lists the ones it did not measure.
`online` needs the simulated-online server (tests/online/serve.py); without `--url-base` it starts
one itself on a free port, building (or reusing) the archives in `test-output/online-archives`.
"""
import argparse, os, re, subprocess, sys, tempfile, threading, time
from pathlib import Path

import nbformat, psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MIB = 1430   # 1.5 GB (1.5e9 bytes)
APPS = ROOT/"nbs"/"apps"


# Shared libraries only the CUDA build of PyTorch loads. Binder installs the CPU-only build
# (binder/requirements.txt), which has none of them, so their resident pages are subtracted for the
# Binder column.
CUDA_ONLY_LIBS = re.compile(r"/nvidia/|/triton/|/lib(torch_cuda|c10_cuda|cudnn|cublas|nccl|"
                            r"cusparse|nvrtc|nvJitLink)[^/]*\.so")


def cuda_library_bytes(pid):
    """Resident bytes of process `pid` in files mapped from CUDA-only shared libraries (0 with a
    CPU-only PyTorch)."""
    total, counting = 0, False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    counting = bool(CUDA_ONLY_LIBS.search(line))
                elif counting and line.startswith("Rss:"): total += int(line.split()[1]) * 1024
    except OSError: return 0
    return total


def anonymous_bytes(pid):
    """RssAnon of process `pid`: the memory it allocated itself, which no cached library file adds
    to (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(l.split()[1]) * 1024 for l in f if l.startswith("RssAnon:")), 0)
    except OSError: return 0


class KernelPeak:
    """Sample one process's RSS every `every` seconds; `peak` is the largest seen (with
    `cuda_at_peak`, its CUDA-library part), `anon_peak` the largest RssAnon, `cell_peaks` the
    largest RSS per cell."""
    def __init__(self, pid, every=0.1):
        self.proc, self.every, self.peak, self.cuda_at_peak, self.current_cell = (
            psutil.Process(pid), every, 0, 0, None)
        self.anon_peak = 0
        self.cell_peaks, self._stop = {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        try: rss = self.proc.memory_info().rss
        except psutil.Error: return
        if rss > self.peak: self.peak, self.cuda_at_peak = rss, cuda_library_bytes(self.proc.pid)
        self.anon_peak = max(self.anon_peak, anonymous_bytes(self.proc.pid))
        if self.current_cell is not None:
            self.cell_peaks[self.current_cell] = max(self.cell_peaks.get(self.current_cell, 0), rss)

    def _run(self):
        while not self._stop.is_set(): self.sample(); self._stop.wait(self.every)

    def __enter__(self): self._thread.start(); return self
    def __exit__(self, *exc): self._stop.set(); self._thread.join(); self.sample()


# imports nothing new into the kernel (that would add to its peak): without the app toolkit loaded,
# no app is loading
WAIT_FOR_APP_LOADING = ("import sys, threading\napps = sys.modules.get('htc_dl.app_toolkit')\n"
                        "for t in threading.enumerate():\n"
                        "    if apps and t.name == apps.LOADING_THREAD: t.join(600)")


def _skip(cell, app=False):
    "Cells nbdev-test skips; Voila runs every code cell of an app."
    if cell.cell_type != "code": return True
    if app: return False
    flags = {l.strip()[2:].strip() for l in cell.source.splitlines() if l.strip().startswith("#|")}
    return "eval: false" in flags or "notest" in flags


def binder_exports(start=ROOT/"binder"/"start"):
    """The environment variables binder/start exports (Binder runs it before Jupyter, so every
    kernel there has them)."""
    return dict(line[len("export "):].split("=", 1) for line in start.read_text().splitlines()
                if line.startswith("export "))


def measure(path, env=None, timeout=900):
    """Execute notebook `path` in a fresh kernel with `env`; returns dict(status, peak_mib,
    maxrss_mib, wall_s, cells, error)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update({"HTC_DL_SMALL": "1", "PYTHONPATH": os.pathsep.join(
                           filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    os.environ.update(binder_exports())   # measure the kernel as Binder runs it
    os.environ.update(env or {})
    res = dict(notebook=str(path.relative_to(ROOT)), status="ok", error="")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.monotonic()
    try:
        with client.setup_kernel():
            client.wait_for_reply(client.kc.kernel_info())
            pid = getattr(client.km.provisioner, "pid", None) or client.km.provisioner.process.pid
            with KernelPeak(pid) as mem:
                for index, cell in enumerate(nb.cells):
                    if _skip(cell, app=APPS in path.parents): continue
                    mem.current_cell = index
                    try: client.execute_cell(cell, index)
                    except CellExecutionError as e:
                        res.update(status="error",
                                   error=f"cell {index}: {getattr(e, 'ename', '')}: "
                                         f"{str(getattr(e, 'evalue', ''))[:200]}")
                        break
                    except DeadKernelError as e:
                        res.update(status="dead", error=f"cell {index}: kernel died ({e})"[:300])
                        break
                if res["status"] != "dead":
                    # an app that shows its page first loads its model in a thread after the last
                    # cell: count that too
                    settle = nbformat.v4.new_code_cell(WAIT_FOR_APP_LOADING)
                    nb.cells.append(settle)
                    try: client.execute_cell(settle, len(nb.cells) - 1)
                    except CellExecutionError as e:
                        res.update(status="error", error=f"waiting for the app's model: "
                                                         f"{getattr(e, 'evalue', e)}"[:300])
                    probe = nbformat.v4.new_code_cell("import resource; print(resource.getrusage("
                                                      "resource.RUSAGE_SELF).ru_maxrss)")
                    nb.cells.append(probe); mem.current_cell = None
                    try:
                        client.execute_cell(probe, len(nb.cells) - 1)
                        res["maxrss_mib"] = round(int(probe.outputs[0]["text"].split()[-1]) / 1024)
                    except Exception: pass
        res["peak_mib"] = round(max(mem.peak / 2**20, res.get("maxrss_mib", 0)))
        res["binder_mib"] = res["peak_mib"] - round(mem.cuda_at_peak / 2**20)
        res["anon_mib"] = round(mem.anon_peak / 2**20)
        res["cells"] = {i: round(v / 2**20) for i, v in mem.cell_peaks.items()}
    finally:
        os.environ.clear(); os.environ.update(saved)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    return res


def notebooks():
    """Every lesson and support notebook, then every app notebook (gallery included), in the order
    CI runs them."""
    return (sorted((ROOT/"nbs").glob("core/*.ipynb")) + sorted((ROOT/"nbs").glob("lessons/*.ipynb"))
            + sorted(APPS.glob("*.ipynb")))


def start_online_server(port=None):
    "Start tests/online/serve.py (building or reusing its archives); returns (process, base URL)."
    sys.path.insert(0, str(ROOT/"tests"/"online"))
    import serve
    port = port or serve.free_port()
    archives = ROOT/"test-output"/"online-archives"
    proc = subprocess.Popen([sys.executable, str(ROOT/"tests"/"online"/"serve.py"),
                             "--build", str(archives), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    serve.wait_until_serving(base, proc, timeout=1800)
    return proc, base


def _within(by_mode, key, modes):
    "yes or **no** over the modes measured, naming them when the budget left some out."
    measured = [m for m in modes if by_mode.get(m)]
    if not measured: return "-"
    ok = all(by_mode[m]["status"] == "ok" and by_mode[m][key] <= LIMIT_MIB for m in measured)
    return (("yes" if ok else "**no**")
            + (f" ({', '.join(measured)} only)" if len(measured) < len(modes) else ""))


def table(rows, modes):
    """The markdown table: per mode, the peak here and without the CUDA libraries (Binder's CPU-only
    PyTorch); within the limit?"""
    head = ("| notebook | "
            + " | ".join(f"peak MiB here ({m}) | on Binder's CPU-only PyTorch ({m})" for m in modes)
            + f" | anonymous MiB ({modes[0]}) | time s ({modes[0]}) | within 1.5 GB here"
              " | within 1.5 GB on Binder |")
    lines = [head, "|" + "---|" * (2 * len(modes) + 5)]
    for name, by_mode in rows.items():
        cells = []
        for m in modes:
            r = by_mode.get(m)
            if r is None: cells += ["-", "-"]
            elif r["status"] != "ok":
                cells += [f"{r['peak_mib']:,} ({r['status']}: {r['error'][:60]})", "-"]
            else: cells += [f"{r['peak_mib']:,}", f"{r['binder_mib']:,}"]
        first = by_mode.get(modes[0])
        lines.append(
            f"| {name} | " + " | ".join(cells)
            + f" | {format(first['anon_mib'], ',') if first and 'anon_mib' in first else '-'}"
              f" | {first['wall_s'] if first else '-'} | "
            + " | ".join(_within(by_mode, k, modes) for k in ("peak_mib", "binder_mib")) + " |")
    return "\n".join(lines)


def run(modes=("offline", "online"), only=None, url_base=None, per_cell=False, echo=print,
        budget_s=None) -> dict:
    """Measure every notebook in each mode: dict(markdown=the section, goals=[its goals-table row]);
    past `budget_s` seconds, start no more."""
    paths = [p for p in notebooks() if not only or any(p.stem.startswith(o) for o in only)]
    deadline = time.monotonic() + budget_s if budget_s else float("inf")
    skipped = []
    server = None
    if "online" in modes and not url_base: server, url_base = start_online_server()
    rows = {}
    try:
        with tempfile.TemporaryDirectory(prefix="htc_dl-bench-memory-") as tmp:
            envs = {"offline": dict(HTC_DL_OFFLINE="1", HTC_DL_DATA=f"{tmp}/offline",
                                    HTC_DL_MODELS=f"{tmp}/offline-models"),
                    "online": dict(HTC_DL_OFFLINE="0", HTC_DL_URL_BASE=url_base or "",
                                   HTC_DL_DATA=f"{tmp}/online",
                                   HTC_DL_MODELS=f"{tmp}/online-models")}
            for p in paths:
                name = str(p.relative_to(ROOT/"nbs"))
                for m in modes:
                    if time.monotonic() > deadline: skipped.append(f"{name} ({m})"); continue
                    r = measure(p, envs[m])
                    rows.setdefault(name, {})[m] = r
                    echo(f"{name:40} {m:8} {r['peak_mib']:6,} MiB (CPU-only PyTorch: "
                         f"{r['binder_mib']:6,})  {r['wall_s']:6.1f} s  {r['status']} {r['error']}")
                    if per_cell:
                        echo("   per cell (index: MiB): "
                             + ", ".join(f"{i}: {v}" for i, v in r["cells"].items()))
    finally:
        if server: server.terminate(); server.wait(10)
    load = os.getloadavg()
    not_measured = (f"\n\n**Not measured, the budget of {budget_s:.0f} s ran out:** "
                    f"{', '.join(skipped)}. "
                    "`python bench/memory.py --only NAMES` measures the rest." if skipped else "")
    markdown = ("## Peak memory of each kernel (small mode)\n\n"
            "Resident memory of the kernel process itself (psutil every 0.1 s "
            "and its own ru_maxrss), not summed over DataLoader workers, with binder/start's "
            f"environment ({', '.join(f'{k}={v}' for k, v in binder_exports().items())}), "
            f"as on Binder. Limit: 1.5 GB = {LIMIT_MIB:,} MiB (Binder gives about 2 GB in all). "
            "This machine has PyTorch's CUDA build; Binder installs the CPU-only build "
            "(binder/requirements.txt), which does not load the CUDA libraries, so the Binder "
            "column is the peak minus the kernel's resident pages of those libraries at that "
            "moment (/proc/PID/smaps: nvidia/*, libtorch_cuda, triton). \"Anonymous\" is the "
            "largest RssAnon, the memory the kernel allocated itself; the rest of the resident "
            "memory is pages of library files, which varies with the machine (two fresh build "
            "machines read 230 and 383 MiB of CUDA-library pages after the same "
            "`import torch`) and which the kernel gives back under memory pressure. "
            f"Load average at the end: {load[0]:.2f}.\n\n" + table(rows, list(modes)) + not_measured
            + "\n")
    return dict(markdown=markdown, goals=[memory_goal(rows, modes, skipped)])


def memory_goal(rows, modes, skipped=()):
    "The goals-table row: the largest kernel on Binder's CPU-only PyTorch, against 1.5 GB."
    measured = [(r["binder_mib"], f"{name} ({m})") for name, by_mode in rows.items()
                for m, r in by_mode.items() if r.get("status") == "ok"]
    failed = [f"{name} ({m})" for name, by_mode in rows.items() for m, r in by_mode.items()
              if r.get("status") != "ok"]
    if not measured: return dict(goal=f"every kernel fits Binder ({', '.join(modes)})",
                                 target="<= 1.5 GB", measured="not measured", met=None)
    peak, where = max(measured)
    gaps = ((f"; {len(failed)} failed" if failed else "")
            + (f"; {len(skipped)} not measured (budget)" if skipped else ""))
    return dict(goal=f"every notebook and app kernel fits Binder, small mode ({', '.join(modes)})",
                target=f"<= 1.5 GB ({LIMIT_MIB:,} MiB)",
                measured=f"largest {peak:,} MiB: {where}{gaps}",
                met=peak <= LIMIT_MIB and not failed and not skipped)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="offline,online"); ap.add_argument("--only")
    ap.add_argument("--url-base")
    ap.add_argument("--per-cell", action="store_true"); ap.add_argument("--budget-s", type=float)
    a = ap.parse_args()
    print(run(tuple(a.modes.split(",")), a.only.split(",") if a.only else None, a.url_base,
              a.per_cell, budget_s=a.budget_s)["markdown"])
