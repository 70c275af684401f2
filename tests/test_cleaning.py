"""Cleaning data with the model (htc_dl.cleaning, htc_dl.cleaner_decisions): the planted mislabels
rank among the top losses, the cleaner's choices survive its category and split switches
(fastbook#359), and applying them moves files reversibly."""
import json, shutil
from pathlib import Path

import pytest
import torch

from htc_dl.cleaning import fraction_found, rank_by_loss
from htc_dl.cleaner_decisions import (DELETE, JOURNAL, KEEP, CleanerDecisions,
                                      apply_cleaner_decisions, quarantine_folder,
                                      undo_cleaner_decisions)
from htc_dl.data import breed_folders, planted_mislabels

pytest.importorskip("fastai.vision.all")
from fastai.vision.widgets import ImageClassifierCleaner
from fastai.vision.all import (CategoryBlock, ConvLayer, DataBlock, Flatten, ImageBlock, Learner,
                               RandomSplitter, Resize, get_image_files, nn, parent_label, resnet18,
                               set_seed, vision_learner)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    "A private copy of the offline breed folders (the tests move files)."
    dest = tmp_path_factory.mktemp("cleaning")/"breeds"
    shutil.copytree(breed_folders(source="offline", size="small"), dest)
    return dest


def breed_dls(path, size, **kwargs):
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                     get_y=parent_label, splitter=RandomSplitter(0.2, seed=42),
                     item_tfms=Resize(size), **kwargs).dataloaders(path, bs=16, num_workers=0)


@pytest.fixture(scope="module")
def cleaner(work):
    """fastai's cleaner on an untrained resnet18 at 32 pixels: the widget's behaviour does not
    depend on the model."""
    import fastai.vision.widgets, IPython.display
    # fastai expects IPython's built-in `display`; pytest has none
    fastai.vision.widgets.display = IPython.display.display
    torch.manual_seed(0)
    return ImageClassifierCleaner(vision_learner(breed_dls(work, 32), resnet18, pretrained=False),
                                  max_n=6)


def menus(cleaner):
    "(file, dropdown) for each picture on the cleaner's screen."
    return [(Path(f), box.children[1]) for f, box in zip(cleaner.fns, cleaner.iw.widget.children)]


def show(cleaner, split, label):
    cleaner.dd_ds.value, cleaner.dd_cats.value = split, label


def test_most_planted_mislabels_rank_among_the_top_losses(work):
    """The lesson's claim, with a model small enough for a test: a 3-layer CNN on 32-pixel pictures,
    8 epochs."""
    planted = planted_mislabels(work)
    assert len(planted) == 10
    set_seed(42, reproducible=True)
    tiny_cnn = nn.Sequential(ConvLayer(3, 16, stride=2), ConvLayer(16, 32, stride=2),
                             ConvLayer(32, 64, stride=2), nn.AdaptiveAvgPool2d(1), Flatten(),
                             nn.Linear(64, 3))
    learn = Learner(breed_dls(work, 32), tiny_cnn)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8, 1e-2)
    ranking = rank_by_loss(learn)
    assert len(ranking) == 120 and ranking.loss.is_monotonic_decreasing
    assert set(ranking.columns) == {"file", "label", "predicted", "probability", "loss"}
    found = fraction_found(ranking, planted, top=2 * len(planted))
    assert found >= 0.7, (f"only {found:.0%} of the planted mislabels are in the top "
                          f"{2 * len(planted)} losses")
    top = ranking[ranking.file.isin(list(planted))]
    assert (top.label != top.file.map(planted)).all()   # their folder is wrong, by construction


def test_fraction_found_counts_only_the_top_rows():
    import pandas as pd
    ranking = pd.DataFrame(dict(file=[Path("a"), Path("b"), Path("c"), Path("d")],
                                loss=[4., 3., 2., 1.]))
    assert fraction_found(ranking, {Path("b"): "x", Path("d"): "y"}, top=2) == 0.5
    assert fraction_found(ranking, [Path("b"), Path("d")], top=4) == 1.0
    with pytest.raises(ValueError, match="no mislabelled files"): fraction_found(ranking, {}, top=2)


