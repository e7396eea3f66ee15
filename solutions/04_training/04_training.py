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
# # Chapter 4 — The training loop and optimizers
#
# You now have every piece: tensors hold the data, autograd computes gradients, modules hold
# the parameters. This chapter puts them in motion. Training is a loop of five lines that every
# deep-learning program repeats millions of times; the art is in choosing the loss, the
# optimizer and the learning rate, in knowing when to stop, and in noticing quickly when
# something is wrong.
#
# **What you will learn**
# - training as an optimization problem, and gradient descent with mini-batches;
# - why the learning rate matters more than any other setting, and what it does on a
#   quadratic bowl;
# - momentum, RMSprop, Adam and AdamW: the update rules, and what they do on a 2-D loss
#   surface you can explore;
# - the standard PyTorch training loop, and which loss goes with which task (MSE, MAE, Huber,
#   cross-entropy, BCE with logits);
# - learning-rate schedules, a learning-rate finder, gradient clipping;
# - validation, overfitting, early stopping and checkpoints, put together in a complete
#   pipeline;
# - debugging and monitoring: the sanity checks that catch most bugs in minutes.
#
# **Prerequisites:** Chapter 1 (tensors), chapter 2 (autograd: `backward`, `.grad`, why
# gradients accumulate), chapter 3 (`nn.Module`, `nn.Sequential`, `state_dict`, train and
# eval modes).
#
# **Expected time:** about 3 hours (1 hour for the text and demos, 2 hours for the seven
# exercises). The whole notebook runs in well under a minute on a laptop CPU.
#
# Exercises are marked **Exercise 4.k**: write your code where it says `# YOUR CODE HERE`, then
# run the test cell below it. A failing test says what it expected, what it got, and gives a
# hint. Hidden tests run when your notebook is graded, so make your code correct, not just green.
# Later exercises reuse the functions of earlier ones: solve them in order.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device (a GPU when there is one) and sets the plot style.

# %%
import copy
import inspect
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

import helpers
from helpers import checks
from helpers.data import digits

device = helpers.setup(seed=0)
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# ## 4.1 The training process
#
# A model with random weights is useless. **Training** adjusts its parameters so that a loss
# function, a single number that measures how wrong the model is, becomes small. Each step of
# training does the same five things:
#
# 1. **forward pass**: compute the predictions for a batch of inputs;
# 2. **loss**: compare predictions with targets;
# 3. **backward pass**: compute the gradient of the loss with respect to every parameter;
# 4. **update**: move every parameter a little against its gradient;
# 5. **repeat**, with the next batch, until the model is good enough.
#
# Everything in this chapter is a refinement of one of these five steps.
#
# ## 4.2 Gradient descent and optimization
#
# ### The optimization problem
#
# Given a model $f_\theta$ with parameters $\theta$, a data set $\{(x_i, y_i)\}_{i=1}^N$ and a
# loss $\mathcal{L}$ that compares one prediction with one target, training looks for
#
# $$\theta^* = \arg\min_\theta \; J(\theta), \qquad
#   J(\theta) = \frac{1}{N} \sum_{i=1}^{N} \mathcal{L}\big(f_\theta(x_i),\, y_i\big).$$
#
# $J$ is the **empirical risk**, the average loss over the training set. For a network it is
# not convex, so there is no formula for $\theta^*$; we walk downhill instead.
#
# ### Gradient descent, by hand
#
# The gradient $\nabla_\theta J$ points in the direction in which $J$ grows fastest, so a small
# step against it lowers $J$:
#
# $$\theta_{t+1} = \theta_t - \eta \, \nabla_\theta J(\theta_t),$$
#
# where the step size $\eta > 0$ is the **learning rate**. Here it is with nothing but autograd,
# fitting a line $\hat y = w x + b$ to noisy points. Compare the result with the exact
# least-squares solution.

# %%
gen = torch.Generator().manual_seed(0)
x_line = torch.linspace(-1, 1, 50).unsqueeze(1)  # (N, 1)
y_line = 2.0 * x_line + 1.0 + 0.1 * torch.randn(x_line.shape, generator=gen)  # (N, 1)

w = torch.zeros(1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
eta = 0.5
for step in range(100):
    loss = ((w * x_line + b - y_line) ** 2).mean()  # J(w, b): the mean squared error
    loss.backward()  # fills w.grad and b.grad
    with torch.no_grad():  # the update itself must not be recorded by autograd
        w -= eta * w.grad
        b -= eta * b.grad
        w.grad.zero_()  # gradients accumulate: clear them for the next step
        b.grad.zero_()

design = torch.cat([x_line, torch.ones_like(x_line)], dim=1)  # (N, 2): columns x and 1
exact = torch.linalg.lstsq(design, y_line).solution.flatten()
print(f"gradient descent: w = {w.item():.4f}, b = {b.item():.4f}, loss = {loss.item():.5f}")
print(f"least squares:    w = {exact[0]:.4f}, b = {exact[1]:.4f}")

# %% [markdown]
# A hundred steps recover the exact solution to four decimals. The three lines inside
# `no_grad` are what an **optimizer** does for you; `zero_()` is what `optimizer.zero_grad()`
# does.
#
# ### Batch, stochastic and mini-batch gradient descent
#
# $J$ is an average over all $N$ examples, so its exact gradient costs a pass over the whole data
# set. Three ways to estimate it:
#
# - **batch gradient descent** uses all $N$ examples per step: exact, but one step per epoch;
# - **stochastic gradient descent (SGD)** uses one random example: cheap but very noisy;
# - **mini-batch SGD** averages $B$ random examples (typically $B$ = 32 to 256): the noise of
#   the estimate shrinks like $1/\sqrt{B}$ while its arithmetic grows like $B$ (and parallel
#   hardware works through the examples of a batch at the same time).
#
# In practice everyone uses mini-batches (and calls it "SGD" anyway). Let us measure the
# $1/\sqrt{B}$ law: for a line fit $\mathcal{L}_i = (w x_i - y_i)^2$ the per-example gradient is
# $g_i = 2 (w x_i - y_i)\, x_i$, and a mini-batch gradient is the mean of $B$ of them.

# %%
gen = torch.Generator().manual_seed(1)
n_big = 10_000
x_big = torch.randn(n_big, generator=gen)
y_big = 3.0 * x_big + torch.randn(n_big, generator=gen)
w0 = 0.5  # the point where we measure the gradient
per_example = 2 * (w0 * x_big - y_big) * x_big  # (N,) one gradient per example
w_probe = torch.tensor(w0, requires_grad=True)  # autograd agrees with the formula:
((w_probe * x_big - y_big) ** 2).mean().backward()
print(f"full gradient: formula {per_example.mean():.4f}, autograd {w_probe.grad:.4f}")

batch_sizes = [1, 4, 16, 64, 256, 1024]
errors = []
for B in batch_sizes:
    idx = torch.randint(n_big, (2000, B), generator=gen)  # 2000 random mini-batches of size B
    estimates = per_example[idx].mean(dim=1)  # (2000,) mini-batch gradients
    errors.append((estimates - per_example.mean()).pow(2).mean().sqrt().item())

# %%
fig, ax = plt.subplots()
ax.loglog(batch_sizes, errors, "o-", label="measured RMS error of the mini-batch gradient")
sigma = per_example.std().item()
ax.loglog(batch_sizes, [sigma / math.sqrt(B) for B in batch_sizes], "k--", lw=1,
          label=r"$\sigma / \sqrt{B}$ ($\sigma$: spread of per-example gradients)")
ax.set(xlabel="batch size B (examples)", ylabel="gradient error (RMS)",
       title="Mini-batch gradients: 4x the batch, half the noise")
ax.legend()
plt.show()

# %% [markdown]
# The measured points sit on the $\sigma/\sqrt{B}$ line: quadrupling the batch only halves the
# noise. That is why huge batches give diminishing returns, and why a little noise is simply
# the price of cheap steps (some studies even find that it steers networks away from sharp
# minima that generalize poorly; Keskar et al., 2017).
#
# ### The learning rate
#
# The learning rate is the most important setting of training. Too small and training crawls;
# too large and it diverges. A quadratic bowl shows exactly where the border lies. For
# $J(\theta) = \tfrac{a}{2}\theta^2$ the gradient is $a\theta$, so one step gives
#
# $$\theta_{t+1} = \theta_t - \eta a \theta_t = (1 - \eta a)\,\theta_t
#   \quad\Rightarrow\quad \theta_t = (1 - \eta a)^t\, \theta_0 .$$
#
# Gradient descent converges if and only if $|1 - \eta a| < 1$, that is $0 < \eta < 2/a$: the
# largest stable learning rate is set by the **curvature** $a$. At $\eta = 1/a$ it lands on the
# minimum in one step; between $1/a$ and $2/a$ it overshoots and oscillates but still converges.

# %%
a = 4.0  # curvature of the bowl: the stability limit is 2 / a = 0.5
fig, ax = plt.subplots(figsize=(9, 4))
for eta in [0.05, 0.25, 0.45, 0.55]:
    theta, path = 1.0, [1.0]
    for _ in range(15):
        theta = theta - eta * a * theta  # one gradient-descent step on a * theta^2 / 2
        path.append(theta)
    ax.plot(path, "o-", ms=3, label=f"η = {eta}: factor 1 − ηa = {1 - eta * a:+.1f}")
ax.set(xlabel="step t", ylabel="parameter θ_t", ylim=(-2.5, 2.5),
       title="Gradient descent on J(θ) = 2θ²: the learning rate decides everything")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()
plt.show()

# %% [markdown]
# Four regimes in one picture: η = 0.05 crawls, η = 0.25 = 1/a jumps to the minimum at once,
# η = 0.45 zig-zags in, and η = 0.55 > 2/a flies off (beyond the frame after a few steps).
#
# A network has millions of parameters and the curvature differs wildly between directions.
# Near a minimum the loss looks like a bowl $\tfrac12 \theta^\top H \theta$ whose Hessian $H$
# has eigenvalues $\lambda_{\min} \le \dots \le \lambda_{\max}$. Stability needs
# $\eta < 2/\lambda_{\max}$, and then the flattest direction shrinks only by
# $1 - \eta \lambda_{\min}$ per step: the larger the **condition number**
# $\lambda_{\max}/\lambda_{\min}$, the slower plain gradient descent gets. Typical starting
# learning rates: $10^{-4}$ to $10^{-2}$ for Adam, $10^{-3}$ to $10^{-1}$ for SGD — but only a
# measurement on your problem (exercise 4.4) tells you the right one.
#
# ### Momentum and adaptive learning rates
#
# Modern optimizers change the update to fight bad conditioning. Writing $g_t$ for the gradient
# at step $t$ (all operations element-wise, one value per parameter):
#
# | optimizer | update rule | what it does |
# |---|---|---|
# | SGD | $\theta \leftarrow \theta - \eta\, g_t$ | the plain step |
# | SGD + momentum | $v \leftarrow \mu v + g_t$, $\;\theta \leftarrow \theta - \eta v$ | a running sum of past gradients: it builds speed (up to $1/(1-\mu)$ = 10× for $\mu = 0.9$) where they agree and cancels zig-zags where they alternate |
# | RMSprop | $s \leftarrow \alpha s + (1-\alpha) g_t^2$, $\;\theta \leftarrow \theta - \eta\, g_t / (\sqrt{s} + \epsilon)$ | divides each parameter's step by the recent size of its gradient: steep and flat directions move at similar speeds |
# | Adam | $m \leftarrow \beta_1 m + (1-\beta_1) g_t$, $\;v \leftarrow \beta_2 v + (1-\beta_2) g_t^2$, $\;\hat m = \frac{m}{1-\beta_1^t}$, $\;\hat v = \frac{v}{1-\beta_2^t}$, $\;\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$ | momentum and RMSprop together; the **bias correction** undoes the start of $m$ and $v$ at zero, so the first steps are not tiny |
# | AdamW | $\theta \leftarrow \theta (1 - \eta\lambda)$, then the Adam step | weight decay applied directly to the weights ("decoupled"), not mixed into the gradient |
#
# (PyTorch writes momentum as $v \leftarrow \mu v + g$, $\theta \leftarrow \theta - \eta v$; some
# books write $v \leftarrow \mu v - \eta g$, $\theta \leftarrow \theta + v$, which is the same
# thing when $\eta$ is constant.) A common claim is that momentum "escapes local minima"; its
# reliable effect is the one in the table: it speeds up progress along directions where the
# gradient keeps its sign and damps the oscillation across directions where it flips.
#
# Seeing beats reading. Below, the four optimizers start from the same point on a long, narrow
# valley $J(\theta) = \tfrac12(0.2\,\theta_1^2 + 20\,\theta_2^2)$ (condition number 100) and take
# 60 steps each, with PyTorch's own optimizers acting on a 2-element parameter.

# %%
def valley(p):
    """Narrow quadratic valley: curvature 0.2 along theta_1, 20 along theta_2."""
    return 0.5 * (0.2 * p[..., 0] ** 2 + 20 * p[..., 1] ** 2)


def rosenbrock(p):
    """Rosenbrock's banana-shaped valley, minimum 0 at (1, 1)."""
    return (1 - p[..., 0]) ** 2 + 100 * (p[..., 1] - p[..., 0] ** 2) ** 2


SURFACES = {  # name -> (function, start, plot window x0, x1, y0, y1)
    "valley": (valley, (-4.0, 1.0), (-4.5, 1.0, -1.3, 1.3)),
    "rosenbrock": (rosenbrock, (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0)),
}
OPTIMIZERS_2D = {
    "SGD": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "SGD + momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "RMSprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "Adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}


def trajectory(surface, name, lr, steps=60):
    """Run optimizer `name` on a 2-D surface; return the visited points, shape (steps + 1, 2)."""
    f, start, _ = SURFACES[surface]
    p = torch.tensor(start, requires_grad=True)
    opt = OPTIMIZERS_2D[name]([p], lr)
    path = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        f(p).backward()
        opt.step()
        path.append(p.detach().clone())
    return torch.stack(path)


# %% [markdown]
# A small drawing function: contour lines of the surface, then one path per optimizer.

# %%
def draw_paths(ax, surface, runs, steps=60):
    """Draw the contours of `surface` and the path of each (optimizer, lr) in `runs`."""
    f, start, (x0, x1, y0, y1) = SURFACES[surface]
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, 200), torch.linspace(y0, y1, 200),
                            indexing="xy")
    z = f(torch.stack([gx, gy], dim=-1))
    ax.contour(gx, gy, z, levels=np.logspace(-2, np.log10(float(z.max())), 12), cmap="Greys",
               linewidths=0.7)
    finals = {}
    for name, lr in runs:
        path = trajectory(surface, name, lr, steps)
        finals[name] = float(f(path[-1]))
        ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1,
                label=f"{name} (lr={lr:g}): final loss {finals[name]:.2g}")
    ax.plot(*start, "k*", ms=10)
    ax.set(xlabel="parameter θ₁", ylabel="parameter θ₂", xlim=(x0, x1), ylim=(y0, y1))
    ax.legend(fontsize=8, loc="lower right")
    return finals


# %% tags=["autograde-skip"]
runs = [("SGD", 0.09), ("SGD + momentum", 0.015), ("RMSprop", 0.05), ("Adam", 0.15)]
fig, ax = plt.subplots(figsize=(9, 4))
draw_paths(ax, "valley", runs)
ax.set_title("60 steps on a narrow valley (★ start, minimum at the origin)")
plt.show()

# %% [markdown]
# What to notice:
#
# - **SGD** (blue) has to keep η below $2/20 = 0.1$ because of the steep direction, so it
#   zig-zags across the valley and then crawls along its floor, where the curvature is only
#   0.2: after 60 steps it is still far from the minimum.
# - **Momentum** (orange) builds up speed along the floor and gets much further, at the price
#   of oscillations that it damps over time.
# - **RMSprop** (green) and **Adam** (red) rescale each coordinate by the size of its
#   gradient, so both directions move at comparable speed and the path heads for the
#   minimum; Adam's momentum makes it overshoot a little.
#
# Each optimizer got a learning rate that suits it, and that is a lesson in itself: the numbers
# are not comparable across optimizers. For SGD the learning rate multiplies the gradient; for
# Adam it is roughly the size of a step in parameter units, whatever the gradient's scale.
#
# Now explore. The widget below (it needs a live kernel) lets you pick the surface, the
# optimizer, the learning rate and the number of steps. Try SGD just below and just above 0.1 on
# the valley; Adam with lr = 0.01 (slow but steady) and lr = 1 (wild); then the Rosenbrock
# banana, a classic test that punishes impatient optimizers.

