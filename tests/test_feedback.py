"""The feedback journal (htc_dl.feedback) and the classifier app's "Wrong? Pick the right breed"
control: one file per correction, written all or nothing; bad labels, empty uploads, a full journal,
two corrections at once and a crash mid-write each get a clear message, and no record is lost or
half-written."""
import html, io, json, threading
from pathlib import Path

import pytest
from PIL import Image

from htc_dl.feedback import (FEEDBACK_ENV, FeedbackError, corrections_to_folders, feedback_root,
                             journal_bytes, read_corrections, record_correction, record_files,
                             safe_file_name)

BREEDS = ["Bombay", "pug", "samoyed"]


def jpeg(colour=(120, 80, 40), size=(64, 48)):
    buffer = io.BytesIO(); Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def record(journal, name="cat.jpg", label="pug", content=None, **kwargs):
    return record_correction(jpeg() if content is None else content, name, "samoyed 54%", label,
                             BREEDS, journal, **kwargs)


def test_a_correction_is_one_file_holding_the_upload_its_name_the_answer_and_the_label(tmp_path):
    path = record(tmp_path, "My Cat.jpg", "Bombay")
    assert path.parent == tmp_path and path.name.endswith("-My_Cat.jpg.correction.json")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [path.name]
    (r,) = read_corrections(tmp_path)
    assert (r["content"], r["file_name"], r["answer"], r["label"], r["size"]) == \
        (jpeg(), "My_Cat.jpg", "samoyed 54%", "Bombay", len(jpeg()))
    assert json.loads(path.read_text())["label"] == "Bombay"


@pytest.mark.parametrize("name, safe", [("../../.bashrc", "bashrc"), ("/etc/passwd", "passwd"),
                                        ("..", "upload"), ("C:\\Users\\me\\..\\cat.png", "cat.png"),
                                        ("a/../../b.jpg", "b.jpg"), ("\x00evil\n.jpg", "evil_.jpg"),
                                        ("Ünïcødé 猫.jpg", "n_c_d_.jpg")])
def test_hostile_file_names_are_sanitised_and_the_record_stays_in_the_journal(tmp_path, name, safe):
    assert safe_file_name(name) == safe
    path = record(tmp_path/"journal", name)
    assert path.resolve().parent == (tmp_path/"journal").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal"]


def test_a_label_that_is_not_a_breed_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(FeedbackError, match="'golden retriever' is not a breed this model can "
                                            "learn. Pick one from the list"):
        record(tmp_path, label="golden retriever")
    with pytest.raises(FeedbackError, match="not a breed"): record(tmp_path, label=None)
    assert record_files(tmp_path) == []


@pytest.mark.parametrize("content, message", [
    (b"", "cat.jpg is empty \\(0 bytes\\): there is no picture to record"),
    (b"These are my notes", "not recorded: cat.jpg is not an image this app can read")])
def test_an_empty_or_non_picture_upload_is_refused_with_a_message(tmp_path, content, message):
    with pytest.raises(FeedbackError, match=message): record(tmp_path, content=content)
    assert record_files(tmp_path) == []


def test_a_full_journal_says_so_and_keeps_what_it_has(tmp_path):
    first = record(tmp_path)
    cap = (journal_bytes(tmp_path) * 1.5) / 2**20
    with pytest.raises(FeedbackError, match=r"the feedback journal is full \(0\.0 MB of .* MB, 1 "
                                            r"corrections in .*\): this one was not recorded"):
        record(tmp_path, "second.jpg", max_mb=cap)
    assert record_files(tmp_path) == [first] and read_corrections(tmp_path)[0]["content"] == jpeg()


