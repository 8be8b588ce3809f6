"""Embedding: lookup, row-accumulating backward (fast path == np.add.at reference), padding_idx,
PyTorch's N(0, 1) init, gradcheck on the table through a downstream layer, and clear errors."""
import numpy as np
import pytest

import npnet
from npnet.embedding import Embedding, accumulate_rows, accumulate_rows_reference


class _IdsThenLinear:
    """Embedding -> LinearLayer as one layer for gradcheck, which hands fprop a float64 copy of
    the input: the ids are cast back to ints here (they are never perturbed: check_input=False)."""

    def __init__(self, emb, lin):
        self.emb, self.lin, self.dtype = emb, lin, emb.dtype
        self.params = {"emb.W": emb.params["W"], **{f"lin.{k}": v for k, v in lin.params.items()}}
        self.grads = {"emb.W": emb.grads["W"], **{f"lin.{k}": v for k, v in lin.grads.items()}}

    def zero_grad(self):
        self.emb.zero_grad()
        self.lin.zero_grad()

    def fprop(self, x):
        return self.lin.fprop(self.emb.fprop(np.asarray(x).astype(np.int64)))

    def bprop(self, dy):
        return self.emb.bprop(self.lin.bprop(dy))


@pytest.mark.parametrize("shape", [(2, 5), (1, 1), (7,), (2, 3, 4)])
def test_gradcheck_weight_through_linear(shape, rng):
    emb = Embedding(6, 3, rng=0)
    ids = rng.integers(0, 6, size=shape)
    ids.flat[0] = ids.flat[-1] = 2                 # a repeated id: its rows must add up
    errors = npnet.gradcheck(_IdsThenLinear(emb, npnet.LinearLayer(3, 4, rng=1)), ids, check_input=False)
    assert set(errors) == {"param emb.W", "param lin.W", "param lin.b"}
    assert max(errors.values()) < 1e-8, errors


def test_gradcheck_with_padding_idx(rng):
    emb = Embedding(5, 3, padding_idx=0, rng=0)
    emb.params["W"][0] = rng.standard_normal(3)    # a nonzero padding row: still no gradient
    ids = rng.integers(0, 5, size=(3, 4))
    ids[:, -1] = 0
    layer = _IdsThenLinear(emb, npnet.LinearLayer(3, 2, rng=1))
    layer.zero_grad()
    y = layer.fprop(ids)
    layer.bprop(np.ones_like(y))
    assert not emb.grads["W"][0].any()
    assert emb.grads["W"][1:].any()


def test_forward_is_lookup_and_keeps_dtype(rng):
    for dtype in (np.float32, np.float64):
        emb = Embedding(10, 4, dtype=dtype, rng=0)
        ids = rng.integers(0, 10, size=(3, 5)).astype(np.int32)
        y = emb.fprop(ids)
        assert y.shape == (3, 5, 4) and y.dtype == dtype
        np.testing.assert_array_equal(y, emb.params["W"][ids])
        np.testing.assert_array_equal(emb.forward(ids.astype(np.uint8)), y)
        y[0, 0] = 99.0                              # the output is a copy, not a view of W
        assert not (emb.params["W"] == 99.0).any()
        dx = emb.bprop(np.ones((3, 5, 4), dtype))
        assert dx.shape == (3, 5) and dx.dtype == dtype and not dx.any()


def test_backward_adds_rows_of_repeated_ids(rng):
    emb = Embedding(4, 3, rng=0)
    ids = np.array([[1, 1, 3], [1, 0, 3]])
    dy = rng.standard_normal((2, 3, 3))
    dy_copy = dy.copy()
    emb.grads["W"][:] = 0.5                         # bprop adds into grads, never assigns
    emb.fprop(ids)
    emb.bprop(dy)
    np.testing.assert_array_equal(dy, dy_copy)
    want = np.full((4, 3), 0.5)
    for (b, t), v in np.ndenumerate(ids):           # the independent loop over tokens
        want[v] += dy[b, t]
    np.testing.assert_allclose(emb.grads["W"], want, rtol=1e-14, atol=0)
    assert (emb.grads["W"][2] == 0.5).all()         # an unused id: untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("V,E,N", [(65, 64, 3200), (1000, 16, 500), (3, 1, 1), (5, 2, 0)])
def test_fast_accumulation_equals_add_at_reference(V, E, N, dtype, rng):
    ids = rng.integers(0, V, size=N)
    dy = rng.standard_normal((N, E)).astype(dtype)
    start = rng.standard_normal((V, E)).astype(dtype)
    want, got = start.copy(), start.copy()
    accumulate_rows_reference(want, ids, dy)
    accumulate_rows(got, ids, dy)
    np.testing.assert_array_equal(got, want)        # same order of additions: bit-identical
    if N:
        assert not np.array_equal(got, start)


