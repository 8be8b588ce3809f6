"""Checkpoints: a model's parameters, its optimiser's state and a JSON header in ONE .npz file.

Saving is atomic (temporary file in the same directory, fsync, os.replace), so a crash
mid-save leaves the previous checkpoint intact. Loading reads numeric arrays only
(``np.load(..., allow_pickle=False)``), executes nothing from the file, rebuilds models
only from an allow-list of classes, and refuses anything malformed with a
:class:`CheckpointError`. The format is described in docs/checkpoints.md.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections import namedtuple

import numpy as np

from . import optim
from ..layer import NpnetError

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "load_into",
           "read_meta", "register", "FORMAT", "VERSION", "LOOSE_CONFIG_KEYS"]

FORMAT = "npnet-checkpoint"
VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"

# npnet's public classes a checkpoint may name; resolved lazily with getattr(npnet, name)
# so that a class not written yet (or not imported) does not break this module.
_NPNET_MODEL_CLASSES = ("LinearLayer", "BasicRNNCell", "LSTMCell", "GRUCell", "SequenceModel")
_REGISTRY: dict[str, type] = {}
# Config keys that do not change what a model computes once its weights are loaded
# (initialisation choices, precision, training-only regularisation): load_into(strict=True)
# does not compare them.
LOOSE_CONFIG_KEYS = frozenset({"dtype", "dropout", "weight_init", "recurrent_init", "bias_init",
                               "forget_bias", "chrono_t_max", "input_dropout", "output_dropout",
                               "recurrent_dropout"})


def _default_file_mode() -> int:
    # NamedTemporaryFile creates files 0600; give the checkpoint the usual umask-based mode.
    # Read once at import (os.umask can only be read by setting it).
    um = os.umask(0o022)
    os.umask(um)
    return 0o666 & ~um


_FILE_MODE = _default_file_mode()


class CheckpointError(NpnetError):
    """A checkpoint cannot be written or read: missing, truncated, corrupt, unsafe or mismatched."""


class Checkpoint(namedtuple("Checkpoint", ["model", "optimizer", "step", "extra"])):
    """What load_checkpoint / load_into return.

    model : the rebuilt (or restored) model
    optimizer : the rebuilt (or restored) optimiser, or None if the file holds none
    step : int, the step saved with the checkpoint
    extra : the JSON-able dict saved as ``extra`` (or None)

    The numeric arrays saved with ``save_checkpoint(..., arrays=...)`` are in the
    attribute ``arrays`` (a dict, empty when there are none); it is not a tuple field,
    so ``model, optimizer, step, extra = load_checkpoint(path)`` keeps working.
    """

    def __new__(cls, model, optimizer, step, extra, arrays=None):
        self = super().__new__(cls, model, optimizer, step, extra)
        self.arrays = dict(arrays or {})
        return self


def register(cls: type) -> type:
    """Allow checkpoints to rebuild models of class ``cls`` (usable as a decorator).

    The class is looked up by ``cls.__name__``; it must provide ``get_config()``
    and either a ``from_config(config)`` classmethod or accept ``cls(**config)``.
    """
    if not isinstance(cls, type):
        raise CheckpointError(f"register expects a class, got {cls!r}")
    if not callable(getattr(cls, "get_config", None)):
        raise CheckpointError(f"{cls.__name__} has no get_config(); checkpoints could not rebuild it")
    other = _REGISTRY.get(cls.__name__)
    if other is not None and other is not cls:
        raise CheckpointError(f"another class named {cls.__name__!r} is already registered "
                              f"({other.__module__}.{other.__qualname__})")
    _REGISTRY[cls.__name__] = cls
    return cls


def _model_class(name) -> type:
    if not isinstance(name, str):
        raise CheckpointError(f"model_class must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _NPNET_MODEL_CLASSES:
        import npnet                                         # lazy: npnet imports this module
        cls = getattr(npnet, name, None)
        if isinstance(cls, type):
            return cls
        raise CheckpointError(f"model class {name!r} is not available in this version of npnet")
    allowed = sorted(set(_NPNET_MODEL_CLASSES) | set(_REGISTRY))
    raise CheckpointError(f"model class {name!r} is not allowed; expected one of {allowed} "
                          "(register other classes with npnet.checkpoint.register)")


# ---------------------------------------------------------------------------- saving
def _json(obj, what: str) -> str:
    try:
        return json.dumps(obj, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} must be JSON-serialisable (no NaN/inf): {exc}") from None


def _float_arrays(d, what: str) -> dict:
    if not isinstance(d, dict):
        raise CheckpointError(f"{what} must be a dict name -> ndarray, got {type(d).__name__}")
    out = {}
    for name, a in d.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"{what} names must be non-empty strings, got {name!r}")
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise CheckpointError(f"{what} {name!r} must be a numeric ndarray, got {kind}")
        out[name] = a
    return out


def save_checkpoint(path, model, optimizer=None, step: int = 0, extra: dict | None = None,
                    arrays: dict | None = None) -> None:
    """Write ``model`` (and ``optimizer``) to ONE .npz file at ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (used as given: no suffix is added). Its directory must exist.
    model : object with ``params`` (dict name -> float ndarray) and ``get_config()``
    optimizer : npnet.optim.Optimizer or None
        Its ``state_dict()`` and ``get_config()`` are stored; it must update (a subset
        of) the model's parameters, by name.
    step : int >= 0
    extra : JSON-able dict or None (e.g. RNG bit-generator states, epoch, best loss)
    arrays : dict name -> numeric ndarray, or None
        Further arrays kept exactly (e.g. the best weights an EarlyStopping callback
        holds), stored as ``extra/<name>``; read back as ``Checkpoint.arrays``.

    Layout: ``param/<name>`` arrays, ``optim/<key>`` arrays, ``extra/<name>`` arrays, and ``meta``, a 0-d
    unicode array holding the JSON header. The file appears under ``path`` only once
    completely written and fsync'ed; on any failure the previous file is untouched
    and the temporary file is removed (the exception propagates; I/O errors stay OSError).
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise CheckpointError(f"step must be an integer >= 0, got {step!r}")
    if extra is not None and not isinstance(extra, dict):
        raise CheckpointError(f"extra must be a JSON-able dict or None, got {type(extra).__name__}")
    if not callable(getattr(model, "get_config", None)) or not hasattr(model, "params"):
        raise CheckpointError(f"model must have params and get_config(), got {type(model).__name__}")
    params = _float_arrays(model.params, "model parameter")
    for name, a in params.items():
        if a.dtype.kind != "f":
            raise CheckpointError(f"model parameter {name!r} must be a float array, got {a.dtype}")
    meta = {"format": FORMAT, "version": VERSION,
            "model_class": type(model).__name__, "model_config": model.get_config(),
            "optimizer_class": None, "optimizer_config": None, "optimizer_params": None,
            "step": int(step), "extra": extra}
    members = {f"param/{k}": a for k, a in params.items()}
    members.update({f"extra/{k}": a for k, a in _float_arrays(arrays or {}, "extra array").items()})
    if optimizer is not None:
        if not (callable(getattr(optimizer, "state_dict", None))
                and callable(getattr(optimizer, "get_config", None))):
            raise CheckpointError(f"optimizer must have state_dict() and get_config(), "
                                  f"got {type(optimizer).__name__}")
        opt_params = getattr(optimizer, "params", params)
        for name, a in opt_params.items():
            if name not in params or params[name].shape != a.shape:
                raise CheckpointError(f"the optimizer updates parameter {name!r} {np.shape(a)}, "
                                      "which the model does not have with that shape")
        state = _float_arrays(optimizer.state_dict(), "optimizer state")
        members.update({f"optim/{k}": a for k, a in state.items()})
        cfg = optimizer.get_config()
        meta["optimizer_class"] = cfg.get("class", type(optimizer).__name__)
        meta["optimizer_config"] = cfg
        meta["optimizer_params"] = list(opt_params)
    members["meta"] = np.array(_json(meta, "the checkpoint header (model_config, optimizer_config, extra)"))

    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a directory; give a file name such as {path!r}/ckpt.npz")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"cannot save {path!r}: directory {directory!r} does not exist")
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{os.path.basename(path)}.",
                                      suffix=".tmp", delete=False)
    try:
        with tmp:
            np.savez(tmp, **members)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, _FILE_MODE)
        os.replace(tmp.name, path)
    except BaseException:
        try:
            os.unlink(tmp.name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); silently skipped where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- reading
