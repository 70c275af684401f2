"""The recommender app driven through its widgets, without a browser: sliders, existing users, bad
input, the saved model."""
import re
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import htc_dl.recommender as recommender
from htc_dl.data import movielens
from htc_dl.recommender import (_data_fingerprint, cached_recommender, collab_weights,
                                load_recommender, recommender_app)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    """The app's model trained once by `cached_recommender` into a temporary models folder, on one
    thread."""
    folder = tmp_path_factory.mktemp("models")
    model, ratings = cached_recommender(source="offline", size="small", folder=folder)
    return dict(model=model, ratings=ratings, folder=folder)


@pytest.fixture
def app(trained):
    return recommender_app(trained["model"], trained["ratings"])


def titles_in(table_html):
    "The movie titles of an HTML recommendations table, best first."
    rows = re.findall(r"<tr>(.*?)</tr>", table_html)[1:]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r)[1] for r in rows]


def predicted(table_html):
    "The predicted ratings of an HTML recommendations table."
    rows = re.findall(r"<tr>(.*?)</tr>", table_html)[1:]
    return [float(re.findall(r"<td[^>]*>(.*?)</td>", r)[2]) for r in rows]


# ---------------------------------------------------------------- new user

def test_new_user_starts_at_the_average_taste_with_ten_recommendations_best_first(app):
    assert len(app.sliders) == 3 and all(s.value == 0 for s in app.sliders)
    ratings = predicted(app.recommendations.value)
    assert len(ratings) == 10 and ratings == sorted(ratings, reverse=True)
    assert all(low and high for low, high in app.slider_labels)


def test_moving_a_slider_reranks_the_movies_and_moving_it_back_restores_them(app):
    start = app.recommendations.value
    app.sliders[0].value = 3.0
    assert app.recommendations.value != start
    app.sliders[0].value = 0.0
    assert app.recommendations.value == start


def test_pushing_a_slider_towards_an_end_favours_the_movies_named_at_that_end(app):
    row_of = {t: i for i, t in enumerate(app.movie_titles)}
    for i, (low, high) in enumerate(app.slider_labels):
        lows, highs = [row_of[t] for t in low.split(", ")], [row_of[t] for t in high.split(", ")]
        app.sliders[i].value = -3.0; at_low = app.new_user_ratings()
        app.sliders[i].value = 3.0; at_high = app.new_user_ratings()
        app.sliders[i].value = 0.0
        gain = at_high - at_low
        assert gain[highs].min() > 0 > gain[lows].max(), (i, gain[highs], gain[lows])


def test_every_slider_update_takes_under_200_ms(app):
    for v in np.tile(np.linspace(-3, 3, 13), 4):
        for s in app.sliders: s.value = float(round(v, 1))
    times = np.array(app.timings[1:])
    assert len(times) >= 100
    assert np.percentile(times, 95) < 200, (np.median(times), np.percentile(times, 95))


def test_an_empty_catalogue_shows_a_message_and_lowering_the_minimum_brings_movies_back(app):
    app.min_ratings.max = 10_000; app.min_ratings.value = 10_000
    assert ("The catalogue is empty: no movie has at least 10000 ratings. Lower 'min ratings'"
            in app.recommendations.value)
    app.sliders[0].value = 1.0   # still a message, not an error
    assert "catalogue is empty" in app.recommendations.value
    app.min_ratings.value = 10
    assert len(titles_in(app.recommendations.value)) == 10


def test_only_movies_with_enough_ratings_are_recommended(trained, app):
    per_title = trained["ratings"].groupby("title").size()
    app.min_ratings.value = 40
    assert all(per_title[t] >= 40 for t in titles_in(app.recommendations.value))


# ---------------------------------------------------------------- existing user

def test_an_existing_user_sees_new_movies_next_to_what_they_rated(trained, app):
    ratings = trained["ratings"]
    app.user_id.value = "7"
    page = app.user_view.value
    assert "Recommended for user 7" in page and "What they rated" in page
    recommended_part, rated_part = page.split("What they rated")
    theirs = set(ratings[ratings.user == 7].title)
    recommended = titles_in(recommended_part)
    assert len(recommended) == 10 and not theirs & set(recommended)
    best = ratings[ratings.user == 7].sort_values("rating", ascending=False).title.iloc[0]
    assert best in rated_part


def test_unknown_and_malformed_user_ids_get_a_clear_message_and_the_app_still_works(app):
    app.user_id.value = "99999"
    assert ("User '99999' is not in the model: known ids run from 1 to 400 (400 users)"
            in app.user_view.value)
    assert "New user" in app.user_view.value
    app.user_id.value = "abc"
    assert "User 'abc' is not in the model" in app.user_view.value
    app.user_id.value = " 12 "
    assert "Recommended for user 12" in app.user_view.value
    app.user_id.value = ""
    assert "Type a user id" in app.user_view.value


def test_a_failing_handler_shows_a_message_and_the_next_move_works(app, monkeypatch):
    def broken(*args): raise RuntimeError("out of memory")
    monkeypatch.setattr(recommender, "predicted_ratings", broken)
    app.sliders[1].value = 2.0
    assert "Something went wrong (RuntimeError: out of memory)" in app.recommendations.value
    monkeypatch.undo()
    app.sliders[1].value = 1.0
    assert len(titles_in(app.recommendations.value)) == 10


def test_no_ratings_at_all_gives_a_message_instead_of_an_app(trained):
    empty = trained["ratings"].iloc[:0]
    app = recommender_app(trained["model"], empty)
    assert "The catalogue is empty: there are no ratings" in app.recommendations.value