# %% tags=["autograde-skip"]
if not helpers.grading():  # a widget needs a live notebook; it is never built while grading
    import ipywidgets as widgets

    def explore(surface="valley", optimizer="SGD", lr=0.05, steps=60):
        fig, ax = plt.subplots(figsize=(8, 3.8))
        draw_paths(ax, surface, [(optimizer, lr)], steps)
        ax.set_title(f"{optimizer} on the {surface} surface, {steps} steps")
        plt.show()

    widgets.interact(
        explore,
        surface=widgets.Dropdown(options=list(SURFACES), value="valley"),
        optimizer=widgets.Dropdown(options=list(OPTIMIZERS_2D), value="SGD"),
        lr=widgets.FloatLogSlider(value=0.05, base=10, min=-4, max=0.5, step=0.1,
                                  continuous_update=False),
        steps=widgets.IntSlider(value=60, min=10, max=500, step=10, continuous_update=False),
    )

# %% [markdown]
# ## 4.3 The standard training loop
#
# ### The five steps in PyTorch
#
# In PyTorch the update of the hand-written loop above becomes an optimizer, and the mean
# squared error becomes a loss module. The heart of every training loop is these five lines,
# always in this order:
#
# ```python
# optimizer.zero_grad()              # 1. clear the gradients of the previous step
# predictions = model(inputs)        # 2. forward pass
# loss = loss_fn(predictions, targets)  # 3. loss: one number, the mean over the batch
# loss.backward()                    # 4. backward pass: fills p.grad for every parameter p
# optimizer.step()                   # 5. update every parameter from its .grad
# ```
#
# Here they are on the line of the previous section, with one full batch per step:

# %%
model = nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
loss_fn = nn.MSELoss()
for step in range(100):
    optimizer.zero_grad()
    loss = loss_fn(model(x_line), y_line)
    loss.backward()
    optimizer.step()
print(f"w = {model.weight.item():.4f}, b = {model.bias.item():.4f}, loss = {loss.item():.5f}")

# %% [markdown]
# The same numbers as the hand-written loop, as they should be. A real loop adds three things:
#
# - **epochs and mini-batches**: each epoch shuffles the data and walks through it in batches;
# - **bookkeeping**: the average loss of each epoch, to plot and to compare runs;
# - **modes and devices**: `model.train()` before training (it matters for dropout and batch
#   norm), and the data on the model's device.
#
# One classic slip: adding up `loss.item()` *after* the inner loop instead of inside it records
# only the last batch of each epoch. Another: averaging the batch means when the last batch is
# smaller than the others; the epoch loss is the mean over **examples**,
#
# $$\bar{\mathcal{L}}_{\text{epoch}} = \frac{1}{N} \sum_{\text{batches } k} B_k \,
#   \bar{\mathcal{L}}_k ,$$
#
# where $\bar{\mathcal{L}}_k$ is the mean loss of batch $k$ and $B_k$ its size.

# %% [markdown]
# ### Exercise 4.1 — Basic training loop (★★, 3 points)
#
# **Part a (2 points).** Write `train_loop(model, x, y, loss_fn, optimizer, epochs, batch_size,
# generator=None)`, a mini-batch training loop over tensors:
#
# - raise `ValueError` if `x` and `y` hold different numbers of examples;
# - for each of the `epochs` epochs: put the model in training mode, draw a fresh random
#   order of the `N` examples with `torch.randperm(N, generator=generator)` (move it to
#   `x.device`), and walk through it in batches of `batch_size` (the last batch may be
#   smaller; every example is used exactly once per epoch);
# - for each batch: the five steps (`zero_grad`, forward, loss, `backward`, `step`);
# - return a list with one **float** per epoch: the mean loss over the examples of that
#   epoch, each batch's loss weighted by its size (formula above).
#
# The tests compare your loop with textbook gradient descent (one batch holding all the data,
# plain SGD), check the weighting with a smaller last batch, that each epoch visits every
# example once in a shuffled order, in training mode, with one optimizer step per batch.
#
# **Part b (1 point).** Fit $y = \sin(x)$ on $[0, 2\pi]$ (the data `x_sin`, `y_sin` below: 1000
# examples, noise of standard deviation 0.1):
#
# - write `make_sin_mlp()`, which returns a new `1 → 50 → 50 → 1` network with ReLU after each
#   hidden layer (input `(B, 1)`, output `(B, 1)`, 2701 parameters);
# - train one, `sin_model`, with `nn.MSELoss()`, Adam (lr = 5e-3), 40 epochs, batches of 32,
#   and `generator=torch.Generator().manual_seed(0)`; keep the epoch losses in `sin_losses`
#   and print the loss every 10 epochs.
#
# The tests check the architecture and that `sin_model` follows the clean curve: mean squared
# error against $\sin(x)$ on `x_grid` below **0.03** (the solution reaches about 0.002; the noise
# alone would cost 0.01 on the training data).
#
# *Hints:* `for start in range(0, N, batch_size): idx = perm[start:start + batch_size]`.
# Accumulate `loss.item() * len(idx)` and divide by `N` at the end of the epoch.

# %%
gen = torch.Generator().manual_seed(41)
x_sin = (2 * math.pi * torch.rand(1000, 1, generator=gen)).to(device)  # (N, 1) uniform in [0, 2π]
y_sin = torch.sin(x_sin) + 0.1 * torch.randn(1000, 1, generator=gen).to(device)  # (N, 1)
x_grid = torch.linspace(0, 2 * math.pi, 400, device=device).unsqueeze(1)  # (400, 1) for testing
print("x_sin", tuple(x_sin.shape), "y_sin", tuple(y_sin.shape), "x_grid", tuple(x_grid.shape))

# %% nbgrader={"grade": false, "grade_id": "ex04_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_loop(model, x, y, loss_fn, optimizer, epochs, batch_size, generator=None):
    """Train `model` with shuffled mini-batches; return the mean loss of each epoch.

    Args:
        model: an nn.Module mapping inputs (B, ...) to predictions.
        x: inputs, shape (N, ...); y: targets, shape (N, ...); on the model's device.
        loss_fn: (predictions, targets) -> scalar tensor, the mean loss of a batch.
        optimizer: a torch.optim optimizer over the model's parameters.
        epochs: number of passes over the data; batch_size: examples per batch.
        generator: a torch.Generator for torch.randperm, so that runs can be repeated.

    Returns:
        A list of `epochs` floats: the example-weighted mean loss of each epoch.
    """
    ### BEGIN SOLUTION
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must hold the same number of examples, got {n} and {len(y)}")
    history = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(x.device)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        history.append(total / n)
    return history
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_1_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# With one batch holding all the data and plain SGD, your loop must be textbook gradient descent.
torch.manual_seed(1)
xs, ys = torch.randn(20, 3, device=device), torch.randn(20, 1, device=device)
net = nn.Linear(3, 1).to(device)
reference = copy.deepcopy(net)
losses = train_loop(net, xs, ys, nn.MSELoss(), torch.optim.SGD(net.parameters(), lr=0.1),
                    epochs=5, batch_size=20)
checks.check_type(losses, list, "train_loop(...)", hint="return a list with one float per epoch")
checks.check_equal(len(losses), 5, "len(train_loop(..., epochs=5))")
checks.check(all(isinstance(v, float) for v in losses), "every epoch loss must be a Python float.",
             "float", [type(v).__name__ for v in losses], "use loss.item()")
expected = []
for _ in range(5):  # the independent reference: gradient descent written out
    loss = F.mse_loss(reference(xs), ys)
    expected.append(loss.item())
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    with torch.no_grad():
        for p, g in zip(reference.parameters(), grads):
            p -= 0.1 * g
checks.check_close(losses, expected, "epoch losses with one full batch", rtol=1e-4,
                   hint="each step: zero_grad, forward, loss, backward, step; record loss.item()")
checks.check_close(net.weight, reference.weight, "weights after 5 full-batch steps", rtol=1e-4,
                   atol=1e-6, hint="without optimizer.zero_grad() old gradients add to new ones")
### BEGIN HIDDEN TESTS
# The epoch loss weights batches by size: with lr = 0 each epoch's loss is the full-data loss.
torch.manual_seed(2)
xs, ys = torch.randn(10, 2, device=device), torch.randn(10, 1, device=device)
frozen = nn.Linear(2, 1).to(device)
with torch.no_grad():
    full = F.mse_loss(frozen(xs), ys).item()
losses = train_loop(frozen, xs, ys, nn.MSELoss(), torch.optim.SGD(frozen.parameters(), lr=0.0),
                    epochs=3, batch_size=4, generator=torch.Generator().manual_seed(0))
checks.check_close(losses, [full] * 3, "epoch losses with lr=0 and batches of 4, 4 and 2",
                   rtol=1e-5, hint="weight each batch loss by its size, then divide by N")


