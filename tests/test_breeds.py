"""The honest answer (htc_dl.breeds): ImageNet's cat and dog classes mapped to Oxford-IIIT Pets
breeds, and the rule that says a breed, 'a cat'/'a dog', or 'not a cat or a dog', checked on real
photos shipped in scikit-image."""
import json, os, subprocess, sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from htc_dl.breeds import (IMAGENET_CATS, IMAGENET_DOGS, PET_THRESHOLD, PETS_BREEDS,
                           PETS_FROM_IMAGENET, PETS_WITHOUT_IMAGENET, ImageNetPets, honest_answer,
                           honest_answer_table, pet_kind)
from htc_dl.pretrained import imagenet_labels

LABELS = imagenet_labels()


@pytest.fixture(scope="module")
def pets_model():
    return ImageNetPets(source="offline")


@pytest.fixture(scope="module")
def real_probs(pets_model):
    """ImageNet's probabilities for real photos: a cat, coffee, a rocket, an astronaut, a horse, a
    camera man."""
    return {name: pets_model.probabilities(
                Image.fromarray(getattr(photos, name)()).convert("RGB")).numpy()
            for name in ("chelsea", "coffee", "rocket", "astronaut", "horse", "camera")}


def test_the_cat_photo_gets_a_cat_answer_with_its_probability(real_probs):
    a = honest_answer(real_probs["chelsea"], LABELS)
    assert a["kind"] in ("breed", "other_pet") and a["text"].startswith("a cat"), a
    assert a["pet_probability"] > 0.8 and 0.2 < a["imagenet_probability"] < 1, a
    assert (f"{a['imagenet_probability']:.0%}" in a["text"]
            and a["imagenet_label"] in ("tabby", "tiger cat", "Egyptian cat")), a


@pytest.mark.parametrize("name, sees", [("coffee", "espresso"), ("rocket", None),
                                        ("astronaut", None), ("camera", None)])
def test_objects_and_people_are_not_a_cat_or_a_dog_and_the_answer_says_what_the_model_sees(
        real_probs, name, sees):
    a = honest_answer(real_probs[name], LABELS)
    assert a["kind"] == "not_pet" and a["label"] is None, a
    assert a["text"] == ("this does not look like a cat or a dog (the model sees: "
                         f"{a['imagenet_label']} {a['imagenet_probability']:.0%})")
    assert a["pet_probability"] < 0.1, a
    if sees: assert a["imagenet_label"] == sees and a["imagenet_probability"] > 0.5, a


def test_the_mapping_names_25_pets_breeds_and_lists_the_12_gaps():
    assert len(PETS_BREEDS) == 37 and len(set(PETS_BREEDS)) == 37
    assert len(PETS_FROM_IMAGENET) == 25 and len(set(PETS_FROM_IMAGENET.values())) == 25
    assert (set(PETS_FROM_IMAGENET) <= IMAGENET_CATS | IMAGENET_DOGS and len(IMAGENET_CATS) == 5
            and len(IMAGENET_DOGS) == 118)
    assert sorted(PETS_WITHOUT_IMAGENET) == sorted(["Abyssinian", "Bengal", "Birman", "Bombay",
                                                    "British_Shorthair", "Maine_Coon", "Ragdoll",
                                                    "Russian_Blue", "Sphynx", "american_bulldog",
                                                    "havanese", "shiba_inu"])
    for i, breed in PETS_FROM_IMAGENET.items():
        assert pet_kind(breed) == ("cat" if i in IMAGENET_CATS else "dog"), (i, LABELS[i], breed)
    assert LABELS[285] == "Egyptian cat" and PETS_FROM_IMAGENET[285] == "Egyptian_Mau"
    assert LABELS[254].startswith("pug") and PETS_FROM_IMAGENET[254] == "pug"


def probabilities(**by_index):
    probs = np.full(1000, 0.0)
    for i, p in by_index.items(): probs[int(i[1:])] = p
    probs[probs == 0] = (1 - probs.sum()) / (probs == 0).sum()
    return probs


