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
# # Chapter 13 — Training best practices
#
# You can build a model and write the loop that trains it. This chapter is about the gap between
# *it trains* and *it trains well*: which knobs to turn first, how to set the learning rate and
# change it during training, how to regularise, how to watch a run while it happens, how to
# choose between models without fooling yourself, and how to search for hyperparameters without
# wasting runs. Every claim is measured here, on the handwritten digits, in seconds.
#
# **What you will learn**
#
# - which hyperparameters matter most, with a measurement rather than a slogan;
# - learning-rate strategies: the range test, warm-up plus cosine decay, the one-cycle policy,
#   written from their formulas and checked against PyTorch's schedulers;
# - how batch size and learning rate interact, and how to pick an architecture by starting small;
# - regularisation: dropout, weight decay (and which parameters *not* to decay), data
#   augmentation, compared on learning curves;
# - monitoring with TensorBoard's `SummaryWriter`, and reading the curves: healthy, overfitting,
#   underfitting, unstable, diverged;
# - honest model selection: train/validation/test splits, and k-fold cross-validation for small
#   data sets;
# - hyperparameter search: grid against random search, compared on the same budget.
#
# **Prerequisites:** chapter 4 (the training loop, optimizers, schedulers, the learning-rate
# finder), chapter 5 (splits, normalisation with training statistics) and chapter 6 (MLPs,
# dropout, weight decay).
#
# **Expected time:** about 2.5 hours, half of it on the seven exercises. The notebook runs top to
# bottom in well under a minute on a laptop CPU.
#
# The exercises sit in the sections they belong to. Write your answer where a cell says
# `# YOUR CODE HERE` (replace the `raise NotImplementedError()`), then run the test cell below it:
# a failing test says what it expected, what it got, and gives a hint. More tests are hidden and
# run when your notebook is graded, so make your code correct, not just green.

# %% [markdown]
# ## Setup
#
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device and sets the plot style. One CPU thread: our models are tiny, and extra threads cost more
# in coordination than they save.

# %%
import copy
import itertools
import math
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.model_selection import KFold, train_test_split
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.optim import lr_scheduler
from torch.utils.tensorboard import SummaryWriter

import helpers
from helpers import checks, data, plot

device = helpers.setup(seed=0, threads=1)
print(f"torch {torch.__version__}, device: {device}")

# %% [markdown]
# ### The data, split three ways
#
# scikit-learn's 1,797 handwritten digits, 8×8 grey pixels flattened to 64 features. We split
# them once, **stratified** (each split keeps the class proportions), into 60 % for training,
# 20 % for validation (every choice in this chapter is made on it) and 20 % for the test set,
# which we look at **once**, at the very end (Section 13.5 says why).

# %%
X_all, y_all = data.digits(flat=True)  # (1797, 64) float32 in [0, 1], (1797,) int64
idx_train, idx_rest = train_test_split(np.arange(len(y_all)), test_size=0.4,
                                       stratify=y_all.numpy(), random_state=0)
idx_val, idx_test = train_test_split(idx_rest, test_size=0.5,
                                     stratify=y_all.numpy()[idx_rest], random_state=0)
X_train, y_train = X_all[idx_train].to(device), y_all[idx_train].to(device)  # (1078, 64), (1078,)
X_val, y_val = X_all[idx_val].to(device), y_all[idx_val].to(device)  # (359, 64), (359,)
X_test, y_test = X_all[idx_test].to(device), y_all[idx_test].to(device)  # (360, 64), (360,)
print(f"train {len(y_train)}, validation {len(y_val)}, test {len(y_test)}")

# %% [markdown]
# Three small tools serve the whole chapter: an MLP factory, an evaluation in eval mode, and a
# training loop (AdamW on cross-entropy, mini-batches reshuffled each epoch by a private
# generator so that runs are reproducible). `schedule(optimizer, total_steps)` may build a
# learning-rate scheduler, stepped after **every batch**; `augment(x, generator)` may transform
# each training batch.

# %%
def make_mlp(hidden=(128,), dropout=0.0):
    """64 pixels -> hidden ReLU layers (each followed by dropout if dropout > 0) -> 10 logits."""
    layers, width = [], 64
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10)).to(device)


@torch.no_grad()
def evaluate(model, X, y):
    """(mean cross-entropy, accuracy) of `model` on (X, y), computed in eval mode."""
    model.eval()
    logits = model(X)  # (N, 10)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


# %%
def train_mlp(model, X, y, *, lr, epochs, batch_size=64, weight_decay=0.0, schedule=None,
              augment=None, val=(X_val, y_val), seed=0):
    """Train with AdamW; return per-epoch train/val losses, val accuracy, and the lr of each step.

    val: the (X, y) to validate on after each epoch, or None to skip validation.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = schedule(opt, epochs * math.ceil(len(X) / batch_size)) if schedule else None
    hist = {"train_loss": [], "val_loss": [], "val_acc": [], "lr": []}
    for _ in range(epochs):
        model.train()
        order, total = torch.randperm(len(X), generator=gen).to(X.device), 0.0
        for batch in order.split(batch_size):
            xb = augment(X[batch], gen) if augment else X[batch]
            loss = F.cross_entropy(model(xb), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            hist["lr"].append(opt.param_groups[0]["lr"])
            if sched:
                sched.step()
            total += loss.item() * len(batch)
        hist["train_loss"].append(total / len(X))
        for key, value in zip(("val_loss", "val_acc"), evaluate(model, *val) if val else ()):
            hist[key].append(value)
    return hist

# %% [markdown]
# ## 13.1 From working to working well
#
# A model that trains is the start, not the end. Between a first run at 90 % and a reliable 98 %
# lie a handful of decisions, and the order in which you make them matters more than any single
# trick:
#
# 1. get a simple baseline working end to end (data, model, loss, evaluation);
# 2. tune the **learning rate** first, then its schedule;
# 3. pick the model size by starting small and growing while it *underfits*;
# 4. regularise once it *overfits*;
# 5. watch every run (curves, not single numbers), and compare models on validation data, never
#    on the test set;
# 6. search the remaining hyperparameters with the budget you have left.
#
# Our baseline: one hidden layer of 128 units, AdamW at its default learning rate, 10 epochs.

# %%
torch.manual_seed(0)
baseline_hist = train_mlp(make_mlp(), X_train, y_train, lr=1e-3, epochs=10)
print(f"baseline: validation accuracy {baseline_hist['val_acc'][-1]:.1%}")

# %% [markdown]
# ## 13.2 Hyperparameter tuning
#
# ### 13.2.1 Which hyperparameters matter most?
#
# A common priority list, from practitioners' experience: (1) the learning rate, (2) the batch
# size, (3) the architecture (width, depth), (4) regularisation (dropout, weight decay), (5) the
# learning-rate schedule, and only then the rest (optimizer, activation, initialisation), which
# usually matter less once the first five are reasonable. Do not take the list on faith: move
# the learning rate over four decades, then the weight decay over four decades, and watch the
# validation accuracy (5 epochs each).

# %%
sweep = {"learning rate": {}, "weight decay": {}}
for lr in [1e-4, 1e-3, 1e-2, 1e-1]:
    torch.manual_seed(0)
    sweep["learning rate"][lr] = train_mlp(make_mlp(), X_train, y_train, lr=lr,
                                           epochs=5)["val_acc"][-1]
for wd in [1e-4, 1e-3, 1e-2, 1e-1]:
    torch.manual_seed(0)
    sweep["weight decay"][wd] = train_mlp(make_mlp(), X_train, y_train, lr=3e-3, epochs=5,
                                          weight_decay=wd)["val_acc"][-1]
for name, accs in sweep.items():
    print(f"{name:14s}: accuracy spread {min(accs.values()):.1%} .. {max(accs.values()):.1%}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
for ax, (name, accs) in zip(axes, sweep.items()):
    ax.semilogx(list(accs), [100 * a for a in accs.values()], marker="o")
    ax.set(title=f"Sweeping the {name}", xlabel=f"{name} (log scale)")
axes[0].set_ylabel("validation accuracy (%)")
fig.suptitle("Four decades of learning rate vs four decades of weight decay (5 epochs each)")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: the learning rate moves the accuracy across a wide range — too small and the
# network has barely started after 5 epochs, too large and it thrashes — while four decades of
# weight decay do not move it at all on this budget. That is why the learning rate is tuned
# first, and why a search should spend most of its budget on it (Section 13.6 measures this
# again).
#
# ### 13.2.2 Learning-rate strategies
#
# **Strategy 1: the learning-rate range test** (Smith, 2017; you wrote one in Exercise 4.4).
# Train for one short pass while raising the learning rate geometrically at every step, from
# $10^{-5}$ to $1$, and record the loss. The loss first barely moves (the rate is too small to
# matter), then falls fast, then explodes. A good learning rate sits on the steep descent,
# well below the explosion. Two common readings: the point of steepest descent of the (smoothed)
# loss, or one tenth of the learning rate at the minimum of the loss.

# %%
def lr_range_test(model, X, y, lr_min=1e-5, lr_max=1.0, steps=120, batch_size=64, seed=0):
    """Raise the lr geometrically, one random batch per step; stop when the loss explodes.

    Trains `model` in place: pass a throwaway copy. Returns (lrs, losses), lists of floats.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr_min)
    losses, model = [], model.train()
    lrs = (lr_min * (lr_max / lr_min) ** torch.linspace(0, 1, steps, dtype=torch.float64)).tolist()
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        batch = torch.randint(len(X), (batch_size,), generator=gen).to(X.device)
        loss = F.cross_entropy(model(X[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > 4 * min(losses):
            break
    return lrs[: len(losses)], losses

# %% [markdown]
# The raw losses are noisy (each comes from a different batch), so we smooth them with an
# exponential moving average, bias-corrected so that the first values are not pulled towards
# zero: $a_i = \beta a_{i-1} + (1-\beta)\ell_i$, reported as $a_i / (1-\beta^i)$.

# %%
def smooth(values, beta=0.9):
    """Bias-corrected exponential moving average of a list of floats."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta**i))
    return out


torch.manual_seed(0)
rt_lrs, rt_losses = lr_range_test(make_mlp(), X_train, y_train)
rt_smooth = np.array(smooth(rt_losses))
slope = np.gradient(rt_smooth, np.log10(rt_lrs))  # d loss / d log10(lr)
lr_steepest = rt_lrs[int(np.argmin(slope[: int(np.argmin(rt_smooth)) + 1]))]
lr_min_over_10 = rt_lrs[int(np.argmin(rt_smooth))] / 10
print(f"steepest descent at lr = {lr_steepest:.1e}; minimum / 10 = {lr_min_over_10:.1e}")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogx(rt_lrs, rt_losses, color="0.75", lw=1, label="loss of each batch")
ax.semilogx(rt_lrs, rt_smooth, lw=2, label="smoothed (EMA, β = 0.9)")
ax.axvline(lr_steepest, color="C2", ls="--", label=f"steepest descent: {lr_steepest:.1e}")
ax.axvline(lr_min_over_10, color="C3", ls=":", label=f"minimum / 10: {lr_min_over_10:.1e}")
ax.set(title="Learning-rate range test, AdamW, one-hidden-layer MLP on digits",
       xlabel="learning rate (log scale)", ylabel="training loss (cross-entropy)",
       ylim=(0, 1.3 * rt_smooth[0]))
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# What to notice: for the first decades the loss sits near $\ln 10 \approx 2.3$ (a uniform guess
# over 10 classes); it drops steeply over roughly one decade, then turns up, and the test stops
# as soon as a batch loss exceeds four times the lowest seen so far. Both readings land in the
# same neighbourhood. The test took about 100 steps — six epochs' worth on our small training
# set, a sliver of one epoch on a large one. Is the reading any good? Train at the suggestion
# and at ten times less and more:

# %%
for lr in [lr_min_over_10 / 10, lr_min_over_10, lr_min_over_10 * 10]:
    torch.manual_seed(0)
    acc = train_mlp(make_mlp(), X_train, y_train, lr=lr, epochs=5)["val_acc"][-1]
    print(f"lr = {lr:.1e}: validation accuracy after 5 epochs {acc:.1%}")

# %% [markdown]
# **Strategy 2: start large, decay.** A large learning rate makes fast progress early; a small
# one settles precisely into a minimum late. PyTorch's `torch.optim.lr_scheduler` has the
# classics (you met them in chapter 4): `StepLR` (divide every $k$ epochs), `ExponentialLR`,
# `CosineAnnealingLR` (a smooth half cosine down to `eta_min`) and `ReduceLROnPlateau` (cut the
# rate when the validation loss stalls; its `step` takes that loss).
#
# **Strategy 3: warm-up, then cosine decay.** The first steps of training are the most
# fragile: the weights are random, gradients large and, with Adam, the second-moment estimates
# are based on a handful of batches. A short linear **warm-up** from a fraction $s$ of the base
# rate to the full rate avoids early blow-ups (it made large-batch SGD work in Goyal et al.,
# 2017, and is standard for transformers). Then a **cosine** decay takes the rate from its peak
# down to a floor $m$ (as a fraction of the base rate). With $W$ warm-up steps and $T$ steps in
# all, the multiplier of the base rate at step $t$ is
#
# $$f(t) = \begin{cases}
#   s + (1 - s)\,\dfrac{t}{W} & 0 \le t < W \\[2mm]
#   m + (1 - m)\,\dfrac{1}{2}\left(1 + \cos\left(\pi\,\dfrac{t - W}{T - W}\right)\right) & W \le t < T \\[2mm]
#   m & t \ge T.
# \end{cases}$$
#
# **Strategy 4: the one-cycle policy** (Smith & Topin, 2018). Warm up from a low rate all the
# way to a *large* peak `max_lr` over the first 30 % of the steps, then anneal to far below the
# start; the momentum moves the opposite way (high when the rate is low, low when the rate is
# high). The large rate in the middle acts as a regulariser and lets training finish in fewer
# epochs. PyTorch has it as `OneCycleLR`.
#
# Schedules are easiest to understand as pictures. Here are four of them over 300 steps, built
# from PyTorch's own schedulers; warm-up plus cosine is `LinearLR` followed by
# `CosineAnnealingLR`, glued by `SequentialLR`.

# %%
def lr_trace(make, steps=300, base_lr=1e-2):
    """Learning rates (and momenta) a scheduler built by make(optimizer) uses at each step."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr, momentum=0.9)
    sched, lrs, moms = make(opt), [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, moms


traces = {
    "constant": lr_trace(lambda o: lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0)),
    "StepLR(100, γ=0.3)": lr_trace(lambda o: lr_scheduler.StepLR(o, 100, gamma=0.3)),
    "warm-up 30 + cosine": lr_trace(lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=30),
        lr_scheduler.CosineAnnealingLR(o, T_max=270, eta_min=1e-4)], milestones=[30])),
    "OneCycleLR(max_lr=0.03)": lr_trace(lambda o: lr_scheduler.OneCycleLR(o, 0.03, total_steps=300)),
}

