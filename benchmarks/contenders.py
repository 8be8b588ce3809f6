"""The contenders timed for one case: npnet's fast cell, the plain reference and PyTorch.

Each is a ``Contender``: a forward call and a forward+backward call without arguments, closing
over the same input ``x`` (B, T, D) and upstream gradient ``dout`` (B, T, H), i.e. the loss
``sum(out * dout)``. Before it is timed, each other contender's output (and the reference's dx)
is compared with npnet's; the differences go into the result row.

The reference column is ``npnet.cells.reference``, the textbook loops the cells are tested
against, called through its contract (state None = zeros, ``params`` the cell's own dict)::

    rnn_forward(x, state, params, mask=None, nonlinearity="tanh") -> (out, h_T, cache)
    lstm_forward(x, state, params, mask=None) -> (out, (h_T, c_T), cache)
    gru_forward(x, state, params, mask=None) -> (out, h_T, cache)
    {rnn,lstm,gru}_backward(dout, dstate, cache, grads) -> (dx, dstate0)   # grads ADDED into

torch is optional and imported only here and in race.py; npnet never imports it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from .spec import CELLS, NONLINEARITY, Case

if TYPE_CHECKING:
    import torch
    from npnet import RecurrentCell

REFERENCE_MODULE = "npnet.cells.reference"
TOLERANCE = {"float32": 1e-3, "float64": 1e-8}     # max |out_ref - out_npnet| before a note


@dataclass
class Contender:
    name: str                       # "npnet", "ref" or "torch": the prefix of its columns
    fwd: Callable[[], object]       # a training forward (fills the cache / records the graph)
    fb: Callable[[], object]        # forward then backward of sum(out * dout)


def load_cell_class(name: str) -> tuple:
    """(npnet's class for the cell, None), or (None, why it is missing)."""
    import npnet
    cls_name = CELLS[name].npnet_class
    cls = getattr(npnet, cls_name, None)
    return (cls, None) if cls is not None else (None, f"npnet.{cls_name} not importable")


def make_cell(cls: type, name: str, D: int, H: int, dtype: str) -> RecurrentCell:
    """The cell benchmarked, seeded (rng=0) so every run times the same weights."""
    if name == "rnn":
        return cls(D, H, nonlinearity=NONLINEARITY, dtype=dtype, rng=0)
    return cls(D, H, dtype=dtype, rng=0)


def case_inputs(case: Case) -> tuple:
    """The fixed x (B, T, D) and dout (B, T, H) of a case (seed 1)."""
    B, T, D, H = case.shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(case.dtype)
    dout = rng.standard_normal((B, T, H)).astype(case.dtype)
    return x, dout


def npnet_contender(cell: RecurrentCell, x: np.ndarray, dout: np.ndarray, name: str = "npnet") -> Contender:
    def fb():
        cell.fprop(x)
        cell.bprop(dout)
    return Contender(name, lambda: cell.fprop(x), fb)


def reference_functions(name: str) -> tuple:
    """((forward, backward), None) for one cell from npnet.cells.reference, or (None, why not)."""
    try:
        mod = importlib.import_module(REFERENCE_MODULE)
    except Exception as exc:
        return None, f"{REFERENCE_MODULE} not importable ({type(exc).__name__}: {exc})"
    forward, backward = getattr(mod, f"{name}_forward", None), getattr(mod, f"{name}_backward", None)
    if forward is None or backward is None:
        return None, f"{REFERENCE_MODULE} has no {name}_forward/{name}_backward"
    return (forward, backward), None


def reference_contender(name: str, functions: tuple, cell: RecurrentCell, x: np.ndarray,
                        dout: np.ndarray) -> tuple:
    """(Contender, checks, notes): the reference loops on the cell's own params. A forward and
    a backward run once here (so that a failing reference fails before the timing starts, and
    warmed up); ``checks`` holds the largest differences from npnet's out and dx."""
    forward, backward = functions
    params = cell.params
    kwargs = {"nonlinearity": NONLINEARITY} if name == "rnn" else {}
    grads = {k: np.zeros_like(v) for k, v in params.items()}   # added into, like cell.grads

    def fwd():
        return forward(x, None, params, **kwargs)

    def fb():
        cache = forward(x, None, params, **kwargs)[2]
        return backward(dout, None, cache, grads)

    out_ref, _, cache = fwd()
    dx_ref = backward(dout, None, cache, grads)[0]
    out_np = cell.fprop(x)[0]
    dx_np = cell.bprop(dout)[0]
    cell.clear_cache()
    checks = {"ref_max_abs_diff": float(np.max(np.abs(out_ref - out_np))),
              "ref_dx_max_abs_diff": float(np.max(np.abs(dx_ref - dx_np)))}
    tol = TOLERANCE[str(x.dtype)]
    notes = [f"reference differs from fast path by {checks['ref_max_abs_diff']:.2e}"
             ] if checks["ref_max_abs_diff"] > tol else []
    dx_scale = max(1.0, float(np.max(np.abs(dx_np))))
    if checks["ref_dx_max_abs_diff"] > tol * dx_scale:
        notes.append(f"reference dx differs from fast path by {checks['ref_dx_max_abs_diff']:.2e}")
    return Contender("ref", fwd, fb), checks, notes


def import_torch(threads: int) -> Optional[str]:
    """Import torch and pin its threads (intra-op ``threads``, inter-op 1); its version, or
    None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:        # already set: torch allows it once per process
        pass
    return torch.__version__


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def copy_weights(module: torch.nn.Module, params: dict, name: str) -> None:
    """Copy an npnet cell's params (W_x (D, G H), W_h (H, G H), b, GRU's b_hn) into a
    one-layer torch.nn.RNN/LSTM/GRU (PyTorch layout: transposed, two bias vectors)."""
    import torch
    H = params["W_h"].shape[0]
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(params["W_x"].T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(params["W_h"].T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(params["b"].copy()))
        module.bias_hh_l0.zero_()
        if name == "gru" and "b_hn" in params:
            module.bias_hh_l0[2 * H:].copy_(torch.from_numpy(params["b_hn"].copy()))


def torch_module(name: str, D: int, H: int, dtype: str,
                 cell: Optional[RecurrentCell] = None) -> torch.nn.Module:
    """torch.nn.RNN/LSTM/GRU, batch-first, in ``dtype``; with npnet's weights if ``cell`` is given."""
    import torch
    kwargs = {"nonlinearity": NONLINEARITY} if name == "rnn" else {}
    m = getattr(torch.nn, CELLS[name].torch_class)(D, H, batch_first=True, **kwargs)
    m = m.double() if dtype == "float64" else m.float()
    if cell is not None:
        copy_weights(m, cell.params, name)
    return m


def torch_contender(case: Case, cell: RecurrentCell, x: np.ndarray, dout: np.ndarray) -> tuple:
    """(Contender, checks): PyTorch's module with npnet's weights; x requires grad, so that
    the backward computes dx as npnet's does."""
    import torch
    B, T, D, H = case.shape
    m = torch_module(case.cell, D, H, case.dtype, cell)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tdout = torch.from_numpy(dout.copy())
    with torch.no_grad():
        out_t = m(tx)[0].numpy()
    out_np = cell.fprop(x)[0]
    cell.clear_cache()

    def fb():
        m(tx)[0].backward(tdout)
    checks = {"torch_max_abs_diff": float(np.max(np.abs(out_t - out_np)))}
    return Contender("torch", lambda: m(tx), fb), checks
