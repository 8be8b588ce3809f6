"""The results tables of the docs, built from run folders (``experiments/reproduce.py``), and the
markers that delimit them in a markdown file.

A builder takes {job name: run folder} and returns markdown; it reads only files the scripts
wrote (summary.json, sweep.csv, ...) and the folder's DONE record (command, wall time).
"""
from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

START = "<!-- reproduce:table {name} -->"
END = "<!-- /reproduce:table -->"


class ReproduceError(Exception):
    """A job table, a run folder or a doc that is not what reproduce.py expects."""


# -- the markers ----------------------------------------------------------------------------
def _span(text: str, name: str, where: str = "the text"):
    """(start, end) of what lies between the markers of table ``name``; every occurrence."""
    start = START.format(name=name)
    spans, pos = [], 0
    while (i := text.find(start, pos)) >= 0:
        j = text.find(END, i + len(start))
        k = text.find("<!-- reproduce:table ", i + len(start))
        if j < 0 or 0 <= k < j:
            raise ReproduceError(f"{where}: {start} has no closing {END} before the next marker")
        spans.append((i + len(start), j))
        pos = j + len(END)
    return spans


def has_table(text: str, name: str) -> bool:
    return START.format(name=name) in text


def replace_table(text: str, name: str, table: str, where: str = "the text") -> str:
    """``text`` with what lies between the markers of ``name`` replaced by ``table`` (every place).

    Raises ReproduceError if ``text`` holds no such marker, or a start marker without its end.
    """
    spans = _span(text, name, where)
    if not spans:
        raise ReproduceError(f"{where} has no marker for table {name!r}: put {START.format(name=name)} and "
                             f"{END} on their own lines where the table belongs")
    body = "\n" + table.strip("\n") + "\n"
    for i, j in reversed(spans):
        text = text[:i] + body + text[j:]
    return text


def read_table(text: str, name: str) -> str:
    """What lies between the (first) markers of ``name``, without the surrounding newlines."""
    spans = _span(text, name)
    if not spans:
        raise ReproduceError(f"no marker for table {name!r}")
    i, j = spans[0]
    return text[i:j].strip("\n")


# -- the docs: figures and tables ---------------------------------------------------------
def doc_files(docs: Path) -> list:
    return sorted(docs.rglob("*.md")) + [p for p in (docs.parent / "README.md",) if p.is_file()]


def regenerate(jobs, tables, done: set, out: Path, write_docs: bool, docs: Path, log=print) -> dict:
    """Copy the figures of the ``done`` jobs to docs/img and build every table whose jobs are all
    done into OUT/tables/<name>.md and, with ``write_docs``, between its markers in the docs."""
    result = {"figures": [], "tables": [], "errors": [], "waiting": []}
    for job in (j for j in jobs if j.name in done):
        for src, dst in job.figures.items():
            if write_docs:
                shutil.copyfile(out / job.name / src, docs / "img" / dst)
            result["figures"].append(f"{job.name}/{src} -> docs/img/{dst}" if write_docs else
                                     f"{job.name}/{src} (for docs/img/{dst}: not copied)")
    (out / "tables").mkdir(parents=True, exist_ok=True)
    texts = {p: p.read_text() for p in doc_files(docs)} if write_docs else {}
    for table in tables:
        if not set(table.needs) <= done:
            result["waiting"].append(f"{table.name} (needs {', '.join(sorted(set(table.needs) - done))})")
            continue
        try:
            md = table.build({n: out / n for n in table.needs})
        except Exception as exc:           # a builder's bug or an unexpected file: report it, go on
            result["errors"].append(f"table {table.name}: {type(exc).__name__}: {exc}")
            continue
        (out / "tables" / f"{table.name}.md").write_text(md + "\n")
        places = [p for p, t in texts.items() if has_table(t, table.name)]
        if write_docs and not places:
            result["errors"].append(f"table {table.name}: no doc has <!-- reproduce:table {table.name} --> (its "
                                    f"markdown is in {out / 'tables' / (table.name + '.md')})")
        for p in places:
            try:
                texts[p] = replace_table(texts[p], table.name, md, where=str(p))
            except ReproduceError as exc:
                result["errors"].append(str(exc))
        result["tables"].append(f"{table.name} -> " + (", ".join(str(p.relative_to(docs.parent)) for p in places)
                                                       if places else str(out / "tables" / f"{table.name}.md")))
    for p, t in texts.items():
        if t != p.read_text():
            p.write_text(t)
    for line in result["figures"] + result["tables"]:
        log(f"  {line}")
    return result