# %%
fig, (ax_lr, ax_mom) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, (lrs, moms) in traces.items():
    ax_lr.plot(lrs, label=name)
    ax_mom.plot(moms, label=name)
ax_lr.set(title="Learning rate", xlabel="optimizer step", ylabel="learning rate")
ax_mom.set(title="Momentum (only one-cycle changes it)", xlabel="optimizer step",
           ylabel="SGD momentum")
ax_lr.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: warm-up plus cosine climbs for 30 steps, then spends a long time near its peak
# and glides smoothly to its floor — no sudden drops to destabilise training. One-cycle starts at
# `max_lr / 25`, peaks at step 89 (30 % of 300, minus one), and ends at `max_lr / 25 / 10⁴`;
# its momentum mirrors the learning rate between 0.95 and 0.85.
#
# Now write both schedules yourself, from the formulas.

# %% [markdown]
# ### Exercise 13.1 — Warm-up plus cosine decay (★★, 3 points)
#
# **Goal:** write the warm-up + cosine schedule from its formula, then turn it into a PyTorch
# scheduler.
#
# **(a)** Write `warmup_cosine_factor(step, warmup_steps, total_steps, start_factor=0.1,
# min_factor=0.0)` that returns $f(t)$ of the formula above as a Python `float`, with
# $t$ = `step` (an int $\ge 0$), $W$ = `warmup_steps`, $T$ = `total_steps`, $s$ =
# `start_factor`, $m$ = `min_factor`. With $W = 0$ there is no warm-up. Raise a `ValueError`
# whose message names `warmup_steps` unless $0 \le W < T$.
#
# **(b)** Write `warmup_cosine_scheduler(optimizer, warmup_steps, total_steps, start_factor=0.1,
# min_factor=0.0)` that returns a `torch.optim.lr_scheduler.LambdaLR` multiplying the initial
# learning rate of **every** parameter group by $f(t)$ (you step it once per batch).
#
# **Tests check:** (a) against the formula at every step of several settings, with and without
# warm-up, past the end, and the error; (b) the learning rates of an optimizer with two
# parameter groups, step by step, against PyTorch's own
# `SequentialLR([LinearLR(start_factor=s, total_iters=W), CosineAnnealingLR(T_max=T-W,
# eta_min=...)], milestones=[W])`.
#
# **Hints:** `math.cos`, `math.pi`. `LambdaLR(optimizer, lr_lambda=fn)` calls `fn(t)` with the
# step count $t = 0, 1, \dots$ and sets each group's rate to its initial rate times `fn(t)`; so
# (b) is one line: `LambdaLR(optimizer, lambda t: warmup_cosine_factor(t, ...))`.

# %% nbgrader={"grade": false, "grade_id": "ex13_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def warmup_cosine_factor(step, warmup_steps, total_steps, start_factor=0.1, min_factor=0.0):
    """Multiplier of the base learning rate at `step`: linear warm-up, then cosine decay.

    Returns a Python float: start_factor at step 0, 1.0 at step warmup_steps, min_factor from
    step total_steps on. Raises ValueError unless 0 <= warmup_steps < total_steps.
    """
    ### BEGIN SOLUTION
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must satisfy 0 <= warmup_steps < total_steps, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}")
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    if step >= total_steps:
        return float(min_factor)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_1_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _reference_factor(t, W, T, s, m):
    """The formula of the text, written out independently."""
    if t < W:
        return s + (1 - s) * t / W
    if t >= T:
        return m
    return m + (1 - m) * (1 + math.cos(math.pi * (t - W) / (T - W))) / 2


_got = [warmup_cosine_factor(t, 10, 50, 0.1, 0.0) for t in range(55)]
checks.check_type(_got[0], (float, int), "warmup_cosine_factor(0, 10, 50)", hint="return a float")
checks.check_close(_got[0], 0.1, "the factor at step 0 (start of the warm-up)")
checks.check_close(_got[10], 1.0, "the factor at step W = 10 (the peak)")
checks.check_close(torch.tensor(_got, dtype=torch.float64),
                   torch.tensor([_reference_factor(t, 10, 50, 0.1, 0.0) for t in range(55)],
                                dtype=torch.float64),
                   "factors at steps 0..54 (W=10, T=50, s=0.1, m=0)", rtol=1e-9, atol=1e-12,
                   hint="linear from s to 1 for t < W; cosine from 1 to m over T - W steps; m after T")
### BEGIN HIDDEN TESTS
for _W, _T, _s, _m in [(0, 20, 0.1, 0.0), (5, 6, 0.5, 0.2), (3, 40, 0.0, 0.05), (25, 100, 0.01, 0.1)]:
    _got = [warmup_cosine_factor(t, _W, _T, _s, _m) for t in range(_T + 7)]
    _ref = [_reference_factor(t, _W, _T, _s, _m) for t in range(_T + 7)]
    checks.check_close(torch.tensor(_got, dtype=torch.float64), torch.tensor(_ref, dtype=torch.float64),
                       f"factors for W={_W}, T={_T}, s={_s}, m={_m}", rtol=1e-9, atol=1e-12)
checks.check_close(warmup_cosine_factor(7, 4, 10), _reference_factor(7, 4, 10, 0.1, 0.0),
                   "the default start_factor and min_factor", rtol=1e-9)
for _W, _T in [(10, 10), (12, 10), (-1, 10)]:
    _err = checks.check_raises(lambda: warmup_cosine_factor(0, _W, _T), ValueError,
                               f"warmup_cosine_factor(0, {_W}, {_T})")
    checks.check("warmup_steps" in str(_err), "the ValueError should name warmup_steps.",
                 got=str(_err))
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex13_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def warmup_cosine_scheduler(optimizer, warmup_steps, total_steps, start_factor=0.1,
                            min_factor=0.0):
    """A LambdaLR that scales every param group's initial lr by warmup_cosine_factor(step, ...)."""
    ### BEGIN SOLUTION
    return lr_scheduler.LambdaLR(
        optimizer,
        lambda t: warmup_cosine_factor(t, warmup_steps, total_steps, start_factor, min_factor))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def _two_group_optimizer(lrs=(0.1, 0.02)):
    """SGD over two parameter groups with their own learning rates."""
    return torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs],
                           momentum=0.9)


def _lr_history(optimizer, scheduler, steps):
    """The learning rate of every group before each of `steps` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return torch.tensor(out, dtype=torch.float64)  # (steps, groups)


def _pytorch_reference(optimizer, W, T, s, eta_min):
    """PyTorch's own warm-up + cosine: LinearLR, then CosineAnnealingLR."""
    return lr_scheduler.SequentialLR(optimizer, [
        lr_scheduler.LinearLR(optimizer, start_factor=s, total_iters=W),
        lr_scheduler.CosineAnnealingLR(optimizer, T_max=T - W, eta_min=eta_min)], milestones=[W])


_opt = _two_group_optimizer()
_sched = warmup_cosine_scheduler(_opt, 5, 30, start_factor=0.2)
checks.check_type(_sched, lr_scheduler.LRScheduler, "warmup_cosine_scheduler(...)",
                  hint="return lr_scheduler.LambdaLR(optimizer, lambda t: ...)")
_got = _lr_history(_opt, _sched, 31)
_ref_opt = _two_group_optimizer()
_ref = _lr_history(_ref_opt, _pytorch_reference(_ref_opt, 5, 30, 0.2, 0.0), 31)
checks.check_close(_got, _ref, "learning rates of two groups (0.1 and 0.02), steps 0..30, vs "
                   "SequentialLR(LinearLR, CosineAnnealingLR)", rtol=1e-7, atol=1e-12,
                   hint="each group's initial lr times warmup_cosine_factor(t, ...)")
### BEGIN HIDDEN TESTS
_opt = torch.optim.AdamW([nn.Parameter(torch.zeros(3))], lr=3e-3)
_got = _lr_history(_opt, warmup_cosine_scheduler(_opt, 8, 40, 0.05, 0.1), 41)
_ref_opt = torch.optim.AdamW([nn.Parameter(torch.zeros(3))], lr=3e-3)
_ref = _lr_history(_ref_opt, _pytorch_reference(_ref_opt, 8, 40, 0.05, 0.1 * 3e-3), 41)
checks.check_close(_got, _ref, "AdamW lr 3e-3, W=8, T=40, s=0.05, m=0.1", rtol=1e-7, atol=1e-12)
_opt = _two_group_optimizer((0.5, 0.05))
_got = _lr_history(_opt, warmup_cosine_scheduler(_opt, 0, 12), 13)
_ref_opt = _two_group_optimizer((0.5, 0.05))
_ref = _lr_history(_ref_opt, lr_scheduler.CosineAnnealingLR(_ref_opt, T_max=12), 13)
checks.check_close(_got, _ref, "no warm-up (W=0) vs CosineAnnealingLR", rtol=1e-7, atol=1e-12)
_opt = _two_group_optimizer()
_got = _lr_history(_opt, warmup_cosine_scheduler(_opt, 3, 10, 0.1, 0.25), 16)
checks.check_close(_got[10:], torch.tensor([[0.025, 0.005]] * 6, dtype=torch.float64),
                   "the rate after the end of the schedule (floor m times the initial lr)",
                   rtol=1e-7)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 13.2 — The one-cycle policy by hand (★★★, 3 points)
#
# **Goal:** reproduce PyTorch's `OneCycleLR` (cosine annealing, two phases) from its formulas:
# learning rate *and* momentum.
#
# Write `one_cycle(step, total_steps, max_lr, pct_start=0.3, div_factor=25.0,
# final_div_factor=1e4, base_momentum=0.85, max_momentum=0.95)` that returns the pair
# `(lr, momentum)` of Python floats used at optimizer step $t$ = `step`, $0 \le t < T$ =
# `total_steps`. With
#
# - $\eta_0 = \text{max\_lr} / \text{div\_factor}$ (the start), $\eta_{\text{end}} = \eta_0 /
#   \text{final\_div\_factor}$ (the end),
# - the peak at step $t_1 = \text{pct\_start}\cdot T - 1$ (a float) and the last step
#   $t_2 = T - 1$,
# - the cosine interpolation
#   $\text{anneal}(a, b, p) = b + \tfrac12 (a - b)\,(1 + \cos \pi p)$, which goes from $a$ at
#   $p = 0$ to $b$ at $p = 1$,
#
# the schedule is: for $t \le t_1$, with $p = t / t_1$: lr $=$ anneal$(\eta_0, \text{max\_lr}, p)$
# and momentum $=$ anneal(max_momentum, base_momentum, $p$); for $t > t_1$, with
# $p = (t - t_1)/(t_2 - t_1)$: lr $=$ anneal(max_lr, $\eta_{\text{end}}$, $p$) and momentum $=$
# anneal(base_momentum, max_momentum, $p$). Raise a `ValueError` naming `step` unless
# $0 \le t < T$. (You may assume $\text{pct\_start}\cdot T > 1$.)
#
# **Tests check:** every step of several settings against `torch.optim.lr_scheduler.OneCycleLR`
# driving SGD (its `momentum`) and Adam (its `beta1`), and the error.
#
# **Hints:** the momentum is high while the rate is low: it runs from max to base in the first
# phase and back in the second. The peak is at $\text{pct\_start}\cdot T - 1$, not at
# $\text{pct\_start}\cdot T$: with $T = 100$, the rate is largest at step 29.

