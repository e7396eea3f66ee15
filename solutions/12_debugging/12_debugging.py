# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (DL course)
#     language: python
#     name: dl-course
# ---

# %% [markdown]
# # Chapter 12 — Debugging and good practice
#
# A bug in ordinary code usually crashes. A bug in a deep-learning program usually does not: the
# loop runs, the loss prints, and the model is quietly worse than it should be, or no better
# than guessing. This chapter is about finding those silent bugs quickly and systematically,
# and about the working habits (organised code, configurations, logs, seeds, checkpoints) that
# keep you from creating them in the first place.
#
# **What you will learn**
# - the four classic failures (the loss turns NaN; the loss does not decrease; training
#   improves but validation does not; a model that works on a small subset fails on the full
#   data), each reproduced on real data, diagnosed and fixed;
# - strategies that find bugs fast: start simple, overfit one batch, check shapes, look at
#   gradients layer by layer, hooks, anomaly detection;
# - development practice: code organisation, configuration objects, experiment tracking,
#   reproducibility (seeds, generators, deterministic algorithms), and checkpoints that resume
#   training *bit for bit*.
#
# **Prerequisites:** chapters 2 (autograd), 3 (`nn.Module`, hooks, `state_dict`) and 4 (the
# training loop, optimizers, schedules, overfitting). Chapter 6 (MLPs and initialization) helps.
#
# **Expected time:** about 3 hours (1 hour for the text and the demos, 2 hours for the six
# exercises). The notebook runs in well under a minute on a laptop CPU.
#
# Exercises are marked **Exercise 12.k**: write your code where it says `# YOUR CODE HERE`, then
# run the test cell below it. A failing test says what it expected, what it got, and gives a
# hint. Hidden tests run when your notebook is graded, so make your code correct, not just green.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device (a GPU when there is one) and sets the plot style.

# %%
import copy
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import helpers
from helpers import checks
from helpers.data import digits

device = helpers.setup(seed=0, threads=1)
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# All experiments use the scikit-learn handwritten digits: 1,797 real 8×8 images, flattened to
# 64 grey levels in $[0, 1]$. We split them once, with a fixed permutation, into 1,200 training,
# 300 validation and 297 test images. The `_raw` tensors keep the pixels as they come; the
# others are standardised pixel by pixel with the **training** statistics. (Why the
# `torch.where` is there is the first story of section 12.2.)

# %%
X_all, y_all = digits(flat=True)  # (1797, 64) float32 in [0, 1], (1797,) int64
order = torch.randperm(len(X_all), generator=torch.Generator().manual_seed(0))
train_idx, val_idx, test_idx = order[:1200], order[1200:1500], order[1500:]
x_train_raw, x_val_raw, x_test_raw = (X_all[i].to(device) for i in (train_idx, val_idx, test_idx))
y_train, y_val, y_test = (y_all[i].to(device) for i in (train_idx, val_idx, test_idx))

pixel_mean = x_train_raw.mean(dim=0)  # (64,)
pixel_std = x_train_raw.std(dim=0)  # (64,)
pixel_std = torch.where(pixel_std > 0, pixel_std, torch.ones_like(pixel_std))
x_train, x_val, x_test = ((x - pixel_mean) / pixel_std
                          for x in (x_train_raw, x_val_raw, x_test_raw))  # (N, 64) each
print(f"train {tuple(x_train.shape)}, validation {tuple(x_val.shape)}, test {tuple(x_test.shape)}")


def make_mlp(hidden=32):
    """The small classifier used throughout: 64 -> hidden -> ReLU -> 10 logits, on `device`."""
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)).to(device)