def test_accumulate_skip_keeps_row_exactly(rng):
    ids = rng.integers(0, 4, size=50)
    dy = rng.standard_normal((50, 3))
    dW = rng.standard_normal((4, 3))
    before = dW.copy()
    accumulate_rows(dW, ids, dy, skip=2)
    np.testing.assert_array_equal(dW[2], before[2])
    ref = before.copy()
    keep = ids != 2
    accumulate_rows_reference(ref, ids[keep], dy[keep])
    np.testing.assert_array_equal(dW, ref)


def test_init_like_pytorch_and_padding_row_zero():
    emb = Embedding(2000, 50, padding_idx=-1, rng=0)
    W = emb.params["W"]
    assert emb.padding_idx == 1999 and not W[1999].any()
    assert abs(W[:-1].mean()) < 0.01 and abs(W[:-1].std() - 1.0) < 0.01   # N(0, 1): 1e5 draws
    np.testing.assert_array_equal(Embedding(20, 5, rng=3).params["W"],
                                  Embedding(20, 5, rng=3).params["W"])
    assert emb.get_config() == {"num_embeddings": 2000, "embedding_dim": 50, "padding_idx": 1999,
                                "dtype": "float64"}


@pytest.mark.parametrize("ids,match", [
    (np.array([[0.0, 1.0]]), "integer array"),
    (np.array([[True, False]]), "integer array"),
    (np.array([[0, 5]]), r"\[0, 5\)"),
    (np.array([[-1, 0]]), r"\[0, 5\)"),
    (np.array(3), "scalar"),
])
def test_bad_ids_raise_shape_error(ids, match):
    emb = Embedding(5, 2, rng=0)
    with pytest.raises(npnet.ShapeError, match=match):
        emb.fprop(ids)
    assert not emb.has_cache


@pytest.mark.parametrize("args,kwargs", [((0, 3), {}), ((3, 0), {}), ((3.5, 2), {}), ((True, 2), {}),
                                         ((4, 2), {"padding_idx": 4}), ((4, 2), {"padding_idx": -5}),
                                         ((4, 2), {"padding_idx": 1.0}), ((4, 2), {"dtype": np.int64})])
def test_bad_constructor_arguments(args, kwargs):
    with pytest.raises(npnet.NpnetError):
        Embedding(*args, **kwargs)


def test_bprop_checks_dy_and_needs_fprop():
    emb = Embedding(5, 2, rng=0)
    with pytest.raises(npnet.NotForwardedError):
        emb.bprop(np.zeros((1, 2)))
    emb.fprop(np.array([[1, 2, 3]]))
    with pytest.raises(npnet.ShapeError, match=r"\(1, 3, 2\)"):
        emb.bprop(np.zeros((3, 2)))


# -- as the read-in of a SequenceModel: (B, T) integer input end to end -----------------------
def _token_model(V=7, E=5, H=6, seed=0, **kw):
    return npnet.SequenceModel(E, H, cell="gru", output_size=V, read_in=Embedding(V, E, rng=seed),
                               rng=seed + 1, **kw)


def _tokens(rng, B=4, T=6, V=7):
    """A toy next-id task: y_t = (x_t + 1) mod V, with random lengths."""
    x = rng.integers(0, V, size=(B, T))
    lengths = rng.integers(2, T + 1, size=B)
    return x, (x + 1) % V, np.arange(T)[None] < lengths[:, None]


def token_stream(rng, B=4, T=6, V=7):
    while True:
        yield _tokens(rng, B, T, V)


class _IntsModel:
    """A SequenceModel seen by gradcheck (which hands over a float64 copy of x): ids cast back."""

    def __init__(self, model):
        self.model, self.dtype = model, model.dtype
        self.params, self.grads = model.params, model.grads

    def zero_grad(self):
        self.model.zero_grad()

    def fprop(self, x, mask=None):
        return self.model.fprop(np.asarray(x).astype(np.int64), None, mask)

    def bprop(self, dout, dstate):
        return self.model.bprop(dout, dstate)


def test_model_gradcheck_through_the_embedding_read_in(rng):
    model = _token_model()
    x, _, mask = _tokens(rng)
    x[0, :3] = 2                                       # repeated ids in one row
    errors = npnet.gradcheck(_IntsModel(model), x, mask, check_input=False)
    assert "param read_in.W" in errors
    assert max(errors.values()) < 1e-7, errors


def test_model_equals_one_hot_input_through_a_linear_read_in(rng):
    """Embedding(V, E) == LinearLayer(V, E, bias 0) on one-hot rows: outputs, steps and gradients."""
    V, E = 7, 5
    emb_model = _token_model(V, E)
    lin_model = npnet.SequenceModel(V, 6, cell="gru", output_size=V, read_in=E, rng=3)
    for k in emb_model.params:
        lin_model.params[k] = emb_model.params[k]
    x, _, mask = _tokens(rng)
    one_hot = np.eye(V)[x]                             # (B, T, V)
    out_e, _ = emb_model.fprop(x, None, mask)
    out_l, _ = lin_model.fprop(one_hot, None, mask)
    np.testing.assert_allclose(out_e, out_l, rtol=1e-13, atol=1e-14)
    dout = rng.standard_normal(out_e.shape)
    emb_model.zero_grad()
    lin_model.zero_grad()
    dx, _ = emb_model.bprop(dout)
    lin_model.bprop(dout)
    assert dx.shape == x.shape and not dx.any()
    for k in emb_model.grads:
        np.testing.assert_allclose(emb_model.grads[k], lin_model.grads[k], rtol=1e-12, atol=1e-14, err_msg=k)
    y_e, _ = emb_model.step(x[:, 0])
    y_l, _ = lin_model.step(one_hot[:, 0])
    np.testing.assert_allclose(y_e, y_l, rtol=1e-13, atol=1e-14)
    assert not emb_model.read_in.has_cache


