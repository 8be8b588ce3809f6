"""npnet.optim.lr_scheduler against PyTorch's documented closed forms, written out here
(torch.optim.lr_scheduler docs), and their use inside Learner.fit."""
import math

import numpy as np
import pytest

import npnet
from npnet.data import Stream, take
from npnet.layer import NpnetError
from npnet.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR,
                                      ReduceLROnPlateau, StepLR)

BASE = 0.1
N = 25


def _opt(lr=BASE):
    return npnet.optim.SGD({"w": np.zeros(2)}, lr=lr)


def _sequence(make, n=N):
    """[lr after 0 steps, after 1 step, ...]: the lr each optimiser step t uses."""
    opt = _opt()
    sched = make(opt)
    lrs = [opt.lr]
    for _ in range(n):
        sched.step()
        lrs.append(opt.lr)
    assert sched.get_last_lr() == [lrs[-1]] and sched.last_epoch == n
    return lrs


CLOSED_FORMS = {
    "StepLR": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda t: BASE * 0.5 ** (t // 3)),
    "ExponentialLR": (lambda o: ExponentialLR(o, gamma=0.9), lambda t: BASE * 0.9 ** t),
    # eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2, also past T_max (the cosine goes on)
    "CosineAnnealingLR": (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.01),
                          lambda t: 0.01 + (BASE - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    "LambdaLR": (lambda o: LambdaLR(o, lambda t: 1.0 / (t + 1)), lambda t: BASE / (t + 1)),
    # base * (start + (end - start) * min(t, total_iters) / total_iters)
    "LinearLR": (lambda o: LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4),
                 lambda t: BASE * (0.25 + 0.75 * min(t, 4) / 4)),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_lr_sequence_matches_the_closed_form(name):
    make, closed = CLOSED_FORMS[name]
    got = _sequence(make)
    want = [closed(t) for t in range(N + 1)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-17)


def test_the_test_can_fail():
    """An off-by-one schedule (StepLR stepping one step late) does not pass the comparison above."""
    got = [BASE] + _sequence(lambda o: StepLR(o, step_size=3, gamma=0.5))[:-1]
    want = [CLOSED_FORMS["StepLR"][1](t) for t in range(N + 1)]
    assert got != pytest.approx(want, rel=1e-12, abs=1e-17)


def test_two_schedulers_compose_like_pytorch():
    """PyTorch's chainable forms multiply: warm-up then cosine on one optimiser, both stepped."""
    opt = _opt()
    warm, cos = LinearLR(opt, start_factor=0.5, total_iters=3), CosineAnnealingLR(opt, T_max=8)
    assert warm.base_lrs == cos.base_lrs == [BASE]
    for t in range(1, 9):
        warm.step()
        cos.step()
        want = BASE * (0.5 + 0.5 * min(t, 3) / 3) * (1 + math.cos(math.pi * t / 8)) / 2
        assert opt.lr == pytest.approx(want, rel=1e-12, abs=1e-17)


def test_reduce_on_plateau_follows_pytorch_rules():
    opt = _opt()
    sched = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, threshold=0.1, cooldown=1, min_lr=0.02)
    values = [1.0, 0.95, 0.95, 0.95] + [0.5] * 12
    lrs = []
    for v in values:
        sched.step(v)
        lrs.append(opt.lr)
    # 0.95 is not better than 1.0 * (1 - 0.1); the 3rd bad value (> patience) halves the lr;
    # one call of cooldown is ignored; min_lr caps the 3rd reduction and blocks the 4th.
    want = [0.1] * 3 + [0.05] * 4 + [0.025] * 4 + [0.02] * 5
    assert lrs == pytest.approx(want, rel=1e-12)
    assert sched.best == 0.5 and sched.get_last_lr() == [0.02]


def test_reduce_on_plateau_max_mode_and_abs_threshold():
    opt = _opt()
    sched = ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.05, threshold_mode="abs")
    for v, lr in [(0.5, 0.1), (0.54, 0.01), (0.6, 0.01), (0.6, 0.001)]:
        sched.step(v)
        assert opt.lr == pytest.approx(lr, rel=1e-12)


def test_lambda_is_not_saved_and_state_round_trips():
    opt = _opt()
    sched = LambdaLR(opt, lambda t: 0.5 ** t)
    assert "lr_lambda" not in sched.state_dict()
    for _ in range(3):
        sched.step()
    again = LambdaLR(_opt(), lambda t: 0.5 ** t)
    again.load_state_dict(sched.state_dict())
    sched.step()
    again.step()
    assert again.get_last_lr() == sched.get_last_lr() == [BASE * 0.5 ** 4]
    with pytest.raises(NpnetError, match="unknown keys"):
        again.load_state_dict({"bogus": 1})


def test_argument_errors():
    with pytest.raises(NpnetError, match="step_size"):
        StepLR(_opt(), step_size=0)
    with pytest.raises(NpnetError, match="T_max"):
        CosineAnnealingLR(_opt(), T_max=0)
    with pytest.raises(NpnetError, match="start_factor"):
        LinearLR(_opt(), start_factor=0.0)
    with pytest.raises(NpnetError, match="lr_lambda"):
        LambdaLR(_opt(), 0.5)
    with pytest.raises(NpnetError, match="factor"):
        ReduceLROnPlateau(_opt(), factor=1.0)
    with pytest.raises(NpnetError, match="lr attribute"):
        StepLR(object(), step_size=1)


def running_sum(rng, B=4, T=6):
    while True:
        x = rng.standard_normal((B, T, 1))
        yield x, np.cumsum(x, axis=1) / 3


def _learner(lr=BASE):
    model = npnet.SequenceModel(input_size=1, hidden_size=4, output_size=1, cell="rnn", rng=0)
    return npnet.Learner(model, "mse", "sgd", lr=lr, progress=False)


def test_the_learner_steps_a_scheduler_after_every_optimiser_step():
    L = _learner()
    sched = StepLR(L.optimizer, step_size=2, gamma=0.5)
    L.fit(Stream(running_sum, 1), steps=7, callbacks=[sched])
    # the record of step k holds the lr that step used: lr_(k-1)
    assert [r["lr"] for r in L.history] == [BASE * 0.5 ** ((k - 1) // 2) for k in range(1, 8)]
    assert sched.last_epoch == 7 and L.optimizer.lr == BASE * 0.5 ** 3


def test_the_learner_steps_reduce_on_plateau_with_each_eval_loss():
    L = _learner(lr=1e-6)                                     # too small to improve: a plateau
    sched = ReduceLROnPlateau(L.optimizer, patience=1, threshold=0.5)
    ev = take(Stream(running_sum, 5), 1)
    L.fit(Stream(running_sum, 1), steps=8, eval_batches=ev, eval_every=2, callbacks=[sched])
    evals = [r for r in L.history if "eval_loss" in r]
    assert len(evals) == 4 and sched.last_epoch == 4 and sched.best == evals[0]["eval_loss"]
    # evals 2 and 3 are bad: the lr drops 10x after the 3rd evaluation (step 6)
    assert [r["lr"] for r in L.history] == [1e-6] * 6 + [pytest.approx(1e-7, rel=1e-12)] * 2
