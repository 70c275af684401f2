"""Lesson 6h's GAN machinery outside the lesson (htc_dl.gans): the networks' shapes, saving and
loading a generator, a damaged or missing file, training on first use, and the judge's measures on
numbers whose answers are known."""
import math

import pytest
import torch

from htc_dl.data import mnist
from htc_dl.gans import (GAN_FILE, N_LATENT, DigitCritic, DigitUNet, blur, cached_gan,
                         coverage_entropy, damage, digit_coverage, digit_frechet,
                         frechet_distance, generate, load_gan, nearest_training,
                         recognisable_share, restore, save_gan, sharpness, train_digit_gan,
                         train_restorer)
from htc_dl.latent import MIXER_SETTINGS, fit_digit_classifier, load_digits


@pytest.fixture(scope="module")
def digits(one_torch_thread):
    "100 training and 30 held-out real digits of each kind (small offline MNIST)."
    path = mnist(source="offline", size="small")
    return (*load_digits(path, "training", 100), *load_digits(path, "testing", 30))


@pytest.fixture(scope="module")
def judge(digits):
    x_train, y_train, x_valid, y_valid = digits
    return fit_digit_classifier(x_train, y_train, x_valid, y_valid, epochs=8)[0]


@pytest.fixture(scope="module")
def tiny_gan(one_torch_thread):
    "A GAN trained for one epoch with few features: enough to save, load and compare."
    return train_digit_gan("offline", "small", epochs=1, n_features=8)


def test_the_gan_uses_the_digit_mixer_s_latent_size_and_draws_28_px_digits_in_0_1(tiny_gan):
    assert N_LATENT == MIXER_SETTINGS["vae"]["n_latent"] == tiny_gan.n_latent
    images = generate(tiny_gan, torch.randn(7, N_LATENT))
    assert images.shape == (7, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert not tiny_gan.training and tiny_gan.about["steps"] == 125
    assert DigitCritic()(images).shape == (7,) and DigitCritic()(images.view(7, 784)).shape == (7,)


def test_generate_rejects_codes_of_the_wrong_size_with_the_fix(tiny_gan):
    with pytest.raises(ValueError, match=r"shape \(n, 20\), got \(3, 8\).*torch.randn"):
        generate(tiny_gan, torch.randn(3, 8))


def test_saved_generator_draws_the_same_digits_and_leaves_no_temporary_file(tiny_gan, tmp_path):
    saved = save_gan(tiny_gan, tmp_path/GAN_FILE)
    loaded = load_gan(saved)
    codes = torch.randn(5, N_LATENT)
    assert torch.allclose(generate(loaded, codes), generate(tiny_gan, codes), atol=1e-6)
    assert loaded.about == tiny_gan.about and loaded.n_features == 8
    assert [p.name for p in tmp_path.iterdir()] == [GAN_FILE]


def test_a_damaged_file_raises_a_value_error_naming_the_file_and_the_fix(tiny_gan, tmp_path):
    saved = save_gan(tiny_gan, tmp_path/GAN_FILE)
    saved.write_bytes(saved.read_bytes()[:200])                   # cut short, as by a crash
    with pytest.raises(ValueError, match=f"{saved} is not a readable saved GAN.*cached_gan"):
        load_gan(saved)
    with pytest.raises(FileNotFoundError, match="cached_gan"):
        load_gan(tmp_path/"nothing.safetensors")


def test_cached_gan_retrains_over_a_damaged_file_then_loads_what_it_saved(tmp_path):
    (tmp_path/GAN_FILE).write_bytes(b"not a model")
    first, note = cached_gan(tmp_path, source="offline", size="small", epochs=1, n_features=8)
    assert note.startswith("No usable saved GAN") and "saved to" in note, note
    again, note = cached_gan(tmp_path)
    assert note.startswith("GAN loaded from"), note
    codes = torch.randn(4, N_LATENT)
    assert torch.allclose(generate(again, codes), generate(first, codes), atol=1e-6)


def test_frechet_distance_is_zero_for_a_set_against_itself_and_grows_with_shift_and_spread():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(3000, 4, generator=g)
    assert abs(frechet_distance(points, points)) < 1e-6
    assert frechet_distance(points, torch.randn(3000, 4, generator=g)) < 0.05
    # a shift of 1 in 4 numbers adds 4; doubling the spread adds trace((2 - 1)^2 I) = 4
    assert frechet_distance(points, points + 1) == pytest.approx(4, abs=0.01)
    assert frechet_distance(points, 2 * points) == pytest.approx(4, abs=0.3)


def test_the_judge_puts_real_digits_closer_to_real_digits_than_noise(digits, judge):
    x_train, _, x_valid, y_valid = digits
    real = digit_frechet(judge, x_valid, x_train)
    noise = digit_frechet(judge, torch.rand(300, 784), x_train)
    assert real < noise / 3
    assert recognisable_share(judge, x_valid) > recognisable_share(judge, torch.rand(300, 784))
    assert coverage_entropy(digit_coverage(judge, x_valid)) > 3
    assert coverage_entropy(digit_coverage(judge, x_valid[y_valid == 1])) < 1    # one digit only


def test_coverage_entropy_is_log2_10_when_even_and_0_for_one_digit():
    assert coverage_entropy(torch.full((10,), 0.1)) == pytest.approx(math.log2(10))
    assert coverage_entropy([1.0] + [0.0] * 9) == 0
    assert coverage_entropy([0.5, 0.5] + [0.0] * 8) == pytest.approx(1.0)


def test_a_blurred_digit_is_less_sharp_than_the_digit(digits):
    x_train = digits[0]
    square = torch.zeros(1, 28, 28); square[:, 8:20, 8:20] = 1
    assert sharpness(square) == pytest.approx(4 * 12 / 27**2, abs=0.002)
    assert sharpness(blur(x_train)) < 0.8 * sharpness(x_train)
    assert sharpness(torch.full((3, 28, 28), 0.7)) == 0


def test_nearest_training_finds_each_digit_s_own_row(digits):
    x_train = digits[0]
    rows, distances = nearest_training(x_train[[3, 404, 999]] + 0.02, x_train)
    assert rows.tolist() == [3, 404, 999]
    assert torch.allclose(distances, torch.full((3,), 0.02), atol=1e-4)


def test_a_briefly_trained_unet_restores_damaged_digits_better_than_the_damage(digits):
    clean = digits[0][:512].view(-1, 28, 28)
    broken = damage(clean, seed=1)
    assert torch.equal(damage(clean, seed=1), broken)
    assert not torch.equal(damage(clean, seed=2), broken)
    unet, history = train_restorer(DigitUNet(8), broken, clean, epochs=3)
    assert history[-1] < history[0]
    assert (restore(unet, broken) - clean).abs().mean() < 0.8 * (broken - clean).abs().mean()