def accuracy(model, x, y):
    """Fraction of rows of x whose arg-max class equals y, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()

# %% [markdown]
# ## 12.1 Why debugging deep learning is different
#
# In most software a bug announces itself: an exception, a wrong number in a unit test. Deep
# learning has those too (a shape mismatch raises at once, and is the *easy* kind). The hard
# kind runs to the end:
#
# | the program … | … but |
# |---|---|
# | trains without an error | the loss is stuck at its starting value |
# | prints a loss | after a few hundred steps it prints `nan` |
# | reaches 100 % training accuracy | validation accuracy is poor, or gets worse |
# | works on the 100 examples you tried | fails on the full data set |
# | learns | but a little worse than it should, for a reason nobody will ever find |
#
# The network is an optimiser's best effort to make the loss small *given the code you wrote*;
# it will happily work around many bugs, and hide them. The cure is method: make bugs loud
# (check values, shapes and gradients), make experiments small enough that a failure is
# obvious, change one thing at a time, and make every run repeatable so that a difference means
# something. The rest of the chapter turns each of these into code.

# %% [markdown]
# ## 12.2 The four classic failures
#
# ### 12.2.1 Failure 1: the loss is NaN
#
# NaN ("not a number") is what floating point returns when an operation has no sensible
# answer, and it is contagious: any arithmetic with a NaN gives NaN, so one bad value in one
# layer poisons the loss, then every gradient, then after one `optimizer.step()` every weight.
# Infinities are its usual parents:

# %%
inf = torch.tensor(float("inf"))
zero = torch.tensor(0.0)
print("0/0 =", (zero / zero).item(), "| inf - inf =", (inf - inf).item(),
      "| 0 * inf =", (zero * inf).item(), "| log(0) =", torch.log(zero).item(),
      "| exp(100.) in float32 =", torch.exp(torch.tensor(100.0)).item())

# %% [markdown]
# Four causes cover most NaNs in practice. We reproduce each on the digits.
#
# **Cause 1: the data.** Standardising each pixel, $x' = (x - \mu)/\sigma$, is good practice.
# But a few pixels at the border of the 8×8 grid are blank in *every* training image: their
# $\sigma$ is 0, so $x - \mu = 0$ and $0/0$ is NaN. The very first loss is NaN, before any
# update. That is why the data cell replaced a zero $\sigma$ by 1.

# %%
naive_std = x_train_raw.std(dim=0)
x_naive = (x_train_raw - pixel_mean) / naive_std
print("pixels with zero std:", torch.nonzero(naive_std == 0).flatten().tolist())
print("non-finite entries in the standardised data:", int((~torch.isfinite(x_naive)).sum()),
      "of", x_naive.numel())
torch.manual_seed(0)
print("loss at step 0:", F.cross_entropy(make_mlp()(x_naive), y_train).item())

# %% [markdown]
# The check is one line, and worth running on every new data set, input *and* target:
# `torch.isfinite(x).all()`. Real data sets also come with missing values stored as NaN (the
# CO2 series of chapter 5 has gaps): clean or impute them, don't feed them.
#
# **Cause 2: a learning rate that is too high.** NaN is often the *end* of a story that began
# with an explosion: each step overshoots, the logits grow, the loss grows by orders of
# magnitude per step, overflows to infinity, and `inf - inf` turns it into NaN. Full-batch SGD
# on the standardised digits with three learning rates:

# %%
def full_batch_losses(model, optimizer, steps):
    """Full-batch training on the standardised training digits; the loss at every step."""
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def sgd_losses(lr, steps=30):
    """Full-batch SGD from the same initial MLP; the loss at every step."""
    torch.manual_seed(0)
    model = make_mlp()
    return full_batch_losses(model, torch.optim.SGD(model.parameters(), lr=lr), steps)


lr_runs = {lr: sgd_losses(lr) for lr in (0.5, 5.0, 50.0)}
for lr, losses in lr_runs.items():
    first_bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    print(f"lr = {lr:4}: loss after 5 steps {losses[5]:.3g}, last {losses[-1]:.3g}, "
          f"first non-finite step {first_bad}")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for lr, losses in lr_runs.items():
    finite = [v if math.isfinite(v) else np.nan for v in losses]
    line, = ax.plot(finite, marker=".", label=f"lr = {lr}")
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        ax.axvline(bad[0], color=line.get_color(), linestyle="--", alpha=0.7)
        ax.annotate("NaN from here", (bad[0], 1e10), xytext=(4, 0), textcoords="offset points",
                    color=line.get_color())
ax.set(yscale="log", xlabel="step", ylabel="training loss (cross-entropy, log scale)",
       title="Too high a learning rate: the loss explodes, then turns NaN")
ax.legend()
plt.show()

# %% [markdown]
# With lr = 0.5 the loss falls. With lr = 5 it falls for two steps, then climbs steadily, by
# orders of magnitude within a few steps. With lr = 50 it climbs by about three orders of
# magnitude per step until the curve stops: from the dashed line on, the values are NaN.
# **The lesson: look at the loss before it became NaN.** Growth by orders of magnitude means an
# optimisation problem (lower the learning rate, add warm-up or gradient clipping); a NaN at
# step 0 means a data or formula problem.
#
# **Cause 3: an unstable formula.** Mathematically $\log \mathrm{softmax}(z)_k =
# z_k - \log\sum_j e^{z_j}$. Computed in two steps, the softmax of large logits rounds the
# small probabilities to exactly 0, and their log is $-\infty$. PyTorch's fused functions
# (`F.log_softmax`, `F.cross_entropy`, `F.binary_cross_entropy_with_logits`) use the
# log-sum-exp trick, subtracting $\max_j z_j$ first, and stay finite:

# %%
logits = torch.tensor([[100.0, 0.0, -100.0]])  # (B=1, K=3): a confident network
target = torch.tensor([2])  # ... that is wrong
naive = -torch.log(torch.softmax(logits, dim=1))[0, target]
print("softmax:", torch.softmax(logits, dim=1).tolist())
print(f"naive -log(softmax): {naive.item()}   "
      f"F.cross_entropy: {F.cross_entropy(logits, target).item()}")

# %% [markdown]
# The naive loss is infinite (and its gradient NaN); the fused one is the correct 200. Always
# feed **logits** to the loss, never probabilities.
#
# **Cause 4: a NaN that exists only in the backward pass.** Some functions are finite but have
# an infinite derivative: $\sqrt{u}$ at $u = 0$. Writing $|h|$ as $\sqrt{h^2}$ (people do, to
# make a norm "smooth") gives a perfectly finite forward pass, and the chain rule multiplies
# $\frac{1}{2\sqrt{0}} = \infty$ by $\frac{d(h^2)}{dh} = 0$: NaN. Here one hidden unit of a
# layer is exactly zero (its weights and bias are zero, as after pruning or with a bad init):

# %%
torch.manual_seed(0)
layer = nn.Linear(64, 4).to(device)
with torch.no_grad():
    layer.weight[0] = 0.0  # hidden unit 0 is 0 for every input
    layer.bias[0] = 0.0
h = layer(x_train[:8])  # (B, 4)
smooth_abs = torch.sqrt(h ** 2)  # |h|, "smoothly"
loss = smooth_abs.sum()
loss.backward()
print(f"loss = {loss.item():.3f} (finite); NaN in the weight gradient, by hidden unit:",
      torch.isnan(layer.weight.grad).any(dim=1).tolist())
(abs_grad,) = torch.autograd.grad(layer(x_train[:8]).abs().sum(), layer.weight)
print("the same with torch.abs: NaN anywhere?", torch.isnan(abs_grad).any().item())

# %% [markdown]
# The loss is fine; row 0 of the gradient is NaN, and one `optimizer.step()` would copy it into
# the weights. `torch.abs` defines its derivative at 0 as 0 and has no such problem. Section
# 12.3.5 shows the tool that finds such an operation for you.
#
# **Fixes, in the order to try them:** check the data for non-finite values; use fused, stable
# losses on logits; lower the learning rate (or add warm-up); clip gradients
# (`nn.utils.clip_grad_norm_`); add an $\varepsilon$ where you divide or take a log or square
# root. `helpers.train.fit`, the course's training loop, stops with a `FloatingPointError` as
# soon as the loss is not finite, which is the right default: a NaN run is never worth
# finishing.
#
# ### Exercise 12.1 — Where does the NaN come from? (★★★, 4 points)
#
# Write `first_nonfinite(model, loss_fn, x, y)`, a detector that runs one forward and one
# backward pass and reports the **first stage** at which a NaN or an infinity appears:
#
# 1. `"input"` if `x` holds a non-finite value;
# 2. `"output"` if `model(x)` does;
# 3. `"loss"` if `loss_fn(output, y)` does;
# 4. `"gradient"` if, after clearing the old gradients (`model.zero_grad()`) and calling
#    `backward()`, some parameter's `.grad` does;
# 5. `None` if everything is finite.
#
# It returns a tuple `(stage, names)`, where `names` is the **sorted** list of the names (as in
# `model.named_parameters()`) of the parameters whose gradient is not finite: empty unless
# `stage == "gradient"`. Stop at the first bad stage (no backward pass when the loss is already
# bad), skip parameters without a gradient (frozen ones), and leave `x` and `y` unchanged.
#
# The tests build one case for every stage: a NaN pixel, a layer whose bias is $+\infty$
# (infinite, not NaN!), the naive $-\log(\text{softmax})$ of an overconfident model, the
# $\sqrt{h^2}$ trap above, and a healthy model, which must come back `(None, [])` even right
# after a call that left NaN gradients behind.
#
# *Hints:* `torch.isfinite(t).all()` is `False` for both NaN and ±inf (`torch.isnan` misses
# infinities). Zero the old gradients before `backward()`, or a NaN from an earlier call is
# still sitting in `.grad`.

# %% nbgrader={"grade": false, "grade_id": "ex12_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def first_nonfinite(model, loss_fn, x, y):
    """Return (stage, names): the first stage with a NaN/inf and the params with bad gradients.

    stage is "input", "output", "loss", "gradient" or None; names is a sorted list of str.
    """
    ### BEGIN SOLUTION
    if not torch.isfinite(x).all():
        return "input", []
    output = model(x)
    if not torch.isfinite(output).all():
        return "output", []
    loss = loss_fn(output, y)
    if not torch.isfinite(loss).all():
        return "loss", []
    model.zero_grad()
    loss.backward()
    names = sorted(name for name, p in model.named_parameters()
                   if p.grad is not None and not torch.isfinite(p.grad).all())
    return ("gradient", names) if names else (None, [])
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex12_1_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
probe = make_mlp()
xb, yb = x_train[:16].clone(), y_train[:16].clone()
result = first_nonfinite(probe, F.cross_entropy, xb, yb)
checks.check_type(result, tuple, "first_nonfinite(...)", hint="return a tuple (stage, names)")
checks.check_equal(result, (None, []), "first_nonfinite on a healthy model and batch",
                   hint="everything is finite here: return (None, [])")
x_bad = xb.clone()
x_bad[3, 10] = float("nan")
checks.check_equal(first_nonfinite(probe, F.cross_entropy, x_bad, yb), ("input", []),
                   "first_nonfinite with a NaN pixel in the batch",
                   hint="check the input first, with torch.isfinite(x).all()")
### BEGIN HIDDEN TESTS
checks.check(torch.isnan(x_bad[3, 10]) and torch.isfinite(x_bad).sum() == x_bad.numel() - 1,
             "first_nonfinite must not modify its input.")
# Output: an infinite bias (not NaN) -> infinite logits.
inf_model = make_mlp()
with torch.no_grad():
    inf_model[2].bias[4] = float("inf")
checks.check_equal(first_nonfinite(inf_model, F.cross_entropy, xb, yb), ("output", []),
                   "first_nonfinite with an infinite bias",
                   hint="torch.isnan misses +inf: use torch.isfinite")
# Loss: an overconfident softmax model with the naive -log(probability).
confident = nn.Sequential(make_mlp(), nn.Softmax(dim=1))
with torch.no_grad():
    confident[0][2].weight.mul_(1000.0)
naive_nll = lambda p, t: -torch.log(p[torch.arange(len(t)), t]).mean()  # noqa: E731
with torch.no_grad():
    probs = confident(xb)
checks.check(bool(torch.isfinite(probs).all()) and not math.isfinite(naive_nll(probs, yb).item()),
             "test set-up: the probabilities should be finite and the naive loss infinite.")
checks.check_equal(first_nonfinite(confident, naive_nll, xb, yb), ("loss", []),
                   "first_nonfinite with an infinite loss (log of a zero probability)")
# Gradient: |h| written as sqrt(h^2) at h = 0 gives NaN only in the first layer's gradient.
class SqrtAbs(nn.Module):
    def forward(self, h):
        return torch.sqrt(h ** 2)


torch.manual_seed(1)
trap = nn.Sequential(nn.Linear(64, 16), SqrtAbs(), nn.Linear(16, 10)).to(device)
with torch.no_grad():
    trap[0].weight[0] = 0.0
    trap[0].bias[0] = 0.0
grads = torch.autograd.grad(F.cross_entropy(trap(xb), yb), list(trap.parameters()))
expected_names = sorted(n for (n, _), g in zip(trap.named_parameters(), grads)
                        if not torch.isfinite(g).all())
checks.check_equal(expected_names, ["0.bias", "0.weight"], "test set-up: the NaN parameters")
checks.check_equal(first_nonfinite(trap, F.cross_entropy, xb, yb), ("gradient", expected_names),
                   "first_nonfinite with the sqrt(h**2) trap",
                   hint="return the sorted names of the parameters whose .grad is not finite")
# Stale gradients: a NaN loss term for the gradient only, then a healthy call on the same model.
nan_grad_loss = lambda out, t: F.cross_entropy(out, t) + torch.sqrt(out * 0.0).sum()  # noqa: E731
stage, names = first_nonfinite(probe, nan_grad_loss, xb, yb)
checks.check_equal(stage, "gradient", "the stage for a loss with a NaN gradient")
checks.check_equal(names, sorted(n for n, _ in probe.named_parameters()), "the names then")
checks.check_equal(first_nonfinite(probe, F.cross_entropy, xb, yb), (None, []),
                   "a healthy call right after a NaN-gradient call on the same model",
                   hint="call model.zero_grad() before backward(): old NaN gradients linger")
# Frozen parameters have no gradient and must be skipped.
frozen = make_mlp()
frozen[0].requires_grad_(False)
checks.check_equal(first_nonfinite(frozen, F.cross_entropy, xb, yb), (None, []),
                   "first_nonfinite with a frozen first layer (its .grad is None)")
checks.check_equal(yb, y_train[:16], "y after the calls (must be unchanged)")
### END HIDDEN TESTS

# %% [markdown]
# ### 12.2.2 Failure 2: the loss does not decrease
#
# The loop runs, the loss prints, and it sits near its starting value: for a 10-class
# classifier, near $\ln 10 \approx 2.30$, the loss of uniform guessing. Four common causes,
# reproduced side by side (full-batch Adam, 150 steps):
#
# - **healthy:** lr = 0.01;
# - **lr too low:** lr = 1e-5, a thousand times smaller;
# - **stale optimizer:** the optimizer was built over one model, then the code re-created the
#   model ("for a clean start"), so `optimizer.step()` updates weights nobody uses;
# - **dead ReLUs:** the first layer's biases start at −10, so every pre-activation is negative,
#   every ReLU outputs 0, and no gradient reaches the first layer.

# %%
def stuck_scenario(kind):
    """Build (model, optimizer) for one scenario; seeded, so the four start alike."""
    torch.manual_seed(0)
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5 if kind == "lr too low" else 1e-2)
    if kind == "stale optimizer":
        model = make_mlp()  # the bug: the optimizer still holds the first model's parameters
    if kind == "dead ReLUs":
        with torch.no_grad():
            model[0].bias.fill_(-10.0)
    return model, optimizer


stuck_runs = {}
for kind in ("healthy", "lr too low", "stale optimizer", "dead ReLUs"):
    model, optimizer = stuck_scenario(kind)
    start = copy.deepcopy(model.state_dict())
    stuck_runs[kind] = (model, optimizer, start, full_batch_losses(model, optimizer, steps=150))

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for (kind, (_, _, _, losses)), style in zip(stuck_runs.items(), ("-", "--", "-.", ":")):
    ax.plot(losses, linestyle=style, linewidth=2, label=kind)
ax.axhline(math.log(10), color="k", linewidth=0.8, label="ln 10 (uniform guessing)")
ax.set(xlabel="step (full batch)", ylabel="training loss (cross-entropy)",
       title="Four runs: one learns, three do not")
ax.legend()
plt.show()

# %% [markdown]
# The healthy run drops far below $\ln 10$ within a few dozen steps. The other three look the
# same from the loss alone: flat (the dead-ReLU run creeps down a little, only because the
# last layer's bias can still learn the class frequencies). To tell them apart, ask three
# questions of each run: *does the optimizer hold the model's parameters? Did the parameters
# move? Do gradients reach every layer?*

# %%
print(f"{'run':16s} {'params in optimizer':>20s} {'largest rel. change':>20s} "
      f"{'grad norm, layer 0':>19s} {'layer 2':>9s}")
for kind, (model, optimizer, start, _) in stuck_runs.items():
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    owned = sum(id(p) in held for p in model.parameters())
    moved = max(((p - start[k]).norm() / start[k].norm()).item()
                for k, p in model.state_dict().items())
    model.zero_grad()
    F.cross_entropy(model(x_train), y_train).backward()
    print(f"{kind:16s} {owned:>13d} of {len(list(model.parameters()))} "
          f"{moved:>20.2e} {model[0].weight.grad.norm().item():>19.2e} "
          f"{model[2].weight.grad.norm().item():>9.2e}")

# %% [markdown]
# Now each run has its own fingerprint:
#
# - **lr too low:** the optimizer holds everything and the gradients are healthy, but the
#   weights barely moved (a relative change of about 2 %, against several hundred per cent for
#   the healthy run). Raise the learning rate; a learning-rate range test (chapter 4) finds a
#   good one.
# - **stale optimizer:** *none* of the model's parameters is in the optimizer, and nothing
#   moved at all (a change of exactly 0). Build the optimizer after the model is final, from
#   `model.parameters()` of the model you train.
# - **dead ReLUs:** the first layer's gradient is exactly 0. Fix the initialization (biases
#   start at 0 or slightly positive), lower the learning rate if units die *during* training,
#   or use a leaky activation.
#
# Other causes with the same flat curve: forgetting `optimizer.step()`; `loss.backward()` on a
# detached tensor; inputs far from unit scale (raw pixel values 0–255); a softmax before
# `CrossEntropyLoss` (chapter 4); labels shuffled separately from the inputs (Exercise 12.2).

# %% [markdown]
# ### 12.2.3 Failure 3: training improves, validation does not
#
# The training loss keeps falling; the validation loss stops falling, then rises. The model is
# learning its training examples by heart (**overfitting**) instead of the pattern. It shows
# most clearly with too little data for the model's size: here a 64→128→128→10 network (26k
# parameters) trained on only 100 images, against the same network on all 1,200.

# %%
def overfit_curves(n_train, steps=200, every=5):
    """Full-batch Adam on the first n_train training digits; train/val loss every `every` steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = x_train[:n_train], y_train[:n_train]
    log = {"step": [], "train": [], "val": []}
    for step in range(1, steps + 1):
        model.train()
        loss = F.cross_entropy(model(xs), ys)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            model.eval()
            with torch.no_grad():
                log["val"].append(F.cross_entropy(model(x_val), y_val).item())
            log["step"].append(step)
            log["train"].append(loss.item())
    return model, log


