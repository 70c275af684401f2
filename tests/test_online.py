"""Real data sets through a mirror on 127.0.0.1 (tests/online): the download path, the mirror's
checksums, and small mode's fixed subsets."""
import functools, http.server, json, shutil, sys, threading
from pathlib import Path
import pandas as pd
import pytest
from htc_dl import data

sys.path.insert(0, str(Path(__file__).parent/"online"))
import build   # tests/online/build.py

# pets and mnist are drawn in CI's simulated-online run
SCALED = ["mnist_sample", "pascal", "biwi", "movielens"]


def serve_folder(folder):
    handler = functools.partial(build_handler(), directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


def build_handler():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    return Quiet


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    "Archives in the real layouts, shrunk (scale 0.01) so the test builds them in seconds."
    folder = tmp_path_factory.mktemp("mirror")
    build.build(folder, SCALED, scale=0.01, echo=lambda *a: None)
    return folder


@pytest.fixture
def mirror(archives, tmp_path, monkeypatch):
    "The archives served on a free port, HTC_DL_URL_BASE pointed at them, a fresh data folder."
    srv, base = serve_folder(archives)
    monkeypatch.setenv("HTC_DL_URL_BASE", base); monkeypatch.setenv("HTC_DL_OFFLINE", "0")
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
    monkeypatch.setattr(data, "_network_failure", None)
    monkeypatch.setattr(data, "_mirror_checks", {})
    yield base
    srv.shutdown()


def test_mirror_lists_every_archive_with_its_size_and_md5(archives):
    checks = json.loads((archives/"checks.json").read_text())
    assert sorted(checks) == sorted(data.REAL_SETS[n][2] for n in SCALED)
    for name, (size, md5) in checks.items(): assert (size, md5) == data.archive_stats(archives/name)


def test_small_mode_gets_the_offline_counts_from_the_real_layout(mirror, capsys):
    path = data.mnist_sample(size="small")
    assert path == data.data_root()/"small"/"mnist_sample"
    counts = [len(list((path/s/d).glob("*.png"))) for s in ("train", "valid") for d in "37"]
    assert counts == [400, 400, 100, 100]
    labels = pd.read_csv(path/"labels.csv")
    assert len(labels) == 1000 and (labels.label == labels.name.str.contains("/7/")).all()
    assert all((path/n).exists() for n in labels.name)
    out = capsys.readouterr().out
    assert ("real data set (fastai URLs.MNIST_SAMPLE), small subset: 400 training and 100 "
            "validation images per digit") in out


def test_full_mode_uses_every_file_of_the_real_set(mirror):
    full = data.mnist_sample(size="full")
    assert full == data.data_root()/"mnist_sample"
    n = sum(1 for _ in full.glob("*/*/*.png"))
    assert n == sum(max(450 if s == "train" else 110, round(c * 0.01))
                    for (s, _), c in build.MNIST_SAMPLE_COUNTS.items())


def test_subset_is_seeded_and_written_once(mirror, tmp_path, monkeypatch):
    first = sorted(p.name for p in data.mnist_sample(size="small").rglob("*.png"))
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"other"))
    # another machine: the same files
    assert sorted(p.name for p in data.mnist_sample(size="small").rglob("*.png")) == first
    # mirror gone: the subset on disk is used
    monkeypatch.setenv("HTC_DL_URL_BASE", "http://127.0.0.1:9/")
    assert sorted(p.name for p in data.mnist_sample(size="small").rglob("*.png")) == first


def test_pascal_subset_is_a_fixed_list_with_a_quarter_for_validation(mirror):
    path = data.pascal(size="small")
    df = pd.read_csv(path/"train.csv")
    assert list(df.columns) == ["fname", "labels", "is_valid"]
    assert len(df) == 600 and df.is_valid.sum() == 150
    assert sorted(p.name for p in (path/"train").iterdir()) == sorted(df.fname)


def test_biwi_subset_keeps_six_people_with_the_validation_person(mirror):
    path = data.biwi(size="small")
    people = sorted(p.name for p in path.iterdir())
    assert people == ["01", "02", "03", "04", "05", "13"]
    for p in people:
        frames = sorted((path/p).glob("frame_*_rgb.jpg"))
        assert len(frames) == 25 and (path/p/"rgb.cal").exists()
        assert all(Path(str(f).replace("_rgb.jpg", "_pose.txt")).exists() for f in frames)


