"""How the modules of htc_dl import each other: every module imports on its own, no two
modules import each other (directly or round a longer loop, at the top or inside a function),
and the app toolkit is a leaf that every app can use."""
import ast, importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent/"htc_dl"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))


def imported_modules(source):
    "The htc_dl modules `source` imports anywhere: `from .x`, `from htc_dl.x`, `import htc_dl.x`."
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:   # `from .x import y`, or `from . import x`
                names = [module] if module else [a.name for a in node.names]
            elif module.startswith("htc_dl."): names = [module.removeprefix("htc_dl.")]
            elif module == "htc_dl": names = [a.name for a in node.names]
            else: continue
            found.update(n.split(".")[0] for n in names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("htc_dl."))
    return found


def import_graph():
    "{module: the htc_dl modules it imports} for every module of the package."
    imports = {m: imported_modules((PACKAGE/f"{m}.py").read_text()) for m in MODULES}
    return {m: found & set(MODULES) - {m} for m, found in imports.items()}


def cycles(graph):
    "Each group of two or more modules that import their way back to themselves, as sorted tuples."
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    def visit(v):
        index[v] = low[v] = len(index); stack.append(v); on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on_stack: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop(); on_stack.discard(w); group.add(w)
                if w == v: break
            if len(group) > 1: groups.append(tuple(sorted(group)))
    for v in sorted(graph):
        if v not in index: visit(v)
    return sorted(groups)


def test_imports_are_found_at_the_top_and_inside_functions_in_every_spelling():
    source = ("from .data import models_root\nimport os\ndef f():\n"
              "    from htc_dl.feedback import record_files\n    import htc_dl.saving\n"
              "    from . import quiz\n    from fastai.vision.all import Learner\n")
    assert imported_modules(source) == {"data", "feedback", "saving", "quiz"}


def test_the_cycle_finder_finds_direct_and_longer_loops_and_nothing_else():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a", "c"},
             "g": set()}
    assert cycles(graph) == [("a", "b"), ("c", "d", "e")]
    leaf = {"apps": {"app_toolkit", "feedback"}, "feedback": {"app_toolkit"}, "app_toolkit": set()}
    assert cycles(leaf) == []


def test_no_module_of_the_package_imports_its_way_back_to_itself():
    assert cycles(import_graph()) == [], import_graph()


def test_the_app_toolkit_is_a_leaf_that_the_apps_and_the_feedback_journal_import():
    graph = import_graph()
    assert graph["app_toolkit"] == set(), graph["app_toolkit"]
    assert {"app_toolkit", "feedback"} <= graph["apps"] and "app_toolkit" in graph["feedback"]
    assert "apps" not in graph["feedback"]
    assert "app_toolkit" in graph["fool"] and "apps" not in graph["fool"]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module):
    assert importlib.import_module(f"htc_dl.{module}").__name__ == f"htc_dl.{module}"
