"""The executed notebooks, for the lessons' Colab links and for readers on GitHub: the branch
`executed` holds the notebooks of nbs/ as the Pages workflow last ran them (small mode, online,
on the real data sets), outputs included.

    python docs/publish_executed.py EXECUTED_NBS OUT COMMIT

Copies every notebook of nbs/ from EXECUTED_NBS (a copy of nbs/ that `make site` executed) to
OUT/nbs, and writes OUT/README.md naming COMMIT. It refuses a copy whose code differs from nbs/
(its outputs would not come from the current code) and a lesson without outputs (not executed).
fastai's progress bars are left out of the printed text, as on the site.
"""
import json, shutil, sys
from pathlib import Path

from build_site import final_outputs

ROOT = Path(__file__).resolve().parent.parent
REPO = "htc-education/htc_dl"


def code_of(path):
    "The sources of a notebook's code cells."
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def has_outputs(path):
    "Whether any code cell of the notebook has an output."
    cells = json.loads(Path(path).read_text())["cells"]
    return any(c.get("outputs") for c in cells if c["cell_type"] == "code")


def check_executed(executed):
    "Pairs (executed copy, path in nbs/); raise if a copy is missing, stale or (a lesson) empty."
    pairs = []
    for source in sorted((ROOT/"nbs").rglob("*.ipynb")):
        rel = source.relative_to(ROOT/"nbs")
        if ".ipynb_checkpoints" in rel.parts: continue
        copy = Path(executed)/rel
        if not copy.exists(): raise FileNotFoundError(f"{copy} is missing: run `make site` first.")
        if code_of(copy) != code_of(source):
            raise ValueError(f"{copy} has other code than nbs/{rel}: execute the notebooks again.")
        if rel.parts[0] == "lessons" and not has_outputs(copy):
            raise ValueError(f"{copy} has no outputs: it was not executed.")
        pairs.append((copy, rel))
    return pairs


def publish(executed, out, commit):
    "Write OUT/nbs (the executed notebooks) and OUT/README.md; return the number of notebooks."
    pairs = check_executed(executed)
    out = Path(out)
    if out.exists(): shutil.rmtree(out)
    for copy, rel in pairs:
        (out/"nbs"/rel).parent.mkdir(parents=True, exist_ok=True)
        nb = json.loads(copy.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code": cell["outputs"] = final_outputs(cell["outputs"])
        (out/"nbs"/rel).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    (out/"README.md").write_text(
        f"# htc_dl: the notebooks with their outputs\n\n"
        f"Every notebook of [htc_dl](https://github.com/{REPO}) as it ran in small mode on the "
        f"real data sets, from commit {commit}.\n"
        f"This branch is written by the site workflow; edit the notebooks on `main`.\n")
    return len(pairs)


if __name__ == "__main__":
    if len(sys.argv) != 4: sys.exit(__doc__)
    print(f"{publish(*sys.argv[1:])} executed notebooks in {sys.argv[2]}")
