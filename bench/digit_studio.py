"""The Digit studio app (a VAE and a GAN side by side), measured in a fresh interpreter in small
mode: how long its first launch takes to train and save both models (wall and CPU, one thread), how
long a later launch takes to load them, the redraw latency of each model through the app's Python
handlers (no browser) as the sliders move, and the peak resident memory of the measuring process.

Alone: `.venv/bin/python bench/digit_studio.py [--json out.json]`; `run()` returns the section."""
import os, resource, shutil, sys, tempfile, time

from fresh_process import MEMORY_LIMIT_MB, ROOT, goal, main, section


def timed(work):
    "(`work()`, wall seconds, CPU seconds)."
    t, c = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - t, time.process_time() - c


def percentile(times, q):
    "The `q` quantile (0-1) of `times`, nearest rank below."
    s = sorted(times)
    return s[int(q * (len(s) - 1))]


def measure(n_moves=60):
    "Everything, in this process (call it in a fresh one: peak memory is this process's)."
    sys.path.insert(0, str(ROOT))
    import numpy as np, torch
    torch.set_num_threads(1)
    from htc_dl.digit_studio import cached_studio, digit_studio_app
    folder = tempfile.mkdtemp(prefix="digit-studio-bench-")   # a first launch: nothing saved yet
    (studio, first_note), train_s, train_cpu_s = timed(lambda: cached_studio(folder, size="small"))
    (studio, again_note), load_s, load_cpu_s = timed(lambda: cached_studio(folder, size="small"))
    assert "trained now" in first_note and "trained now" not in again_note, (first_note, again_note)
    out = dict(train_s=train_s, train_cpu_s=train_cpu_s, load_s=load_s, load_cpu_s=load_cpu_s,
               n_latent={name: m.n_latent for name, m in studio.models.items()},
               trained_on=studio.models["VAE"].about.get("trained_on", "MNIST"))
    app = digit_studio_app(studio)
    for times in app.timings.values(): times.clear()         # the first drawing, not a slider move
    rng = np.random.default_rng(0)
    for i in range(n_moves):   # one slider moved: both models redraw (decode, classify, PNG)
        slider = app.sliders[i % len(app.sliders)]
        slider.value = float(round(rng.uniform(slider.min, slider.max) / slider.step) * slider.step)
        if i % 10 == 9: app.panels["GAN" if i % 20 == 19 else "VAE"].sample.click()
    for name, times in app.timings.items():
        out[f"{name}_p50_ms"] = percentile(times, 0.5)
        out[f"{name}_p95_ms"] = percentile(times, 0.95)
        out[f"{name}_redraws"] = len(times)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_average"] = os.getloadavg()[0]
    shutil.rmtree(folder, ignore_errors=True)
    return out


def render(m):
    "The Markdown section for bench/RESULTS.md."
    ok = lambda good: "yes" if good else "**no**"
    rows = [(f"{name} redraw (handler: decode + classify + PNG)",
             f"p50 {m[f'{name}_p50_ms']:.1f} ms, p95 {m[f'{name}_p95_ms']:.1f} ms "
             f"(n={m[f'{name}_redraws']})",
             ok(m[f"{name}_p95_ms"] <= 100) + " (<= 100 ms)") for name in ("VAE", "GAN")]
    rows += [("first launch: train and save the VAE, the classifier and the GAN, one thread",
              f"{m['train_s']:.0f} s wall, {m['train_cpu_s']:.0f} s CPU", "reported"),
             ("later launch: load them",
              f"{m['load_s']:.2f} s wall, {m['load_cpu_s']:.2f} s CPU", "-"),
             ("peak resident memory of this measurement", f"{m['peak_rss_mb']:.0f} MB",
              ok(m["peak_rss_mb"] <= MEMORY_LIMIT_MB) + " (<= 1.5 GB)")]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    latent = ", ".join(f"{name} {n}" for name, n in m["n_latent"].items())
    return (f"## Digit studio (a VAE and a GAN side by side, small mode)\n\n"
            f"Models trained on {m['trained_on']}; latent numbers: {latent}. 1-minute load average "
            f"{m['load_average']:.1f} on {os.cpu_count()} cores while measuring (wall times "
            "stretch with load, CPU seconds much less).\n\n"
            f"| what | measured | meets the target |\n|---|---|---|\n{table}\n")


def goals(m):
    "This section's rows of the goals table."
    return [goal(f"Digit studio {name} redraw (p95)", "<= 100 ms", f"{m[f'{name}_p95_ms']:.1f} ms",
                 m[f"{name}_p95_ms"] <= 100) for name in ("VAE", "GAN")]


def run(timeout=900):
    "Measure in a fresh interpreter (small mode, offline copies allowed): section and goals."
    return section(__file__, "Digit studio", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
