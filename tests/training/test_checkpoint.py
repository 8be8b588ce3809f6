"""Tests for npnet.checkpoint: bit-exact round trips (model, optimiser, step, extra), atomic saves,
and the refusal of missing, truncated, corrupt, pickle-bearing, foreign and mismatched files."""
import json
import os

import numpy as np
import pytest

import npnet
from npnet import checkpoint as ck
from npnet import optim
from npnet.training.checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint


def trained(model, opt, steps=2, seed=0):
    """A few optimiser steps with random gradients, so that state is non-trivial."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.step({k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in model.params.items()})
    return model, opt


def rnn(dtype=np.float32, **kw):
    return npnet.BasicRNNCell(3, 4, dtype=dtype, rng=1, **kw)


def linear(dtype=np.float64):
    return npnet.LinearLayer(5, 2, dtype=dtype, rng=2)


def rewrite(path, **changes):
    """Re-save a checkpoint's members with some replaced (value None: removed)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    os.remove(path)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def meta_of(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"][()]))


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("make", [rnn, linear])
@pytest.mark.parametrize("opt_name,kw", [("sgd", {"momentum": 0.9}), ("adam", {"lr": 0.01}),
                                         ("rmsprop", {"momentum": 0.5}), ("adagrad", {})])
def test_round_trip_bit_exact(tmp_path, make, opt_name, kw):
    model = make()
    opt = optim.get(opt_name, model.params, **kw)
    trained(model, opt)
    gen = np.random.default_rng(123)
    gen.standard_normal(7)
    extra = {"rng": gen.bit_generator.state, "epoch": 3}
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, step=20, extra=extra)
    assert os.listdir(tmp_path) == ["ckpt.npz"]

    c = load_checkpoint(path)
    assert type(c.model) is type(model) and c.model.get_config() == model.get_config()
    assert c.step == 20 and c.extra["epoch"] == 3
    for k, v in model.params.items():
        assert c.model.params[k].dtype == v.dtype
        assert c.model.params[k].tobytes() == v.tobytes()
    assert type(c.optimizer) is type(opt) and c.optimizer.get_config() == opt.get_config()
    sd, sd2 = opt.state_dict(), c.optimizer.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert sd[k].dtype == sd2[k].dtype and sd[k].tobytes() == sd2[k].tobytes(), k
    for k in model.params:                                    # the optimiser updates the new model
        assert c.optimizer.params[k] is c.model.params[k]

    # The RNG state in extra resumes the same stream.
    gen2 = np.random.default_rng()
    gen2.bit_generator.state = c.extra["rng"]
    np.testing.assert_array_equal(gen2.standard_normal(5), gen.standard_normal(5))

    # Training on from the checkpoint equals training on without it, bit for bit.
    trained(model, opt, steps=2, seed=9)
    trained(c.model, c.optimizer, steps=2, seed=9)
    for k in model.params:
        assert c.model.params[k].tobytes() == model.params[k].tobytes()


def test_file_layout(tmp_path):
    model = rnn()
    opt = optim.Adam(model.params)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, step=7, extra={"note": "x"})
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        meta_arr = z["meta"]
    assert keys == {"meta", "param/W_x", "param/W_h", "param/b", "optim/t",
                    "optim/m/W_x", "optim/m/W_h", "optim/m/b", "optim/v/W_x", "optim/v/W_h", "optim/v/b"}
    assert meta_arr.shape == () and meta_arr.dtype.kind == "U"
    meta = json.loads(str(meta_arr[()]))
    assert meta["format"] == "npnet-checkpoint" and meta["version"] == 1
    assert meta["model_class"] == "BasicRNNCell" and meta["model_config"] == model.get_config()
    assert meta["optimizer_class"] == "Adam" and meta["optimizer_config"] == opt.get_config()
    assert meta["step"] == 7 and meta["extra"] == {"note": "x"}
    assert ck.read_meta(path) == meta


def test_without_optimizer(tmp_path):
    model = linear(np.float32)
    path = tmp_path / "m.npz"
    save_checkpoint(str(path), model)
    c = load_checkpoint(str(path))
    assert c.optimizer is None and c.step == 0 and c.extra is None
    np.testing.assert_array_equal(c.model.params["W"], model.params["W"])
    assert c.model.params["W"].dtype == np.float32
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_into(path, linear(np.float32), optim.SGD(linear(np.float32).params))


def test_optimizer_over_a_subset_of_params(tmp_path):
    model = rnn(np.float64)
    opt = optim.SGD({"W_h": model.params["W_h"]}, lr=0.1, momentum=0.9)
    opt.step({"W_h": np.ones((4, 4))})
    save_checkpoint(tmp_path / "s.npz", model, opt)
    c = load_checkpoint(tmp_path / "s.npz")
    assert list(c.optimizer.params) == ["W_h"] and c.optimizer.params["W_h"] is c.model.params["W_h"]
    np.testing.assert_array_equal(c.optimizer.state["buf"]["W_h"], np.ones((4, 4)))