class _Recorder(nn.Module):
    """Returns zeros, remembers which examples it saw and in which mode."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen, self.modes = [], []

    def forward(self, xb):
        self.seen.append(xb[:, 0].detach().cpu().long().tolist())
        self.modes.append(self.training)
        return xb * self.w


recorder = _Recorder().to(device).eval()
ids = torch.arange(10, dtype=torch.float32, device=device).unsqueeze(1)
opt = torch.optim.SGD(recorder.parameters(), lr=0.0)
n_steps = []
opt.register_step_post_hook(lambda *args: n_steps.append(1))
train_loop(recorder, ids, torch.zeros_like(ids), nn.MSELoss(), opt, epochs=3, batch_size=4,
           generator=torch.Generator().manual_seed(0))
checks.check_equal([len(s) for s in recorder.seen], [4, 4, 2] * 3, "batch sizes over 3 epochs")
per_epoch = [sum(recorder.seen[3 * e:3 * e + 3], []) for e in range(3)]
checks.check(all(sorted(s) == list(range(10)) for s in per_epoch),
             "each epoch must use every example exactly once.", got=per_epoch)
checks.check(any(s != list(range(10)) for s in per_epoch) and per_epoch[0] != per_epoch[1],
             "the examples must be reshuffled every epoch.", got=per_epoch)
checks.check(all(recorder.modes), "the model must be in training mode while it trains.",
             hint="call model.train() at the start of each epoch")
checks.check_equal(len(n_steps), 9, "optimizer steps for 3 epochs of 3 batches")
_ = checks.check_raises(lambda: train_loop(nn.Linear(1, 1).to(device), ids[:5], ids[:4],
                                           nn.MSELoss(), opt, 1, 2), ValueError,
                        "train_loop with 5 inputs and 4 targets")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_sin_mlp():
    """A new 1 -> 50 -> 50 -> 1 ReLU network: input (B, 1), output (B, 1)."""
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(1, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(),
                         nn.Linear(50, 1))
    ### END SOLUTION


torch.manual_seed(0)
sin_model = None  # the trained network
sin_losses = None  # one float per epoch
### BEGIN SOLUTION
sin_model = make_sin_mlp().to(device)
optimizer = torch.optim.Adam(sin_model.parameters(), lr=5e-3)
sin_losses = train_loop(sin_model, x_sin, y_sin, nn.MSELoss(), optimizer, epochs=40,
                        batch_size=32, generator=torch.Generator().manual_seed(0))
for epoch in range(0, 40, 10):
    print(f"epoch {epoch + 1:2d}: loss {sin_losses[epoch]:.4f}")
print(f"epoch 40: loss {sin_losses[-1]:.4f}")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
probe = make_sin_mlp()
checks.check_module(probe, "make_sin_mlp()", n_params=2701, example_input=torch.zeros(7, 1),
                    output_shape=(7, 1),
                    hint="Linear(1, 50), ReLU, Linear(50, 50), ReLU, Linear(50, 1)")
checks.check_type(sin_losses, list, "sin_losses", hint="the list returned by train_loop")
checks.check_equal(len(sin_losses), 40, "len(sin_losses)")
checks.check_type(sin_model, nn.Module, "sin_model")
sin_model.eval()
with torch.no_grad():
    clean_mse = F.mse_loss(sin_model(x_grid), torch.sin(x_grid)).item()
checks.check(clean_mse < 0.03, "sin_model does not follow sin(x) closely enough on [0, 2π].",
             "MSE against sin(x) below 0.03", round(clean_mse, 4),
             "Adam with lr=5e-3, 40 epochs of batches of 32; check part a first")
### BEGIN HIDDEN TESTS
checks.check_equal(sum(isinstance(m, nn.ReLU) for m in probe.modules()), 2, "ReLUs in the MLP")
layers = [(m.in_features, m.out_features) for m in probe.modules() if isinstance(m, nn.Linear)]
checks.check_equal(layers, [(1, 50), (50, 50), (50, 1)], "the Linear layers (in, out)")
other = make_sin_mlp()
checks.check(not any(p is q for p, q in zip(other.parameters(), probe.parameters())),
             "make_sin_mlp() must build a new network on every call.")
checks.check(sin_losses[-1] < 0.25 * sin_losses[0] and sin_losses[-1] < 0.03,
             "the training loss should fall far below its first value.", "below 0.03",
             sin_losses[-1])
### END HIDDEN TESTS

# %% [markdown]
# The picture the exercise asks for: the noisy training data, the true function, and what the
# network learned.

# %%
sin_model.eval()
with torch.no_grad():
    fitted = sin_model(x_grid)
print(f"MSE against the clean sin(x) on x_grid: {F.mse_loss(fitted, torch.sin(x_grid)):.4f}")
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(x_sin.cpu(), y_sin.cpu(), ".", ms=2, alpha=0.4, label="training data")
axes[0].plot(x_grid.cpu(), torch.sin(x_grid).cpu(), "k--", label="sin(x)")
axes[0].plot(x_grid.cpu(), fitted.cpu(), lw=2, label="network")
axes[0].set(xlabel="x (radians)", ylabel="y", title="A 1-50-50-1 MLP fits sin(x)")
axes[0].legend()
helpers.plot.training_curves({"train_loss": sin_losses}, ax=axes[1], logy=True,
                             title="Training loss (MSE) per epoch", ylabel="MSE (log scale)")
axes[1].axhline(0.01, color="k", ls=":", lw=1)
axes[1].text(1, 0.0105, "noise level: variance 0.01", fontsize=9, va="bottom")
plt.show()

# %% [markdown]
# The loss falls quickly and levels off just above 0.01, the variance of the noise: a model
# that learned $\sin$ exactly would still pay that much on noisy targets. Going below it on
# training data would mean memorizing the noise, which is overfitting (section on validation).

# %% [markdown]
# ### Loss functions: which for what
#
# The loss encodes what "wrong" means for your task, so it follows from the task and from the
# output of the model:
#
# | task | model output per example | loss | target |
# |---|---|---|---|
# | regression | a real number (no activation) | `nn.MSELoss` (L2), or `nn.L1Loss` (MAE) when outliers are common, `nn.HuberLoss` between the two | float, same shape as the output |
# | binary classification | **1 logit** (no sigmoid) | `nn.BCEWithLogitsLoss` | float 0. or 1., same shape |
# | multi-class, exactly one of K | **K logits** (no softmax) | `nn.CrossEntropyLoss` | int64 class index, shape `(B,)` |
# | multi-label, any of K | **K logits** (no sigmoid) | `nn.BCEWithLogitsLoss` (one yes/no per class) | float 0./1., shape `(B, K)` |
#
# For regression, write the residual $r = \hat y - y$:
#
# - **MSE** $= \text{mean}(r^2)$: smooth, and the right loss for Gaussian noise, but a residual
#   10× larger costs 100× more, so a few outliers can dominate the fit;
# - **MAE** $= \text{mean}(|r|)$: every residual pulls with the same force, so outliers barely
#   move the fit (it estimates the median rather than the mean);
# - **Huber** with threshold $\delta$: quadratic for small residuals, linear for large ones,
#
# $$\ell_\delta(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
#   \delta\left(|r| - \tfrac12\delta\right) & |r| > \delta \end{cases}$$
#
# PyTorch also has `nn.SmoothL1Loss(beta)`, which is Huber divided by $\delta$ (with
# $\beta = \delta$); the two coincide at $\delta = \beta = 1$. The derivative of each loss is the
# force with which one residual pulls on the fit. Autograd draws it for us:

# %%
r = torch.linspace(-3, 3, 601, requires_grad=True)  # residuals
zero = torch.zeros_like(r)
losses_1d = {
    "MSE: r²": F.mse_loss(r, zero, reduction="none"),
    "MAE: |r|": F.l1_loss(r, zero, reduction="none"),
    "Huber, δ = 1": F.huber_loss(r, zero, reduction="none", delta=1.0),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name, values in losses_1d.items():
    (slope,) = torch.autograd.grad(values.sum(), r)  # d loss / d r, element by element
    axes[0].plot(r.detach(), values.detach(), label=name)
    axes[1].plot(r.detach(), slope, label=name)
axes[0].set(xlabel="residual r = prediction − target", ylabel="loss", title="Loss per example")
axes[1].set(xlabel="residual r = prediction − target", ylabel="d loss / d r",
            title="Gradient: how hard one example pulls")
axes[0].legend()
axes[1].legend()
plt.show()
print("Huber(δ=2) = 2 · SmoothL1(β=2):",
      torch.allclose(F.huber_loss(r, zero, delta=2.0), 2 * F.smooth_l1_loss(r, zero, beta=2.0)))

# %% [markdown]
# Read the right panel: with MSE an example 3 units off pulls 3× harder than one 1 unit off,
# while with MAE and Huber its pull is capped. That cap is what makes them robust.
#
# **Cross-entropy** compares K logits $z$ with a class index $c$: it is the negative log of the
# softmax probability of the right class,
# $\ell(z, c) = -\log \frac{e^{z_c}}{\sum_k e^{z_k}}$. PyTorch computes it from the raw logits
# in one numerically stable step:

# %%
logits = torch.tensor([[2.0, 0.5, -1.0]])  # (B=1, K=3): raw scores, no softmax
target = torch.tensor([0])  # (B,) class index
by_hand = -torch.log_softmax(logits, dim=1)[0, target[0]]
print(f"F.cross_entropy: {F.cross_entropy(logits, target):.4f} | by hand: {by_hand:.4f}")

# %% [markdown]
# Because `nn.CrossEntropyLoss` applies the softmax itself, a softmax at the end of the model is
# a bug. It does not crash, which is why it is so common. Take a confidently wrong prediction
# (class 0 gets logit 10, the truth is class 1) and look at the loss and at the gradient that
# would correct it:

# %%
z = torch.tensor([[10.0, 0.0, 0.0]], requires_grad=True)
target = torch.tensor([1])
for name, scores in [("logits (correct)", z), ("softmax first (bug)", torch.softmax(z, dim=1))]:
    loss = F.cross_entropy(scores, target)
    (grad,) = torch.autograd.grad(loss, z)
    print(f"{name:20s} loss {loss.item():7.4f}   gradient norm {grad.norm():.1e}")

# %% [markdown]
# With the extra softmax, the loss of a badly wrong prediction is squashed from 10 to 1.55, and
# the gradient that should fix it is about $10^4$ times smaller: the model barely learns.
#
# Binary problems have the same trap with the sigmoid. For a logit of 30 and target 0 the true
# loss is $\log(1 + e^{30}) \approx 30$. `nn.BCELoss` on `sigmoid(30)` sees a probability that
# rounds to exactly 1 in float32, takes $\log 0$, and clamps it at $-100$:

# %%
z = torch.tensor([30.0], requires_grad=True)
target = torch.tensor([0.0])
for name, loss in [("sigmoid + BCELoss", F.binary_cross_entropy(torch.sigmoid(z), target)),
                   ("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits(z, target))]:
    (grad,) = torch.autograd.grad(loss, z)
    print(f"{name:18s} loss {loss.item():6.2f}   gradient {grad.item():.3f}")

# %% [markdown]
# `BCELoss` reports 100 instead of 30 **and gives a zero gradient**: a saturated example stops
# learning forever. `BCEWithLogitsLoss` computes the same loss from the logit with the log-sum-exp
# trick: exact value, gradient $\sigma(z) - y = 1$. Keep the sigmoid out of the model and use it
# only to turn logits into probabilities for reporting.
#
# Multi-label classification (several classes may be true at once, like tags on an image) is K
# independent yes/no questions: K logits and `BCEWithLogitsLoss` with a float target of the
# same shape.

# %%
logits = torch.tensor([[2.0, -1.0, 0.5, -3.0], [-0.5, 1.5, 2.5, 0.0]])  # (B=2, K=4)
tags = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])  # (B, K), several 1s allowed
print(f"multi-label loss: {F.binary_cross_entropy_with_logits(logits, tags):.4f}")
print("predicted tags:", (torch.sigmoid(logits) > 0.5).int().tolist())

# %% [markdown]
# ### Exercise 4.2 — Loss function comparison (★★★, 4 points)
#
# A sensor that occasionally glitches: the data below are $\sin(x)$ plus small noise, but
# 10 % of the readings (`spikes`) jumped up by 2 to 5 units.
#
# **Part a (2 points).** Write `huber_loss(pred, target, delta=1.0)`: the mean Huber loss of
# the formula above, by hand (no `F.huber_loss` or `F.smooth_l1_loss` inside). `pred` and
# `target` have the same shape (any shape); the result is a 0-dimensional tensor that
# autograd can differentiate. Raise `ValueError` if the shapes differ (broadcasting a `(B, 1)`
# prediction against a `(B,)` target would silently compare every prediction with every target)
# or if `delta <= 0`. The tests compare values and gradients with `F.huber_loss` for several
# `delta`.
#
# **Part b (2 points).** Train three fresh `make_sin_mlp()` networks on `x_spiky`, `y_spiky`,
# one per loss: `"mse"` with `nn.MSELoss()`, `"mae"` with `nn.L1Loss()`, `"huber"` with your
# `huber_loss` (δ = 1). Use `train_loop` with Adam (lr = 5e-3), 30 epochs, batches of 32,
# `torch.manual_seed(0)` before building each network and
# `generator=torch.Generator().manual_seed(0)` for each run. Store
#
# - `loss_models[name]`: the trained network;
# - `loss_curves[name]`: the list of epoch losses returned by `train_loop`;
# - `loss_results[name]`: the **clean error**, a float: the MSE between the network's
#   predictions on `x_grid` (in eval mode) and the clean curve $\sin$(`x_grid`);
# - `most_robust`: the name whose clean error is lowest.
#
# The tests recompute each clean error from your models; they expect the MAE network below
# 0.06 and the MSE network clearly worse (the solution gets about 0.15 for MSE, 0.01 for MAE).
#
# *Hints:* part a: `r = (pred - target).abs()`, then `torch.where(r <= delta, ..., ...)`.
# Part b: you cannot compare the three final **training** losses with each other: they measure
# error in different units. That is why the comparison uses the clean error.

# %%
gen = torch.Generator().manual_seed(42)
x_spiky = (2 * math.pi * torch.rand(500, 1, generator=gen)).to(device)  # (N, 1)
y_spiky = torch.sin(x_spiky) + 0.1 * torch.randn(500, 1, generator=gen).to(device)  # (N, 1)
spikes = (torch.rand(500, generator=gen) < 0.10).to(device)  # (N,) which readings glitched
y_spiky[spikes] += (2 + 3 * torch.rand(int(spikes.sum()), 1, generator=gen)).to(device)
print(f"{int(spikes.sum())} of 500 readings are spikes")

# %% nbgrader={"grade": false, "grade_id": "ex04_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def huber_loss(pred, target, delta=1.0):
    """Mean Huber loss of pred against target (same shape); a 0-d tensor.

    Raises ValueError if the shapes differ or delta <= 0.
    """
    ### BEGIN SOLUTION
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    r = (pred - target).abs()
    return torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
pred = torch.tensor([0.0, 0.5, 2.0, -3.0])
target = torch.zeros(4)
checks.check_close(huber_loss(torch.tensor([0.5]), torch.tensor([0.0])), torch.tensor(0.125),
                   "huber_loss for a residual of 0.5 (quadratic zone)", hint="r² / 2 there")
checks.check_close(huber_loss(torch.tensor([3.0]), torch.tensor([0.0])), torch.tensor(2.5),
                   "huber_loss for a residual of 3 (linear zone)", hint="δ (|r| − δ/2) there")
checks.check_close(huber_loss(pred, target), F.huber_loss(pred, target, delta=1.0),
                   "huber_loss([0, 0.5, 2, -3], zeros)", hint="the mean over all elements")
### BEGIN HIDDEN TESTS
gen_t = torch.Generator().manual_seed(3)
for delta in (0.3, 1.0, 2.5):
    p = (2 * torch.randn(6, 3, generator=gen_t, dtype=torch.float64)).requires_grad_(True)
    t = torch.randn(6, 3, generator=gen_t, dtype=torch.float64)
    p_before = p.detach().clone()
    mine = huber_loss(p, t, delta=delta)
    ref = F.huber_loss(p, t, delta=delta)
    checks.check_shape(mine, (), f"huber_loss(..., delta={delta})", hint="reduce with .mean()")
    checks.check_close(mine, ref, f"huber_loss(..., delta={delta})", rtol=1e-10)
    (g_mine,) = torch.autograd.grad(mine, p)
    (g_ref,) = torch.autograd.grad(ref, p)
    checks.check_close(g_mine, g_ref, f"gradient of huber_loss(..., delta={delta})", rtol=1e-8)
    checks.check_equal(p.detach(), p_before, "pred after huber_loss (must not be modified)")
checks.check_raises(lambda: huber_loss(torch.zeros(3, 1), torch.zeros(3)), ValueError,
                    "huber_loss with shapes (3, 1) and (3,)")
_ = checks.check_raises(lambda: huber_loss(torch.zeros(3), torch.zeros(3), delta=0.0),
                        ValueError, "huber_loss with delta=0")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
loss_models, loss_curves, loss_results = {}, {}, {}
most_robust = None
### BEGIN SOLUTION
loss_fns = {"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": lambda p, t: huber_loss(p, t, 1.0)}
for name, fn in loss_fns.items():
    torch.manual_seed(0)
    net = make_sin_mlp().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_curves[name] = train_loop(net, x_spiky, y_spiky, fn, optimizer, epochs=30,
                                   batch_size=32, generator=torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        loss_results[name] = F.mse_loss(net(x_grid), torch.sin(x_grid)).item()
    loss_models[name] = net
most_robust = min(loss_results, key=loss_results.get)
### END SOLUTION
for name, err in loss_results.items():
    print(f"{name:6s} clean error {err:.4f}")
print("most robust:", most_robust)

# %% nbgrader={"grade": true, "grade_id": "ex04_2_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(loss_results), ["huber", "mae", "mse"], "the keys of loss_results")
for name in ("mse", "mae", "huber"):
    checks.check_type(loss_models.get(name), nn.Module, f"loss_models[{name!r}]")
    net = loss_models[name].eval()
    with torch.no_grad():
        clean = F.mse_loss(net(x_grid), torch.sin(x_grid)).item()
    checks.check_close(loss_results[name], clean, f"loss_results[{name!r}]", rtol=1e-3,
                       hint="MSE between the model on x_grid (eval mode) and torch.sin(x_grid)")
checks.check(loss_results["mae"] < 0.06, "the MAE-trained network should ignore the spikes.",
             "clean error below 0.06", loss_results["mae"], "train it with nn.L1Loss()")
### BEGIN HIDDEN TESTS
checks.check(loss_results["mse"] > max(0.08, 2 * loss_results["mae"]),
             "the MSE-trained network should be dragged up by the spikes.",
             "clean error above 0.08 and twice MAE's", loss_results["mse"])
checks.check(loss_results["huber"] < 0.6 * loss_results["mse"],
             "Huber should be more robust than MSE.", got=loss_results)
checks.check_equal(most_robust, min(loss_results, key=loss_results.get), "most_robust")
checks.check(all(len(loss_curves.get(k, [])) == 30 for k in loss_results),
             "loss_curves must hold 30 epoch losses per loss.", got=loss_curves.keys())
checks.check(len({id(m) for m in loss_models.values()}) == 3, "three separate networks needed.")
### END HIDDEN TESTS

# %% [markdown]
# Plot the three fits against the data, spikes in red:

# %%
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(x_spiky[~spikes].cpu(), y_spiky[~spikes].cpu(), ".", ms=2, color="0.6", label="readings")
ax.plot(x_spiky[spikes].cpu(), y_spiky[spikes].cpu(), ".", ms=4, color="tab:red", label="spikes")
ax.plot(x_grid.cpu(), torch.sin(x_grid).cpu(), "k--", label="sin(x)")
for name, net in loss_models.items():
    with torch.no_grad():
        ax.plot(x_grid.cpu(), net.eval()(x_grid).cpu(), lw=2,
                label=f"{name}: clean error {loss_results[name]:.3f}")
ax.set(xlabel="x (radians)", ylabel="y",
       title="Spiky data: MSE follows the spikes, MAE ignores them")
ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
fig.tight_layout()
plt.show()

# %% [markdown]
# The MSE fit is lifted everywhere by the spikes: their squared residuals dominate the loss, so
# the network compromises between the truth and the glitches. MAE treats a spike like any other
# point and follows the median of the readings, which is the clean curve. Huber (δ = 1) sits in
# between, because residuals of 2 to 5 still fall mostly in its linear zone but pull with force
# δ = 1 each. With glitchy sensors, try MAE or Huber with a δ about the size of the honest noise.

# %% [markdown]
# ### Optimizers
#
# `torch.optim` implements every update rule of the table in section 4.2. Which to choose?
#
# | optimizer | key idea | typical start | PyTorch call | often used for |
# |---|---|---|---|---|
# | SGD | $\theta \leftarrow \theta - \eta g$ | lr = 0.01–0.1 | `SGD(params, lr=0.1)` | convex problems; the baseline; with a careful schedule, fine-tuning |
# | SGD + momentum | accumulates velocity where gradients agree | lr = 0.01–0.1, momentum = 0.9 | `SGD(params, lr=0.1, momentum=0.9)` | most image (CNN) training, with a schedule and weight decay |
# | Adam | per-parameter step from the first and second moments of the gradient | lr = 1e-3, betas = (0.9, 0.999) | `Adam(params, lr=1e-3)` | the default for quick experiments, NLP, small data |
# | AdamW | Adam with decoupled weight decay | lr = 1e-4–1e-3, weight_decay = 0.01–0.1 | `AdamW(params, lr=1e-3, weight_decay=0.01)` | transformers and large language models (BERT, GPT) |
# | RMSprop | step divided by a running RMS of the gradient | lr = 1e-3, alpha = 0.99 | `RMSprop(params, lr=1e-3)` | RNNs, reinforcement learning, non-stationary problems |
#
# A sensible default: start with Adam or AdamW at lr = 1e-3. Well-tuned SGD with momentum and a
# schedule often matches or beats Adam on image classification, but it needs that tuning.
#
# Library defaults are not the "typical start" above, and they differ between optimizers.
# Never trust a table (this one included) when you can ask the code:

# %%
for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop):
    params = inspect.signature(cls).parameters
    shown = {k: params[k].default for k in ("lr", "momentum", "betas", "alpha", "weight_decay")
             if k in params}
    print(f"{cls.__name__:8s} defaults: {shown}")

# %% [markdown]
# Two surprises worth remembering: RMSprop's default learning rate is 1e-2, ten times Adam's,
# and only AdamW decays the weights by default (weight_decay = 0.01).
#
# **Adam versus AdamW.** `Adam(weight_decay=λ)` adds $\lambda\theta$ to the gradient, the
# classic L2 penalty. But Adam then divides every gradient by $\sqrt{\hat v}$, so parameters
# with large gradients are barely decayed while the others are decayed strongly: the
# regularization gets tangled with the adaptive scaling. AdamW instead shrinks the weights
# directly, $\theta \leftarrow \theta(1 - \eta\lambda)$, the same relative amount for every
# parameter, and then takes the Adam step (Loshchilov and Hutter, *Decoupled Weight Decay
# Regularization*, 2019). One consequence: AdamW's shrinking per step is $\eta\lambda$, so with
# $\eta = 10^{-3}$ a weight decay of 0.01 removes only 0.001 % of each weight per step.
#
# From here on we also train on **real data**: the 1,797 handwritten digits of scikit-learn,
# 8×8 grey images flattened to 64 features, split once into training (60 %), validation
# (20 %) and test (20 %) sets.

# %%
x_all, y_all = digits(flat=True)  # (1797, 64) float32 in [0, 1], (1797,) int64 labels 0-9
order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))
train_idx, val_idx, test_idx = order[:1078], order[1078:1437], order[1437:]
x_train, y_train = x_all[train_idx].to(device), y_all[train_idx].to(device)
x_val, y_val = x_all[val_idx].to(device), y_all[val_idx].to(device)
x_test, y_test = x_all[test_idx].to(device), y_all[test_idx].to(device)
print(f"train {tuple(x_train.shape)}, val {tuple(x_val.shape)}, test {tuple(x_test.shape)}")
helpers.plot.image_grid(x_train[:16].reshape(-1, 8, 8).cpu(),
                        titles=[str(int(c)) for c in y_train[:16]], ncols=16, size=0.8,
                        title="Digits: 8 x 8 grey images")
plt.show()

# %% [markdown]
# ### Exercise 4.3 — Optimizer comparison (★★★, 4 points)
#
# **Part a (2 points): Adam by hand.** Write `adam_step(theta, grad, m, v, t, lr=1e-3,
# betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)`, one step of the Adam/AdamW rule of the table
# in section 4.2, on plain tensors (no autograd, no `torch.optim`):
#
# - `theta`, `grad`, `m`, `v`: tensors of the same shape; `m`, `v` are the moment estimates
#   after `t - 1` steps (zeros before the first step); `t >= 1` is the number of this step;
# - with `weight_decay = λ > 0`, first shrink `theta` by the factor `1 - lr * λ` (AdamW);
# - return the tuple `(new_theta, new_m, new_v)` **without modifying the inputs**;
# - raise `ValueError` if `t < 1`.
#
# The tests run your function and `torch.optim.Adam` / `torch.optim.AdamW` side by side on a
# quadratic loss for several steps and compare every step.
#
# **Part b (2 points): the comparison.** Write `make_optimizer(name, params)` for the five
# names of the table, with these settings (from the exercise's and the table's typical
# values): `"sgd"`: SGD, lr = 0.01; `"momentum"`: SGD, lr = 0.01, momentum = 0.9; `"adam"`:
# Adam, lr = 1e-3; `"adamw"`: AdamW, lr = 1e-3, weight_decay = 0.01; `"rmsprop"`: RMSprop,
# lr = 1e-3, alpha = 0.99. Any other name raises `ValueError`.
#
# Then train one digits classifier per optimizer with `train_loop` on `x_train`, `y_train`
# (`nn.CrossEntropyLoss()`, 15 epochs, batches of 64). For a fair comparison every run must
# start from **the same initial weights** (build `base` once after `torch.manual_seed(0)`, as
# in the starter code, and train a `copy.deepcopy(base)` per optimizer) and see **the same
# batches** (`generator=torch.Generator().manual_seed(0)` for each run). Store the epoch
# losses in `opt_histories[name]`, then answer:
#
# - `fastest_start`: the name with the lowest loss after the first epoch;
# - `lowest_final`: the name with the lowest loss after the last epoch;
# - `momentum_effect`, one letter: how does momentum help SGD here? (a) it lowers the
#   learning rate when the loss is noisy; (b) it accumulates past gradients, so steps grow
#   along directions where the gradient keeps its sign; (c) it gives each parameter its own
#   learning rate from the size of its gradients; (d) it adds noise that shakes the
#   parameters out of local minima.
#
# The tests check the optimizers' types and settings, that your histories are complete and
# consistent with your answers, that the runs started alike, and that momentum beats plain SGD
# by far.
#
# *Hints:* part a: compute with new tensors (`m_new = b1 * m + (1 - b1) * grad`), never with
# in-place operations like `m.mul_()`. Part b: `min(opt_histories, key=lambda k: ...)`.

# %% nbgrader={"grade": false, "grade_id": "ex04_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_step(theta, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam (AdamW when weight_decay > 0) step; returns (new_theta, new_m, new_v)."""
    ### BEGIN SOLUTION
    if t < 1:
        raise ValueError(f"t counts steps from 1, got {t}")
    beta1, beta2 = betas
    theta = theta * (1 - lr * weight_decay)  # decoupled weight decay (a new tensor)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_3_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(3)
