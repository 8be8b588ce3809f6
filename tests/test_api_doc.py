"""docs/api.md names every public name of npnet, with every parameter of its signature.

The names come from the package itself (never a list kept here): ``dir(npnet)`` without leading
underscores, and for each submodule users import its ``__all__`` (or, without one, the classes
and functions defined in it). A name is documented when ``docs/api.md`` has it in backticks,
fully qualified (```npnet.optim.SGD(...)```); a class or function must appear at least once
with a signature, and that signature must name every parameter it has. The public methods of
Learner and SequenceModel are held to the same rule (so Learner.fit's full argument list is there).
"""
import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

import npnet

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SUBMODULES = ["npnet.optim", "npnet.optim.lr_scheduler", "npnet.data", "npnet.interop",
              "npnet.cells.reference", "npnet.gradcheck", "npnet.diagnostics", "npnet.activations",
              "npnet.init", "npnet.checkpoint", "npnet.clip", "npnet.sequential", "npnet.time_distributed"]
CLASSES_WITH_METHODS = [npnet.Learner, npnet.SequenceModel]


def module_names(mod) -> list:
    """The public names of a module: its __all__, else the classes and functions defined in it."""
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, o in vars(mod).items() if not n.startswith("_")
                 and getattr(o, "__module__", None) == mod.__name__ and (inspect.isclass(o) or callable(o))]
    return sorted(names)


def public_objects() -> dict:
    """{qualified name: object} for every public name of npnet and of SUBMODULES."""
    out = {f"npnet.{n}": getattr(npnet, n) for n in dir(npnet) if not n.startswith("_")}
    for m in SUBMODULES:
        mod = importlib.import_module(m)
        out.update({f"{m}.{n}": getattr(mod, n) for n in module_names(mod)})
    return out


def public_methods() -> dict:
    """{"Learner.fit": function, ...}: methods (and properties) each class defines itself."""
    out = {}
    for cls in CLASSES_WITH_METHODS:
        for n, o in vars(cls).items():
            if n.startswith("_"):
                continue
            if isinstance(o, (staticmethod, classmethod)):
                o = o.__func__
            if callable(o) or isinstance(o, property):
                out[f"{cls.__name__}.{n}"] = o
    return out


def mentioned(text: str, qualified: str) -> bool:
    return re.search("`" + re.escape(qualified) + r"(?![\w.])", text) is not None


def signatures(text: str, qualified: str) -> list:
    """The text inside the parentheses of every ```qualified(...)`` in the doc."""
    return re.findall("`" + re.escape(qualified) + r"\(([^`]*)\)", text)


def parameter_names(obj) -> list | None:
    """Parameter names a documented signature must show, or None for objects without one."""
    if isinstance(obj, types.ModuleType) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
        return None
    if isinstance(obj, property):
        return None
    if not (inspect.isclass(obj) or callable(obj)):
        return None                                     # constants
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [p for p in sig.parameters if p not in ("self", "cls")]


def missing_names(text: str, objects: dict) -> list:
    return sorted(q for q in objects if not mentioned(text, q))


def bad_signatures(text: str, objects: dict) -> list:
    """[(object's documented names, the parameters no documented signature of it shows)]."""
    by_id = {}
    for q, o in objects.items():
        by_id.setdefault(id(o), (o, []))[1].append(q)
    bad = []
    for o, names in by_id.values():
        params = parameter_names(o)
        if params is None:
            continue
        sigs = [s for q in names for s in signatures(text, q)]
        if not sigs:
            bad.append((names, "no signature"))
            continue
        best = min(([p for p in params if not re.search(rf"\b{re.escape(p)}\b", s)] for s in sigs), key=len)
        if best:
            bad.append((names, best))
    return bad


TEXT = API.read_text(encoding="utf-8")


def test_every_public_name_is_in_api_md():
    objects = public_objects()
    assert len(objects) > 80                            # the package really was walked
    assert missing_names(TEXT, objects) == [], "add these names to docs/api.md"


def test_every_public_method_of_learner_and_model_is_in_api_md():
    assert missing_names(TEXT, public_methods()) == [], "add these methods to docs/api.md"


def test_documented_signatures_name_every_parameter():
    assert bad_signatures(TEXT, {**public_objects(), **public_methods()}) == []


def test_learner_fit_lists_its_full_argument_list():
    params = [p for p in inspect.signature(npnet.Learner.fit).parameters if p != "self"]
    assert {"eval_batches", "eval_every", "callbacks"} <= set(params)
    full = [s for s in signatures(TEXT, "Learner.fit") if all(re.search(rf"\b{p}\b", s) for p in params)]
    assert full, "docs/api.md needs Learner.fit with every argument"


@pytest.mark.parametrize("needle", ["ignore_index", "`npnet.activations.softmax(",
                                    "`learner.runner.optimizer`", "log_every"])
def test_what_the_trial_user_looked_for_is_there(needle):
    assert needle in TEXT


def test_the_checks_can_fail():
    objects = public_objects()
    removed = TEXT.replace("`npnet.Embedding", "`Embedding")
    assert "npnet.Embedding" in missing_names(removed, objects)
    short = TEXT.replace("eval_every=None, callbacks=None)", "eval_every=None)")
    assert any("Learner.fit" in names for names, _ in bad_signatures(short, public_methods()))
    assert not mentioned("`npnet.optim.SGD(params)`", "npnet.optim")