def test_a_dog_imagenet_knows_but_pets_lacks_is_a_dog_with_imagenets_name():
    a = honest_answer(probabilities(i207=0.71, i208=0.1), LABELS)
    assert (a["kind"], a["label"]) == ("other_pet", "dog")
    assert a["text"].startswith("a dog; ImageNet says 'golden retriever' 71%"), a
    # every dog class counts for "a dog"
    assert a["probability"] == pytest.approx(0.81 + 116 * (0.19 / 998), rel=1e-6)


def test_a_pets_breed_is_answered_with_the_probability_of_its_imagenet_class():
    a = honest_answer(probabilities(i258=0.66, i270=0.2), LABELS)
    assert (a["kind"], a["label"], round(a["probability"], 2)) == ("breed", "samoyed", 0.66)
    assert a["text"] == "a dog: samoyed 66% (ImageNet's 'Samoyed')"


def test_the_threshold_decides_between_pet_and_not_pet():
    # pug the likeliest class, but cats and dogs < 50%
    pug_but_unsure = honest_answer(probabilities(i254=0.4, i967=0.3), LABELS)
    assert pug_but_unsure["pet_probability"] < PET_THRESHOLD and pug_but_unsure["kind"] == "not_pet"
    assert "the model sees: pug 40%" in pug_but_unsure["text"]
    assert honest_answer(probabilities(i254=0.6), LABELS)["kind"] == "breed"
    with pytest.raises(ValueError, match="3 probabilities for 1000 labels"):
        honest_answer([0.2, 0.3, 0.5], LABELS)


def rule_from_table(table, probs, labels):
    """The rule written again from the JSON table alone, as the browser app does (no import of
    htc_dl.breeds)."""
    cats, dogs = set(table["imagenet_cats"]), set(table["imagenet_dogs"])
    pets = sorted(cats | dogs)
    total = sum(probs[i] for i in pets)
    if total < table["threshold"]:
        best = int(np.argmax(probs))
        return "not_pet", None, table["texts"]["not_pet"].format(
            name=labels[best].split(",")[0], p=round(100 * probs[best]))
    best = max(pets, key=lambda i: probs[i])
    kind, name = ("cat" if best in cats else "dog"), labels[best].split(",")[0]
    if str(best) in table["pets_from_imagenet"]:
        breed = table["pets_from_imagenet"][str(best)]
        return "breed", breed, table["texts"]["breed"].format(
            kind=kind, breed=breed.replace("_", " "), name=name, p=round(100 * probs[best]))
    return "other_pet", kind, table["texts"]["other_pet"].format(
        kind=kind, name=name, p=round(100 * probs[best]))


def test_the_json_table_is_enough_to_apply_the_same_rule_elsewhere(real_probs):
    table = json.loads(json.dumps(honest_answer_table()))
    rng = np.random.default_rng(0)
    cases = list(real_probs.values()) + [rng.dirichlet(np.full(1000, 0.02)) for _ in range(200)]
    cases += [probabilities(**{f"i{i}": 0.7}) for i in (151, 207, 281, 285, 967)]
    kinds = set()
    for probs in cases:
        a = honest_answer(probs, LABELS)
        kinds.add(a["kind"])
        assert rule_from_table(table, probs, LABELS) == (a["kind"], a["label"], a["text"]), a
    assert kinds == {"breed", "other_pet", "not_pet"}


def test_the_imagenet_app_model_answers_and_lists_imagenets_top_classes(pets_model):
    a = pets_model.answer(Image.fromarray(photos.coffee()), k=4)
    assert (a["kind"] == "not_pet" and len(a["top"]) == 4
            and a["top"][0] == (a["imagenet_label"], pytest.approx(a["imagenet_probability"])))
    assert (pets_model.vocab == list(PETS_BREEDS)
            and pets_model.spec["arch"].startswith("EfficientNet-Lite0"))