A = torch.randn(5, 5, dtype=torch.float64)
H = A @ A.T + torch.eye(5, dtype=torch.float64)  # the loss is 0.5 θᵀ H θ, its gradient H θ
theta0 = torch.randn(5, dtype=torch.float64)
p = theta0.clone().requires_grad_(True)
reference_opt = torch.optim.Adam([p], lr=0.01)
zeros5 = torch.zeros(5, dtype=torch.float64)
theta, m, v = theta0.clone(), zeros5.clone(), zeros5.clone()
for t in range(1, 6):
    reference_opt.zero_grad()
    (0.5 * p @ H @ p).backward()
    reference_opt.step()
    theta, m, v = adam_step(theta, H @ theta, m, v, t, lr=0.01)
    if t == 1:
        checks.check_close((theta - theta0).abs(), torch.full((5,), 0.01, dtype=torch.float64),
                           "size of the first Adam step of each parameter", rtol=1e-4,
                           hint="with bias correction the first step is lr in every coordinate")
    checks.check_close(theta, p.detach(), f"theta after {t} steps, against torch.optim.Adam",
                       rtol=1e-7, atol=1e-10,
                       hint="m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t)")
### BEGIN HIDDEN TESTS
p = theta0.clone().requires_grad_(True)
reference_opt = torch.optim.AdamW([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
zeros5 = torch.zeros(5, dtype=torch.float64)
theta, m, v = theta0.clone(), zeros5.clone(), zeros5.clone()
for t in range(1, 8):
    reference_opt.zero_grad()
    (0.5 * p @ H @ p).backward()
    reference_opt.step()
    inputs = (theta.clone(), m.clone(), v.clone())
    grad = H @ theta
    theta_new, m_new, v_new = adam_step(theta, grad, m, v, t, lr=0.05, betas=(0.8, 0.99),
                                        eps=1e-6, weight_decay=0.3)
    for name, before, after in zip(("theta", "m", "v"), inputs, (theta, m, v)):
        checks.check_equal(after, before, f"{name} passed to adam_step (must not be modified)")
    theta, m, v = theta_new, m_new, v_new
    checks.check_close(theta, p.detach(), f"theta after {t} AdamW steps (weight_decay=0.3)",
                       rtol=1e-7, atol=1e-10, hint="decay: theta * (1 − lr λ), before the step")
    checks.check_close(m, reference_opt.state[p]["exp_avg"], f"m after {t} steps", rtol=1e-7)
    checks.check_close(v, reference_opt.state[p]["exp_avg_sq"], f"v after {t} steps", rtol=1e-7)
_ = checks.check_raises(lambda: adam_step(theta, grad, m, v, 0), ValueError, "adam_step with t=0")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_optimizer(name, params):
    """The optimizer called `name` ("sgd", "momentum", "adam", "adamw", "rmsprop") over params."""
    ### BEGIN SOLUTION
    makers = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.01),
        "momentum": lambda: torch.optim.SGD(params, lr=0.01, momentum=0.9),
        "adam": lambda: torch.optim.Adam(params, lr=1e-3),
        "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=1e-3, alpha=0.99),
    }
    if name not in makers:
        raise ValueError(f"name must be one of {sorted(makers)}, got {name!r}")
    return makers[name]()
    ### END SOLUTION


torch.manual_seed(0)
base = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt_histories = {}
fastest_start = lowest_final = momentum_effect = None
### BEGIN SOLUTION
for name in ["sgd", "momentum", "adam", "adamw", "rmsprop"]:
    net = copy.deepcopy(base)
    opt_histories[name] = train_loop(net, x_train, y_train, nn.CrossEntropyLoss(),
                                     make_optimizer(name, net.parameters()), epochs=15,
                                     batch_size=64, generator=torch.Generator().manual_seed(0))
fastest_start = min(opt_histories, key=lambda k: opt_histories[k][0])
lowest_final = min(opt_histories, key=lambda k: opt_histories[k][-1])
momentum_effect = "b"
### END SOLUTION
for name, h in opt_histories.items():
    print(f"{name:9s} epoch 1: {h[0]:.3f}   epoch 15: {h[-1]:.3f}")
print("fastest start:", fastest_start, "| lowest final:", lowest_final)

# %% nbgrader={"grade": true, "grade_id": "ex04_3_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
settings = {"sgd": ("SGD", {"lr": 0.01, "momentum": 0.0}),
            "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
            "adam": ("Adam", {"lr": 1e-3, "weight_decay": 0.0}),
            "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 0.01}),
            "rmsprop": ("RMSprop", {"lr": 1e-3, "alpha": 0.99})}
probe = nn.Linear(3, 2)
for name, (cls_name, hyper) in settings.items():
    opt = make_optimizer(name, probe.parameters())
    checks.check_equal(type(opt).__name__, cls_name, f"type of make_optimizer({name!r}, ...)")
    for key, value in hyper.items():
        checks.check_close(opt.param_groups[0][key], value, f"{key} of make_optimizer({name!r})")
    checks.check_equal(sum(p.numel() for p in opt.param_groups[0]["params"]), 8,
                       f"parameters handed to make_optimizer({name!r})")
checks.check_equal(sorted(opt_histories), sorted(settings), "the keys of opt_histories")
for name, h in opt_histories.items():
    checks.check(len(h) == 15 and all(math.isfinite(v) for v in h),
                 f"opt_histories[{name!r}] must hold 15 finite epoch losses.", got=h)
checks.check(opt_histories["momentum"][-1] < 0.5 * opt_histories["sgd"][-1],
             "momentum should leave plain SGD far behind (same lr = 0.01).",
             "momentum's final loss below half of SGD's",
             (opt_histories["momentum"][-1], opt_histories["sgd"][-1]))
### BEGIN HIDDEN TESTS
checks.check_raises(lambda: make_optimizer("adagrad", probe.parameters()), ValueError,
                    "make_optimizer('adagrad', ...)")
checks.check_equal(fastest_start, min(opt_histories, key=lambda k: opt_histories[k][0]),
                   "fastest_start")
checks.check_equal(lowest_final, min(opt_histories, key=lambda k: opt_histories[k][-1]),
                   "lowest_final")
checks.check(abs(opt_histories["adam"][0] - opt_histories["adamw"][0]) < 0.02,
             "Adam and AdamW should start alike: same initial weights, same batches.",
             got=(opt_histories["adam"][0], opt_histories["adamw"][0]),
             hint="train copy.deepcopy(base) with a freshly seeded generator for each optimizer")
checks.check(opt_histories["adam"][-1] < opt_histories["sgd"][-1], "Adam should beat plain SGD.")
checks.check(opt_histories["sgd"][0] > 2.0, "plain SGD at lr = 0.01 barely moves in one epoch.",
             got=opt_histories["sgd"][0], hint="did every run start from the untrained base?")
checks.check_equal(momentum_effect, "b", "momentum_effect")  # (c) is RMSprop/Adam, (d) a myth
### END HIDDEN TESTS

# %% [markdown]
# All five curves on one graph (log scale):

# %%
helpers.plot.training_curves(opt_histories, keys=list(opt_histories), logy=True,
                             title="Five optimizers, same network, same batches",
                             ylabel="training loss (log scale)")
plt.show()

# %% [markdown]
# Plain SGD at lr = 0.01 has hardly left the starting loss of $\ln 10 \approx 2.30$ (a
# uniform guess over ten classes) after 15 epochs. Momentum with the **same** learning rate
# takes steps up to ten times longer along consistent directions and ends far lower, on a par
# with the adaptive methods. Adam and AdamW are nearly indistinguishable here: a weight decay of
# 0.01 at lr = 1e-3 is too gentle to matter in 15 epochs. RMSprop is fastest at the start. Do
# not crown a winner from one plot: each optimizer would do better with its own tuned learning
# rate, which is the subject of the next exercise.

# %% [markdown]
# ### Learning-rate schedules
#
# A large learning rate makes fast progress early; a small one settles precisely into a minimum
# late. A **schedule** changes the learning rate during training to get both. PyTorch's
# schedulers wrap an optimizer and change its `param_groups[i]["lr"]` each time you call
# `scheduler.step()`, normally once per epoch after the training steps
# (`ReduceLROnPlateau.step(val_loss)` takes the validation loss; `OneCycleLR` is usually stepped
# after every batch). Let us draw the learning rate each one produces over 100 epochs, starting
# from lr = 0.1:

