"""Lesson 6h (GANs beside VAEs), measured in a fresh interpreter in small mode: the app's GAN
(htc_dl.gans, trained as the app trains it on first launch) against the Digit mixer's VAE at the
same latent size, judged by the classifier on the same held-out real digits (recognisable share,
coverage, Frechet distance with its floor, sharpness); and the image-to-image table: a U-Net
restoring damaged digits with the L1 loss alone and with L1 + an adversarial loss.

Run alone: `.venv/bin/python bench/gans.py [--json out.json]`; `run()` returns the section."""
import os, resource, sys, time

from fresh_process import MEMORY_LIMIT_MB, ROOT, goal, main, section


def measure(n_samples=1000):
    "Everything, in this process (call it in a fresh one: peak memory is this process's)."
    sys.path.insert(0, str(ROOT))
    import torch
    torch.set_num_threads(1)
    from htc_dl.digit_mixer import train_mixer
    from htc_dl.gans import (DigitUNet, damage, digit_probabilities, generate, judge_digits,
                             restore, sharpness, train_digit_gan, train_restorer)
    from htc_dl.data import mnist
    from htc_dl.latent import DIGITS_PER_CLASS, load_digits
    path = mnist(size="small")
    x_train, _ = load_digits(path, "training", DIGITS_PER_CLASS["small"][0])
    mixer = train_mixer(size="small")                  # the app's VAE and the judge
    judge, vae, x_valid = mixer.classifier, mixer.vae, mixer.images
    out = dict(data=f"{len(x_train):,} training / {len(x_valid):,} held-out digits "
                    f"from {path.name}",
               n_latent=vae.n_latent, judge_accuracy=mixer.about["classifier_accuracy"])
    gan = train_digit_gan(size="small")
    out.update(gan_train_s=gan.about["train_s"], gan_train_cpu_s=gan.about["train_cpu_s"],
               gan_epochs=gan.about["epochs"])
    codes = torch.randn(n_samples, vae.n_latent, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): vae_digits = vae.decode(codes)
    shuffled = torch.randperm(len(x_valid), generator=torch.Generator().manual_seed(2))
    real = x_valid[shuffled[:n_samples]]
    out["floor"] = judge_digits(judge, real, x_train)
    out["vae"] = judge_digits(judge, vae_digits, real)
    out["gan"] = judge_digits(judge, generate(gan, codes), real)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(3))
    clean_train, clean_test = x_train[order[:2000]].view(-1, 28, 28), real[:500].view(-1, 28, 28)
    damaged_train, damaged_test = damage(clean_train, seed=1), damage(clean_test, seed=2)
    truth = digit_probabilities(judge, clean_test).argmax(1)
    restored = {"damaged": damaged_test}
    for name, weight in (("L1 only", 0.0), ("L1 + adversarial", 0.05)):
        start, cpu = time.perf_counter(), time.process_time()
        unet, _ = train_restorer(DigitUNet(16), damaged_train, clean_train, epochs=4,
                                 adversarial=weight)
        restored[name] = restore(unet, damaged_test)
        out[f"{name} train"] = (time.perf_counter() - start, time.process_time() - cpu)
    out["restore"] = {name: dict(
        l1=(images - clean_test).abs().mean().item(), sharpness=sharpness(images),
        read_right=(digit_probabilities(judge, images).argmax(1) == truth).float().mean().item())
        for name, images in {**restored, "truth": clean_test}.items()}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_average"] = os.getloadavg()[0]
    return out


def render(m):
    "The Markdown section for bench/RESULTS.md: GAN against VAE, then the image-to-image table."
    ok = lambda good: "yes" if good else "**no**"
    rows = "\n".join(
        f"| {name} | {s['recognisable']:.1%} | {s['entropy_bits']:.2f} | {s['digits_5pct']} "
        f"| {s['frechet']:.2f} | {s['sharpness']:.3f} |"
        for name, s in (("real held-out vs training (floor)", m["floor"]), ("VAE", m["vae"]),
                        ("GAN", m["gan"])))
    image_rows = "\n".join(
        f"| {name} | {s['l1']:.3f} | {s['sharpness']:.3f} | {s['read_right']:.1%} |"
        for name, s in m["restore"].items())
    gan, vae = m["gan"], m["vae"]
    targets = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in (
        ("GAN's Frechet distance below the VAE's", f"{gan['frechet']:.2f} vs {vae['frechet']:.2f}",
         ok(gan["frechet"] < vae["frechet"])),
        ("digits making up >= 5% of GAN samples", f"{gan['digits_5pct']} of 10",
         ok(gan["digits_5pct"] >= 9) + " (>= 9)"),
        ("GAN samples recognisable (confidence >= 0.9)", f"{gan['recognisable']:.1%}",
         ok(gan["recognisable"] >= 0.85) + " (>= 85%)"),
        ("train the app's GAN, one thread", f"{m['gan_train_s']:.0f} s wall, "
         f"{m['gan_train_cpu_s']:.0f} s CPU ({m['gan_epochs']} epochs)",
         ok(m["gan_train_cpu_s"] <= 75) + " (about a minute of CPU)"),
        ("peak resident memory of this measurement", f"{m['peak_rss_mb']:.0f} MB",
         ok(m["peak_rss_mb"] <= MEMORY_LIMIT_MB) + " (<= 1.5 GB)")))
    return (f"## GANs beside VAEs (lesson 6h, small mode)\n\n{m['data']}; {m['n_latent']} "
            f"latent numbers for both models; the judge (lesson 4's simple_net) reads "
            f"{m['judge_accuracy']:.1%} of the held-out digits right; 1,000 samples per model "
            f"from the same N(0, 1) codes. 1-minute load average {m['load_average']:.1f} on "
            f"{os.cpu_count()} cores while measuring.\n\n"
            "| digits | recognisable (>= 0.9) | coverage entropy (bits, max 3.32) | digits >= 5% "
            "| Frechet distance (judge's features) | sharpness |\n|---|---|---|---|---|---|\n"
            f"{rows}\n\n| target | measured | met |\n|---|---|---|\n{targets}\n\n"
            "Restoring damaged digits (12x12 grey block + noise sd 0.5; U-Net, 2,000 training "
            "digits, 4 epochs; 500 held-out digits; 'read right' = the judge reads what it reads "
            "in the truth):\n\n"
            "| digits | L1 error | sharpness | read right |\n|---|---|---|---|\n"
            f"{image_rows}\n")


def goals(m):
    "Rows of RESULTS.md's goals table."
    gan, vae = m["gan"], m["vae"]
    return [goal("GAN Frechet distance below the VAE's (6h)", "GAN < VAE",
                 f"{gan['frechet']:.2f} vs {vae['frechet']:.2f}", gan["frechet"] < vae["frechet"]),
            goal("GAN coverage (6h)", ">= 9 digits >= 5%", f"{gan['digits_5pct']}",
                 gan["digits_5pct"] >= 9),
            goal("GAN samples recognisable (6h)", ">= 85%", f"{gan['recognisable']:.1%}",
                 gan["recognisable"] >= 0.85)]


def run(timeout=900):
    "Measure in a fresh interpreter (small mode, offline copies allowed): section and goals."
    return section(__file__, "GANs beside VAEs (lesson 6h)", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
