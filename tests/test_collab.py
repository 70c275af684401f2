"""htc_dl.collab outside the lesson: bad ratings tables, the embedding from scratch, and what
training recovers of the planted truth."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from htc_dl.collab import (DotProduct, DotProductBias, ScratchEmbedding, encode_ratings,
                           factor_recovery_r2, fit_collab, most_similar, noise_floor_ratio,
                           one_hot_lookup, rating_range, sigmoid_range)
from htc_dl.ratings import check_ratings, ratings_vocab, read_ratings
from htc_dl.data import movielens, planted_truth


@pytest.fixture(scope="module")
def small_run(one_torch_thread):
    """The lesson's recipe (rank 5, wd 0.3, 20 epochs) trained once on the small offline ratings
    with an 80/20 split."""
    path = movielens(source="offline", size="small")
    ratings, truth = read_ratings(path), planted_truth(path)
    valid_rows = np.random.default_rng(42).permutation(len(ratings))[: len(ratings) // 5]
    valid, train = ratings.iloc[valid_rows], ratings.drop(ratings.index[valid_rows])
    model, valid_mse = fit_collab(train, valid)
    return dict(ratings=ratings, truth=truth, train=train, valid=valid, model=model,
                valid_mse=valid_mse)


# ---------------------------------------------------------------- reading and checking ratings

def test_ratings_with_other_column_names_get_an_error_naming_them_and_the_fix():
    theirs = pd.DataFrame({"uid": [1, 2], "mid": [10, 20]})
    with pytest.raises(ValueError) as e: check_ratings(theirs)
    message = str(e.value)
    assert message.startswith("ratings need columns user, item, rating; got ['uid', 'mid']")
    assert "Rename them or pass names=" in message


def test_names_maps_other_columns_and_a_rating_column_of_text_is_refused():
    theirs = pd.DataFrame({"uid": [1, 2], "mid": [10, 20], "stars": [4.0, 3.5],
                           "movie": ["a", "b"]})
    renamed = check_ratings(theirs, names=dict(user="uid", item="mid", rating="stars"))
    assert (list(renamed.columns) == ["user", "movie", "rating"]
            and renamed.movie.tolist() == [10, 20])
    with pytest.raises(ValueError, match="must hold numbers.*pd.to_numeric"):
        check_ratings(theirs.assign(stars=["4", "3"]),
                      names=dict(user="uid", item="mid", rating="stars"))
    with pytest.raises(ValueError, match="2 ratings are empty"):
        check_ratings(theirs.assign(stars=[np.nan, np.nan]),
                      names=dict(user="uid", item="mid", rating="stars"))


def test_a_folder_without_movielens_files_says_how_to_get_them(tmp_path):
    (tmp_path/"u.data").write_text("1\t1\t5\t0\n")
    with pytest.raises(FileNotFoundError, match=r"has no u.item.*htc_dl.data.movielens\(\)"):
        read_ratings(tmp_path)


def test_offline_ratings_read_as_ml100k_with_a_title_for_every_rating(small_run):
    ratings, truth = small_run["ratings"], small_run["truth"]
    assert list(ratings.columns) == ["user", "movie", "rating", "timestamp", "title"]
    # repeated pairs are dropped
    assert len(ratings) == truth["n_ratings"] and 40_000 < len(ratings) <= 45_000
    assert ratings.title.notna().all() and ratings.title.str.match(r".+ \(\d{4}\)$").all()


def test_ids_outside_the_vocab_are_refused_with_the_fix():
    ratings = pd.DataFrame({"user": [7, 9], "movie": [30, 10], "rating": [5.0, 1.0]})
    users, movies = ratings_vocab(ratings)
    assert encode_ratings(ratings, users, movies)[0].tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"1 ratings have movie ids the model does not know "
                                         r"\(e.g. 99\).*ratings_vocab"):
        encode_ratings(ratings.assign(movie=[30, 99]), users, movies)


# ---------------------------------------------------------------- the models

def test_scratch_embedding_gives_the_same_outputs_and_gradients_as_nn_embedding():
    scratch, reference = ScratchEmbedding(7, 4), nn.Embedding(7, 4)
    with torch.no_grad(): reference.weight.copy_(scratch.weight)
    idx = torch.tensor([[1, 6], [6, 6]])
    assert torch.equal(scratch(idx), reference(idx)) and scratch(idx).shape == (2, 2, 4)
    (scratch(idx) * torch.arange(4.)).sum().backward()
    (reference(idx) * torch.arange(4.)).sum().backward()
    assert torch.allclose(scratch.weight.grad, reference.weight.grad)
    assert scratch.weight.grad[6].tolist() == [0., 3., 6., 9.]   # looked up three times
    assert [n for n, _ in scratch.named_parameters()] == ["weight"]


def test_embedding_equals_one_hot_rows_times_the_matrix():
    emb = nn.Embedding(9, 3)
    idx = torch.tensor([8, 0, 8, 4])
    assert torch.allclose(one_hot_lookup(idx, emb.weight), emb(idx))


def test_predictions_stay_inside_y_range_even_for_huge_factors():
    for cls in (DotProduct, DotProductBias):
        model = cls(3, 4, 2, y_range=(0, 5.5))
        with torch.no_grad():
            for p in model.parameters(): p.fill_(30.)
        x = torch.tensor([[0, 0], [2, 3]])
        assert ((model(x) > 5.49) & (model(x) <= 5.5)).all()
    assert rating_range(pd.DataFrame({"rating": [1, 2, 5]})) == (0.0, 5.5)
    assert torch.allclose(sigmoid_range(torch.tensor([0.]), -2, 8), torch.tensor([3.]))


def test_most_similar_ranks_by_direction_not_length():
    factors = np.array([[1., 0], [0, 1], [10, 0.5], [-1, 0], [0.7, 0.7]])
    assert most_similar(factors, 0, k=4).tolist() == [2, 4, 1, 3]


# ---------------------------------------------------------------- the planted truth

def test_factor_recovery_r2_sees_through_any_invertible_linear_map_and_not_through_noise():
    rng = np.random.default_rng(1)
    planted = rng.normal(size=(300, 5))
    rotated = planted @ rng.normal(size=(5, 5)) + 2.0
    assert (factor_recovery_r2(rotated, planted, np.arange(150), np.arange(150, 300))
            == pytest.approx(1.0))
    assert factor_recovery_r2(rng.normal(size=(300, 5)), planted, np.arange(150),
                              np.arange(150, 300)) < 0.1


def test_small_mode_training_gets_within_1_3x_of_the_noise_floor(small_run):
    ratio = noise_floor_ratio(small_run["valid_mse"][-1], small_run["truth"]["noise_sd"])
    # no model reaches 1.0: 45,000 ratings leave every movie's factors a little uncertain
    assert 1.0 < ratio <= 1.3, ratio
    assert small_run["valid_mse"][-1] < small_run["valid_mse"][2]   # and the epochs helped


def test_learned_movie_factors_recover_the_planted_ones_for_movies_with_ratings(small_run):
    model, truth, train = small_run["model"], small_run["truth"], small_run["train"]
    users, movies = ratings_vocab(pd.concat([train, small_run["valid"]]))
    learned = model.movie_factors.weight.detach().numpy()
    planted = truth["movie_factors"][movies - 1]
    counts = train.movie.value_counts().reindex(movies).fillna(0).values
    well_rated = np.random.default_rng(0).permutation(np.flatnonzero(counts >= 10))
    half = len(well_rated) // 2
    r2 = factor_recovery_r2(learned, planted, well_rated[:half], well_rated[half:])
    assert r2 >= 0.8, r2
    rarely_rated = np.flatnonzero((counts > 0) & (counts < 10))
    # the bootstrapping problem
    assert factor_recovery_r2(learned, planted, well_rated[:half], rarely_rated) < r2 - 0.3


def test_learned_biases_follow_the_planted_ones(small_run):
    model, truth = small_run["model"], small_run["truth"]
    users, movies = ratings_vocab(small_run["ratings"])
    r = np.corrcoef(model.movie_bias.weight[:, 0].detach().numpy(),
                    truth["movie_bias"][movies - 1])[0, 1]
    assert r > 0.8, r