def test_movielens_subset_keeps_the_most_rated_movies_and_their_titles(mirror):
    real = data.movielens(size="full")
    path = data.movielens(size="small")
    r = pd.read_csv(path/"u.data", sep="\t", names=["user", "movie", "rating", "timestamp"])
    assert r.user.nunique() <= 400 and r.movie.nunique() <= 600 and 20_000 < len(r) <= 45_000
    # ids 1..n, as in the offline copy
    assert sorted(r.user.unique()) == list(range(1, r.user.nunique() + 1))
    items = (path/"u.item").read_text(encoding="latin-1").splitlines()
    assert sorted(int(l.split("|")[0]) for l in items) == list(range(1, r.movie.nunique() + 1))
    full = pd.read_csv(real/"u.data", sep="\t", names=["user", "movie", "rating", "timestamp"])
    titles = dict(l.split("|")[:2]
                  for l in (real/"u.item").read_text(encoding="latin-1").splitlines())
    kept = {l.split("|")[1] for l in items}
    # the most-rated movie is kept, with its title
    assert titles[str(full.movie.value_counts().index[0])] in kept
    # "real": no planted truth beside it
    assert data.planted_truth(path) is None and data.planted_truth(real) is None


def test_wrong_checksum_on_the_mirror_is_refused(archives, tmp_path, monkeypatch):
    bad = tmp_path/"bad"; bad.mkdir()
    shutil.copy(archives/"mnist_sample.tgz", bad)
    (bad/"checks.json").write_text(json.dumps({"mnist_sample.tgz": [123, "0"*32]}))
    srv, base = serve_folder(bad)
    try:
        monkeypatch.setenv("HTC_DL_URL_BASE", base); monkeypatch.setenv("HTC_DL_OFFLINE", "0")
        monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
        monkeypatch.setattr(data, "_network_failure", None)
        monkeypatch.setattr(data, "_mirror_checks", {})
        with pytest.raises(ValueError, match="is corrupt"):
            data.mnist_sample(source="online", size="small")
        assert (not (tmp_path/"root/mnist_sample").exists()
                and not (tmp_path/"root/small/mnist_sample").exists())
        with pytest.raises(ConnectionError,
                           match="lists no oxford-iiit-pet.tgz in its checks.json"):
            data.real_url("pets")
    finally: srv.shutdown()


def test_mirror_without_checks_json_is_not_trusted(tmp_path, monkeypatch):
    (tmp_path/"www").mkdir(); (tmp_path/"www/mnist_sample.tgz").write_bytes(b"not checked")
    srv, base = serve_folder(tmp_path/"www")
    try:
        monkeypatch.setenv("HTC_DL_URL_BASE", base); monkeypatch.setenv("HTC_DL_OFFLINE", "0")
        monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
        monkeypatch.setattr(data, "_network_failure", None)
        monkeypatch.setattr(data, "_mirror_checks", {})
        with pytest.raises(ConnectionError, match="could not get the real mnist_sample.*use "
                                                  "source='offline'"):
            data.mnist_sample(source="online")
        assert not (tmp_path/"root/mnist_sample").exists()
    finally: srv.shutdown()


def test_cached_archives_are_not_built_again(archives):
    said = []
    build.build(archives, SCALED, scale=0.01, echo=said.append)
    assert said == []


def test_full_archives_have_the_real_file_counts():
    assert sum(build.MNIST_SAMPLE_COUNTS.values()) == 14_434
    assert [sum(c) for c in build.MNIST_COUNTS.values()] == [60_000, 10_000]
    assert (build.PETS_TOTAL, len(build.OXFORD_PETS), build.PASCAL_TRAIN,
            build.BIWI_TOTAL) == (7_390, 37, 5_011, 15_678)
    # small mode's 12 breeds are real breeds
    assert set(data.PET_BREEDS) <= set(build.OXFORD_PETS)
    looks = build.pet_looks()
    new = [looks[b][1:] for b in build.OXFORD_PETS if b not in data.PET_BREEDS]
    # 25 new, distinct looks
    assert len(set(new)) == 25 and not set(new) & {look[1:] for look in data.PET_BREEDS.values()}


def test_camvid_tiny_archive_has_the_real_100_photos_each_with_its_mask(tmp_path):
    build.build_camvid_tiny(tmp_path)
    photos, masks = (sorted((tmp_path/"images").glob("*.png")),
                     sorted((tmp_path/"labels").glob("*_P.png")))
    assert len(photos) == len(masks) == build.CAMVID_TINY_TOTAL == 100
    assert [f"{p.stem}_P.png" for p in photos] == [m.name for m in masks]


def test_archive_names_are_the_ones_in_fastais_urls():
    from fastai.data.external import URLs
    for name, (attr, folder, archive) in data.REAL_SETS.items():
        assert getattr(URLs, attr).rsplit("/", 1)[1] == archive, name