def _read_members(f, path: str) -> dict:
    """Every member of the open npz file ``f`` as an ndarray, refusing pickles and corruption.

    Anything the zip or .npy parsers raise on this untrusted file means it cannot be read:
    besides BadZipFile, a flipped header byte makes zipfile raise NotImplementedError
    ("compression method", "zip file version", "patched data"), a flipped shape can make
    NumPy raise MemoryError, and so on; each becomes a CheckpointError naming the cause.
    """
    try:
        npz = np.load(f, allow_pickle=False)                 # never unpickle anything
    except Exception as exc:                                 # noqa: BLE001 - see the docstring
        raise CheckpointError(f"{path!r} is a truncated or corrupt npz archive "
                              f"({type(exc).__name__}: {exc})") from None
    arrays = {}
    with npz:
        for key in npz.files:
            try:
                a = npz[key]
            except ValueError as exc:
                if "object" in str(exc).lower() or "pickle" in str(exc).lower():
                    raise CheckpointError(
                        f"{path!r} holds an object array (pickled Python data) under {key!r}; refusing "
                        "to load it: npnet checkpoints contain only numeric arrays and a JSON string"
                    ) from None
                raise CheckpointError(f"{path!r}: array {key!r} is corrupt or truncated ({exc})") from None
            except Exception as exc:                         # noqa: BLE001 - see the docstring
                raise CheckpointError(f"{path!r}: array {key!r} is corrupt or truncated "
                                      f"({type(exc).__name__}: {exc})") from None
            if not isinstance(a, np.ndarray):
                raise CheckpointError(f"{path!r}: member {key!r} is not a .npy array")
            arrays[key] = a
    return arrays