small_model, small_log = overfit_curves(100)
full_model, full_log = overfit_curves(1200)

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, log in (("100 training images", small_log), ("1,200 training images", full_log)):
    line, = ax.plot(log["step"], log["train"], linestyle="--", label=f"{name}: train")
    ax.plot(log["step"], log["val"], color=line.get_color(), label=f"{name}: validation")
best = int(np.argmin(small_log["val"]))
ax.plot(small_log["step"][best], small_log["val"][best], "k*", markersize=12,
        label="early-stopping point (100 images)")
ax.set(yscale="log", xlabel="step (full batch)", ylabel="cross-entropy (log scale)",
       title="Overfitting: the gap between training and validation")
ax.legend(fontsize=8)
plt.show()
for name, model, log in (("100", small_model, small_log), ("1,200", full_model, full_log)):
    print(f"{name:>5s} images: final train loss {log['train'][-1]:.4f}, best val loss "
          f"{min(log['val']):.3f} at step {log['step'][int(np.argmin(log['val']))]}, final val "
          f"loss {log['val'][-1]:.3f}, val accuracy {accuracy(model, x_val, y_val):.1%}")

# %% [markdown]
# With 100 images the training loss heads to zero while the validation loss bottoms out early
# (the star) and then climbs: every further step makes the model more confident on its 100
# images and more confidently wrong on some new ones. With 1,200 images the same network keeps
# a much smaller gap and ends far more accurate. More data is the best regulariser; when you
# cannot get it, use **early stopping** (keep the checkpoint with the best validation loss),
# **weight decay**, **dropout**, **data augmentation** or a **smaller model** (chapters 4, 6
# and 13 measure each).
#
# The same symptom has a second, more embarrassing cause: **validation data prepared
# differently from training data.** The model trained on standardised pixels, fed raw ones:

# %%
print("validation accuracy, standardised like the training data: "
      f"{accuracy(full_model, x_val, y_val):.1%}")
print("validation accuracy, raw pixels (preprocessing forgotten): "
      f"{accuracy(full_model, x_val_raw, y_val):.1%}")

# %% [markdown]
# Training looks perfect, validation is poor, and no amount of regularisation will help. Put
# the preprocessing in *one* function that every split goes through, with statistics computed
# on the training split only. Relatives of this bug: forgetting `model.eval()` (dropout and
# batch-norm behave differently in evaluation), data augmentation applied to validation
# images, or a validation set that comes from another distribution than the training set.

# %% [markdown]
# ### 12.2.4 Failure 4: works on a small subset, fails on the full data
#
# You debug on 50 examples, everything works, you launch on the full data set, and it
# diverges. Something in the code depends on the *size* of the data. The classic case is a
# loss **summed** instead of averaged over the batch: the gradient then grows with the number
# of examples, so a learning rate tuned on 50 examples is 24 times too large on 1,200.
# Full-batch SGD with the same lr = 0.02 and `reduction="sum"`:

# %%
def sum_loss_run(n, reduction, steps=60, lr=0.02):
    """Full-batch SGD on the first n training digits; return the mean loss per example."""
    torch.manual_seed(0)
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = x_train[:n], y_train[:n]
    for _ in range(steps):
        loss = F.cross_entropy(model(xs), ys, reduction=reduction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return F.cross_entropy(model(xs), ys).item()


for reduction, lr in (("sum", 0.02), ("mean", 0.02 * 50)):
    for n in (50, 1200):
        print(f"reduction={reduction!r:7s} lr={lr:<5} n={n:5d}: loss per example after 60 steps "
              f"{sum_loss_run(n, reduction, lr=lr):.4f}")

# %% [markdown]
# With the sum, the 50-image run learns and the 1,200-image run ends in NaN. With the mean
# (PyTorch's default) and the equivalent learning rate, $0.02 \times 50 = 1$, the step size
# no longer depends on $N$ and both runs learn. Other size-dependent bugs with the same story:
#
# | cause | why the small run hides it | fix |
# |---|---|---|
# | a schedule counted in *steps* where epochs were meant | few batches per epoch on the subset | step the scheduler once per epoch, or set its length in steps from `len(loader)` |
# | batch norm with tiny batches | the subset fitted in one batch | larger batches, or layer/group norm (chapter 9) |
# | the subset is not representative (e.g. the first rows of a file sorted by class) | it held only easy or only some classes | shuffle before taking subsets; stratify splits (chapter 5) |
# | a few corrupt examples (NaN, wrong label, empty image) | none of them was in the subset | run the `isfinite` and range checks on the full data |
# | memory: activations grow with batch size or sequence length | everything fitted | smaller batches, gradient accumulation, checkpointing (chapter 14) |
#
# ### Exercise 12.2 — Find and fix five bugs (★★★★, 5 points)
#
# Here is a training function with **five** bugs, one or more for each of the four classic
# failures. It runs to the end without an exception:

# %%
def buggy_run(x_train, y_train, x_val, y_val, epochs=10, seed=0):
    """Train make_mlp() on raw pixels (N, 64); return (model, optimizer, val accuracy). 5 bugs."""
    torch.manual_seed(seed)
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)  # per-pixel statistics, (64,)
    x_train = (x_train - mean) / std
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    model = make_mlp()  # start from a fresh model
    n = len(x_train)
    for epoch in range(epochs):
        model.train()
        x_shuffled = x_train[torch.randperm(n, device=x_train.device)]
        y_shuffled = y_train[torch.randperm(n, device=y_train.device)]
        for start in range(0, n, 100):
            xb, yb = x_shuffled[start:start + 100], y_shuffled[start:start + 100]
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
    return model, optimizer, val_acc

# %% tags=["autograde-skip"]
buggy_model, _, buggy_acc = buggy_run(x_train_raw, y_train, x_val_raw, y_val)
print(f"validation accuracy of the buggy run: {buggy_acc:.1%}; weights finite: "
      f"{all(bool(torch.isfinite(p).all()) for p in buggy_model.parameters())}")

# %% [markdown]
# Chance level, and finite weights although one of the five bugs is a NaN bug: one bug can
# hide another. Fix them one at a time, and rerun after each fix.
#
# Write `fixed_run`: copy the body of `buggy_run` into the cell below and fix the five bugs,
# changing nothing else: same model (`make_mlp()`), Adam with lr = 0.01, batches of 100, 10
# epochs by default, the same per-pixel standardisation with the training statistics. The
# intended learning-rate schedule halves the rate every **4 epochs** (so after 10 epochs it is
# $0.01 \times 0.5^2 = 0.0025$). Inputs are **raw** pixels, `(N, 64)` float32, labels `(N,)`
# int64; it returns `(model, optimizer, val_acc)` with `val_acc` a float.
#
# The tests check each fix through its effect: the weights are finite; the optimizer holds
# exactly the returned model's parameters; the final learning rate matches the schedule (for
# other numbers of epochs too); `val_acc` equals the accuracy of your model on the validation
# images standardised with the *training* statistics; the model fits its training data (at
# least **97 %**) and reaches at least **93 %** validation accuracy (the solution reaches about
# 97 %).
#
# *Hints:* run it and apply the checks of this section one at a time: `torch.isfinite` on the
# standardised data (a pixel that is blank in every training image has a zero standard
# deviation: replace it by 1, as the data cell does); which parameters does the optimizer
# hold?; are inputs and labels still paired after shuffling?; how many times per epoch does
# the scheduler step?; is the validation data prepared like the training data?

# %% nbgrader={"grade": false, "grade_id": "ex12_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fixed_run(x_train, y_train, x_val, y_val, epochs=10, seed=0):
    """Train make_mlp() on raw pixels (N, 64); return (model, optimizer, val accuracy)."""
    ### BEGIN SOLUTION
    torch.manual_seed(seed)
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)  # per-pixel statistics, (64,)
    std = torch.where(std > 0, std, torch.ones_like(std))  # fix 1: blank pixels give 0/0
    x_train = (x_train - mean) / std
    x_val = (x_val - mean) / std  # fix 5: validation prepared like training
    model = make_mlp()  # fix 2: the optimizer gets the parameters of the model we train
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    n = len(x_train)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, device=x_train.device)
        x_shuffled, y_shuffled = x_train[perm], y_train[perm]  # fix 3: one permutation
        for start in range(0, n, 100):
            xb, yb = x_shuffled[start:start + 100], y_shuffled[start:start + 100]
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()  # fix 4: once per epoch
    model.eval()
    with torch.no_grad():
        val_acc = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
    return model, optimizer, val_acc
    ### END SOLUTION


