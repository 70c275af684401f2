"""Build the course site from notebooks that `make nbtest` has already executed, with Jupyter Book 1
(offline).

    python docs/build_site.py [EXECUTED_NBS] [OUT]
        (defaults: build/executed/offline/nbs, build/site)

1. Copy each executed notebook of nbs/lessons and nbs/core to the page name nbdev gives it
   (`03a_from_model_to_app` -> `lessons/from_model_to_app`), so the `Docs:` link in every module's
   docstring names a page of this site. Cells marked `#| hide` are removed from the page (CI still
   runs them) and `#|` directive lines are dropped.
2. Write the front page (docs/intro.md), an apps page from nbs/apps (first markdown cell and
   thumbnail of each app), one API page per module of htc_dl (its docstrings, through Sphinx
   autodoc) and the table of contents: lessons in course order, then the apps, the support
   notebooks and the API.
3. Build the HTML with Jupyter Book, executing nothing, into OUT/html.
4. Beside each notebook page `x.html`, write `x.html.md`: the page as Markdown (the form nbdev's
   `Docs:` links name).
5. Copy MathJax (npm, docs/package-lock.json) into the site, so formulas render without a request
   to a CDN.
"""
import json, re, shutil, subprocess, sys
from pathlib import Path

import yaml
from nbdev.config import nbpath2html

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/"docs"
REPO = "htc-education/htc_dl"
SECTIONS = [("Lessons", "lessons"), ("Support notebooks", "core")]


def title_of(nb):
    "The notebook's first '# ' heading, or its file name."
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "): return line[2:].strip()
    return None


def directives(source):
    "The nbdev directives (`#| hide`, `#| export`, ...) at the top of a code cell."
    return [l[3:].strip().split()[0] for l in source.splitlines()
            if l.startswith("#| ") and l[3:].strip()]


NOTEBOOK_LINK = re.compile(r"\]\(([^)#\s:]+\.ipynb)(#[^)\s]*)?\)")


def site_link(target, nb_folder, page_folder):
    """Where a link to the notebook `target` (relative to `nb_folder` under nbs/) points on the
    site, from `page_folder`."""
    resolved = (ROOT/"nbs"/nb_folder/target).resolve()
    try: rel = resolved.relative_to(ROOT/"nbs")
    except ValueError: return None
    if rel.parts[0] in dict((f, c) for c, f in SECTIONS):
        page = Path(rel.parts[0])/nbpath2html(rel.name).with_suffix(".ipynb")
        return (Path(*[".."] * len(Path(page_folder).parts), page).as_posix() if page_folder
                else page.as_posix())
    return f"https://github.com/{REPO}/blob/main/nbs/{rel.as_posix()}"


def rewrite_links(markdown, nb_folder, page_folder):
    """Links between notebooks rewritten to the site's page names; links to other notebooks (apps)
    go to GitHub."""
    def swap(m):
        new = site_link(m[1], nb_folder, page_folder)
        return m[0] if new is None else f"]({new}{m[2] or ''})"
    return NOTEBOOK_LINK.sub(swap, markdown)


PROGRESS_BAR = re.compile(r"(?:Epoch \d+/\d+ : )?\|[█-]*\| *\d+\.\d+% \[[^\]\r\n]*\]")


def final_text(text):
    """Printed text without fastai's progress bars, which redraw their line hundreds of times after
    carriage returns: each line keeps its last part that is not a bar; a line of bars only goes."""
    lines = []
    for line in "".join(text).split("\n"):
        parts = [PROGRESS_BAR.sub("", part) for part in line.split("\r")]
        kept = next((part for part in reversed(parts) if part.strip("█ ")), "")
        if kept or not line.strip("\r"): lines.append(kept)
    return "\n".join(lines)


def final_outputs(outputs):
    "A cell's outputs with each printed text as it finally reads."
    return [{**o, "text": final_text(o["text"])} if o.get("output_type") == "stream" else o
            for o in outputs]


def page_notebook(nb, folder="lessons"):
    """`nb` as the site shows it: `#| hide` cells removed, directive lines dropped, links to other
    notebooks fixed, fastai's progress bars left out of printed text."""
    cells = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown": source = rewrite_links(source, folder, folder)
        if cell["cell_type"] == "code":
            if "hide" in directives(source): continue
            source = "\n".join(l for l in source.splitlines() if not l.startswith("#|")).strip("\n")
            if not source and not cell.get("outputs"): continue
            cell = {**cell, "outputs": final_outputs(cell.get("outputs", []))}
        cells.append({**cell, "source": source})
    return {**nb, "cells": cells}


