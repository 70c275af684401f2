"The real-download path, tested against an HTTP server on 127.0.0.1."
import functools, http.server, io, os, tarfile, threading, zipfile
from pathlib import Path
import pytest
from htc_dl import data
from htc_dl.data import archive_stats, fetch_archive

class CutOffHandler(http.server.SimpleHTTPRequestHandler):
    "Serves files, but announces the full size of `cut.tgz` and sends only half of it."
    def log_message(self, *args): pass
    def do_GET(self):
        if not self.path.endswith("cut.tgz"): return super().do_GET()
        body = (Path(self.directory)/"cut.tgz").read_bytes()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body)//2]); self.wfile.flush()
        self.close_connection = True

@pytest.fixture
def server(tmp_path):
    "Serve tmp_path/'www' on a free localhost port; yields (folder, base url)."
    www = tmp_path/"www"; www.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(CutOffHandler, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()

def make_tgz(path, files, top="mnist_sample"):
    "A .tgz holding `files` {relative name: bytes} under the folder `top`."
    with tarfile.open(path, "w:gz") as t:
        for name, content in files.items():
            info = tarfile.TarInfo(f"{top}/{name}"); info.size = len(content)
            t.addfile(info, io.BytesIO(content))
    return path

def test_download_checks_checksum_and_extracts_the_archive_folder(server, tmp_path):
    www, url = server
    archive = make_tgz(www/"mnist_sample.tgz",
                       {"labels.csv": b"name,label\n", "train/3/1.png": b"x"*5000})
    dest = fetch_archive(f"{url}/mnist_sample.tgz", tmp_path/"data/mnist_sample",
                         expected=archive_stats(archive))
    assert (dest/"labels.csv").read_bytes() == b"name,label\n"
    assert (dest/"train/3/1.png").stat().st_size == 5000
    # no temp folder left
    assert sorted(p.name for p in (tmp_path/"data").iterdir()) == ["mnist_sample"]

def test_zip_archives_extract_too(server, tmp_path):
    www, url = server
    with zipfile.ZipFile(www/"ml-100k.zip", "w") as z: z.writestr("ml-100k/u.data", "1\t2\t3\t4\n")
    dest = fetch_archive(f"{url}/ml-100k.zip", tmp_path/"data/ml-100k")
    assert (dest/"u.data").read_text() == "1\t2\t3\t4\n"

def test_wrong_checksum_is_refused_and_leaves_nothing(server, tmp_path):
    www, url = server
    make_tgz(www/"mnist_sample.tgz", {"a.txt": b"abc"})
    with pytest.raises(ValueError, match="is corrupt"):
        fetch_archive(f"{url}/mnist_sample.tgz", tmp_path/"data/mnist_sample", expected=(3, "0"*32))
    assert list((tmp_path/"data").iterdir()) == []

def test_cut_off_download_is_refused_and_leaves_nothing(server, tmp_path):
    www, url = server
    make_tgz(www/"cut.tgz", {"big.bin": os.urandom(200_000)})
    with pytest.raises((ConnectionError, OSError)):
        fetch_archive(f"{url}/cut.tgz", tmp_path/"data/cut")
    assert list((tmp_path/"data").iterdir()) == []

def test_member_escaping_the_target_is_refused(server, tmp_path):
    www, url = server
    with tarfile.open(www/"evil.tgz", "w:gz") as t:
        info = tarfile.TarInfo("../../escaped.txt"); info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="refused archive member"):
        fetch_archive(f"{url}/evil.tgz", tmp_path/"data/evil")
    assert not (tmp_path/"escaped.txt").exists() and not (tmp_path/"data/evil").exists()

def test_zip_member_escaping_the_target_is_refused(server, tmp_path):
    www, url = server
    with zipfile.ZipFile(www/"evil.zip", "w") as z: z.writestr("../escaped.txt", "bad")
    with pytest.raises(ValueError, match="refused archive member"):
        fetch_archive(f"{url}/evil.zip", tmp_path/"data/evil")
    assert not (tmp_path/"data/escaped.txt").exists()

def test_existing_copy_is_kept_and_not_downloaded_again(tmp_path):
    dest = tmp_path/"data/mnist_sample"; dest.mkdir(parents=True)
    (dest/"mine.txt").write_text("keep")
    assert fetch_archive("http://127.0.0.1:9/never-contacted.tgz", dest) == dest
    assert (dest/"mine.txt").read_text() == "keep"

def test_loader_uses_real_download_path_when_reachable(server, tmp_path, monkeypatch, capsys):
    """load('mnist_sample') with the URL pointed at our server: the real path downloads, checks and
    reports it."""
    www, url = server
    archive = make_tgz(www/"mnist_sample.tgz", {"labels.csv": b"name,label\n"})
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
    monkeypatch.delenv("HTC_DL_OFFLINE")
    monkeypatch.setattr(data, "_network_failure", None)
    monkeypatch.setattr(data, "real_url",
                        lambda name: (f"{url}/mnist_sample.tgz", archive_stats(archive)))
    # full: the archive itself (small mode's subset: tests/test_online.py)
    path = data.mnist_sample(source="online", size="full")
    assert path == tmp_path/"root/mnist_sample" and (path/"labels.csv").exists()
    assert "real data set" in capsys.readouterr().out

def test_online_failure_says_how_to_fix_and_auto_falls_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
    monkeypatch.delenv("HTC_DL_OFFLINE")
    monkeypatch.setattr(data, "_network_failure", None)
    monkeypatch.setattr(data, "real_url", lambda name: ("http://127.0.0.1:9/closed-port.tgz", None))
    with pytest.raises(ConnectionError, match="use source='offline'"):
        data.movielens(source="online")
    path = data.movielens(source="auto", size="small")
    assert path == tmp_path/"root/offline/movielens_small"
    assert "offline copy" in capsys.readouterr().out

def test_real_urls_are_fastais_with_recorded_checksums():
    url, expected = data.real_url("mnist_sample")
    assert url == "https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz"
    assert expected == (3214948, "2dbc7ec6f9259b583af0072c55816a88")