fixed_model, fixed_optimizer, fixed_acc = fixed_run(x_train_raw, y_train, x_val_raw, y_val)
print(f"validation accuracy after the fixes: {fixed_acc:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex12_2_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def reference_standardise(x, reference):
    """Standardise x with the per-pixel statistics of `reference` (zero std -> 1)."""
    mean, std = reference.mean(dim=0), reference.std(dim=0)
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


def scheduled_lr(epochs, lr=1e-2, step_size=4, gamma=0.5):
    """The closed form of StepLR stepped once per epoch: lr * gamma ** (epochs // step_size)."""
    return lr * gamma ** (epochs // step_size)


checks.check_type(fixed_model, nn.Module, "fixed_model")
checks.check(all(bool(torch.isfinite(p).all()) for p in fixed_model.parameters()),
             "fixed_model has NaN or infinite weights.", "finite weights", "NaN",
             "standardise without dividing by a zero standard deviation")
held = [p for group in fixed_optimizer.param_groups for p in group["params"]]
owned = sum(id(p) in {id(q) for q in held} for p in fixed_model.parameters())
checks.check({id(p) for p in held} == {id(p) for p in fixed_model.parameters()},
             "the optimizer does not hold exactly the returned model's parameters.",
             f"all {len(list(fixed_model.parameters()))} parameters of fixed_model, and no others",
             f"{owned} of them, among {len(held)} parameters in the optimizer",
             "build the optimizer from the model you train, after it is created")
checks.check_close(fixed_optimizer.param_groups[0]["lr"], scheduled_lr(10),
                   "the learning rate after 10 epochs", rtol=1e-6,
                   hint="halve every 4 epochs: call scheduler.step() once per epoch")
### BEGIN HIDDEN TESTS
expected_acc = accuracy(fixed_model, reference_standardise(x_val_raw, x_train_raw), y_val)
checks.check_close(fixed_acc, expected_acc, "val_acc (validation standardised with the training "
                   "statistics)", rtol=0, atol=1e-6,
                   hint="standardise x_val with the mean and std of x_train")
# A shorter run on half the data, with a darker validation set: the learning rate must follow
# the schedule, and only the training statistics give the expected accuracy.
dark_val = x_val_raw * 0.5
model5, opt5, acc5 = fixed_run(x_train_raw[:600], y_train[:600], dark_val, y_val, epochs=5, seed=1)
checks.check_close(opt5.param_groups[0]["lr"], scheduled_lr(5), "the learning rate after 5 epochs",
                   rtol=1e-6)
expected_dark = accuracy(model5, reference_standardise(dark_val, x_train_raw[:600]), y_val)
checks.check_close(acc5, expected_dark,
                   "val_acc on a darker validation set", rtol=0, atol=1e-6,
                   hint="use the training statistics for the validation data, not its own")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex12_2_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
train_acc = accuracy(fixed_model, reference_standardise(x_train_raw, x_train_raw), y_train)
checks.check(train_acc >= 0.97, "the fixed model does not fit its training data.",
             "training accuracy >= 97 %", f"{train_acc:.1%}",
             "are the inputs and the labels shuffled with the same permutation?")
val_acc = accuracy(fixed_model, reference_standardise(x_val_raw, x_train_raw), y_val)
checks.check(val_acc >= 0.93, "the fixed model is not accurate enough on validation digits.",
             "validation accuracy >= 93 %", f"{val_acc:.1%}", "check each of the five fixes")
### BEGIN HIDDEN TESTS
_, _, acc_seed2 = fixed_run(x_train_raw, y_train, x_val_raw, y_val, seed=2)
checks.check(acc_seed2 >= 0.93, "fixed_run with seed=2 is not accurate enough.",
             ">= 93 %", f"{acc_seed2:.1%}")
### END HIDDEN TESTS

# %% [markdown]
# ## 12.3 Debugging strategies
#
# ### 12.3.1 Start simple, then add complexity
#
# A full training run mixes every possible bug with every possible bad hyperparameter, and
# takes long enough that you try one idea an hour. Climb a ladder instead, and do not take the
# next rung before the last one works:
#
# 1. **Overfit one batch.** A correct model and loop drive the loss on one small batch (say 32
#    examples) to nearly zero within a few hundred steps. If they cannot, there is a bug (or
#    the model has no capacity, or the loss is wrong); no amount of data will fix it.
# 2. **Overfit a small subset** (a few hundred examples): training accuracy near 100 %.
# 3. **Add validation** and regularisation; now the gap between the curves is what you tune.
# 4. **Scale up** to the full data and the full model, one change at a time.
#
# Before step 1, check the loss at step 0: about $\ln K$ for $K$ balanced classes (chapter 4).
#
# ### Exercise 12.3 — Overfit one batch (★★, 3 points)
#
# Write `overfit_one_batch(model, x, y, steps=100, lr=1e-2, tol=0.01)`. It puts the model in
# training mode, creates **one** `torch.optim.Adam(model.parameters(), lr=lr)`, and takes
# `steps` steps on the single batch `x` (B, 64), `y` (B,): zero the gradients, compute
# `F.cross_entropy(model(x), y)`, record `loss.item()`, backward, step. It returns
# `(passed, losses)`: `losses` is the list of the `steps` recorded losses (floats, each taken
# *before* its update) and `passed` is the Python bool `losses[-1] < tol`.
#
# The tests compare your losses with a reference loop run on a copy of the same model, check
# that a healthy MLP passes, and that two broken models fail: one that ends in a softmax
# before the cross-entropy, and one whose ReLUs are all dead. (Why can the softmax model never
# pass? Its "logits" are probabilities in $[0, 1]$, so the best it can do is a loss of
# $\ln(1 + 9/e) \approx 1.46$.)

# %% nbgrader={"grade": false, "grade_id": "ex12_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def overfit_one_batch(model, x, y, steps=100, lr=1e-2, tol=0.01):
    """Train on the single batch (x, y) with Adam; return (passed, losses).

    losses: list of `steps` floats, the cross-entropy before each update;
    passed: bool, losses[-1] < tol.
    """
    ### BEGIN SOLUTION
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return bool(losses[-1] < tol), losses
    ### END SOLUTION


torch.manual_seed(0)
passed, batch_losses = overfit_one_batch(make_mlp(64), x_train[:32], y_train[:32])
print(f"passed: {passed}; loss {batch_losses[0]:.3f} -> {batch_losses[-1]:.5f}")

# %% nbgrader={"grade": true, "grade_id": "ex12_3_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def reference_losses(model, x, y, steps, lr):
    """The loop of the task, on a copy of `model`: Adam, cross-entropy, loss before each step."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        out.append(loss.item())
        loss.backward()
        optimizer.step()
    return out


torch.manual_seed(3)
healthy = make_mlp(64)
xb, yb = x_train[32:64].clone(), y_train[32:64].clone()
expected = reference_losses(healthy, xb, yb, steps=100, lr=1e-2)
passed, losses = overfit_one_batch(healthy, xb, yb)
checks.check_type(losses, list, "losses")
checks.check_equal(len(losses), 100, "len(losses)", hint="one loss per step")
checks.check_type(losses[0], float, "losses[0]", hint="record loss.item(), not the tensor")
checks.check_close(torch.tensor(losses), torch.tensor(expected), "the recorded losses",
                   rtol=1e-4, atol=1e-6,
                   hint="one Adam optimizer for all steps; zero_grad every step; record the "
                        "loss before optimizer.step()")
checks.check_equal(passed, True, "passed for a healthy MLP", hint="passed = losses[-1] < tol")
### BEGIN HIDDEN TESTS
checks.check_type(passed, bool, "passed")
checks.check_equal(yb, y_train[32:64], "y after the call (must be unchanged)")
# A softmax before the cross-entropy: the loss cannot go below ln(1 + 9/e).
torch.manual_seed(4)
softmaxed = nn.Sequential(make_mlp(64), nn.Softmax(dim=1))
passed_s, losses_s = overfit_one_batch(softmaxed, xb, yb, steps=60)
checks.check_equal(passed_s, False, "passed for a model ending in a softmax",
                   hint="passed must compare the last loss with tol")
checks.check(min(losses_s) > math.log(1 + 9 / math.e) - 1e-3, "the softmax model's losses "
             "went below their theoretical floor.", got=min(losses_s))
# Dead ReLUs: no gradient reaches the first layer.
dead = make_mlp(64)
with torch.no_grad():
    dead[0].bias.fill_(-10.0)
passed_d, losses_d = overfit_one_batch(dead, xb, yb, steps=60)
checks.check_equal(passed_d, False, "passed for a model whose ReLUs are all dead")
# Other settings: the reference trajectory again.
torch.manual_seed(5)
other = make_mlp(16)
expected_o = reference_losses(other, x_train[:8], y_train[:8], steps=30, lr=3e-3)
passed_o, losses_o = overfit_one_batch(other, x_train[:8], y_train[:8], steps=30, lr=3e-3, tol=10.0)
checks.check_close(torch.tensor(losses_o), torch.tensor(expected_o), "losses (steps=30, lr=3e-3)",
                   rtol=1e-4, atol=1e-6)
checks.check_equal(passed_o, True, "passed with tol=10 (every loss is below it)")
### END HIDDEN TESTS

# %% [markdown]
# ### 12.3.2 Check shapes at every step
#
# Shape errors that raise are easy. The dangerous ones *broadcast*. A regression model
# outputs `(B, 1)`; the targets are `(B,)`; `pred - target` silently becomes `(B, B)`, every
# prediction is compared with every target, and the best the model can do is predict the mean.
# Here a linear model learns the "ink" of each digit (its mean grey level, an exactly linear
# function of the pixels), with a hand-written MSE:

# %%
x_ink = x_train[:300]  # (B, 64), one batch of 300 standardised digits
ink = x_train_raw[:300].mean(dim=1)  # (B,) regression target


def fit_ink(match_shapes, steps=300):
    """Full-batch Adam on a Linear(64, 1); return the true MSE at the end."""
    torch.manual_seed(0)
    model = nn.Linear(64, 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        pred = model(x_ink)  # (B, 1)
        if match_shapes:
            pred = pred.squeeze(1)  # (B,)
        loss = ((pred - ink) ** 2).mean()  # (B, B) when the shapes differ!
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return F.mse_loss(model(x_ink).squeeze(1), ink).item()


print(f"variance of the target (the MSE of predicting the mean): {ink.var().item():.2e}")
print(f"MSE with (B, 1) - (B,): {fit_ink(False):.2e};  with (B,) - (B,): {fit_ink(True):.2e}")

# %% [markdown]
# The buggy run ends at the variance of the target: it learned the mean and nothing else,
# while the correct one drives the error down by six orders of magnitude. `F.mse_loss` would
# have warned about the size mismatch (a `UserWarning`, easy to miss in a long log, shown
# below); a hand-written loss says nothing. Make shapes loud: annotate them in comments
# (`# (B, 1)`), and check them where data changes hands. One line does it:

# %%
def check_same_shape(pred, target):
    """Raise a clear error when a prediction and its target have different shapes."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "differ: broadcasting would compare every pair")


pred = nn.Linear(64, 1).to(device)(x_ink)  # (B, 1)
try:
    check_same_shape(pred, ink)
except ValueError as err:
    print("ValueError:", err)
with warnings.catch_warnings(record=True) as caught:  # what F.mse_loss says about it
    warnings.simplefilter("always")
    F.mse_loss(pred, ink)
print("F.mse_loss warns:", str(caught[0].message)[:100], "...")

# %% [markdown]
# For a whole network, print the output shape of every layer with forward hooks (chapter 3's
# `trace_shapes`); `torchinfo.summary`, where installed, does the same as a table.
#
# ### 12.3.3 Visualise gradients
#
# After one `backward()`, the gradient norm of each layer's weights tells you whether the
# learning signal reaches every layer. Compare an 8-layer MLP with sigmoid activations and
# default initialization with the same depth using ReLU and He initialization (chapter 6
# explains why):

# %%
def deep_mlp(activation, he_init, depth=8, width=64):
    """depth x (Linear -> activation), then Linear(width, 10); optional He initialization."""
    torch.manual_seed(0)
    layers = []
    for i in range(depth):
        linear = nn.Linear(64 if i == 0 else width, width)
        if he_init:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, activation()]
    return nn.Sequential(*layers, nn.Linear(width, 10)).to(device)


def weight_grad_norms(model, x, y):
    """Norm of the gradient of every Linear weight after one backward pass, first layer first."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


flow = {"sigmoid, default init": weight_grad_norms(deep_mlp(nn.Sigmoid, False), x_train, y_train),
        "ReLU, He init": weight_grad_norms(deep_mlp(nn.ReLU, True), x_train, y_train)}

# %%
fig, ax = plt.subplots(figsize=(7, 4))
positions = np.arange(len(flow["ReLU, He init"]))
for k, (name, norms) in enumerate(flow.items()):
    ax.bar(positions + (k - 0.5) * 0.4, norms, width=0.4, label=name)
ax.set(yscale="log", xticks=positions, xticklabels=[f"{i + 1}" for i in positions],
       xlabel="Linear layer (1 = input side, 9 = output)",
       ylabel="weight-gradient norm (log scale)", title="Gradient flow through a deep MLP",
       ylim=(None, 100))
ax.legend(loc="upper left", ncol=2)
plt.show()
ratios = {name: norms[0] / norms[-1] for name, norms in flow.items()}
print("first layer / last layer gradient norm:", {k: f"{v:.1e}" for k, v in ratios.items()})

# %% [markdown]
# With sigmoids the gradient shrinks layer after layer (each sigmoid multiplies it by its
# derivative, at most 1/4, and default-initialized weights do not make up for it), so the
# first layers receive a signal orders of magnitude weaker than the last: they
# barely learn (**vanishing gradients**). With ReLU and He initialization the bars stay within
# one order of magnitude. Bars growing towards the input would mean **exploding** gradients.
# During training, log the global gradient norm per step (`clip_grad_norm_` returns it,
# chapter 4): spikes come before divergence.
#
# ### 12.3.4 Hooks: watching a network while it runs
#
# Chapter 3 introduced hooks: functions PyTorch calls for you when a module runs forward
# (`register_forward_hook`) or when a gradient is computed (`register_full_backward_hook`, or
# `tensor.register_hook` on any tensor). They let you watch activations and gradients inside a
# model without editing its code. A forward hook that counts dead ReLU units (zero for every
# example of the batch) in the healthy and the dead-ReLU models of section 12.2.2:

# %%
def dead_fraction(model, x):
    """Fraction of units of every ReLU that output 0 for every example of x."""
    found, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            def record(mod, args, out, name=name):
                found[name] = (out == 0).all(dim=0).float().mean().item()
            handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


for kind in ("healthy", "dead ReLUs"):
    print(f"{kind:11s}: dead fraction per ReLU {dead_fraction(stuck_runs[kind][0], x_train)}")

# %% [markdown]
# The `try`/`finally` matters: a hook that is never removed keeps firing (and keeps references
# to whatever it stores) for the rest of the session.
#
# ### Exercise 12.4 — A gradient monitor (★★★★, 5 points)
#
# Build `GradientMonitor`, a reusable tool that records, for **every `nn.Linear`** of a model
# (nested ones included, named as in `model.named_modules()`), the norm of the gradient of
# the loss with respect to that layer's **output**, at every backward pass, and flags layers
# whose gradient vanishes or explodes.
#
# - `GradientMonitor(model, low=1e-5, high=1e3)` registers the hooks; `self.norms` is a dict
#   `layer name -> list of floats`, one entry per backward pass (every `nn.Linear` gets a key,
#   with an empty list at first);
# - `flags()` returns a dict `layer name -> "vanishing" | "exploding" | "ok"`, judged on the
#   **latest** norm of each layer (`< low`, `> high`, otherwise), for the layers with at least
#   one norm;
# - `remove()` removes every hook (after it, backward passes record nothing).
#
# Forward passes without gradients (`torch.no_grad()`, evaluation) must work and record
# nothing, and the monitor must not print warnings (a test cell that writes to stderr scores
# 0; one visible test feeds digits, which do not require gradients). The tests use networks
# whose gradients are known exactly: chains of `Linear` layers with weights $c_k I$ and loss
# `model(x).sum()`. The gradient at the output of the last
# layer is a matrix of ones, with norm $\sqrt{B \cdot d}$, and each layer further back
# multiplies it by the scale $c$ of the layer after it: with $c = 0.01$ the early layers
# vanish, with $c = 10$ they explode.
#
# *Hints:* the simplest route is a forward hook that registers a tensor hook on the output:
# `out.register_hook(lambda grad: ...)` (only when `out.requires_grad`), as chapter 3 did.
# `register_full_backward_hook` also works (its `grad_output[0]` is the gradient at the
# output), but it warns when no input of a module requires a gradient. Keep the handles that
# `register_*` return in a list, for `remove()`.

# %% nbgrader={"grade": false, "grade_id": "ex12_4_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class GradientMonitor:
    """Record the gradient norm at the output of every nn.Linear, at every backward pass."""

    def __init__(self, model, low=1e-5, high=1e3):
        self.low, self.high = low, high
        self.norms = {}  # layer name -> list of floats
        self.handles = []  # what register_* returned
        ### BEGIN SOLUTION
        def make_hook(name):
            def hook(module, args, out):  # runs after module.forward
                if out.requires_grad:  # runs when the gradient w.r.t. out is known
                    out.register_hook(lambda grad: self.norms[name].append(grad.norm().item()))
            return hook

        for name, module in model.named_modules():
            if isinstance(module, nn.Linear):
                self.norms[name] = []
                self.handles.append(module.register_forward_hook(make_hook(name)))
        ### END SOLUTION

    def flags(self):
        """Layer name -> "vanishing", "exploding" or "ok", from the latest recorded norm."""
        ### BEGIN SOLUTION
        result = {}
        for name, values in self.norms.items():
            if values:
                latest = values[-1]
                result[name] = ("vanishing" if latest < self.low
                                else "exploding" if latest > self.high else "ok")
        return result
        ### END SOLUTION

    def remove(self):
        """Remove every hook."""
        ### BEGIN SOLUTION
        for handle in self.handles:
            handle.remove()
        self.handles = []
        ### END SOLUTION


monitor_model = deep_mlp(nn.Sigmoid, False)
monitor = GradientMonitor(monitor_model, low=1e-3)
F.cross_entropy(monitor_model(x_train), y_train).backward()
monitor.remove()
for name, values in monitor.norms.items():
    print(f"layer {name:>2s}: gradient norm at its output {values[-1]:.1e} "
          f"-> {monitor.flags()[name]}")

# %% nbgrader={"grade": true, "grade_id": "ex12_4_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
def scaled_identity_chain(scales, width=8):
    """Linear layers without bias, weight c * I for each c in scales."""
    layers = [nn.Linear(width, width, bias=False) for _ in scales]
    with torch.no_grad():
        for layer, c in zip(layers, scales):
            layer.weight.copy_(c * torch.eye(width))
    return nn.Sequential(*layers).to(device)


def known_norms(scales, batch=4, width=8):
    """Gradient norm at the output of each layer for loss = output.sum(): sqrt(B d) prod c_j."""
    return [math.sqrt(batch * width) * math.prod(abs(c) for c in scales[k + 1:])
            for k in range(len(scales))]


x_chain = torch.randn(4, 8, device=device, requires_grad=True)
scales = [0.01] * 6
chain = scaled_identity_chain(scales)
mon = GradientMonitor(chain)
checks.check_equal(sorted(mon.norms), [str(k) for k in range(6)], "the keys of monitor.norms",
                   hint="one key per nn.Linear, named as in model.named_modules()")
chain(x_chain).sum().backward()
for k, want in enumerate(known_norms(scales)):
    checks.check_equal(len(mon.norms[str(k)]), 1, f"entries for layer {k} after one backward")
    checks.check_close(mon.norms[str(k)][0], want, f"the gradient norm at the output of layer {k}",
                       rtol=1e-4, hint="record grad.norm().item() of the gradient w.r.t. the "
                                       "layer's OUTPUT")
checks.check_equal(mon.flags(), {"0": "vanishing", "1": "vanishing", "2": "vanishing",
                                 "3": "ok", "4": "ok", "5": "ok"},
                   "flags() with scales 0.01 (low=1e-5)")
mon.remove()
# A real model on digits, whose input does not require gradients (no warning allowed).
torch.manual_seed(0)
mixed = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10)).to(device)
mon_mixed = GradientMonitor(mixed)
checks.check_equal(sorted(mon_mixed.norms), ["0", "2"], "the keys for Linear-Tanh-Linear",
                   hint="only nn.Linear layers are monitored")
F.cross_entropy(mixed(x_train[:32]), y_train[:32]).backward()
with torch.no_grad():
    mixed(x_train[:32])  # must record nothing, and not fail
recorded = {name: list(values) for name, values in mon_mixed.norms.items()}
mon_mixed.remove()
checks.check_equal([len(recorded["0"]), len(recorded["2"])], [1, 1],
                   "entries per layer after one backward and one forward under torch.no_grad()",
                   hint="only register the tensor hook when out.requires_grad")
z0 = mixed[0](x_train[:32])  # (B, 16), the output of layer "0"
logits = mixed[2](mixed[1](z0))  # (B, 10), the output of layer "2"
g_z0, g_logits = torch.autograd.grad(F.cross_entropy(logits, y_train[:32]), [z0, logits])
checks.check_close(torch.tensor([recorded["0"][0], recorded["2"][0]]),
                   torch.tensor([g_z0.norm().item(), g_logits.norm().item()]),
                   "the norms recorded for layers 0 and 2 of a Linear-Tanh-Linear model", rtol=1e-4)
### BEGIN HIDDEN TESTS
# Exploding, a nested model, custom thresholds, several backward passes.
scales = [10.0] * 6
inner = scaled_identity_chain(scales[:3])
outer = scaled_identity_chain(scales[3:])
nested = nn.Sequential(inner, nn.Identity(), outer).to(device)
mon = GradientMonitor(nested, low=1e-2, high=1e3)
names = ["0.0", "0.1", "0.2", "2.0", "2.1", "2.2"]
checks.check_equal(sorted(mon.norms), names, "the keys for a nested model",
                   hint="walk model.named_modules(), not only the direct children")
checks.check(all(v == [] for v in mon.norms.values()), "before any backward pass the lists "
             "must be empty.", got=mon.norms)
x2 = torch.randn(4, 8, device=device, requires_grad=True)
nested(x2).sum().backward()
(3.0 * nested(x2).sum()).backward()
for name, want in zip(names, known_norms(scales)):
    checks.check_equal(len(mon.norms[name]), 2, f"entries for layer {name} after two backwards")
    checks.check_close(torch.tensor(mon.norms[name]), torch.tensor([want, 3.0 * want]),
                       f"the norms of layer {name}", rtol=1e-4)
latest = {name: 3.0 * want for name, want in zip(names, known_norms(scales))}
checks.check_equal(mon.flags(), {name: "exploding" if v > 1e3 else "vanishing" if v < 1e-2 else "ok"
                                 for name, v in latest.items()},
                   "flags() with scales 10 (low=1e-2, high=1e3), after the second backward")
# The hooks do not change the gradients.
checks.check_close(x2.grad, torch.full((4, 8), 4.0 * 10.0 ** 6, device=device), "x.grad",
                   rtol=1e-5)
# Flags follow the latest norm: a third backward with a tiny loss makes every layer vanish.
(1e-12 * nested(x2).sum()).backward()
checks.check(all(v == "vanishing" for v in mon.flags().values()),
             "flags() must use the latest norm of each layer.", got=mon.flags())
# No gradients: nothing recorded, no error.
with torch.no_grad():
    nested(x2)
checks.check(all(len(v) == 3 for v in mon.norms.values()),
             "a forward pass under torch.no_grad() must record nothing.", got=mon.norms)
# remove(): nothing recorded afterwards.
mon.remove()
nested(x2).sum().backward()
checks.check(all(len(v) == 3 for v in mon.norms.values()), "after remove(), backward passes "
             "must record nothing.", got={k: len(v) for k, v in mon.norms.items()},
             hint="keep every handle and call handle.remove()")
### END HIDDEN TESTS

# %% [markdown]
# ### 12.3.5 Anomaly detection: which operation made the NaN?
#
# When a gradient turns NaN deep inside a model, `first_nonfinite` tells you *that* it happened
# and in which parameters; **anomaly detection** tells you *where*. Inside
# `torch.autograd.detect_anomaly()` (or after `torch.autograd.set_detect_anomaly(True)`),
# autograd records the Python stack trace of every forward operation, checks the output of
# every backward function, and raises at the first one that returns NaN, printing the line of
# *your* code that created it. Its reports arrive as warnings, which this cell captures (a
# stray warning in a graded cell counts as a failure, so keep anomaly mode to your own
# debugging sessions):

# %%
def sqrt_abs_loss(layer, x):
    h = layer(x)  # (B, 4), unit 0 is exactly 0
    return torch.sqrt(h ** 2).sum()  # |h| "smoothly": NaN gradient at h = 0


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        with torch.autograd.detect_anomaly():
            sqrt_abs_loss(layer, x_train[:8]).backward()
    except RuntimeError as err:
        print("RuntimeError:", err)
for w in caught:
    text = str(w.message)
    shown = [line for line in text.splitlines() if "sqrt(h ** 2)" in line or "detected" in line
             or "enabled" in line]
    print("warning:", " | ".join(line.strip() for line in shown))

# %% [markdown]
# The error names `PowBackward0`, the backward of `h ** 2`, which multiplied the infinite
# derivative of the square root by $2h = 0$; the warning quotes the line of `sqrt_abs_loss`
# that created it. The price is speed, so switch it on only while hunting:

# %%
def time_steps(anomaly, repeats=20):
    """Seconds per forward + backward of the digits MLP, with or without anomaly mode."""
    model = make_mlp(64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.set_detect_anomaly(anomaly):
            start = time.perf_counter()
            for _ in range(repeats):
                F.cross_entropy(model(x_train), y_train).backward()
            return (time.perf_counter() - start) / repeats


time_steps(False)  # warm-up
plain, anomalous = time_steps(False), time_steps(True)
print(f"one step: {1e3 * plain:.2f} ms normally, {1e3 * anomalous:.2f} ms in anomaly mode "
      f"({anomalous / plain:.1f}x)")

# %% [markdown]
# ## 12.4 Development practice
#
# Most debugging time is spent on bugs that good habits would have prevented, or on questions
# good records would have answered ("which learning rate was that run?"). Five habits pay off
# from the first day of a project.
#
# ### 12.4.1 Code organisation
#
# Notebooks are good for exploring; a project that lasts longer than a week deserves a few
# files, each with one job, so that each piece can be tested on its own:
#
# ```
# project/
#   data.py        loading, splitting, preprocessing (statistics from the training split only)
#   models.py      nn.Module definitions, nothing else
#   train.py       train_one_epoch, evaluate, the run loop, checkpoints
#   configs/       one small file per experiment
#   tests/         overfit-one-batch, shape and gradient checks, run by pytest
#   main.py        reads a config, builds everything, trains, logs
# ```
#
# The cells below follow that split in miniature. First the training function, shared by
# everything that follows (and by Exercises 12.5 and 12.6). It takes every source of randomness
# it uses as an argument (the shuffling `generator`) or documents it (dropout draws from the
# global generator):

# %%
def train_epochs(model, optimizer, scheduler, x, y, epochs, generator, batch_size=100):
    """Train for `epochs` epochs of shuffled mini-batches; return the mean loss of each epoch.

    x: (N, 64) inputs, y: (N,) labels. Shuffling draws from `generator` (a CPU
    torch.Generator); dropout draws from the global generator. `scheduler` (or None) steps
    once per epoch.
    """
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if scheduler is not None:
            scheduler.step()
        losses.append(total / len(x))
    return losses


def make_dropout_mlp(hidden=64, p=0.2):
    """64 -> hidden -> ReLU -> Dropout(p) -> 10 logits, on `device`."""
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(hidden, 10)).to(device)

# %% [markdown]
# ### 12.4.2 Configuration
#
# Every number that defines a run (sizes, learning rate, epochs, seed) belongs in **one**
# configuration object, not scattered through the code as literals. A dataclass gives you
# defaults, names, and a dictionary for free; `replace` makes variants; JSON (or YAML, with a
# tool such as Hydra for larger projects) stores it next to the results:

# %%
@dataclass(frozen=True)
class Config:
    """Everything that defines one run of the digits classifier."""
    hidden: int = 64
    dropout: float = 0.2
    lr: float = 1e-2
    weight_decay: float = 0.0
    epochs: int = 12
    batch_size: int = 100
    seed: int = 0


base = Config()
variant = replace(base, lr=1e-3)
print(json.dumps(asdict(variant)))
print("round trip through JSON gives the same config:",
      Config(**json.loads(json.dumps(asdict(variant)))) == variant)

# %% [markdown]
# `frozen=True` makes a config immutable, so nothing can change it halfway through a run. The
# run itself becomes a function of the config alone:

# %%
def run_experiment(cfg, log=None):
    """Train a digits classifier as `cfg` says; call log(**metrics) once per epoch."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = make_dropout_mlp(cfg.hidden, cfg.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    for epoch in range(1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        (train_loss,) = train_epochs(model, optimizer, scheduler, x_train, y_train, 1, generator,
                                     cfg.batch_size)
        if log is not None:
            log(epoch=epoch, lr=lr, train_loss=train_loss, val_acc=accuracy(model, x_val, y_val))
    return model

