"""Issue 14: every corrupt checkpoint raises CheckpointError. A small checkpoint (a model, a step,
extra JSON, and its optimiser state or an extra array) has each of its bytes flipped in turn
(all bits; the lowest bit); every load either returns exactly the saved data or raises
CheckpointError -- never zipfile's NotImplementedError ("compression method", "zip file version",
"patched data"), its RuntimeError for the encryption flag, or NumPy's errors. Also: NaN/inf
weights are refused on load unless asked for."""
import numpy as np
import pytest

import npnet
from npnet.training.checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint
from npnet.training.learner import Learner


def _small(tmp_path, with_optimizer: bool):
    """A checkpoint of 1.9-2.5 kB: one 1x1 weight, and either SGD state or an extra array."""
    model = npnet.LinearLayer(1, 1, bias=False, rng=0)
    path = tmp_path / "small.npz"
    if with_optimizer:
        opt = npnet.optim.SGD(model.params, lr=0.1)
        opt.step({"W": np.array([[0.5]])})
        save_checkpoint(path, model, opt, step=7, extra={"note": "x"})
    else:
        save_checkpoint(path, model, None, step=7, extra={"note": "x"}, arrays={"best": np.array([2.5])})
    return path


def _same(ck, ref) -> bool:
    def arrays_equal(a, b):
        return a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)
    return (type(ck.model) is type(ref.model) and ck.model.get_config() == ref.model.get_config()
            and arrays_equal(ck.model.params, ref.model.params)
            and type(ck.optimizer) is type(ref.optimizer)
            and (ref.optimizer is None or (ck.optimizer.get_config() == ref.optimizer.get_config()
                                           and arrays_equal(ck.optimizer.state_dict(), ref.optimizer.state_dict())))
            and ck.step == ref.step and ck.extra == ref.extra and arrays_equal(ck.arrays, ref.arrays))


@pytest.mark.parametrize("mask,with_optimizer", [(0xFF, True), (0x01, False)])
def test_every_single_byte_flip_loads_exactly_or_raises_checkpoint_error(tmp_path, mask, with_optimizer):
    path = _small(tmp_path, with_optimizer)
    raw = path.read_bytes()
    ref = load_checkpoint(path)
    flipped = tmp_path / "flipped.npz"
    unchanged, refused, wrong = 0, 0, []
    for i in range(len(raw)):
        data = bytearray(raw)
        data[i] ^= mask
        flipped.write_bytes(bytes(data))
        try:
            ck = load_checkpoint(flipped)
        except CheckpointError:
            refused += 1
            continue
        except Exception as exc:                               # noqa: BLE001 - what the test is about
            wrong.append((i, f"{type(exc).__name__}: {exc}"))
            continue
        if _same(ck, ref):
            unchanged += 1                                     # e.g. a timestamp: the data are intact
        else:
            wrong.append((i, "loaded, but not the saved data"))
    assert not wrong, f"{len(wrong)} of {len(raw)} flips: {wrong[:5]}"
    assert refused > len(raw) // 2                               # the test did corrupt things


def test_nonfinite_weights_are_refused_unless_asked_for(tmp_path):
    model = npnet.SequenceModel(2, 3, output_size=1, rng=0)
    model.params["read_out.W"] = np.full((3, 1), np.nan)
    opt = npnet.optim.Adam(model.params)
    save_checkpoint(tmp_path / "nan.npz", model, opt, step=1)
    with pytest.raises(CheckpointError, match=r"parameter 'read_out.W' holds 3 NaN/inf of 3 .*allow_nonfinite=True"):
        load_checkpoint(tmp_path / "nan.npz")
    fresh = npnet.SequenceModel(2, 3, output_size=1, rng=1)
    before = fresh.params["cells.0.W_x"].copy()
    with pytest.raises(CheckpointError, match="allow_nonfinite"):
        load_into(tmp_path / "nan.npz", fresh)
    np.testing.assert_array_equal(fresh.params["cells.0.W_x"], before)      # nothing was modified
    ck = load_checkpoint(tmp_path / "nan.npz", allow_nonfinite=True)       # asked for: loaded as saved
    assert np.isnan(ck.model.params["read_out.W"]).all()
    load_into(tmp_path / "nan.npz", fresh, allow_nonfinite=True)
    assert np.isnan(fresh.params["read_out.W"]).all()


def test_nonfinite_optimizer_state_is_refused_and_resume_follows(tmp_path):
    model = npnet.SequenceModel(2, 3, output_size=1, rng=0)
    learner = Learner(model, "mse", "adam", progress=False)
    learner.optimizer.state["v"]["read_out.b"][:] = np.inf
    learner.save(tmp_path / "inf.npz")
    with pytest.raises(CheckpointError, match=r"optimizer state 'v/read_out.b' holds 1 NaN/inf"):
        Learner.resume(tmp_path / "inf.npz", "mse", progress=False)
    again = Learner.resume(tmp_path / "inf.npz", "mse", progress=False, allow_nonfinite=True)
    assert np.isinf(again.optimizer.state["v"]["read_out.b"]).all()
