"""Sequential: a chain of feed-forward layers behaving as ONE layer (one fprop, one bprop,
one flat params/grads dict), and the JSON form of a layer that checkpoints use to rebuild it.

Nothing here knows about time steps; SequenceModel applies a Sequential read-in to every step.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer, NpnetError, ShapeError, _nbytes

# npnet's feed-forward layers a saved config may name; resolved lazily (getattr(npnet, name))
# so that this module imports none of them. Other classes: register_layer(cls).
_NPNET_LAYERS = ("LinearLayer", "Conv2D", "MaxPool2D", "Flatten", "ReLU", "Sequential")
_REGISTRY: dict[str, type] = {}


class LinkedParams(dict):
    """A flat name -> array dict whose arrays belong to sub-layers.

    Reading gives the sub-layer's own array (an optimiser updating it in place updates the
    sub-layer). Assigning to an existing name copies into that array in place, so
    ``model.params[k] = v`` cannot silently detach the model from its layers.
    """

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"unknown parameter {name!r}; the names are fixed: {sorted(self)}")
        dst = dict.__getitem__(self, name)
        value = np.asarray(value)
        if value.shape != dst.shape:
            raise ShapeError(f"{name} must have shape {dst.shape}, got {value.shape}")
        np.copyto(dst, value, casting="same_kind")

    def link(self, prefix: str, arrays: dict) -> None:
        """Add every ``arrays[k]`` (the array itself, not a copy) under ``prefix.k``."""
        for k, a in arrays.items():
            dict.__setitem__(self, f"{prefix}.{k}", a)


def check_layer(layer, what: str = "layer") -> None:
    """Refuse an object that cannot be a layer: it needs fprop, bprop, params and grads."""
    missing = [a for a in ("fprop", "bprop", "params", "grads") if not hasattr(layer, a)]
    if missing:
        raise NpnetError(f"{what} must be a layer with fprop, bprop, params and grads; "
                         f"{type(layer).__name__} has no {', '.join(missing)}")


def register_layer(cls: type) -> type:
    """Allow :func:`layer_from_config` (and so checkpoints) to rebuild layers of class ``cls``.

    ``cls`` needs ``get_config()`` and either ``from_config(config)`` or ``cls(**config)``.
    Usable as a decorator.
    """
    if not isinstance(cls, type) or not callable(getattr(cls, "get_config", None)):
        raise NpnetError(f"register_layer expects a class with get_config(), got {cls!r}")
    other = _REGISTRY.get(cls.__name__)
    if other is not None and other is not cls:
        raise NpnetError(f"another layer class named {cls.__name__!r} is already registered")
    _REGISTRY[cls.__name__] = cls
    return cls


def layer_config(layer) -> dict:
    """``{"class": name, "config": layer.get_config()}``: a layer's JSON-able description."""
    if not callable(getattr(layer, "get_config", None)):
        raise NpnetError(f"{type(layer).__name__} has no get_config(); a model holding it cannot be "
                         "saved or rebuilt from its config")
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(spec: dict):
    """Rebuild a layer from :func:`layer_config`'s description (fresh weights: load them after)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) or \
            not isinstance(spec.get("config"), dict):
        raise NpnetError(f"a layer description must be {{'class': name, 'config': dict}}, got {spec!r}")
    name = spec["class"]
    cls = _REGISTRY.get(name)
    if cls is None and name in _NPNET_LAYERS:
        import npnet                                     # lazy: npnet imports this module
        cls = getattr(npnet, name)
    if cls is None:
        raise NpnetError(f"layer class {name!r} is not known; expected one of "
                         f"{sorted(set(_NPNET_LAYERS) | set(_REGISTRY))} (register others with "
                         "npnet.sequential.register_layer)")
    build = getattr(cls, "from_config", None)
    return build(spec["config"]) if build is not None else cls(**spec["config"])


class Sequential(Layer):
    """Layers applied one after another, as ``torch.nn.Sequential``.

    Equations (layers f_1 .. f_n)::

        forward:   a_0 = x,  a_k = f_k(a_{k-1}),  y = a_n
        backward:  da_n = dy,  da_{k-1} = f_k.bprop(da_k)  for k = n .. 1,   dx = da_0
                   (each layer adds its own parameter gradients into its grads)

    Parameters
    ----------
    *layers : objects with fprop(x) -> y, bprop(dy) -> dx, params and grads (npnet layers,
        another Sequential, or your own); at least one. Those that have a dtype must all
        share it, which becomes the Sequential's.

    ``params``/``grads`` are one flat dict over all layers named "<index>.<name>"
    ("0.W", "0.b", "3.W", ...): the arrays ARE the layers' own, so an optimiser over
    ``params`` trains the layers. ``train()``/``eval()``/``clear_cache()`` reach every layer.

    Shapes: whatever the chain maps; e.g. Sequential(Conv2D(1, 8, 3), ReLU(), MaxPool2D(2),
    Flatten(), LinearLayer(8 * 13 * 13, 64)) maps (N, 1, 28, 28) -> (N, 64).

    Cache: only a marker that fprop ran; every layer keeps its own cache.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise NpnetError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            check_layer(layer, f"Sequential layer {i}")
        dtypes = {np.dtype(l.dtype) for l in layers if getattr(l, "dtype", None) is not None}
        if len(dtypes) > 1:
            raise NpnetError(f"Sequential layers must share one dtype, got "
                             f"{[getattr(l, 'dtype', None) for l in layers]}")
        super().__init__(dtypes.pop() if dtypes else np.float64)
        self.layers = list(layers)
        self.training = True
        self.params, self.grads = LinkedParams(), LinkedParams()
        for i, layer in enumerate(self.layers):
            self.params.link(str(i), layer.params)
            self.grads.link(str(i), layer.grads)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def get_config(self) -> dict:
        return {"layers": [layer_config(l) for l in self.layers]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        return cls(*[layer_from_config(s) for s in config["layers"]])

    def train(self) -> "Sequential":
        self.training = True
        for l in self.layers:
            if hasattr(l, "train"):
                l.train()
        return self

    def eval(self) -> "Sequential":
        self.training = False
        for l in self.layers:
            if hasattr(l, "eval"):
                l.eval()
        return self

    def clear_cache(self) -> None:
        self._cache = None
        for l in self.layers:
            if hasattr(l, "clear_cache"):
                l.clear_cache()

    def cache_nbytes(self) -> int:
        return _nbytes(self._cache) + sum(l.cache_nbytes() for l in self.layers if hasattr(l, "cache_nbytes"))

    def fprop(self, x):
        """x -> y through every layer's fprop (each caches what its bprop needs)."""
        for l in self.layers:
            x = l.fprop(x)
        self._cache = {"layers": len(self.layers)}
        return x

    def forward(self, x):
        """The forward map alone, no cache left behind (a layer without ``forward``: fprop, then cleared)."""
        for l in self.layers:
            if hasattr(l, "forward"):
                x = l.forward(x)
            else:
                x = l.fprop(x)
                if hasattr(l, "clear_cache"):
                    l.clear_cache()
        return x

    def bprop(self, dy):
        """dy -> dx through every layer's bprop in reverse; parameter gradients add up."""
        self._take_cache()
        for l in reversed(self.layers):
            dy = l.bprop(dy)
        return dy

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}): {l!r}" for i, l in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


__all__ = ["Sequential", "LinkedParams", "check_layer", "layer_config", "layer_from_config",
           "register_layer"]
