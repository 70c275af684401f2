"""Latency of each app's response, measured through its Python handler: the app is built exactly as
its Voila notebook builds it (a function returning an ipywidgets widget), then the handler a click
or a slider move would call is timed. No browser: this is the time the kernel needs; Voila adds a
websocket round trip on top.

Run alone: `.venv/bin/python bench/apps_latency.py [--json out.json] [--n 30]`."""
import argparse, datetime, io, json, math, statistics, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentiles(times_s):
    "p50 and p95 in milliseconds (nearest rank)."
    s = sorted(times_s)
    rank = lambda q: s[max(0, math.ceil(q * len(s)) - 1)]
    return dict(n=len(s), p50_ms=1000 * statistics.median(s), p95_ms=1000 * rank(0.95),
                max_ms=1000 * s[-1])


def timed(fn, n, warmup=1):
    "Call `fn(i)` `warmup` times untimed, then `n` times timed; seconds per call."
    for i in range(warmup): fn(i)
    out = []
    for i in range(n):
        t = time.perf_counter(); fn(i); out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------- one probe per app

def classifier(n):
    """apps.classifier_app: one photo uploaded, the Classify handler timed (decode, resize, forward
    pass, HTML)."""
    from PIL import Image
    from skimage import data
    from htc_dl.apps import classifier_app, ensure_default_model
    t = time.perf_counter(); folder = ensure_default_model(); model_s = time.perf_counter() - t
    app = classifier_app(folder)
    if app.classifier is None: raise RuntimeError(f"the app has no model: {app.result.value[:200]}")
    buf = io.BytesIO(); Image.fromarray(data.chelsea()).save(buf, "JPEG", quality=90)
    content = buf.getvalue()
    app.upload.value = ({"name": "chelsea.jpg", "type": "image/jpeg", "size": len(content),
                         "content": memoryview(content),
                         "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    times = timed(lambda i: app.classify(), n)
    top = app.result.value
    ok = "chelsea.jpg" in top and "Something went wrong" not in top
    return dict(response="Classify one 451x300 JPEG (chelsea)", target="-", times=times,
                note=f"model ready in {model_s:.1f} s; "
                     + ("answer shown" if ok else f"unexpected page: {top[:120]}"))


def gradient_descent(n):
    """landscape.gradient_descent_app: a control moved, the redraw it triggers timed (descent,
    landscape and loss PNGs)."""
    from htc_dl.landscape_app import gradient_descent_app
    app = gradient_descent_app()
    moves = [("lr", 0.1), ("noise", 2.0), ("landscape", "bowl"), ("lr", 1.2), ("steps", 200),
             ("landscape", "narrow valley"), ("lr", 0.45), ("x", -2.5), ("y", -1.0), ("noise", 0.0),
             ("seed", 3), ("landscape", "bumpy"), ("lr", 0.02),
             ("steps", 60), ("x", 2.4), ("y", 2.2)]
    def move(i):
        name, value = moves[i % len(moves)]
        if app.controls[name].value == value:
            value = app.controls[name].min if hasattr(app.controls[name], "min") else value
        app.controls[name].value = value
    times = timed(move, n)
    ok = app.landscape_image.value[:4] == b"\x89PNG" \
        and "Something went wrong" not in app.message.value
    return dict(response="one control moved -> path, landscape and loss redrawn", target="< 300 ms",
                times=times,
                note="redraw shown" if ok else f"unexpected: {app.message.value[:120]}")


def recommender(n):
    """recommender.recommender_app: a taste slider moved (top 10 recomputed), and an existing user
    looked up."""
    from htc_dl.recommender import app_recommender, recommender_app
    t = time.perf_counter(); weights, ratings = app_recommender(); model_s = time.perf_counter() - t
    app = recommender_app(weights, ratings)
    # each move changes the slider by 1.3 (wrapping inside -3..3), so every move triggers an update
    def move(i):
        slider = app.sliders[i % len(app.sliders)]
        slider.value = round((slider.value + 1.3 + 3) % 6 - 3, 1)
    updates = len(app.timings)
    slider_times = timed(move, n)
    # ran on every move
    slider_ok = "<table" in app.recommendations.value and len(app.timings) == updates + n + 1
    users = sorted(ratings["user"].astype(str).unique(), key=lambda s: (len(s), s))[:n + 1]
    user_times = timed(lambda i: setattr(app.user_id, "value", users[i % len(users)]), n)
    user_ok = "Recommended for user" in app.user_view.value
    note = f"model ready in {model_s:.1f} s; {len(ratings):,} ratings"
    return [dict(response="a taste slider moved -> top 10 recomputed", target="< 200 ms",
                 times=slider_times, note=note + ("" if slider_ok else "; no table shown")),
            dict(response="an existing user's id entered -> their top 10 and ratings",
                 target="< 200 ms", times=user_times,
                 note=note + ("" if user_ok else f"; unexpected: {app.user_view.value[:100]}"))]


def threshold(n):
    """multilabel.threshold_app: the threshold slider moved, the update timed (metrics per label,
    captions of the grid)."""
    from htc_dl.multilabel_app import app_predictions, threshold_app
    t = time.perf_counter()
    probs, targets, files, vocab = app_predictions()
    model_s = time.perf_counter() - t
    app = threshold_app(probs, targets, files, vocab)
    def move(i):   # 0.05 .. 0.95 in steps of 0.05, never the current value
        app.slider.value = round(0.05 + ((round((app.slider.value - 0.05) / 0.05) + 7) % 19)
                                 * 0.05, 2)
    times = timed(move, n)
    ok = "accuracy_multi at" in app.summary.value and not app.message.value
    return dict(response="threshold slider moved -> per-label table and image captions", target="-",
                times=times, note=f"predictions ready in {model_s:.1f} s; {len(probs)} images"
                                  + ("" if ok else f"; unexpected: {app.message.value[:100]}"))


PROBES = {"classifier (apps.classifier_app)": classifier,
          "gradient descent (landscape.gradient_descent_app)": gradient_descent,
          "threshold (multilabel.threshold_app)": threshold,
          "recommender (recommender.recommender_app)": recommender}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args(argv)
    rows = []
    for name, probe in PROBES.items():
        try:
            found = probe(args.n)
            found = found if isinstance(found, list) else [found]
            for r in found: r.update(percentiles(r.pop("times")))
        except Exception as e:
            traceback.print_exc()
            found = [dict(error=f"not measured: {type(e).__name__}: {e}"[:300])]
        for r in found:
            r = {"app": name, **r}
            rows.append(r)
            print(f"{name:50} " + (f"p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  "
                                   f"(n={r['n']}) {r.get('response', '')}; "
                                   f"{r.get('note', '')}" if "p50_ms" in r else r["error"]),
                  flush=True)
    if args.json: Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