# %%
def lr_curve(make_scheduler, epochs=100, plateau_losses=None):
    """The learning rate used in each epoch under the scheduler built by make_scheduler(opt)."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(opt)
    lrs = []
    for epoch in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # a real loop trains an epoch here
        if plateau_losses is None:
            scheduler.step()
        else:
            scheduler.step(plateau_losses[epoch])  # ReduceLROnPlateau watches a metric
    return lrs


sched = torch.optim.lr_scheduler
fake_val = [max(0.4, 1.0 - 0.02 * e) for e in range(100)]  # improves, then stalls at epoch 30
schedules = {
    "StepLR(step_size=30, gamma=0.1)": lr_curve(lambda o: sched.StepLR(o, 30, gamma=0.1)),
    "ExponentialLR(gamma=0.95)": lr_curve(lambda o: sched.ExponentialLR(o, gamma=0.95)),
    "CosineAnnealingLR(T_max=100)": lr_curve(lambda o: sched.CosineAnnealingLR(o, T_max=100)),
    "OneCycleLR(max_lr=0.1)": lr_curve(lambda o: sched.OneCycleLR(o, 0.1, total_steps=100)),
    "ReduceLROnPlateau(factor=0.5, patience=5)": lr_curve(
        lambda o: sched.ReduceLROnPlateau(o, factor=0.5, patience=5), plateau_losses=fake_val),
}
fig, ax = plt.subplots(figsize=(9, 4))
for name, lrs in schedules.items():
    ax.plot(range(1, 101), lrs, label=name)
ax.set(yscale="log", xlabel="epoch", ylabel="learning rate (log scale)",
       title="Learning-rate schedules, starting from lr = 0.1")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# What to notice: `StepLR` drops by 10× every 30 epochs, in stairs. `ExponentialLR` decays
# steadily (0.95 per epoch is about 170× over 100 epochs). Cosine annealing stays high for long,
# then glides towards zero, a smooth and popular default. `OneCycleLR` first **warms up** from a
# small rate to its maximum and then anneals far below the start, which lets large rates be used
# safely. `ReduceLROnPlateau` does nothing while the (here, made-up) validation loss improves,
# and halves the rate whenever it stalls for more than 5 epochs.
#
# When to use one? Almost always for long runs or when the loss plateaus; for short runs with
# Adam a constant rate is often fine. When fine-tuning a pretrained model, a small rate with
# warm-up protects what the model already knows.
#
# ### Exercise 4.4 — Learning rate experiments (★★★, 4 points)
#
# **Part a (2 points): a sweep.** Train the same network (one `make_sin_mlp()` built after
# `torch.manual_seed(0)`, copied with `copy.deepcopy` for each run) on the first 512 sine
# examples (`x_lr`, `y_lr` below) with **plain SGD** at each learning rate in `lrs`, using
# `train_loop` with `nn.MSELoss()`, 20 epochs, batches of 32 and
# `generator=torch.Generator().manual_seed(0)` per run. Store the epoch losses in
# `lr_histories[lr]`. Then label each run in `lr_verdicts[lr]` by this rule:
#
# - `"too large"` if any of its losses is not finite (NaN or infinite) or its last loss is
#   higher than its first;
# - otherwise `"good"` if its last loss is at most twice the lowest last loss among the runs
#   that are not too large;
# - otherwise `"too small"`.
#
# Also set `best_lr`, the learning rate with the lowest finite last loss. The tests apply the
# rule to your histories and check the physics: lr = 1 must blow up, 1e-4 must crawl.
#
# **Part b (2 points): a learning-rate finder.** Sweeping five separate runs is expensive. The
# **learning-rate finder** (Smith, *Cyclical Learning Rates*, 2017; popularized by fastai) does
# it in one short run: raise the learning rate geometrically at every step and watch the
# loss. Write `lr_finder(model, optimizer, loss_fn, x, y, lr_min=1e-6, lr_max=10.0,
# num_steps=100, batch_size=32, diverge_factor=4.0, generator=None)`:
#
# - step $i = 0, 1, \dots$ uses the learning rate
#   $\text{lr}_i = \text{lr}_{\min} (\text{lr}_{\max}/\text{lr}_{\min})^{i/(n-1)}$, where
#   $n$ = `num_steps`
#   (set it in every `optimizer.param_groups[...]["lr"]`) and a random mini-batch of
#   `batch_size` examples (`torch.randint(len(x), (batch_size,), generator=generator)`); it
#   records `lr_i` and the batch loss **before** the update, then takes the training step;
# - stop right after recording a loss that is not finite or larger than
#   `diverge_factor` × the smallest loss recorded before it, or after `num_steps` steps;
# - at the end, **restore** the model's weights and the optimizer's state (learning rate
#   included) as they were before the call: the finder only looks, it must not train;
# - return `(lrs, losses)`, two lists of floats of equal length.
#
# The tests check the geometric learning rates, the stopping rule, the restoration, and the
# losses against an independent loop on a problem where every batch gives the same loss.
#
# *Hints:* part a: `math.isfinite`. Part b: save `copy.deepcopy(model.state_dict())` and
# `copy.deepcopy(optimizer.state_dict())` first, and load them back with `load_state_dict`.

# %%
x_lr, y_lr = x_sin[:512], y_sin[:512]
lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]

# %% nbgrader={"grade": false, "grade_id": "ex04_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
lr_histories, lr_verdicts = {}, {}
best_lr = None
### BEGIN SOLUTION
torch.manual_seed(0)
base_sin = make_sin_mlp().to(device)
for lr in lrs:
    net = copy.deepcopy(base_sin)
    lr_histories[lr] = train_loop(net, x_lr, y_lr, nn.MSELoss(),
                                  torch.optim.SGD(net.parameters(), lr=lr), epochs=20,
                                  batch_size=32, generator=torch.Generator().manual_seed(0))
healthy = {lr: h for lr, h in lr_histories.items()
           if all(math.isfinite(v) for v in h) and h[-1] <= h[0]}
best_final = min(h[-1] for h in healthy.values())
for lr, h in lr_histories.items():
    if lr not in healthy:
        lr_verdicts[lr] = "too large"
    elif h[-1] <= 2 * best_final:
        lr_verdicts[lr] = "good"
    else:
        lr_verdicts[lr] = "too small"
best_lr = min(healthy, key=lambda lr: healthy[lr][-1])
### END SOLUTION
for lr in lrs:
    print(f"lr = {lr:<7g} first {lr_histories[lr][0]:8.4f}  last {lr_histories[lr][-1]:8.4f}"
          f"  -> {lr_verdicts[lr]}")
print("best lr:", best_lr)

# %% nbgrader={"grade": true, "grade_id": "ex04_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(lr_histories), sorted(lrs), "the keys of lr_histories")
for lr in lrs:
    checks.check_equal(len(lr_histories[lr]), 20, f"len(lr_histories[{lr}])")


def _verdicts_by_rule(histories):
    """The rule of the exercise, applied to a dict of histories."""
    sane = {k: h for k, h in histories.items()
            if all(math.isfinite(v) for v in h) and h[-1] <= h[0]}
    lowest = min(h[-1] for h in sane.values())
    return {k: "too large" if k not in sane else "good" if h[-1] <= 2 * lowest else "too small"
            for k, h in histories.items()}


expected_verdicts = _verdicts_by_rule(lr_histories)
for lr in lrs:
    checks.check_equal(lr_verdicts.get(lr), expected_verdicts[lr], f"lr_verdicts[{lr}]",
                       hint="apply the rule to your own histories, in its order")
### BEGIN HIDDEN TESTS
checks.check_equal(lr_verdicts[1.0], "too large", "lr_verdicts[1.0] (SGD at lr = 1 diverges)")
checks.check_equal(lr_verdicts[1e-4], "too small", "lr_verdicts[1e-4]")
checks.check_equal(lr_verdicts[0.1], "good", "lr_verdicts[0.1]")
checks.check_equal(best_lr, 0.1, "best_lr")
checks.check(abs(lr_histories[1e-4][0] - lr_histories[1e-3][0]) < 0.2,
             "all runs must start from the same network.",
             got=(lr_histories[1e-4][0], lr_histories[1e-3][0]))
### END HIDDEN TESTS

# %% [markdown]
# The loss curves of the sweep (a diverged run leaves the plot at its first NaN):

# %%
fig, ax = plt.subplots(figsize=(8, 4))
for lr, h in lr_histories.items():
    finite = [v if math.isfinite(v) else np.nan for v in h]
    ax.plot(range(1, len(h) + 1), finite, "o-", ms=3, label=f"lr = {lr:g}: {lr_verdicts[lr]}")
ax.set(yscale="log", xlabel="epoch", ylabel="training loss (MSE, log scale)",
       title="One network, five learning rates (SGD)", xticks=range(2, 21, 2))
ax.legend(fontsize=9)
plt.show()
print("non-finite losses at lr = 1:", sum(not math.isfinite(v) for v in lr_histories[1.0]), "of 20")

# %% [markdown]
# Each tenfold increase of the learning rate speeds training up, until lr = 1, where the
# updates overshoot so far that the loss overflows to NaN in the first epoch (the printout
# confirms: every entry of that run is non-finite). The best rate, 0.1, is noisy in its first
# epochs: the fastest stable learning rate is usually just below the one that diverges, which is
# exactly what the finder below looks for.

# %% nbgrader={"grade": false, "grade_id": "ex04_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lr_finder(model, optimizer, loss_fn, x, y, lr_min=1e-6, lr_max=10.0, num_steps=100,
              batch_size=32, diverge_factor=4.0, generator=None):
    """Sweep the learning rate geometrically from lr_min to lr_max; return (lrs, losses).

    Stops early when the loss is not finite or exceeds diverge_factor times the best loss so far.
    Restores the model's weights and the optimizer's state before returning.
    """
    ### BEGIN SOLUTION
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    model.train()
    lrs_seen, losses, best = [], [], math.inf
    for i in range(num_steps):
        lr = lr_min * (lr_max / lr_min) ** (i / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        lrs_seen.append(lr)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > diverge_factor * best:
            break
        best = min(best, losses[-1])
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    return lrs_seen, losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
probe = make_sin_mlp().to(device)
weights_before = copy.deepcopy(probe.state_dict())
opt = torch.optim.SGD(probe.parameters(), lr=0.123, momentum=0.9)
found_lrs, found_losses = lr_finder(probe, opt, nn.MSELoss(), x_sin, y_sin, lr_min=1e-5,
                                    lr_max=10.0, num_steps=100, batch_size=32,
                                    generator=torch.Generator().manual_seed(0))
checks.check_type(found_lrs, list, "the lrs returned by lr_finder")
checks.check_equal(len(found_lrs), len(found_losses), "len(lrs) == len(losses)")
checks.check(1 < len(found_lrs) < 100,
             "with lr_max = 10, SGD must diverge and the finder stop early.",
             "between 2 and 99 steps", len(found_lrs))
geometric = torch.logspace(math.log10(1e-5), 1.0, 100, dtype=torch.float64)[:len(found_lrs)]
checks.check_close(found_lrs, geometric, "the learning rates of the finder", rtol=1e-6,
                   hint="lr_min * (lr_max / lr_min) ** (i / (num_steps - 1))")
last, before = found_losses[-1], min(found_losses[:-1])
checks.check(not math.isfinite(last) or last > 4 * before,
             "the finder must stop right after the first diverging loss.",
             "last loss > 4 x best earlier loss", (last, before))
for key, value in weights_before.items():
    checks.check_equal(probe.state_dict()[key], value, f"{key} after lr_finder (must be restored)",
                       hint="save copy.deepcopy(model.state_dict()) first, load it back at the end")
checks.check_close(opt.param_groups[0]["lr"], 0.123, "the optimizer's lr after lr_finder",
                   hint="restore the optimizer with optimizer.load_state_dict(saved)")
### BEGIN HIDDEN TESTS
# Every example is the same, so every batch gives the same loss: compare with a loop by hand.
# The constant + 1 keeps the loss away from 0, so the stopping rule only fires on divergence.
x_same, y_same = torch.full((50, 1), 0.5, device=device), torch.full((50, 1), 2.0, device=device)
line = nn.Linear(1, 1).to(device)
with torch.no_grad():
    line.weight.fill_(0.3)
    line.bias.fill_(-0.1)
found_lrs, found_losses = lr_finder(line, torch.optim.SGD(line.parameters(), lr=0.1),
                                    lambda p, t: F.mse_loss(p, t) + 1.0, x_same, y_same,
                                    lr_min=1e-3, lr_max=10.0, num_steps=30, batch_size=8)
w_ref, b_ref, best, ref_lrs, ref_losses = 0.3, -0.1, math.inf, [], []
for i in range(30):
    lr = 1e-3 * (10.0 / 1e-3) ** (i / 29)
    residual = 0.5 * w_ref + b_ref - 2.0
    ref_lrs.append(lr)
    ref_losses.append(residual**2 + 1.0)
    if ref_losses[-1] > 4 * best:
        break
    best = min(best, ref_losses[-1])
    w_ref, b_ref = w_ref - lr * 2 * residual * 0.5, b_ref - lr * 2 * residual
checks.check_equal(len(found_losses), len(ref_losses), "steps before the finder stops")
checks.check_close(found_lrs, ref_lrs, "learning rates of the finder", rtol=1e-6)
checks.check_close(found_losses, ref_losses, "losses of the finder (before each update)", rtol=2e-3)
checks.check_close(line.weight, torch.full((1, 1), 0.3), "weight restored after lr_finder")
_, short = lr_finder(line, torch.optim.SGD(line.parameters(), lr=0.1), nn.MSELoss(), x_same,
                     y_same, lr_min=1e-8, lr_max=1e-7, num_steps=7, batch_size=4)
checks.check_equal(len(short), 7, "steps of a finder that never diverges (num_steps=7)")
### END HIDDEN TESTS

# %% [markdown]
# Now the finder's curve for the sine network and SGD. The raw losses are noisy (each comes
# from one random batch), so we also draw a smoothed version, an exponential moving average,
# only for the eye. How to read it: on the left the learning rate is too small to change
# anything; then the loss falls, fastest where the curve is steepest; it bottoms out; and just
# beyond it explodes. A popular rule (fastai's) takes a tenth of the learning rate at the
# minimum, a safe choice; the steep part just below the minimum usually trains faster.

# %%
torch.manual_seed(0)
finder_net = make_sin_mlp().to(device)
finder_opt = torch.optim.SGD(finder_net.parameters(), lr=0.01)
finder_lrs, finder_losses = lr_finder(finder_net, finder_opt, nn.MSELoss(), x_sin, y_sin,
                                      lr_min=1e-5, lr_max=10.0, num_steps=100, batch_size=128,
                                      generator=torch.Generator().manual_seed(0))
smooth, avg = [], finder_losses[0]
for v in finder_losses:
    avg = 0.8 * avg + 0.2 * v if math.isfinite(v) else avg
    smooth.append(avg)
lowest = finder_lrs[int(np.argmin(smooth))]
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(finder_lrs, finder_losses, ".", ms=4, alpha=0.5, label="loss of each step")
ax.plot(finder_lrs, smooth, lw=2, label="smoothed")
ax.axvline(lowest, color="k", ls=":", lw=1, label=f"minimum of the smoothed loss: {lowest:.2g}")
ax.axvline(lowest / 10, color="k", ls="--", lw=1, label=f"a tenth of it: {lowest / 10:.2g}")
ax.set(xscale="log", yscale="log", xlabel="learning rate (log scale)", ylabel="loss (MSE)",
       title=f"Learning-rate finder: {len(finder_lrs)} steps until the loss blew up")
ax.legend(fontsize=9)
plt.show()
print(f"finder: lowest smoothed loss at lr = {lowest:.2g}, blew up at lr = {finder_lrs[-1]:.2g}")
print("sweep of part a, last loss:", {lr: round(h[-1], 3) for lr, h in lr_histories.items()})

# %% [markdown]
# One run of a hundred steps located the scale of good learning rates: the loss falls fastest
# between about $10^{-3}$ and a few $10^{-2}$ and blows up a little above its minimum. The five
# full runs of the sweep agree on the coarse picture (0.01 too slow, 1 divergent) but found
# 0.1 best, somewhat above where the finder's loss exploded. The finder raises the learning
# rate *while the weights move*, and a 4× jump of one noisy batch loss ends it, so it is a
# cautious, fast estimate of the scale, right within a factor of a few. Use it to choose the
# range, then confirm with one or two real runs.

# %% [markdown]
# ### Gradient clipping
#
# Sometimes one batch produces a huge gradient (a cliff in the loss surface, common in
# recurrent networks and transformers), and a single step throws the parameters far away.
# **Clipping** caps the step. Two ways, called between `loss.backward()` and `optimizer.step()`:
#
# - `nn.utils.clip_grad_norm_(params, max_norm)`: if the norm $\lVert g \rVert$ of **all**
#   gradients together (as one long vector) exceeds `max_norm`, scale them all by
#   $\text{max\_norm} / \lVert g \rVert$. The direction is kept; it returns the norm before
#   clipping, handy for monitoring;
# - `nn.utils.clip_grad_value_(params, clip_value)`: clamp each element to
#   $[-c, c]$ with $c$ = `clip_value`, which changes the direction.

# %%
for clip in ("norm", "value"):
    param = nn.Parameter(torch.zeros(2))
    param.grad = torch.tensor([0.5, 4.0])  # a gradient of norm 4.03
    if clip == "norm":
        total = nn.utils.clip_grad_norm_([param], max_norm=1.0)
        print(f"clip_grad_norm_:  norm before {total:.3f}", end="  ")
    else:
        nn.utils.clip_grad_value_([param], clip_value=1.0)
        print("clip_grad_value_:                  ", end="  ")
    angle = math.degrees(math.atan2(param.grad[1], param.grad[0]))
    print(f"grad after {param.grad.tolist()}, direction {angle:.1f}° (was 82.9°)")

# %% [markdown]
# Clipping by norm keeps the direction (82.9°) and shortens the step; clipping by value turns a
# mostly-vertical step into a diagonal one (63.4°). Prefer the norm. Typical `max_norm` is 1 to
# 5; always for RNNs and transformers, and whenever the loss spikes. Since the norm is global,
# one layer with an enormous gradient shrinks the steps of every layer.
#
# ### Validation: train and eval modes
#
# The training loss says how well the model fits the data it has seen; what we care about is
# data it has not seen. So we hold out a **validation set**, never train on it, and evaluate on
# it after every epoch. Two switches matter when evaluating:
#
# - `model.eval()` changes the behaviour of some layers: dropout stops dropping, batch norm
#   uses its running statistics instead of the batch's. `model.train()` switches back;
# - `torch.no_grad()` stops autograd from recording the graph, which evaluation does not need
#   (no memory kept for a backward pass that never comes).

# %%
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
xb = torch.randn(3, 4)
net.train()
print("train mode, two calls equal?", torch.equal(net(xb), net(xb)))
net.eval()
with torch.no_grad():
    out = net(xb)
print("eval mode,  two calls equal?", torch.equal(out, net(xb)))
print("under no_grad: requires_grad =", out.requires_grad, "| grad_fn =", out.grad_fn)

# %% [markdown]
# In training mode dropout makes the network random, so validation metrics computed in that mode
# are noisy and pessimistic. Forgetting `model.eval()` is a silent bug; forgetting
# `model.train()` afterwards is another (training then continues without dropout).
#
# ### Early stopping
#
# Train long enough and a flexible model starts to memorize the training set: the training loss
# keeps falling while the validation loss turns around and rises. That turning point is where
# **overfitting** starts. Early stopping watches the validation loss and
#
# 1. remembers the best value so far (and saves the weights of that epoch: a **checkpoint**);
# 2. counts the epochs since the last improvement, where "improvement" means lower than the
#    best by more than `min_delta`;
# 3. stops when that count reaches the **patience**, and restores the best weights.
#
# The patience trades time for safety: validation curves are noisy, so one bad epoch should not
# end training.
#
# ### Exercise 4.5 — Overfitting detection (★★★★★, 5 points)
#
# A small, messy data set: 100 digits labelled by a hurried annotator who, for 20 % of them,
# typed a random digit instead of looking (so about 18 % of the labels are wrong), split into
# 80 for training and 20 for validation. A large network can memorize every label, wrong ones
# included. A separate test set of the remaining 1,697 digits, with correct labels, measures
# what was really learned.
#
# **Part a (2 points).** Write the class `EarlyStopping(patience=5, min_delta=0.0)`:
#
# - raise `ValueError` unless `patience` is an int >= 1 and `min_delta >= 0`;
# - `step(val_loss)` is called once per epoch (epochs counted from 1) and returns `True` when
#   training should stop. A loss counts as an improvement if it is lower than `best - min_delta`
#   (a NaN never improves);
# - attributes after each call: `best` (the best loss so far, `math.inf` before any),
#   `best_epoch` (the epoch of `best`, 0 before any), `counter` (epochs since the last
#   improvement), `improved` (whether this call improved). `step` returns
#   `counter >= patience`.
#
# **Part b (2 points).** Write `train_with_validation(model, optimizer, x_train, y_train, x_val,
# y_val, epochs, stopper=None)`, full-batch training of a classifier with cross-entropy. Each
# epoch: one training step on all of `x_train` in training mode (record its loss, computed before
# the update, in `"train_loss"`), then the loss on `x_val` in eval mode without gradients
# (record it in `"val_loss"`). With a `stopper`: call `stopper.step(val_loss)` each epoch, keep a
# copy of the weights (`copy.deepcopy(model.state_dict())`) whenever it reports an improvement,
# stop when it says so, and load the best weights back into the model before returning.
# Return `{"train_loss": [...], "val_loss": [...]}` with one float per epoch run.
#
# **Part c (1 point).** Run four variants, each with `torch.manual_seed(0)` before building
# its network with `make_big_mlp` (given below), Adam(W) at lr = 1e-3 and 100 epochs:
#
# | name | network | optimizer | stopper |
# |---|---|---|---|
# | `"plain"` | `make_big_mlp()` | `torch.optim.Adam(lr=1e-3)` | none |
# | `"dropout"` | `make_big_mlp(dropout=0.5)` | `torch.optim.Adam(lr=1e-3)` | none |
# | `"weight_decay"` | `make_big_mlp()` | `torch.optim.AdamW(lr=1e-3, weight_decay=1.0)` | none |
# | `"early_stopping"` | `make_big_mlp()` | `torch.optim.Adam(lr=1e-3)` | `EarlyStopping(patience=10)` |
#
# Store `overfit_histories[name]` (the dicts returned), `overfit_models[name]` (the trained
# networks) and `overfit_results[name]`: the cross-entropy on the test set `x_big_test`,
# `y_big_test` (eval mode). Finally `overfit_epoch`: the epoch (counted from 1) at which the
# plain run's validation loss was lowest, where overfitting starts. The tests recompute the
# test losses and expect the plain run to overfit and every remedy to beat it on the test set.
#
# *Hints:* part a, the NaN rule comes for free: `nan < x` is `False`. Part b, a `stopper` of
# `None` means "train all epochs". Part c: a weight decay of 1.0 looks huge, but AdamW shrinks
# the weights by only lr × λ = 0.1 % per step.

# %%
gen = torch.Generator().manual_seed(5)
order = torch.randperm(len(x_all), generator=gen)
noisy_labels = y_all.clone()
wrong = torch.rand(len(y_all), generator=gen) < 0.2
noisy_labels[wrong] = torch.randint(0, 10, (int(wrong.sum()),), generator=gen)  # random guesses
x_small_train, y_small_train = x_all[order[:80]].to(device), noisy_labels[order[:80]].to(device)
x_small_val, y_small_val = x_all[order[80:100]].to(device), noisy_labels[order[80:100]].to(device)
x_big_test, y_big_test = x_all[order[100:]].to(device), y_all[order[100:]].to(device)  # true labels
n_wrong = int((y_small_train != y_all[order[:80]].to(device)).sum())
print(f"wrong labels in the small training set: {n_wrong} of 80")


def make_big_mlp(dropout=0.0):
    """A 64 -> 256 -> 256 -> 10 MLP, far too large for 80 examples; optional dropout."""
    layers = [nn.Linear(64, 256), nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    layers += [nn.Linear(256, 256), nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    layers += [nn.Linear(256, 10)]
    return nn.Sequential(*layers).to(device)


# %% nbgrader={"grade": false, "grade_id": "ex04_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class EarlyStopping:
    """Signal a stop once the validation loss has not improved for `patience` epochs."""

    def __init__(self, patience=5, min_delta=0.0):
        ### BEGIN SOLUTION
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.counter = math.inf, 0, 0
        self.improved, self.epoch = False, 0
        ### END SOLUTION

    def step(self, val_loss):
        """Record one epoch's validation loss; return True when training should stop."""
        ### BEGIN SOLUTION
        self.epoch += 1
        self.improved = val_loss < self.best - self.min_delta
        if self.improved:
            self.best, self.best_epoch, self.counter = val_loss, self.epoch, 0
        else:
            self.counter += 1
        return self.counter >= self.patience
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_5_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
stopper = EarlyStopping(patience=3)
decisions = [stopper.step(v) for v in [1.0, 0.8, 0.85, 0.9, 0.95]]
checks.check_equal(decisions, [False, False, False, False, True],
                   "step() for losses 1.0, 0.8, 0.85, 0.9, 0.95 with patience 3",
                   hint="stop once 3 epochs in a row failed to beat the best (0.8)")
