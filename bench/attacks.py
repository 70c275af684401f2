"""Lesson 4b (how nets learn, how to fool them), measured in a fresh interpreter in small mode: FGSM
and PGD success (untargeted, and targeted at "toaster") at ε = 1, 2 and 4 /255 on the real-photo set
with the shipped ImageNet EfficientNet-Lite0; clean and robust accuracy of lesson 4's net on real
MNIST 3s and 7s before and after adversarial training; the Fool the classifier app's latency through
its Python handlers (no browser); and the peak resident memory of the whole measuring process.

Run alone: `.venv/bin/python bench/attacks.py [--json out.json]`; `run()` returns the Markdown
section."""
import os, resource, sys, time

from fresh_process import MEMORY_LIMIT_MB, ROOT, goal, main, section

LEVELS = (1, 2, 4)
PGD_STEPS = 10
DEFENCE_EPS = 25 / 255


def measure(n_photos=18, app_moves=6):
    "Everything, in this process (call it in a fresh one: peak memory is this process's)."
    sys.path.insert(0, str(ROOT))
    import numpy as np, torch
    from htc_dl.attacks import (PixelModel, accuracy, fgsm, fooled, in_batches, pgd, photo_pixels,
                                robust_accuracy, top1, train_digits)
    from htc_dl.fool import fool_app
    from htc_dl.data import mnist_sample
    from htc_dl.deploy import PHOTOS, real_photos
    from htc_dl.pretrained import imagenet_labels, imagenet_model
    from htc_dl.sgd import simple_net, threes_and_sevens
    # as the lesson and the app run it: on a shared 2-core machine two threads wait for each other
    torch.set_num_threads(1)
    net, labels = PixelModel(imagenet_model()), imagenet_labels()
    photos = real_photos(PHOTOS[:n_photos])
    x = torch.stack([photo_pixels(a) for a in photos.values()])
    clean = top1(net, x)
    out = dict(photos=len(x), pgd_steps=PGD_STEPS, success={})
    for name, attack, label, targeted, kw in [
            ("FGSM", fgsm, clean, False, {}), ("PGD", pgd, clean, False, dict(steps=PGD_STEPS)),
            ("FGSM → toaster", fgsm, 859, True, {}),
            ("PGD → toaster", pgd, 859, True, dict(steps=PGD_STEPS))]:
        t = time.perf_counter()
        out["success"][name] = {
            str(l): float(fooled(net, in_batches(attack, net, x, label, eps=l / 255,
                                                 targeted=targeted, **kw),
                                 label, targeted).float().mean())
            for l in LEVELS}
        out["success"][name]["seconds"] = time.perf_counter() - t
    path = mnist_sample(size="small")
    (xt, yt), (xv, yv) = [(a, (1 - b[:, 0]).long()) for a, b in (threes_and_sevens(path, "train"),
                                                                 threes_and_sevens(path, "valid"))]
    digits = {}
    for name, kw in [("ordinary", {}),
                     ("adversarial", dict(attack=pgd, eps=DEFENCE_EPS, steps=5,
                                          step_size=DEFENCE_EPS / 4))]:
        torch.manual_seed(0)
        t, c = time.perf_counter(), time.process_time()
        m = train_digits(simple_net(n_out=2), xt, yt, epochs=15, **kw)
        digits[name] = dict(clean=accuracy(m, xv, yv),
                            robust=robust_accuracy(m, xv, yv, DEFENCE_EPS),
                            train_s=time.perf_counter() - t, train_cpu_s=time.process_time() - c)
    out["digits"], out["digit_counts"] = digits, (len(xt), len(xv))
    app = fool_app(net, labels)
    for level in range(1, app_moves + 1): app.eps.value = level % 5 + 1
    fgsm_times = sorted(app.timings[1:])
    app.method.value = "PGD"
    out["app_fgsm_p50_ms"], out["app_fgsm_max_ms"] = (1000 * fgsm_times[len(fgsm_times) // 2],
                                                      1000 * fgsm_times[-1])
    out["app_pgd_ms"] = 1000 * app.timings[-1]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_average"] = os.getloadavg()[0]
    return out


def render(m):
    "The Markdown section for bench/RESULTS.md."
    ok = lambda good: "yes" if good else "**no**"
    head = ("| attack | " + " | ".join(f"ε = {l}/255" for l in LEVELS) + " | seconds |\n|---|"
            + "---|" * (len(LEVELS) + 1))
    attack_rows = "\n".join(f"| {name} | " + " | ".join(f"{s[str(l)]:.0%}" for l in LEVELS)
                            + f" | {s['seconds']:.0f} |"
                            for name, s in m["success"].items())
    d = m["digits"]
    rows = [
        ("MNIST 3 vs 7, clean accuracy: ordinary / adversarial training",
         f"{d['ordinary']['clean']:.1%} / {d['adversarial']['clean']:.1%}",
         f"costs {(d['ordinary']['clean'] - d['adversarial']['clean']) * 100:.1f} points"),
        (f"MNIST 3 vs 7, robust accuracy (10-step PGD, ε = {DEFENCE_EPS * 255:.0f}/255)",
         f"{d['ordinary']['robust']:.1%} / {d['adversarial']['robust']:.1%}",
         ok(d["adversarial"]["robust"] > d["ordinary"]["robust"]) + " (improves)"),
        ("train both digit models (one thread)",
         f"{d['ordinary']['train_s']:.1f} s + {d['adversarial']['train_s']:.1f} s wall", "-"),
        ("app: FGSM answer (handler: attack + top-3 + 3 PNGs)",
         f"p50 {m['app_fgsm_p50_ms']:.0f} ms, max {m['app_fgsm_max_ms']:.0f} ms",
         ok(m["app_fgsm_max_ms"] < 1000) + " (< 1 s)"),
        (f"app: PGD answer ({m['pgd_steps']} steps)", f"{m['app_pgd_ms']:.0f} ms", "progress bar"),
        ("peak resident memory of this measurement", f"{m['peak_rss_mb']:.0f} MB",
         ok(m["peak_rss_mb"] <= MEMORY_LIMIT_MB) + " (<= 1.5 GB)"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return (f"## Adversarial examples (lesson 4b, small mode)\n\nShare of {m['photos']} real "
            "photos (scikit-image's bundled set) whose top-1 class the attack changed "
            "(untargeted) or made \"toaster\" (targeted), shipped ImageNet EfficientNet-Lite0, "
            f"PGD with {m['pgd_steps']} steps; 1-minute load average {m['load_average']:.1f} on "
            f"{os.cpu_count()} cores while "
            f"measuring.\n\n{head}\n{attack_rows}\n\n{m['digit_counts'][0]:,} training / "
            f"{m['digit_counts'][1]:,} validation real MNIST 3s and 7s, lesson 4's "
            f"simple_net.\n\n| what | measured | meets the target |\n|---|---|---|\n{table}\n")


def goals(m):
    "This section's rows of the goals table."
    d = m["digits"]
    return [goal("Fool the classifier: FGSM answer", "< 1 s", f"max {m['app_fgsm_max_ms']:.0f} ms",
                 m["app_fgsm_max_ms"] < 1000),
            goal("adversarial training raises robust accuracy (3 vs 7)",
                 "higher than ordinary training",
                 f"{d['ordinary']['robust']:.1%} -> {d['adversarial']['robust']:.1%}",
                 d["adversarial"]["robust"] > d["ordinary"]["robust"])]


def run(timeout=900):
    """Measure in a fresh interpreter (small mode, offline copies allowed): the section and its
    goals."""
    return section(__file__, "Adversarial examples (lesson 4b)", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