def test_overwrite_replaces(tmp_path):
    path = tmp_path / "c.npz"
    model = linear()
    save_checkpoint(path, model, step=1)
    model.params["W"] += 1.0
    save_checkpoint(path, model, step=2)
    c = load_checkpoint(path)
    assert c.step == 2
    np.testing.assert_array_equal(c.model.params["W"], model.params["W"])
    assert os.listdir(tmp_path) == ["c.npz"]


# ---------------------------------------------------------------- load_into
def test_load_into_restores_in_place(tmp_path):
    model = rnn()
    opt = optim.Adam(model.params, lr=0.05)
    trained(model, opt)
    save_checkpoint(tmp_path / "c.npz", model, opt, step=4, extra={"a": 1})

    other = npnet.BasicRNNCell(3, 4, dtype=np.float32, rng=99)
    other_opt = optim.Adam(other.params, lr=0.5, betas=(0.5, 0.6))
    ids = {k: id(v) for k, v in other.params.items()}
    c = load_into(tmp_path / "c.npz", other, other_opt)
    assert c.model is other and c.optimizer is other_opt and c.step == 4 and c.extra == {"a": 1}
    assert {k: id(v) for k, v in other.params.items()} == ids
    for k in model.params:
        assert other.params[k].tobytes() == model.params[k].tobytes()
    assert other_opt.lr == 0.05 and other_opt.betas == (0.9, 0.999) and other_opt.t == 2
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(other_opt.state_dict()[k], v)


def test_load_into_casts_to_model_dtype(tmp_path):
    save_checkpoint(tmp_path / "c.npz", rnn(np.float64))
    m32 = rnn(np.float32)
    load_into(tmp_path / "c.npz", m32)
    assert m32.params["W_x"].dtype == np.float32
    np.testing.assert_allclose(m32.params["W_x"], rnn(np.float64).params["W_x"], rtol=1e-7)


def test_load_into_wrong_architecture_changes_nothing(tmp_path):
    save_checkpoint(tmp_path / "c.npz", rnn(np.float64))
    big = npnet.BasicRNNCell(3, 5, rng=0)
    before = {k: v.copy() for k, v in big.params.items()}
    with pytest.raises(CheckpointError, match=r"wrong architecture.*hidden_size: file 4 vs model 5"):
        load_into(tmp_path / "c.npz", big)
    with pytest.raises(CheckpointError, match=r"wrong architecture.*'W_x': file \(3, 4\) vs model \(3, 5\)"):
        load_into(tmp_path / "c.npz", big, strict=False)
    with pytest.raises(CheckpointError, match="holds a BasicRNNCell, not a LinearLayer"):
        load_into(tmp_path / "c.npz", linear())
    for k, v in before.items():
        np.testing.assert_array_equal(big.params[k], v)


def test_load_into_strict_config(tmp_path):
    save_checkpoint(tmp_path / "c.npz", rnn(np.float64))
    relu = rnn(np.float64, nonlinearity="relu")
    with pytest.raises(CheckpointError, match="nonlinearity: file 'tanh' vs model 'relu'"):
        load_into(tmp_path / "c.npz", relu)
    load_into(tmp_path / "c.npz", relu, strict=False)
    np.testing.assert_array_equal(relu.params["W_h"], rnn(np.float64).params["W_h"])


def test_load_into_ignores_init_only_config(tmp_path):
    # An LSTM built with other initialisers (and dtype) has the same architecture.
    src = npnet.LSTMCell(3, 4, rng=0)
    save_checkpoint(tmp_path / "c.npz", src)
    dst = npnet.LSTMCell(3, 4, forget_bias=0.0, recurrent_init="glorot_uniform", dtype=np.float32, rng=1)
    load_into(tmp_path / "c.npz", dst)
    np.testing.assert_allclose(dst.params["b"], src.params["b"], rtol=1e-7)
    with pytest.raises(CheckpointError, match="hidden_size: file 4 vs model 5"):
        load_into(tmp_path / "c.npz", npnet.LSTMCell(3, 5, rng=0))


def test_load_into_optimizer_mismatch_changes_nothing(tmp_path):
    model = rnn(np.float64)
    save_checkpoint(tmp_path / "c.npz", model, optim.SGD(model.params, momentum=0.9))
    target = npnet.BasicRNNCell(3, 4, rng=5)
    before = target.params["W_x"].copy()
    with pytest.raises(CheckpointError, match="holds SGD state, not Adam state"):
        load_into(tmp_path / "c.npz", target, optim.Adam(target.params))
    sub = optim.SGD({"b": target.params["b"]}, momentum=0.9)
    with pytest.raises(CheckpointError, match=r"cannot restore the SGD optimizer.*unexpected \['buf/W_h', 'buf/W_x'\]"):
        load_into(tmp_path / "c.npz", target, sub)
    np.testing.assert_array_equal(target.params["W_x"], before)


