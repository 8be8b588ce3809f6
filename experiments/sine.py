"""Sine generation: prime a network on 30 samples of a curve, then let it continue on its own.

    python experiments/sine.py
    python experiments/sine.py --compare     # RNN vs LSTM at matched parameters, teacher and free (<= 4 min)

Curves have a random period (12.5 to 50 samples) and phase. The model is trained to predict
x_{t+1} from x_t on curves of 60 samples (--train-len); the test primes it with x_0 .. x_29 and then runs it closed-loop for 70
steps with its single-step call (each prediction is the next input). Reports closed_loop_mse
over those 70 steps on 1,000 fresh curves beside answering 0 and repeating the last primed
sample. --train-mode: teacher (ground truth always fed in), free (after the 30 priming steps
the model's own predictions are fed back, and BPTT runs through that feedback loop: the
gradient of each fed-back prediction flows through the read-out into the next input) or mixed
(scheduled sampling: each fed-back input is the prediction with a probability that rises
from 0 to 1 over the first half of training). Run folder: config.json, metrics.csv,
summary.json, checkpoint.npz, learning_curve.png, closed_loop.png. --compare: sine_compare.py.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import copy
import functools

import numpy as np

import npnet
import sine_compare
from npnet import tasks

PRIME = 30
COMPARE_STEPS = 600                       # --steps unless given, with --compare (4 runs in <= 4 minutes)


class UnsetSteps(int):
    """The default of --steps (1500): an int that tells check() the option was not given."""


def parser():
    p = common.make_parser(
        "sine", __doc__.split("\n\n")[0].strip(),
        hidden=32, batch_size=64, steps=UnsetSteps(1500), lr=1e-2, lr_decay=0.1, clip=1.0, eval_every=50, target=None)
    g = p.add_argument_group("the sine task")
    g.add_argument("--seq-len", type=common.positive_int, default=100, help="samples per test curve (T)")
    g.add_argument("--train-len", type=common.positive_int, default=60,
                   help="samples per training curve: --prime teacher-forced, the rest fed back in free "
                        "mode (shorter than the test curves: cheaper, and it generalises to 70 steps)")
    g.add_argument("--prime", type=common.positive_int, default=PRIME, help="samples shown before the closed loop")
    g.add_argument("--period", type=common.positive_float, nargs=2, default=[12.5, 50.0], metavar=("LOW", "HIGH"),
                   help="range of the period in samples")
    g.add_argument("--train-mode", choices=("teacher", "free", "mixed"), default="free",
                   help="after --prime: feed the true samples, the model's own outputs, or a mix")
    g.add_argument("--target-ratio", type=common.positive_float, default=0.05,
                   help="stop once the held-out closed-loop MSE is below this fraction of the answer-0 MSE")
    g.add_argument("--eval-size", type=common.positive_int, default=200, help="held-out curves for early stopping")
    g.add_argument("--test-size", type=common.positive_int, default=1000, help="fresh curves for the final test")
    sine_compare.add_options(p.add_argument_group("--compare: cells at matched parameter counts"))
    steps = next(a for a in p._actions if a.dest == "steps")
    steps.help += f"; {COMPARE_STEPS} with --compare unless given"
    return p


def check(args):
    if isinstance(args.steps, UnsetSteps):
        args.steps = COMPARE_STEPS if args.compare else int(args.steps)
    if args.jobs == 0:
        raise ValueError("--jobs must be >= 1 or negative (joblib: -1 = one per core)")
    if args.prime >= args.seq_len:
        raise ValueError(f"--prime ({args.prime}) must be shorter than --seq-len ({args.seq_len})")
    if args.train_len is not None and args.prime >= args.train_len:
        raise ValueError(f"--prime ({args.prime}) must be shorter than --train-len ({args.train_len})")
    if args.period[0] > args.period[1]:
        raise ValueError(f"--period LOW HIGH needs LOW <= HIGH, got {args.period}")
    if args.bptt is not None and args.train_mode != "teacher":
        raise ValueError("--bptt applies to --train-mode teacher only (free running unrolls the whole curve)")


# -- closed loop -------------------------------------------------------------------------
def closed_loop(model, x, prime):
    """Prime on x[:, :prime], then feed each prediction back with model.step.

    x (B, T, 1) -> predictions of x[:, prime:] (B, T - prime, 1).
    """
    model.eval()
    out, state = model.fprop(x[:, :prime])                       # (B, prime, 1)
    model.clear_cache()
    preds = [out[:, -1]]                                           # (B, 1): x_prime predicted
    for _ in range(x.shape[1] - prime - 1):
        y, state = model.step(preds[-1], state)
        preds.append(y)
    model.train()
    return np.stack(preds, axis=1)                                 # (B, T - prime, 1)


def baselines(x, prime):
    future = x[:, prime:]
    return {"predict_zero": float(np.mean(future ** 2)),
            "repeat_last": float(np.mean((future - x[:, prime - 1:prime]) ** 2))}


# -- free-running BPTT -------------------------------------------------------------------
def step_clones(model, n):
    """``n`` shallow copies of ``model`` that share its parameter and gradient arrays but keep
    their own caches, so each time step can run its own fprop/bprop pair (the model caches
    one forward pass at a time)."""
    clones = []
    for _ in range(n):
        c = copy.copy(model)
        c.cells = [copy.copy(cell) for cell in model.cells]
        c.cells_reverse = [copy.copy(cell) for cell in model.cells_reverse]
        c.read_in = copy.copy(model.read_in) if model.read_in is not None else None
        c.read_out = copy.copy(model.read_out) if model.read_out is not None else None
        c.clear_cache()
        clones.append(c)
    return clones


class FeedbackRunner(npnet.SequenceRunner):
    """The SequenceRunner whose gradients run through the model's own fed-back predictions; the
    rest of the training step (norm, finite check, clipping, update) is inherited.

    Forward, for t = 0 .. T-1 (p_t = the model's output at step t, a prediction of x_{t+1};
    the priming steps t < prime run as one call, the rest one call per step)::

        u_t = x_t                          t < prime (priming) or where the coin says teacher
        u_t = p_{t-1}                      otherwise (fed back)
        p_t, s_t = model(u_t, s_{t-1})     one step
        L = mean_t (p_t - x_{t+1})^2

    Backward, t = T-1 .. 0::

        dp_t = dL/dp_t + [u_{t+1} = p_t] du_{t+1}       the fed-back path
        du_t, ds_{t-1} = model.bprop(dp_t, ds_t)
    """

    def __init__(self, model, loss, optimizer, *, prime=PRIME, mode="free", total_steps=1, rng=None, **kw):
        super().__init__(model, loss, optimizer, **kw)
        self.prime, self.mode, self.total = prime, mode, total_steps
        self.rng = rng                                              # mixed mode: the coin flips
        self.clones = []

    @classmethod
    def configured(cls, **settings):
        """A subclass whose constructor takes ``settings`` (prime, mode, total_steps, rng), so that
        ``Learner(runner_class=...)`` builds it with the Learner's own arguments."""
        return type(cls.__name__, (cls,), {"__init__": functools.partialmethod(cls.__init__, **settings)})

    def feed_probability(self) -> float:
        if self.mode == "free":
            return 1.0
        return min(1.0, self.steps / max(1.0, 0.5 * self.total))   # mixed: 0 -> 1 over half the run

    def draw_feedback(self, T: int, B: int) -> np.ndarray:
        """(T, B, 1) bool: True where step t's input is the prediction p_{t-1}."""
        fed = np.zeros((T, B, 1), bool)
        p_feed = self.feed_probability()
        if p_feed >= 1.0:
            fed[self.prime:] = True
        elif p_feed > 0.0:
            fed[self.prime:] = self.rng.random((T - self.prime, B, 1)) < p_feed
        return fed

    def compute_gradients(self, x, y, mask=None) -> float:
        """Zero the grads, unroll with feedback (drawn for this step), backpropagate; return the loss."""
        return self.gradients(x, y, self.draw_feedback(x.shape[1], x.shape[0]))

    def gradients(self, x, y, fed) -> float:
        """Zero the grads, unroll with feedback where ``fed``, backpropagate; return the loss."""
        B, T, _ = x.shape
        if len(self.clones) < T - self.prime + 1:
            self.clones = step_clones(self.model, T - self.prime + 1)
        self.model.zero_grad()
        P = self.prime                                              # steps 0..P-1: teacher forced,
        preds = np.empty((B, T, 1), self.model.dtype)               # run as one call   (B, T, 1)
        out, state = self.clones[0].fprop(x[:, :P], None)           # (B, P, 1)
        preds[:, :P] = out
        for t in range(P, T):
            u = np.where(fed[t], preds[:, t - 1], x[:, t])          # (B, 1)
            out, state = self.clones[t - P + 1].fprop(u[:, None, :], state)   # (B, 1, 1)
            preds[:, t] = out[:, 0]
        value = float(self.loss.fprop(preds, y))
        dp = self.loss.bprop()                                      # (B, T, 1)
        dstate, du = None, None
        for t in range(T - 1, P - 1, -1):
            d = dp[:, t]
            if t + 1 < T:
                d = d + du * fed[t + 1]                             # through the fed-back input
            dx, dstate = self.clones[t - P + 1].bprop(d[:, None, :], dstate)
            du = dx[:, 0]
        d = dp[:, :P].copy()
        if P < T:
            d[:, -1] += du * fed[P]
        self.clones[0].bprop(d, dstate)
        self.last_output = preds
        return value