# %% [markdown]
# ### 12.4.3 Experiment tracking
#
# Two weeks from now you will not remember which run used which settings. Record, for every
# run, the config, the metrics per epoch, and (in a real project) the code version
# (`git rev-parse HEAD`) and the library versions. A tracker can be ten lines: one JSON line
# per event in one file per run. (TensorBoard's `SummaryWriter`, used in chapter 13, and tools
# such as MLflow or Weights & Biases do the same with dashboards on top.)

# %%
class JsonlTracker:
    """Write a run's config, then one line of metrics per call, to <root>/<name>.jsonl."""

    def __init__(self, root, name, cfg):
        self.path = Path(root) / f"{name}.jsonl"
        self.path.write_text(json.dumps({"config": asdict(cfg),
                                         "torch": torch.__version__}) + "\n")

    def __call__(self, **metrics):
        with self.path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")


def read_run(path):
    """(header, list of metric dicts) of a .jsonl run file."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return lines[0], lines[1:]

# %% [markdown]
# Three runs that differ only in the learning rate, tracked to a temporary directory, then
# read back *from disk*, as you would a week later, to compare them:

# %%
runs_dir = tempfile.TemporaryDirectory()
trained = {}
for lr in (1e-3, 1e-2, 1e-1):
    cfg = replace(base, lr=lr)
    trained[f"lr={lr:g}"] = run_experiment(cfg, log=JsonlTracker(runs_dir.name, f"lr={lr:g}", cfg))

records = {p.stem: read_run(p) for p in sorted(Path(runs_dir.name).glob("*.jsonl"))}
for name, (header, rows) in records.items():
    best = max(rows, key=lambda r: r["val_acc"])
    print(f"{name:9s} lr {header['config']['lr']:<6g} best val acc {best['val_acc']:.1%} "
          f"(epoch {best['epoch']}), last train loss {rows[-1]['train_loss']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, (header, rows) in records.items():
    ax.plot([r["epoch"] for r in rows], [100 * r["val_acc"] for r in rows], marker="o", label=name)
ax.set(xlabel="epoch", ylabel="validation accuracy (%)",
       title="Three tracked runs, read back from disk")
ax.legend()
plt.show()

# %% [markdown]
# The curves come from the files alone: nothing in memory was needed. The two larger learning
# rates end close together; the smallest is still climbing after 12 epochs and would need
# many more. Only now, with the choice made on validation data, do we touch the test set, once:

# %%
best_name = max(records, key=lambda n: max(r["val_acc"] for r in records[n][1]))
test_acc = accuracy(trained[best_name], x_test, y_test)
runs_dir.cleanup()
print(f"chosen on validation: {best_name}; its test accuracy: {test_acc:.1%}")
print(f"QUALITY: tracked digits MLP ({best_name}) {test_acc:.1%} test accuracy (target >= 95 %)")

# %% [markdown]
# ### 12.4.4 Reproducibility
#
# Debugging needs repeatable runs: if two runs of the same code differ, you cannot tell
# whether your change helped or the dice did. A training run draws random numbers in many
# places:
#
# | source | controlled by |
# |---|---|
# | weight initialization, dropout masks, `torch.rand*` | the global generator: `torch.manual_seed(seed)` (seeds CPU and every GPU) |
# | shuffling, random splits, augmentation | pass a `torch.Generator` seeded for the purpose (`DataLoader(..., generator=g)`, `torch.randperm(n, generator=g)`) |
# | Python's `random`, NumPy | `random.seed`, `np.random.seed` (or `np.random.default_rng(seed)`); `helpers.seed_everything` seeds all three |
# | `DataLoader` worker processes | each worker's `torch`, `random` and NumPy generators are seeded from a base seed drawn from the loader's `generator`; other libraries need a `worker_init_fn` |
# | GPU kernels that add in a varying order (atomic adds in `index_add_`, `scatter_add_`, some convolution backwards) | `torch.use_deterministic_algorithms(True)`, `torch.backends.cudnn.benchmark = False`, and the environment variable `CUBLAS_WORKSPACE_CONFIG=:4096:8` |
#
# Why does the order of additions matter? Floating-point addition is not associative: the
# result depends on the rounding at each step.

# %%
a, b, c = torch.tensor(1e8), torch.tensor(-1e8), torch.tensor(1.0)  # float32
print(f"(a + b) + c = {((a + b) + c).item()},  a + (b + c) = {(a + (b + c)).item()}")
values = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
shuffled = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(1))]
print("the same 100,000 numbers summed in two orders differ by "
      f"{(values.sum() - shuffled.sum()).item():.1e}")

# %% [markdown]
# A GPU reduction whose order depends on thread timing therefore gives results that differ in
# the last bits from run to run, and training amplifies those differences. Deterministic mode
# makes PyTorch choose order-stable kernels, or raise an error for an operation that has none,
# so you learn about it instead of silently losing reproducibility. It can cost speed on GPUs;
# on the CPU, almost all of PyTorch's kernels are deterministic already (for a fixed number of
# threads).
#
# Separate generators are the other half of the story. Shuffling with the global generator
# makes the order depend on everything else that drew from it before, for example creating one
# more model:

# %%
def first_batch(extra_model, own_generator):
    """Indices of the first shuffled batch of 5, after seeding, optionally building a model."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0) if own_generator else None
    if extra_model:
        make_mlp()  # draws its initial weights from the global generator
    return torch.randperm(1200, generator=generator)[:5].tolist()