# ---------------------------------------------------------------- atomicity
def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    old = linear()
    save_checkpoint(path, old, step=1)
    new = npnet.LinearLayer(5, 2, rng=77)

    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        file.write(b"PK\x03\x04 half a zip archive")           # partial bytes reach the temp file
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_checkpoint(path, new, step=2)
    monkeypatch.setattr(np, "savez", real_savez)
    assert os.listdir(tmp_path) == ["c.npz"]
    c = load_checkpoint(path)
    assert c.step == 1
    assert c.model.params["W"].tobytes() == old.params["W"].tobytes()


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear(), step=1)

    def no_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(path, linear(), step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.npz"] and load_checkpoint(path).step == 1


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def crash(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.npz", linear())
    assert os.listdir(tmp_path) == []


def test_save_argument_checks(tmp_path):
    model = linear()
    with pytest.raises(CheckpointError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "c.npz", model, extra={"a": np.zeros(2)})
    with pytest.raises(CheckpointError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "c.npz", model, extra={"a": float("nan")})
    with pytest.raises(CheckpointError, match="step"):
        save_checkpoint(tmp_path / "c.npz", model, step=-1)
    with pytest.raises(CheckpointError, match="is a directory"):
        save_checkpoint(tmp_path, model)
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "c.npz", model)
    with pytest.raises(CheckpointError, match="does not have with that shape"):
        save_checkpoint(tmp_path / "c.npz", model, optim.SGD(rnn(np.float64).params))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- refusing bad files
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        load_checkpoint(tmp_path / "absent.npz")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(tmp_path / "c.npz")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.95, 0.999])
def test_truncated_file(tmp_path, fraction):
    path = tmp_path / "c.npz"
    model = rnn()
    save_checkpoint(path, model, optim.Adam(model.params))
    data = path.read_bytes()
    path.write_bytes(data[: max(5, int(len(data) * fraction))])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_corrupted_bytes_inside(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())
    data = bytearray(path.read_bytes())
    i = data.index(b"\x93NUMPY", data.index(b"param/W")) + 200   # inside W's array data
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(CheckpointError, match="not an npz"):
        load_checkpoint(path)
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(3000))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    np.save(tmp_path / "plain.npy", np.zeros(3))               # an .npy, not an .npz
    with pytest.raises(CheckpointError, match="not an npz"):
        load_checkpoint(tmp_path / "plain.npy")


UNPICKLED = []


def _record_unpickle(x):
    UNPICKLED.append(x)
    return x


class Trap:
    def __reduce__(self):
        return (_record_unpickle, ("executed",))


def test_pickle_bearing_npz_is_refused_and_not_executed(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())
    rewrite(path, **{"param/W": np.array([Trap(), 1], dtype=object)})
    with pytest.raises(CheckpointError, match=r"object array \(pickled Python data\) under 'param/W'"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="object array"):
        load_into(path, linear())
    assert UNPICKLED == []
    # A pickled meta is refused the same way.
    save_checkpoint(path, linear())
    rewrite(path, meta=np.array([{"format": "npnet-checkpoint"}], dtype=object))
    with pytest.raises(CheckpointError, match="object array"):
        load_checkpoint(path)


def test_wrong_format_tag_and_version(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())
    meta = meta_of(path)
    rewrite(path, meta=np.array(json.dumps(dict(meta, format="keras-weights"))))
    with pytest.raises(CheckpointError, match="format tag 'keras-weights', expected 'npnet-checkpoint'"):
        load_checkpoint(path)
    rewrite(path, meta=np.array(json.dumps(dict(meta, version=2))))
    with pytest.raises(CheckpointError, match="version 2; this npnet reads version 1"):
        load_checkpoint(path)
    rewrite(path, meta=np.array("{not json"))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    rewrite(path, meta=None)
    with pytest.raises(CheckpointError, match="no 'meta' header"):
        load_checkpoint(path)
    with open(path, "wb") as f:                                # a foreign npz
        np.savez(f, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="no 'meta' header"):
        load_checkpoint(path)


def test_wrong_architecture_file(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())                            # LinearLayer(5, 2): W (5, 2), b (2,)
    rewrite(path, **{"param/W": np.zeros((5, 3))})
    with pytest.raises(CheckpointError, match=r"wrong architecture.*'W': file \(5, 3\) vs model \(5, 2\)"):
        load_checkpoint(path)
    save_checkpoint(path, linear())
    rewrite(path, **{"param/b": None, "param/extra": np.zeros(2)})
    with pytest.raises(CheckpointError, match=r"missing from the file: \['b'\].*not in the model: \['extra'\]"):
        load_checkpoint(path)


