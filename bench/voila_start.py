"""Voila cold start to first render in Chromium, per app: a fresh Voila (configured like `make
start`, from nbs/apps/voila.json, but with kernel preheating OFF, as Binder runs Voila inside
Jupyter Server) is launched, the browser opens the app as soon as the server answers, and the clock
stops when the first widget is visible. Reuses tests/browser_helpers.py (Chromium at
/usr/bin/chromium, launch args there).

Run alone: `.venv/bin/python bench/voila_start.py [--json out.json] [--apps a,b] [--preheat]`."""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
READY = {"index": ".htc-gallery"}   # the gallery draws HTML cards, not widgets


def cold_start(app, helpers, browser, timeout=180, preheat=False):
    """Seconds from launching Voila to the server answering, and to the app's first widget in the
    browser (no preheated kernel unless `preheat`)."""
    log = Path(tempfile.gettempdir()) / f"htc_dl-bench-voila-{app}.log"
    extra = [] if preheat else ["--VoilaConfiguration.preheat_kernel=False"]
    server = helpers.VoilaServer(env={"HTC_DL_SMALL": "1"}, log_path=log, extra_args=extra)
    try:
        up = server.start(timeout=timeout)
        page = browser.new_page()
        try:
            ready = READY.get(app)
            render = helpers.open_app(page, server.url(app), timeout=timeout,
                                      **({"ready": ready} if ready else {}))
            total = time.perf_counter() - server.started_at
        finally: page.close()
        return dict(app=app, preheat=preheat, server_up_s=up, first_render_s=render,
                    launch_to_render_s=total)
    except Exception as e:
        return dict(app=app,
                    error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
    finally: server.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument("--json"); ap.add_argument("--apps")
    ap.add_argument("--budget", type=float, default=600,
                    help="seconds for all apps; apps left when it runs out are skipped")
    ap.add_argument("--preheat", action="store_true",
                    help="keep voila.json's preheated kernel (default: off, as on Binder)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        import browser_helpers as helpers
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        rows = [dict(app="-", error=f"cannot measure: {e}")]
    else:
        apps = args.apps.split(",") if args.apps else ["index"] + helpers.app_names()
        rows = []
        if not Path(helpers.CHROMIUM).exists():
            rows = [dict(app="-", error=f"{helpers.CHROMIUM} missing (make browser)")]
        else:
            with sync_playwright() as p:
                browser = helpers.launch_chromium(p)
                for app in apps:
                    left = args.budget - (time.perf_counter() - t0)
                    if left < 30:
                        rows.append(dict(app=app, error="not run (budget)"))
                        print(app, "not run (budget)"); continue
                    rows.append(cold_start(app, helpers, browser, timeout=min(150, left - 10),
                                           preheat=args.preheat))
                    r = rows[-1]
                    print(f"{app:24} " + (f"server up {r['server_up_s']:.1f} s, first widget "
                                          f"{r['first_render_s']:.1f} s after opening, "
                                          f"{r['launch_to_render_s']:.1f} s from launch"
                                          if "error" not in r else r["error"]),
                          flush=True)
                browser.close()
    if args.json: Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


def run(apps=None, budget=600) -> str:
    "Measure every app (no preheating) and return a markdown table."
    rows = main((["--apps", ",".join(apps)] if apps else []) + ["--budget", str(budget)])
    lines = ["| app | server up s | first widget after opening s | launch to first widget s | "
             "within 5 s of opening |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r: lines.append(f"| {r['app']} | - | - | - | {r['error']} |"); continue
        lines.append(f"| {r['app']} | {r['server_up_s']:.1f} | {r['first_render_s']:.1f} | "
                     f"{r['launch_to_render_s']:.1f} | "
                     f"{'yes' if r['first_render_s'] <= 5 else '**no**'} |")
    import os
    return ("## Voila cold start, preheating off (Chromium)\n\nLoad average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