for own in (False, True):
    print(f"own generator: {own!s:5s} | without an extra model {first_batch(False, own)}, "
          f"with one {first_batch(True, own)}")

# %% [markdown]
# With the global generator, an innocent change elsewhere (one more model, one more dropout
# layer) reshuffles the data; with its own generator the order stays put.
#
# ### Exercise 12.5 — Two runs, one result (★★★, 4 points)
#
# Write `reproducible_run(make_model, x, y, seed, epochs=3)` that trains a model so that two
# calls with the same arguments give **bit-identical** results, whatever happened before the
# call:
#
# 1. switch deterministic algorithms on for the duration of the run, and restore the previous
#    setting afterwards, even if training raises (`torch.are_deterministic_algorithms_enabled()`
#    tells you the current one). Also set `os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"`,
#    which deterministic mode needs on GPUs;
# 2. seed the global generator with `seed`, *then* build the model with `make_model()`;
# 3. create a `torch.Generator()` seeded with `seed` for shuffling;
# 4. train with `torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)`, no scheduler,
#    through `train_epochs(model, optimizer, None, x, y, epochs, generator)`;
# 5. return `(state, losses)`: `state` a dict `name -> tensor` copied from
#    `model.state_dict()` (use `.detach().clone()`), `losses` the list from `train_epochs`.
#
# The tests call it twice with the same seed, with random numbers drawn in between, and
# compare everything with `torch.equal` (no tolerance); check that different seeds give
# different results, both through initialization and through shuffling alone; that
# `make_model` was called while deterministic mode was on; and that the previous setting is
# back afterwards.