def test_model_refuses_float_or_out_of_range_ids(rng):
    model = _token_model()
    with pytest.raises(npnet.ShapeError, match="integer"):
        model.fprop(np.zeros((2, 3)))
    with pytest.raises(npnet.ShapeError, match=r"\[0, 7\)"):
        model.fprop(np.full((2, 3), 7))
    with pytest.raises(npnet.ShapeError):
        model.fprop(np.zeros(3, dtype=int))            # (T,) without a batch axis
    with pytest.raises(npnet.ShapeError, match="integer"):
        model.step(np.zeros(2))


def test_learner_trains_on_integer_batches_and_resumes_bit_exactly(tmp_path):
    from npnet.data import Stream
    N, k = 8, 3

    def learner():
        return npnet.Learner(_token_model(), "ce", "adam", lr=0.05, metric="accuracy", progress=False)

    whole = learner()
    whole.fit(Stream(token_stream, 4), steps=N)
    losses = [r["loss"] for r in whole.history]
    assert losses[-1] < losses[0]
    first = learner()
    first.fit(Stream(token_stream, 4), steps=k)
    first.save(tmp_path / "ck.npz")
    second = npnet.Learner.resume(tmp_path / "ck.npz", "ce", metric="accuracy", progress=False)
    assert isinstance(second.model.read_in, Embedding)
    second.fit(Stream(token_stream, 4), steps=N - k)
    for key in whole.model.params:
        np.testing.assert_array_equal(whole.model.params[key], second.model.params[key], err_msg=key)
    assert losses == [r["loss"] for r in second.history]


def test_checkpoint_round_trip_keeps_padding_idx_and_dtype(tmp_path, rng):
    model = npnet.SequenceModel(4, 6, output_size=7, dtype=np.float32, rng=1,
                                read_in=Embedding(7, 4, padding_idx=0, dtype=np.float32, rng=0))
    npnet.save_checkpoint(tmp_path / "m.npz", model)
    back = npnet.load_checkpoint(tmp_path / "m.npz").model
    assert back.read_in.padding_idx == 0 and back.read_in.dtype == np.float32
    x = rng.integers(0, 7, size=(2, 5))
    np.testing.assert_array_equal(model.fprop(x)[0], back.fprop(x)[0])


# -- interop: nn.Embedding.weight is the same (V, E) table ---------------------------------------
def test_torch_embedding_weight_round_trip(rng):
    from npnet.interop import embedding_state_dict, load_embedding_state_dict
    emb = Embedding(6, 3, padding_idx=0, dtype=np.float32, rng=0)
    weight = rng.standard_normal((6, 3))                 # what nn.Embedding(6, 3).state_dict() holds
    assert load_embedding_state_dict(emb, {"emb.weight": weight}, prefix="emb.") == ["emb.weight"]
    ids = np.array([[0, 5, 2]])
    np.testing.assert_allclose(emb.forward(ids), weight[ids], rtol=1e-6)   # torch: F.embedding(ids, weight)
    out = embedding_state_dict(emb, prefix="emb.")
    assert list(out) == ["emb.weight"] and out["emb.weight"].dtype == np.float32
    np.testing.assert_array_equal(out["emb.weight"], weight.astype(np.float32))
    out["emb.weight"][:] = 0                             # a copy, not the table itself
    assert emb.params["W"].any()
    emb.fprop(ids)
    emb.bprop(np.ones((1, 3, 3), np.float32))
    np.testing.assert_array_equal(embedding_state_dict(emb, grads=True)["weight"][[0, 5]], [[0] * 3, [1] * 3])


def test_torch_embedding_weight_errors():
    from npnet.interop import load_embedding_state_dict
    emb = Embedding(4, 2, rng=0)
    with pytest.raises(npnet.NpnetError, match="no 'weight'"):
        load_embedding_state_dict(emb, {"W": np.zeros((4, 2))})
    with pytest.raises(npnet.NpnetError, match=r"\(4, 2\)"):
        load_embedding_state_dict(emb, {"weight": np.zeros((2, 4))})
    with pytest.raises(npnet.NpnetError, match="unexpected"):
        load_embedding_state_dict(emb, {"weight": np.zeros((4, 2)), "bias": np.zeros(2)})
    before = emb.params["W"].copy()
    assert load_embedding_state_dict(emb, {"weight": np.ones((4, 2)), "x": 1}, strict=False) == ["weight"]
    assert (emb.params["W"] == 1).all() and not np.array_equal(before, emb.params["W"])
