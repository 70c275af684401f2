"""htc_dl.text: GloVe read offline, the LSTM classifier, the label-budget pieces and word
attributions."""
import re
import numpy as np
import pandas as pd
import pytest
import torch
from htc_dl import text
from htc_dl.data import review_texts
from htc_dl.offline import write_reviews


def test_glove_words_line_up_with_their_vectors():
    words, vectors = text.glove_vectors()
    assert len(words) == len(set(words)) == vectors.shape[0] == 400_000 and vectors.shape[1] == 50
    index = {w: i for i, w in enumerate(words)}
    unit = lambda w: vectors[index[w]] / np.linalg.norm(vectors[index[w]])
    assert unit("movie") @ unit("film") == pytest.approx(0.93, abs=0.01)
    assert unit("king") @ unit("queen") > unit("king") @ unit("skirt") + 0.4
    nearest = lambda w: words[int(np.argmax(vectors[:20_000] @ unit(w)
                                            / np.linalg.norm(vectors[:20_000], axis=1)))]
    assert nearest("dress") == "dress"


def test_a_file_that_is_not_parquet_is_refused_with_its_name(tmp_path):
    bad = tmp_path/"index.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="index.parquet is not a parquet file"):
        text.parquet_strings(bad, 3)


def test_glove_matrix_copies_known_words_and_covers_review_vocabulary(tmp_path):
    words, vectors = text.glove_vectors()
    matrix, found = text.glove_matrix(["xxunk", "xxpad", "fabric", "zipper", "qqqzzz"])
    assert found == pytest.approx(0.4)
    np.testing.assert_allclose(matrix[2].numpy(), vectors[words.index("fabric")])
    write_reviews(tmp_path/"r", "small")
    labelled, _ = review_texts(tmp_path/"r")
    vocab = sorted({w for t in labelled.text[:300] for w in re.findall(r"[a-z]+", t.lower())})
    assert text.glove_matrix(vocab)[1] > 0.9


def test_lstm_classifier_ignores_padding_wherever_it_sits():
    torch.manual_seed(0)
    model = text.LSTMClassifier(50).eval()
    review = torch.tensor([[4, 9, 17, 23]])
    padded = torch.tensor([[1, 1, 4, 9, 17, 23, 1]])
    torch.testing.assert_close(model(review), model(padded))
    # an empty review still answers
    assert model(torch.ones(1, 5, dtype=torch.long)).isfinite().all()


def test_budget_rows_are_balanced_seeded_and_keep_every_validation_review():
    df = pd.DataFrame({"label": ["negative", "positive", "positive"] * 40,
                       "text": [f"t{i}" for i in range(120)],
                       "is_valid": [i >= 100 for i in range(120)]})
    rows = text.budget_rows(df, 20, seed=3)
    train = rows[~rows.is_valid]
    assert train.label.value_counts().to_dict() == {"negative": 10, "positive": 10}
    assert (rows.is_valid.sum() == 20
            and train.index.equals(text.budget_rows(df, 20, seed=3)[~rows.is_valid].index))
    assert (text.label_budgets(1200) == [100, 300, 1000, 1200]
            and text.label_budgets(250) == [100, 250])


def test_bag_of_words_learns_sentiment_words():
    train = pd.DataFrame({"text": ["love it", "love this dress", "hate it",
                                   "returned, hate the fabric"] * 5,
                          "label": ["positive", "positive", "negative", "negative"] * 5})
    model = text.bag_of_words(train)
    assert list(model.predict(["I love the colour", "I hate the zipper"])) == [
        "positive", "negative"]


def test_word_attributions_add_up_and_the_page_shows_html_as_text():
    torch.manual_seed(1)
    model = text.LSTMClassifier(30).eval()
    ids = torch.tensor([3, 8, 12, 20, 5])
    scores, _ = text.word_attributions(model, model.embedding, ids, target=0)
    base = model.classify(model.embedding(torch.ones(1, 5, dtype=torch.long)), ids[None] != 1)
    assert scores.shape == (5,)
    assert float(scores.sum()) == pytest.approx((model(ids[None])[0, 0] - base[0, 0]).item(),
                                                abs=1e-2)
    page = text.attribution_html(["<b>bold</b>", "ok"], [1.0, -0.5])
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>" not in page


def test_no_download_of_wikitext_103_is_tried_offline(monkeypatch):
    monkeypatch.setenv("HTC_DL_OFFLINE", "1")
    import fastai.data.external as external
    monkeypatch.setattr(external, "untar_data", lambda *a, **k: pytest.fail("tried to download"))
    assert text.wt103_available() is False