def test_unknown_member_and_bad_dtype(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())
    rewrite(path, surprise=np.zeros(2))
    with pytest.raises(CheckpointError, match="unexpected member 'surprise'"):
        load_checkpoint(path)
    save_checkpoint(path, linear())
    rewrite(path, **{"param/W": np.array(["a"] * 10).reshape(5, 2)})
    with pytest.raises(CheckpointError, match="dtype <U1, expected float"):
        load_checkpoint(path)


def test_only_allowed_classes_are_built(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, linear())
    meta = meta_of(path)
    for name in ("gradcheck", "Popen", "__import__", "Layer"):
        rewrite(path, meta=np.array(json.dumps(dict(meta, model_class=name))))
        with pytest.raises(CheckpointError, match=f"model class '{name}' is not allowed"):
            load_checkpoint(path)
    rewrite(path, meta=np.array(json.dumps(dict(meta, model_config={"in_features": 5}))))
    with pytest.raises(CheckpointError, match="could not rebuild LinearLayer from its saved config"):
        load_checkpoint(path)


class Scaler:
    """A user model outside npnet, rebuilt through register()."""

    def __init__(self, n):
        self.n = n
        self.params = {"s": np.arange(n, dtype=np.float64)}

    def get_config(self):
        return {"n": self.n}


def test_register_user_class(tmp_path):
    path = tmp_path / "c.npz"
    m = Scaler(3)
    m.params["s"] *= 2.5
    save_checkpoint(path, m)
    with pytest.raises(CheckpointError, match="'Scaler' is not allowed"):
        load_checkpoint(path)
    assert ck.register(Scaler) is Scaler
    try:
        c = load_checkpoint(path)
        assert isinstance(c.model, Scaler)
        np.testing.assert_array_equal(c.model.params["s"], [0.0, 2.5, 5.0])
        with pytest.raises(CheckpointError, match="already registered"):
            ck.register(type("Scaler", (Scaler,), {}))
    finally:
        ck._REGISTRY.pop("Scaler", None)


def test_error_hierarchy():
    assert issubclass(CheckpointError, npnet.NpnetError) and issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize("name,args,kw", [
    ("LSTMCell", (3, 4), {"dtype": np.float32}),
    ("GRUCell", (3, 4), {}),
    ("SequenceModel", (3, [4, 5], 2), {"cell": ["lstm", "gru"], "output_size": 2, "bidirectional": True}),
])
def test_other_npnet_models_round_trip(tmp_path, name, args, kw):
    cls = getattr(npnet, name, None)
    if cls is None:
        pytest.skip(f"npnet.{name} is not exported (yet)")
    model = cls(*args, rng=0, **kw)
    opt = optim.Adam(model.params, lr=0.01)
    trained(model, opt)
    save_checkpoint(tmp_path / "c.npz", model, opt, step=2)
    c = load_checkpoint(tmp_path / "c.npz")
    assert type(c.model) is cls and c.model.get_config() == model.get_config()
    for k, v in model.params.items():
        assert c.model.params[k].dtype == v.dtype and c.model.params[k].tobytes() == v.tobytes(), k
    assert all(c.optimizer.params[k] is c.model.params[k] for k in model.params)


def test_extra_arrays_round_trip_exactly(tmp_path):
    model = linear(np.float32)
    arrays = {"best.W": np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32),
              "count": np.arange(4, dtype=np.int64)}
    save_checkpoint(tmp_path / "c.npz", model, extra={"a": 1}, arrays=arrays)
    for c in (load_checkpoint(tmp_path / "c.npz"), load_into(tmp_path / "c.npz", linear(np.float32))):
        assert c.arrays.keys() == arrays.keys() and c.extra == {"a": 1}
        for k, a in arrays.items():
            assert c.arrays[k].dtype == a.dtype
            np.testing.assert_array_equal(c.arrays[k], a)
        m, o, s, e = c                                        # still a 4-tuple
    assert load_checkpoint(tmp_path / "c.npz").arrays is not c.arrays
    save_checkpoint(tmp_path / "d.npz", model)
    assert load_checkpoint(tmp_path / "d.npz").arrays == {}
    with pytest.raises(CheckpointError, match="extra array 'x' must be a numeric ndarray"):
        save_checkpoint(tmp_path / "e.npz", model, arrays={"x": [1.0]})
    with pytest.raises(CheckpointError, match="extra array 'b' must be a numeric ndarray"):
        save_checkpoint(tmp_path / "e.npz", model, arrays={"b": np.array(["s"])})
