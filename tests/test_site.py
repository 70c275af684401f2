"""The course site (`make docs`, docs/build_site.py) opened in a real Chromium: every page loads,
every image renders, no internal link is broken, no request leaves 127.0.0.1, and every `Docs:` link
in the package names a page of it.

The site is built from executed notebooks: `make test` builds it (`make site-html`) before pytest.
The notebook-link checks at the bottom need no site.
"""
import functools, http.server, json, re, sys, threading, urllib.parse
from pathlib import Path

import pytest

from browser_helpers import ROOT, launch_chromium, require_chromium

SITE = ROOT/"build"/"site"/"html"
DOC_HOST = "https://htc-education.github.io/htc_dl/"
NOTEBOOK_LINK = re.compile(r"\]\(([^)#\s:]+\.ipynb)(?:#[^)\s]*)?\)")


def settled_evaluate(page, script, tries=5):
    """`page.evaluate(script)` once the page stops navigating (the root index.html forwards to the
    front page)."""
    from playwright.sync_api import Error
    for _ in range(tries):
        try:
            page.wait_for_load_state("load")
            return page.evaluate(script)
        except Error as e:
            if "Execution context was destroyed" not in str(e): raise
            page.wait_for_timeout(200)
    return page.evaluate(script)


def site_pages():
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                  if not p.name.startswith(("genindex", "search")) and "_static" not in p.parts)


@pytest.fixture(scope="module")
def site():
    if not (SITE/"index.html").exists():
        pytest.fail(f"no site at {SITE}: run `make docs` or `make site`", pytrace=False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def page(site):
    sync_playwright = require_chromium()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.outside = []
        page.route("**/*", lambda route: (page.outside.append(route.request.url), route.abort())
                   if not route.request.url.startswith(site) else route.continue_())
        yield page
        browser.close()


def test_site_has_every_lesson_support_notebook_and_module(site):
    pages = set(site_pages())
    lessons = sorted((ROOT/"nbs"/"lessons").glob("*.ipynb"))
    assert len(lessons) >= 9
    from nbdev.config import nbpath2html
    for folder in ("lessons", "core"):
        for nb in (ROOT/"nbs"/folder).glob("*.ipynb"):
            assert f"{folder}/{nbpath2html(nb.name).name}" in pages, f"{nb} has no page on the site"
    modules = [p.stem for p in (ROOT/"htc_dl").glob("*.py") if not p.stem.startswith("_")]
    assert all(f"api/{m}.html" in pages for m in modules), \
        sorted(set(modules) - {Path(p).stem for p in pages})


def test_every_page_loads_with_its_images_and_no_request_leaves_the_machine(site, page):
    broken_images, failed = {}, {}
    for rel in site_pages():
        response = page.goto(f"{site}/{rel}", wait_until="load")
        if response is None or response.status != 200:
            failed[rel] = response and response.status; continue
        bad = settled_evaluate(page, "() => [...document.images].filter(i => !i.complete || "
                                     "i.naturalWidth === 0).map(i => i.src)")
        if bad: broken_images[rel] = bad
    assert not failed, f"pages that did not load: {failed}"
    assert not broken_images, f"images that did not render: {broken_images}"
    assert not page.outside, \
        f"requests that tried to leave 127.0.0.1: {sorted(set(page.outside))[:10]}"


def test_formulas_are_typeset_by_the_site_own_mathjax(site, page):
    """Lesson 3b writes its formulas in TeX; MathJax, served from the site's _static, turns each
    into rendered math."""
    page.goto(f"{site}/lessons/mnist_basics.html", wait_until="load")
    formulas = page.locator(".math").count()
    assert formulas > 0, "lesson 3b shows no formula: has its TeX gone?"
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0",
                           timeout=30_000)
    scripts = settled_evaluate(page, "() => [...document.scripts].map(s => s.src).filter(s => "
                                     "s.includes('mathjax'))")
    assert scripts and all(s.startswith(site) for s in scripts), scripts
    assert page.locator("mjx-container").count() >= formulas, (
        page.locator("mjx-container").count(), formulas)


def test_lessons_show_their_outputs_plots_included(site, page):
    """The site is built from executed notebooks: lessons show printed numbers and plots, not bare
    code."""
    with_plots = 0
    for rel in [p for p in site_pages() if p.startswith("lessons/")]:
        page.goto(f"{site}/{rel}")
        assert page.locator(".cell_output").count() > 0, f"{rel} shows no outputs"
        with_plots += page.locator(".cell_output img").count() > 0
    assert with_plots >= 5, f"only {with_plots} lessons show a plot"


