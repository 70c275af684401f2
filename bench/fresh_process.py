"""What the section scripts that measure one lesson share (bench/latent.py, bench/attacks.py): the
measurement runs in a fresh interpreter in small mode, so the peak memory it reports is its own, and
the script's command line."""
import argparse, json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT_MB = 1.5 * 1024


def measure_fresh(script, timeout=900):
    """Run `script --measure` in a fresh interpreter (small mode, this checkout's htc_dl): (its
    figures, None) or (None, its error)."""
    env = {**os.environ, "HTC_DL_SMALL": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script), "--measure"], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if done.returncode: return None, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def section(script, title, render, timeout=900, goals=None):
    """dict(markdown=`render(figures)`, goals=`goals(figures)`: rows of the goals table), or a
    failure note under `title` with the end of the error."""
    figures, error = measure_fresh(script, timeout)
    if error is not None:
        return dict(markdown=f"## {title}\n\nmeasurement failed:\n\n```\n{error}\n```\n")
    return dict(markdown=render(figures), goals=goals(figures) if goals else [])


def goal(goal, target, measured, met):
    "One row of RESULTS.md's goals table."
    return dict(goal=goal, target=target, measured=measured, met=bool(met))


def main(script, doc, measure, render):
    """Command line: `--measure` prints this process's figures as JSON; otherwise measure fresh,
    print the section, `--json` saves the figures."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--measure", action="store_true",
                        help="measure in this process and print JSON (what run() calls)")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    if args.measure: print(json.dumps(measure())); sys.exit()
    figures, error = measure_fresh(script)
    if error is not None: sys.exit(f"measurement failed:\n{error}")
    print(render(figures))
    if args.json: Path(args.json).write_text(json.dumps(figures, indent=1))
