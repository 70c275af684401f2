"""Execute lesson notebooks with nbclient: wall time, peak memory of the kernel itself and of its
process tree, and named values read from the kernel's namespace after the last cell (one execution
serves the run-time and quality tables)."""
import json, os, re, threading, time
from pathlib import Path

import nbformat, psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

from memory import binder_exports, cuda_library_bytes

MARK = "__BENCH_VALUES__"
SOURCE_LINE = re.compile(r"^(\w+): (offline copy \([^)]*\)|real data set \([^)]*\))", re.M)


class TreeMemory:
    """Sample the summed RSS of a process and all its children every `every` seconds and keep the
    peak; also the CPU seconds (user + system) each process of the tree used since the start (less
    sensitive than wall time to other jobs)."""
    def __init__(self, pid, every=0.2):
        self.pid, self.every, self.peak, self._stop = pid, every, 0, threading.Event()
        # the kernel process alone: the figure Binder's limit applies to (workers share its pages)
        self.kernel_peak = 0
        # its resident pages of CUDA-only libraries then (Binder's PyTorch has none)
        self.cuda_at_kernel_peak = 0
        self._cpu_start, self._cpu_last = {}, {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error: return 0
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
                total += rss
                if p.pid == self.pid and rss > self.kernel_peak:
                    self.kernel_peak, self.cuda_at_kernel_peak = rss, cuda_library_bytes(p.pid)
                t = p.cpu_times(); used = t.user + t.system
                # children: count from their birth
                self._cpu_start.setdefault(p.pid, used if p.pid == self.pid else 0.0)
                self._cpu_last[p.pid] = used
            except psutil.Error: pass
        return total

    @property
    def cpu_s(self): return sum(self._cpu_last[p] - self._cpu_start[p] for p in self._cpu_last)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.every)

    def __enter__(self): self._thread.start(); return self
    def __exit__(self, *exc):
        self._stop.set(); self._thread.join()
        self.peak = max(self.peak, self.sample())


def _flags(source):
    "The `#| ...` directives at the top of a cell, e.g. {'notest', 'eval: false'}."
    flags = set()
    for line in source.splitlines():
        line = line.strip()
        if not line.startswith("#|"): break
        flags.add(line[2:].strip().lower())
    return flags


def skip_cell(cell, run_notest=False):
    "Cells `make test` does not run either: `#| notest`, `#| eval: false`."
    if cell.cell_type != "code": return True
    flags = _flags(cell.source)
    return "eval: false" in flags or (not run_notest and "notest" in flags)


def values_cell(expressions):
    """Source of the extra cell: evaluate each expression in the notebook's namespace and print them
    as JSON."""
    return f"""
import json as _bench_json, math as _bench_math, resource as _bench_resource
def _bench_value(_x):
    try:
        import torch as _t
        if isinstance(_x, _t.Tensor): _x = _x.item() if _x.numel() == 1 else _x.tolist()
    except ImportError: pass
    if hasattr(_x, 'item') and not isinstance(_x, (list, tuple, dict, str)):
        try: _x = _x.item()
        except Exception: pass
    if isinstance(_x, float) and not _bench_math.isfinite(_x): return str(_x)
    if isinstance(_x, (int, float, str, bool, type(None))): return _x
    if isinstance(_x, (list, tuple)): return [_bench_value(_v) for _v in _x]
    if isinstance(_x, dict): return {{str(_k): _bench_value(_v) for _k, _v in _x.items()}}
    return repr(_x)[:200]
_bench_out = {{}}
for _bench_e in {list(expressions)!r}:
    try: _bench_out[_bench_e] = _bench_value(eval(_bench_e))
    except Exception as _bench_err: _bench_out[_bench_e] = {{'not_found': \
type(_bench_err).__name__ + ': ' + str(_bench_err)[:120]}}
_bench_out['__kernel_maxrss_kib__'] = \
_bench_resource.getrusage(_bench_resource.RUSAGE_SELF).ru_maxrss
print({MARK!r} + _bench_json.dumps(_bench_out))
"""


