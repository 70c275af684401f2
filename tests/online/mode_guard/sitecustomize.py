"""Records what could make a notebook behave differently online and offline: each read of a mode or
folder variable and each network connection, with the notebook nbdev-test was running, one JSON line
each in `HTC_DL_GUARD_LOG`. Copying the environment (`dict(os.environ)`) reads every variable, so it
counts too; walking through it (`os.environ.items()`) is recorded as a scan by the module that did.

`make nbtest` puts this folder on PYTHONPATH, so every Python process of the offline pass loads it
(a child started with subprocess is credited to the notebook that started it).
tests/test_ci_speed.py reads the record: the notebooks in tests/online/same_in_both_modes.txt must
have made none, which is why the online pass may skip them."""
import json, os, socket, subprocess, sys

WATCHED = ("HTC_DL_OFFLINE", "HTC_DL_URL_BASE", "HTC_DL_DATA", "HTC_DL_MODELS", "HTC_DL_FEEDBACK",
           "FASTAI_HOME")
PARENT = "HTC_DL_GUARD_NOTEBOOK"   # the notebook of the process that started this one
LOG = os.environ.get("HTC_DL_GUARD_LOG")


def notebook():
    "The notebook nbdev-test runs in this process now, else the one that started this process."
    running = getattr(sys.modules.get("nbdev.test"), "_cur_nb", [None])[0]
    return running.name if running else os.environ.get(PARENT)


def reader(caller):
    """'read', or 'scan by MODULE' when MODULE walks through every variable (`os.environ.items()`),
    as tqdm does to find its TQDM_* settings."""
    if not (caller.f_code.co_filename.endswith("_collections_abc>")
            and caller.f_code.co_name == "__iter__"): return "read"
    while caller and "_collections_abc" in caller.f_code.co_filename: caller = caller.f_back
    return f"scan by {caller.f_globals.get('__name__') if caller else '?'}:"


def note(what):
    record = dict(notebook=notebook(), pid=os.getpid(), what=what)
    with open(LOG, "a") as f: f.write(json.dumps(record) + "\n")


if LOG:
    class WatchedEnviron(type(os.environ)):
        def __getitem__(self, key):
            if key in WATCHED: note(f"{reader(sys._getframe(1))} {key}")
            return super().__getitem__(key)
    os.environ.__class__ = WatchedEnviron

    _connect = socket.socket.connect
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6): note(f"connect {address}")
        return _connect(self, address)
    socket.socket.connect = connect

    _popen_init = subprocess.Popen.__init__
    def popen_init(self, *args, **kwargs):
        nb = notebook()
        if nb:
            if kwargs.get("env") is not None: kwargs["env"] = {**kwargs["env"], PARENT: nb}
            else: os.environ[PARENT] = nb
        _popen_init(self, *args, **kwargs)
    subprocess.Popen.__init__ = popen_init