checks.check_equal(stopper.best, 0.8, "stopper.best")
checks.check_equal(stopper.best_epoch, 2, "stopper.best_epoch (epochs counted from 1)")
checks.check_equal(stopper.counter, 3, "stopper.counter")
checks.check_equal(stopper.improved, False, "stopper.improved after a worse loss")
### BEGIN HIDDEN TESTS
fresh = EarlyStopping()
checks.check_equal((fresh.best, fresh.best_epoch, fresh.counter), (math.inf, 0, 0),
                   "(best, best_epoch, counter) before any step")


def _reference_stops(values, patience, min_delta):
    best, count, stops, improved = math.inf, 0, [], []
    for v in values:
        better = v < best - min_delta
        best, count = (v, 0) if better else (best, count + 1)
        stops.append(count >= patience)
        improved.append(better)
    return stops, improved


gen_t = torch.Generator().manual_seed(11)
for patience, min_delta in [(1, 0.0), (2, 0.05), (4, 0.0), (3, 0.01)]:
    values = (1.0 + 0.1 * torch.randn(12, generator=gen_t)).tolist()
    stopper = EarlyStopping(patience=patience, min_delta=min_delta)
    got = [(stopper.step(v), stopper.improved) for v in values]
    stops, improved = _reference_stops(values, patience, min_delta)
    checks.check_equal([g[0] for g in got], stops, f"stop decisions (patience={patience}, "
                       f"min_delta={min_delta}) for {[round(v, 3) for v in values]}")
    checks.check_equal([g[1] for g in got], improved, f"improved flags (min_delta={min_delta})")
stopper = EarlyStopping(patience=2)
stopper.step(1.0)
stopper.step(float("nan"))
checks.check_equal((stopper.best, stopper.counter), (1.0, 1), "(best, counter) after a NaN loss")
for bad in [dict(patience=0), dict(patience=2.5), dict(min_delta=-0.1)]:
    checks.check_raises(lambda: EarlyStopping(**bad), ValueError, f"EarlyStopping(**{bad})")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_with_validation(model, optimizer, x_train, y_train, x_val, y_val, epochs, stopper=None):
    """Full-batch training with a validation pass per epoch; optional early stopping.

    Returns {"train_loss": [...], "val_loss": [...]}, one float per epoch run.
    """
    ### BEGIN SOLUTION
    history = {"train_loss": [], "val_loss": []}
    best_state = None
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train), y_train)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(x_val), y_val).item()
        history["train_loss"].append(loss.item())
        history["val_loss"].append(val_loss)
        if stopper is not None:
            stop = stopper.step(val_loss)
            if stopper.improved:
                best_state = copy.deepcopy(model.state_dict())
            if stop:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_5_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(5)
xa, ya = torch.randn(30, 4, device=device), torch.randint(0, 3, (30,), device=device)
xv, yv = torch.randn(12, 4, device=device), torch.randint(0, 3, (12,), device=device)
net = nn.Linear(4, 3).to(device)
reference = copy.deepcopy(net)
history = train_with_validation(net, torch.optim.SGD(net.parameters(), lr=0.5), xa, ya, xv, yv,
                                epochs=6)
checks.check_type(history, dict, "train_with_validation(...)")
checks.check_equal(sorted(history), ["train_loss", "val_loss"], "the keys of the history")
reference_opt = torch.optim.SGD(reference.parameters(), lr=0.5)
train_ref, val_ref = [], []
for _ in range(6):  # the independent reference loop
    reference_opt.zero_grad()
    loss = F.cross_entropy(reference(xa), ya)
    loss.backward()
    reference_opt.step()
    train_ref.append(loss.item())
    with torch.no_grad():
        val_ref.append(F.cross_entropy(reference(xv), yv).item())
checks.check_close(history["train_loss"], train_ref, "history['train_loss']", rtol=1e-5,
                   hint="the loss of each epoch's training step, computed before the update")
checks.check_close(history["val_loss"], val_ref, "history['val_loss']", rtol=1e-5,
                   hint="the validation loss after the epoch's update")
### BEGIN HIDDEN TESTS
# Validation must run in eval mode: with dropout, only then is it reproducible afterwards.
torch.manual_seed(6)
dropper = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).to(device)
history = train_with_validation(dropper, torch.optim.Adam(dropper.parameters(), lr=1e-2),
                                xa, ya, xv, yv, epochs=4)
dropper.eval()
with torch.no_grad():
    val_now = F.cross_entropy(dropper(xv), yv).item()
checks.check_close(history["val_loss"][-1], val_now, "the last val_loss (eval mode)", rtol=1e-5,
                   hint="call model.eval() before the validation pass")
# Early stopping: wrong validation labels make the validation loss rise as the model learns.
torch.manual_seed(7)
net = nn.Linear(4, 3).to(device)
stopper = EarlyStopping(patience=3)
history = train_with_validation(net, torch.optim.SGD(net.parameters(), lr=0.5), xa, ya, xa,
                                (ya + 1) % 3, epochs=60, stopper=stopper)
checks.check(len(history["val_loss"]) < 60, "the stopper must end the run early.",
             got=len(history["val_loss"]))
checks.check_equal(len(history["val_loss"]), stopper.best_epoch + 3,
                   "epochs run (best epoch + patience)")
with torch.no_grad():
    val_now = F.cross_entropy(net(xa), (ya + 1) % 3).item()
checks.check_close(val_now, min(history["val_loss"]), "validation loss of the returned model",
                   rtol=1e-5, hint="load the weights of the best epoch back before returning")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_5_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
overfit_histories, overfit_models, overfit_results = {}, {}, {}
overfit_epoch = None
### BEGIN SOLUTION
variants = {
    "plain": (0.0, lambda p: torch.optim.Adam(p, lr=1e-3), None),
    "dropout": (0.5, lambda p: torch.optim.Adam(p, lr=1e-3), None),
    "weight_decay": (0.0, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1.0), None),
    "early_stopping": (0.0, lambda p: torch.optim.Adam(p, lr=1e-3), EarlyStopping(patience=10)),
}
for name, (p_drop, make_opt, stopper) in variants.items():
    torch.manual_seed(0)
    net = make_big_mlp(p_drop)
    overfit_histories[name] = train_with_validation(
        net, make_opt(net.parameters()), x_small_train, y_small_train, x_small_val, y_small_val,
        epochs=100, stopper=stopper)
    net.eval()
    with torch.no_grad():
        overfit_results[name] = F.cross_entropy(net(x_big_test), y_big_test).item()
    overfit_models[name] = net
overfit_epoch = int(np.argmin(overfit_histories["plain"]["val_loss"])) + 1
### END SOLUTION
for name, test_loss in overfit_results.items():
    h = overfit_histories[name]
    print(f"{name:15s} epochs {len(h['val_loss']):3d}  final train {h['train_loss'][-1]:.3f}  "
          f"final val {h['val_loss'][-1]:.3f}  test {test_loss:.3f}")
print("overfitting starts after epoch", overfit_epoch)

# %% nbgrader={"grade": true, "grade_id": "ex04_5_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
names = ["dropout", "early_stopping", "plain", "weight_decay"]
checks.check_equal(sorted(overfit_results), names, "the keys of overfit_results")
for name in names:
    checks.check_type(overfit_models.get(name), nn.Module, f"overfit_models[{name!r}]")
    net = overfit_models[name].eval()
    with torch.no_grad():
        test_loss = F.cross_entropy(net(x_big_test), y_big_test).item()
    checks.check_close(overfit_results[name], test_loss, f"overfit_results[{name!r}]", rtol=1e-4,
                       hint="cross-entropy of the model on x_big_test, y_big_test in eval mode")
plain = overfit_histories["plain"]
checks.check_equal(overfit_epoch, int(np.argmin(plain["val_loss"])) + 1,
                   "overfit_epoch (the epoch of the lowest plain validation loss, from 1)")
### BEGIN HIDDEN TESTS
checks.check(len(plain["val_loss"]) == 100 and plain["train_loss"][-1] < 0.1,
             "the plain run should train 100 epochs and memorize its training set.",
             got=(len(plain["val_loss"]), plain["train_loss"][-1]))
checks.check(plain["val_loss"][-1] > 1.5 * min(plain["val_loss"]) and overfit_epoch < 70,
             "the plain run should overfit: validation loss rising well above its minimum.")
for name in ("dropout", "weight_decay", "early_stopping"):
    checks.check(overfit_results[name] < overfit_results["plain"],
                 f"{name} should generalize better than the plain run.", got=overfit_results)
checks.check(len(overfit_histories["early_stopping"]["val_loss"]) < 100,
             "early stopping should end its run before epoch 100.")
### END HIDDEN TESTS

# %% [markdown]
# The picture of overfitting: the plain run's training and validation losses, and the
# validation losses of the three remedies.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
helpers.plot.training_curves(overfit_histories["plain"], ax=axes[0], logy=True,
                             title="Plain run: train falls, validation turns around",
                             ylabel="cross-entropy (log scale)")
axes[0].axvline(overfit_epoch, color="k", ls="--", lw=1)
axes[0].text(overfit_epoch + 2, 1.0, f"overfitting starts\n(epoch {overfit_epoch})", fontsize=9)
for name, h in overfit_histories.items():
    axes[1].plot(range(1, len(h["val_loss"]) + 1), h["val_loss"],
                 label=f"{name}: test loss {overfit_results[name]:.2f}")
axes[1].set(xlabel="epoch", ylabel="validation cross-entropy",
            title="Validation loss of the four variants")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# Left: the training loss falls towards zero, because the network memorizes all 80 labels,
# the wrong ones too, while the validation loss bottoms out at the dashed line and then climbs,
# as the network grows confidently wrong on new data. Right: dropout slows the memorization
# and keeps the validation loss much lower, weight decay somewhat lower; early stopping simply
# quits soon after the dashed line and keeps the weights of its best epoch. The legend gives
# each variant's loss on the 1,697 test digits: every remedy beats the plain run.
#
# One caution about the numbers: with only 20 validation examples, the validation curve is
# noisy, and choosing the epoch on it makes the best validation loss look better than the model
# really is. That is why the comparison uses the separate test set.