def test_training_tables_show_their_rows_and_no_progress_bar(site):
    "fastai's table of epochs shows its rows; the hundreds of redraws of its progress bar do not."
    pages = [SITE/p for p in site_pages() if p.startswith("lessons/")]
    with_tables = [p for p in pages if re.search(r"epoch\s+train_loss\s+valid_loss", p.read_text())]
    assert len(with_tables) >= 3, [p.name for p in with_tables]
    for p in pages:
        assert not re.search(r"Epoch \d+/\d+ : \|", p.read_text()), f"{p.name} shows a progress bar"


def test_no_internal_link_is_broken(site, page):
    broken = {}
    for rel in site_pages():
        page.goto(f"{site}/{rel}", wait_until="load")
        hrefs = settled_evaluate(page, "() => [...document.querySelectorAll('a[href]')].map(a => "
                                       "a.href)")
        for href in hrefs:
            if not href.startswith(site): continue
            target = urllib.parse.urlparse(href).path.lstrip("/")
            file = SITE/urllib.parse.unquote(target)
            if file.is_dir(): file = file/"index.html"
            if not file.exists(): broken.setdefault(rel, set()).add(target)
    assert not broken, f"broken internal links: {broken}"


def test_every_docs_link_in_the_package_names_a_page_of_the_site(site):
    links = {}
    for module in (ROOT/"htc_dl").glob("*.py"):
        for url in re.findall(r"Docs: (\S+?)(?:\"\"\"|\s)", module.read_text()):
            links[module.name] = url
    assert len(links) >= 15, links
    for module, url in links.items():
        assert url.startswith(DOC_HOST), (module, url)
        path = url[len(DOC_HOST):]
        assert (SITE/path).exists(), f"{module}: Docs link {url} names no file of the site"
        assert (SITE/path.removesuffix(".md")).exists(), \
            f"{module}: {url} has no HTML page beside it"


def test_hidden_checks_run_in_ci_but_do_not_show_on_the_site(site):
    "A `#| hide` cell of a lesson is absent from its page."
    nb_path = next(p for p in sorted((ROOT/"nbs"/"lessons").glob("*.ipynb"))
                   if any(c["cell_type"] == "code" and "".join(c["source"]).startswith("#| hide")
                          for c in json.loads(p.read_text())["cells"]))
    from nbdev.config import nbpath2html
    html = (SITE/"lessons"/nbpath2html(nb_path.name).name).read_text()
    hidden = next("".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"]
                  if c["cell_type"] == "code" and "".join(c["source"]).startswith("#| hide"))
    line = next(l for l in hidden.splitlines()[1:] if len(l.strip()) > 12)
    assert "#| hide" not in html
    assert line.strip()[:40] not in html.replace("&quot;", '"').replace("&#39;", "'"), line


# -------------------------------------------------------- the notebooks' own links (no site needed)

def test_a_page_shows_printed_text_without_progress_bars():
    sys.path.insert(0, str(ROOT/"docs"))
    from build_site import page_notebook
    bar = "".join(f"\rEpoch 1/1 : |{'█' * i}{'-' * (4 - i)}| {25 * i}.00% [{i}/4 00:0{i}<00:01]"
                  for i in range(5))
    stopped = "Epoch 1/1 : |██--| 50.00% [2/4 00:01<00:01... 8.5073]"   # a finder that stopped
    printed = ["\u2588\repoch  train_loss\n", f"\u2588\r{bar}\r0      0.75    \n", f"{bar}\n",
               "\n", f"done\r\n{stopped}minimum  2.5e-02\n"]
    cell = {"cell_type": "code", "source": "learn.fit(1)", "metadata": {}, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": printed},
        {"output_type": "execute_result", "data": {"text/plain": "a\rb"}, "metadata": {}}]}
    (shown,) = page_notebook({"cells": [cell]})["cells"]
    assert shown["outputs"][0]["text"] == ("epoch  train_loss\n0      0.75    \n\ndone\n"
                                           "minimum  2.5e-02\n")
    assert shown["outputs"][1] == cell["outputs"][1]


def test_every_link_between_notebooks_names_a_notebook_that_exists():
    broken = []
    for nb_path in sorted((ROOT/"nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb_path.parts: continue
        for cell in json.loads(nb_path.read_text())["cells"]:
            if cell["cell_type"] != "markdown": continue
            for target in NOTEBOOK_LINK.findall("".join(cell["source"])):
                if not (nb_path.parent/target).exists():
                    broken.append(f"{nb_path.relative_to(ROOT)} -> {target}")
    assert not broken, ("links to notebooks that do not exist (paths are relative to the "
                        "notebook):\n") + "\n".join(broken)