# -- reading run folders --------------------------------------------------------------------
def load_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ReproduceError(f"cannot read {path}: {exc}") from None


def load_csv(path: Path) -> list:
    csv.field_size_limit(1 << 28)                    # sweep CSVs hold arrays as JSON
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as exc:
        raise ReproduceError(f"cannot read {path}: {exc}") from None


def fmt(v, digits: int = 4) -> str:
    """A number at ``digits`` significant digits (thousands separated); anything else as text."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2g}"
    return str(v)


def short(v: float) -> str:
    """3 significant digits between 0.001 and 1000, else 2 in a short exponent form (5.5e8, 8.5e-8)."""
    if v == 0 or 1e-3 <= abs(v) < 1e3:
        return f"{v:.3g}"
    m, e = f"{v:.1e}".split("e")
    return f"{m}e{int(e)}"


def markdown(header: list, rows: list) -> str:
    """A markdown table; a '|' inside a cell is escaped."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    lines = [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]
    return "\n".join(lines)


# -- the builders ---------------------------------------------------------------------------
def _headline(s: dict) -> str:
    key = s.get("headline")
    v = s.get(key)
    if isinstance(v, dict):                          # one value per cell or setting
        inner = ", ".join(f"{k} {fmt(x if not isinstance(x, dict) else x.get('trained'), 3)}" for k, x in v.items())
        return f"{key}: {inner}"
    return f"{key} **{v:.4f}**" if isinstance(v, float) and abs(v) < 10 else f"{key} **{fmt(v)}**"


def defaults(folders: dict) -> str:
    """One row per default command: headline metric, baseline, steps, wall and CPU seconds."""
    rows = []
    for name, folder in folders.items():
        done, s = load_json(folder / "DONE"), load_json(folder / "summary.json")
        cpu = s.get("cpu_s")
        rows.append([f"`{done['display']}`", _headline(s),
                     f"{s.get('baseline_name', '')} {fmt(s.get('baseline'))}".strip(), fmt(s.get("steps", "")),
                     f"{done['wall_s']:.0f} s" + (f" ({cpu:.0f} s)" if isinstance(cpu, (int, float)) else "")])
    return markdown(["command", "headline", "baseline", "steps", "wall (CPU)"], rows)


def counting_variants(folders: dict) -> str:
    """Counting with full and truncated BPTT, and as a regression: one row per run."""
    rows = []
    for folder in folders.values():
        done, s = load_json(folder / "DONE"), load_json(folder / "summary.json")
        cpu = s.get("cpu_s")
        sign = s.get("sign_accuracy", s["test_accuracy"] if s.get("mode") == "classification" else None)
        rows.append([f"`{done['display']}`", s.get("mode", ""), f"{s['test_accuracy']:.4f}",
                     "" if sign is None else f"{sign:.4f}", fmt(s.get("test_mse", "")), fmt(s.get("steps", "")),
                     f"{cpu:.0f}" if isinstance(cpu, (int, float)) else ""])
    return markdown(["command", "mode", "test accuracy (exact difference, regression)",
                     "first / second / equal right", "test MSE", "steps", "CPU s"], rows)


def written(filename: str = "table.md"):
    """A builder returning the markdown table a script wrote into its (one) run folder."""
    def build(folders: dict) -> str:
        (folder,) = folders.values()
        path = folder / filename
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ReproduceError(f"cannot read {path}: {exc}") from None
    build.__name__ = f"written_{filename}"
    return build


def char_lm(folders: dict) -> str:
    """The char LM's validation score beside the unigram and bigram baselines, and its budget."""
    s = load_json(folders["char_lm"] / "summary.json")
    rows = [[name, f"{v:.3f}", f"{v / math.log(2):.3f}", f"{math.exp(v):.1f}", ""] for name, v in
            (("unigram (add-one, training part)", s["unigram_nats"]), ("bigram (add-one, training part)", s["bigram_nats"]))]
    rows.append([f"**{s['layers']}-layer {s['cell'].upper()} {s['hidden']}, embedding {s['embed']}**",
                 f"**{s['val_nats']:.3f}**", f"**{s['val_bpc']:.3f}**", f"**{s['val_perplexity']:.2f}**",
                 f"{s['steps']:,} steps in {s['train_s']:.0f} s ({1000 * s['seconds_per_step']:.0f} ms a step), "
                 f"best at step {s['best_step']:,}; train {s['train_nats']:.3f}"])
    return markdown(["model", "nats/char", "bits/char", "perplexity", "training"], rows)