# %% [markdown]
# ### Exercise 4.6 — Complete training pipeline (★★★★★, 5 points)
#
# Time to put everything together on the digits: mini-batches from `DataLoader`s, a progress
# bar, validation after every epoch, a learning-rate schedule, a checkpoint of the best model,
# early stopping, and a final, single evaluation on the test set. (Chapter 5 is all about
# `Dataset` and `DataLoader`; here it is enough that iterating over a loader yields
# `(inputs, targets)` batches, and that the loaders below are already built for you.)
#
# **Part a (1 point).** Write `evaluate_loader(model, loader)`: the mean cross-entropy and the
# accuracy of `model` over all batches of `loader`, in eval mode and without gradients, both
# weighted by examples (the last batch may be smaller). Move each batch to the model's device.
# Return `(loss, accuracy)` as two floats.
#
# **Part b (4 points).** Write `run_pipeline(model, train_loader, val_loader, test_loader,
# ckpt_dir, max_epochs=60, patience=5, lr=1e-2, progress=True)`:
#
# - optimizer `torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)`, loss
#   cross-entropy, scheduler `torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
#   patience=2)` stepped once per epoch with the validation loss, and an
#   `EarlyStopping(patience)` from exercise 4.5;
# - a `tqdm` progress bar over the epochs (`disable=not progress`) showing the latest losses
#   with `set_postfix`;
# - each epoch: train on all batches (training mode; record the example-weighted mean loss),
#   evaluate on `val_loader` with `evaluate_loader`, record the learning rate the epoch used,
#   step the scheduler, step the stopper; when the stopper reports an improvement save
#   `model.state_dict()` to `ckpt_dir / "best.pt"` with `torch.save`; stop when it says so;
# - after the loop, load the best checkpoint back into the model
#   (`torch.load(path, map_location=device, weights_only=True)`) and evaluate it **once** on the
#   test set;
# - return a dict with `"history"` (lists `"train_loss"`, `"val_loss"`, `"val_acc"`, `"lr"`, one
#   entry per epoch), `"best_epoch"`, `"stopped_epoch"` (the number of epochs run),
#   `"checkpoint"` (the path of the file), `"test_loss"` and `"test_acc"`.
#
# The run below trains the network given in the starter code. The tests reload your
# checkpoint and check that it is the best epoch's model, that the run stopped exactly
# `patience` epochs after its best epoch, that the schedule lowered the learning rate, and that
# the model reaches at least **93 %** test accuracy (the solution reaches about 97 %).
#
# *Hints:* `Path(ckpt_dir) / "best.pt"`. Record `optimizer.param_groups[0]["lr"]` before
# `scheduler.step(val_loss)`. The test set is touched once, at the very end: every decision
# (schedule, stopping, checkpoint) is made on validation data.

# %%
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True,
                          generator=torch.Generator().manual_seed(0))
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)
test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
xb, yb = next(iter(train_loader))
print(f"{len(train_loader)} training batches; one batch: inputs {tuple(xb.shape)}, "
      f"targets {tuple(yb.shape)}; validation batches: {[len(b[1]) for b in val_loader]}")

# %% nbgrader={"grade": false, "grade_id": "ex04_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def evaluate_loader(model, loader):
    """Example-weighted mean cross-entropy and accuracy over a loader; returns two floats."""
    ### BEGIN SOLUTION
    model.eval()
    model_device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(model_device), targets.to(model_device)
            logits = model(inputs)
            total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(dim=1) == targets).sum().item()
            count += len(targets)
    return total_loss / count, correct / count
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex04_6_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(8)
xe, ye = torch.randn(10, 64), torch.randint(0, 10, (10,))
dropper = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)).to(device)
dropper.train()
result = evaluate_loader(dropper, DataLoader(TensorDataset(xe, ye), batch_size=4))  # 4, 4, 2
checks.check_type(result, tuple, "evaluate_loader(...)", hint="return (loss, accuracy)")
dropper.eval()
with torch.no_grad():
    logits = dropper(xe.to(device))
reference = (F.cross_entropy(logits, ye.to(device)).item(),
             (logits.argmax(dim=1) == ye.to(device)).float().mean().item())
checks.check_close(result[0], reference[0], "the loss from evaluate_loader", rtol=1e-5,
                   hint="eval mode; weight each batch by its size (reduction='sum', then / count)")
checks.check_close(result[1], reference[1], "the accuracy from evaluate_loader")
### BEGIN HIDDEN TESTS
checks.check(all(isinstance(v, float) for v in result), "loss and accuracy must be floats.",
             got=[type(v).__name__ for v in result])
xe, ye = torch.randn(7, 64), torch.randint(0, 10, (7,))
result = evaluate_loader(dropper.train(), DataLoader(TensorDataset(xe, ye), batch_size=3))
with torch.no_grad():
    logits = dropper.eval()(xe.to(device))
checks.check_close(result[0], F.cross_entropy(logits, ye.to(device)).item(),
                   "the loss with batches of 3, 3 and 1", rtol=1e-5)
checks.check_close(result[1], (logits.argmax(1) == ye.to(device)).float().mean().item(),
                   "the accuracy with batches of 3, 3 and 1")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex04_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def run_pipeline(model, train_loader, val_loader, test_loader, ckpt_dir, max_epochs=60,
                 patience=5, lr=1e-2, progress=True):
    """Train with validation, LR schedule, checkpointing and early stopping; test the best model.

    Returns a dict: history (train_loss, val_loss, val_acc, lr per epoch), best_epoch,
    stopped_epoch, checkpoint (path), test_loss, test_acc.
    """
    ### BEGIN SOLUTION
    model_device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    stopper = EarlyStopping(patience)
    checkpoint = Path(ckpt_dir) / "best.pt"
    history = {"train_loss": [], "val_loss": [], "val_acc": [], "lr": []}
    bar = tqdm(range(1, max_epochs + 1), desc="epochs", disable=not progress)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(model_device), targets.to(model_device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(targets)
            count += len(targets)
        val_loss, val_acc = evaluate_loader(model, val_loader)
        history["train_loss"].append(total / count)
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        bar.set_postfix(train=f"{total / count:.3f}", val=f"{val_loss:.3f}", acc=f"{val_acc:.3f}")
        scheduler.step(val_loss)
        stop = stopper.step(val_loss)
        if stopper.improved:
            torch.save(model.state_dict(), checkpoint)
        if stop:
            break
    model.load_state_dict(torch.load(checkpoint, map_location=model_device, weights_only=True))
    test_loss, test_acc = evaluate_loader(model, test_loader)
    return {"history": history, "best_epoch": stopper.best_epoch, "stopped_epoch": epoch,
            "checkpoint": checkpoint, "test_loss": test_loss, "test_acc": test_acc}
    ### END SOLUTION


# %% [markdown]
# Run the pipeline. The checkpoint goes to a fresh temporary directory, which is deleted when
# the kernel stops, so nothing is left in your course folder.

# %%
torch.manual_seed(0)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True,
                          generator=torch.Generator().manual_seed(0))  # reseeded: reruns agree
pipeline_model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2),
                               nn.Linear(128, 10)).to(device)
ckpt_store = tempfile.TemporaryDirectory(prefix="ch04_")  # deleted when the kernel stops
ckpt_dir = Path(ckpt_store.name)
pipeline_result = run_pipeline(pipeline_model, train_loader, val_loader, test_loader, ckpt_dir,
                               progress=not helpers.grading())
print(f"best epoch {pipeline_result['best_epoch']}, stopped after epoch "
      f"{pipeline_result['stopped_epoch']}; checkpoint: {pipeline_result['checkpoint']}")
print(f"test loss {pipeline_result['test_loss']:.4f}, test accuracy "
      f"{pipeline_result['test_acc']:.2%}")

# %% nbgrader={"grade": true, "grade_id": "ex04_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(pipeline_result, dict, "pipeline_result")
keys = ["best_epoch", "checkpoint", "history", "stopped_epoch", "test_acc", "test_loss"]
checks.check_equal(sorted(pipeline_result), keys, "the keys of run_pipeline's result")
history = pipeline_result["history"]
n_epochs = len(history["val_loss"])
for key in ("train_loss", "val_loss", "val_acc", "lr"):
    checks.check_equal(len(history[key]), n_epochs, f"len(history[{key!r}])")
checks.check_equal(pipeline_result["stopped_epoch"], n_epochs, "stopped_epoch (epochs run)")
best = int(np.argmin(history["val_loss"])) + 1
checks.check_equal(pipeline_result["best_epoch"], best, "best_epoch (lowest validation loss)")
checks.check(n_epochs < 60 and n_epochs == best + 5,
             "early stopping should end the run 5 epochs (the patience) after the best one.",
             f"{best + 5} epochs", n_epochs)
path = Path(pipeline_result["checkpoint"])
checks.check(path.is_file() and path.parent == ckpt_dir, "the checkpoint file must be in ckpt_dir.",
             str(ckpt_dir / "best.pt"), str(path))
reloaded = copy.deepcopy(pipeline_model)
reloaded.load_state_dict(torch.load(path, map_location=device, weights_only=True))
reloaded.eval()
with torch.no_grad():
    val_of_checkpoint = F.cross_entropy(reloaded(x_val), y_val).item()
checks.check_close(val_of_checkpoint, min(history["val_loss"]), "validation loss of the checkpoint",
                   rtol=1e-4, hint="save only when the stopper reports an improvement")
### BEGIN HIDDEN TESTS
for key, value in reloaded.state_dict().items():
    checks.check_equal(pipeline_model.state_dict()[key], value,
                       f"{key} of the returned model (the best checkpoint must be loaded back)")
checks.check_close(history["lr"][0], 1e-2, "the learning rate of the first epoch")
checks.check(all(b <= a for a, b in zip(history["lr"], history["lr"][1:]))
             and history["lr"][-1] < history["lr"][0],
             "ReduceLROnPlateau should have lowered the learning rate before the stop.",
             got=history["lr"])
pipeline_model.eval()
with torch.no_grad():
    logits = pipeline_model(x_test)
checks.check_close(pipeline_result["test_loss"], F.cross_entropy(logits, y_test).item(),
                   "test_loss", rtol=1e-4)
checks.check_close(pipeline_result["test_acc"], (logits.argmax(1) == y_test).float().mean().item(),
                   "test_acc")
# With lr = 0 nothing improves after epoch 1: the run must last exactly 1 + patience epochs.
torch.manual_seed(9)
still = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(device)
with tempfile.TemporaryDirectory() as tmp:
    frozen_run = run_pipeline(still, train_loader, val_loader, test_loader, Path(tmp),
                              max_epochs=20, patience=2, lr=0.0, progress=False)
checks.check_equal((frozen_run["best_epoch"], frozen_run["stopped_epoch"]), (1, 3),
                   "(best_epoch, stopped_epoch) of a run with lr = 0 and patience 2")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex04_6_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
pipeline_model.eval()
with torch.no_grad():
    test_accuracy = (pipeline_model(x_test).argmax(1) == y_test).float().mean().item()
checks.check(test_accuracy >= 0.93, "the pipeline's model is not accurate enough on the test set.",
             "at least 93 %", f"{test_accuracy:.2%}",
             "check the training loop, the checkpoint reload and the schedule")
### BEGIN HIDDEN TESTS
checks.check(pipeline_result["test_acc"] >= 0.93, "the reported test accuracy is too low.",
             got=pipeline_result["test_acc"])
checks.check(max(pipeline_result["history"]["val_acc"]) >= 0.93,
             "the validation accuracy should reach 93 %.",
             got=pipeline_result["history"]["val_acc"])
### END HIDDEN TESTS

# %% [markdown]
# The run's history, with the learning rate on a second axis:

# %%
history = pipeline_result["history"]
epochs_run = range(1, len(history["val_loss"]) + 1)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(epochs_run, history["train_loss"], "o-", ms=3, label="train loss")
ax.plot(epochs_run, history["val_loss"], "o-", ms=3, label="validation loss")
ax.axvline(pipeline_result["best_epoch"], color="k", ls="--", lw=1, label="best epoch (checkpoint)")
ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy (log scale)",
       title=f"Digits pipeline: test accuracy {pipeline_result['test_acc']:.1%}")
lr_axis = ax.twinx()
lr_axis.step(epochs_run, history["lr"], where="mid", color="tab:green", alpha=0.6)
lr_axis.set_ylabel("learning rate", color="tab:green")
lr_axis.spines["right"].set_visible(True)
ax.legend(loc="upper right")
plt.show()

# %% [markdown]
# The validation loss stops improving after a few epochs; the plateau scheduler halves the
# learning rate (green steps) when it stalls, and early stopping ends the run `patience` epochs
# after the best epoch, whose weights the checkpoint kept. The test accuracy in the title is the
# only number computed on the test set, once, at the very end.

# %% [markdown]
# ## 4.4 Debugging training
#
# ### When training goes wrong
#
# Training bugs rarely crash: the loop runs, the numbers are just bad. The table maps symptoms
# to their usual causes and to the first thing to check.
#
# | symptom | usual causes | first checks |
# |---|---|---|
# | loss is NaN or infinite | learning rate too high; `log(0)` or division by zero; NaN in the data | lower the lr 10×; `torch.isfinite(x).all()` on inputs; gradient norms per layer |
# | loss does not decrease | lr too low (or so high it bounces); softmax before `CrossEntropyLoss`; labels shuffled apart from inputs; dead ReLUs; inputs not normalized | initial loss ≈ ln K; overfit a single batch; are gradients non-zero? |
# | loss explodes or spikes | lr too high; exploding gradients (RNNs, deep nets) | gradient clipping; a warm-up; smaller lr |
# | train loss ≪ validation loss | overfitting: model too large for the data | dropout, weight decay, early stopping, data augmentation, more data |
# | both losses high | underfitting: model too small, too little training, too much regularization | a bigger model, more epochs, less regularization, a higher lr |
# | validation metric noisy or worse than expected | `model.eval()` forgotten; the test set used for decisions | modes; keep the test set for the very end |
#
# Three sanity checks catch most bugs in a minute. **First, the initial loss.** A freshly
# initialized classifier knows nothing, so its predicted probabilities are roughly uniform over
# the K classes and its cross-entropy should be close to $\ln K$:

# %%
torch.manual_seed(0)
fresh = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
with torch.no_grad():
    initial = F.cross_entropy(fresh(x_train), y_train).item()
print(f"initial loss {initial:.3f}   ln(10) = {math.log(10):.3f}")

# %% [markdown]
# A much larger initial loss means overconfident random outputs (bad initialization or badly
# scaled inputs); a much smaller one usually means a bug, such as labels leaking into the inputs.
#
# **Second, overfit one batch.** A correct model and loop can drive the loss on a single small
# batch to nearly zero. If they cannot, no amount of data will help: look for a bug before
# training on everything.

# %% tags=["autograde-skip"]
torch.manual_seed(0)
tiny = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt = torch.optim.Adam(tiny.parameters(), lr=1e-2)
xb, yb = x_train[:32], y_train[:32]
for step in range(101):
    opt.zero_grad()
    loss = F.cross_entropy(tiny(xb), yb)
    loss.backward()
    opt.step()
    if step % 25 == 0:
        print(f"step {step:3d}: loss on the batch {loss.item():.5f}")

# %% [markdown]
# **Third, look at the gradients.** After one `backward()`, every parameter should have a
# finite, non-zero gradient. A layer with zero gradients is disconnected (or its ReLUs are
# dead); a NaN points at the operation that produced it.

# %%
fresh.zero_grad()
F.cross_entropy(fresh(x_train), y_train).backward()
for name, p in fresh.named_parameters():
    g = p.grad
    print(f"{name:9s} shape {str(tuple(p.shape)):9s} grad norm {g.norm():.4f}  "
          f"all finite: {bool(torch.isfinite(g).all())}  zero entries: {int((g == 0).sum())}")
with torch.no_grad():
    hidden = fresh[1](fresh[0](x_train))  # (N, 64) after the ReLU
blank = int((x_train == 0).all(dim=0).sum())
dead = int((hidden == 0).all(dim=0).sum())
print(f"pixels blank in every training image: {blank}; hidden units off for every image: {dead}")

# %% [markdown]
# Zero entries are normal in a ReLU network: a first-layer weight gets no gradient when its
# pixel is blank in every image on which its hidden unit is active. The last line counts the two
# extreme cases. A pixel blank in every training image (a corner of the 8×8 grid) gives a whole
# column of zeros. A hidden unit whose ReLU is off for every image is **dead**: its row of the
# first layer, its bias and its column of the second layer all get zero gradient, so it can
# never come back to life. A few dead units at initialization are harmless; if a large share
# dies during training, lower the learning rate or use a leaky activation. When a NaN appears
# and you cannot tell where, `torch.autograd.set_detect_anomaly(True)` makes the backward pass
# name the forward operation that produced it, at the cost of a much slower run.
#
# ### Monitoring training
#
# Record more than the loss. The global gradient norm, which `clip_grad_norm_` returns for
# free (with `max_norm=inf` it measures without clipping), shows instabilities as they happen.
# Here is the same aggressive run (SGD, lr = 1 with momentum 0.9, three epochs on the digits)
# twice, once as is and once with clipping at norm 1, logging loss and gradient norm per step:

