"""Your notebook as a blog post: a small notebook with a plot, a picture and formulas is executed
here, turned into a post by `python -m htc_dl.blog`, served on 127.0.0.1 and opened in Debian's
Chromium. Every picture and formula must render, no request may leave the page's host, and bad
notebooks get a message that says what to do."""

import nbformat
import pytest
from PIL import Image

from browser_helpers import require_chromium, launch_chromium, run_module, static_server

sync_playwright = require_chromium()
CELLS = [
    ("markdown", "# What gradient descent does\n\nEach step moves the weights against the "
                 "gradient, $w \\leftarrow w - \\eta \\nabla L(w)$, on the mean squared error\n\n"
                 "$$L(w) = \\frac{1}{n} \\sum_{i=1}^{n} (w x_i - y_i)^2$$\n\n"
                 "![the photo](photo.png)"),
    ("code", "#| hide\nassert 2 + 2 == 4, 'a check the post leaves out'"),
    ("code", "import matplotlib.pyplot as plt\nlosses = [(3 - 0.5 * i) ** 2 for i in range(7)]\n"
             "plt.plot(losses); plt.xlabel('step'); plt.ylabel('loss'); plt.show()"),
    ("code", "from IPython.display import Math\nMath(r'\\sigma(x) = \\frac{1}{1 + e^{-x}}')"),
    ("code", "print(f'last loss {losses[-1]:.2f}')"),
]


def blog_command(*args): return run_module("htc_dl.blog", *args, timeout=300)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    "The notebook, run by a Jupyter kernel and saved with its outputs, beside the picture it shows."
    from nbclient import NotebookClient
    d = tmp_path_factory.mktemp("notebook")
    from htc_dl.deploy import real_photos
    Image.fromarray(real_photos(("chelsea",))["chelsea"]).resize((150, 100)).save(d/"photo.png")
    new = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb = nbformat.v4.new_notebook(cells=[new[kind](source) for kind, source in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(d)}}).execute()
    nbformat.write(nb, d/"gradient_descent.ipynb")
    return d/"gradient_descent.ipynb"


@pytest.fixture(scope="module")
def posts(executed, tmp_path_factory):
    "Two posts of the notebook, as the command writes them: one with its code, one without."
    out = tmp_path_factory.mktemp("posts")
    done = blog_command(executed, "--out", out/"with-code", "--date", "2026-12-07")
    assert done.returncode == 0 and "Wrote " in done.stdout, done.stderr
    done = blog_command(executed, "--out", out/"no-code", "--title", "Descending",
                   "--date", "2026-12-08", "--hide-code")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def server(posts):
    with static_server(posts, ready="with-code/index.html") as base: yield base


def open_post(server, name):
    "What the post shows (title, date, pictures, formulas, code cells) and every URL it requested."
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context, seen = browser.new_context(), []
        context.on("request", lambda r: seen.append(r.url))
        page = context.new_page()
        page.goto(f"{server}/{name}/index.html")
        page.wait_for_selector("body[data-math-ready='1']", timeout=60_000)
        page.wait_for_load_state("load")
        shown = dict(title=page.inner_text("header h1"), date=page.inner_text("header time"),
                     images=page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)"),
                     formulas=page.eval_on_selector_all(
                         "mjx-container", "els => els.map(e => e.getBoundingClientRect().width)"),
                     math_errors=page.locator("mjx-merror, [data-mjx-error]").count(),
                     code=page.locator(".jp-InputArea-editor").count(),
                     text=page.inner_text("main"))
        browser.close()
    return shown, seen


def test_the_post_renders_every_picture_and_formula_and_asks_nothing_of_other_hosts(server):
    shown, seen = open_post(server, "with-code")
    assert shown["title"] == "What gradient descent does" and shown["date"] == "2026-12-07"
    assert shown["text"].count("What gradient descent does") == 1   # the heading is the title, once
    assert len(shown["images"]) == 2, shown["images"]   # the plot and the photo
    assert all(w > 0 for w in shown["images"]), shown["images"]
    assert len(shown["formulas"]) == 3 and all(w > 5 for w in shown["formulas"]), shown["formulas"]
    assert shown["math_errors"] == 0 and shown["code"] == 3 and "last loss 0.00" in shown["text"]
    assert "a check the post leaves out" not in shown["text"]   # the #| hide cell is left out
    assert [u for u in seen if not u.startswith((server + "/", "data:", "blob:"))] == [], seen
    assert sorted({u.rsplit("/", 1)[-1] for u in seen}) == ["index.html", "tex-svg-full.js"], seen


def test_hide_code_keeps_the_prose_and_outputs_and_the_title_and_date_given(server):
    shown, seen = open_post(server, "no-code")
    assert shown["title"] == "Descending" and shown["date"] == "2026-12-08" and shown["code"] == 0
    assert len(shown["images"]) == 2 and all(w > 0 for w in shown["images"])
    assert len(shown["formulas"]) == 3 and all(w > 5 for w in shown["formulas"])
    assert "plt.plot" not in shown["text"] and "last loss 0.00" in shown["text"]


def test_the_post_is_one_page_with_its_pictures_inside(posts):
    post = posts/"with-code"
    assert sorted(str(p.relative_to(post)) for p in post.rglob("*")) == [
        "index.html", "mathjax", "mathjax/tex-svg-full.js"]
    assert (posts/"with-code"/"index.html").read_text().count('src="data:image/png;base64,') == 2


def test_a_notebook_that_is_not_json_or_was_never_run_gets_a_message_and_no_post(executed,
                                                                                 tmp_path):
    (tmp_path/"broken.ipynb").write_text(executed.read_text()[:500])
    unrun = nbformat.read(executed, as_version=4)
    for cell in unrun.cells:
        if cell.cell_type == "code": cell.outputs = []
    nbformat.write(unrun, tmp_path/"unrun.ipynb")
    for name, message in (
            ("broken.ipynb", "broken.ipynb is not valid JSON, so it is not a notebook"),
            ("unrun.ipynb", "unrun.ipynb has no outputs: it was saved without being run. Run it")):
        done = blog_command(tmp_path/name, "--out", tmp_path/"post")
        assert done.returncode == 2 and message in done.stderr and done.stdout == "", done.stderr
    done = blog_command(executed, "--out", tmp_path/"post", "--date", "07/12/2026")
    assert done.returncode == 2 and "--date must be a day as YYYY-MM-DD" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ipynb", "unrun.ipynb"]
