"""Write tests/fixtures/keras_*.npz: outputs and gradients of Keras 3 layers for given weights.

Run once, in a separate environment that has Keras 3 and JAX (never a dependency of npnet):

    python3 -m venv /work/venv-keras && /work/venv-keras/bin/pip install keras jax numpy
    KERAS_BACKEND=jax JAX_ENABLE_X64=1 /work/venv-keras/bin/python tools/make_keras_fixtures.py

Everything here is Keras's own computation: the weights are drawn with NumPy in Keras's layout and
set with layer.set_weights; outputs come from the layer's forward pass, gradients from jax.grad of
L = sum(out * dout) + sum(h_T * dh_T) [+ sum(c_T * dc_T)] through layer.stateless_call. npnet is not
imported. Each file holds: w0, w1, w2 (layer.get_weights()), x, dout, dh_T [, dc_T], optional mask
and initial states h0 [, c0], out, h_T [, c_T], dx, dw0.., dh0 [, dc0], and a JSON "meta" (layer,
its arguments, dtype, versions). Masked cases use zero_output_for_mask=True (npnet's convention:
padded outputs are zero) and also store out_repeat, Keras's default output (the previous output
repeated at padded steps). tests/test_keras_interop.py reads them without Keras.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax                                          # noqa: E402
import jax.numpy as jnp                             # noqa: E402
import keras                                        # noqa: E402
import numpy as np                                  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
B, T, D, H = 3, 5, 3, 4
# Row 0 all real, row 1 two real steps then padding, row 2 scattered (padding first and inside).
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 1, 0, 1, 1]], bool)

# name: (Keras class, its arguments, masked, with initial state, dtype)
CASES = {
    "rnn_tanh": ("SimpleRNN", {"activation": "tanh"}, False, True, "float64"),
    "rnn_relu_mask": ("SimpleRNN", {"activation": "relu"}, True, True, "float64"),
    "lstm": ("LSTM", {}, False, True, "float64"),
    "lstm_mask": ("LSTM", {}, True, False, "float64"),
    "gru": ("GRU", {"reset_after": True}, False, True, "float64"),
    "gru_mask": ("GRU", {"reset_after": True}, True, True, "float64"),
    "gru_reset_before": ("GRU", {"reset_after": False}, False, True, "float64"),
    "gru_reset_before_mask": ("GRU", {"reset_after": False}, True, False, "float64"),
    "lstm_float32": ("LSTM", {}, True, True, "float32"),
    "gru_reset_before_float32": ("GRU", {"reset_after": False}, False, True, "float32"),
}


@keras.saving.register_keras_serializable(package="npnet_fixtures")
def tanh64(a):
    """jax.numpy.tanh, registered so that Bidirectional can copy a layer that uses it."""
    return jnp.tanh(a)


def float64_safe(args, dtype):
    """Keras 3.15.1's tanh (keras.ops.tanh, the default activation of all three layers) casts a float64
    tensor to float32 (its dtypes.result_type("float64", float) is float32), which would leave the
    float64 fixtures with float32 errors (~1e-8). In float64 the layers get jax.numpy.tanh as their
    activation instead: the same function at full precision; sigmoid and relu keep float64 as they are."""
    if dtype == "float64" and args.get("activation", "tanh") == "tanh":
        return {**args, "activation": tanh64}
    return args


def build(cls_name, args, masked, dtype, zero_output):
    layer = getattr(keras.layers, cls_name)(H, return_sequences=True, return_state=True, dtype=dtype,
                                            zero_output_for_mask=zero_output, **float64_safe(args, dtype))
    layer.build((B, T, D))
    return layer


def random_weights(layer, rng, dtype):
    """Weights of every shape the layer has, scaled so that no unit saturates."""
    return [(0.6 * rng.standard_normal(w.shape)).astype(dtype) for w in layer.get_weights()]


def make_case(name, cls_name, args, masked, with_state, dtype, rng):
    keras.config.set_floatx(dtype)
    layer = build(cls_name, args, masked, dtype, zero_output=True)
    weights = random_weights(layer, rng, dtype)
    layer.set_weights(weights)
    n_states = 2 if cls_name == "LSTM" else 1
    f = {"x": rng.standard_normal((B, T, D)).astype(dtype),
         "dout": rng.standard_normal((B, T, H)).astype(dtype)}
    states = [(0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in range(n_states)] if with_state else None
    dstates = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n_states)]
    mask = MASK if masked else None

    def loss(trainable, x, states):
        kwargs = {"mask": mask} if masked else {}
        if states is not None:
            kwargs["initial_state"] = list(states)
        (out, *finals), _ = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        total = (out * f["dout"]).sum() + sum((s * d).sum() for s, d in zip(finals, dstates))
        return total, (out, finals)

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]   # the (unused) stateful-state slot
    grad_fn = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)
    (dw, dx, dstates0), (out, finals) = grad_fn(trainable, f["x"], states)
    f.update({f"w{k}": w for k, w in enumerate(weights)})
    f.update({f"dw{k}": np.asarray(g) for k, g in enumerate(dw)})
    f.update({"out": np.asarray(out), "dx": np.asarray(dx)})
    for s_name, final, d_final in zip(("h", "c"), finals, dstates):
        f[f"{s_name}_T"], f[f"d{s_name}_T"] = np.asarray(final), d_final
    if with_state:
        for s_name, s0, ds0 in zip(("h", "c"), states, dstates0):
            f[f"{s_name}0"], f[f"d{s_name}0"] = s0, np.asarray(ds0)
    if masked:
        f["mask"] = mask
        repeat = build(cls_name, args, masked, dtype, zero_output=False)   # Keras's default convention
        repeat.set_weights(weights)
        kwargs = {"initial_state": list(states)} if with_state else {}
        f["out_repeat"] = np.asarray(repeat(f["x"], mask=mask, **kwargs)[0])
    meta = {"layer": cls_name, "args": args, "activation_fn": "jax.numpy.tanh" if dtype == "float64" and
            args.get("activation", "tanh") == "tanh" else "keras default", "dtype": dtype, "masked": masked, "zero_output_for_mask": True,
            "keras": keras.__version__, "backend": keras.backend.backend(), "jax": jax.__version__}
    f["meta"] = np.array(json.dumps(meta))
    for k, v in f.items():
        if k != "meta" and np.asarray(v).dtype.kind == "f":
            assert np.asarray(v).dtype == np.dtype(dtype), (name, k, np.asarray(v).dtype)
    return f


def make_model(rng):
    """Dense -> Bidirectional(GRU, reset_after=False) -> Bidirectional(LSTM) -> Dense, float64, masked."""
    keras.config.set_floatx("float64")
    inputs = keras.Input((T, D))
    mask_in = keras.Input((T,), dtype="bool")
    z = keras.layers.Dense(5)(inputs)
    z = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, reset_after=False, activation=tanh64,
                                                    zero_output_for_mask=True))(z, mask=mask_in)
    z = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, zero_output_for_mask=True,
                                                     activation=tanh64))(z, mask=mask_in)
    y = keras.layers.Dense(2)(z)
    model = keras.Model([inputs, mask_in], y)
    weights = [(0.6 * rng.standard_normal(w.shape)) for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.standard_normal((B, T, D))
    f = {f"w{k}": w for k, w in enumerate(weights)}
    f.update({"x": x, "mask": MASK, "out": np.asarray(model([x, MASK]))})
    f["meta"] = np.array(json.dumps({"model": "Dense(5) -> Bidirectional(GRU(4, reset_after=False)) -> "
                                              "Bidirectional(LSTM(3)) -> Dense(2), zero_output_for_mask=True",
                                     "keras": keras.__version__, "backend": keras.backend.backend()}))
    return f


def main():
    rng = np.random.default_rng(2026)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cls_name, args, masked, with_state, dtype) in CASES.items():
        np.savez_compressed(OUT / f"keras_{name}.npz", **make_case(name, cls_name, args, masked, with_state,
                                                                   dtype, rng))
        print("wrote", OUT / f"keras_{name}.npz")
    np.savez_compressed(OUT / "keras_model_mask.npz", **make_model(rng))
    print("wrote", OUT / "keras_model_mask.npz")


if __name__ == "__main__":
    main()