def test_two_corrections_at_once_are_both_kept_and_the_cap_holds_exactly(tmp_path):
    one = record(tmp_path, "first.jpg").stat().st_size
    cap = (one * 4.5) / 2**20   # room for three more
    outcomes, start = [], threading.Barrier(10)
    def correct(i):
        start.wait()
        try: record(tmp_path, f"cat{i}.jpg", max_mb=cap); outcomes.append("recorded")
        except FeedbackError as e: outcomes.append("full" if "full" in str(e) else str(e))
    threads = [threading.Thread(target=correct, args=(i,)) for i in range(10)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert sorted(outcomes) == ["full"] * 7 + ["recorded"] * 3
    records = read_corrections(tmp_path)
    assert len(records) == 4 and all(r["content"] == jpeg() for r in records)
    assert len({r["path"].name for r in records}) == 4


def test_many_corrections_at_once_without_a_cap_are_all_kept(tmp_path):
    threads = [threading.Thread(target=record, args=(tmp_path, "same-name.jpg")) for _ in range(12)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(read_corrections(tmp_path)) == 12   # the same upload name twice is two records


def test_a_crash_mid_write_leaves_no_record_and_no_half_written_file(tmp_path, monkeypatch):
    kept = record(tmp_path)
    before = kept.read_bytes()
    def half_then_crash(self, data):
        with open(self, "wb") as f: f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", half_then_crash)
    with pytest.raises(OSError, match="No space left"): record(tmp_path, "crash.jpg")
    monkeypatch.undo()
    assert record_files(tmp_path) == [kept] and kept.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_process_killed_mid_write_leaves_only_a_hidden_partial_file_that_readers_ignore(tmp_path):
    kept = record(tmp_path)
    (tmp_path/".20260101-000000-dead-cat.jpg.correction.json.123-ab.partial").write_bytes(
        b'{"file_name": "cat.jpg", "lab')
    (tmp_path/"hand-edited.correction.json").write_text("{not json")
    with pytest.warns(UserWarning, match="skipped hand-edited.correction.json: not a complete "
                                         "correction record"):
        records = read_corrections(tmp_path)
    assert [r["path"] for r in records] == [kept]


def test_the_journal_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(FEEDBACK_ENV, str(tmp_path/"mine"))
    assert feedback_root() == tmp_path/"mine"
    monkeypatch.delenv(FEEDBACK_ENV)
    from htc_dl.data import models_root
    assert feedback_root() == models_root()/"feedback"


def test_corrections_become_folders_per_label_with_their_real_extension(tmp_path):
    png = io.BytesIO(); Image.new("RGB", (32, 32)).save(png, "PNG")
    record(tmp_path/"j", "a.jpg", "pug")
    record(tmp_path/"j", "weird name.jpg", "Bombay", content=png.getvalue())
    files = corrections_to_folders(read_corrections(tmp_path/"j"), tmp_path/"out")
    assert sorted(str(f.relative_to(tmp_path/"out")) for f in files) == [
        "Bombay/correction_0001_weird_name.png", "pug/correction_0000_a.jpg"]


# ---------------------------------------------------------------- the app's control

@pytest.fixture(scope="module")
def toy_model():
    from htc_dl.saving import Classifier, build_model
    spec = dict(arch="torchvision/resnet18", vocab=BREEDS, size=[32, 32], resize="squish",
                notes=dict(photos="drawn"))
    return Classifier(build_model(spec), spec)


def upload(app, name, content):
    app.upload.set_state({"value": [dict(name=name, type="", size=len(content),
                                         content=memoryview(content), last_modified=0)]})


def said(app): return html.unescape(app.feedback.value)


def test_the_app_records_a_correction_for_the_last_picture_and_says_where(toy_model, tmp_path):
    from htc_dl.apps import classifier_app
    app = classifier_app(toy_model, journal=tmp_path/"journal")
    app.record.click()
    assert "Classify a picture first" in said(app)
    upload(app, "../../evil.jpg", jpeg())
    app.record.click()
    assert "Pick the right breed in the list first" in said(app)
    assert list(app.correct.options) == BREEDS
    app.correct.value = "samoyed"; app.record.click()
    assert ("Recorded: ../../evil.jpg is a samoyed (the model said: most likely" in said(app)
            and ": 1; retraining" in said(app))
    (r,) = read_corrections(tmp_path/"journal")
    assert ((r["label"], r["file_name"], r["content"]) == ("samoyed", "evil.jpg", jpeg())
            and r["answer"].startswith("most likely"))


def test_after_a_bad_upload_the_app_records_nothing_and_says_why(toy_model, tmp_path):
    from htc_dl.apps import classifier_app
    app = classifier_app(toy_model, journal=tmp_path)
    upload(app, "cat.jpg", jpeg()); upload(app, "notes.png", b"not a picture")
    app.correct.value = "pug"; app.record.click()
    assert "Classify a picture first" in said(app) and record_files(tmp_path) == []


def test_a_full_journal_or_a_broken_disk_is_shown_in_the_app_and_it_keeps_working(
        toy_model, tmp_path, monkeypatch):
    from htc_dl import feedback
    from htc_dl.apps import classifier_app
    app = classifier_app(toy_model, journal=tmp_path)
    upload(app, "cat.jpg", jpeg()); app.correct.value = "pug"
    monkeypatch.setattr(feedback, "MAX_JOURNAL_MB", 0.00001)
    monkeypatch.setattr(feedback.record_correction, "__defaults__", (None, 0.00001))
    app.record.click()
    assert "the feedback journal is full" in said(app) and record_files(tmp_path) == []
    monkeypatch.undo()
    def broken(*args, **kwargs): raise OSError(30, "Read-only file system")
    monkeypatch.setattr(feedback, "write_file_atomically", broken)
    app.record.click()
    assert ("Something went wrong (OSError: [Errno 30] Read-only file system). The correction was "
            "not recorded") in said(app)
    monkeypatch.undo()
    app.record.click()
    assert "Recorded: cat.jpg is a pug" in said(app) and len(record_files(tmp_path)) == 1


def photo_jpeg(name):
    "One of scikit-image's bundled photos as a JPEG upload."
    from skimage import data
    buffer = io.BytesIO(); Image.fromarray(getattr(data, name)()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_second_upload_with_the_same_name_is_recorded_with_its_own_picture(toy_model, tmp_path):
    from htc_dl.apps import classifier_app
    app = classifier_app(toy_model, journal=tmp_path)
    upload(app, "image.jpg", photo_jpeg("chelsea"))
    app.correct.value = "Bombay"; app.record.click()
    assert "Recorded: image.jpg is a Bombay" in said(app)
    upload(app, "image.jpg", photo_jpeg("coffee"))   # a new picture: the note about the cat must go
    assert said(app) == "" and app.correct.value is None
    app.correct.value = "pug"; app.record.click()
    assert "Recorded: image.jpg is a pug" in said(app) and ": 2; retraining" in said(app)
    first, second = read_corrections(tmp_path)
    assert (first["label"], first["content"]) == ("Bombay", photo_jpeg("chelsea"))
    assert (second["label"], second["content"]) == ("pug", photo_jpeg("coffee"))


def test_a_feedback_error_clears_when_a_good_picture_follows(toy_model, tmp_path):
    from htc_dl.apps import classifier_app
    app = classifier_app(toy_model, journal=tmp_path)
    upload(app, "image.jpg", b"a cut-off upload"); app.correct.value = "pug"; app.record.click()
    assert "Classify a picture first" in said(app) and record_files(tmp_path) == []
    upload(app, "image.jpg", photo_jpeg("astronaut"))
    assert said(app) == "" and "image.jpg: " in html.unescape(app.result.value)
    app.correct.value = "samoyed"; app.record.click()
    (r,) = read_corrections(tmp_path)
    assert "Recorded: image.jpg is a samoyed" in said(app)
    assert r["content"] == photo_jpeg("astronaut")
