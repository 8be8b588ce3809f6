"""Issue 14: bad constructor and hyper-parameter values raise NpnetError subclasses naming what was
expected (docs/contract.md, "Errors"), never a NumPy ValueError, a TypeError from deep inside, or
a silently truncated size. One table, one row per value a user tripped over."""
import numpy as np
import pytest

import npnet
from npnet import init
from npnet.layer import NpnetError, as_rng

ROWS = {
    "rng=-1 (LinearLayer)": (lambda: npnet.LinearLayer(3, 4, rng=-1), r"rng as an int seed must be >= 0, got -1"),
    "rng=-1 (SequenceModel)": (lambda: npnet.SequenceModel(3, 4, rng=-1), r"rng .* >= 0, got -1"),
    "rng='0'": (lambda: npnet.LinearLayer(3, 4, rng="0"), r"rng must be a numpy.random.Generator.*got '0'"),
    "rng=True": (lambda: npnet.LinearLayer(3, 4, rng=True), r"rng must be .*got True"),
    "unknown initialiser (LinearLayer)": (lambda: npnet.LinearLayer(3, 4, weight_init="glorot"),
                                          r"unknown initialiser 'glorot'; expected a callable or one of"),
    "unknown initialiser (GRUCell)": (lambda: npnet.GRUCell(3, 4, recurrent_init="orthonormal"),
                                      r"unknown initialiser 'orthonormal'"),
    "identity on a non-square block": (lambda: npnet.LinearLayer(3, 4, weight_init="identity"),
                                       r"identity needs a \(H, k\*H\) shape"),
    "output_size=0": (lambda: npnet.SequenceModel(3, 4, output_size=0), r"output_size must be an int >= 1, got 0"),
    "output_size=2.5": (lambda: npnet.SequenceModel(3, 4, output_size=2.5), r"output_size must be an int >= 1, got 2\.5"),
    "hidden_size=3.5": (lambda: npnet.SequenceModel(3, 3.5), r"hidden_size must be an int >= 1, got 3\.5"),
    "hidden_size=[4, 0]": (lambda: npnet.SequenceModel(3, [4, 0], num_layers=2), r"hidden_size must be an int >= 1, got 0"),
    "num_layers=1.5": (lambda: npnet.SequenceModel(3, 4, num_layers=1.5), r"num_layers must be an int >= 1, got 1\.5"),
    "input_size=0": (lambda: npnet.SequenceModel(0, 4), r"input_size must be an int >= 1, got 0"),
    "out_features=2.5": (lambda: npnet.LinearLayer(3, 2.5), r"out_features must be an int >= 1, got 2\.5"),
    "in_features=3.5": (lambda: npnet.LinearLayer(3.5, 4), r"in_features must be an int >= 1, got 3\.5"),
    "in_features=0": (lambda: npnet.LinearLayer(0, 4), r"in_features must be an int >= 1, got 0"),
    "in_features='3'": (lambda: npnet.LinearLayer("3", 4), r"in_features must be an int >= 1, got '3'"),
    "read_in=0": (lambda: npnet.SequenceModel(3, 4, read_in=0), r"read_in must be an int >= 1, got 0"),
    "LSTMCell(0, 4)": (lambda: npnet.LSTMCell(0, 4), r"input_size must be an int >= 1, got 0"),
    "LSTMCell(3.5, 4)": (lambda: npnet.LSTMCell(3.5, 4), r"input_size must be an int >= 1, got 3\.5"),
    "GRUCell(3, 4.0)": (lambda: npnet.GRUCell(3, 4.0), r"hidden_size must be an int >= 1, got 4\.0"),
    "BasicRNNCell(3, '4')": (lambda: npnet.BasicRNNCell(3, "4"), r"hidden_size must be an int >= 1, got '4'"),
    "forget_bias=inf": (lambda: npnet.LSTMCell(3, 4, forget_bias=float("inf")),
                        r"forget_bias must be a finite number, got inf"),
    "forget_bias='1'": (lambda: npnet.LSTMCell(3, 4, forget_bias="1"), r"forget_bias must be a finite number, got '1'"),
    "update_bias=nan": (lambda: npnet.GRUCell(3, 4, update_bias=float("nan")),
                        r"update_bias must be a finite number, got nan"),
    "forget_bias=inf (SequenceModel)": (lambda: npnet.SequenceModel(3, 4, cell_kwargs={"forget_bias": float("inf")}),
                                        r"forget_bias must be a finite number"),
    "chrono_t_max=inf": (lambda: npnet.LSTMCell(3, 4, chrono_t_max=float("inf")),
                         r"chrono_t_max must be a finite number, got inf"),
    "chrono t_max=inf (init)": (lambda: init.chrono_forget_bias(float("inf"), np.random.default_rng(0), 4, np.float64),
                                r"chrono t_max must be a finite number > 2 .*got inf"),
    "lr='0.01' (optimiser)": (lambda: npnet.optim.Adam({"w": np.zeros(2)}, lr="0.01"), r"lr must be a number, got '0.01'"),
    "lr='0.01' (Learner)": (lambda: npnet.Learner(npnet.SequenceModel(3, 4, rng=0), "mse", "sgd", lr="0.01"),
                            r"lr must be a number, got '0.01'"),
    "log_every=0.5": (lambda: npnet.Learner(npnet.SequenceModel(3, 4, rng=0), "mse", log_every=0.5),
                      r"log_every must be an int >= 1, got 0\.5"),
}


@pytest.mark.parametrize("make,match", list(ROWS.values()), ids=list(ROWS))
def test_bad_constructor_values_raise_npnet_errors(make, match):
    with pytest.raises(NpnetError, match=match):
        make()


def test_good_values_still_build():
    """The checks refuse only what is wrong: NumPy integers, int seeds and Generators pass."""
    from npnet.layer import as_size
    layer = npnet.LinearLayer(np.int64(3), np.int32(4), rng=np.int64(7))
    assert (layer.in_features, layer.out_features) == (3, 4) and type(layer.in_features) is int
    g = np.random.default_rng(0)
    assert as_rng(g) is g and isinstance(as_rng(None), np.random.Generator)
    assert as_rng(0).random() == np.random.default_rng(0).random()
    assert as_size(0, "n", minimum=0) == 0
    assert callable(init.get("orthogonal")) and init.get(init.zeros()) is not None