# %% nbgrader={"grade": false, "grade_id": "ex13_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def one_cycle(step, total_steps, max_lr, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
              base_momentum=0.85, max_momentum=0.95):
    """(lr, momentum) of the one-cycle policy (cosine annealing) at optimizer step `step`."""
    ### BEGIN SOLUTION
    if not 0 <= step < total_steps:
        raise ValueError(f"step must satisfy 0 <= step < total_steps={total_steps}, got {step}")

    def anneal(start, end, p):
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * p))

    lr_start = max_lr / div_factor
    lr_end = lr_start / final_div_factor
    peak, last = pct_start * total_steps - 1, total_steps - 1
    if step <= peak:
        p = step / peak
        return anneal(lr_start, max_lr, p), anneal(max_momentum, base_momentum, p)
    p = (step - peak) / (last - peak)
    return anneal(max_lr, lr_end, p), anneal(base_momentum, max_momentum, p)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_2_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _torch_one_cycle(T, max_lr, adam=False, **kwargs):
    """(T, 2) tensor of (lr, momentum) that PyTorch's OneCycleLR uses at steps 0..T-1."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=max_lr) if adam else torch.optim.SGD([p], lr=max_lr, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=T, **kwargs)
    rows = []
    for t in range(T):
        g = opt.param_groups[0]
        rows.append([g["lr"], g["betas"][0] if adam else g["momentum"]])
        opt.step()
        if t < T - 1:
            sched.step()
    return torch.tensor(rows, dtype=torch.float64)


_got = [one_cycle(t, 100, 0.1) for t in range(100)]
checks.check_type(_got[0], tuple, "one_cycle(0, 100, 0.1)", hint="return (lr, momentum)")
checks.check_close(_got[0][0], 0.1 / 25, "lr at step 0", hint="max_lr / div_factor")
checks.check_close(_got[29][0], 0.1, "lr at step 29 = pct_start * T - 1 (the peak)")
checks.check_close(torch.tensor(_got, dtype=torch.float64), _torch_one_cycle(100, 0.1),
                   "(lr, momentum) at steps 0..99 vs OneCycleLR(max_lr=0.1, total_steps=100)",
                   rtol=1e-7, atol=1e-12,
                   hint="column 0 is the lr, column 1 the momentum; check the phase boundary t1")
### BEGIN HIDDEN TESTS
for _T, _max, _kw in [(37, 0.02, dict(pct_start=0.25)),
                      (200, 1.0, dict(div_factor=10.0, final_div_factor=100.0)),
                      (50, 3e-3, dict(base_momentum=0.8, max_momentum=0.9, pct_start=0.5))]:
    for _adam in (False, True):
        _got = torch.tensor([one_cycle(t, _T, _max, **_kw) for t in range(_T)], dtype=torch.float64)
        checks.check_close(_got, _torch_one_cycle(_T, _max, adam=_adam, **_kw),
                           f"one_cycle for T={_T}, max_lr={_max}, {_kw} ({'Adam' if _adam else 'SGD'})",
                           rtol=1e-7, atol=1e-12)
for _t in (-1, 100, 101):
    _err = checks.check_raises(lambda: one_cycle(_t, 100, 0.1), ValueError, f"one_cycle({_t}, 100, 0.1)")
    checks.check("step" in str(_err), "the ValueError should name step.", got=str(_err))
### END HIDDEN TESTS

# %% [markdown]
# Do schedules pay off? Train the same network for 12 epochs three ways: a constant rate, warm-up
# plus cosine (one epoch of warm-up) and one-cycle, each with the schedule stepped after every
# batch. The scheduled runs may use a higher peak rate because they do not stay there.

# %%
schedule_runs = {
    "constant 3e-3": (3e-3, None),
    "warm-up + cosine, peak 1e-2": (1e-2, lambda o, T: warmup_cosine_scheduler(o, T // 12, T)),
    "one-cycle, max 1e-2": (1e-2, lambda o, T: lr_scheduler.OneCycleLR(o, 1e-2, total_steps=T)),
}
schedule_hists = {}
for name, (lr, schedule) in schedule_runs.items():
    torch.manual_seed(0)
    schedule_hists[name] = train_mlp(make_mlp(), X_train, y_train, lr=lr, epochs=12,
                                     schedule=schedule)
    print(f"{name:28s}: final validation loss {schedule_hists[name]['val_loss'][-1]:.3f}, "
          f"accuracy {schedule_hists[name]['val_acc'][-1]:.1%}")

# %%
fig, (ax_lr, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, hist in schedule_hists.items():
    ax_lr.plot(hist["lr"], label=name)
    ax_val.plot(range(1, 13), hist["val_loss"], marker="o", ms=3, label=name)
ax_lr.set(title="Learning rate used at each step", xlabel="optimizer step", ylabel="learning rate")
ax_val.set(title="Validation loss", xlabel="epoch", ylabel="cross-entropy")
ax_val.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: the scheduled runs end with the lowest validation loss — the last epochs at a
# small rate average out the noise of the mini-batches and settle into the minimum. The constant
# rate keeps bouncing at the level of noise its rate allows. On a tiny problem the differences
# are small; on long runs schedules regularly make the difference between a good and a best
# result.
#
# ### 13.2.3 Batch size
#
# The batch size sets how many examples average into one gradient. Larger batches give less
# noisy gradients and use the hardware better (fewer, bigger matrix products), but take fewer
# steps per epoch; smaller ones are noisier, and that noise is often said to help generalisation.
# Two heuristics link it to the learning rate: for SGD, the **linear scaling rule** (Goyal et
# al., 2017): multiply the batch by $k$, multiply the rate by $k$ (with a warm-up); for Adam, a
# **square-root rule** is closer to what works (Malladi et al., 2022). Both are starting points,
# not laws. (The seed text of this chapter recommends both at once; they disagree by
# $\sqrt{k}$.) Train for a fixed 8 epochs at four batch sizes, with the rate fixed at 3e-3 for
# a batch of 64 and, for the other sizes, kept fixed, scaled by the square root of the size
# ratio, or scaled linearly:

# %% tags=["autograde-skip"]
print(f"{'batch':>5s} {'steps':>5s} {'s/run':>6s} | validation accuracy with lr: "
      f"{'fixed':>6s} {'sqrt':>6s} {'linear':>6s}")
for bs in [16, 64, 256, 1024]:
    accs = []
    for lr in [3e-3, 3e-3 * math.sqrt(bs / 64), 3e-3 * bs / 64]:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        hist = train_mlp(make_mlp(), X_train, y_train, lr=lr, epochs=8, batch_size=bs)
        accs.append(hist["val_acc"][-1])
        seconds = time.perf_counter() - t0
    steps = 8 * math.ceil(len(X_train) / bs)
    print(f"{bs:5d} {steps:5d} {seconds:5.2f}s | {'':28s}"
          f"{accs[0]:6.1%} {accs[1]:6.1%} {accs[2]:6.1%}")

# %% [markdown]
# What to notice: with a fixed rate, a large batch makes far fewer steps in the same number of
# epochs and ends far behind; scaling the rate up with the batch closes the gap at 256 (with
# the bolder linear rule) and part of it at 1,024, where 16 steps in all are simply too few. The
# smallest batch does best per epoch here but takes several times longer per epoch than a
# batch of 64: the hardware works on more, smaller pieces. A batch of 32 to 256 is a sensible
# start; when memory limits the batch, gradient accumulation (chapter 14) adds small batches up
# to a large one.
#
# ### 13.2.4 Choosing the architecture: start small, scale up
#
# Width (units per layer) and depth (number of layers) set the capacity. Start with a model that
# trains in seconds; if it **underfits** (training loss stays high), grow it; once it
# **overfits** (training loss far below validation loss), regularise it or get more data.
# Compare five sizes on the same budget:

# %% tags=["autograde-skip"]
for hidden in [(), (32,), (128,), (128, 128), (512, 512)]:
    torch.manual_seed(0)
    model = make_mlp(hidden)
    t0 = time.perf_counter()
    hist = train_mlp(model, X_train, y_train, lr=3e-3, epochs=10)
    seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    train_acc = evaluate(model, X_train, y_train)[1]
    print(f"hidden {str(hidden):12s} {n_params:7,d} parameters, {seconds:4.1f} s: "
          f"train {train_acc:6.1%}, validation {hist['val_acc'][-1]:6.1%}")

# %% [markdown]
# What to notice: with this budget of 10 epochs, every model but the largest still fits its own
# training set imperfectly — they *underfit* — and validation accuracy climbs with capacity all
# the way to two layers of 512, which has 30 times the parameters of one layer of 128 and costs
# several times more per epoch. As long as the training accuracy is not near 100 %, growing the
# model (or training longer) is the move; once training accuracy saturates and validation
# stops following, it is time to regularise. For images and sequences the bigger wins come from
# the right *kind* of architecture (convolutions, residual connections, attention: chapters
# 7–11), not from width alone; deep networks train well only with skip connections and
# normalisation.

# %% [markdown]
# ## 13.3 Regularisation
#
# Regularisation trades a little training fit for better generalisation. Three tools cover most
# needs; we first see each one work, then compare them on learning curves.
#
# ### 13.3.1 Dropout
#
# `nn.Dropout(p)` zeroes each activation with probability $p$ during training and scales the
# survivors by $1/(1-p)$, so that the expected activation is unchanged; in eval mode it does
# nothing. The network cannot rely on any single unit, which acts like training an ensemble of
# thinned networks. Typical rates: 0.1–0.3 after convolutions or in transformers, up to 0.5 in
# large fully connected layers.

# %%
drop = nn.Dropout(p=0.5)
ones = torch.ones(1, 8)
torch.manual_seed(0)
print("train mode:", drop.train()(ones).tolist()[0])
print("eval mode: ", drop.eval()(ones).tolist()[0])

# %% [markdown]
# ### 13.3.2 Weight decay, and why AdamW
#
# An L2 penalty $\tfrac{\lambda}{2}\lVert w \rVert^2$ added to the loss adds $\lambda w$ to the
# gradient. With plain SGD that is the same as shrinking every weight by the factor
# $(1 - \eta\lambda)$ at each step — hence the name *weight decay*. With Adam the two are **not**
# the same: `torch.optim.Adam(weight_decay=λ)` adds $\lambda w$ to the gradient, and Adam then
# divides the gradient by its running scale, which undoes the "proportional to $w$" part.
# `torch.optim.AdamW` **decouples** the decay (Loshchilov & Hutter, 2019): it shrinks the
# weights by $(1 - \eta\lambda)$ directly, then takes the Adam step. One step from
# $w = (1, 10)$ with a zero loss gradient shows the difference:

# %%
for optimizer_class in (torch.optim.Adam, torch.optim.AdamW):
    w = nn.Parameter(torch.tensor([1.0, 10.0]))
    opt = optimizer_class([w], lr=0.1, weight_decay=0.01)
    w.grad = torch.zeros(2)  # the loss itself does not care about w here
    opt.step()
    print(f"{optimizer_class.__name__:5s}: w after one step = {w.detach().tolist()}")

# %% [markdown]
# `Adam` moved both weights by the same 0.1 — the L2 gradient got normalised away into a
# fixed-size step — while `AdamW` shrank both by the same 0.1 %, which is what decay means. Use
# AdamW (its default `weight_decay` is 0.01; useful values run from about $10^{-4}$ to $10^{-1}$).
#
# Which parameters should be decayed? Decay pulls weights towards zero. That limits the
# capacity of weight matrices and convolution kernels, which is the point; but biases and the
# gain and shift of normalisation layers do not add capacity, and pulling a LayerNorm gain
# towards zero just shrinks a layer's output. Common practice (BERT, nanoGPT, much modern
# training code) therefore decays only the tensors with two or more dimensions. AdamW takes
# **parameter groups**: a list of dicts, each with its own `params` and settings.

# %% [markdown]
# ### Exercise 13.3 — Which parameters to decay (★★, 3 points)
#
# **Goal:** build AdamW parameter groups that decay weight matrices and kernels and spare biases
# and normalisation parameters.
#
# Write `decay_param_groups(model, weight_decay)` that returns a list of two dicts,
# `[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]`:
#
# - `decay`: the parameters with **two or more** dimensions (weights of `Linear`, kernels of
#   `Conv`, tables of `Embedding`);
# - `no_decay`: the parameters with fewer (biases, the weight and bias of `BatchNorm` and
#   `LayerNorm`);
# - only parameters with `requires_grad=True`; each parameter exactly once, even one shared by
#   two layers; both lists in the order of `model.parameters()`.
#
# **Tests check:** which parameter lands in which group (by identity, not by value) on a small
# model and on one with convolution, batch norm, layer norm, embedding, a frozen layer and a
# weight shared by two layers; the `weight_decay` values; and that one AdamW step with zero
# gradients shrinks exactly the decayed parameters, by the factor $(1 - \text{lr}\cdot\lambda)$.
#
# **Hints:** `model.parameters()` already yields a shared parameter once. `p.ndim` is the number
# of dimensions. Sorting by name (`"bias" in name`) misses the weight of a `LayerNorm`, which is
# 1-D.

# %% nbgrader={"grade": false, "grade_id": "ex13_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decay_param_groups(model, weight_decay):
    """Two AdamW parameter groups: tensors with ndim >= 2 decayed, the others not.

    Returns [{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}].
    """
    ### BEGIN SOLUTION
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_3_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _ids(params):
    return [id(p) for p in params]


def _check_groups(groups, model, decay, no_decay, wd, label):
    """Groups by identity and order, their weight_decay, and one AdamW step with zero gradients."""
    checks.check_type(groups, list, f"decay_param_groups({label})")
    checks.check_equal(len(groups), 2, f"number of groups for {label}")
    checks.check_equal(_ids(groups[0]["params"]), _ids(decay), f"the decayed parameters of {label}",
                       hint="parameters with p.ndim >= 2 that require grad, in model.parameters() order")
    checks.check_equal(_ids(groups[1]["params"]), _ids(no_decay), f"the non-decayed parameters of {label}",
                       hint="biases and normalisation parameters (p.ndim < 2) that require grad")
    checks.check_equal([groups[0]["weight_decay"], groups[1]["weight_decay"]], [wd, 0.0],
                       f"the weight_decay of the two groups of {label}")
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    torch.optim.AdamW(groups, lr=0.1).step()
    decayed = set(_ids(decay))
    for p, b in zip(model.parameters(), before):
        factor = 1 - 0.1 * wd if id(p) in decayed else 1.0
        checks.check_close(p.detach(), b * factor, f"a parameter of shape {tuple(p.shape)} after one "
                           f"AdamW step with zero gradients ({label})", rtol=1e-6, atol=1e-7)


torch.manual_seed(0)
_model = nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 10))
_l0, _ln, _l3 = _model[0], _model[1], _model[3]
_check_groups(decay_param_groups(_model, 0.5), _model, [_l0.weight, _l3.weight],
              [_l0.bias, _ln.weight, _ln.bias, _l3.bias], 0.5, "Linear-LayerNorm-ReLU-Linear")
### BEGIN HIDDEN TESTS
class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.conv = nn.Conv1d(6, 4, 3)
        self.bn = nn.BatchNorm1d(4)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)
        self.ln = nn.LayerNorm(4)
        self.head = nn.Linear(4, 6, bias=False)
        self.out = nn.Linear(6, 10)
        self.out.weight = self.emb.weight  # tied: one parameter used by two layers


torch.manual_seed(1)
_m = _Mixed()
_check_groups(decay_param_groups(_m, 0.05), _m, [_m.emb.weight, _m.conv.weight, _m.head.weight],
              [_m.conv.bias, _m.bn.weight, _m.bn.bias, _m.ln.weight, _m.ln.bias, _m.out.bias],
              0.05, "a model with embedding, conv, norms, a frozen layer and tied weights")
_m2 = nn.Linear(3, 2, bias=False)
_check_groups(decay_param_groups(_m2, 1e-3), _m2, [_m2.weight], [], 1e-3, "Linear without bias")
### END HIDDEN TESTS

# %% [markdown]
# ### 13.3.3 Data augmentation
#
# Augmentation makes more training data out of the data you have, by transformations that keep
# the label. Which ones do depends on the data: for photos, flips, crops and colour jitter; for
# handwritten digits a horizontal flip is *wrong* (a mirrored 2 is not a 2), and so are large
# rotations (a 6 becomes a 9). Small shifts are safe. Augment the training batches only, never
# the validation or test data: those must measure the task as it is. Our augmentation shifts
# half of the images of each batch (like torchvision's `RandomApply(..., p=0.5)`), so that the
# network still sees the digits as they are most of the time.

# %%
def random_shift(x, generator, max_shift=1, p=0.5):
    """Shift each flattened 8x8 image, with probability p, by up to max_shift pixels in each
    direction (zeros fill in). x: (B, 64) -> (B, 64); a new tensor, x is left alone."""
    B, s = len(x), max_shift
    padded = F.pad(x.view(B, 8, 8), (s, s, s, s))  # (B, 8 + 2s, 8 + 2s)
    dy, dx = torch.randint(0, 2 * s + 1, (2, B), generator=generator).to(x.device)  # (B,) each
    rows = (dy[:, None] + torch.arange(8, device=x.device))[:, :, None]  # (B, 8, 1)
    cols = (dx[:, None] + torch.arange(8, device=x.device))[:, None, :]  # (B, 1, 8)
    moved = padded[torch.arange(B, device=x.device)[:, None, None], rows, cols].reshape(B, 64)
    pick = (torch.rand(B, generator=generator) < p).to(x.device)[:, None]  # (B, 1)
    return torch.where(pick, moved, x)


shifted = random_shift(X_train[:8], torch.Generator().manual_seed(0), p=1.0)
plot.image_grid(torch.cat([X_train[:8], shifted]).view(16, 8, 8), ncols=8,
                title="Top: training digits; bottom: the same digits, randomly shifted by ≤ 1 pixel")
plt.show()

# %% [markdown]
# ### 13.3.4 Regularisation on learning curves
#
# Regularisation shows its worth when data is scarce. Take only 100 training images (10 per
# class on average) and a generous network (two hidden layers of 256), trained full-batch for
# 150 epochs, five ways: without regularisation, with dropout 0.5, with AdamW weight decay 1.0
# (on this short run a strong value is needed to matter), with shift augmentation, and with all
# three. Validation is the usual 359 images.

# %% tags=["autograde-skip"]
X_small, y_small = X_train[:100], y_train[:100]
reg_variants = {  # name -> (dropout, weight decay, augmentation)
    "none": (0.0, 0.0, None), "dropout 0.5": (0.5, 0.0, None),
    "weight decay 1.0": (0.0, 1.0, None), "shift augmentation": (0.0, 0.0, random_shift),
    "all three": (0.5, 1.0, random_shift),
}
reg_hists = {}
for name, (p, wd, aug) in reg_variants.items():
    torch.manual_seed(0)
    reg_hists[name] = train_mlp(make_mlp((256, 256), dropout=p), X_small, y_small, lr=3e-3,
                                epochs=150, batch_size=100, weight_decay=wd, augment=aug)
    h = reg_hists[name]
    print(f"{name:18s}: train loss {h['train_loss'][-1]:.3f}, val loss best {min(h['val_loss']):.3f} "
          f"/ final {h['val_loss'][-1]:.3f}, val accuracy {h['val_acc'][-1]:.1%}")

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 5, figsize=(15, 3.4), sharey=True)
for ax, (name, h) in zip(axes, reg_hists.items()):
    ax.plot(range(1, 151), h["train_loss"], "--", label="training (100 images)")
    ax.plot(range(1, 151), h["val_loss"], label="validation (359 images)")
    ax.axhline(min(h["val_loss"]), color="0.6", lw=0.8, ls=":")
    ax.set(title=name, xlabel="epoch", ylim=(0, 1.2))
axes[0].set_ylabel("cross-entropy")
axes[0].legend(fontsize=8)
fig.suptitle("Learning curves on 100 training images; dotted: the lowest validation loss")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: without regularisation the training loss collapses to nearly zero while the
# validation loss bottoms out after about 25 epochs and then **climbs** and stays up — the
# network has memorised 100 images and grows ever more confident, also where it is wrong. Each
# regulariser keeps the training loss off the floor and reaches a lower validation minimum than
# no regularisation: weight decay holds its validation loss near the minimum to the end;
# dropout and augmentation (the lowest minimum of all) drift up again late in training, and
# early stopping — keeping the checkpoint with the best validation loss — would collect their
# gain. All three together keep the training loss highest and fall slowest, reaching the level
# of the best runs only near the end: a bigger dose is not a better one. (Its training loss even
# sits above the validation loss: it is measured with dropout on and on shifted images, the
# validation loss without either.) Regularisation is
# tuned on validation data like any other hyperparameter.

# %% [markdown]
# ## 13.4 Training monitoring
#
# ### 13.4.1 What to track
#
# Track at least, every epoch: the training loss, the validation loss, the validation metric
# you care about, and the learning rate. Useful as well: the gradient norm (spikes warn of
# instability), weight norms, time per epoch, memory. A single final number hides almost
# everything that went wrong; curves show it.
#
# **TensorBoard** is the standard viewer. `torch.utils.tensorboard.SummaryWriter(log_dir)`
# writes *event files* into `log_dir`; `add_scalar(tag, value, global_step)` appends one point
# to the curve named `tag` (a `/` in the tag groups curves into sections). In a project you would
# log to `runs/<experiment name>` and run `tensorboard --logdir runs` in a terminal (or
# `%load_ext tensorboard` then `%tensorboard --logdir runs` in Jupyter) to see every run side by
# side. Here we write to a temporary folder and read the events back with TensorBoard's own
# reader, `EventAccumulator`, so that this notebook runs anywhere.

# %%
def read_scalars(log_dir):
    """{tag: [(step, value), ...]} of every scalar logged in the event files of log_dir."""
    events = EventAccumulator(log_dir)
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


log_root = tempfile.mkdtemp(prefix="ch13_runs_")  # in a project: "runs"
writer = SummaryWriter(f"{log_root}/demo")
for step in range(4):
    writer.add_scalar("demo/square", step**2, global_step=step)
writer.close()  # flushes the buffered events to disk
print(read_scalars(f"{log_root}/demo"))

# %% [markdown]
# ### Exercise 13.4 — Log a training run to TensorBoard (★★★, 4 points)
#
# **Goal:** a training loop that logs what you need to judge a run, in a format TensorBoard reads.
#
# Write `train_logged(model, optimizer, train_batches, X_val, y_val, log_dir, epochs,
# scheduler=None)` that opens a `SummaryWriter(log_dir)` and, for each epoch $e = 0, \dots,$
# `epochs` $- 1$:
#
# 1. reads the learning rate of the epoch, `optimizer.param_groups[0]["lr"]`, before training;
# 2. puts the model in training mode and, for each `(xb, yb)` in `train_batches` (a list of
#    batches, used in the same order every epoch): zeroes the gradients, computes
#    `F.cross_entropy(model(xb), yb)`, backpropagates, computes the **global gradient norm**
#    $\sqrt{\sum_p \lVert \nabla_p \mathcal{L} \rVert^2}$ over all parameters that have a
#    gradient, and takes the optimizer step;
# 3. in eval mode and without gradients, computes the cross-entropy and the accuracy on
#    `(X_val, y_val)`;
# 4. logs with `writer.add_scalar(tag, value, e)` — the step is the epoch index $e$ — these five
#    tags (`LOG_TAGS`):
#    - `"loss/train"`: the mean training loss over the epoch's examples (weight each batch's
#      loss by its size: the last batch may be smaller),
#    - `"loss/val"` and `"accuracy/val"`: from 3,
#    - `"lr"`: the rate read in 1,
#    - `"grad_norm"`: the mean over the epoch's batches of the global gradient norm;
# 5. calls `scheduler.step()` if a scheduler was given.
#
# At the end, close the writer (until then, events may sit in its buffer) and return `history`,
# a dict mapping each of the five tags to the list of its `epochs` values (Python floats).
#
# **Tests check:** the event files in `log_dir`, read back with `EventAccumulator`: the five
# tags, steps $0, \dots,$ `epochs` $-1$, values equal to your `history`; and every value against
# a reference loop run on an identical copy of the model (same initial weights, same dropout
# random numbers), with and without a scheduler. The test model contains dropout, so do not
# draw other random numbers inside the function.
#
# **Hints:** `torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))` is the
# global norm; `nn.utils.clip_grad_norm_(model.parameters(), float("inf"))` returns it too (and
# clips nothing). Without `model.eval()` the validation numbers would be computed with dropout
# on. `writer.close()`.

# %%
LOG_TAGS = ("loss/train", "loss/val", "accuracy/val", "lr", "grad_norm")

# %% nbgrader={"grade": false, "grade_id": "ex13_4_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_logged(model, optimizer, train_batches, X_val, y_val, log_dir, epochs, scheduler=None):
    """Train for `epochs` epochs, logging LOG_TAGS once per epoch to TensorBoard in `log_dir`.

    Returns {tag: [one float per epoch]} for the five tags of LOG_TAGS.
    """
    ### BEGIN SOLUTION
    writer = SummaryWriter(log_dir)
    history = {tag: [] for tag in LOG_TAGS}
    for epoch in range(epochs):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        total, count, norms = 0.0, 0, []
        for xb, yb in train_batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack(grads)).item())
            optimizer.step()
            total, count = total + loss.item() * len(yb), count + len(yb)
        model.eval()
        with torch.no_grad():
            logits = model(X_val)  # (N, classes)
            val_loss = F.cross_entropy(logits, y_val).item()
            val_acc = (logits.argmax(dim=1) == y_val).float().mean().item()
        values = [total / count, val_loss, val_acc, lr, sum(norms) / len(norms)]
        for tag, value in zip(LOG_TAGS, values):
            writer.add_scalar(tag, value, epoch)
            history[tag].append(float(value))
        if scheduler is not None:
            scheduler.step()
    writer.close()
    return history
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

_TAGS = ("loss/train", "loss/val", "accuracy/val", "lr", "grad_norm")


def _events_of(log_dir):
    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _logged_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)).to(device)


def _check_events(history, log_dir, epochs, label):
    checks.check_type(history, dict, "the history returned by train_logged")
    checks.check_equal(sorted(history), sorted(_TAGS), "the keys of history")
    events = _events_of(log_dir)
    checks.check_equal(sorted(events), sorted(_TAGS), f"the tags in the event files ({label})",
                       hint="writer.add_scalar(tag, value, epoch) for each tag; writer.close() at the end")
    for tag in _TAGS:
        checks.check_equal([s for s, _ in events[tag]], list(range(epochs)), f'the steps logged for "{tag}"',
                           hint="the global_step is the epoch index 0, 1, ...")
        checks.check_equal(len(history[tag]), epochs, f'len(history["{tag}"])')
        checks.check_close(torch.tensor([v for _, v in events[tag]], dtype=torch.float64),
                           torch.tensor(history[tag], dtype=torch.float64),
                           f'the logged "{tag}" values vs history["{tag}"]', rtol=1e-6, atol=1e-7)


_batches = [(X_train[i:i + 64], y_train[i:i + 64]) for i in range(0, 300, 64)]  # 4 x 64 + 44
_model = _logged_model(0)
_opt = torch.optim.SGD(_model.parameters(), lr=0.1, momentum=0.9)
with tempfile.TemporaryDirectory() as _dir:
    _hist = train_logged(_model, _opt, _batches, X_val, y_val, _dir, 3)
    _check_events(_hist, _dir, 3, "SGD, 3 epochs")
checks.check(_hist["loss/train"][-1] < _hist["loss/train"][0], "the training loss did not go down.",
             "a decreasing loss", _hist["loss/train"], hint="zero_grad, backward, step for every batch")
### BEGIN HIDDEN TESTS
_model = _logged_model(1)
_opt = torch.optim.Adam(_model.parameters(), lr=0.01)
with tempfile.TemporaryDirectory() as _dir:
    _hist = train_logged(_model, _opt, _batches[:2], X_val[:50], y_val[:50], _dir, 5,
                         scheduler=lr_scheduler.StepLR(_opt, step_size=2, gamma=0.5))
    _check_events(_hist, _dir, 5, "Adam with StepLR, 5 epochs")
checks.check_close(torch.tensor(_hist["lr"]), torch.tensor([0.01, 0.01, 0.005, 0.005, 0.0025]),
                   "the logged learning rates under StepLR(step_size=2, gamma=0.5)", rtol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex13_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _reference_run(model, optimizer, batches, Xv, yv, epochs, scheduler=None):
    """An independent loop that computes what train_logged should log."""
    out = {tag: [] for tag in _TAGS}
    for _ in range(epochs):
        out["lr"].append(optimizer.param_groups[0]["lr"])
        model.train()
        total, norms = 0.0, []
        for xb, yb in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            squares = [float((p.grad.double() ** 2).sum()) for p in model.parameters()]
            norms.append(math.sqrt(sum(squares)))
            optimizer.step()
            total += loss.item() * len(yb)
        out["loss/train"].append(total / sum(len(yb) for _, yb in batches))
        out["grad_norm"].append(sum(norms) / len(norms))
        model.eval()
        with torch.no_grad():
            logits = model(Xv)
        out["loss/val"].append(F.cross_entropy(logits, yv).item())
        out["accuracy/val"].append((logits.argmax(1) == yv).double().mean().item())
        if scheduler is not None:
            scheduler.step()
    return out


def _compare_with_reference(seed, make_opt, make_sched, batches, Xv, yv, epochs, label):
    model = _logged_model(seed)
    twin = copy.deepcopy(model)
    opt, twin_opt = make_opt(model), make_opt(twin)
    with tempfile.TemporaryDirectory() as log_dir:
        torch.manual_seed(100)
        history = train_logged(model, opt, batches, Xv, yv, log_dir, epochs, make_sched(opt))
        events = _events_of(log_dir)
    torch.manual_seed(100)
    ref = _reference_run(twin, twin_opt, batches, Xv, yv, epochs, make_sched(twin_opt))
    for tag in _TAGS:
        checks.check(tag in events, f'the tag "{tag}" is missing from the event files ({label}).')
        checks.check_close(torch.tensor([v for _, v in events[tag]], dtype=torch.float64),
                           torch.tensor(ref[tag], dtype=torch.float64), f'logged "{tag}" ({label})',
                           rtol=1e-4, atol=1e-6,
                           hint={"loss/train": "weight each batch loss by its size",
                                 "loss/val": "model.eval() and torch.no_grad() for validation",
                                 "accuracy/val": "model.eval(); the fraction of argmax == label",
                                 "lr": "read the lr before the epoch's steps; scheduler.step() after",
                                 "grad_norm": "sqrt of the sum of squared gradient entries of all "
                                              "parameters, after backward, before step; mean over batches",
                                 }[tag])
    for p, q in zip(model.parameters(), twin.parameters()):
        checks.check_close(p.detach(), q.detach(), f"the trained weights ({label})", rtol=1e-4, atol=1e-6)


_compare_with_reference(0, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
                        lambda o: None, _batches, X_val, y_val, 3, "SGD, 3 epochs")
### BEGIN HIDDEN TESTS
_compare_with_reference(2, lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3),
                        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4), _batches[1:], X_val[100:],
                        y_val[100:], 4, "AdamW with cosine annealing, 4 epochs")
_compare_with_reference(3, lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
                        lambda o: lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
                        [(X_train[:7], y_train[:7]), (X_train[7:100], y_train[7:100])],
                        X_val, y_val, 3, "SGD with StepLR, batches of 7 and 93")
### END HIDDEN TESTS

# %% [markdown]
# Your function on a real run: the digits MLP with dropout 0.2, AdamW at 3e-3 with a cosine
# schedule stepped each epoch, 15 epochs. Everything in the plots below is read back from the
# event files — exactly what TensorBoard would draw.

# %%
torch.manual_seed(0)
monitored = make_mlp((128,), dropout=0.2)
mon_opt = torch.optim.AdamW(monitored.parameters(), lr=3e-3)
mon_batches = list(zip(X_train.split(64), y_train.split(64)))
train_logged(monitored, mon_opt, mon_batches, X_val, y_val, f"{log_root}/mlp", 15,
             lr_scheduler.CosineAnnealingLR(mon_opt, T_max=15))
logged = read_scalars(f"{log_root}/mlp")

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
for tag in ("loss/train", "loss/val"):
    axes[0].plot(*zip(*logged[tag]), marker="o", ms=3, label=tag)
axes[0].set(title="Losses", xlabel="epoch", ylabel="cross-entropy")
axes[0].legend(fontsize=8)
for ax, tag, label in zip(axes[1:], ("accuracy/val", "lr", "grad_norm"),
                          ("accuracy", "learning rate", "global gradient norm")):
    ax.plot(*zip(*logged[tag]), marker="o", ms=3)
    ax.set(title=tag, xlabel="epoch", ylabel=label)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: both losses fall together and the gap stays small — a healthy run. The
# validation loss sits *below* the training loss in the first epochs: the training loss is
# averaged over an epoch in which the model was still improving, and it is measured with
# dropout on, while validation uses the end-of-epoch model without dropout. The learning rate
# follows its half cosine, and the gradient norm shrinks as the loss does.
#
# ### 13.4.2 Recognising training issues from curves
#
# | pattern | training loss | validation loss | usual remedy |
# |---|---|---|---|
# | healthy | falls smoothly | falls, tracks training | keep going |
# | overfitting | very low, still falling | reached a minimum, now rising | regularise, more data, stop early |
# | underfitting | stays high | high, close to training | bigger model, longer, less regularisation |
# | unstable | oscillates | oscillates | lower learning rate, warm-up, gradient clipping |
# | diverged | NaN, or ends above where it started | — | much lower learning rate; check data and loss |
#
# Judging by eye is fine for one run; for fifty runs, or to stop a bad run automatically, write
# the rules down.

# %% [markdown]
# ### Exercise 13.5 — Read the curves (★★, 3 points)
#
# **Goal:** turn the table above into code that labels a run from its per-epoch losses.
#
# Write `diagnose(train_losses, val_losses, high_loss, tol=0.1)`. The inputs are sequences
# (lists or 1-D tensors) of the same length $n \ge 2$ (else raise a `ValueError`); `high_loss`
# is the training loss above which a run has not learned enough (the caller chooses it). Apply
# these rules **in this order** and return the first label that fits:
#
# 1. `"diverged"`: some loss (training or validation) is not finite, or the last training loss
#    is greater than the first;
# 2. `"unstable"`: the training loss jumped up by more than the fraction `tol` from one epoch to
#    the next (`train[e] > (1 + tol) * train[e-1]`) in at least a third of the $n - 1$
#    transitions (small wiggles, such as those dropout causes, do not count);
# 3. `"underfitting"`: the last training loss is greater than `high_loss`;
# 4. `"overfitting"`: the last validation loss is greater than $(1 + \text{tol})$ times the
#    smallest validation loss;
# 5. otherwise `"healthy"`.
#
# **Tests check:** one made-up run of each kind, runs that fit several rules (the order
# decides), the exact boundaries of rules 2 and 4, lists and tensors, and the errors.
#
# **Hints:** `torch.as_tensor(x, dtype=torch.float64)`; `torch.isfinite(t).all()`;
# `(t[1:] > (1 + tol) * t[:-1]).sum()` counts the jumps. "At least a third" is
# `3 * jumps >= n - 1` (integers, no rounding trouble).

# %% nbgrader={"grade": false, "grade_id": "ex13_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diagnose(train_losses, val_losses, high_loss, tol=0.1):
    """Label a run "diverged", "unstable", "underfitting", "overfitting" or "healthy"."""
    ### BEGIN SOLUTION
    train = torch.as_tensor(train_losses, dtype=torch.float64)
    val = torch.as_tensor(val_losses, dtype=torch.float64)
    if train.ndim != 1 or val.shape != train.shape or len(train) < 2:
        raise ValueError(f"train_losses and val_losses must be 1-D of equal length >= 2, got "
                         f"shapes {tuple(train.shape)} and {tuple(val.shape)}")
    n = len(train)
    if not (torch.isfinite(train).all() and torch.isfinite(val).all()) or train[-1] > train[0]:
        return "diverged"
    jumps = int((train[1:] > (1 + tol) * train[:-1]).sum())
    if 3 * jumps >= n - 1:
        return "unstable"
    if train[-1] > high_loss:
        return "underfitting"
    if val[-1] > (1 + tol) * val.min():
        return "overfitting"
    return "healthy"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_5_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_e = torch.arange(20, dtype=torch.float64)
_healthy_t = 2.3 * 0.8**_e + 0.02
_cases = {  # label -> (train, val): one clear run of each kind
    "healthy": (_healthy_t, _healthy_t + 0.05),
    "overfitting": (_healthy_t, 0.3 + 0.004 * (_e - 8) ** 2),
    "underfitting": (2.3 - 0.05 * _e, 2.35 - 0.05 * _e),
    "unstable": (1.5 - 0.05 * _e + 0.3 * (_e % 2), 1.6 - 0.05 * _e + 0.3 * (_e % 2)),
    "diverged": (torch.cat([_healthy_t[:10], torch.full((10,), float("nan"))]), _healthy_t + 0.05),
}
for _label, (_t, _v) in _cases.items():
    checks.check_equal(diagnose(_t.tolist(), _v.tolist(), high_loss=0.5), _label,
                       f"diagnose(...) of a made-up {_label} run",
                       hint="apply the five rules in order; see the table above")
### BEGIN HIDDEN TESTS
for _label, (_t, _v) in _cases.items():
    checks.check_equal(diagnose(_t, _v, 0.5), _label, f"diagnose of the {_label} run given as tensors")
checks.check_equal(diagnose([1.0, 0.8, 1.2], [1.0, 0.9, 1.0], 2.0), "diverged",
                   "a run that ends above its start (rule 1 comes first)")
checks.check_equal(diagnose([1.0, 0.5], [1.0, float("inf")], 2.0), "diverged",
                   "an infinite validation loss")
checks.check_equal(diagnose(_cases["underfitting"][0], _cases["overfitting"][1], 0.5), "underfitting",
                   "a run that underfits and has a rising validation loss (rule 3 before rule 4)")
checks.check_equal(diagnose([3.0, 2.0, 2.5, 1.0], [3.0, 2.0, 2.5, 1.0], 0.5), "unstable",
                   "1 jump in 3 transitions: exactly a third counts (rule 2 before rule 3)")
checks.check_equal(diagnose([3.0, 2.0, 2.5, 1.5, 1.0, 0.5, 0.25], [1.0] * 7, 0.5), "healthy",
                   "1 jump in 6 transitions is not unstable")
checks.check_equal(diagnose([1.0, 0.5, 0.625, 0.25], [1.0] * 4, 0.5, tol=0.25), "healthy",
                   "a rise of exactly tol (0.5 -> 0.625 with tol=0.25) is not a jump")
checks.check_equal(diagnose([1.0, 0.5, 0.6251, 0.25], [1.0] * 4, 0.5, tol=0.25), "unstable",
                   "a rise just above tol is a jump: 1 of 3 transitions")
checks.check_equal(diagnose([1.0, 0.5, 0.52, 0.4, 0.41, 0.3, 0.305], [1.0] * 7, 0.5), "healthy",
                   "small wiggles (rises of 2-4 % with tol=0.1) are not instability")
checks.check_equal(diagnose([1.0, 0.5, 0.25], [0.75, 0.5, 0.625], 0.5, tol=0.25), "healthy",
                   "a final val loss exactly (1 + tol) * min is not overfitting")
checks.check_equal(diagnose([1.0, 0.5, 0.25], [0.75, 0.5, 0.6251], 0.5, tol=0.25), "overfitting",
                   "a final val loss just above (1 + tol) * min")
checks.check_equal(diagnose([1.0, 0.5, 0.25], [0.75, 0.5, 0.55], 0.2), "underfitting",
                   "a final train loss above high_loss")
_ = checks.check_raises(lambda: diagnose([1.0], [1.0], 1.0), ValueError, "diagnose of a single epoch")
_ = checks.check_raises(lambda: diagnose([1.0, 0.5, 0.2], [1.0, 0.5], 1.0), ValueError,
                        "diagnose with lists of different lengths")
### END HIDDEN TESTS

# %% [markdown]
# Your rules on the real runs of Section 13.3.4, plus three full-batch runs on the whole
# training set with a learning rate far too small (1e-4) and far too large (0.3 and 1.0) for
# AdamW. As "high" we take a fifth of the loss of a uniform guess, $\ln 10 / 5 \approx 0.46$.

# %% tags=["autograde-skip"]
diagnosed = dict(reg_hists)
for lr in [1e-4, 0.3, 1.0]:
    torch.manual_seed(0)
    diagnosed[f"lr {lr:g}, full batch"] = train_mlp(make_mlp(), X_train, y_train, lr=lr, epochs=15,
                                                  batch_size=len(X_train))
for name, h in diagnosed.items():
    label = diagnose(h["train_loss"], h["val_loss"], high_loss=math.log(10) / 5)
    some = torch.linspace(0, len(h["train_loss"]) - 1, 8).long().tolist()  # 8 epochs to show
    print(f"{name:22s} -> {label:12s} training losses: "
          + " ".join(f"{h['train_loss'][e]:.2g}" for e in some))

# %% [markdown]
# ## 13.5 Model selection and evaluation
#
# ### 13.5.1 Proper train / validation / test splits
#
# Three sets, three jobs:
#
# - the **training set** fits the weights;
# - the **validation set** makes every decision: hyperparameters, architecture, when to stop;
# - the **test set** measures the final model, **once**, at the end.
#
# Why so strict? Every time you pick the best of several candidates by a score, the winner's
# score is optimistic: part of its lead is luck on that particular set. Pick on the test set and
# your reported number is no longer an estimate of performance on new data. The same holds for
# preprocessing: normalisation statistics, vocabularies, feature selection come from the
# training set only, and are then *applied* to validation and test data (chapter 5). After model
# selection you may retrain the chosen configuration on training + validation data, then test.
#
# How precise is a validation score? With $n$ examples and accuracy $p$, the standard error of
# the accuracy is $\sqrt{p(1-p)/n}$. And training itself is random (initial weights, batch
# order): eight seeds of the same configuration measure that second source of noise.

# %% tags=["autograde-skip"]
seed_accs = []
for seed in range(8):
    torch.manual_seed(seed)
    hist = train_mlp(make_mlp(), X_train, y_train, lr=3e-3, epochs=5, seed=seed)
    seed_accs.append(hist["val_acc"][-1])
seed_accs = torch.tensor(seed_accs)
p_val = seed_accs.mean().item()
print(f"8 seeds, same configuration: validation accuracy {p_val:.1%} ± {seed_accs.std().item():.1%} "
      f"(min {seed_accs.min().item():.1%}, max {seed_accs.max().item():.1%})")
print(f"standard error of one accuracy on {len(y_val)} images: "
      f"{math.sqrt(p_val * (1 - p_val) / len(y_val)):.1%}")

# %% [markdown]
# What to notice: the same configuration spreads over about a percentage point from the seed
# alone, and the finite validation set adds sampling noise of the same order. Two models whose
# validation accuracies differ by less than that have not been told apart. With a large data
# set you shrink the noise by a larger validation set; with a small one, cross-validation
# squeezes more out of the data you have.
#
# ### 13.5.2 Cross-validation for small data sets
#
# **k-fold cross-validation** cuts the data into $k$ folds, trains $k$ fresh models, each on
# $k-1$ folds, and validates each on the fold it did not see. Every example is used for
# validation exactly once, and you get $k$ scores instead of one: report their mean and standard
# deviation. It costs $k$ trainings, so it is for small data sets and cheap models; for deep
# networks on large data a single validation split is the norm. Two cautions: a fresh model for
# every fold (reusing one leaks the validation fold of the previous round into the next), and
# preprocessing fitted inside each fold on its training part only.

# %% [markdown]
# ### Exercise 13.6 — K-fold cross-validation (★★★, 4 points)
#
# **Goal:** estimate a model's accuracy on a small data set, with every example used for
# validation exactly once.
#
# **(a)** Write `kfold_indices(n, k, shuffle=False, generator=None)` that returns a list of $k$
# pairs `(train_idx, val_idx)` of int64 tensors:
#
# - take the order `torch.arange(n)`, or `torch.randperm(n, generator=generator)` if `shuffle`;
# - cut that order into $k$ consecutive blocks: the first `n % k` blocks get `n // k + 1`
#   elements, the others `n // k` (this is what scikit-learn's `KFold` does);
# - fold $j$ validates on block $j$ and trains on all other elements; both tensors sorted in
#   ascending order.
#
# Raise a `ValueError` naming `k` unless $2 \le k \le n$.
#
# **(b)** Write `cross_validate(X, y, k, fit, generator)` that, for each fold of
# `kfold_indices(len(X), k, shuffle=True, generator=generator)`, calls
# `predict = fit(X[train_idx], y[train_idx])` — `fit` trains a **fresh** model on the training
# part only and returns a function from inputs (M, D) to class scores (M, C) — and scores the fold
# by the accuracy of `predict(X[val_idx]).argmax(dim=1)` against `y[val_idx]`. Return the list
# of $k$ accuracies (Python floats in [0, 1]).
#
# **Tests check:** (a) the folds are disjoint and cover `range(n)`, their sizes and order, equal
# `sklearn.model_selection.KFold(n_splits=k)` without shuffling, follow your generator with
# shuffling, and the error; (b) with a nearest-centroid `fit`: each fold's score against an
# independent computation, that `fit` is called $k$ times and receives exactly the training
# part of each fold.
#
# **Hints:** `torch.tensor_split(order, k)` makes exactly these blocks. `torch.cat` of the other
# blocks, then `.sort().values`.

# %% nbgrader={"grade": false, "grade_id": "ex13_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def kfold_indices(n, k, shuffle=False, generator=None):
    """k pairs (train_idx, val_idx) of sorted int64 tensors; the val blocks partition range(n)."""
    ### BEGIN SOLUTION
    if not 2 <= k <= n:
        raise ValueError(f"k must satisfy 2 <= k <= n={n}, got k={k}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    blocks = torch.tensor_split(order, k)
    folds = []
    for j, block in enumerate(blocks):
        rest = torch.cat(blocks[:j] + blocks[j + 1:])
        folds.append((rest.sort().values, block.sort().values))
    return folds
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_6_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _check_folds(folds, n, k, expected, label):
    """expected: list of k (train, val) index arrays computed independently."""
    checks.check_type(folds, list, f"kfold_indices({label})")
    checks.check_equal(len(folds), k, f"the number of folds for {label}")
    seen = torch.zeros(n, dtype=torch.int64)
    for j, ((tr, va), (tr_ref, va_ref)) in enumerate(zip(folds, expected)):
        checks.check_tensor(va, f"val_idx of fold {j} ({label})", dtype=torch.int64)
        checks.check_tensor(tr, f"train_idx of fold {j} ({label})", dtype=torch.int64)
        checks.check(len(set(tr.tolist()) & set(va.tolist())) == 0,
                     f"fold {j} ({label}) trains on some of its validation examples.")
        checks.check_equal(sorted(tr.tolist() + va.tolist()), list(range(n)),
                           f"train + val of fold {j} ({label})", hint="together they cover range(n) once")
        checks.check_equal(va.tolist(), [int(i) for i in va_ref], f"val_idx of fold {j} ({label})",
                           hint="the first n % k blocks have n // k + 1 elements; sort each tensor")
        checks.check_equal(tr.tolist(), [int(i) for i in tr_ref], f"train_idx of fold {j} ({label})")
        seen[va] += 1
    checks.check_equal(seen, torch.ones(n, dtype=torch.int64), f"times each index is validated ({label})")


_sk = list(KFold(n_splits=5).split(np.zeros(23)))
_check_folds(kfold_indices(23, 5), 23, 5, _sk, "n=23, k=5, no shuffle")
### BEGIN HIDDEN TESTS
for _n, _k in [(10, 2), (7, 7), (100, 3), (1797, 10)]:
    _check_folds(kfold_indices(_n, _k), _n, _k, list(KFold(n_splits=_k).split(np.zeros(_n))),
                 f"n={_n}, k={_k}")
for _n, _k, _seed in [(23, 5, 0), (50, 4, 7)]:
    _perm = torch.randperm(_n, generator=torch.Generator().manual_seed(_seed)).numpy()
    _blocks = np.array_split(_perm, _k)
    _expected = [(np.sort(np.concatenate(_blocks[:j] + _blocks[j + 1:])), np.sort(b))
                 for j, b in enumerate(_blocks)]
    _check_folds(kfold_indices(_n, _k, shuffle=True, generator=torch.Generator().manual_seed(_seed)),
                 _n, _k, _expected, f"n={_n}, k={_k}, shuffled with seed {_seed}")
for _n, _k in [(10, 1), (5, 6), (10, 0)]:
    _err = checks.check_raises(lambda: kfold_indices(_n, _k), ValueError, f"kfold_indices({_n}, {_k})")
    checks.check("k" in str(_err), "the ValueError should name k.", got=str(_err))
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex13_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_validate(X, y, k, fit, generator):
    """k-fold cross-validated accuracies: a fresh fit(X_train, y_train) per fold, scored on its fold."""
    ### BEGIN SOLUTION
    scores = []
    for train_idx, val_idx in kfold_indices(len(X), k, shuffle=True, generator=generator):
        train_idx, val_idx = train_idx.to(X.device), val_idx.to(X.device)
        predict = fit(X[train_idx], y[train_idx])
        with torch.no_grad():
            pred = predict(X[val_idx]).argmax(dim=1)
        scores.append((pred == y[val_idx]).float().mean().item())
    return scores
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _centroid_fit(calls):
    """A nearest-centroid classifier as `fit`; records the training inputs it receives."""
    def fit(Xf, yf):
        calls.append(Xf.detach().clone())
        centroids = torch.stack([Xf[yf == c].mean(dim=0) for c in range(10)])  # (10, D)
        return lambda Z: -torch.cdist(Z, centroids)  # (M, 10): closer is better
    return fit


def _reference_cv(X, y, k, seed):
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed)).numpy()
    blocks = np.array_split(perm, k)
    out = []
    for j, block in enumerate(blocks):
        tr = torch.as_tensor(np.sort(np.concatenate(blocks[:j] + blocks[j + 1:])), device=X.device)
        va = torch.as_tensor(np.sort(block), device=X.device)
        cents = torch.stack([X[tr][y[tr] == c].mean(dim=0) for c in range(10)])
        pred = torch.cdist(X[va], cents).argmin(dim=1)
        out.append(((pred == y[va]).double().mean().item(), X[tr]))
    return out


def _check_cv(X, y, k, seed, label):
    calls = []
    scores = cross_validate(X, y, k, _centroid_fit(calls), torch.Generator().manual_seed(seed))
    ref = _reference_cv(X, y, k, seed)
    checks.check_type(scores, list, f"cross_validate({label})")
    checks.check_equal(len(scores), k, f"the number of scores ({label})")
    checks.check_equal(len(calls), k, f"the number of calls of fit ({label})", hint="one fresh fit per fold")
    for j, (got_x, (_, ref_x)) in enumerate(zip(calls, ref)):
        checks.check(got_x.shape == ref_x.shape and torch.equal(got_x, ref_x),
                     f"fit received the wrong training inputs in fold {j} ({label}).",
                     f"X[train_idx] with {len(ref_x)} rows", f"{len(got_x)} rows",
                     "fit(X[train_idx], y[train_idx]) with the folds of kfold_indices(..., shuffle=True, "
                     "generator=generator)")
    checks.check_close(torch.tensor(scores, dtype=torch.float64),
                       torch.tensor([s for s, _ in ref], dtype=torch.float64),
                       f"the fold accuracies ({label})", rtol=1e-6, atol=1e-7,
                       hint="score each fold on its validation block: "
                            "predict(X[val_idx]).argmax(1) == y[val_idx]")


_check_cv(X_train[:200], y_train[:200], 5, 0, "200 digits, k=5, seed 0")
### BEGIN HIDDEN TESTS
_check_cv(X_val, y_val, 4, 3, "359 digits, k=4, seed 3")
_check_cv(X_train[200:530], y_train[200:530], 3, 11, "330 digits, k=3, seed 11")
### END HIDDEN TESTS

# %% [markdown]
# Now use it where it pays: a small data set. With only 200 training images, is a small network
# (one hidden layer of 32) or a larger one with dropout (two layers of 256, dropout 0.3) the
# better choice? Five folds each, 40 epochs per fold.

# %% tags=["autograde-skip"]
def mlp_fit(hidden, dropout):
    """A `fit` for cross_validate: trains a fresh MLP, returns it in eval mode as the predictor."""
    def fit(Xf, yf):
        torch.manual_seed(0)
        model = make_mlp(hidden, dropout)
        train_mlp(model, Xf, yf, lr=3e-3, epochs=40, val=None)
        return model.eval()
    return fit


cv_scores = {name: cross_validate(X_train[:200], y_train[:200], 5, mlp_fit(*cfg),
                                  torch.Generator().manual_seed(0))
             for name, cfg in {"32 units": ((32,), 0.0), "256-256, dropout 0.3": ((256, 256), 0.3)}.items()}
for name, s in cv_scores.items():
    print(f"{name:22s}: folds {[f'{v:.0%}' for v in s]}, mean {np.mean(s):.1%} ± {np.std(s, ddof=1):.1%}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(6, 3.6))
for i, (name, s) in enumerate(cv_scores.items()):
    spread = i - 0.1 + 0.05 * np.arange(len(s))  # side by side, so that equal scores stay visible
    ax.scatter(spread, [100 * v for v in s], alpha=0.7, label="fold scores" if i == 0 else None)
    ax.errorbar(i + 0.25, 100 * np.mean(s), yerr=100 * np.std(s, ddof=1), fmt="s", color="k",
                capsize=4, label="mean ± std" if i == 0 else None)
ax.set(xticks=range(len(cv_scores)), xticklabels=list(cv_scores), xlim=(-0.5, len(cv_scores) - 0.5),
       title="5-fold cross-validation on 200 digits", ylabel="fold accuracy (%)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# What to notice: within each configuration the folds disagree by ten points — a single split of
# 40 validation images could have told either story — while each mean uses all 200 images. The
# two means differ by far less than the spread of the folds: on this little data the two
# models cannot be told apart, and the smaller, cheaper one is the sensible choice.
# Read the standard deviation as a rough guide only: the $k$ models share most of their
# training data, so their scores are not independent, and no unbiased estimate of the variance
# of a cross-validation score exists (Bengio & Grandvalet, 2004).
#
# ## 13.6 Practical tips
#
# ### 13.6.1 Start with good defaults
#
# A configuration that works for most problems, to be tuned from:
#
# - **AdamW**, learning rate $10^{-3}$ (then run a range test), `weight_decay` $10^{-2}$ on
#   weights only (Exercise 13.3), betas (0.9, 0.999);
# - **warm-up + cosine** schedule, stepped per batch, warm-up of a few percent of the steps;
# - batch size 32–256;
# - **early stopping** on the validation loss (keep the best checkpoint);
# - gradient clipping at norm 1.0 for recurrent networks and transformers;
# - PyTorch's default initialisation (orthogonal recurrent weights help RNNs);
# - dropout 0.1–0.5 and augmentation once the model overfits.
#
# ### 13.6.2 Hyperparameter search strategies
#
# **Grid search** tries every combination of a few values per hyperparameter: its cost
# multiplies with every hyperparameter you add, and it spends the budget evenly on hyperparameters
# that matter and ones that do not. **Random search** samples each trial's values independently
# (scale-type hyperparameters such as learning rate and weight decay *log-uniformly*): with the
# same budget it tries a different value of every hyperparameter in every trial (Bergstra &
# Bengio, 2012). **Bayesian optimisation** (e.g. Optuna's `trial.suggest_float("lr", 1e-5,
# 1e-2, log=True)` with its TPE sampler; the older `suggest_loguniform` is deprecated) uses the
# finished trials to decide where to sample next. Whatever the strategy: log every trial, and
# search on short runs first.
#
# The objective of our search: the validation loss of a one-hidden-layer MLP (64 units) after 3
# epochs — a short, cheap proxy for a full run.

# %%
def short_run_val_loss(lr, weight_decay):
    """Validation loss of a 64-unit MLP after 3 epochs of AdamW at (lr, weight_decay)."""
    torch.manual_seed(0)
    hist = train_mlp(make_mlp((64,)), X_train, y_train, lr=lr, weight_decay=weight_decay,
                     epochs=3, batch_size=64)
    return hist["val_loss"][-1]


GRID = {"lr": [1e-4, 1e-2, 1.0], "weight_decay": [1e-5, 1e-3, 1e-1]}
SPACE = {"lr": (1e-4, 1.0, "log"), "weight_decay": (1e-5, 1e-1, "log")}

# %% [markdown]
# ### Exercise 13.7 — Grid search versus random search (★★★, 4 points)
#
# **Goal:** implement both strategies and compare them on the same budget of 9 short runs.
#
# **(a)** Write `grid_search(objective, grid)`: `grid` maps each hyperparameter name to a list
# of values. Evaluate `objective(**config)` for every combination, in the order of
# `itertools.product` over the grid's value lists (keys in the dict's order, so the last key
# varies fastest), and return the list of `(config, value)` pairs: `config` a dict name → value,
# `value` a Python float.
#
# **(b)** Write `random_search(objective, space, n_trials, generator)`: `space` maps each name
# to `(low, high, scale)` with `scale` `"log"` or `"linear"`. For each trial, and within it for
# each name in the order of `space`, draw
# `u = torch.rand(1, generator=generator, dtype=torch.float64).item()` and set the value to
# $\text{low} + u(\text{high} - \text{low})$ (linear) or
# $\exp(\ln \text{low} + u(\ln \text{high} - \ln \text{low}))$ (log). Evaluate the objective once
# per trial; return the list of `(config, value)` pairs as in (a).
#
# **(c)** Run both on `short_run_val_loss` with `GRID`, `SPACE`, `n_trials=9` and
# `generator=torch.Generator().manual_seed(0)`. Store the trial lists in `grid_trials` and
# `random_trials`, and summarise them in `search_comparison = {"grid": {...}, "random": {...}}`,
# each inner dict with the keys `"best_config"` (the config with the lowest value),
# `"best_value"`, `"n_trials"` and `"distinct_lr"` (the number of different learning rates
# tried).
#
# **Tests check:** (a) and (b) on cheap made-up objectives: the order of the grid, the values
# drawn from your generator, both scales, one objective call per trial; (c) the configurations
# tried, your summary against your trial lists, and the best values against fresh runs of
# `short_run_val_loss`.
#
# **Hints:** `itertools.product(*grid.values())` and `dict(zip(grid, values))`.
# `math.exp`, `math.log`. `min(trials, key=lambda trial: trial[1])`.

# %% nbgrader={"grade": false, "grade_id": "ex13_7_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def grid_search(objective, grid):
    """[(config, value)] for every combination of the grid, in itertools.product order."""
    ### BEGIN SOLUTION
    trials = []
    for values in itertools.product(*grid.values()):
        config = dict(zip(grid, values))
        trials.append((config, float(objective(**config))))
    return trials
    ### END SOLUTION


def random_search(objective, space, n_trials, generator):
    """[(config, value)] for n_trials configs drawn from `space` with `generator`."""
    ### BEGIN SOLUTION
    trials = []
    for _ in range(n_trials):
        config = {}
        for name, (low, high, scale) in space.items():
            u = torch.rand(1, generator=generator, dtype=torch.float64).item()
            if scale == "log":
                config[name] = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            else:
                config[name] = low + u * (high - low)
        trials.append((config, float(objective(**config))))
    return trials
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex13_7_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _bowl(calls):
    """A cheap made-up objective with its minimum at lr = 1e-2, wd anything; counts its calls."""
    def objective(lr, wd):
        calls.append((lr, wd))
        return (math.log10(lr) + 2) ** 2 + 0.01 * wd
    return objective


_calls = []
_trials = grid_search(_bowl(_calls), {"lr": [1e-3, 1e-2], "wd": [0.0, 0.5, 1.0]})
checks.check_type(_trials, list, "grid_search(...)")
checks.check_equal([c for c, _ in _trials],
                   [{"lr": a, "wd": b} for a in [1e-3, 1e-2] for b in [0.0, 0.5, 1.0]],
                   "the configs of grid_search, in order",
                   hint="itertools.product: the last key varies fastest")
checks.check_close(torch.tensor([v for _, v in _trials], dtype=torch.float64),
                   torch.tensor([(math.log10(a) + 2) ** 2 + 0.01 * b
                                 for a in [1e-3, 1e-2] for b in [0.0, 0.5, 1.0]], dtype=torch.float64),
                   "the values of grid_search", rtol=1e-12)
checks.check_equal(len(_calls), 6, "the number of objective calls of a 2 x 3 grid")
_calls = []
_trials = random_search(_bowl(_calls), {"lr": (1e-4, 1.0, "log"), "wd": (0.0, 2.0, "linear")}, 5,
                        torch.Generator().manual_seed(3))
_g = torch.Generator().manual_seed(3)
_expected = []
for _ in range(5):
    _u_lr = torch.rand(1, generator=_g, dtype=torch.float64).item()
    _u_wd = torch.rand(1, generator=_g, dtype=torch.float64).item()
    _expected.append([10 ** (-4 + 4 * _u_lr), 2.0 * _u_wd])
checks.check_type(_trials, list, "random_search(...)")
checks.check_close(torch.tensor([[c["lr"], c["wd"]] for c, _ in _trials], dtype=torch.float64),
                   torch.tensor(_expected, dtype=torch.float64), "the configs drawn by random_search",
                   rtol=1e-9, hint="per trial, per name in order: one torch.rand(1, generator=..., "
                   "dtype=torch.float64); log scale: exp(log(low) + u (log(high) - log(low)))")
checks.check_equal(len(_calls), 5, "the number of objective calls of random_search with n_trials=5")
### BEGIN HIDDEN TESTS
_calls = []
_trials = grid_search(lambda a, b, c: a * 100 + b * 10 + c, {"a": [1, 2], "b": [3], "c": [4, 5, 6]})
checks.check_equal([v for _, v in _trials], [134.0, 135.0, 136.0, 234.0, 235.0, 236.0],
                   "a 2 x 1 x 3 grid with three keys")
checks.check_type(_trials[0][1], float, "a value of grid_search", hint="float(objective(**config))")
_calls = []
_space = {"wd": (1e-6, 1e-2, "log"), "dropout": (0.1, 0.7, "linear"), "lr": (1e-5, 1e-1, "log")}
_trials = random_search(lambda wd, dropout, lr: _calls.append(1) or lr + wd + dropout, _space, 7,
                        torch.Generator().manual_seed(11))
_g = torch.Generator().manual_seed(11)
for _config, _value in _trials:
    _u = [torch.rand(1, generator=_g, dtype=torch.float64).item() for _ in range(3)]
    _ref = {"wd": 1e-6 * 1e4 ** _u[0], "dropout": 0.1 + 0.6 * _u[1], "lr": 1e-5 * 1e4 ** _u[2]}
    checks.check_equal(sorted(_config), sorted(_ref), "the keys of a random config")
    for _name in _ref:
        checks.check_close(_config[_name], _ref[_name], f"random config {_name} (three names, seed 11)",
                           rtol=1e-9)
    checks.check_close(_value, _ref["lr"] + _ref["wd"] + _ref["dropout"], "a random trial's value",
                       rtol=1e-9)
checks.check_equal(len(_calls), 7, "objective calls of random_search with n_trials=7")
_lrs = [c["lr"] for c, _ in random_search(lambda lr: 0.0, {"lr": (1e-6, 1.0, "log")}, 400,
                                           torch.Generator().manual_seed(0))]
checks.check(0.35 < sum(lr < 1e-3 for lr in _lrs) / 400 < 0.65,
             "a log-uniform lr in [1e-6, 1] should fall below 1e-3 about half the time.",
             "about 0.5", sum(lr < 1e-3 for lr in _lrs) / 400)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex13_7_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
grid_trials, random_trials, search_comparison = None, None, {}
### BEGIN SOLUTION
grid_trials = grid_search(short_run_val_loss, GRID)
random_trials = random_search(short_run_val_loss, SPACE, n_trials=9,
                              generator=torch.Generator().manual_seed(0))
for name, trials in [("grid", grid_trials), ("random", random_trials)]:
    best_config, best_value = min(trials, key=lambda trial: trial[1])
    search_comparison[name] = {"best_config": best_config, "best_value": best_value,
                               "n_trials": len(trials),
                               "distinct_lr": len({config["lr"] for config, _ in trials})}
### END SOLUTION
for name, summary in search_comparison.items():
    print(f"{name:6s}: best validation loss {summary['best_value']:.4f} at "
          f"lr={summary['best_config']['lr']:.2e}, "
          f"weight_decay={summary['best_config']['weight_decay']:.1e}; "
          f"{summary['distinct_lr']} distinct learning rates in {summary['n_trials']} trials")

# %% nbgrader={"grade": true, "grade_id": "ex13_7_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(search_comparison, dict, "search_comparison")
checks.check_equal(sorted(search_comparison), ["grid", "random"], "the keys of search_comparison")
for _name, _trials in [("grid", grid_trials), ("random", random_trials)]:
    _s = search_comparison[_name]
    checks.check_type(_trials, list, f"{_name}_trials")
    checks.check_equal(sorted(_s), ["best_config", "best_value", "distinct_lr", "n_trials"],
                       f'the keys of search_comparison["{_name}"]')
    checks.check_equal(_s["n_trials"], 9, f'search_comparison["{_name}"]["n_trials"]')
    _best = min(_trials, key=lambda t: t[1])
    checks.check_close(_s["best_value"], _best[1], f'search_comparison["{_name}"]["best_value"]',
                       hint="the lowest validation loss among the trials")
    checks.check_equal(_s["best_config"], _best[0], f'search_comparison["{_name}"]["best_config"]')
checks.check_equal([c for c, _ in grid_trials], [dict(lr=a, weight_decay=b) for a in GRID["lr"]
                                                 for b in GRID["weight_decay"]], "the configs of grid_trials")
checks.check_equal([search_comparison["grid"]["distinct_lr"], search_comparison["random"]["distinct_lr"]],
                   [3, 9], "distinct_lr of grid and random search")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(0)
_expected = []
for _ in range(9):
    _u = [torch.rand(1, generator=_g, dtype=torch.float64).item() for _ in range(2)]
    _expected.append([1e-4 * 1e4 ** _u[0], 1e-5 * 1e4 ** _u[1]])
checks.check_close(torch.tensor([[c["lr"], c["weight_decay"]] for c, _ in random_trials],
                                dtype=torch.float64),
                   torch.tensor(_expected, dtype=torch.float64), "the configs of random_trials (seed 0)",
                   rtol=1e-9)
for _name in ("grid", "random"):
    _s = search_comparison[_name]
    checks.check_close(short_run_val_loss(**_s["best_config"]), _s["best_value"],
                       f'a fresh run of short_run_val_loss at the best {_name} config', rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# How does the validation loss depend on each hyperparameter? Plot every trial against the
# learning rate and against the weight decay.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, key in zip(axes, ["lr", "weight_decay"]):
    for trials, marker, label in [(grid_trials, "s", "grid (3 × 3)"), (random_trials, "o", "random (9)")]:
        ax.scatter([c[key] for c, _ in trials], [v for _, v in trials], marker=marker, s=40,
                   alpha=0.7, label=label)
    ax.set(xscale="log", yscale="log", xlabel=f"{key} (log scale)",
           title=f"Validation loss after 3 epochs vs {key}")
axes[0].set_ylabel("validation loss (log scale)")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to notice: against the learning rate the trials fall on one curve with a clear minimum
# between $10^{-2}$ and $10^{-1}$; against the weight decay they are scattered with no trend — on
# this budget weight decay hardly matters. The grid spent its nine runs on three learning rates,
# two of them far from the minimum, each tried three times with weight decays that made no
# difference; random search tried nine, two of them close to the minimum, and that is where its
# advantage comes from. Which search found the lower loss this time depends on where the grid's
# three values happen to fall; the structural advantage does not.
#
# ### The final model: retrain, then test once
#
# The search is done, on validation data only. Take the best configuration found, train it
# longer (20 epochs, warm-up + cosine) on training **and** validation data together, and only
# now evaluate it on the test set — once.

# %%
best_name = min(search_comparison, key=lambda name: search_comparison[name]["best_value"])
best = search_comparison[best_name]["best_config"]
X_dev, y_dev = torch.cat([X_train, X_val]), torch.cat([y_train, y_val])  # (1437, 64), (1437,)
torch.manual_seed(0)
final_model = make_mlp((128,))
train_mlp(final_model, X_dev, y_dev, lr=best["lr"], weight_decay=best["weight_decay"], epochs=20,
          schedule=lambda o, T: lr_scheduler.SequentialLR(o, [
              lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=T // 20),
              lr_scheduler.CosineAnnealingLR(o, T_max=T - T // 20)], milestones=[T // 20]),
          val=None)
test_loss, test_acc = evaluate(final_model, X_test, y_test)
print(f"best config ({best_name} search): lr={best['lr']:.2e}, weight_decay={best['weight_decay']:.1e}")
print(f"QUALITY: {test_acc:.1%} test accuracy on digits, measured once after a 9-trial search "
      f"(target >= 96 %); test loss {test_loss:.3f}")

# %% [markdown]
# ## Concept check (4 points)
#
# Interview-style questions; answer in the variables below. Predict first, then check with a
# scratch cell if you like.
#
# 1. `q1_lr`: an optimizer with learning rate 0.1 is wrapped in
#    `LinearLR(optimizer, start_factor=0.25, total_iters=4)`. Which learning rate does it use in
#    epoch 2 (the third epoch; the scheduler is stepped once after each epoch)? A float.
# 2. `q2_fold_sizes`: the sizes of the five validation folds of
#    `KFold(n_splits=5)` on the 1,797 digits, in fold order. A list of ints.
# 3. `q3_runs`: a grid of 4 learning rates × 3 weight decays × 2 dropout rates, each
#    configuration scored by 5-fold cross-validation. How many training runs? An int.
# 4. `q4_lr`: plain SGD trains well with batch size 64 and learning rate 0.05. By the linear
#    scaling rule, which learning rate for batch size 512? A float.
# 5. `q5_curves`: the training loss keeps falling to 0.01; the validation loss reached its
#    minimum at epoch 12 and is 40 % higher by epoch 40. The best next step?
#    **A.** a bigger model; **B.** a higher learning rate; **C.** more regularisation, and keep
#    the checkpoint of epoch 12 (early stopping); **D.** train for 40 more epochs.
# 6. `q6_test`: you tried 50 configurations, picked the one with the best *test* accuracy and
#    report that accuracy. The number is **A.** an unbiased estimate of accuracy on new data;
#    **B.** optimistic, because the test set was used to choose; **C.** pessimistic, because the
#    model was not retrained on the test set; **D.** unbiased as long as the test set is large.
# 7. `q7_random`: with 16 runs and two hyperparameters of which only one matters, why does
#    random search usually beat a 4 × 4 grid? **A.** it tries 16 different values of the one
#    that matters, the grid only 4; **B.** random numbers are unbiased; **C.** a grid overfits
#    the validation set; **D.** random trials train faster.

# %% nbgrader={"grade": false, "grade_id": "cc13_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_lr = ...  # a float
q2_fold_sizes = ...  # a list of 5 ints
q3_runs = ...  # an int
q4_lr = ...  # a float
q5_curves = ...  # "A", "B", "C" or "D"
q6_test = ...  # "A", "B", "C" or "D"
q7_random = ...  # "A", "B", "C" or "D"
### BEGIN SOLUTION
q1_lr = 0.0625  # 0.1 * (0.25 + 0.75 * 2 / 4)
q2_fold_sizes = [360, 360, 359, 359, 359]  # 1797 = 5 * 359 + 2: the first two get one more
q3_runs = 120  # 24 configurations x 5 folds
q4_lr = 0.4  # 8 times the batch, 8 times the rate
q5_curves = "C"
q6_test = "B"
q7_random = "A"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc13_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(q1_lr, float, "q1_lr")
checks.check_type(q2_fold_sizes, list, "q2_fold_sizes")
checks.check_type(q3_runs, int, "q3_runs")
checks.check_type(q4_lr, float, "q4_lr")
### BEGIN HIDDEN TESTS
# Every expected answer is computed: by PyTorch's scheduler, scikit-learn's KFold, itertools.
_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
_sched = lr_scheduler.LinearLR(_opt, start_factor=0.25, total_iters=4)
for _ in range(2):
    _opt.step()
    _sched.step()
checks.check_close(q1_lr, _opt.param_groups[0]["lr"], "q1_lr", hint="0.1 * (0.25 + 0.75 * t / 4)")
checks.check_equal(list(q2_fold_sizes), [len(v) for _, v in KFold(n_splits=5).split(np.zeros(1797))],
                   "q2_fold_sizes")
checks.check_equal(q3_runs, len(list(itertools.product(range(4), range(3), range(2)))) * 5, "q3_runs")
checks.check_close(q4_lr, 0.05 * 512 / 64, "q4_lr")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cc13_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for _name, _value in [("q5_curves", q5_curves), ("q6_test", q6_test), ("q7_random", q7_random)]:
    checks.check_type(_value, str, _name)
    checks.check(_value.strip().upper() in {"A", "B", "C", "D"}, f"{_name} must be A, B, C or D.",
                 got=_value)
### BEGIN HIDDEN TESTS
# q5: C -- overfitting (Section 13.4.2): regularise and stop at the validation minimum.
# q6: B -- choosing by the test score makes it optimistic (Section 13.5.1).
# q7: A -- random search tries a new value of every hyperparameter in every trial (Section 13.6.2).
checks.check_equal(q5_curves.strip().upper(), "C", "q5_curves")
checks.check_equal(q6_test.strip().upper(), "B", "q6_test")
checks.check_equal(q7_random.strip().upper(), "A", "q7_random")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - Tune in order: **learning rate** first (a range test gets you close in one short run), then
#   schedule, size, regularisation. Four decades of learning rate moved our accuracy far more
#   than four decades of weight decay.
# - **Warm-up + cosine** and **one-cycle** are smooth, robust schedules; step them per batch.
#   Both are a few lines of formula — and PyTorch has them (`LinearLR` + `CosineAnnealingLR` in
#   `SequentialLR`, `OneCycleLR`).
# - Larger batches need larger learning rates (linear rule for SGD, square-root rule closer for
#   Adam) — heuristics to validate, not laws.
# - Start with a small model; grow it while it underfits, regularise once it overfits.
#   Use **AdamW** for weight decay, and decay weight matrices only, not biases and norm
#   parameters. Augment with transformations that keep the label — no flips for digits.
# - Log every run (TensorBoard's `SummaryWriter`: train and validation loss, metric, learning
#   rate, gradient norm) and read the curves: healthy, overfitting, underfitting, unstable,
#   diverged each have a signature and a remedy.
# - Decide on validation data; touch the test set once. Selection makes the winner's score
#   optimistic, and noise of a point or so separates nothing. On small data, **k-fold
#   cross-validation** with a fresh model per fold gives a steadier estimate.
# - **Random search** beats grid search on the same budget because every trial tries a new value
#   of the hyperparameter that matters.
#
# **Next:** chapter 14 makes training *fast*: mixed precision, gradient checkpointing, data
# loading, profiling and export.