# %% nbgrader={"grade": false, "grade_id": "ex12_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def reproducible_run(make_model, x, y, seed, epochs=3):
    """Train make_model() reproducibly; return (state dict copy, list of epoch losses)."""
    ### BEGIN SOLUTION
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = make_model()
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = train_epochs(model, optimizer, None, x, y, epochs, generator)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        torch.use_deterministic_algorithms(previous)
    return state, losses
    ### END SOLUTION


state_1, losses_1 = reproducible_run(make_dropout_mlp, x_train, y_train, seed=0)
torch.rand(10)  # anything that draws random numbers in between
state_2, losses_2 = reproducible_run(make_dropout_mlp, x_train, y_train, seed=0)
print("losses:", [f"{v:.4f}" for v in losses_1], "| identical runs:",
      losses_1 == losses_2 and all(torch.equal(state_1[k], state_2[k]) for k in state_1))

# %% nbgrader={"grade": true, "grade_id": "ex12_5_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def compare_states(got, want, what, hint=None):
    """Bit-exact comparison of two state dicts."""
    checks.check_type(got, dict, what)
    checks.check_equal(sorted(got), sorted(want), f"the keys of {what}")
    for k in want:
        checks.check_equal(got[k], want[k], f"{what}[{k!r}]", hint=hint)


torch.manual_seed(11)
torch.rand(37)
run_a = reproducible_run(make_dropout_mlp, x_train[:600], y_train[:600], seed=3, epochs=2)
torch.manual_seed(12)  # a different global state before the second call
run_b = reproducible_run(make_dropout_mlp, x_train[:600], y_train[:600], seed=3, epochs=2)
checks.check_type(run_a, tuple, "reproducible_run(...)", hint="return (state, losses)")
checks.check_equal(len(run_a[1]), 2, "len(losses) for epochs=2")
checks.check_equal(run_b[1], run_a[1], "the losses of two runs with seed=3",
                   hint="seed the global generator inside the function, before make_model()")
compare_states(run_b[0], run_a[0], "the state of the second run",
               hint="seed the global generator and the shuffling generator inside the function")
### BEGIN HIDDEN TESTS
checks.check(run_a[1][-1] < run_a[1][0], "the loss should fall during training.", got=run_a[1])
# A different seed changes the result.
run_c = reproducible_run(make_dropout_mlp, x_train[:600], y_train[:600], seed=4, epochs=2)
checks.check(run_c[1] != run_a[1], "seeds 3 and 4 gave the same losses.",
             hint="use the seed argument, not a fixed number")
# Shuffling alone: a model with a fixed initialization and no dropout.
def fixed_init_model():
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(device)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.linspace(-0.2, 0.2, p.numel()).reshape(p.shape))
    return model


shuffle_0 = reproducible_run(fixed_init_model, x_train[:600], y_train[:600], seed=0, epochs=1)
shuffle_1 = reproducible_run(fixed_init_model, x_train[:600], y_train[:600], seed=1, epochs=1)
checks.check(shuffle_0[1] != shuffle_1[1], "with a fixed initialization, seeds 0 and 1 gave the "
             "same losses: the shuffling does not depend on the seed.",
             hint="torch.Generator().manual_seed(seed)")
# Deterministic mode during the run, and restored afterwards.
seen_modes = []


def spy_model():
    seen_modes.append(torch.are_deterministic_algorithms_enabled())
    return make_dropout_mlp()


torch.use_deterministic_algorithms(False)
reproducible_run(spy_model, x_train[:200], y_train[:200], seed=0, epochs=1)
checks.check_equal(seen_modes, [True], "deterministic mode while make_model() ran",
                   hint="torch.use_deterministic_algorithms(True) before building the model")
checks.check_equal(torch.are_deterministic_algorithms_enabled(), False,
                   "deterministic mode after the run (it was off before)",
                   hint="restore the previous setting in a finally block")
torch.use_deterministic_algorithms(True)
reproducible_run(spy_model, x_train[:200], y_train[:200], seed=0, epochs=1)
checks.check_equal(torch.are_deterministic_algorithms_enabled(), True,
                   "deterministic mode after the run (it was on before)")
torch.use_deterministic_algorithms(False)
def failing_model():
    raise KeyError("the model factory failed")


checks.check_raises(lambda: reproducible_run(failing_model, x_train, y_train, seed=0), KeyError,
                    "reproducible_run with a failing make_model")
checks.check_equal(torch.are_deterministic_algorithms_enabled(), False,
                   "deterministic mode after a run that raised", hint="use try/finally")
checks.check_equal(os.environ.get("CUBLAS_WORKSPACE_CONFIG"), ":4096:8", "CUBLAS_WORKSPACE_CONFIG")
### END HIDDEN TESTS

# %% [markdown]
# ### 12.4.5 Checkpointing and exact resume
#
# Long runs get interrupted: a time limit on a shared cluster, a crash, a laptop lid. A
# checkpoint lets training continue, and a *good* checkpoint lets it continue **exactly** as if
# nothing had happened, which is what makes a resumed run trustworthy (and debuggable). Saving
# the weights is not enough. The state of a run is:
#
# | part | why it matters |
# |---|---|
# | `model.state_dict()` | parameters and buffers (batch-norm running statistics) |
# | `optimizer.state_dict()` | momentum and Adam's running averages, per parameter; the learning rates |
# | `scheduler.state_dict()` | where the schedule is; a fresh scheduler restarts it |
# | the global generator: `torch.get_rng_state()` (and `torch.cuda.get_rng_state_all()` on GPUs) | the next dropout masks |
# | every other generator: `generator.get_state()` | the next shuffles, augmentations |
# | the epoch (or step) counter | where to continue; plus anything else the loop keeps (best validation loss, early-stopping counter, a `GradScaler`) |
#
# To see what a naive checkpoint (model and optimizer only, the usual tutorial version) costs,
# train 6 epochs straight through, then train 3, "crash", restore the naive checkpoint into a
# new process-like setting (fresh objects, generators in another state), and train 3 more:

# %%
def resume_setup(seed):
    """Model with dropout, Adam, a step schedule and a shuffling generator, all from `seed`."""
    torch.manual_seed(seed)
    model = make_dropout_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler, torch.Generator().manual_seed(seed)


model_u, opt_u, sched_u, gen_u = resume_setup(0)
straight = train_epochs(model_u, opt_u, sched_u, x_train, y_train, 6, gen_u)

model_n, opt_n, sched_n, gen_n = resume_setup(0)
first_half = train_epochs(model_n, opt_n, sched_n, x_train, y_train, 3, gen_n)
naive = {"model": copy.deepcopy(model_n.state_dict()),  # the usual tutorial checkpoint
         "optimizer": copy.deepcopy(opt_n.state_dict())}
model_r, opt_r, sched_r, gen_r = resume_setup(1)  # "after the crash": new objects
model_r.load_state_dict(naive["model"])
opt_r.load_state_dict(naive["optimizer"])
second_half = train_epochs(model_r, opt_r, sched_r, x_train, y_train, 3, gen_r)
drift = max((p - q).abs().max().item() for p, q in zip(model_r.parameters(), model_u.parameters()))
print("epoch losses, straight:", [f"{v:.4f}" for v in straight])
print("epoch losses, resumed: ", [f"{v:.4f}" for v in first_half + second_half])
print(f"largest weight difference after 6 epochs: {drift:.2e}; "
      f"final lr {sched_u.get_last_lr()[0]:g} "
      f"(straight) vs {sched_r.get_last_lr()[0]:g} (resumed)")

# %% [markdown]
# The first three epochs agree, of course. After the naive resume the losses part ways, the
# weights differ, and the learning rate is wrong: the fresh scheduler started its schedule
# again, and the dropout masks and the data order came from other random streams. Each
# difference is small, and that is the trouble: the run *looks* fine but cannot be reproduced,
# and a bug in it cannot be replayed.
#
# ### Exercise 12.6 — Exact resume (★★★★★, 5 points)
#
# Write the two halves of a complete checkpoint:
#
# - `save_training_state(path, model, optimizer, scheduler, generator, epoch)` writes **one**
#   file with `torch.save`: a dict with the state dicts of the model, the optimizer and the
#   scheduler, the state of `generator`, the state of the global generator
#   (`torch.get_rng_state()`), on machines with a GPU also `torch.cuda.get_rng_state_all()`,
#   and `epoch` (an int);
# - `load_training_state(path, model, optimizer, scheduler, generator)` loads it with
#   `torch.load(path, map_location="cpu", weights_only=True)` (tensors, numbers and dicts only:
#   never unpickle arbitrary objects), restores every part into the given objects and the
#   global generator, and returns `epoch`.
#
# The tests repeat the experiment above with your functions: a straight run against the same
# run interrupted after epoch 3 and resumed into fresh objects built from another seed, with
# random numbers drawn in between. The losses, every weight, Adam's running averages and the
# learning rate must agree **bit for bit** (`torch.equal`), also when the run is interrupted
# twice.
#
# *Hints:* `generator.get_state()` / `generator.set_state(state)`; `torch.set_rng_state(state)`;
# `torch.cuda.is_available()`, `torch.cuda.set_rng_state_all(states)`. RNG states are
# `uint8` tensors, so they load fine with `weights_only=True`.

# %% nbgrader={"grade": false, "grade_id": "ex12_6_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def save_training_state(path, model, optimizer, scheduler, generator, epoch):
    """Save everything needed to resume training bit for bit, in one file at `path`."""
    ### BEGIN SOLUTION
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "rng_cpu": torch.get_rng_state(),
        "epoch": int(epoch),
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, path)
    ### END SOLUTION


def load_training_state(path, model, optimizer, scheduler, generator):
    """Restore model, optimizer, scheduler, generator and global RNG from `path`; return epoch."""
    ### BEGIN SOLUTION
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["rng_cpu"])
    if torch.cuda.is_available() and "rng_cuda" in state:
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return state["epoch"]
    ### END SOLUTION


with tempfile.TemporaryDirectory() as tmp:
    model_s, opt_s, sched_s, gen_s = resume_setup(0)
    first = train_epochs(model_s, opt_s, sched_s, x_train, y_train, 3, gen_s)
    save_training_state(Path(tmp) / "ckpt.pt", model_s, opt_s, sched_s, gen_s, epoch=3)
    model_s, opt_s, sched_s, gen_s = resume_setup(1)  # fresh objects, other random state
    start_epoch = load_training_state(Path(tmp) / "ckpt.pt", model_s, opt_s, sched_s, gen_s)
    rest = train_epochs(model_s, opt_s, sched_s, x_train, y_train, 6 - start_epoch, gen_s)
