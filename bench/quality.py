"""Which value of which lesson notebook is its headline figure, and fastbook's published figure
beside it.

Each row names an expression evaluated in the notebook's namespace after its last cell (a variable
name, or a short expression over variables); a missing name shows as "not found" in the table
instead of failing the benchmark. `dataset` is the htc_dl.data loader whose printed source line
names the data the figure was measured on."""

ROWS = [
    # notebook prefix, what, expression, format, fastbook's figure, fastbook's data set,
    # htc_dl data set
    dict(nb="03a_",
         what="breed classifier (pretrained body, fine_tune) error rate, against the dirty labels",
         expr="error", fmt="pct", book="not reported as a number (bears, chapter 2)",
         book_data="Bing image search bears", dataset="breed_folders"),
    dict(nb="03a_", what="planted mislabels among the 2N highest losses", expr="found", fmt="pct",
         book="not measurable (no known mislabels)", book_data="Bing image search bears",
         dataset="breed_folders"),
    dict(nb="03b_", what="pixel similarity (L1 to the mean 3 / mean 7), accuracy", expr="overall",
         fmt="pct", book="95.1%", book_data="MNIST_SAMPLE (about 12,000 training images)",
         dataset="mnist_sample"),
    dict(nb="03b_", what="  ... on the 3s", expr="acc3", fmt="pct", book="91.7%",
         book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="03b_", what="  ... on the 7s", expr="acc7", fmt="pct", book="98.5%",
         book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04_", what="linear model from scratch, accuracy (21 epochs)", expr="linear_accuracy",
         fmt="pct", book="96.96% (21 epochs)", book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04_", what="fastai Learner, nn.Linear + SGD, accuracy (10 epochs)",
         expr="fastai_accuracy", fmt="pct",
         book="96.76% (10 epochs)", book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04_", what="simple_net, accuracy (40 epochs)", expr="simple_net_accuracy", fmt="pct",
         book="98.28% (40 epochs)", book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04_", what="resnet18 (no pretraining), accuracy", expr="resnet_accuracy", fmt="pct",
         book="99.71% (1 epoch)", book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04_", what="  ... its epochs", expr="resnet_epochs", fmt="int", book="1",
         book_data="MNIST_SAMPLE", dataset="mnist_sample"),
    dict(nb="04b_", what="PGD (untargeted) success at 1/255 on the real photos",
         expr="float(success_rate.loc[1, 'PGD'])", fmt="pct",
         book="not in fastbook (course lecture: how nets learn)", book_data="-", dataset="-"),
    dict(nb="04b_", what="3 vs 7 robust accuracy (PGD, 25/255): ordinary training",
         expr="robust_before", fmt="pct",
         book="not in fastbook", book_data="-", dataset="mnist_sample"),
    dict(nb="04b_", what="  ... after adversarial training", expr="robust_after", fmt="pct",
         book="not in fastbook", book_data="-", dataset="mnist_sample"),
    dict(nb="04b_", what="1,000 digits with shuffled labels: valid accuracy (chance 10%)",
         expr="float(memorised.loc['shuffled labels', 'valid accuracy'])",
         fmt="pct", book="not in fastbook (Zhang et al. 2017)", book_data="-", dataset="mnist"),
    dict(nb="05_pet", what="pets error rate after fine_tune(2)", expr="first_error", fmt="pct",
         book="8.05% (resnet34, fine_tune(2))",
         book_data="Oxford-IIIT PETS (7,390 photos, 37 breeds)", dataset="pets"),
    dict(nb="05_pet", what="  ... after unfreezing, discriminative learning rates",
         expr="second_error", fmt="pct",
         book="5.41% (resnet34)", book_data="Oxford-IIIT PETS", dataset="pets"),
    dict(nb="05_pet", what="  ... our body and image size", expr="f'{body} at {SIZE}px'", fmt="str",
         book="resnet34 at 224px", book_data="Oxford-IIIT PETS", dataset="pets"),
    dict(nb="05_pet", what="pets error rate, resnet50 with to_fp16", expr=None, fmt="str",
         ours="not run (to_fp16 needs a GPU)",
         book="5.48%", book_data="Oxford-IIIT PETS", dataset="pets"),
    dict(nb="06c_multilabel", what="multi-label accuracy_multi at 0.2 (frozen body, trained head)",
         expr="acc_at_02", fmt="f3",
         book="0.951 at 0.2", book_data="PASCAL_2007 (resnet50)", dataset="pascal"),
    dict(nb="06c_multilabel", what="  ... at the best threshold", expr="final", fmt="f3",
         book="about 0.963 at its best (~0.5)", book_data="PASCAL_2007 (resnet50)",
         dataset="pascal"),
    dict(nb="06c_multilabel", what="  ... best threshold", expr="best", fmt="f2", book="~0.5",
         book_data="PASCAL_2007", dataset="pascal"),
    dict(nb="06d_regression", what="point regression: mean error, % of image width",
         expr="float(errors.mean()) / W", fmt="pct",
         book="not reported in pixels", book_data="BIWI head pose", dataset="biwi"),
    dict(nb="06d_regression", what="point regression: valid MSE (normalised units)", expr="mse",
         fmt="sci", book="3.6e-5", book_data="BIWI head pose", dataset="biwi"),
    dict(nb="06a_",
         what="transfer: pretrained start, fine-tuned by hand (1 + 2 epochs), error rate",
         expr="by_hand_error", fmt="pct",
         book="not reported (no random-start run in the book)", book_data="-", dataset="pets"),
    dict(nb="06a_", what="transfer: random start, 3 epochs, error rate", expr="scratch_error",
         fmt="pct", book="not reported", book_data="-", dataset="pets"),
    dict(nb="06b_", what="DotProduct, valid MSE (5 epochs)", expr="float(dot_losses[-1, 1])",
         fmt="f3", book="0.884", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="DotProductBias without weight decay (5 epochs)",
         expr="float(bias_losses[-1, 1])", fmt="f3",
         book="0.893", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="DotProductBias, wd=0.1 (5 epochs)", expr="results['nn.Embedding']",
         fmt="f3", book="0.823", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="collab_learner, fastbook's settings (50 factors, 5 epochs)",
         expr="float(dot_learner_losses[-1, 1])",
         fmt="f3", book="0.822", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="collab_learner(use_nn=True) (5 epochs)",
         expr="float(nn_learner_losses[-1, 1])", fmt="f3",
         book="0.865", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="our best: DotProductBias, planted rank, tuned wd and epochs",
         expr="valid_mse", fmt="f3", book="-", book_data="-", dataset="movielens"),
    dict(nb="06b_", what="  ... planted floor (noise variance)", expr="noise_floor", fmt="f3",
         book="unknown for real data", book_data="MovieLens 100k", dataset="movielens"),
    dict(nb="06b_", what="  ... our best / floor (aim <= 1.15 at full size)", expr="floor_ratio",
         fmt="ratio", book="-", book_data="-", dataset="movielens"),
    dict(nb="06b_", what="  ... collab_learner at fastbook's settings / floor",
         expr="float(dot_learner_losses[-1, 1]) / noise_floor",
         fmt="ratio", book="-", book_data="-", dataset="movielens"),
]


def rows_for(notebook_name):
    "The quality rows whose notebook prefix matches `notebook_name`."
    return [r for r in ROWS if notebook_name.startswith(r["nb"])]


def expressions_for(notebook_name):
    "The expressions to read from the notebook's namespace after it ran."
    return list(dict.fromkeys(r["expr"] for r in rows_for(notebook_name) if r["expr"]))


def format_value(value, fmt):
    "A value read from a notebook, as the table shows it; dicts with 'not_found' show as not found."
    if isinstance(value, dict) and "not_found" in value: return "not found"
    if value is None: return "not found"
    if isinstance(value, str): return value
    try: v = float(value)
    except (TypeError, ValueError): return str(value)[:40]
    if fmt == "pct": return f"{(v * 100 if abs(v) <= 1 else v):.2f}%"
    if fmt == "f2": return f"{v:.2f}"
    if fmt == "f3": return f"{v:.3f}"
    if fmt == "sci": return f"{v:.2e}"
    if fmt == "ratio": return f"{v:.2f}x"
    if fmt == "int": return f"{v:.0f}"
    return f"{v:.4g}"
