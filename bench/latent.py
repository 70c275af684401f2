"""Lesson 6e (latent spaces), measured in a fresh interpreter in small mode: the autoencoder's and
the VAE's valid reconstruction error against PCA with the same number of numbers per digit, the
app's VAE's valid ELBO, how long the app's model takes to train (wall and CPU, one thread, as the
app trains it on first launch), the Digit mixer's redraw latency through its Python handlers (no
browser), and the peak resident memory of the whole measuring process.

Run alone: `.venv/bin/python bench/latent.py [--json out.json]`; `run()` returns the Markdown
section."""
import os, resource, sys, time

from fresh_process import MEMORY_LIMIT_MB, ROOT, goal, main, section



def measure(n_moves=60):
    "Everything, in this process (call it in a fresh one: peak memory is this process's)."
    sys.path.insert(0, str(ROOT))
    import numpy as np, torch
    torch.set_num_threads(1)
    from htc_dl.data import mnist
    from htc_dl.latent import (DIGITS_PER_CLASS, Autoencoder, autoencoder_loss, fit_pca,
                               load_digits, pca_reconstruct, reconstruction_error, train)
    from htc_dl.digit_mixer import digit_mixer_app, train_mixer
    path = mnist(size="small")
    n_train, n_valid = DIGITS_PER_CLASS["small"]
    x_train, _ = load_digits(path, "training", n_train)
    x_valid, _ = load_digits(path, "testing", n_valid)
    out = dict(data=f"{len(x_train):,} training / {len(x_valid):,} validation digits from "
                    f"{path.name}")
    pca = lambda k: reconstruction_error(x_valid, pca_reconstruct(x_valid, *fit_pca(x_train, k)))
    torch.manual_seed(0)
    t, c = time.perf_counter(), time.process_time()
    ae, _ = train(Autoencoder(8), autoencoder_loss, x_train, epochs=20, lr=2e-3, progress=False)
    out["ae_train_s"], out["ae_train_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    with torch.no_grad(): out["ae8_error"] = reconstruction_error(x_valid, ae(x_valid))
    out["pca8_error"] = pca(8)
    mixer = train_mixer(size="small")
    with torch.no_grad():
        out["vae_error"] = reconstruction_error(x_valid, mixer.vae.decode(mixer.codes))
    out["n_latent"], out[f"pca_vae_error"] = mixer.vae.n_latent, pca(mixer.vae.n_latent)
    out.update({f"mixer_{k}": v for k, v in mixer.about.items()})
    app = digit_mixer_app(mixer)
    rng = np.random.default_rng(0)
    # a slider or the morph moved: each move is one redraw (decode, classify, PNG)
    for i in range(n_moves):
        target = app.morph if i % 4 == 0 else app.sliders[i % len(app.sliders)]
        target.value = float(round(rng.uniform(target.min, target.max) / target.step) * target.step)
    times = sorted(app.timings[1:])
    out["redraw_p50_ms"], out["redraw_p95_ms"], out["redraws"] = \
        times[len(times) // 2], times[int(0.95 * (len(times) - 1))], len(times)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_average"] = os.getloadavg()[0]
    return out


def render(m):
    "The Markdown section for bench/RESULTS.md."
    ok = lambda good: "yes" if good else "**no**"
    rows = [
        ("valid reconstruction error, 8 numbers per digit: PCA / autoencoder",
         f"{m['pca8_error']:.4f} / {m['ae8_error']:.4f}", ok(m["ae8_error"] < m["pca8_error"])),
        (f"valid reconstruction error, {m['n_latent']} numbers: PCA / VAE",
         f"{m['pca_vae_error']:.4f} / {m['vae_error']:.4f}",
         ok(m["vae_error"] < m["pca_vae_error"])),
        (f"app's VAE ({m['n_latent']} latent numbers): valid ELBO",
         f"{m['mixer_valid_elbo']:.1f} nats per digit", "reported"),
        ("classifier (lesson 4's simple_net): real validation digits read right",
         f"{m['mixer_classifier_accuracy']:.1%}", "-"),
        ("classifier on the VAE's redrawings of them", f"{m['mixer_redrawings_recognised']:.1%}",
         ok(m["mixer_redrawings_recognised"] >= 0.9) + " (>= 90%)"),
        ("train the app's model (VAE + classifier), one thread",
         f"{m['mixer_train_s']:.0f} s wall, {m['mixer_train_cpu_s']:.0f} s CPU",
         ok(m["mixer_train_cpu_s"] <= 60) + " (<= 60 s of CPU; wall time stretches with the load)"),
        ("train the lesson's autoencoder",
         f"{m['ae_train_s']:.0f} s wall, {m['ae_train_cpu_s']:.0f} s CPU", "-"),
        ("Digit mixer redraw (handler: decode + classify + PNG)",
         f"p50 {m['redraw_p50_ms']:.1f} ms, p95 {m['redraw_p95_ms']:.1f} ms (n={m['redraws']})",
         ok(m["redraw_p95_ms"] < 100) + " (< 100 ms)"),
        ("peak resident memory of this measurement", f"{m['peak_rss_mb']:.0f} MB",
         ok(m["peak_rss_mb"] <= MEMORY_LIMIT_MB) + " (<= 1.5 GB)"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return (f"## Latent spaces (lesson 6e, small mode)\n\n{m['data']}; 1-minute load average "
            f"{m['load_average']:.1f} on {os.cpu_count()} cores while measuring (wall times "
            "stretch with load, CPU seconds much less).\n\n"
            f"| what | measured | meets the target |\n|---|---|---|\n{table}\n")


def goals(m):
    "This section's rows of the goals table."
    return [goal("Digit mixer redraw (p95)", "< 100 ms", f"{m['redraw_p95_ms']:.1f} ms",
                 m["redraw_p95_ms"] < 100),
            goal("Digit mixer's model trains on first launch", "<= 60 s of CPU",
                 f"{m['mixer_train_cpu_s']:.0f} s", m["mixer_train_cpu_s"] <= 60)]


def run(timeout=900):
    """Measure in a fresh interpreter (small mode, offline copies allowed): the section and its
    goals."""
    return section(__file__, "Latent spaces (lesson 6e)", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