def page_markdown(nb):
    """A notebook page as plain Markdown: prose, code in fences, text outputs in fences (what
    `x.html.md` holds)."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown": out.append(cell["source"])
        elif cell["cell_type"] == "code":
            out.append(f"```python\n{cell['source']}\n```")
            for o in cell.get("outputs", []):
                text = o.get("text") or o.get("data", {}).get("text/plain")
                if text: out.append("```\n" + "".join(text).rstrip() + "\n```")
    return "\n\n".join(out) + "\n"


def copy_notebooks(executed, src):
    """Copy the executed notebooks to their nbdev page names under `src`; {section folder: [page
    path without suffix]}."""
    pages = {}
    for _, folder in SECTIONS:
        notebooks = sorted((executed/folder).glob("*.ipynb"))
        if not notebooks:
            raise SystemExit(f"no executed notebooks in {executed/folder}: run `make nbtest` first")
        for nb_path in notebooks:
            page = Path(folder)/nbpath2html(nb_path.name).with_suffix("")
            nb = page_notebook(json.loads(nb_path.read_text()), folder)
            (src/page).parent.mkdir(parents=True, exist_ok=True)
            (src/page).with_suffix(".ipynb").write_text(json.dumps(nb, indent=1))
            pages.setdefault(folder, []).append(page.as_posix())
    return pages


def apps_page(src):
    """A page listing every Voila app with its one-line description, its thumbnail and its Binder
    link."""
    lines = ["# The apps", "",
             "Each lesson ends in a small web app (Voila). They run on Binder, on your laptop "
             "with `make start`, "
             "or in JupyterLab: open the app notebook in `nbs/apps/` and run its cell.", ""]
    (src/"apps").mkdir(exist_ok=True)
    for nb_path in sorted((ROOT/"nbs"/"apps").glob("*.ipynb")):
        if nb_path.stem == "index": continue
        nb = json.loads(nb_path.read_text())
        first_md = next(("".join(c["source"]) for c in nb["cells"]
                         if c["cell_type"] == "markdown"), "")
        title = title_of(nb) or nb_path.stem
        about = " ".join(l.lstrip("> ").strip() for l in first_md.splitlines() if l.startswith(">"))
        thumb = ROOT/"nbs"/"apps"/"thumbnails"/f"{nb_path.stem}.png"
        binder = (f"https://mybinder.org/v2/gh/{REPO}/HEAD"
                  f"?urlpath=voila/render/nbs/apps/{nb_path.name}")
        lines += [f"## {title}", ""]
        if thumb.exists():
            shutil.copy(thumb, src/"apps"/thumb.name)
            lines += [f"![{title}](apps/{thumb.name})", ""]
        lines += [about, "",
                  f"[Launch it on Binder]({binder}) · source: `nbs/apps/{nb_path.name}`", ""]
    (src/"apps.md").write_text("\n".join(lines))


def api_pages(src):
    "One page per module of htc_dl, its docstrings rendered by Sphinx autodoc."
    modules = sorted(p.stem for p in (ROOT/"htc_dl").glob("*.py") if not p.stem.startswith("_"))
    (src/"api").mkdir(exist_ok=True)
    for m in modules:
        (src/"api"/f"{m}.md").write_text(
            f"# htc_dl.{m}\n\n```{{eval-rst}}\n.. automodule:: htc_dl.{m}\n   :members:\n```\n")
    return [f"api/{m}" for m in modules]


def table_of_contents(pages, api):
    parts = [{"caption": caption, "chapters": [{"file": p} for p in pages[folder]]}
             for caption, folder in SECTIONS]
    parts.insert(1, {"caption": "Apps", "chapters": [{"file": "apps"}]})
    parts.append({"caption": "API", "chapters": [{"file": p} for p in api]})
    return {"format": "jb-book", "root": "intro", "parts": parts}


# the component the site loads, and what it loads later
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y")


def vendor_mathjax(html):
    """Copy MathJax (npm, pinned in docs/package-lock.json) into the site's _static, so formulas
    render with no request off the site's host."""
    if not (DOCS/"node_modules"/"mathjax").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=DOCS, check=True)
    es5 = DOCS/"node_modules"/"mathjax"/"es5"
    for part in MATHJAX_PARTS:
        source, dest = es5/part, html/"_static"/"mathjax"/part
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, dest) if source.is_dir() else shutil.copy(source, dest)


def build(executed=ROOT/"build/executed/offline/nbs", out=ROOT/"build/site"):
    executed, out = Path(executed), Path(out)
    src = out/"src"
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("_config.yml", "intro.md"): shutil.copy(DOCS/name, src/name)
    pages = copy_notebooks(executed, src)
    apps_page(src)
    api = api_pages(src)
    (src/"_toc.yml").write_text(yaml.safe_dump(table_of_contents(pages, api), sort_keys=False))
    subprocess.run([Path(sys.executable).parent/"jupyter-book", "build", str(src),
                    "--path-output", str(out), "--all", "-q"],
                   check=True)
    html = out/"html"
    shutil.move(out/"_build"/"html", html)
    shutil.rmtree(out/"_build", ignore_errors=True)
    vendor_mathjax(html)
    for folder in pages.values():
        for page in folder:
            nb = json.loads((src/page).with_suffix(".ipynb").read_text())
            (html/f"{page}.html.md").write_text(page_markdown(nb))
    print(f"Site: {html}/index.html ({sum(1 for _ in html.rglob('*.html'))} pages)")
    return html


if __name__ == "__main__":
    build(*sys.argv[1:3])