def _stdout(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream")


def run_notebook(path, small, budget_s, expressions=(), run_notest=False, sample_every=0.2):
    """Execute notebook `path` in a fresh kernel (HTC_DL_SMALL=1 if `small` else 0) with at most
    `budget_s` seconds for all its cells. Returns a dict: status ('ok', 'error', 'timeout', 'dead'),
    wall_s, peak_rss_mib, cells run and skipped, the failing cell, data sources printed by
    htc_dl.data, and the values of `expressions`."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # the kernel inherits this process's environment
    os.environ["HTC_DL_SMALL"] = "1" if small else "0"
    # as Binder runs kernels (binder/start), so the peak is Binder's
    os.environ.update(binder_exports())
    root = str(path.resolve().parent.parent)   # this checkout's htc_dl, installed or not
    if root not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [root, os.environ.get("PYTHONPATH")]))
    res = dict(notebook=path.name, mode="small" if small else "full", status="ok",
               budget_s=budget_s, values={})
    deadline = [None]
    def remaining(cell=None):
        return max(1, int(deadline[0] - time.monotonic())) if deadline[0] else budget_s
    client = NotebookClient(nb, timeout_func=remaining, kernel_name="python3",
                            interrupt_on_timeout=True,
                            error_on_timeout={"ename": "BenchTimeout",
                                              "evalue": f"notebook budget of {budget_s} s used up",
                                              "traceback": []},
                            resources={"metadata": {"path": str(path.parent)}})
    t_kernel = time.monotonic()
    ran = skipped = 0
    with client.setup_kernel():
        client.wait_for_reply(client.kc.kernel_info())
        res["kernel_start_s"] = round(time.monotonic() - t_kernel, 2)
        pid = getattr(client.km.provisioner, "pid", None) or client.km.provisioner.process.pid
        t0 = time.monotonic(); deadline[0] = t0 + budget_s
        with TreeMemory(pid, sample_every) as mem:
            for index, cell in enumerate(nb.cells):
                if skip_cell(cell, run_notest):
                    skipped += cell.cell_type == "code"; continue
                if time.monotonic() >= deadline[0]:
                    res.update(status="timeout", failed_cell=index,
                               error=f"budget of {budget_s} s used up")
                    break
                try:
                    client.execute_cell(cell, index, execution_count=ran + 1); ran += 1
                except CellExecutionError as e:
                    ename = getattr(e, "ename", "") or type(e).__name__
                    if ename == "BenchTimeout" or time.monotonic() >= deadline[0]:
                        res.update(status="timeout", failed_cell=index,
                                   error=f"budget of {budget_s} s used up")
                    else:
                        evalue = re.sub(r"\x1b\[[0-9;]*m", "", str(getattr(e, "evalue", "")))
                        res.update(status="error", failed_cell=index,
                                   error=f"{ename}: {evalue}"[:300])
                    break
                except DeadKernelError as e:
                    res.update(status="dead", failed_cell=index, error=f"kernel died: {e}"[:300])
                    break
            res["wall_s"] = round(time.monotonic() - t0, 2)
        # summed over the tree: double-counts shared pages
        res["peak_rss_mib"] = round(mem.peak / 2**20)
        # the kernel alone (see bench/memory.py)
        res["kernel_peak_mib"] = round(mem.kernel_peak / 2**20)
        res["binder_peak_mib"] = round((mem.kernel_peak - mem.cuda_at_kernel_peak) / 2**20)
        res["cpu_s"] = round(mem.cpu_s, 1)
        res.update(cells_run=ran, cells_skipped=skipped)
        text = "\n".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
        res["sources"] = dict(SOURCE_LINE.findall(text))
        if res["status"] != "dead":
            extra = nbformat.v4.new_code_cell(values_cell(expressions))
            nb.cells.append(extra)
            deadline[0] = time.monotonic() + 60
            try:
                client.execute_cell(extra, len(nb.cells) - 1)
                line = next(l for l in _stdout(extra).splitlines() if l.startswith(MARK))
                values = json.loads(line[len(MARK):])
                kib = values.pop("__kernel_maxrss_kib__", None)
                if kib: res["kernel_maxrss_mib"] = round(kib / 1024)
                res["values"] = values
            except Exception as e:
                res["values_error"] = f"{type(e).__name__}: {e}"[:300]
    return res


# python bench/notebooks.py nbs/lessons/03b_mnist_basics.ipynb [small|full] [budget_s]
if __name__ == "__main__":
    import sys
    from quality import expressions_for
    nb_path = Path(sys.argv[1])
    out = run_notebook(nb_path, (sys.argv[2:3] or ["small"])[0] == "small",
                       int((sys.argv[3:4] or [600])[0]), expressions_for(nb_path.name))
    print(json.dumps(out, indent=1))