# %%
def monitored_run(max_norm, epochs=3):
    """Train a fresh digits MLP with SGD(lr=1, momentum=0.9); log loss and gradient norm."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    log = {"loss": [], "grad_norm": []}
    for _ in range(epochs):
        for start in range(0, len(x_train), 64):
            opt.zero_grad()
            loss = F.cross_entropy(net(x_train[start:start + 64]), y_train[start:start + 64])
            loss.backward()
            log["grad_norm"].append(nn.utils.clip_grad_norm_(net.parameters(), max_norm).item())
            opt.step()
            log["loss"].append(loss.item())
    return log


logs = {"no clipping": monitored_run(math.inf), "clip_grad_norm_(max_norm=1)": monitored_run(1.0)}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name, log in logs.items():
    axes[0].plot(log["loss"], label=name)
    axes[1].plot(log["grad_norm"], label=name)
    print(f"{name:28s} mean loss of the last 10 steps {np.mean(log['loss'][-10:]):.3f}, "
          f"largest gradient norm {max(log['grad_norm']):.2f}")
axes[0].set(xlabel="step", ylabel="batch loss (cross-entropy)", title="Loss per step")
axes[1].set(xlabel="step", ylabel="global gradient norm (before clipping)", yscale="log",
            title="Gradient norm per step")
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Without clipping, the gradient norm shoots up within the first steps and the loss jumps with
# it; the run never settles. With clipping the steps are capped, the same learning rate becomes
# usable, and the loss ends far lower (compare the printed numbers). Spikes in the
# gradient-norm curve are the early warning: lower the learning rate, add a warm-up, or clip.
# For real projects, tools such as TensorBoard (`torch.utils.tensorboard`) or Weights & Biases
# log these curves for you; the habit that matters is to look at them.
#
# ### Exercise 4.7 — Debugging challenge (★★★★★, 5 points)
#
# Here is a training function with **five** deliberate bugs. It runs without a single error,
# and reports an accuracy of about 10 %, which is chance for ten classes:

# %%
def buggy_training(x, y, epochs=100):
    """A digits classifier with five bugs. Do not fix this one: write the fixed version below."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10),
                          nn.Softmax(dim=1)).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=10.0)
    for epoch in range(epochs):
        output = model(x)
        loss = criterion(output, y)
        loss.backward()
        optimizer.step()
    accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    return model, accuracy


_, buggy_accuracy = buggy_training(x_train, y_train)
print(f"the buggy function reports an accuracy of {buggy_accuracy:.1%}")

# %% [markdown]
# The five bugs:
#
# 1. a softmax before `CrossEntropyLoss` (which applies its own);
# 2. no `optimizer.zero_grad()`: gradients pile up from every previous epoch;
# 3. a learning rate of 10 for Adam, where 1e-3 to 1e-2 is sensible;
# 4. no train/eval modes: dropout stays on when the accuracy is measured;
# 5. no validation set: the accuracy is measured on the training data, so it says nothing
#    about new digits.
#
# (A sixth bug hides in the version of this exercise often seen online, `nn.Linear(10, 1)`
# followed by a softmax: with a single output, the softmax is the constant 1, so the loss can
# never change.)
#
# Write the fixed pieces. Keep the rest as it is: the same layers minus the bug, full-batch
# training, 100 epochs.
#
# - `make_fixed_model()`: the network `64 → 32 → ReLU → Dropout(0.2) → 10`, on `device`,
#   returning raw logits (fix 1);
# - `make_fixed_optimizer(model)`: Adam over the model's parameters with lr = 0.01 (fix 3);
# - `fixed_train_step(model, optimizer, loss_fn, x, y)`: one training step in training mode
#   with fresh gradients; returns the loss as a float (fixes 2 and 4);
# - `fixed_accuracy(model, x, y)`: the accuracy in eval mode without gradients, a float
#   (fix 4);
# - `fixed_training(x_train, y_train, x_val, y_val, epochs=100)`: `torch.manual_seed(0)`, build
#   the model and optimizer, run `epochs` full-batch steps on the training data with
#   `nn.CrossEntropyLoss()`, and return `(model, accuracy on the validation data)` (fix 5).
#
# Run it as `fixed_model, fixed_val_acc = fixed_training(x_train, y_train, x_val, y_val)`.
# The tests check each fix separately (no softmax; no accumulated gradients; a sane learning
# rate; the modes; accuracy measured on the data it is given as validation) and that the fixed
# model reaches at least **90 %** validation accuracy (the solution reaches about 96 %).

# %% nbgrader={"grade": false, "grade_id": "ex04_7_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_fixed_model():
    """64 -> 32 -> ReLU -> Dropout(0.2) -> 10, returning logits (B, 10)."""
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(32, 10)).to(device)
    ### END SOLUTION


def make_fixed_optimizer(model):
    """Adam over the model's parameters, lr = 0.01."""
    ### BEGIN SOLUTION
    return torch.optim.Adam(model.parameters(), lr=0.01)
    ### END SOLUTION


def fixed_train_step(model, optimizer, loss_fn, x, y):
    """One training step (training mode, fresh gradients); returns the loss as a float."""
    ### BEGIN SOLUTION
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


def fixed_accuracy(model, x, y):
    """Accuracy of the model on (x, y), in eval mode and without gradients; a float."""
    ### BEGIN SOLUTION
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()
    ### END SOLUTION


def fixed_training(x_train, y_train, x_val, y_val, epochs=100):
    """Full-batch training; returns (model, validation accuracy)."""
    ### BEGIN SOLUTION
    torch.manual_seed(0)
    model = make_fixed_model()
    optimizer = make_fixed_optimizer(model)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        fixed_train_step(model, optimizer, criterion, x_train, y_train)
    return model, fixed_accuracy(model, x_val, y_val)
    ### END SOLUTION


fixed_model, fixed_val_acc = fixed_training(x_train, y_train, x_val, y_val)
print(f"validation accuracy after the fixes: {fixed_val_acc:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex04_7_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Fix 1: raw logits.
probe = make_fixed_model()
checks.check_module(probe, "make_fixed_model()", n_params=64 * 32 + 32 + 32 * 10 + 10,
                    example_input=torch.randn(5, 64, device=device), output_shape=(5, 10))
final_activations = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid)
checks.check(not any(isinstance(m, final_activations) for m in probe.modules()),
             "Fix 1: the model must end with the last Linear layer (raw logits).",
             hint="CrossEntropyLoss applies log-softmax itself")
checks.check(any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in probe.modules()),
             "keep the Dropout(0.2) of the original model.")
# Fix 2: fresh gradients at every step. A spy records the gradient the optimizer sees.
torch.manual_seed(7)
xb, yb = torch.randn(16, 64, device=device), torch.randint(0, 10, (16,), device=device)
line = nn.Linear(64, 10).to(device)
spy_opt = torch.optim.SGD(line.parameters(), lr=0.0)
seen = []
spy_opt.register_step_pre_hook(lambda *args: seen.append(line.weight.grad.detach().clone()))
for _ in range(2):
    fixed_train_step(line, spy_opt, nn.CrossEntropyLoss(), xb, yb)
(expected_grad,) = torch.autograd.grad(F.cross_entropy(line(xb), yb), line.weight)
checks.check_equal(len(seen), 2, "optimizer steps taken by two calls of fixed_train_step")
checks.check_close(seen[1], expected_grad, "the gradient at the second step on the same batch",
                   rtol=1e-5, atol=1e-7, hint="Fix 2: call optimizer.zero_grad() every step")
# Fix 3: a sane learning rate over all parameters.
opt = make_fixed_optimizer(probe)
checks.check_equal(type(opt).__name__, "Adam", "type of make_fixed_optimizer(...)")
checks.check(opt.param_groups[0]["lr"] <= 0.05, "Fix 3: the learning rate is still far too high.",
             "lr = 0.01", opt.param_groups[0]["lr"])
### BEGIN HIDDEN TESTS
checks.check_close(opt.param_groups[0]["lr"], 0.01, "the learning rate of make_fixed_optimizer")
checks.check_equal(sum(p.numel() for g in opt.param_groups for p in g["params"]),
                   sum(p.numel() for p in probe.parameters()), "parameters in the optimizer")
# Fix 4: training mode in the step, eval mode (and no graph) in the accuracy.
probe.eval()
fixed_train_step(probe, make_fixed_optimizer(probe), nn.CrossEntropyLoss(), xb, yb)
checks.check(probe.training, "Fix 4: fixed_train_step must put the model in training mode.")
xv = torch.randn(200, 64, device=device)
yv = torch.randint(0, 10, (200,), device=device)
probe.train()
accuracy = fixed_accuracy(probe, xv, yv)
probe.eval()
with torch.no_grad():
    expected_acc = (probe(xv).argmax(1) == yv).float().mean().item()
checks.check_close(accuracy, expected_acc, "fixed_accuracy on a model left in training mode",
                   hint="Fix 4: call model.eval() inside fixed_accuracy")
checks.check_type(accuracy, float, "fixed_accuracy(...)")
# Fix 5: the accuracy comes from the validation data it is given (here: random labels).
random_labels = torch.randint(0, 10, y_val.shape, generator=torch.Generator().manual_seed(3))
model_r, acc_r = fixed_training(x_train, y_train, x_val, random_labels.to(device), epochs=30)
checks.check(acc_r < 0.3, "Fix 5: the accuracy must be measured on the validation data.",
             "near chance (10 %) for random validation labels", acc_r)
with torch.no_grad():
    expected_acc = (model_r.eval()(x_val).argmax(1).cpu() == random_labels).float().mean().item()
checks.check_close(acc_r, expected_acc, "the returned validation accuracy")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex04_7_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(fixed_model, nn.Module, "fixed_model")
fixed_model.eval()
with torch.no_grad():
    val_accuracy = (fixed_model(x_val).argmax(1) == y_val).float().mean().item()
checks.check(val_accuracy >= 0.90, "the fixed model should classify most validation digits.",
             "at least 90 % validation accuracy", f"{val_accuracy:.1%}",
             "check each fix; is the learning rate 0.01 and are there 100 epochs?")
checks.check_close(fixed_val_acc, val_accuracy, "fixed_val_acc", rtol=1e-6,
                   hint="return the accuracy on x_val, y_val, measured in eval mode")
### BEGIN HIDDEN TESTS
checks.check(not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in fixed_model.modules()),
             "fixed_model must output logits.")
with torch.no_grad():
    train_accuracy = (fixed_model(x_train).argmax(1) == y_train).float().mean().item()
checks.check(train_accuracy >= 0.93, "the fixed model should fit its training data.",
             got=train_accuracy)
### END HIDDEN TESTS

# %% [markdown]
# ## Concept check (4 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch, so you can
# check any of them by experiment; decide first, then try.
#
# 1. `q1_grad`: `w = torch.tensor(3.0, requires_grad=True)`; `loss = w ** 2`; then
#    `loss.backward(retain_graph=True)` is called **twice** without zeroing. What is `w.grad`
#    (a float)?
# 2. `q2_initial_loss`: a freshly initialized 10-class classifier outputs nearly equal logits.
#    What cross-entropy do you expect at step 0 (a float, two decimals are enough)?
# 3. `q3_losses`: which loss for each task? A dict with the keys `"house price"` (a real
#    number with ordinary, Gaussian-like noise), `"photo tags"` (each photo can have any of 20
#    tags) and `"digit"` (one of 10 classes); values from `"mse"`, `"mae"`, `"cross_entropy"`,
#    `"bce_with_logits"`.
# 4. `q4_lr`: SGD with lr = 0.1 and `StepLR(optimizer, step_size=30, gamma=0.1)`, with
#    `scheduler.step()` once at the end of every epoch. What learning rate does epoch 65 use
#    (epochs counted from 1)?
# 5. `q5_clipped`: two parameters with `p1.grad = [3., 0.]` and `p2.grad = [0., 4.]`; after
#    `nn.utils.clip_grad_norm_([p1, p2], max_norm=1.0)`, what is `p1.grad`? A list of two floats.
# 6. `q6_adam_step`: a single parameter, gradient 1000, `torch.optim.Adam(lr=0.01)`: how far
#    does the first step move the parameter (a positive float)?

# %% nbgrader={"grade": false, "grade_id": "cc04_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_grad = ...  # a float
q2_initial_loss = ...  # a float
q3_losses = ...  # a dict: task -> loss name
q4_lr = ...  # a float
q5_clipped = ...  # a list of two floats
q6_adam_step = ...  # a float
### BEGIN SOLUTION
q1_grad = 12.0  # 2w = 6, accumulated twice
q2_initial_loss = math.log(10)  # uniform probabilities 1/10
q3_losses = {"house price": "mse", "photo tags": "bce_with_logits", "digit": "cross_entropy"}
q4_lr = 0.001  # 0.1 for epochs 1-30, 0.01 for 31-60, 0.001 for 61-90
q5_clipped = [0.6, 0.0]  # the global norm is 5: everything is divided by 5
q6_adam_step = 0.01  # Adam's first step is lr, whatever the gradient's scale
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc04_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
for name in ("q1_grad", "q2_initial_loss", "q4_lr", "q6_adam_step"):
    checks.check_type(globals()[name], (int, float), name, hint="a number")
checks.check_type(q3_losses, dict, "q3_losses")
checks.check_equal(sorted(q3_losses), ["digit", "house price", "photo tags"],
                   "the keys of q3_losses")
allowed = {"mse", "mae", "cross_entropy", "bce_with_logits"}
checks.check(set(q3_losses.values()) <= allowed, "q3_losses uses an unknown loss name.",
             sorted(allowed), q3_losses)
checks.check_type(q5_clipped, (list, tuple), "q5_clipped")
checks.check_equal(len(q5_clipped), 2, "len(q5_clipped)")
### BEGIN HIDDEN TESTS
w = torch.tensor(3.0, requires_grad=True)
loss = w**2
loss.backward(retain_graph=True)
loss.backward()
checks.check_close(q1_grad, w.grad, "q1_grad")
checks.check_close(q2_initial_loss, F.cross_entropy(torch.zeros(1, 10), torch.tensor([3])),
                   "q2_initial_loss", atol=0.01, rtol=0)
# mse: the maximum-likelihood loss for Gaussian noise; tags: independent yes/no per tag.
checks.check_equal(q3_losses, {"house price": "mse", "photo tags": "bce_with_logits",
                               "digit": "cross_entropy"}, "q3_losses")
param = nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([param], lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
for epoch in range(1, 65):
    opt.step()
    scheduler.step()
checks.check_close(q4_lr, opt.param_groups[0]["lr"], "q4_lr")
p1, p2 = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
p1.grad, p2.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
nn.utils.clip_grad_norm_([p1, p2], max_norm=1.0)
checks.check_close(torch.tensor(q5_clipped, dtype=torch.float32), p1.grad, "q5_clipped", atol=1e-6)
param = nn.Parameter(torch.zeros(1))
opt = torch.optim.Adam([param], lr=0.01)
param.grad = torch.tensor([1000.0])
opt.step()
checks.check_close(q6_adam_step, param.detach().abs()[0], "q6_adam_step", rtol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - Training minimizes the average loss over the data by gradient descent on mini-batches:
#   the gradient noise falls only like $1/\sqrt{B}$, so moderate batches are the sweet spot.
# - The loop is always `zero_grad` → forward → loss → `backward` → (clip) → `step`; record
#   the example-weighted epoch loss, and switch `model.train()` / `model.eval()` explicitly.
# - The learning rate matters most: on a bowl of curvature $a$, gradient descent diverges
#   above $\eta = 2/a$. Find a good rate with a sweep or a learning-rate finder, a little
#   below where the loss blows up.
# - Momentum speeds up consistent directions; RMSprop and Adam scale each parameter's step by
#   its gradient's size; AdamW decouples weight decay. Adam(W) at 1e-3 is a strong default.
# - Match the loss to the task and feed it **logits**: `CrossEntropyLoss` for one-of-K,
#   `BCEWithLogitsLoss` for yes/no and multi-label, MSE for regression, MAE or Huber when
#   outliers lurk.
# - Schedules (step, cosine, one-cycle, plateau) and gradient clipping (by norm) make long runs
#   stable.
# - Watch validation loss to detect overfitting; early stopping with a checkpoint of the best
#   weights, dropout and weight decay fight it; the test set is used once, at the end.
# - Debug with sanity checks: initial loss ≈ ln K, overfit one batch, finite non-zero
#   gradients, and curves of loss and gradient norm.
#
# Next, chapter 5 builds the data side of this loop: datasets, loaders, transforms and splits.