def _check_finite_weights(params: dict, state: dict, path: str, allow_nonfinite: bool) -> None:
    """Refuse NaN/inf parameters or optimiser state: resuming from them trains nothing but NaN."""
    if allow_nonfinite:
        return
    for what, arrays in (("parameter", params), ("optimizer state", state)):
        for name, a in arrays.items():
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                raise CheckpointError(f"{path!r}: {what} {name!r} holds {bad} NaN/inf of {a.size} values (saved "
                                      "from a diverged run?); pass allow_nonfinite=True to load it anyway")


def _read(path):
    """Open, fully read and validate a checkpoint -> (meta, params, optim_state, extra_arrays, path str)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise CheckpointError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint file at {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a directory, not a checkpoint file")
    with open(path, "rb") as f:                               # our handle: closed even on errors
        head = f.read(len(_ZIP_MAGIC))
        if not head:
            raise CheckpointError(f"{path!r} is empty (an interrupted copy?), not a checkpoint")
        if head != _ZIP_MAGIC:
            raise CheckpointError(f"{path!r} is not an npz (zip) archive: corrupt, or not an npnet checkpoint")
        f.seek(0)
        arrays = _read_members(f, path)
    if "meta" not in arrays:
        raise CheckpointError(f"{path!r} has no 'meta' header: not an npnet checkpoint")
    raw = arrays.pop("meta")
    if raw.shape != () or raw.dtype.kind != "U":
        raise CheckpointError(f"{path!r}: 'meta' must be a 0-d unicode (JSON) array, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(str(raw[()]))
    except ValueError as exc:
        raise CheckpointError(f"{path!r}: 'meta' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path!r} has format tag {got!r}, expected {FORMAT!r}: not an npnet checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path!r} is checkpoint version {meta.get('version')!r}; "
                              f"this npnet reads version {VERSION}")
    for key, types in (("model_class", str), ("model_config", dict), ("step", int),
                       ("extra", (dict, type(None))), ("optimizer_class", (str, type(None))),
                       ("optimizer_config", (dict, type(None))), ("optimizer_params", (list, type(None)))):
        if key not in meta or not isinstance(meta[key], types) or isinstance(meta[key], bool):
            raise CheckpointError(f"{path!r}: header field {key!r} is missing or malformed: {meta.get(key)!r}")

    params, state, extra_arrays = {}, {}, {}
    for key, a in arrays.items():
        group, _, name = key.partition("/")
        if group == "param" and name:
            if a.dtype.kind != "f":
                raise CheckpointError(f"{path!r}: parameter {name!r} has dtype {a.dtype}, expected float")
            params[name] = a
        elif group == "optim" and name:
            if a.dtype.kind not in "fiu":
                raise CheckpointError(f"{path!r}: optimizer state {name!r} has dtype {a.dtype}, expected numeric")
            state[name] = a
        elif group == "extra" and name:
            if a.dtype.kind not in "fiu":
                raise CheckpointError(f"{path!r}: extra array {name!r} has dtype {a.dtype}, expected numeric")
            extra_arrays[name] = a
        else:
            raise CheckpointError(f"{path!r}: unexpected member {key!r} "
                                  "(expected 'meta', 'param/...', 'optim/...', 'extra/...')")
    if (meta["optimizer_class"] is None) != (meta["optimizer_config"] is None) or \
            (meta["optimizer_class"] is None and state):
        raise CheckpointError(f"{path!r}: optimizer header and 'optim/' arrays are inconsistent")
    return meta, params, state, extra_arrays, path


def read_meta(path) -> dict:
    """The validated JSON header of a checkpoint (format, version, classes, configs, step, extra)."""
    return _read(path)[0]


def _check_architecture(model, params: dict, path: str) -> None:
    """Every parameter name present on both sides with equal shapes, or a 'wrong architecture' error."""
    mp = model.params
    missing = [k for k in mp if k not in params]
    extra = [k for k in params if k not in mp]
    shapes = [f"{k!r}: file {params[k].shape} vs model {mp[k].shape}"
              for k in mp if k in params and params[k].shape != mp[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the file: {missing}")
        if extra:
            parts.append(f"not in the model: {extra}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes))
        raise CheckpointError(f"wrong architecture: {path!r} does not fit {type(model).__name__} "
                              f"({'; '.join(parts)})")


def _copy_params(model, params: dict) -> None:
    for k, dst in model.params.items():                     # in place: optimisers keep their references
        np.copyto(dst, params[k], casting="same_kind")


def _optimizer_params(model, meta: dict, path: str) -> dict:
    names = meta["optimizer_params"] if meta["optimizer_params"] is not None else list(model.params)
    unknown = [n for n in names if n not in model.params]
    if unknown:
        raise CheckpointError(f"{path!r}: the optimizer updates parameters the model lacks: {unknown}")
    return {n: model.params[n] for n in names}


def load_checkpoint(path, allow_nonfinite: bool = False) -> Checkpoint:
    """Rebuild the model (and optimizer) saved at ``path``.

    The model class must be registered (:func:`register`) or one of npnet's
    LinearLayer, BasicRNNCell, LSTMCell, GRUCell, SequenceModel; it is built with
    ``cls.from_config(config)`` if defined, else ``cls(**config)``, and its
    parameters are then overwritten by name (names and shapes must match exactly).
    Raises :class:`CheckpointError` for a missing, empty, truncated, corrupt,
    pickle-bearing, wrong-format or wrong-architecture file, and for NaN or inf in a
    parameter or the optimiser state unless ``allow_nonfinite`` (e.g. to inspect a
    diverged run).
    """
    meta, params, state, extra_arrays, path = _read(path)
    _check_finite_weights(params, state, path, allow_nonfinite)
    cls = _model_class(meta["model_class"])
    config = meta["model_config"]
    try:
        model = cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    except Exception as exc:
        raise CheckpointError(f"{path!r}: could not rebuild {cls.__name__} from its saved config "
                              f"{config}: {exc}") from None
    _check_architecture(model, params, path)
    _copy_params(model, params)

    optimizer = None
    if meta["optimizer_class"] is not None:
        try:
            optimizer = optim.from_config(_optimizer_params(model, meta, path), meta["optimizer_config"])
            optimizer.load_state_dict(state)
        except CheckpointError:
            raise
        except NpnetError as exc:
            raise CheckpointError(f"{path!r}: cannot restore the {meta['optimizer_class']} optimizer: {exc}") from None
    return Checkpoint(model, optimizer, meta["step"], meta["extra"], extra_arrays)


def load_into(path, model, optimizer=None, strict: bool = True, allow_nonfinite: bool = False) -> Checkpoint:
    """Restore a checkpoint into existing objects (arrays are overwritten in place).

    ``model`` must be of the saved class with the same parameter names and shapes;
    with ``strict`` its config must also equal the saved one apart from the keys in
    ``LOOSE_CONFIG_KEYS`` (dtype, dropout, initialisers), so e.g. a tanh checkpoint is
    refused by a relu cell. Values are cast to the
    model's dtype. If ``optimizer`` is given, the file must hold state for the same
    optimizer class over the same parameters; like PyTorch's ``load_state_dict``,
    the saved hyperparameters (lr included) replace the optimizer's. Nothing is
    modified unless every check passes (NaN or inf in the parameters or the optimiser state
    fails one unless ``allow_nonfinite``). Returns ``Checkpoint(model, optimizer, step, extra)``.
    """
    meta, params, state, extra_arrays, path = _read(path)
    _check_finite_weights(params, state, path, allow_nonfinite)
    if meta["model_class"] != type(model).__name__:
        raise CheckpointError(f"wrong architecture: {path!r} holds a {meta['model_class']}, "
                              f"not a {type(model).__name__}")
    if strict and callable(getattr(model, "get_config", None)):
        upgrade = getattr(type(model), "upgrade_config", None)       # e.g. keys added since the file
        saved_config = upgrade(meta["model_config"]) if callable(upgrade) else meta["model_config"]
        saved = {k: v for k, v in saved_config.items() if k not in LOOSE_CONFIG_KEYS}
        mine = {k: v for k, v in json.loads(_json(model.get_config(), "model config")).items()
                if k not in LOOSE_CONFIG_KEYS}
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k, "<absent>") != mine.get(k, "<absent>"))
        if diff:
            detail = "; ".join(f"{k}: file {saved.get(k, '<absent>')!r} vs model {mine.get(k, '<absent>')!r}"
                               for k in diff)
            raise CheckpointError(f"wrong architecture: {path!r} was saved from a differently configured "
                                  f"{type(model).__name__} ({detail}); pass strict=False to load anyway")
    _check_architecture(model, params, path)

    if optimizer is not None:
        if meta["optimizer_class"] is None:
            raise CheckpointError(f"{path!r} holds no optimizer state to restore")
        if meta["optimizer_class"] != type(optimizer).__name__:
            raise CheckpointError(f"{path!r} holds {meta['optimizer_class']} state, "
                                  f"not {type(optimizer).__name__} state")
        try:
            if isinstance(optimizer, optim.Optimizer):
                template = optim.from_config({}, meta["optimizer_config"])   # validates hyperparameters
            optimizer.load_state_dict(state)                  # checks every key and shape before copying
        except NpnetError as exc:
            raise CheckpointError(f"{path!r}: cannot restore the {meta['optimizer_class']} optimizer: {exc}") from None
        if isinstance(optimizer, optim.Optimizer):
            for k in template.hyperparams:
                setattr(optimizer, k, getattr(template, k))
    _copy_params(model, params)
    return Checkpoint(model, optimizer, meta["step"], meta["extra"], extra_arrays)