def test_a_model_without_factors_or_with_the_wrong_ids_is_refused_with_the_reason(trained):
    with pytest.raises(ValueError, match="needs a dot-product model.*Sequential"):
        recommender_app(nn.Sequential(nn.Linear(2, 1)), trained["ratings"])
    with pytest.raises(ValueError, match="399 users given but the model has 400 rows.*dls.classes"):
        recommender_app(trained["model"], trained["ratings"], users=list(range(1, 400)))


def test_a_fastai_style_model_with_a_placeholder_row_works(trained):
    """fastai's collab models name their weights u_weight, i_weight, ... and keep row 0 for unknown
    ids ('#na#')."""
    m = trained["model"]
    class EmbeddingDotBias(nn.Module):
        def __init__(self):
            super().__init__()
            pad = lambda w: nn.Embedding.from_pretrained(
                torch.cat([torch.zeros(1, w.shape[1]), w.detach()]))
            self.u_weight, self.i_weight = pad(m.user_factors.weight), pad(m.movie_factors.weight)
            self.u_bias, self.i_bias = pad(m.user_bias.weight), pad(m.movie_bias.weight)
            self.y_range = m.y_range
    ratings = trained["ratings"]
    fastai_like = recommender_app(EmbeddingDotBias(), ratings,
                                  users=["#na#", *np.sort(ratings.user.unique())],
                                  movies=["#na#", *np.sort(ratings.movie.unique())])
    ours = recommender_app(m, ratings)
    assert fastai_like.recommendations.value == ours.recommendations.value
    fastai_like.user_id.value = ours.user_id.value = "3"
    assert fastai_like.user_view.value == ours.user_view.value
    fastai_like.user_id.value = "#na#"
    assert "not in the model" in fastai_like.user_view.value


# ---------------------------------------------------------------- the saved model

def test_the_model_is_trained_once_then_loaded_from_safetensors_without_temporary_files(
        trained, capsys):
    folder = trained["folder"]
    assert [p.name for p in folder.iterdir()] == ["recommender_movielens_small.safetensors"]
    model, _ = cached_recommender(source="offline", size="small", folder=folder)
    assert "recommender: loaded" in capsys.readouterr().out
    for a, b in zip(model.state_dict().values(), trained["model"].state_dict().values()):
        assert torch.equal(a, b)
    from safetensors import safe_open
    with safe_open(folder/"recommender_movielens_small.safetensors", framework="pt") as f:
        assert set(f.keys()) == {"user_factors.weight", "movie_factors.weight", "user_bias.weight",
                                 "movie_bias.weight"}
        assert f.metadata()["data"] == _data_fingerprint(movielens(source="offline", size="small"))


def test_a_later_launch_loads_the_model_faster_than_the_first_launch_trains_it(
        tmp_path, one_torch_thread):
    start = time.perf_counter()
    first, _ = cached_recommender(source="offline", size="small", folder=tmp_path)
    first_launch = time.perf_counter() - start
    start = time.perf_counter()
    again, _ = cached_recommender(source="offline", size="small", folder=tmp_path)
    second_launch = time.perf_counter() - start
    assert first_launch < 30 and second_launch < first_launch, (first_launch, second_launch)
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_a_damaged_or_foreign_model_file_is_trained_again(trained, tmp_path, capsys):
    path = movielens(source="offline", size="small")
    file = tmp_path/"recommender_movielens_small.safetensors"
    file.write_bytes(b"\x00" * 100)
    assert load_recommender(file, _data_fingerprint(path))[0] is None
    model, ratings = cached_recommender(source="offline", size="small", folder=tmp_path)
    out = capsys.readouterr().out
    assert "it could not be read" in out and "saved to" in out
    assert load_recommender(file, _data_fingerprint(path))[1] == "loaded"
    assert load_recommender(file, "12:abc")[1] == "it was trained on other data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [file.name]


# ---------------------------------------------------------------- the Voila app's start

def test_the_voila_app_reads_the_saved_weights_without_importing_pytorch(trained):
    """The app page must be up in seconds: it reads the safetensors file as NumPy arrays and never
    imports torch."""
    import json, subprocess, sys
    code = f"""
import sys, json
from htc_dl.recommender import app_recommender, recommender_app
weights, ratings = app_recommender(source="offline", size="small", \
folder={str(trained['folder'])!r})
app = recommender_app(weights, ratings)
print(json.dumps(dict(torch="torch" in sys.modules, rows=app.recommendations.value.count("<tr>"), \
html=app.recommendations.value)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["torch"] is False and found["rows"] == 11
    # the same top 10
    assert found["html"] == \
        recommender_app(trained["model"], trained["ratings"]).recommendations.value


def test_weights_read_without_pytorch_equal_the_models_and_a_foreign_file_is_refused(trained):
    from htc_dl.recommender import load_recommender_weights
    file = trained["folder"]/"recommender_movielens_small.safetensors"
    fingerprint = _data_fingerprint(movielens(source="offline", size="small"))
    weights, reason = load_recommender_weights(file, fingerprint)
    assert reason == "loaded"
    for k, v in collab_weights(trained["model"]).items():
        if k == "y_range": assert weights[k] == tuple(v)
        else: np.testing.assert_allclose(weights[k], v, rtol=1e-6)
    assert load_recommender_weights(file, "12:abc") == (None, "it was trained on other data")
    assert load_recommender_weights(file.with_name("missing.safetensors"), fingerprint) == \
        (None, "no saved model yet")


def test_titles_are_escaped_in_the_table_and_messages_use_the_shared_toolkit():
    from htc_dl.apps import message_html
    from htc_dl.recommender import movies_table
    table = movies_table([[1, "<script>alert(1)</script> & Co", "4.50", 12]])
    assert ("<script>" not in table and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in table
            and table.count("<tr>") == 2)
    assert message_html("x").startswith("<p style='color:#b3261e")