def stop_threshold(args, zero_mse):
    return args.target if args.target is not None else args.target_ratio * zero_mse


def plot_closed_loop(path, x, preds, prime, title="", k=3):
    fig, ax = common.figure(9, 1.9 * k, k, 1)
    T = x.shape[1]
    for i in range(k):
        a = ax[i, 0]
        a.plot(range(T), x[i, :, 0], "k-", lw=1, label="curve")
        a.plot(range(prime, T), preds[i, :, 0], "r--", lw=1.2, label="closed loop")
        a.axvspan(0, prime - 0.5, color="tab:blue", alpha=0.08, lw=0)
        a.set_ylim(-1.6, 1.6)
        a.grid(alpha=0.3)
        if i == 0:
            a.legend(loc="upper right", fontsize=8)
            a.set_title(f"{title}shaded: {prime} priming samples, then the model's own predictions fed back",
                        fontsize=9, loc="left")
    ax[-1, 0].set_xlabel("t (samples)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def main(argv=None):
    args = common.parse(parser(), argv, check)
    if args.compare:
        return sine_compare.main_compare(args)
    return run_one(args)


def run_one(args):
    """Train and test one model on ``args``; the run folder; returns summary.json's dict."""
    run = common.Run(args)
    T, dtype, period = args.seq_len, args.dtype, tuple(args.period)

    def batches(rng, n):
        return tasks.sine_task(args.batch_size, args.train_len or T, period, rng=rng, dtype=dtype, num_batches=n)

    model = common.build_model(args, 1, 1, return_sequences=True)
    run.write_config(input_size=1, output_size=1, params=model.num_params)
    x_ev = tasks.sine_batch(args.eval_size, T, period, rng=common.seed_rng(args.seed, "eval"), dtype=dtype).x
    zero_ev = baselines(x_ev, args.prime)["predict_zero"]
    run.log(f"sine: T={T}, prime {args.prime}, period {period}; {args.cell} H={args.hidden}, "
            f"{model.num_params} parameters; training: {args.train_mode}")

    def closed_loop_eval(learner, record):
        """On evaluation records: the held-out closed-loop MSE, the metric that stops training."""
        if "eval_loss" in record:
            record["eval_metric"] = float(np.mean((closed_loop(model, x_ev, args.prime) - x_ev[:, args.prime:]) ** 2))

    if args.target is None:
        args.target = args.target_ratio * zero_ev
    runner = npnet.SequenceRunner if args.train_mode == "teacher" else FeedbackRunner.configured(
        prime=args.prime, mode=args.train_mode, total_steps=run.total_steps(), rng=common.seed_rng(args.seed, "model"))
    x_next = np.concatenate([x_ev[:, 1:], x_ev[:, -1:]], axis=1)    # eval_loss: teacher-forced MSE
    learner = run.train(model, "mse", None, batches, [(x_ev, x_next)], higher_is_better=False,
                        runner_class=runner, callbacks=[closed_loop_eval])
    history = learner.history

    x = tasks.sine_batch(args.test_size, T, period, rng=common.seed_rng(args.seed, "test"), dtype=dtype).x
    preds = closed_loop(model, x, args.prime)                      # (N, T - prime, 1)
    mse = float(np.mean((preds - x[:, args.prime:]) ** 2))
    base = baselines(x, args.prime)
    common.plot_learning_curve(history, run.path("learning_curve.png"), "closed-loop MSE (held-out)",
                               target=stop_threshold(args, zero_ev), baseline=zero_ev, log_metric=True,
                               loss_name="training MSE", title=f"sine: {args.cell} H={args.hidden}, {args.train_mode} training")
    plot_closed_loop(run.path("closed_loop.png"), x, preds, args.prime,
                     f"{args.cell} H={args.hidden} ({model.num_params} parameters), {args.train_mode} training: ")
    return run.finish(model, "closed_loop_mse", mse, base["predict_zero"], "predict-zero", fmt=".4g",
                      repeat_last_mse=base["repeat_last"], ratio_to_zero=mse / base["predict_zero"],
                      train_mode=args.train_mode, prime=args.prime, seq_len=T, test_size=args.test_size)


if __name__ == "__main__":
    main()