exact = max((p - q).abs().max().item() for p, q in zip(model_s.parameters(), model_u.parameters()))
print(f"resumed at epoch {start_epoch}; same losses: {first + rest == straight}; "
      f"largest weight difference: {exact}")

# %% nbgrader={"grade": true, "grade_id": "ex12_6_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
def straight_run(seed, epochs):
    """The uninterrupted reference run."""
    model, optimizer, scheduler, generator = resume_setup(seed)
    losses = train_epochs(model, optimizer, scheduler, x_train[:600], y_train[:600], epochs,
                          generator)
    return model, optimizer, scheduler, losses


def interrupted_run(seed, epochs, stops, folder):
    """The same run, saved at each epoch in `stops` and resumed into fresh objects."""
    model, optimizer, scheduler, generator = resume_setup(seed)
    losses, done = [], 0
    for k, stop in enumerate(list(stops) + [epochs]):
        losses += train_epochs(model, optimizer, scheduler, x_train[:600], y_train[:600],
                               stop - done, generator)
        done = stop
        if stop == epochs:
            break
        path = Path(folder) / f"ckpt_{k}.pt"
        save_training_state(path, model, optimizer, scheduler, generator, epoch=stop)
        model, optimizer, scheduler, generator = resume_setup(seed + 100 + k)  # after the "crash"
        torch.rand(17)  # the new process draws random numbers of its own
        done = load_training_state(path, model, optimizer, scheduler, generator)
        checks.check_equal(done, stop, "the epoch returned by load_training_state")
    return model, optimizer, scheduler, losses


def compare_runs(got, want, what):
    model_g, opt_g, sched_g, losses_g = got
    model_w, opt_w, sched_w, losses_w = want
    checks.check_equal(losses_g, losses_w, f"the epoch losses ({what})",
                       hint="restore the RNG states (global and generator): dropout and shuffling")
    for (k, p), q in zip(model_w.named_parameters(), model_g.parameters()):
        checks.check_equal(q.detach(), p.detach(), f"parameter {k} ({what})")
    checks.check_equal(sched_g.get_last_lr(), sched_w.get_last_lr(), f"the learning rate ({what})",
                       hint="save and load the scheduler's state_dict")
    for p_w, p_g in zip(model_w.parameters(), model_g.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            checks.check_equal(opt_g.state[p_g][key], opt_w.state[p_w][key],
                               f"Adam's {key} ({what})",
                               hint="save and load the optimizer's state_dict")


with tempfile.TemporaryDirectory() as folder:
    reference = straight_run(seed=5, epochs=4)
    resumed = interrupted_run(seed=5, epochs=4, stops=[3], folder=folder)
    compare_runs(resumed, reference, "resumed after epoch 3")
    saved = torch.load(Path(folder) / "ckpt_0.pt", map_location="cpu", weights_only=True)
    checks.check_type(saved, dict, "the checkpoint file's content")
### BEGIN HIDDEN TESTS
with tempfile.TemporaryDirectory() as folder:
    reference = straight_run(seed=6, epochs=5)
    twice = interrupted_run(seed=6, epochs=5, stops=[1, 3], folder=folder)
    compare_runs(twice, reference, "interrupted after epochs 1 and 3")
### END HIDDEN TESTS

# %% [markdown]
# ## 12.5 The debugging checklist
#
# Keep this next to your keyboard. Each line was a demo or an exercise of this chapter.
#
# **Before the first real run**
#
# 1. Data: `torch.isfinite` on inputs and targets; value ranges; a few examples *looked at*
#    with their labels; statistics computed on the training split only.
# 2. Shapes: annotate them; check prediction and target shapes match before the loss.
# 3. Loss at step 0: about $\ln K$ for $K$ balanced classes.
# 4. Overfit one batch (Exercise 12.3), then a few hundred examples.
# 5. Every parameter is in the optimizer, and every layer receives a gradient.
# 6. `model.train()` for training, `model.eval()` and `torch.no_grad()` for evaluation.
#
# **When the loss is NaN**
#
# 1. At step 0? Then the data or the formula: check inputs, then use fused losses on logits.
# 2. After an explosion? Lower the learning rate, add warm-up, clip gradients.
# 3. Finite loss but NaN gradients? Find the operation with anomaly detection
#    (`sqrt`, `log`, division near 0); add an $\varepsilon$ or use a safe function.
#
# **When the loss does not decrease**
#
# 1. Did the parameters move at all? If not: the optimizer holds other parameters, or `step()`
#    is missing. If only a little: a higher learning rate.
# 2. Are gradients zero in some layers? Dead ReLUs, a `detach()`, vanishing gradients.
# 3. Are inputs and labels still paired? Is the loss the right one for the task?
#
# **When validation lags behind training**
#
# 1. Is validation data preprocessed exactly like training data, and the model in eval mode?
# 2. Then it is overfitting: more data, augmentation, weight decay, dropout, a smaller model,
#    early stopping.
#
# **When the full data fails where a subset worked**
#
# 1. Anything that scales with the data: summed losses, schedules counted in steps, memory.
# 2. Anything the subset did not contain: corrupt examples, rare classes, another distribution.
#
# **Always:** one change at a time, a config and a log for every run, seeds and generators for
# every random choice, checkpoints with the complete training state.

# %% [markdown]
# ## Concept check (6 points)
#
# Interview-style questions. Answer in the variables below; the tests compute most true
# answers with PyTorch, so you can check them by experiment, but decide first, then try.
#
# 1. `q1_grad`: `x = torch.zeros(3, requires_grad=True)`, then `(torch.sqrt(x) * 0).sum()
#    .backward()`. What is in `x.grad`: `"0"`, `"inf"` or `"nan"`?
# 2. `q2_floor`: a 10-class model ends with `nn.Softmax(dim=1)` and is trained with
#    `nn.CrossEntropyLoss`. What is the smallest loss it can reach on an example (a float)?
# 3. `q3_shape`: a model outputs predictions of shape `(32, 1)`, the targets have shape `(32,)`.
#    What is the shape of `pred - target` (a tuple)?
# 4. `q4_factor`: with `reduction="sum"` instead of `"mean"`, by what factor does the gradient
#    of the loss on a batch of 256 examples grow (a number)?
# 5. `q5_global_changes`: after `torch.manual_seed(0)`, you draw `torch.randperm(10,
#    generator=g)` from your own generator `g`. Does that change what `torch.rand(1)` returns
#    next (a bool)?
# 6. `q6_first_check`: a new model's loss is NaN at step 0, before any parameter update. What
#    do you check first? `"a"`: lower the learning rate; `"b"`: the inputs and targets for NaN
#    or inf values; `"c"`: add gradient clipping; `"d"`: train for more epochs.

# %% nbgrader={"grade": false, "grade_id": "cc12_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_grad = ...  # "0", "inf" or "nan"
q2_floor = ...  # a float
q3_shape = ...  # a tuple
q4_factor = ...  # a number
q5_global_changes = ...  # a bool
q6_first_check = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
q1_grad = "nan"  # d sqrt/dx = inf at 0, and inf * 0 = nan
q2_floor = math.log(1 + 9 / math.e)  # logits in [0, 1]: best is one 1 and nine 0s
q3_shape = (32, 32)  # broadcasting: every prediction against every target
q4_factor = 256  # the sum is 256 times the mean
q5_global_changes = False  # a separate generator has its own state
q6_first_check = "b"  # no update has happened yet: the data or the formula
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc12_test", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
checks.check(q1_grad in ("0", "inf", "nan"), 'q1_grad must be "0", "inf" or "nan".', got=q1_grad)
checks.check_type(q2_floor, (int, float), "q2_floor")
checks.check_type(q3_shape, tuple, "q3_shape")
checks.check_type(q4_factor, (int, float), "q4_factor")
checks.check_type(q5_global_changes, bool, "q5_global_changes")
checks.check(q6_first_check in ("a", "b", "c", "d"), 'q6_first_check must be "a", "b", "c" or "d".',
             got=q6_first_check)
### BEGIN HIDDEN TESTS
x_q = torch.zeros(3, requires_grad=True)
(torch.sqrt(x_q) * 0).sum().backward()
checks.check_equal(q1_grad, str(x_q.grad[0].item()), "q1_grad")
one_hot = torch.eye(10)[:1]  # the best a softmax output can be: probability 1 on the target
checks.check_close(q2_floor, F.cross_entropy(one_hot, torch.tensor([0])).item(), "q2_floor",
                   rtol=1e-4)
checks.check_equal(q3_shape, tuple(torch.broadcast_shapes((32, 1), (32,))), "q3_shape")
w_q = torch.randn(4, requires_grad=True)
x_batch = torch.randn(256, 4)
(g_sum,) = torch.autograd.grad(((x_batch @ w_q) ** 2).sum(), w_q)
(g_mean,) = torch.autograd.grad(((x_batch @ w_q) ** 2).mean(), w_q)
checks.check_close(q4_factor, (g_sum.norm() / g_mean.norm()).item(), "q4_factor", rtol=1e-4)
torch.manual_seed(0)
plain_next = torch.rand(1)
torch.manual_seed(0)
torch.randperm(10, generator=torch.Generator().manual_seed(1))
checks.check_equal(q5_global_changes, not torch.equal(torch.rand(1), plain_next),
                   "q5_global_changes")
# With no update yet, the learning rate, clipping and training length cannot matter: the loss
# at step 0 depends only on the data, the initial weights and the formula.
checks.check_equal(q6_first_check, "b", "q6_first_check")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - Deep-learning bugs are usually **silent**: the program runs and the model is just bad.
#   Make them loud with checks on values (`torch.isfinite`), shapes and gradients.
# - **NaN loss:** at step 0 it is the data or the formula (zero standard deviations, `log(0)`,
#   probabilities fed to the loss); after an explosion it is the learning rate; with a finite
#   loss it is a backward pass through `sqrt`, `log` or a division at 0, which anomaly detection
#   pinpoints.
# - **Flat loss:** ask whether the parameters moved (stale optimizer, lr too low) and whether
#   gradients reach every layer (dead ReLUs, vanishing gradients).
# - **Validation lags:** first rule out preprocessing that differs between splits and a
#   forgotten `model.eval()`; then fight overfitting (more data, regularisation, early stopping).
# - **Small works, full fails:** look for whatever scales with the data (summed losses, schedules
#   counted in steps, memory) and whatever the subset lacked.
# - Climb the ladder: loss at step 0, **overfit one batch**, a small subset, then everything,
#   one change at a time. Hooks and gradient norms per layer show what happens inside.
# - Work so that bugs are rare and runs comparable: small functions with one job, one config
#   object per run, a log of every run, seeds *and* dedicated generators, deterministic
#   algorithms when you need bit-for-bit repeats.
# - A checkpoint that resumes exactly holds the model, optimizer and scheduler states, every
#   RNG state and the counters, and loads with `weights_only=True`.
#
# Next, chapter 13: once training works, how to make it work *well*: hyperparameters,
# schedules, regularisation and monitoring.