def char_lm_units(folders: dict) -> str:
    """``--visualize``: each feature's best unit (units.json), and the gates' saturated fractions."""
    u = load_json(folders["char_lm"] / "units.json")
    rows = [[r["feature"], f"{r['units']}, unit {r['unit']}", f"{r['r']:+.2f}"] for r in u["units"]]
    rows += [[f"layer {l} {g} gate saturated (< 0.1 / > 0.9)", "every unit", f"{lo:.2f} / {hi:.2f}"]
             for l, gates in u.get("gate_saturation", {}).items() for g, (lo, hi) in gates.items()]
    return markdown(["feature", "best unit", "r (Pearson)"], rows)


def digit_sums_runs(folders: dict) -> str:
    """One row per run of a digit-sums report (lengths or objectives); p = the digit classifier's
    accuracy (blank with --digit-steps 0), probe = a linear probe of the trained read-in."""
    (folder,) = folders.values()
    s = load_json(folder / "summary.json")
    out = []

    def num(r, key):
        return f"{r[key]:.3f}" if isinstance(r.get(key), (int, float)) else ""
    for r in s.get("runs", [s]):
        out.append([r["seq_len"], r["objective"], r.get("classes", ""), num(r, "step_accuracy"),
                    num(r, "test_accuracy"), num(r, "implied_step_accuracy"), num(r, "implied_sequence_accuracy"),
                    " ".join(f"{a:.3f}" for a in r["step_accuracy_by_position"]), num(r, "probe_digit_accuracy"),
                    f"{r.get('train_cpu_s', 0):.0f}"])
    return markdown(["L", "objective", "classes", "per-step acc.", "sequence acc.", "implied mean p^t", "implied p^L",
                     "by position", "read-in probe", "train CPU s"], out)


_GROUPS = (("tanh-random", "tanh, random W_h"), ("tanh-identity", "tanh, identity W_h"),
           ("relu-random", "ReLU, random W_h"), ("relu-identity", "ReLU, identity W_h (IRNN)"))


def _setting_order(key: str):
    m = re.search(r"-H(\d+)-V(\d+)$", key)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def exploding(folders: dict) -> str:
    """Growth per step, total growth, clipped growth and the unclipped training runs, per setting group."""
    s = load_json(folders["exploding"] / "summary.json")
    lens = s.get("seq_lens") or [0]
    out, order = [], []
    for prefix, label in _GROUPS:
        keys = sorted((k for k in s["growth_factor"] if k.startswith(prefix + "-")), key=_setting_order)
        if not keys:
            continue
        order = [k[len(prefix) + 1:] for k in keys]
        clipped = [s["growth_factor_clipped"][k] for k in keys]
        div = [s["diverged_step"][k + "-noclip"] for k in keys if k + "-noclip" in s.get("diverged_step", {})]
        norms = [v for k in keys if (v := s.get("max_train_grad_norm", {}).get(k + "-noclip")) is not None]
        train = (f"overflows in {len(div)} of {len(keys)} (step {min(div)}-{max(div)})" if div else "no overflow")
        train += f"; largest gradient norm {short(max(norms))}" if norms and len(div) < len(keys) else ""
        out.append([label, " / ".join(f"{s['growth_factor'][k]:.3f}" for k in keys),
                    " / ".join(short(s["growth_total"][k]) for k in keys),
                    f"{min(clipped):.3f}-{max(clipped):.3f}", train])
    return markdown([f"setting ({' / '.join(order)})", "growth per step", f"total, T = {lens[0]} -> {lens[-1]}",
                     "clipped, per step", "unclipped training"], out)


def vanishing(folders: dict) -> str:
    """Per cell: the gradient ratio first/last step and the Jacobian product, untrained and trained; test MSE."""
    s = load_json(folders["vanishing"] / "summary.json")
    names = {"rnn": "tanh RNN", "irnn": "IRNN", "lstm": "LSTM", "gru": "GRU"}
    out = []
    for c in s["cells"]:
        r, j = s["grad_ratio_first_last"][c], s["jacobian_product_log10"][c]
        out.append([names.get(c, c), short(r["untrained"]), short(r["trained"]),
                    f"{j['untrained']:.1f} / {j['trained']:.1f}", f"{s['test_mse'][c]:.4f}"])
    T = s.get("seq_len")
    return markdown(["cell", "ratio t=1 / t=T, untrained", "trained", f"log10 product of {T} Jacobians, untrained / "
                     "trained", f"test MSE (baseline {s.get('mse_baseline', float('nan')):.3f})"], out)