def test_fastai_cleaner_alone_loses_a_choice_when_the_category_changes(cleaner):
    "fastbook#359, the reason CleanerDecisions exists: if fastai fixes it, this test tells us."
    show(cleaner, "Train", "Bombay")
    menus(cleaner)[0][1].value = DELETE
    assert list(cleaner.delete()) == [0]
    show(cleaner, "Train", "pug"); show(cleaner, "Train", "Bombay")
    assert list(cleaner.delete()) == []


def test_decisions_survive_category_and_split_switches_and_come_back_on_screen(cleaner):
    show(cleaner, "Train", "Bombay")
    decisions = CleanerDecisions(cleaner)
    (bombay_1, menu_1), (bombay_2, menu_2) = menus(cleaner)[:2]
    menu_1.value, menu_2.value = DELETE, "pug"
    show(cleaner, "Valid", "samoyed")
    valid_samoyed, menu = menus(cleaner)[0]
    menu.value = "Bombay"
    show(cleaner, "Train", "pug"); show(cleaner, "Valid", "pug")
    assert dict(decisions.items()) == {bombay_1: DELETE, bombay_2: "pug", valid_samoyed: "Bombay"}
    assert decisions.delete() == [bombay_1] and decisions.change() == [(bombay_2, "pug"),
                                                                       (valid_samoyed, "Bombay")]
    show(cleaner, "Train", "Bombay")
    # the choices are back on their menus
    assert [m.value for _, m in menus(cleaner)[:3]] == [DELETE, "pug", KEEP]
    menus(cleaner)[1][1].value = KEEP                             # a change of mind is recorded too
    assert dict(decisions.items()) == {bombay_1: DELETE, valid_samoyed: "Bombay"}
    assert repr(decisions) == "CleanerDecisions: 1 to delete, 1 to relabel"
    decisions.mark(bombay_1, KEEP)                              # marking by hand updates the screen
    assert menus(cleaner)[0][1].value == KEEP and len(decisions) == 1
    with pytest.raises(ValueError,
                       match=r"must be '<Keep>', '<Delete>' or a label in \['Bombay', 'pug', "
                             r"'samoyed'\]"):
        decisions.mark(bombay_1, "poodle")
    decisions.mark(valid_samoyed, KEEP)   # leave the shared cleaner as we found it
    assert len(decisions) == 0


def test_decisions_from_the_cleaner_apply_to_the_folder_the_learner_read(work, cleaner):
    show(cleaner, "Train", "samoyed")
    decisions = CleanerDecisions(cleaner)
    (gone, menu_1), (moved, menu_2) = menus(cleaner)[:2]
    menu_1.value, menu_2.value = DELETE, "pug"
    show(cleaner, "Valid", "Bombay")
    before = len(get_image_files(work))
    assert apply_cleaner_decisions(decisions, work) == dict(relabelled=1, deleted=1, already_done=0)
    assert not gone.exists() and (quarantine_folder(work)/"samoyed"/gone.name).exists()
    assert (work/"pug"/moved.name).exists() and len(get_image_files(work)) == before - 1
    assert undo_cleaner_decisions(work) == 2
    assert gone.exists() and moved.exists() and len(get_image_files(work)) == before


@pytest.fixture
def pets(tmp_path):
    "cat/1.jpg, cat/2.jpg, dog/2.jpg, dog/3.jpg, each holding its own original path."
    root = tmp_path/"pets"
    for rel in ["cat/1.jpg", "cat/2.jpg", "dog/2.jpg", "dog/3.jpg"]:
        (root/rel).parent.mkdir(parents=True, exist_ok=True); (root/rel).write_text(rel)
    return root


def contents(root):
    return {str(f.relative_to(root)): f.read_text() for f in sorted(Path(root).rglob("*.jpg"))}


