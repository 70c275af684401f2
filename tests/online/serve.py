"""The simulated-online mirror: build (or reuse) the archives of tests/online/build.py in DIR, then
serve DIR on 127.0.0.1, so `HTC_DL_URL_BASE=http://127.0.0.1:PORT/` sends every real download of
htc_dl.data there.

    .venv/bin/python tests/online/serve.py --build test-output/online-archives --port 8765
        # foreground
    .venv/bin/python tests/online/serve.py --build test-output/online-archives --port 8765 \\
        --background --pidfile test-output/online-server.pid
        # returns once serving
    HTC_DL_SMALL=1 HTC_DL_URL_BASE=http://127.0.0.1:8765/ HTC_DL_DATA=test-output/online-data \
        .venv/bin/nbdev-test
    kill $(cat test-output/online-server.pid)
"""
import argparse, functools, http.server, os, socket, subprocess, sys, time, urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def wait_until_serving(base, proc=None, timeout=60):
    "Return once `base`/checks.json answers; raise if `proc` exits first or `timeout` passes."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the mirror exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base.rstrip("/") + "/checks.json", timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f"the mirror at {base} did not answer within {timeout} s")


def serve(folder, port):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(QuietHandler, directory=str(folder)))
    print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the simulated-online archives, then serve "
                                             "them on 127.0.0.1.")
    ap.add_argument("--build", required=True, metavar="DIR",
                    help="folder of the archives (built once, reused while up to date)")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--only", help="comma-separated data set names to build (default: all)")
    ap.add_argument("--background", action="store_true",
                    help="build, start the server detached, return once it answers")
    ap.add_argument("--pidfile", help="with --background: where to write the server's process id")
    ap.add_argument("--no-build", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.no_build:
        sys.path.insert(0, str(HERE))
        import build
        build.build(a.build, a.only.split(",") if a.only else None)
    if a.background:
        log = open(Path(a.build)/"server.log", "w")
        proc = subprocess.Popen([sys.executable, __file__, "--build", a.build, "--port",
                                 str(a.port), "--no-build"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{a.port}/"
        wait_until_serving(base, proc)
        if a.pidfile: Path(a.pidfile).write_text(f"{proc.pid}\n")
        print(f"mirror up (pid {proc.pid}): export HTC_DL_URL_BASE={base}")
        return
    serve(a.build, a.port)


if __name__ == "__main__":
    main()