def test_relabel_moves_delete_quarantines_and_a_taken_name_gets_a_suffix(pets):
    counts = apply_cleaner_decisions({pets/"cat/1.jpg": DELETE, pets/"cat/2.jpg": "dog",
                                      pets/"dog/3.jpg": KEEP}, pets)
    assert counts == dict(relabelled=1, deleted=1, already_done=0)
    assert contents(pets) == {"dog/2.jpg": "dog/2.jpg", "dog/2_1.jpg": "cat/2.jpg",
                              "dog/3.jpg": "dog/3.jpg"}
    quarantine = pets.parent/"pets_quarantine"
    assert contents(quarantine) == {"cat/1.jpg": "cat/1.jpg"}
    journal = json.loads((quarantine/JOURNAL).read_text())
    assert journal == [{"action": "delete", "from": "cat/1.jpg", "to": "cat/1.jpg"},
                       {"action": "relabel", "from": "cat/2.jpg", "to": "dog/2_1.jpg"}]


def test_applying_the_same_decisions_twice_moves_nothing_the_second_time(pets):
    # a new label gets a new folder
    decisions = {pets/"cat/1.jpg": DELETE, pets/"cat/2.jpg": "bird"}
    apply_cleaner_decisions(decisions, pets)
    after_once = contents(pets)
    assert apply_cleaner_decisions(decisions, pets) == dict(relabelled=0, deleted=0, already_done=2)
    assert contents(pets) == after_once and "bird/2.jpg" in after_once
    # relative paths work too
    assert apply_cleaner_decisions({Path("cat/1.jpg"): DELETE}, pets)["already_done"] == 1


def test_undo_puts_every_file_back_and_is_safe_to_repeat(pets):
    original = contents(pets)
    apply_cleaner_decisions({pets/"cat/1.jpg": DELETE, pets/"cat/2.jpg": "dog",
                             pets/"dog/3.jpg": "cat"}, pets)
    assert undo_cleaner_decisions(pets) == 3
    assert contents(pets) == original and undo_cleaner_decisions(pets) == 0
    assert json.loads((pets.parent/"pets_quarantine"/JOURNAL).read_text()) == []
    # and can be applied again
    assert apply_cleaner_decisions({pets/"cat/1.jpg": DELETE}, pets)["deleted"] == 1


def test_one_bad_decision_stops_everything_before_any_file_moves(pets):
    original = contents(pets)
    for decisions, message in [({pets/"cat/1.jpg": DELETE, pets/"cat/9.jpg": "dog"},
                                "cat/9.jpg does not exist"),
                               ({pets/"cat/1.jpg": DELETE, pets/"dog/3.jpg": "../escape"},
                                "plain folder name"),
                               ({pets/"cat/1.jpg": DELETE, pets.parent/"elsewhere.jpg": "dog"},
                                "is not inside")]:
        with pytest.raises(ValueError, match=message): apply_cleaner_decisions(decisions, pets)
        assert contents(pets) == original
    with pytest.raises(ValueError, match="inside"):
        apply_cleaner_decisions({}, pets, quarantine=pets/"bin")


def test_changing_an_applied_decision_asks_for_undo_first(pets):
    apply_cleaner_decisions({pets/"cat/2.jpg": "dog"}, pets)
    with pytest.raises(ValueError,
                       match="cat/2.jpg was already relabelled to dog/2_1.jpg: undo first"):
        apply_cleaner_decisions({pets/"cat/2.jpg": DELETE}, pets)


def test_undo_never_overwrites_a_file_that_came_back(pets):
    apply_cleaner_decisions({pets/"cat/1.jpg": DELETE}, pets)
    (pets/"cat/1.jpg").write_text("a new picture with the old name")
    with pytest.raises(FileExistsError, match="cat/1.jpg exists again"):
        undo_cleaner_decisions(pets)
    assert (pets/"cat/1.jpg").read_text() == "a new picture with the old name"
    assert (pets.parent/"pets_quarantine/cat/1.jpg").read_text() == "cat/1.jpg"


def test_decisions_without_a_cleaner_check_labels_when_given_them():
    decisions = CleanerDecisions(labels=["cat", "dog"])
    decisions.mark("cat/1.jpg", DELETE); decisions.mark("dog/3.jpg", "cat")
    assert decisions.delete() == [Path("cat/1.jpg")] and decisions.change() == [(Path("dog/3.jpg"),
                                                                                 "cat")]
    with pytest.raises(ValueError, match="a label in"): decisions.mark("dog/3.jpg", "bird")
