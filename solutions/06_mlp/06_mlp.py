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
# # Chapter 6 — Fully connected networks (MLPs)
#
# The multi-layer perceptron is the simplest deep network: layers of neurons where every
# neuron of one layer talks to every neuron of the next. It is also the part of every other
# architecture that does the "thinking" between the special layers: the classifier head of a
# CNN, the feed-forward block of a transformer, the whole of a physics-informed network. This
# chapter builds MLPs from a single neuron up, and then teaches you to make them *train*.
#
# **What you will learn**
# - the perceptron, why it cannot learn XOR, and how one hidden layer fixes that;
# - the maths of an MLP, its shapes in PyTorch, and a forward pass in plain NumPy;
# - depth against width, and what the universal approximation theorem does (not) promise;
# - activation functions: formulas, derivatives, when to use which (with an explorer to play);
# - why networks fail to train: vanishing and exploding gradients, dead ReLUs, symmetry;
# - building MLPs with `nn.Sequential` and as custom modules;
# - initialization (Xavier, He), batch norm, layer norm and dropout, and a complete MLP;
# - debugging: dead ReLUs, activation distributions and gradient flow, with forward hooks.
#
# **Prerequisites:** chapters 1–5 (tensors, autograd, `nn.Module`, the training loop, data
# loading). The training loop of chapter 4 is available as `helpers.train.fit`.
#
# **Expected time:** 3–4 hours, exercises included. The solved notebook runs top to bottom in
# well under a minute on a laptop CPU; every training run in it is sized to take seconds.
#
# Exercises are marked **Exercise 6.k**: write your answer where it says `# YOUR CODE HERE`,
# then run the test cell below it. A failing test says what it expected, what it got, and
# gives a hint. Hidden tests run when your notebook is graded, so make your code correct for
# every input, not just the visible ones.

# %% [markdown]
# One setup cell for the whole chapter. The networks here are small, so one CPU thread is the
# fastest choice: more threads spend their time waiting for each other.

# %%
import copy
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers
from helpers import checks
from helpers import data as hdata
from helpers import plot as hplot
from helpers.train import accuracy, evaluate, fit

device = helpers.setup(seed=0, threads=1)
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# ## 6.1 Introduction: the foundation of deep learning
#
# A **multi-layer perceptron** (MLP, also *fully connected* or *feed-forward* network) maps an
# input vector to an output vector through a stack of layers. Each layer multiplies by a
# weight matrix, adds a bias, and bends the result with a non-linear *activation function*.
#
# MLPs are the right tool when the input is a plain vector of features without spatial or
# temporal order: tabular data, the coordinates $(x, y, t)$ of a physical field, the
# parameters of a simulation. They are the wrong tool when the input has structure that a
# specialised layer can exploit: images (chapter 7, CNNs), sequences (chapters 10–11). The
# reason is cost as much as accuracy: an MLP connects *everything* to *everything*. Here is
# the first layer of an MLP on a 224 × 224 colour image, built on PyTorch's `meta` device,
# which records shapes without allocating memory:

# %%
first_layer = nn.Linear(224 * 224 * 3, 1000, device="meta")  # shapes only, no memory used
n_weights = sum(p.numel() for p in first_layer.parameters())
print(f"one layer, 150,528 inputs -> 1000 units: {n_weights:,} parameters "
      f"({n_weights * 4 / 1e9:.1f} GB in float32)")

# %% [markdown]
# 150 million parameters before the network has learned a single thing about images. A
# convolutional layer that sees the same image needs a few thousand. Keep MLPs for inputs of
# modest size — up to a few thousand features — and as components inside larger models.
#
# ## 6.2 Theory: understanding MLPs
#
# ### From one neuron to a network: the perceptron
#
# Everything starts with one artificial neuron. It takes inputs $x_1, \dots, x_d$, weighs
# each, adds a bias and "fires" if the sum is large enough:
#
# $$z = w_1 x_1 + \dots + w_d x_d + b = \mathbf{w}^\top \mathbf{x} + b, \qquad
#   \hat y = \operatorname{step}(z) = \begin{cases} 1 & z > 0 \\ 0 & z \le 0 \end{cases}$$
#
# Rosenblatt's **perceptron** (1958) learns $\mathbf{w}$ and $b$ with a simple rule: for each
# example with target $t \in \{0, 1\}$, nudge the weights towards the right answer,
# $\mathbf{w} \leftarrow \mathbf{w} + \eta\,(t - \hat y)\,\mathbf{x}$ and
# $b \leftarrow b + \eta\,(t - \hat y)$. Nothing changes when the answer is already right. The
# set $\{\mathbf{x} : \mathbf{w}^\top\mathbf{x} + b = 0\}$ is a straight line (a hyperplane
# in $d$ dimensions), so a perceptron can only separate classes that a line can separate.
# Let us teach one the logic gates AND and XOR.

# %%
def train_perceptron(X, t, epochs=20, lr=0.1):
    """Rosenblatt's rule. X (N, d) inputs, t (N,) targets in {0, 1}; returns w, b, accuracies."""
    w, b = torch.zeros(X.shape[1]), torch.zeros(())
    accuracies = []
    for _ in range(epochs):
        for x_i, t_i in zip(X, t):
            y_i = (x_i @ w + b > 0).float()  # the step activation
            w += lr * (t_i - y_i) * x_i  # no change when the answer is right
            b += lr * (t_i - y_i)
        accuracies.append(((X @ w + b > 0).float() == t).float().mean().item())
    return w, b, accuracies


X_gate = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
t_and = torch.tensor([0.0, 0.0, 0.0, 1.0])
t_xor = torch.tensor([0.0, 1.0, 1.0, 0.0])
w_and, b_and, acc_and = train_perceptron(X_gate, t_and)
w_xor, b_xor, acc_xor = train_perceptron(X_gate, t_xor)
print(f"AND: accuracy per epoch {acc_and[:6]} ... final {acc_and[-1]:.2f}")
print(f"XOR: accuracy per epoch {acc_xor[:6]} ... best ever {max(acc_xor):.2f}")

# %% [markdown]
# AND is learned in a few epochs. XOR never settles: no line puts (0, 1) and (1, 0) on one
# side and (0, 0) and (1, 1) on the other, so every epoch some point is wrong and the rule
# keeps shoving the line around (here it cycles at 50 %). Minsky and Papert's 1969
# book made this limitation famous. The cure is a **hidden layer**: two ReLU units
# $h_1 = \max(0, x_1 + x_2)$ and $h_2 = \max(0, x_1 + x_2 - 1)$ followed by the output
# $h_1 - 2h_2$ compute XOR exactly. Here it is as a PyTorch network whose weights we set by
# hand:

# %%
xor_net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
with torch.no_grad():  # set the weights by hand instead of learning them
    xor_net[0].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    xor_net[0].bias.copy_(torch.tensor([0.0, -1.0]))
    xor_net[2].weight.copy_(torch.tensor([[1.0, -2.0]]))
    xor_net[2].bias.zero_()
    print("hidden-layer network on the four inputs:", xor_net(X_gate).squeeze(1).tolist())

# %% [markdown]
# The picture shows what each model computes over the whole square: the perceptrons draw one
# straight boundary, the hidden layer bends it.

# %% tags=["autograde-skip"]
def decision_regions(ax, predict, targets, title):
    """Shade where predict(points) > 0.5 over [-0.5, 1.5]^2 and mark the four gate inputs."""
    g = torch.linspace(-0.5, 1.5, 201)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    with torch.no_grad():
        z = predict(torch.stack([gx.flatten(), gy.flatten()], 1)).reshape(gx.shape)
    ax.contourf(gx, gy, (z > 0.5).float(), levels=[-0.5, 0.5, 1.5], colors=["#dde6f3", "#f6d7b0"])
    ax.scatter(X_gate[:, 0], X_gate[:, 1], c=targets, cmap="coolwarm", s=120, edgecolors="k")
    ax.set(title=title, xlabel="input $x_1$", ylabel="input $x_2$", aspect="equal")


fig, axes = plt.subplots(1, 3, figsize=(12, 4))
decision_regions(axes[0], lambda p: (p @ w_and + b_and > 0).float(), t_and, "perceptron, AND: solved")
decision_regions(axes[1], lambda p: (p @ w_xor + b_xor > 0).float(), t_xor, "perceptron, XOR: stuck")
decision_regions(axes[2], lambda p: xor_net(p).squeeze(1), t_xor, "one hidden layer, XOR: solved")
fig.suptitle("Orange: predicted 1, blue: predicted 0; dots are the four inputs, red = target 1")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Architecture
#
# An MLP with one hidden layer computes
#
# $$\mathbf{h} = \sigma(\mathbf{W}_1 \mathbf{x} + \mathbf{b}_1), \qquad
#   \hat{\mathbf{y}} = \mathbf{W}_2 \mathbf{h} + \mathbf{b}_2,$$
#
# with input $\mathbf{x} \in \mathbb{R}^{d_\text{in}}$, weights
# $\mathbf{W}_1 \in \mathbb{R}^{h \times d_\text{in}}$, biases $\mathbf{b}_1 \in \mathbb{R}^{h}$,
# an activation $\sigma$ applied elementwise, the hidden representation
# $\mathbf{h} \in \mathbb{R}^{h}$, and $\mathbf{W}_2 \in \mathbb{R}^{d_\text{out} \times h}$,
# $\mathbf{b}_2 \in \mathbb{R}^{d_\text{out}}$. Deeper MLPs repeat the first line. The output
# layer has no activation for regression; for classification it produces *logits* that the
# loss turns into probabilities.
#
# In code we process a batch of $B$ inputs at once, stored as rows of a matrix
# $\mathbf{X} \in \mathbb{R}^{B \times d_\text{in}}$, so the layer becomes
# $\mathbf{X}\mathbf{W}^\top + \mathbf{b}$. `nn.Linear(d_in, d_out)` stores its weight exactly
# like the maths, **shape `(d_out, d_in)`**, and transposes it when it computes. Checking that
# by hand against a NumPy computation is the best way to believe it:

# %%
layer = nn.Linear(3, 5)  # d_in = 3, d_out = 5
X_np = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)  # (B, d_in) = (4, 3)
W_np = layer.weight.detach().cpu().numpy()  # (d_out, d_in) = (5, 3)
b_np = layer.bias.detach().cpu().numpy()  # (d_out,) = (5,)
by_numpy = X_np @ W_np.T + b_np  # (4, 5): the bias broadcasts over the batch
by_torch = layer(torch.from_numpy(X_np)).detach().numpy()
print("weight shape:", tuple(layer.weight.shape), "| output shape:", by_numpy.shape)
print("largest difference NumPy vs PyTorch:", np.abs(by_numpy - by_torch).max())

# %% [markdown]
# Agreement to the last few bits of float32: a layer *is* this one line of linear algebra.
# In Exercise 6.1 you will write the whole forward pass of a deep MLP this way.
#
# **The universal approximation theorem** (Cybenko 1989 for sigmoids; Hornik 1991 and Leshno
# et al. 1993 for any non-polynomial activation): an MLP with *one* hidden layer and enough
# units can approximate any continuous function on a bounded domain as closely as you like.
# The intuition: each hidden unit is a basis function, and the output layer mixes them. With
# ReLU units in 1-D, unit $j$ is a hinge $\max(0, x - k_j)$ with a kink at $k_j$, and the
# network is a piecewise-linear curve through those kinks. Here we place $n$ kinks evenly and
# solve for the best output weights by least squares (no training yet):

# %%
x_1d = torch.linspace(-3, 3, 400).unsqueeze(1)  # (N, 1)
curve = torch.sin(2 * x_1d) + 0.3 * x_1d  # (N, 1): the function to imitate
hinge_fits = {}
for n_units in (4, 8, 32):
    kinks = torch.linspace(-3, 3, n_units + 1)[:-1]  # one kink per hidden unit
    H = torch.relu(x_1d - kinks)  # (N, n_units): the hidden layer, weights 1, biases -kink
    H1 = torch.cat([H, torch.ones_like(x_1d)], dim=1)  # a column of ones for the output bias
    coef = torch.linalg.lstsq(H1, curve).solution  # best output weights and bias
    hinge_fits[n_units] = H1 @ coef
    print(f"{n_units:3d} hidden units: largest error {(hinge_fits[n_units] - curve).abs().max():.3f}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(x_1d, curve, color="k", lw=3, alpha=0.35, label="target  sin(2x) + 0.3x")
for n_units, fit_1d in hinge_fits.items():
    ax.plot(x_1d, fit_1d, lw=1.5, label=f"{n_units} ReLU units")
ax.set(title="One hidden layer = a sum of hinges", xlabel="input x", ylabel="output")
ax.legend()
plt.show()

# %% [markdown]
# With 4 hinges the curve is a crude polyline; with 32 it is hard to tell from the target, and
# the printed error shrinks steadily. The theorem guarantees that *some* number of units is
# enough; it says nothing about how many, and nothing about whether gradient descent will
# find the weights. Those two gaps are what the rest of the chapter is about.
#
# ### Depth vs width
#
# Two ways to add capacity: more units per layer (**width**) or more layers (**depth**).
#
# | | wide and shallow | deep and narrow |
# |---|---|---|
# | optimisation | easier: short path for gradients | harder: needs good initialization, normalization, or skip connections |
# | expressiveness | universal, but some functions need exponentially many units | composes features: can be exponentially more economical for some functions |
# | features | one level of basis functions | a hierarchy: features of features |
#
# The "exponentially more economical" claim is a theorem (Telgarsky 2016), and it fits in a
# few lines. The tent map $t(x) = 2\,\mathrm{ReLU}(x) - 4\,\mathrm{ReLU}(x - 0.5)$ needs two
# ReLU units and folds $[0, 1]$ onto itself. Composing it $k$ times — a network of depth $k$
# with two units per layer — makes a sawtooth with $2^k$ linear pieces. A one-hidden-layer
# ReLU network on a line has at most (units + 1) pieces, so it needs at least $2^k - 1$ units
# to draw the same curve.

# %%
def tent(x):
    """The tent map on [0, 1]: two ReLU units."""
    return 2 * torch.relu(x) - 4 * torch.relu(x - 0.5)


def linear_pieces(y, x):
    """Count the linear pieces of a sampled piecewise-linear curve (kinks on grid points)."""
    slopes = torch.diff(y) / torch.diff(x)
    return 1 + int((torch.diff(slopes).abs() > 1e-3).sum())


x_saw = torch.linspace(0, 1, 4097)
sawtooth = {0: x_saw}
for k in range(1, 6):
    sawtooth[k] = tent(sawtooth[k - 1])  # one more layer of two units
    print(f"depth {k}: {2 * k:2d} ReLU units in total -> {linear_pieces(sawtooth[k], x_saw):2d} "
          f"pieces; one hidden layer needs >= {2**k - 1} units")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(8.5, 3.4))
for k in (1, 2, 3, 4):
    ax.plot(x_saw, sawtooth[k] + 1.2 * (k - 1), label=f"depth {k}: {2**k} pieces")
ax.set(title="Composing a 2-unit layer doubles the number of linear pieces",
       xlabel="input x", ylabel="output (shifted up by depth)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
plt.show()

# %% [markdown]
# Ten units arranged in depth 5 make 32 pieces; a single hidden layer would need 31 units for
# the same curve, and the gap doubles with every extra layer. Real data is not a sawtooth, but
# many natural functions are compositions, and depth matches that structure.
#
# **Rules of thumb.** Start with 2–3 hidden layers. A first hidden layer of one to two times
# the input size (at least a few dozen units) is a reasonable start; keep widths constant or
# shrinking. Go deeper when the data is complex and plentiful, and then bring the tools of
# this chapter (initialization, normalization) and of chapter 8 (skip connections). Exercise
# 6.4 puts depth and width head to head at equal parameter count.
#
# ### Activation functions
#
# Without a non-linearity, depth is an illusion: two linear layers are one linear layer,
# $\mathbf{W}_2(\mathbf{W}_1\mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2 = (\mathbf{W}_2\mathbf{W}_1)\mathbf{x} + (\mathbf{W}_2\mathbf{b}_1 + \mathbf{b}_2)$.
# Verified:

# %%
stack = nn.Sequential(nn.Linear(6, 16), nn.Linear(16, 3))  # no activation in between
W_eff = stack[1].weight @ stack[0].weight  # (3, 6)
b_eff = stack[1].weight @ stack[0].bias + stack[1].bias  # (3,)
x_check = torch.randn(5, 6)
print("two layers == one layer:", torch.allclose(stack(x_check), x_check @ W_eff.T + b_eff, atol=1e-6))

# %% [markdown]
# The common activations, their derivatives, and where each belongs:
#
# | name | $f(z)$ | range | $f'(z)$ | use for | watch out |
# |---|---|---|---|---|---|
# | ReLU | $\max(0, z)$ | $[0, \infty)$ | 1 if $z>0$, else 0 | hidden layers: the default | units stuck at 0 ("dead") |
# | Leaky ReLU | $\max(\alpha z, z)$, $\alpha \approx 0.01$ | $(-\infty, \infty)$ | 1 or $\alpha$ | when many ReLUs die | one more hyperparameter |
# | ELU | $z$ if $z > 0$, else $\alpha(e^z - 1)$ | $(-\alpha, \infty)$ | 1 or $\alpha e^z$ | smooth, mean activation nearer 0 | an exponential per unit |
# | sigmoid | $1/(1 + e^{-z})$ | $(0, 1)$ | $\sigma(1 - \sigma) \le 1/4$ | binary output (a probability), gates | vanishing gradients, not zero-centred |
# | tanh | $(e^z - e^{-z})/(e^z + e^{-z})$ | $(-1, 1)$ | $1 - \tanh^2 \le 1$ | zero-centred hidden units, RNN cells | saturates for $\lvert z \rvert \gtrsim 3$ |
# | GELU | $z\,\Phi(z)$, $\Phi$ the normal CDF | $\approx[-0.17, \infty)$ | $\Phi(z) + z\,\varphi(z)$ | transformers (BERT, GPT) | a little more compute |
# | SiLU (Swish) | $z\,\sigma(z)$ | $\approx[-0.28, \infty)$ | $\sigma(z)(1 + z(1 - \sigma(z)))$ | modern CNNs and transformers, smooth fields | a little more compute |
# | softmax | $e^{z_i} / \sum_j e^{z_j}$ | $(0, 1)$, sums to 1 | $\operatorname{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^\top$ | multi-class output only | never in hidden layers |
#
# Five rules cover nearly every case: hidden layers → ReLU (or GELU/SiLU); binary output →
# sigmoid; multi-class output → softmax; regression output → nothing (linear); transformers →
# GELU. In PyTorch the output "activation" usually hides in the loss: `nn.CrossEntropyLoss`
# takes raw logits and applies a log-softmax itself, `nn.BCEWithLogitsLoss` the sigmoid.
#
# Let us draw them, with derivatives from autograd rather than from the table:

# %%
activation_fns = {
    "ReLU": torch.relu,
    "Leaky ReLU": lambda z, a=0.1: F.leaky_relu(z, a),
    "ELU": lambda z, a=1.0: F.elu(z, a),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "GELU": F.gelu,
    "SiLU": F.silu,
}


def value_and_slope(fn, z):
    """f(z) and f'(z) for a 1-D grid z, the derivative computed by autograd."""
    z = z.detach().requires_grad_(True)
    y = fn(z)
    (dy,) = torch.autograd.grad(y.sum(), z)  # sum: each y_i depends only on z_i
    return y.detach(), dy


z_grid = torch.linspace(-5, 5, 1001)
curves = {name: value_and_slope(fn, z_grid) for name, fn in activation_fns.items()}
for name in ("sigmoid", "GELU", "SiLU"):
    y, dy = curves[name]
    print(f"{name:8s} min f = {y.min():+.3f} | max f' = {dy.max():.3f}")

# %% tags=["autograde-skip"]
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(12, 4))
for name, (y, dy) in curves.items():
    ax_f.plot(z_grid, y, label=name)
    ax_d.plot(z_grid, dy, label=name)
ax_f.set(title="Activation functions f(z)", xlabel="pre-activation z", ylabel="f(z)", ylim=(-1.5, 3))
ax_d.set(title="Derivatives f'(z), by autograd", xlabel="pre-activation z", ylabel="f'(z)")
ax_d.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Look at the right panel. Sigmoid's slope never exceeds 0.25, and both sigmoid and tanh
# flatten to zero for large $|z|$: a unit pushed there stops learning (*saturation*). ReLU's
# slope is exactly 1 for every positive input — no shrinking — and exactly 0 for every
# negative one. GELU and SiLU are smooth ReLUs that dip slightly below zero (the printed
# minima, −0.17 and −0.28). The leaky ReLU is drawn with $\alpha = 0.1$ so that its slope is
# visible; the usual 0.01 is almost flat.
#
# Now play. Pick an activation, move the point $z_0$, and watch the tangent line: its slope is
# the derivative that backpropagation multiplies in at that unit. Where is the slope largest?
# Where does it vanish? (The explorer needs a live kernel; it is not built during grading.)

# %% tags=["autograde-skip"]
if not helpers.grading():  # a widget needs a live notebook; it is never built while grading
    import ipywidgets as widgets

    def explore_activation(name="sigmoid", z0=2.0, alpha=0.1):
        fn = activation_fns[name]
        if name in ("Leaky ReLU", "ELU"):
            fn = lambda z: activation_fns[name](z, alpha)  # noqa: E731 -- alpha from the slider
        y, dy = value_and_slope(fn, z_grid)
        y0, d0 = value_and_slope(fn, torch.tensor([z0]))
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.plot(z_grid, y, label=f"{name} f(z)")
        ax.plot(z_grid, dy, "--", label="f'(z)")
        ax.plot(z_grid, y0 + d0 * (z_grid - z0), ":", color="k", label="tangent at $z_0$")
        ax.plot([z0], [y0.item()], "o", color="k")
        ax.set(ylim=(-1.5, 3), xlabel="pre-activation z", ylabel="value",
               title=f"f({z0:.2f}) = {y0.item():.3f},  f'({z0:.2f}) = {d0.item():.3f}")
        ax.legend(loc="upper left", fontsize=8)
        plt.show()

    widgets.interact(
        explore_activation,
        name=widgets.Dropdown(options=list(activation_fns), value="sigmoid"),
        z0=widgets.FloatSlider(value=2.0, min=-5, max=5, step=0.1, continuous_update=False),
        alpha=widgets.FloatSlider(value=0.1, min=0.0, max=1.0, step=0.05, continuous_update=False),
    )

# %% [markdown]
# ### Why networks fail to train
#
# Backpropagation multiplies one factor per layer. For layer $l$ with pre-activation
# $\mathbf{z}_l = \mathbf{W}_l \mathbf{h}_{l-1} + \mathbf{b}_l$ and output
# $\mathbf{h}_l = \sigma(\mathbf{z}_l)$, the gradient that reaches the first layer is
#
# $$\frac{\partial \mathcal{L}}{\partial \mathbf{h}_0} =
#   \Big(\prod_{l=1}^{L} \mathbf{W}_l^\top \operatorname{diag}\big(\sigma'(\mathbf{z}_l)\big)\Big)
#   \frac{\partial \mathcal{L}}{\partial \mathbf{h}_L}.$$
#
# A product of $L$ factors is a knife edge: if each shrinks the signal a little, the result
# vanishes exponentially; if each grows it a little, it explodes. The four classic failures:
#
# 1. **Vanishing gradients** — factors below 1 (sigmoid's slope is at most 1/4, so 10 sigmoid
#    layers can shrink a gradient by $4^{10} \approx 10^6$). Early layers barely learn.
#    Remedies: ReLU-like activations, good initialization, normalization, skip connections.
# 2. **Exploding gradients** — factors above 1: huge updates, loss jumping to `inf` or `nan`.
#    Remedies: good initialization, a lower learning rate, gradient clipping, normalization.
# 3. **Dead ReLUs** — a unit whose pre-activation is negative for *every* input outputs 0 and
#    receives gradient 0: it can never come back. Typical causes: a too-large learning rate or a
#    large negative bias. Remedies: lower learning rate, He initialization, Leaky ReLU, batch
#    norm. (Careful: a unit that outputs 0 for *some* inputs is healthy sparsity; dead means 0
#    for *all* of them. Section 6.4 shows how to measure it properly.)
# 4. **Poor initialization** — too small and the signal vanishes, too large and it explodes;
#    all weights equal and every unit of a layer computes the same thing forever (the
#    *symmetry* problem).
#
# The experiment below measures failure 1 directly: the size of the gradient that reaches the
# first layer of a stack of `depth` layers (width 64), for sigmoid and ReLU networks.

# %%
def first_layer_gradient(depth, activation, he_init=False):
    """Norm of d(sum of outputs)/d(first weight matrix) in a depth-layer MLP of width 64."""
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        linear = nn.Linear(64, 64)
        if he_init:  # previewing the next section
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, activation()]
    net = nn.Sequential(*layers, nn.Linear(64, 1))
    net(torch.randn(256, 64)).sum().backward()
    return net[0].weight.grad.norm().item()


depths = list(range(1, 21))
grad_by_depth = {
    "sigmoid, PyTorch default init": [first_layer_gradient(d, nn.Sigmoid) for d in depths],
    "ReLU, PyTorch default init": [first_layer_gradient(d, nn.ReLU) for d in depths],
    "ReLU, He init": [first_layer_gradient(d, nn.ReLU, he_init=True) for d in depths],
}
for name, grads in grad_by_depth.items():
    print(f"{name:30s} depth 1: {grads[0]:8.2g}   depth 20: {grads[-1]:8.2g}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, grads in grad_by_depth.items():
    ax.semilogy(depths, grads, marker="o", ms=3, label=name)
ax.set(title="Gradient reaching the first layer", xlabel="number of hidden layers",
       ylabel="norm of first-layer gradient (log scale)", xticks=[1, 5, 10, 15, 20])
ax.legend()
plt.show()

# %% [markdown]
# The sigmoid network loses a factor of about 7 per layer: at depth 20 its first layer gets a
# gradient some $10^{16}$ times smaller than at depth 1, which is as good as nothing. ReLU is
# much better but, surprisingly, still fades with PyTorch's *default* initialization — we will
# see why in the initialization section. With He initialization the gradient holds steady
# through 20 layers.
#
# ## 6.3 Implementation: building MLPs in PyTorch
#
# ### A simple MLP with `nn.Sequential`
#
# When the data flows straight through a stack of layers, `nn.Sequential` is all you need.
# A 10 → 128 → 64 → 1 regression network:

# %%
seq_model = nn.Sequential(
    nn.Linear(10, 128),
    nn.ReLU(),
    nn.Linear(128, 64),
    nn.ReLU(),
    nn.Linear(64, 1),  # regression output: no activation
)
x_batch = torch.randn(32, 10)  # (B, d_in)
print("output shape:", tuple(seq_model(x_batch).shape))  # (B, 1)
print("parameters:", sum(p.numel() for p in seq_model.parameters()))  # 10*128+128 + 128*64+64 + 64+1

# %% [markdown]
# ### A custom MLP module
#
# A class gives you a configurable architecture: the layer sizes become a list, and the
# activation an argument. Passing the activation as a *class* (`nn.ReLU`, not `nn.ReLU()`)
# lets the module create a fresh instance for each layer. Storing the layers in an
# `nn.Sequential` (or an `nn.ModuleList`) registers their parameters with the module; a plain
# Python list would hide them from `.parameters()` and from the optimizer.

# %%
class MLP(nn.Module):
    """A configurable MLP: d_in -> hidden_dims[0] -> ... -> hidden_dims[-1] -> d_out."""

    def __init__(self, d_in, hidden_dims, d_out, activation=nn.ReLU):
        super().__init__()
        layers, width_in = [], d_in
        for width in hidden_dims:
            layers += [nn.Linear(width_in, width), activation()]
            width_in = width
        layers.append(nn.Linear(width_in, d_out))  # the output layer has no activation
        self.network = nn.Sequential(*layers)

    def forward(self, x):  # (B, d_in) -> (B, d_out)
        return self.network(x)


mlp = MLP(10, [128, 64, 32], 1, activation=nn.GELU)
print(mlp)
for name, p in mlp.named_parameters():
    print(f"{name:20s} {tuple(p.shape)}")

# %% [markdown]
# Every weight has shape `(out, in)` and every bias `(out,)`, as promised. We will reuse this
# `MLP` class several times.
#
# ### Exercise 6.1 — Building your first MLP (★★, 4 points)
#
# Three steps from the maths to a trained network.
#
# **(a)** Write `numpy_forward(X, params)`: the forward pass of a ReLU MLP in plain NumPy.
# `X` is an array `(B, d_in)`; `params` is a list of `(W, b)` pairs of arrays in PyTorch's
# layout, `W` of shape `(d_out, d_in)` and `b` of shape `(d_out,)`. Apply each layer in turn
# with a ReLU after every layer **except the last**, and return the output array
# `(B, d_out)`. Do not modify `X`. The tests compare with PyTorch's own `F.linear` on
# networks of one to four layers.
#
# **(b)** Write `first_mlp()`, which returns a new `nn.Sequential` for the architecture
# 20 → 64 → 32 → 1 with ReLU activations (five modules: Linear, ReLU, Linear, ReLU, Linear).
# The tests check the module types, sizes and the number of parameters (work it out first).
#
# **(c)** Write `train_full_batch(model, X, y, epochs=100, lr=1e-2)`: train `model` on all of
# `(X, y)` at once — one Adam step per epoch (full batch) on the mean squared error — and
# return a list of `epochs` Python floats, the loss of each epoch computed **before** that
# epoch's step. Train on whatever device `model` and the data are on; do not move or modify
# them. The tests check the losses, the final error on the seed's task $y = \sum_i x_i + \varepsilon$
# (it must be **below 0.1**), and compare three epochs with a reference loop parameter by
# parameter.
#
# *Hints:* (a) `np.maximum(0, z)` is ReLU; `X @ W.T + b` is a layer. (c) the five steps of
# chapter 4 in order: `zero_grad`, forward, loss (`F.mse_loss`), `backward`, `step`;
# `loss.item()` gives the float.

# %% nbgrader={"grade": false, "grade_id": "ex06_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numpy_forward(X, params):
    """Forward pass of a ReLU MLP in NumPy.

    Args:
        X: array (B, d_in).
        params: list of (W, b), W of shape (d_out, d_in) and b of shape (d_out,).

    Returns:
        array (B, d_out): ReLU after every layer but the last.
    """
    ### BEGIN SOLUTION
    h = X
    for i, (W, b) in enumerate(params):
        h = h @ W.T + b  # (B, d_out of this layer)
        if i < len(params) - 1:
            h = np.maximum(0, h)
    return h
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_1_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
rng_t = np.random.default_rng(61)
params_t = [(rng_t.normal(size=(7, 5)), rng_t.normal(size=7)), (rng_t.normal(size=(3, 7)), rng_t.normal(size=3))]
X_t = rng_t.normal(size=(6, 5))
X_t_before = X_t.copy()
Xt_torch = torch.from_numpy(X_t)
expected_t = F.linear(torch.relu(F.linear(Xt_torch, *map(torch.from_numpy, params_t[0]))),
                      *map(torch.from_numpy, params_t[1]))
got_t = numpy_forward(X_t, params_t)
checks.check_type(got_t, np.ndarray, "numpy_forward(X, params)", hint="return a NumPy array")
checks.check_close(got_t, expected_t, "numpy_forward(X, params) for a 5 -> 7 -> 3 network",
                   rtol=1e-6, atol=1e-9, hint="each layer is h @ W.T + b; ReLU only between layers")
### BEGIN HIDDEN TESTS
checks.check_close(X_t, X_t_before, "X after numpy_forward", hint="do not modify the input in place")
for sizes in ([4, 2], [4, 9, 8, 6, 1]):  # one layer (no ReLU at all) and four layers
    ps = [(rng_t.normal(size=(o, i)), rng_t.normal(size=o)) for i, o in zip(sizes[:-1], sizes[1:])]
    Xs = rng_t.normal(size=(10, sizes[0]))
    ref = torch.from_numpy(Xs)
    for k, (W, b) in enumerate(ps):
        ref = F.linear(ref, torch.from_numpy(W), torch.from_numpy(b))
        ref = torch.relu(ref) if k < len(ps) - 1 else ref
    checks.check_close(numpy_forward(Xs, ps), ref, f"numpy_forward on layer sizes {sizes}",
                       rtol=1e-6, atol=1e-9, hint="no ReLU after the last layer")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def first_mlp():
    """A new nn.Sequential: 20 -> 64 -> 32 -> 1 with ReLU activations."""
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
net_t = first_mlp()
checks.check_module(net_t, "first_mlp()", n_params=(20 * 64 + 64) + (64 * 32 + 32) + (32 + 1),
                    example_input=torch.randn(5, 20), output_shape=(5, 1),
                    hint="count weights (out x in) and biases (out) of the three Linear layers")
kinds_t = [type(m) for m in net_t]
checks.check_equal(kinds_t, [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear],
                   "the module types of first_mlp()", hint="Linear, ReLU, Linear, ReLU, Linear")
### BEGIN HIDDEN TESTS
sizes_t = [(m.in_features, m.out_features) for m in net_t if isinstance(m, nn.Linear)]
checks.check_equal(sizes_t, [(20, 64), (64, 32), (32, 1)], "the Linear sizes of first_mlp()")
xb_t = torch.randn(9, 20)
lin_t = [m for m in net_t if isinstance(m, nn.Linear)]
ref_t = F.linear(torch.relu(F.linear(torch.relu(F.linear(xb_t, lin_t[0].weight, lin_t[0].bias)),
                                     lin_t[1].weight, lin_t[1].bias)), lin_t[2].weight, lin_t[2].bias)
checks.check_close(net_t(xb_t), ref_t, "first_mlp()(x)", rtol=1e-5, atol=1e-6)
checks.check(first_mlp() is not net_t, "first_mlp() must build a new network at each call.",
             hint="create the layers inside the function")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_1_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_full_batch(model, X, y, epochs=100, lr=1e-2):
    """Full-batch Adam on the MSE. X (N, d_in), y (N, d_out); returns `epochs` floats (loss before each step)."""
    ### BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_1_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
gen_t = torch.Generator().manual_seed(2024)
X_t = torch.randn(600, 20, generator=gen_t)
y_t = X_t.sum(dim=1, keepdim=True) + 0.1 * torch.randn(600, 1, generator=gen_t)
torch.manual_seed(7)
net_t = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
with torch.no_grad():
    start_t = F.mse_loss(net_t(X_t), y_t).item()
losses_t = train_full_batch(net_t, X_t, y_t, epochs=100)
checks.check_type(losses_t, list, "train_full_batch(...)", hint="return a list of floats")
checks.check_equal(len(losses_t), 100, "the number of losses for epochs=100")
checks.check(all(isinstance(v, float) for v in losses_t), "the losses must be Python floats.",
             "float", type(losses_t[0]).__name__, "append loss.item(), not the tensor")
checks.check_close(losses_t[0], start_t, "the first loss", rtol=1e-4,
                   hint="record the mean squared error of each epoch, computed before the step")
with torch.no_grad():
    final_t = F.mse_loss(net_t(X_t), y_t).item()
checks.check(final_t < 0.1, "after 100 epochs the MSE must be below 0.1.", "< 0.1", final_t,
             "zero_grad, forward, loss, backward, step — in that order, every epoch")
### BEGIN HIDDEN TESTS
torch.manual_seed(8)
net_a = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 1))
net_b = copy.deepcopy(net_a)
X_c, y_c = X_t[:200].clone(), y_t[:200].clone()
got_c = train_full_batch(net_a, X_c, y_c, epochs=3, lr=3e-3)
opt_ref = torch.optim.Adam(net_b.parameters(), lr=3e-3)
ref_c = []
for _ in range(3):
    opt_ref.zero_grad()
    loss_ref = F.mse_loss(net_b(X_c), y_c)
    loss_ref.backward()
    opt_ref.step()
    ref_c.append(loss_ref.item())
checks.check_close(torch.tensor(got_c), torch.tensor(ref_c), "the losses of 3 epochs at lr=3e-3", rtol=1e-4)
for (name_c, p_a), p_b in zip(net_a.named_parameters(), net_b.parameters()):
    checks.check_close(p_a, p_b, f"parameter {name_c} after 3 epochs", rtol=1e-4, atol=1e-6,
                       hint="one Adam step per epoch with the given lr, gradients zeroed each time")
checks.check_close(X_c, X_t[:200], "X after training", hint="do not modify the data")
### END HIDDEN TESTS

# %% [markdown]
# Now the seed's task: 1000 samples of $y = \sum_{i=1}^{20} x_i + \varepsilon$ with noise
# $\varepsilon \sim \mathcal{N}(0, 0.1^2)$. The noise alone costs an MSE of 0.01, so that is the
# floor; the target is a final loss below 0.1.

# %%
gen = torch.Generator().manual_seed(61)
X_sum = torch.randn(1000, 20, generator=gen).to(device)  # (N, 20)
y_sum = (X_sum.sum(dim=1, keepdim=True) + 0.1 * torch.randn(1000, 1, generator=gen).to(device))  # (N, 1)
torch.manual_seed(0)
model_61 = first_mlp().to(device)
losses_61 = train_full_batch(model_61, X_sum, y_sum, epochs=100)
print(f"loss: epoch 1 {losses_61[0]:.2f} -> epoch 100 {losses_61[-1]:.4f} "
      f"(target < 0.1: {'reached' if losses_61[-1] < 0.1 else 'MISSED'})")

# %% tags=["autograde-skip"]
hplot.training_curves({"train_loss": losses_61}, title="Exercise 6.1: y = sum of 20 inputs",
                      ylabel="MSE (log scale)", logy=True)
plt.show()

# %% [markdown]
# The loss starts near 20 — the variance of a sum of 20 unit-variance inputs, which a network
# predicting about 0 pays in full — and falls by three orders of magnitude. On a log scale the
# curve shows what a linear one hides: fast progress early, then steady refinement.
#
# ### Exercise 6.2 — Activation function comparison (★★★, 4 points)
#
# Does the activation matter? Train identical networks that differ only in their activation
# and compare. The task: a 1-D signal, a sine with a burst of higher frequency in the middle,
# $f(x) = \sin 3x + \tfrac12 \sin(7x)\, e^{-x^2}$ on $[-2, 2]$. The training set is 256 noisy
# samples (noise standard deviation 0.05); the test set is 1000 clean points on a grid.

# %%
def burst_signal(x):
    """The 1-D signal of Exercise 6.2: sin(3x) + 0.5 sin(7x) exp(-x^2)."""
    return torch.sin(3 * x) + 0.5 * torch.sin(7 * x) * torch.exp(-(x**2))


gen = torch.Generator().manual_seed(62)
x_sig = (torch.rand(256, 1, generator=gen) * 4 - 2).to(device)  # (N, 1) in [-2, 2]
y_sig = burst_signal(x_sig) + 0.05 * torch.randn(256, 1, generator=gen).to(device)
x_sig_test = torch.linspace(-2, 2, 1000).unsqueeze(1).to(device)  # (1000, 1)
y_sig_test = burst_signal(x_sig_test)
ACT_NAMES_62 = ("relu", "leaky_relu", "tanh", "gelu", "sigmoid")

# %% [markdown]
# **(a)** Write `make_act_mlp(activation, d_in=1, width=64, d_out=1)`: an `nn.Sequential` with
# three Linear layers, `d_in → width → width → d_out`, and the named activation after each of
# the first two. Names: `"relu"`, `"leaky_relu"` (negative slope 0.01), `"tanh"`, `"gelu"`,
# `"sigmoid"`; any other name raises a `ValueError` that lists the valid ones. The tests check
# the module types, the parameter count and the output against a functional reference.
#
# **(b)** For each name in `ACT_NAMES_62`: seed with `torch.manual_seed(0)` (so every network
# starts from the same weights), build the model on `device`, train it for `EPOCHS_62 = 200`
# full-batch epochs with Adam at `lr=1e-2` on `(x_sig, y_sig)`, and store
#
# - `models_62[name]`: the trained model;
# - `results_62[name] = {"train_loss": [...], "test_mse": ...}`: the 200 training losses and
#   the MSE on `(x_sig_test, y_sig_test)` after training (a float).
#
# You may use `train_full_batch` from 6.1, or `helpers.train.fit(model, [(x_sig, y_sig)], F.mse_loss, optimizer, epochs=EPOCHS_62)`
# — a list holding one `(inputs, targets)` pair is a perfectly good "loader" for full-batch
# training. **Quality target:** a test MSE below 0.05 for every activation but sigmoid.
#
# **(c)** Answer from your results and the theory:
#
# - `epochs_to_target_62[name]`: the first epoch (counting from 1) whose training loss is
#   below 0.05, or `None` if it never is;
# - `fastest_62`: the name with the smallest such epoch (converges fastest);
# - `best_62`: the name with the lowest test MSE;
# - `why_sigmoid_62`: why does sigmoid do worst in hidden layers? (a) its outputs lie in
#   (0, 1), so the network cannot produce negative values; (b) its slope is at most 1/4 and its
#   outputs are all positive, so gradients shrink layer after layer and the updates of each
#   unit's incoming weights all share one sign; (c) it has zero gradient for negative inputs,
#   like a dead ReLU; (d) it is too expensive to compute.
#
# The tests recompute the test MSE of your stored models, check the bounds, and check that
# your answers agree with your own results.

# %% nbgrader={"grade": false, "grade_id": "ex06_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_act_mlp(activation, d_in=1, width=64, d_out=1):
    """nn.Sequential: Linear(d_in, width), act, Linear(width, width), act, Linear(width, d_out)."""
    ### BEGIN SOLUTION
    factories = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.01),
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "sigmoid": nn.Sigmoid,
    }
    if activation not in factories:
        raise ValueError(f"activation must be one of {sorted(factories)}, got {activation!r}")
    act = factories[activation]
    return nn.Sequential(nn.Linear(d_in, width), act(), nn.Linear(width, width), act(),
                         nn.Linear(width, d_out))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def reference_forward_62(model, x, act_fn):
    """Functional reference: Linear layers of `model`, `act_fn` between them."""
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for k, lin in enumerate(lins):
        x = F.linear(x, lin.weight, lin.bias)
        x = act_fn(x) if k < len(lins) - 1 else x
    return x


net_t = make_act_mlp("tanh")
checks.check_module(net_t, 'make_act_mlp("tanh")', n_params=(1 * 64 + 64) + (64 * 64 + 64) + (64 + 1),
                    example_input=torch.randn(7, 1), output_shape=(7, 1))
checks.check_equal([type(m) for m in net_t], [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear],
                   'the module types of make_act_mlp("tanh")')
xb_t = torch.randn(11, 1) * 3
checks.check_close(net_t(xb_t), reference_forward_62(net_t, xb_t, torch.tanh),
                   'make_act_mlp("tanh")(x)', rtol=1e-5, atol=1e-6)
### BEGIN HIDDEN TESTS
for name_t, fn_t in [("relu", torch.relu), ("leaky_relu", lambda z: F.leaky_relu(z, 0.01)),
                     ("gelu", F.gelu), ("sigmoid", torch.sigmoid)]:
    net_t = make_act_mlp(name_t, d_in=3, width=8, d_out=2)
    checks.check_module(net_t, f'make_act_mlp("{name_t}", 3, 8, 2)', n_params=(3 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2))
    xb_t = torch.randn(20, 3) * 3
    checks.check_close(net_t(xb_t), reference_forward_62(net_t, xb_t, fn_t),
                       f'make_act_mlp("{name_t}")(x)', rtol=1e-5, atol=1e-6,
                       hint="leaky_relu uses negative slope 0.01; gelu is nn.GELU()")
checks.check_raises(lambda: make_act_mlp("swish"), ValueError, 'make_act_mlp("swish")',
                    hint="raise ValueError for an unknown activation name")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS_62 = 200
models_62 = {}  # name -> trained model
results_62 = {}  # name -> {"train_loss": [200 floats], "test_mse": float}
### BEGIN SOLUTION
for name in ACT_NAMES_62:
    torch.manual_seed(0)  # the same initial weights for every activation
    model = make_act_mlp(name).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = fit(model, [(x_sig, y_sig)], F.mse_loss, optimizer, epochs=EPOCHS_62, progress=False)
    test_mse = evaluate(model, [(x_sig_test, y_sig_test)], F.mse_loss)["loss"]
    models_62[name] = model
    results_62[name] = {"train_loss": history["train_loss"], "test_mse": test_mse}
### END SOLUTION
for name, res in results_62.items():
    print(f"{name:10s} final train loss {res['train_loss'][-1]:.4f} | test MSE {res['test_mse']:.4f}")

# %% [markdown]
# The loss curves side by side (log scale), and the fits against the clean signal:

# %% tags=["autograde-skip"]
fig, (ax_l, ax_p) = plt.subplots(1, 2, figsize=(12, 4))
hplot.training_curves({n: r["train_loss"] for n, r in results_62.items()}, keys=list(results_62),
                      ax=ax_l, title="Training loss by activation", ylabel="MSE (log scale)", logy=True)
ax_p.plot(x_sig_test.cpu(), y_sig_test.cpu(), color="k", lw=3, alpha=0.3, label="true signal")
for name in ("relu", "tanh", "sigmoid"):
    with torch.no_grad():
        ax_p.plot(x_sig_test.cpu(), models_62[name](x_sig_test).cpu(), lw=1.2, label=name)
ax_p.set(title="Fits after 200 epochs", xlabel="input x", ylabel="f(x)")
ax_p.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% nbgrader={"grade": false, "grade_id": "ex06_2_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
epochs_to_target_62 = {}  # name -> first epoch (from 1) with training loss < 0.05, or None
fastest_62 = ...  # a name from ACT_NAMES_62
best_62 = ...  # a name from ACT_NAMES_62
why_sigmoid_62 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for name, res in results_62.items():
    below = [epoch for epoch, loss in enumerate(res["train_loss"], start=1) if loss < 0.05]
    epochs_to_target_62[name] = below[0] if below else None
reached = {n: e for n, e in epochs_to_target_62.items() if e is not None}
fastest_62 = min(reached, key=reached.get)
best_62 = min(results_62, key=lambda n: results_62[n]["test_mse"])
why_sigmoid_62 = "b"  # slope <= 1/4 shrinks gradients; all-positive outputs make zig-zag updates
### END SOLUTION
print("epochs to reach a training loss of 0.05:", epochs_to_target_62)
print("fastest:", fastest_62, "| best test MSE:", best_62)

# %% nbgrader={"grade": true, "grade_id": "ex06_2_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
names_t = ("relu", "leaky_relu", "tanh", "gelu", "sigmoid")
checks.check_equal(sorted(results_62), sorted(names_t), "the keys of results_62")
x_chk = torch.linspace(-2, 2, 1000).unsqueeze(1)
y_chk = torch.sin(3 * x_chk) + 0.5 * torch.sin(7 * x_chk) * torch.exp(-(x_chk**2))
mse_t = {}
for name_t in names_t:
    model_t = models_62[name_t]
    dev_t = next(model_t.parameters()).device
    with torch.no_grad():
        mse_t[name_t] = F.mse_loss(model_t(x_chk.to(dev_t)), y_chk.to(dev_t)).item()
    checks.check_close(results_62[name_t]["test_mse"], mse_t[name_t], f'results_62["{name_t}"]["test_mse"]',
                       rtol=1e-3, atol=1e-7, hint="the MSE of the trained model on (x_sig_test, y_sig_test)")
    checks.check_equal(len(results_62[name_t]["train_loss"]), 200, f'len(results_62["{name_t}"]["train_loss"])')
for name_t in ("relu", "leaky_relu", "tanh", "gelu"):
    checks.check(mse_t[name_t] < 0.05, f"the {name_t} network misses the quality target.", "test MSE < 0.05",
                 mse_t[name_t], "200 full-batch Adam epochs at lr=1e-2 from torch.manual_seed(0)")
### BEGIN HIDDEN TESTS
checks.check(max(mse_t, key=mse_t.get) == "sigmoid", "sigmoid should have the largest test MSE.",
             "sigmoid", max(mse_t, key=mse_t.get))
for name_t in names_t:
    below_t = [e for e, v in enumerate(results_62[name_t]["train_loss"], start=1) if v < 0.05]
    checks.check_equal(epochs_to_target_62.get(name_t, "missing"), below_t[0] if below_t else None,
                       f'epochs_to_target_62["{name_t}"]', hint="epochs count from 1")
reached_t = {n: e for n, e in epochs_to_target_62.items() if e is not None}
checks.check(fastest_62 in reached_t and reached_t[fastest_62] == min(reached_t.values()),
             "fastest_62 does not match epochs_to_target_62.", min(reached_t, key=reached_t.get), fastest_62)
checks.check_equal(best_62, min(mse_t, key=mse_t.get), "best_62")
checks.check_equal(why_sigmoid_62, "b", "why_sigmoid_62",
                   hint="look at the derivative panel above: how large can sigmoid's slope get?")
### END HIDDEN TESTS

# %% [markdown]
# With these settings ReLU, leaky ReLU, tanh and GELU all fit the signal, while sigmoid is an
# order of magnitude behind and never reaches a training loss of 0.05: its gradients shrink by
# a factor of at least 4 per layer, and its all-positive outputs make every update of a unit's
# incoming weights move in one direction. Which of the four good ones wins depends on the task
# and the seed (compare the printed numbers); ReLU's fit is piecewise linear, which shows as
# small kinks on a smooth target like this one.
#
# ### Weight initialization
#
# Why does initialization matter so much? Consider one layer $z_i = \sum_{j=1}^{n_\text{in}} w_{ij} h_j$
# with independent zero-mean weights of variance $\operatorname{Var}(w)$. Then
#
# $$\operatorname{Var}(z) = n_\text{in}\, \operatorname{Var}(w)\, \mathbb{E}[h^2].$$
#
# For the signal to keep its size from layer to layer, $n_\text{in}\operatorname{Var}(w)\,\mathbb{E}[h^2]$
# must equal $\operatorname{Var}$ of the previous layer's $z$.
#
# - **Xavier/Glorot** (2010), for tanh, sigmoid and linear layers, where $\mathbb{E}[h^2] \approx \operatorname{Var}(z)$:
#   $\operatorname{Var}(w) = 2/(n_\text{in} + n_\text{out})$, a compromise between keeping the
#   forward signal ($1/n_\text{in}$) and the backward gradient ($1/n_\text{out}$). As a uniform
#   distribution: $w \sim \mathcal{U}\big(-\sqrt{6/(n_\text{in} + n_\text{out})}, \sqrt{6/(n_\text{in} + n_\text{out})}\big)$.
# - **He/Kaiming** (2015), for ReLU, which zeroes half of its inputs so that
#   $\mathbb{E}[h^2] = \operatorname{Var}(z)/2$: $\operatorname{Var}(w) = 2/n_\text{in}$, that is
#   $w \sim \mathcal{N}(0, \sigma^2)$ with $\sigma = \sqrt{2/n_\text{in}}$.
#   (Careful with notation: the second argument of $\mathcal{N}$ is the variance here.)
# - **Biases:** zero.
#
# In PyTorch: `nn.init.xavier_uniform_`, `nn.init.xavier_normal_`, `nn.init.kaiming_normal_(w, nonlinearity="relu")`,
# `nn.init.zeros_`. The trailing underscore means *in place*. Let us push a batch through ten
# ReLU layers of width 256 and watch the spread of the activations, layer by layer:

# %%
def activation_spread(init, depth=10, width=256):
    """Standard deviation of the activations after each of `depth` ReLU layers."""
    torch.manual_seed(0)
    h, spread = torch.randn(512, width), []  # (B, width)
    for _ in range(depth):
        layer = nn.Linear(width, width)  # PyTorch's default initialization...
        if init is not None:  # ...unless we replace it
            init(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            h = torch.relu(layer(h))
        spread.append(h.std().item())
    return spread


inits = {
    "normal, std 0.01": lambda w: nn.init.normal_(w, 0.0, 0.01),
    "normal, std 1": lambda w: nn.init.normal_(w, 0.0, 1.0),
    "PyTorch default": None,
    "Xavier": nn.init.xavier_normal_,
    "He": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}
spreads = {name: activation_spread(init) for name, init in inits.items()}
for name, s in spreads.items():
    print(f"{name:18s} std after layer 1: {s[0]:9.3g}   after layer 10: {s[-1]:9.3g}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, s in spreads.items():
    ax.semilogy(range(1, 11), s, marker="o", ms=3, label=name)
ax.set(title="Activation spread through 10 ReLU layers (width 256)", xlabel="layer",
       ylabel="std of activations (log scale)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Only He keeps the spread constant. Standard deviation 0.01 shrinks the signal about
# 11-fold per layer ($0.01 \cdot \sqrt{256/2} \approx 0.11$), standard deviation 1 grows it
# 11-fold: after ten layers that is a factor of $10^{10}$ either way. Xavier, designed for
# tanh, loses a factor $\sqrt{2}$ per layer with ReLU.
#
# And **PyTorch's default** shrinks too. Many texts say `nn.Linear` uses He initialization; it
# does not. It calls `kaiming_uniform_` with `a=√5`, which draws from
# $\mathcal{U}(-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}})$: standard deviation
# $1/\sqrt{3 n_\text{in}}$, about 0.41 of He's. Measured:

# %%
wide_layer = nn.Linear(512, 512)
print(f"default std {wide_layer.weight.std():.4f} | 1/sqrt(3*512) = {1 / math.sqrt(3 * 512):.4f} "
      f"| He std sqrt(2/512) = {math.sqrt(2 / 512):.4f}")

# %% [markdown]
# For shallow networks the default is fine; for deep ReLU stacks, initialize explicitly. The
# usual way is a function applied to every submodule with `model.apply(fn)`, which visits
# the model recursively.
#
# ### Exercise 6.3 — Initialization impact (★★★, 4 points)
#
# **(a)** Write `init_mlp_(model, scheme)`: re-initialize, in place, the weight of **every**
# `nn.Linear` inside `model` (however deeply nested) and set every Linear bias to zero; leave
# other modules alone; return `model`. Schemes:
#
# | `scheme` | weights |
# |---|---|
# | `"zeros"` | all 0 |
# | `"ones"` | all 1 |
# | `"normal_0.01"` | $\mathcal{N}(0, 0.01^2)$: standard deviation 0.01 |
# | `"normal_1"` | $\mathcal{N}(0, 1)$ |
# | `"xavier"` | Xavier/Glorot (normal or uniform): std $\sqrt{2/(n_\text{in} + n_\text{out})}$ |
# | `"he"` | He/Kaiming for ReLU, fan-in mode (normal or uniform): std $\sqrt{2/n_\text{in}}$ |
#
# Any other scheme raises a `ValueError`. The tests measure the weight statistics of large,
# non-square layers inside nested models.
#
# **(b)** Train the digits classifier `make_digits_mlp()` (below: 64 → 64 → 64 → 64 → 10,
# ReLU) once per scheme of `SCHEMES_63`: seed with `torch.manual_seed(0)`, build, initialize
# with your `init_mlp_`, move to `device`, and train for `EPOCHS_63 = 50` epochs with
# `torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)` and the cross-entropy loss on
# `digits_loader` (batches of 360 training digits). Store in `results_63[scheme]` the list of
# the 50 mean training losses per epoch — `nan` is a legitimate value: record it, do not hide
# it. Then set
#
# - `failed_63`: the sorted list of schemes whose final loss is `nan` or above 1.0;
# - `why_zeros_63`: why does the all-zeros network not learn? (a) zero weights make the loss
#   `nan`; (b) every hidden unit computes the same output, zero, and gets the same zero
#   gradient, so the hidden weights never change and only the last bias learns; (c) SGD cannot
#   start from a point where the loss is flat; (d) ReLU has no derivative at zero.
#
# **Quality target:** Xavier and He reach a final training loss below 0.5 (He is the fastest).
# The tests check the structure of your results and these facts.
#
# *Hints:* (a) loop over `model.modules()`; `nn.init.zeros_`, `ones_`, `normal_(w, mean, std)`,
# `xavier_normal_`, `kaiming_normal_(w, nonlinearity="relu")`. (b) a loop over epochs and
# batches, as in chapter 4; `math.isnan(x)` tests for `nan`.

# %% [markdown]
# The digits, split once into 1437 training and 360 test images and kept on `device`. For
# mini-batches we use a light stand-in for `DataLoader`: a `DataLoader` fetches samples one at
# a time and stacks them — the right design for data on disk, wasteful for a small tensor
# already in memory. `Batches` slices a shuffled index instead: the same batches, much faster
# (measured below).

# %%
class Batches:
    """Shuffled mini-batches of in-memory tensors, a fresh order at each pass (a light DataLoader)."""

    def __init__(self, *tensors, batch_size):
        self.tensors, self.batch_size = tensors, batch_size

    def __len__(self):
        return math.ceil(len(self.tensors[0]) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.tensors[0]), device=self.tensors[0].device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


X_digits, y_digits = hdata.digits(flat=True)  # (1797, 64) grey levels in [0, 1], labels (1797,)
perm = torch.randperm(len(X_digits), generator=torch.Generator().manual_seed(6))
X_dig_train, y_dig_train = X_digits[perm[:1437]].to(device), y_digits[perm[:1437]].to(device)
X_dig_test, y_dig_test = X_digits[perm[1437:]].to(device), y_digits[perm[1437:]].to(device)
for name, loader in [("DataLoader", DataLoader(TensorDataset(X_dig_train, y_dig_train), batch_size=64, shuffle=True)),
                     ("Batches", Batches(X_dig_train, y_dig_train, batch_size=64))]:
    start = time.perf_counter()
    n_seen = sum(len(xb) for xb, yb in loader)
    print(f"{name:10s}: one epoch of {n_seen} digits in {1000 * (time.perf_counter() - start):5.1f} ms")
digits_loader = Batches(X_dig_train, y_dig_train, batch_size=360)
SCHEMES_63 = ("zeros", "ones", "normal_0.01", "normal_1", "xavier", "he")


def make_digits_mlp():
    """The network of Exercise 6.3: 64 -> 64 -> 64 -> 64 -> 10 with ReLU."""
    return MLP(64, [64, 64, 64], 10)


print(f"{len(X_dig_train)} training and {len(X_dig_test)} test digits, {len(digits_loader)} batches of 360 per epoch")

# %% nbgrader={"grade": false, "grade_id": "ex06_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def init_mlp_(model, scheme):
    """Re-initialize every nn.Linear of `model` in place (weights by `scheme`, biases 0); return model."""
    ### BEGIN SOLUTION
    initializers = {
        "zeros": nn.init.zeros_,
        "ones": nn.init.ones_,
        "normal_0.01": lambda w: nn.init.normal_(w, 0.0, 0.01),
        "normal_1": lambda w: nn.init.normal_(w, 0.0, 1.0),
        "xavier": nn.init.xavier_normal_,
        "he": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    }
    if scheme not in initializers:
        raise ValueError(f"scheme must be one of {sorted(initializers)}, got {scheme!r}")
    for module in model.modules():
        if isinstance(module, nn.Linear):
            initializers[scheme](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_3_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def nested_net_63():
    """Large, non-square Linear layers, one of them nested, plus a non-Linear module with weights."""
    return nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Sequential(nn.Linear(300, 200), nn.LayerNorm(200)),
                         nn.Tanh(), nn.Linear(200, 10))


def linears_63(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


torch.manual_seed(63)
net_t = nested_net_63()
out_t = init_mlp_(net_t, "zeros")
checks.check(out_t is net_t, "init_mlp_ must return the model it was given.", hint="return model at the end")
for lin in linears_63(net_t):
    checks.check_equal(lin.weight.detach(), torch.zeros_like(lin.weight), f"weight {tuple(lin.weight.shape)} after 'zeros'")
net_t = init_mlp_(nested_net_63(), "he")
for lin in linears_63(net_t)[:2]:
    std_t, want_t = lin.weight.std().item(), math.sqrt(2 / lin.in_features)
    checks.check(abs(std_t / want_t - 1) < 0.05, f"the 'he' weights of a Linear({lin.in_features}, "
                 f"{lin.out_features}) have the wrong spread.", f"std about {want_t:.4f}", f"{std_t:.4f}",
                 "He for ReLU: std sqrt(2 / fan_in) — nonlinearity='relu', mode='fan_in'")
    checks.check_equal(lin.bias.detach(), torch.zeros_like(lin.bias), "the biases after 'he'")
### BEGIN HIDDEN TESTS
expected_std_t = {"normal_0.01": lambda i, o: 0.01, "normal_1": lambda i, o: 1.0,
                  "xavier": lambda i, o: math.sqrt(2 / (i + o)), "he": lambda i, o: math.sqrt(2 / i)}
for scheme_t, rule_t in expected_std_t.items():
    net_t = init_mlp_(nested_net_63(), scheme_t)
    for lin, tol in zip(linears_63(net_t), (0.05, 0.05, 0.15)):
        std_t, want_t = lin.weight.std().item(), rule_t(lin.in_features, lin.out_features)
        checks.check(abs(std_t / want_t - 1) < tol, f"scheme {scheme_t!r}: wrong spread in Linear"
                     f"({lin.in_features}, {lin.out_features}).", f"std about {want_t:.4g}", f"{std_t:.4g}")
        checks.check(abs(lin.weight.mean().item()) < 5 * want_t / math.sqrt(lin.weight.numel()),
                     f"scheme {scheme_t!r}: the weights are not centred on zero.")
        checks.check_equal(lin.bias.detach(), torch.zeros_like(lin.bias), f"biases after {scheme_t!r}")
    norm_t = net_t[2][1]
    checks.check_equal(norm_t.weight.detach(), torch.ones(200), "the LayerNorm weight (must be left alone)")
net_t = init_mlp_(nested_net_63(), "ones")
checks.check(all(bool((lin.weight == 1).all()) for lin in linears_63(net_t)), "'ones' must set every weight to 1.")
checks.check_raises(lambda: init_mlp_(nested_net_63(), "orthogonal"), ValueError, 'init_mlp_(model, "orthogonal")')
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS_63 = 50
results_63 = {}  # scheme -> list of EPOCHS_63 mean training losses
failed_63 = ...  # sorted list of schemes whose final loss is nan or > 1.0
why_zeros_63 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for scheme in SCHEMES_63:
    torch.manual_seed(0)
    model = init_mlp_(make_digits_mlp(), scheme).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(EPOCHS_63):
        total = 0.0
        for xb, yb in digits_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        losses.append(total / len(X_dig_train))
    results_63[scheme] = losses
failed_63 = sorted(s for s, ls in results_63.items() if math.isnan(ls[-1]) or ls[-1] > 1.0)
why_zeros_63 = "b"
### END SOLUTION
for scheme, losses in results_63.items():
    print(f"{scheme:12s} loss after epoch 1: {losses[0]:10.4g}   after epoch {EPOCHS_63}: {losses[-1]:.4f}")
print("failed:", failed_63)

# %% nbgrader={"grade": true, "grade_id": "ex06_3_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
schemes_t = ("zeros", "ones", "normal_0.01", "normal_1", "xavier", "he")
checks.check_equal(sorted(results_63), sorted(schemes_t), "the keys of results_63")
for scheme_t in schemes_t:
    checks.check_equal(len(results_63[scheme_t]), 50, f'len(results_63["{scheme_t}"])', hint="one value per epoch")
for scheme_t in ("xavier", "he"):
    final_t = results_63[scheme_t][-1]
    checks.check(final_t < 0.5, f"the {scheme_t} network misses the quality target.", "final loss < 0.5",
                 final_t, "SGD(lr=0.1, momentum=0.9), 50 epochs, zero_grad every step")
### BEGIN HIDDEN TESTS
expected_failed_t = sorted(s for s in schemes_t if math.isnan(results_63[s][-1]) or results_63[s][-1] > 1.0)
checks.check_equal(list(failed_63), expected_failed_t, "failed_63", hint="final loss nan or above 1.0, sorted")
checks.check({"zeros", "ones"} <= set(failed_63), "all-zero and all-one weights cannot break the symmetry.",
             "zeros and ones in failed_63", failed_63)
checks.check(abs(results_63["zeros"][-1] - math.log(10)) < 0.05, "the all-zeros network should stay at ln(10).",
             math.log(10), results_63["zeros"][-1])
checks.check_equal(why_zeros_63, "b", "why_zeros_63")
### END HIDDEN TESTS

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 3.8))
for scheme, losses in results_63.items():
    ax.semilogy(range(1, EPOCHS_63 + 1), losses, label=scheme)
ax.axhline(math.log(10), color="k", ls=":", lw=1)
ax.text(EPOCHS_63, math.log(10) * 1.15, "ln 10: guessing", ha="right", fontsize=8)
ax.set(title="Digits MLP: training loss by initialization", xlabel="epoch",
       ylabel="cross-entropy (log scale)")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %% [markdown]
# Four of six fail, for three different reasons. **Zeros** and **ones** never break the
# symmetry: every unit of a layer computes the same thing and receives the same gradient, so
# the network behaves as if each layer had a single unit (with ones, the first steps are huge
# as well). **Std 0.01** starts with a vanishing signal: the gradients are so small that 50
# epochs of SGD barely move it off $\ln 10 \approx 2.30$, the loss of guessing uniformly among
# ten classes. **Std 1** explodes first — look at the first epoch's loss — and the survivors
# are dead units. **Xavier** and **He** learn; He, made for ReLU, learns fastest.
#
# ### Batch normalization
#
# Good initialization makes the *first* forward pass well-scaled; training then moves the
# weights, and the scale can drift. **Batch normalization** (Ioffe & Szegedy, 2015)
# re-standardizes each feature over the batch at every step. For a batch of pre-activations
# $x_{b,c}$ (batch index $b$, feature $c$):
#
# $$\mu_c = \frac1B \sum_b x_{b,c}, \qquad \sigma_c^2 = \frac1B \sum_b (x_{b,c} - \mu_c)^2, \qquad
#   y_{b,c} = \gamma_c\, \frac{x_{b,c} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c .$$
#
# $\gamma$ and $\beta$ are learned, so the layer can undo the normalization if that helps.
# During training it also keeps running averages of $\mu$ and $\sigma^2$ (momentum 0.1; the
# running variance uses the unbiased estimate), and in **eval mode** it uses those instead of
# the batch's statistics, so that a prediction does not depend on which other examples share
# its batch. Let us check the formula against `nn.BatchNorm1d` on features with very different
# scales:

# %%
bn = nn.BatchNorm1d(3)  # 3 features; gamma = 1, beta = 0 at the start
x_bn = torch.randn(64, 3) * torch.tensor([1.0, 10.0, 100.0]) + torch.tensor([0.0, 5.0, -50.0])  # (B, C)
y_bn = bn(x_bn)  # training mode: batch statistics
by_hand = (x_bn - x_bn.mean(0)) / torch.sqrt(x_bn.var(0, unbiased=False) + bn.eps)
print("per-feature mean after BN:", y_bn.mean(0).detach().numpy().round(4))
print("per-feature std after BN: ", y_bn.std(0, unbiased=False).detach().numpy().round(4))
print("largest difference from the formula:", (y_bn - by_hand).abs().max().item())
print("running mean after one batch:", bn.running_mean.numpy().round(2), "= 0.1 x batch mean")

# %% [markdown]
# Three features on scales from 1 to 100 come out with mean 0 and standard deviation 1 each.
# Two practical points:
#
# - **Placement.** The original recipe is Linear → BatchNorm → activation; Linear → activation
#   → BatchNorm also works. Pick one and be consistent. The Linear bias before a batch norm is
#   redundant (the mean subtraction removes it), so it is often created with `bias=False`.
# - **Train vs eval.** Forgetting `model.eval()` before evaluation makes predictions depend on
#   the batch; and in training mode a batch of one sample cannot be normalized at all:

# %%
try:
    bn.train()(torch.randn(1, 3))
except ValueError as err:
    print("ValueError:", err)
bn.eval()
print("in eval mode a single sample is fine:", tuple(bn(torch.randn(1, 3)).shape))

# %% [markdown]
# Batch statistics from tiny batches are noisy; below a batch size of about 8, prefer layer
# norm or group norm (chapter 9 goes deeper into every normalization layer).
#
# ### Layer normalization
#
# **Layer normalization** (Ba et al., 2016) standardizes each *sample* across its features
# instead of each feature across the batch:
#
# $$\mu_b = \frac1C \sum_c x_{b,c}, \qquad \sigma_b^2 = \frac1C \sum_c (x_{b,c} - \mu_b)^2, \qquad
#   y_{b,c} = \gamma_c\, \frac{x_{b,c} - \mu_b}{\sqrt{\sigma_b^2 + \epsilon}} + \beta_c .$$
#
# No batch statistics means no running averages, identical behaviour in training and eval, and
# no problem with a batch of one — which is why transformers and RNNs use it.

# %%
ln = nn.LayerNorm(8)  # normalizes over the last dimension, of size 8
x_ln = torch.randn(4, 8) * 3 + 1  # (B, C) hidden activations
y_ln = ln(x_ln)
by_hand = (x_ln - x_ln.mean(1, keepdim=True)) / torch.sqrt(x_ln.var(1, unbiased=False, keepdim=True) + ln.eps)
print("per-sample mean after LN:", y_ln.mean(1).detach().numpy().round(4))
print("largest difference from the formula:", (y_ln - by_hand).abs().max().item())
print("a batch of one in training mode:", tuple(ln(torch.randn(1, 8)).shape))

# %% [markdown]
# | | BatchNorm | LayerNorm |
# |---|---|---|
# | normalizes over | the batch, per feature | the features, per sample |
# | needs a batch | yes: fails in training with batch size 1, noisy below ~8 | no: works for any batch size |
# | train vs eval | different (batch vs running statistics) | identical |
# | learned parameters | $\gamma, \beta$ per feature, plus running-statistics buffers | $\gamma, \beta$ per feature |
# | typical home | CNNs, MLPs with decent batches | transformers, RNNs |
#
# ### Exercise 6.4 — Depth vs width experiment (★★, 3 points)
#
# Is it better to be deep or wide? A fair comparison gives every network the same
# **parameter budget**. Count the parameters of an MLP with `d_in` inputs, `depth` hidden
# layers of `width` units each, and `d_out` outputs (Linear layers with biases; activations
# have no parameters).
#
# **(a)** Write `mlp_param_count(d_in, width, depth, d_out)` (an `int`, from a formula: do not
# build the network) and `width_for_budget(d_in, depth, d_out, budget)`: the **largest** width
# whose parameter count does not exceed `budget` (assume `budget` allows width 1). The tests
# compare with real networks and with a brute-force search.
#
# **(b)** The task is a 2-D field: the interference pattern of two point sources,
# $u(x, y) = \tfrac12\big[\cos(k r_1) + \cos(k r_2)\big]$ with $k = 8$ and $r_{1,2}$ the
# distances to $(\mp 0.4, 0)$, sampled at 1500 random training points and 4000 test points in
# $[-1, 1]^2$. Build, on `device`, with `torch.manual_seed(0)` before each:
#
# - `"wide"`: 2 hidden layers, `"medium"`: 4, `"deep"`: 8 — ReLU MLPs (the `MLP` class above
#   does it) with the width from `width_for_budget(2, depth, 1, BUDGET_64)`;
# - `"deep_bn"` (the seed's challenge): the deep network with a `nn.BatchNorm1d` after each
#   hidden Linear, before the ReLU.
#
# Train each for `EPOCHS_64 = 40` epochs with Adam (`lr=5e-3`) on `wave_loader` (batches of
# 250, shuffled), for instance with `helpers.train.fit`. Store the models in `models_64` and in
# `results_64[name]` a dict with `"params"` (the model's real parameter count), `"train_mse"`
# and `"test_mse"` (final MSEs **in eval mode**) and `"epochs_to_target"` (the first epoch,
# from 1, whose mean training loss is below `TARGET_64 = 0.01`, or `None`). Finally set
# `bn_helps_64 = True` if `deep_bn` reached a lower test MSE than `deep`, else `False`.
# **Quality target:** the best network reaches a test MSE below 0.02.

# %%
def two_source_field(xy):
    """u(x, y) = (cos(8 r1) + cos(8 r2)) / 2 for sources at (-0.4, 0) and (0.4, 0); xy (N, 2) -> (N, 1)."""
    r1 = torch.linalg.norm(xy - torch.tensor([-0.4, 0.0], device=xy.device), dim=1)
    r2 = torch.linalg.norm(xy - torch.tensor([0.4, 0.0], device=xy.device), dim=1)
    return (0.5 * (torch.cos(8 * r1) + torch.cos(8 * r2))).unsqueeze(1)


gen = torch.Generator().manual_seed(64)
X_wave = (torch.rand(1500, 2, generator=gen) * 2 - 1).to(device)  # (N, 2)
X_wave_test = (torch.rand(4000, 2, generator=gen) * 2 - 1).to(device)
y_wave, y_wave_test = two_source_field(X_wave), two_source_field(X_wave_test)  # (N, 1)
wave_loader = Batches(X_wave, y_wave, batch_size=250)
BUDGET_64, EPOCHS_64, TARGET_64 = 10_000, 40, 0.01
print(f"field variance {y_wave.var():.3f}: a network predicting the mean scores an MSE of about that")

# %% nbgrader={"grade": false, "grade_id": "ex06_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mlp_param_count(d_in, width, depth, d_out):
    """Parameters of an MLP with `depth` hidden layers of `width` units (weights and biases)."""
    ### BEGIN SOLUTION
    first = d_in * width + width
    hidden = (depth - 1) * (width * width + width)
    last = width * d_out + d_out
    return first + hidden + last
    ### END SOLUTION


def width_for_budget(d_in, depth, d_out, budget):
    """The largest width whose mlp_param_count does not exceed budget."""
    ### BEGIN SOLUTION
    width = 1
    while mlp_param_count(d_in, width + 1, depth, d_out) <= budget:
        width += 1
    return width
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_4_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def real_count_64(d_in, width, depth, d_out):
    net = MLP(d_in, [width] * depth, d_out)
    return sum(p.numel() for p in net.parameters())


for args_t in [(2, 97, 2, 1), (2, 37, 8, 1), (10, 5, 1, 3)]:
    checks.check_equal(mlp_param_count(*args_t), real_count_64(*args_t), f"mlp_param_count{args_t}",
                       hint="first layer d_in*w + w, each further hidden layer w*w + w, output w*d_out + d_out")
checks.check_equal(width_for_budget(2, 2, 1, 10_000), 97, "width_for_budget(2, 2, 1, 10_000)",
                   hint="97 units: 9,895 parameters; 98 units would need 10,095")
### BEGIN HIDDEN TESTS
def layer_sum_64(d_in, width, depth, d_out):
    sizes = [d_in] + [width] * depth + [d_out]  # weights a*b and biases b of each layer a -> b
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


for d_in_t, depth_t, d_out_t, budget_t in [(2, 4, 1, 10_000), (2, 8, 1, 10_000), (64, 3, 10, 50_000), (5, 1, 1, 40)]:
    best_t = max(w for w in range(1, 1000) if layer_sum_64(d_in_t, w, depth_t, d_out_t) <= budget_t)
    checks.check_equal(width_for_budget(d_in_t, depth_t, d_out_t, budget_t), best_t,
                       f"width_for_budget({d_in_t}, {depth_t}, {d_out_t}, {budget_t})",
                       hint="the largest width that still fits, not the first that does not")
checks.check_equal(mlp_param_count(3, 4, 1, 2), (3 * 4 + 4) + (4 * 2 + 2), "mlp_param_count(3, 4, 1, 2)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
models_64 = {}  # "wide", "medium", "deep", "deep_bn" -> trained model
results_64 = {}  # name -> {"params", "train_mse", "test_mse", "epochs_to_target"}
bn_helps_64 = ...  # True or False
### BEGIN SOLUTION
def deep_bn_mlp(width, depth):
    layers, width_in = [], 2
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        width_in = width
    return nn.Sequential(*layers, nn.Linear(width_in, 1))


plans = {"wide": (2, False), "medium": (4, False), "deep": (8, False), "deep_bn": (8, True)}
for name, (depth, use_bn) in plans.items():
    width = width_for_budget(2, depth, 1, BUDGET_64)
    torch.manual_seed(0)
    model = (deep_bn_mlp(width, depth) if use_bn else MLP(2, [width] * depth, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = fit(model, wave_loader, F.mse_loss, optimizer, epochs=EPOCHS_64, progress=False)
    below = [e for e, loss in enumerate(history["train_loss"], start=1) if loss < TARGET_64]
    results_64[name] = {
        "params": sum(p.numel() for p in model.parameters()),
        "train_mse": evaluate(model, [(X_wave, y_wave)], F.mse_loss)["loss"],  # eval mode inside
        "test_mse": evaluate(model, [(X_wave_test, y_wave_test)], F.mse_loss)["loss"],
        "epochs_to_target": below[0] if below else None,
    }
    models_64[name] = model
bn_helps_64 = results_64["deep_bn"]["test_mse"] < results_64["deep"]["test_mse"]
### END SOLUTION
for name, r in results_64.items():
    print(f"{name:8s} {r['params']:6,d} params | train {r['train_mse']:.4f} | test {r['test_mse']:.4f} "
          f"| gap {r['test_mse'] - r['train_mse']:+.4f} | epochs to {TARGET_64}: {r['epochs_to_target']}")
print("batch norm helps the deep network:", bn_helps_64)

# %% nbgrader={"grade": true, "grade_id": "ex06_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def field_64(xy):
    d1 = (xy - torch.tensor([-0.4, 0.0], device=xy.device)).pow(2).sum(1).sqrt()
    d2 = (xy - torch.tensor([0.4, 0.0], device=xy.device)).pow(2).sum(1).sqrt()
    return ((torch.cos(8 * d1) + torch.cos(8 * d2)) / 2).unsqueeze(1)


checks.check_equal(sorted(results_64), sorted(["wide", "medium", "deep", "deep_bn"]), "the keys of results_64")
for name_t, depth_t in [("wide", 2), ("medium", 4), ("deep", 8), ("deep_bn", 8)]:
    model_t = models_64[name_t]
    lins_t = [m for m in model_t.modules() if isinstance(m, nn.Linear)]
    checks.check_equal(len(lins_t), depth_t + 1, f"the number of Linear layers of {name_t!r}")
    budget_w_t = max(w for w in range(1, 500) if (2 * w + w) + (depth_t - 1) * (w * w + w) + (w + 1) <= 10_000)
    checks.check_equal(lins_t[0].out_features, budget_w_t, f"the width of {name_t!r}",
                       hint="width_for_budget(2, depth, 1, BUDGET_64)")
    real_t = sum(p.numel() for p in model_t.parameters())
    checks.check_equal(results_64[name_t]["params"], real_t, f'results_64["{name_t}"]["params"]')
    model_t.eval()
    dev_t = next(model_t.parameters()).device
    with torch.no_grad():
        test_t = F.mse_loss(model_t(X_wave_test.to(dev_t)), field_64(X_wave_test.to(dev_t))).item()
    checks.check_close(results_64[name_t]["test_mse"], test_t, f'results_64["{name_t}"]["test_mse"]',
                       rtol=1e-3, atol=1e-7, hint="evaluate in eval mode (model.eval()) on the test points")
best_t = min(r["test_mse"] for r in results_64.values())
checks.check(best_t < 0.02, "the best network misses the quality target.", "test MSE < 0.02", best_t)
### BEGIN HIDDEN TESTS
checks.check_equal(sum(isinstance(m, nn.BatchNorm1d) for m in models_64["deep_bn"].modules()), 8,
                   "the number of BatchNorm1d layers in deep_bn")
checks.check_equal(sum(isinstance(m, nn.BatchNorm1d) for m in models_64["deep"].modules()), 0,
                   "the number of BatchNorm1d layers in deep")
for name_t in ("wide", "medium", "deep"):
    model_t = models_64[name_t]
    dev_t = next(model_t.parameters()).device
    with torch.no_grad():
        train_t = F.mse_loss(model_t(X_wave.to(dev_t)), field_64(X_wave.to(dev_t))).item()
    checks.check_close(results_64[name_t]["train_mse"], train_t, f'results_64["{name_t}"]["train_mse"]', rtol=1e-3, atol=1e-7)
    e_t = results_64[name_t]["epochs_to_target"]
    checks.check(e_t is None or (isinstance(e_t, int) and 1 <= e_t <= 40), f'results_64["{name_t}"]["epochs_to_target"]'
                 " must be None or an epoch between 1 and 40.", got=e_t)
checks.check_equal(bool(bn_helps_64), results_64["deep_bn"]["test_mse"] < results_64["deep"]["test_mse"], "bn_helps_64")
### END HIDDEN TESTS

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
grid_1d = torch.linspace(-1, 1, 121)
gx, gy = torch.meshgrid(grid_1d, grid_1d, indexing="xy")
grid_xy = torch.stack([gx.flatten(), gy.flatten()], 1).to(device)  # (121*121, 2)
hplot.heatmap(two_source_field(grid_xy).reshape(121, 121).cpu(), ax=axes[0], title="true field u(x, y)",
              xlabel="x", ylabel="y", cbar_label="u", extent=(-1, 1, -1, 1))
for ax, name in zip(axes[1:], ("medium", "deep")):
    models_64[name].eval()
    with torch.no_grad():
        pred = models_64[name](grid_xy).reshape(121, 121).cpu()
    hplot.heatmap(pred, ax=ax, title=f"{name} MLP, test MSE {results_64[name]['test_mse']:.4f}",
                  xlabel="x", ylabel="y", cbar_label="u", extent=(-1, 1, -1, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# At equal budget, the medium network (4 layers) is the clear winner in our run: the wide one
# under-fits the fine rings, and the deep, narrow one trains slowest — 40 epochs are not
# enough for it, the "harder to optimize" row of the depth-vs-width table in action. Batch
# norm made the deep network easier to train, but not as good as the medium one, and it
# costs 6 % more parameters and extra compute per step: measure before you believe. All
# train/test gaps are tiny: with 1500 points of a smooth function and 10,000 parameters,
# nobody is overfitting yet. The next exercise creates a setting where they do.
#
# ### Dropout
#
# **Dropout** (Srivastava et al., 2014) fights overfitting by randomly silencing units during
# training: each activation is set to zero with probability $p$, independently for every
# example and every step. The network cannot rely on any single unit and learns redundant
# features, a bit like training an ensemble of thinned networks that share weights.
#
# PyTorch implements **inverted dropout**: during training the surviving activations are
# scaled by $1/(1-p)$, so the expected value of each unit is unchanged, and in **eval mode
# dropout does nothing at all** — no scaling at test time. Measured:

# %%
drop = nn.Dropout(p=0.5)
ones = torch.ones(10_000)
drop.train()
dropped = drop(ones)
print(f"train: fraction zeroed {(dropped == 0).float().mean():.3f} | surviving values "
      f"{dropped[dropped > 0].unique().tolist()} | mean {dropped.mean():.3f}")
drop.eval()
print("eval: unchanged:", torch.equal(drop(ones), ones))

# %% [markdown]
# Typical rates are 0.1–0.5, higher for wider layers. Place dropout after the activation of a
# hidden layer, not on the output layer; a small rate on the inputs (about 0.1) is sometimes
# useful. Weight decay, the other classic regularizer, shrinks every weight a little at each
# step; with Adam use `torch.optim.AdamW(..., weight_decay=...)`, which decouples the decay
# from the adaptive step size.
#
# ### Exercise 6.5 — Regularization techniques (★★, 4 points)
#
# A large MLP, 10 → 128 → 128 → 64 → 1 (about 26,000 parameters), on a small data set: 200
# training samples of $y = \sin(2x_0) + x_1 - \tfrac12 x_2 + \varepsilon$ with 10 standard
# normal features (7 of them irrelevant) and noise $\varepsilon \sim \mathcal{N}(0, 0.5^2)$.
# The noise alone costs an MSE of 0.25. A validation set (500) picks the best variant; a
# test set (2000) reports it.
#
# **(a)** Write `make_reg_mlp(dropout=0.0, batch_norm=False)`: one flat `nn.Sequential` of hidden blocks
# Linear → [`BatchNorm1d` if `batch_norm`] → ReLU → [`Dropout(dropout)` if `dropout > 0`] of
# widths 128, 128, 64, then a plain Linear to 1 output. The tests check parameter counts,
# module order, train/eval behaviour, and the output in eval mode against a functional
# computation that uses the batch-norm running statistics.
#
# **(b)** Write `train_with_val(model, X, y, X_val, y_val, epochs=100, lr=5e-3, weight_decay=0.0)`:
# full-batch `torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)` on the
# MSE. Each epoch: put the model in **training mode**, take one step on `(X, y)` and record
# that step's loss; then put it in **eval mode** and record the MSE on `(X_val, y_val)`
# (without gradients). Return two lists of floats, `(train_losses, val_losses)`; the model
# ends in eval mode. The tests compare three epochs with a reference loop, dropout masks
# included.
#
# **(c)** With `torch.manual_seed(0)` before building each model, train the seven variants of
# `VARIANTS_65` (below) for `EPOCHS_65 = 100` epochs and store the models in `models_65` and
# `results_65[name] = {"train_mse", "val_mse", "test_mse", "train_curve", "val_curve"}` (final
# MSEs in eval mode; the curves from `train_with_val`). Set `best_65` to the variant with the
# lowest **validation** MSE (choosing by the test set would make the test score optimistic).
# **Quality target:** the unregularized network overfits (a gap between validation and
# training MSE above 0.3), and some regularized variant beats its validation MSE.

# %%
gen = torch.Generator().manual_seed(65)


def small_regression(n):
    """n samples of y = sin(2 x0) + x1 - x2/2 + noise(0.5) with 10 features; (n, 10), (n, 1)."""
    X = torch.randn(n, 10, generator=gen)
    y = torch.sin(2 * X[:, :1]) + X[:, 1:2] - 0.5 * X[:, 2:3] + 0.5 * torch.randn(n, 1, generator=gen)
    return X.to(device), y.to(device)


X_small, y_small = small_regression(200)
X_small_val, y_small_val = small_regression(500)
X_small_test, y_small_test = small_regression(2000)
VARIANTS_65 = {  # name -> (dropout, batch_norm, weight_decay)
    "none": (0.0, False, 0.0), "dropout_0.1": (0.1, False, 0.0), "dropout_0.3": (0.3, False, 0.0),
    "dropout_0.5": (0.5, False, 0.0), "batch_norm": (0.0, True, 0.0), "weight_decay": (0.0, False, 5.0),
    "combined": (0.3, False, 5.0),
}

# %% nbgrader={"grade": false, "grade_id": "ex06_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_reg_mlp(dropout=0.0, batch_norm=False):
    """10 -> 128 -> 128 -> 64 -> 1: Linear, [BatchNorm1d], ReLU, [Dropout] per hidden block."""
    ### BEGIN SOLUTION
    layers, width_in = [], 10
    for width in (128, 128, 64):
        layers.append(nn.Linear(width_in, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    layers.append(nn.Linear(width_in, 1))
    return nn.Sequential(*layers)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_5_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
base_params_t = (10 * 128 + 128) + (128 * 128 + 128) + (128 * 64 + 64) + (64 + 1)
checks.check_module(make_reg_mlp(), "make_reg_mlp()", n_params=base_params_t,
                    example_input=torch.randn(4, 10), output_shape=(4, 1))
net_t = make_reg_mlp(dropout=0.3, batch_norm=True)
checks.check_module(net_t, "make_reg_mlp(0.3, True)", n_params=base_params_t + 2 * (128 + 128 + 64),
                    hint="each BatchNorm1d(C) learns a gamma and a beta per feature")
kinds_t = [type(m).__name__ for m in net_t if not isinstance(m, nn.Sequential)]
checks.check_equal(kinds_t[:4], ["Linear", "BatchNorm1d", "ReLU", "Dropout"], "the first block of make_reg_mlp(0.3, True)",
                   hint="Linear -> BatchNorm1d -> ReLU -> Dropout")
### BEGIN HIDDEN TESTS
checks.check_equal(kinds_t, ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 3 + ["Linear"], "all modules of make_reg_mlp(0.3, True)")
checks.check(all(m.p == 0.3 for m in net_t.modules() if isinstance(m, nn.Dropout)), "the dropout rate must be 0.3.")
torch.manual_seed(5)
for m in net_t.modules():  # non-trivial running statistics and affine parameters
    if isinstance(m, nn.BatchNorm1d):
        m.running_mean.uniform_(-1, 1)
        m.running_var.uniform_(0.5, 2)
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
net_t.eval()
xb_t = torch.randn(16, 10)
h_t = xb_t
mods_t = list(net_t)
for k in range(0, 12, 4):
    lin, bnm = mods_t[k], mods_t[k + 1]
    z_t = F.linear(h_t, lin.weight, lin.bias)
    z_t = (z_t - bnm.running_mean) / torch.sqrt(bnm.running_var + bnm.eps) * bnm.weight + bnm.bias
    h_t = torch.relu(z_t)  # dropout is the identity in eval mode
ref_t = F.linear(h_t, mods_t[12].weight, mods_t[12].bias)
checks.check_close(net_t(xb_t), ref_t, "make_reg_mlp(0.3, True) in eval mode", rtol=1e-4, atol=1e-5)
net_t.train()
checks.check(not torch.allclose(net_t(xb_t), net_t(xb_t)), "with dropout, two training-mode passes should differ.")
net0_t = make_reg_mlp(dropout=0.0).train()
checks.check_close(net0_t(xb_t), net0_t(xb_t), "make_reg_mlp(0.0) in training mode (deterministic)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_with_val(model, X, y, X_val, y_val, epochs=100, lr=5e-3, weight_decay=0.0):
    """Full-batch AdamW on the MSE; returns (train_losses, val_losses), one float per epoch each."""
    ### BEGIN SOLUTION
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_losses, val_losses = [], []
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        train_losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_losses.append(F.mse_loss(model(X_val), y_val).item())
    return train_losses, val_losses
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_5_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
gen_t = torch.Generator().manual_seed(655)
X_t, y_t = torch.randn(64, 10, generator=gen_t), torch.randn(64, 1, generator=gen_t)
Xv_t, yv_t = torch.randn(32, 10, generator=gen_t), torch.randn(32, 1, generator=gen_t)
torch.manual_seed(1)
net_t = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1))
tr_t, va_t = train_with_val(net_t, X_t, y_t, Xv_t, yv_t, epochs=5)
checks.check(isinstance(tr_t, list) and isinstance(va_t, list) and len(tr_t) == len(va_t) == 5,
             "train_with_val must return two lists with one value per epoch.", "two lists of 5", (type(tr_t), type(va_t)))
checks.check(not net_t.training, "the model must end in eval mode.", "model.training == False", net_t.training)
with torch.no_grad():
    val_now_t = F.mse_loss(net_t(Xv_t), yv_t).item()
checks.check_close(va_t[-1], val_now_t, "the last validation loss", rtol=1e-5,
                   hint="the validation MSE after the epoch's step, in eval mode (dropout off)")
### BEGIN HIDDEN TESTS
torch.manual_seed(2)
net_a = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1))
net_b = copy.deepcopy(net_a)
X_before_t = X_t.clone()
torch.manual_seed(3)
tr_a, va_a = train_with_val(net_a, X_t, y_t, Xv_t, yv_t, epochs=3, lr=1e-2, weight_decay=0.5)
torch.manual_seed(3)
opt_t = torch.optim.AdamW(net_b.parameters(), lr=1e-2, weight_decay=0.5)
tr_b, va_b = [], []
for _ in range(3):
    net_b.train()
    opt_t.zero_grad()
    loss_t = F.mse_loss(net_b(X_t), y_t)
    loss_t.backward()
    opt_t.step()
    tr_b.append(loss_t.item())
    net_b.eval()
    with torch.no_grad():
        va_b.append(F.mse_loss(net_b(Xv_t), yv_t).item())
checks.check_close(torch.tensor(tr_a), torch.tensor(tr_b), "training losses of 3 epochs", rtol=1e-4,
                   hint="model.train() at the start of every epoch, one AdamW step on the full batch")
checks.check_close(torch.tensor(va_a), torch.tensor(va_b), "validation losses of 3 epochs", rtol=1e-4)
for (name_t, p_a), p_b in zip(net_a.named_parameters(), net_b.parameters()):
    checks.check_close(p_a, p_b, f"parameter {name_t} after 3 epochs", rtol=1e-4, atol=1e-6,
                       hint="AdamW with the given lr and weight_decay")
checks.check_close(X_t, X_before_t, "X after training")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_5_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS_65 = 100
models_65 = {}  # variant name -> trained model
results_65 = {}  # name -> {"train_mse", "val_mse", "test_mse", "train_curve", "val_curve"}
best_65 = ...  # the variant with the lowest validation MSE
### BEGIN SOLUTION
def eval_mse(model, X, y):
    model.eval()
    with torch.no_grad():
        return F.mse_loss(model(X), y).item()


for name, (p_drop, use_bn, wd) in VARIANTS_65.items():
    torch.manual_seed(0)
    model = make_reg_mlp(dropout=p_drop, batch_norm=use_bn).to(device)
    train_curve, val_curve = train_with_val(model, X_small, y_small, X_small_val, y_small_val,
                                            epochs=EPOCHS_65, weight_decay=wd)
    models_65[name] = model
    results_65[name] = {"train_mse": eval_mse(model, X_small, y_small), "val_mse": val_curve[-1],
                        "test_mse": eval_mse(model, X_small_test, y_small_test),
                        "train_curve": train_curve, "val_curve": val_curve}
best_65 = min(results_65, key=lambda n: results_65[n]["val_mse"])
### END SOLUTION
for name, r in results_65.items():
    print(f"{name:13s} train {r['train_mse']:.3f} | val {r['val_mse']:.3f} | test {r['test_mse']:.3f} "
          f"| gap {r['val_mse'] - r['train_mse']:.3f}")
print("best on validation:", best_65)

# %% nbgrader={"grade": true, "grade_id": "ex06_5_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
variants_t = ["none", "dropout_0.1", "dropout_0.3", "dropout_0.5", "batch_norm", "weight_decay", "combined"]
checks.check_equal(sorted(results_65), sorted(variants_t), "the keys of results_65")
for name_t in variants_t:
    model_t = models_65[name_t]
    model_t.eval()
    dev_t = next(model_t.parameters()).device
    with torch.no_grad():
        val_t = F.mse_loss(model_t(X_small_val.to(dev_t)), y_small_val.to(dev_t)).item()
    checks.check_close(results_65[name_t]["val_mse"], val_t, f'results_65["{name_t}"]["val_mse"]', rtol=1e-4,
                       atol=1e-7, hint="the validation MSE of the trained model in eval mode")
gap_t = results_65["none"]["val_mse"] - results_65["none"]["train_mse"]
checks.check(gap_t > 0.3, "the unregularized network should overfit.", "val - train MSE > 0.3", gap_t)
### BEGIN HIDDEN TESTS
for name_t in variants_t:
    model_t = models_65[name_t]
    dev_t = next(model_t.parameters()).device
    with torch.no_grad():
        tr_t = F.mse_loss(model_t(X_small.to(dev_t)), y_small.to(dev_t)).item()
        te_t = F.mse_loss(model_t(X_small_test.to(dev_t)), y_small_test.to(dev_t)).item()
    checks.check_close(results_65[name_t]["train_mse"], tr_t, f'results_65["{name_t}"]["train_mse"]', rtol=1e-4, atol=1e-7,
                       hint="eval mode: dropout off, batch norm on running statistics")
    checks.check_close(results_65[name_t]["test_mse"], te_t, f'results_65["{name_t}"]["test_mse"]', rtol=1e-4, atol=1e-7)
    checks.check_equal(len(results_65[name_t]["val_curve"]), 100, f'len(results_65["{name_t}"]["val_curve"])')
checks.check(sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in models_65["dropout_0.5"].modules()) == 3,
             "the dropout_0.5 variant needs three Dropout(0.5) layers.")
checks.check_equal(best_65, min(results_65, key=lambda n: results_65[n]["val_mse"]), "best_65",
                   hint="choose by validation MSE")
checks.check(results_65[best_65]["val_mse"] < results_65["none"]["val_mse"], "some regularized variant should beat none.")
### END HIDDEN TESTS

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, name in zip(axes, ("none", "dropout_0.3", "combined")):
    r = results_65[name]
    hplot.training_curves({"train": r["train_curve"], "validation": r["val_curve"]}, keys=["train", "validation"],
                          ax=ax, title=f"{name}: val {r['val_mse']:.2f}", ylabel="MSE (log scale)", logy=True)
    ax.axhline(0.25, color="k", ls=":", lw=1)
axes[0].text(EPOCHS_65, 0.27, "noise floor 0.25", ha="right", fontsize=8)
fig.suptitle("Train vs validation loss, 200 samples, 26k parameters")
fig.tight_layout()
plt.show()

# %% [markdown]
# Without regularization the training loss dives far below the noise floor of 0.25 — the
# network is memorizing the noise — while the validation loss bottoms out early and creeps
# back up. Dropout keeps the training loss from collapsing (the stronger the rate, the nearer
# the floor it stays), weight decay shrinks the weights towards simpler functions, and in our
# run the two together gave the lowest validation error. Batch norm is a training aid,
# not a regularizer worth the name here. Can the gap reach zero? Not with 200 noisy samples and 26,000
# parameters: a model always fits the points it has seen a little better than new ones.
# The real cure is more data, or a smaller model that matches the simplicity of the target.
#
# ### A complete MLP with all the techniques
#
# Everything so far in one module: configurable widths and activation, an optional
# normalization layer, dropout, a linear head, and He initialization. (The seed also puts a
# batch norm on the raw inputs; standardizing the data once, before training, does the same
# job more simply.)

# %%
class ModernMLP(nn.Module):
    """Blocks of Linear -> norm -> activation -> dropout, then a linear head; He-initialized."""

    def __init__(self, d_in, hidden_dims, d_out, activation=nn.ReLU, norm="batch", dropout=0.0):
        super().__init__()
        norms = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, None: None}
        if norm not in norms:
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
        layers, width_in = [], d_in
        for width in hidden_dims:
            layers.append(nn.Linear(width_in, width, bias=norm is None))  # a norm makes the bias redundant
            layers += [norms[norm](width)] if norm else []
            layers += [activation(), nn.Dropout(dropout)] if dropout > 0 else [activation()]
            width_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, d_out)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):  # (B, d_in) -> (B, d_out)
        return self.head(self.body(x))

# %% [markdown]
# Put it to work on the handwritten digits (8 × 8 pixels, flattened to 64 features).
# **Quality target: at least 96 % test accuracy** in 15 epochs.

# %%
torch.manual_seed(0)
digits_model = ModernMLP(64, [256, 128], 10, norm="batch", dropout=0.2).to(device)
optimizer = torch.optim.AdamW(digits_model.parameters(), lr=3e-3, weight_decay=1e-4)
train_loader = Batches(X_dig_train, y_dig_train, batch_size=64)
test_loader = [(X_dig_test, y_dig_test)]
history_digits = fit(digits_model, train_loader, F.cross_entropy, optimizer, epochs=15,
                     val_loader=test_loader, metrics={"acc": accuracy})
digits_acc = history_digits["val_acc"][-1]
print(f"test accuracy {100 * digits_acc:.1f} % (target >= 96 %: {'reached' if digits_acc >= 0.96 else 'MISSED'})")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(6.4, 3.6))
hplot.training_curves(history_digits, keys=["train_loss", "val_loss"], ax=ax,
                      title=f"ModernMLP on digits: {100 * digits_acc:.1f} % test accuracy",
                      ylabel="cross-entropy (log scale)", logy=True)
plt.show()
digits_model.eval()
with torch.no_grad():
    predicted = digits_model(X_dig_test).argmax(1)
wrong = (predicted != y_dig_test).nonzero().flatten()[:8].cpu()
hplot.image_grid(X_dig_test[wrong].reshape(-1, 8, 8).cpu(),
                 titles=[f"pred {predicted[i].item()} / true {y_dig_test[i].item()}" for i in wrong],
                 title="Some of the test digits it gets wrong")
plt.show()

# %% [markdown]
# The validation loss tracks the training loss closely (it is even lower: dropout handicaps
# the network only in training mode), so dropout and weight decay keep this 51,000-parameter
# network from memorizing 1437 images. The few mistakes are digits that are hard to read even
# for us at 8 × 8 pixels. (A CNN, chapter 7, does better by using the 2-D
# layout this MLP ignores.)
#
# ## 6.4 Implementation: debugging MLPs
#
# When a network will not train, look inside it. **Forward hooks** make that easy: a function
# registered with `module.register_forward_hook(fn)` is called as `fn(module, inputs, output)`
# after every forward pass of that module. Always remove hooks when done.
#
# ### Checking for dead ReLUs
#
# A unit is **dead** if its output is zero for *every* input. That is different from the
# fraction of zero outputs, which is around 50 % in a healthy ReLU layer (sparsity is
# normal). Measuring the wrong one — as many tutorials do — cries wolf.

# %%
def relu_outputs(model, x):
    """Run model(x) in eval mode and return {name: output (B, units)} of every nn.ReLU."""
    outputs, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(
                lambda mod, inp, out, name=name: outputs.__setitem__(name, out.detach())))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return outputs


def dead_report(model, x):
    for name, out in relu_outputs(model, x).items():
        zeros = (out == 0).float().mean().item()  # sparsity: fine
        dead = (out == 0).all(dim=0).float().mean().item()  # zero for every input: dead
        print(f"  {name:10s} zero outputs {100 * zeros:5.1f} %   dead units {100 * dead:5.1f} %")

# %% [markdown]
# Compare the healthy digits model with a network trained with a reckless learning rate (plain
# SGD at 1.0 for 5 epochs), a classic way to kill ReLUs: one huge step pushes many biases so
# negative that the unit never fires again.

# %%
torch.manual_seed(0)
reckless = MLP(64, [128, 128], 10).to(device)
sgd = torch.optim.SGD(reckless.parameters(), lr=1.0)
fit(reckless, Batches(X_dig_train, y_dig_train, batch_size=64), F.cross_entropy, sgd, epochs=5, progress=False)
reckless_acc = evaluate(reckless, test_loader, F.cross_entropy, metrics={"acc": accuracy})["acc"]
print(f"healthy digits model ({100 * digits_acc:.1f} % accuracy):")
dead_report(digits_model, X_dig_test)
print(f"reckless model ({100 * reckless_acc:.1f} % accuracy):")
dead_report(reckless, X_dig_test)

# %% [markdown]
# Both have many zero outputs; only the reckless one has a large share of units that are zero
# for all 360 test digits — capacity thrown away, and accuracy with it.
#
# ### Visualizing activation distributions
#
# Histograms of each layer's outputs show saturation at a glance. Here is a deep tanh network
# (6 layers of 256) on the digits, initialized with standard deviation 1 and with Xavier:

# %%
def tanh_outputs(init):
    """Outputs of every Tanh of a 6-layer tanh MLP on the test digits, after `init`."""
    torch.manual_seed(0)
    net = MLP(64, [256] * 6, 10, activation=nn.Tanh).to(device)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            init(m.weight)
            nn.init.zeros_(m.bias)
    outputs, handles = [], [m.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach().cpu()))
                            for m in net.modules() if isinstance(m, nn.Tanh)]
    with torch.no_grad():
        net(X_dig_test)
    for handle in handles:
        handle.remove()
    return outputs


tanh_acts = {"std 1": tanh_outputs(lambda w: nn.init.normal_(w, 0.0, 1.0)),
             "Xavier": tanh_outputs(nn.init.xavier_normal_)}
for name, outs in tanh_acts.items():
    saturated = [f"{100 * (o.abs() > 0.99).float().mean():.0f}%" for o in outs]
    print(f"{name:7s} share of |activation| > 0.99 per layer: {saturated}")

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(2, 6, figsize=(13, 4.2), sharex=True)
for row, (name, outs) in zip(axes, tanh_acts.items()):
    for layer_idx, (ax, out) in enumerate(zip(row, outs), start=1):
        ax.hist(out.flatten().numpy(), bins=40, range=(-1, 1), color="C0" if name == "Xavier" else "C3")
        ax.set_yticks([])
        ax.set_title(f"{name}, layer {layer_idx}", fontsize=9)
for ax in axes[1]:
    ax.set_xlabel("tanh output")
axes[0, 0].set_ylabel("count")
axes[1, 0].set_ylabel("count")
fig.suptitle("Activation histograms of a 6-layer tanh MLP: saturated (top) vs healthy (bottom)")
fig.tight_layout()
plt.show()

# %% [markdown]
# With standard deviation 1, nearly every unit sits at ±1 from the first layer on — the flat
# ends of tanh where the slope is about zero, so almost no gradient flows back. With Xavier
# the histograms stay spread over the responsive middle, layer after layer.
#
# ### Gradient flow visualization
#
# After `loss.backward()` (and before `optimizer.step()`) every parameter holds its gradient.
# Plotting the mean absolute gradient of each layer's weights shows where learning stalls.
# We compare three 10-layer networks of width 64 on one batch of digits: sigmoid, sigmoid with
# batch norm, and ReLU with He initialization.

# %%
def gradient_flow(model, x, y):
    """Mean |gradient| of each Linear weight after one backward pass of the cross-entropy."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.abs().mean().item() for m in model.modules() if isinstance(m, nn.Linear)]


torch.manual_seed(0)
he_relu_net = MLP(64, [64] * 10, 10)
for m in he_relu_net.modules():
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)
flow = {
    "sigmoid": gradient_flow(MLP(64, [64] * 10, 10, activation=nn.Sigmoid).to(device), X_dig_train[:256], y_dig_train[:256]),
    "sigmoid + batch norm": gradient_flow(ModernMLP(64, [64] * 10, 10, activation=nn.Sigmoid).to(device),
                                          X_dig_train[:256], y_dig_train[:256]),
    "ReLU + He": gradient_flow(he_relu_net.to(device), X_dig_train[:256], y_dig_train[:256]),
}
for name, grads in flow.items():
    print(f"{name:22s} first layer {grads[0]:.1e}   last layer {grads[-1]:.1e}   ratio {grads[0] / grads[-1]:.1e}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, grads in flow.items():
    ax.semilogy(range(1, len(grads) + 1), grads, marker="o", ms=4, label=name)
ax.set(title="Gradient flow in 10-hidden-layer networks", xlabel="Linear layer (1 = input side)",
       ylabel="mean |weight gradient| (log scale)")
ax.legend()
plt.show()

# %% [markdown]
# In the plain sigmoid network the first layer's gradient is about nine orders of magnitude
# smaller than the last one's: the early layers are frozen. Batch normalization keeps every
# sigmoid in its responsive range and the gradients flat; ReLU with He initialization is flat
# by design. If your curve looks like the first, reach for these remedies (and for the
# residual connections of chapter 8).
#
# ### Exercise 6.6 — Complex function approximation (★★★★★, 5 points)
#
# MLPs as *surrogate models* — cheap, differentiable stand-ins for expensive simulations —
# are a staple of scientific machine learning. Approximate the 2-D field
#
# $$f(x, y) = \sin(5x)\cos(5y) + 0.5\,\sin(10x) + 0.3\,\cos(10y), \qquad (x, y) \in [-1, 1]^2 .$$
#
# **(a)** Write `field_66(xy)`: `xy` a float tensor `(N, 2)` of points $(x, y)$; return
# $f$ as a tensor `(N, 1)` on the same device.
#
# **(b)** Train an MLP `model_66` that maps `(N, 2)` points to `(N, 1)` values, on points you
# sample uniformly in $[-1, 1]^2$ (with their exact $f$ values from `field_66`). Store the
# training loss of each step in `history_66`. The tests evaluate your model **in eval mode** on
# held-out points it never saw — the 100 × 100 grid of the figures and fresh random points —
# and require a **held-out MSE below 3 × 10⁻³** and a mean absolute error below 0.05 (the
# seed's criterion). Your network must be built from standard layers (Linear, activations,
# normalization, dropout), at least two of them Linear, on the chapter's `device`. Keep the
# training under about 10 seconds.
#
# *Hints:* the field has wavelengths down to $2\pi/10 \approx 0.6$, and MLPs learn low
# frequencies first (the *spectral bias*, Rahaman et al. 2019), so this needs more than the
# defaults. What works: a few thousand training points, 3–4 hidden layers of 64 units, a
# smooth activation (SiLU or tanh: the target is smooth), Adam with a learning rate that
# first rises and then decays
# (`torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=...)`), and
# several hundred steps on random mini-batches of about 512 points.

# %% nbgrader={"grade": false, "grade_id": "ex06_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def field_66(xy):
    """f(x, y) = sin(5x) cos(5y) + 0.5 sin(10x) + 0.3 cos(10y); xy (N, 2) -> (N, 1)."""
    ### BEGIN SOLUTION
    x, y = xy[:, 0:1], xy[:, 1:2]  # (N, 1) each
    return torch.sin(5 * x) * torch.cos(5 * y) + 0.5 * torch.sin(10 * x) + 0.3 * torch.cos(10 * y)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06_6_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
rng_t = np.random.default_rng(66)
pts_t = rng_t.uniform(-1, 1, size=(50, 2))
truth_t = (np.sin(5 * pts_t[:, 0]) * np.cos(5 * pts_t[:, 1]) + 0.5 * np.sin(10 * pts_t[:, 0])
           + 0.3 * np.cos(10 * pts_t[:, 1]))[:, None]
got_t = field_66(torch.tensor(pts_t, dtype=torch.float32))
checks.check_tensor(got_t, "field_66(xy)", shape=(50, 1), hint="return shape (N, 1): keep a column dimension")
checks.check_close(got_t, truth_t.astype(np.float32), "field_66(xy)", rtol=1e-4, atol=1e-5,
                   hint="x is column 0 and y column 1")
### BEGIN HIDDEN TESTS
got64_t = field_66(torch.tensor(pts_t))  # float64 in, float64 out
checks.check_close(got64_t, truth_t, "field_66 on float64 points", rtol=1e-9, atol=1e-12)
corner_t = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-0.3, 0.7]])
ref_corner_t = torch.tensor([[0.3], [math.sin(5) * math.cos(-5) + 0.5 * math.sin(10) + 0.3 * math.cos(-10)],
                             [math.sin(-1.5) * math.cos(3.5) + 0.5 * math.sin(-3.0) + 0.3 * math.cos(7.0)]])
checks.check_close(field_66(corner_t), ref_corner_t, "field_66 at (0,0), (1,-1), (-0.3,0.7)", rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex06_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
model_66 = ...  # your trained network: (N, 2) -> (N, 1)
history_66 = []  # the training loss of each step
### BEGIN SOLUTION
gen = torch.Generator().manual_seed(66)
xy_train = (torch.rand(4096, 2, generator=gen) * 2 - 1).to(device)  # (N, 2) uniform in [-1, 1]^2
f_train = field_66(xy_train)  # (N, 1)
torch.manual_seed(0)
model_66 = MLP(2, [64, 64, 64, 64], 1, activation=nn.SiLU).to(device)
STEPS_66 = 600
optimizer = torch.optim.Adam(model_66.parameters(), lr=1e-2)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=STEPS_66)
for step in range(STEPS_66):
    idx = torch.randint(0, len(xy_train), (512,), device=device)  # a random mini-batch
    optimizer.zero_grad()
    loss = F.mse_loss(model_66(xy_train[idx]), f_train[idx])
    loss.backward()
    optimizer.step()
    scheduler.step()
    history_66.append(loss.item())
model_66.eval()
### END SOLUTION
print(f"final training loss {history_66[-1]:.2e}")

# %% nbgrader={"grade": true, "grade_id": "ex06_6_test_b", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def truth_66(xy):
    xy64 = xy.detach().cpu().double().numpy()
    return torch.from_numpy(np.sin(5 * xy64[:, 0]) * np.cos(5 * xy64[:, 1]) + 0.5 * np.sin(10 * xy64[:, 0])
                            + 0.3 * np.cos(10 * xy64[:, 1])).unsqueeze(1)


def heldout_errors_66(model, xy):
    model.eval()
    dev_t = next(model.parameters()).device
    with torch.no_grad():
        pred_t = model(xy.to(dev_t)).detach().cpu().double()
    checks.check_shape(pred_t, (len(xy), 1), "the output of model_66")
    err_t = pred_t - truth_66(xy)
    return err_t.pow(2).mean().item(), err_t.abs().mean().item()


checks.check_type(model_66, nn.Module, "model_66", hint="store your trained network in model_66")
g1d_t = torch.linspace(-1, 1, 100)
gx_t, gy_t = torch.meshgrid(g1d_t, g1d_t, indexing="xy")
grid_t = torch.stack([gx_t.flatten(), gy_t.flatten()], 1)  # (10000, 2)
mse_grid_t, mae_grid_t = heldout_errors_66(model_66, grid_t)
checks.check(mse_grid_t < 3e-3, "the held-out MSE on the 100 x 100 grid is too high.", "MSE < 3e-3", mse_grid_t,
             "more steps, a OneCycle schedule, SiLU or tanh, 3-4 hidden layers of 64; check field_66 first")
### BEGIN HIDDEN TESTS
allowed_t = (nn.Sequential, nn.ModuleList, nn.Linear, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh,
             nn.Sigmoid, nn.Softplus, nn.Mish, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout, nn.Identity)
leaves_t = [m for m in model_66.modules() if not list(m.children())]
checks.check(all(isinstance(m, allowed_t) for m in leaves_t), "model_66 must be built from standard layers.",
             "Linear, activations, normalization, dropout", sorted({type(m).__name__ for m in leaves_t}))
checks.check(sum(isinstance(m, nn.Linear) for m in leaves_t) >= 2, "model_66 needs at least two Linear layers.")
gen_t = torch.Generator().manual_seed(6606)
fresh_t = torch.rand(5000, 2, generator=gen_t) * 2 - 1
mse_fresh_t, mae_fresh_t = heldout_errors_66(model_66, fresh_t)
checks.check(mse_fresh_t < 3e-3, "the held-out MSE on fresh random points is too high.", "MSE < 3e-3", mse_fresh_t)
checks.check(mae_fresh_t < 0.05 and mae_grid_t < 0.05, "the mean absolute error is too high.", "MAE < 0.05",
             (mae_fresh_t, mae_grid_t))
checks.check(isinstance(history_66, list) and len(history_66) > 0, "history_66 must list the training losses.")
### END HIDDEN TESTS

# %% [markdown]
# The figures: the truth, the network's prediction, and the absolute error, on the held-out
# 100 × 100 grid.

# %%
g1d = torch.linspace(-1, 1, 100)
gx, gy = torch.meshgrid(g1d, g1d, indexing="xy")
grid_66 = torch.stack([gx.flatten(), gy.flatten()], 1).to(device)  # (10000, 2)
model_66.eval()
with torch.no_grad():
    truth_grid, pred_grid = field_66(grid_66).reshape(100, 100).cpu(), model_66(grid_66).reshape(100, 100).cpu()
err_grid = (pred_grid - truth_grid).abs()
mse_66 = (pred_grid - truth_grid).pow(2).mean().item()
print(f"held-out grid: MSE {mse_66:.2e} (bound 3e-3), MAE {err_grid.mean():.4f} (bound 0.05), "
      f"worst point {err_grid.max():.3f}")
print(f"QUALITY: 6.6 held-out MSE {mse_66:.1e} (bound 3e-3); digits MLP {100 * digits_acc:.1f} % "
      f"test accuracy (target >= 96 %)")

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
extent = (-1, 1, -1, 1)
hplot.heatmap(truth_grid, ax=axes[0], title="truth f(x, y)", xlabel="x", ylabel="y", cbar_label="f", extent=extent)
hplot.heatmap(pred_grid, ax=axes[1], title="MLP prediction", xlabel="x", ylabel="y", cbar_label="f", extent=extent)
hplot.heatmap(err_grid, ax=axes[2], title=f"absolute error (MAE {err_grid.mean():.3f})", xlabel="x", ylabel="y",
              cbar_label="|error|", cmap="magma", extent=extent)
axes[3].semilogy(history_66, lw=0.8)
axes[3].set(title="training loss", xlabel="step", ylabel="MSE (log scale)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The prediction is visually indistinguishable from the truth. The error map is not uniform:
# it is largest along the edges of the square, where a point has training neighbours on one
# side only. The loss curve has three phases: a plateau near the variance of $f$ while the
# network predicts little more than the mean and the learning rate warms up, a steep fall as
# it locks onto the pattern, and slow refinement as the learning rate anneals.
#
# Going further (not graded): swap SiLU for ReLU and compare the error maps (ReLU networks are
# piecewise linear, and it shows in the creases); try 2 layers of 128 against 4 of 64; or feed
# the network $\sin(\pi k x), \cos(\pi k x)$ features of the input (*Fourier features*) and
# see what happens to the plateau (Tancik et al. 2020 explain why this beats the spectral bias).
#
# ## Concept check (3 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch itself, so
# you can check any of them by experiment — but decide first, then try.
#
# 1. `q1_params`: the number of parameters of
#    `nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))`.
# 2. `q2_rank`: `nn.Linear(10, 3)` followed directly by `nn.Linear(3, 10)`, no activation. The
#    combined map is multiplication by one 10 × 10 matrix: what is its largest possible rank?
# 3. `q3_he_std`: the standard deviation of He-normal weights (ReLU, fan-in mode) for a layer
#    with 512 inputs.
# 4. `q4_sigmoid_slope`: the largest value of the derivative of the sigmoid function.
# 5. `q5_dropout_value`: `nn.Dropout(p=0.2)` in training mode receives an activation equal to
#    1.0 and keeps it. What value comes out?
# 6. `q6_bn_batch_of_one`: what happens when a `nn.BatchNorm1d(4)` in **training** mode gets an
#    input of shape `(1, 4)`? (a) it returns zeros; (b) it raises an error; (c) it returns the
#    input unchanged; (d) it normalizes with its running statistics.

# %% nbgrader={"grade": false, "grade_id": "cc06_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_params = ...  # an int
q2_rank = ...  # an int
q3_he_std = ...  # a float
q4_sigmoid_slope = ...  # a float
q5_dropout_value = ...  # a float
q6_bn_batch_of_one = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
q1_params = 784 * 256 + 256 + 256 * 10 + 10
q2_rank = 3
q3_he_std = math.sqrt(2 / 512)
q4_sigmoid_slope = 0.25
q5_dropout_value = 1 / (1 - 0.2)
q6_bn_batch_of_one = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc06_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_type(q1_params, int, "q1_params")
checks.check_type(q2_rank, int, "q2_rank")
checks.check_type(q3_he_std, (int, float), "q3_he_std")
checks.check_type(q4_sigmoid_slope, (int, float), "q4_sigmoid_slope")
checks.check_type(q5_dropout_value, (int, float), "q5_dropout_value")
checks.check(q6_bn_batch_of_one in ("a", "b", "c", "d"), "q6_bn_batch_of_one must be one of the letters a-d.",
             got=q6_bn_batch_of_one)
### BEGIN HIDDEN TESTS
net_t = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
checks.check_equal(q1_params, sum(p.numel() for p in net_t.parameters()), "q1_params")
a_t, b_t = nn.Linear(10, 3), nn.Linear(3, 10)
checks.check_equal(q2_rank, int(torch.linalg.matrix_rank(b_t.weight @ a_t.weight)), "q2_rank")
w_t = torch.empty(4096, 512)
nn.init.kaiming_normal_(w_t, mode="fan_in", nonlinearity="relu")
checks.check_close(q3_he_std, nn.init.calculate_gain("relu") / math.sqrt(512), "q3_he_std", rtol=1e-3)
checks.check(abs(w_t.std().item() / q3_he_std - 1) < 0.02, "q3_he_std does not match kaiming_normal_.")
z_t = torch.linspace(-6, 6, 12001, requires_grad=True)
(slope_t,) = torch.autograd.grad(torch.sigmoid(z_t).sum(), z_t)
checks.check_close(q4_sigmoid_slope, slope_t.max().item(), "q4_sigmoid_slope", rtol=1e-4)
drop_t = nn.Dropout(0.2).train()
checks.check_close(q5_dropout_value, drop_t(torch.ones(1000)).max().item(), "q5_dropout_value", rtol=1e-5)
try:
    nn.BatchNorm1d(4).train()(torch.randn(1, 4))
    truth_q6_t = "c"
except ValueError:
    truth_q6_t = "b"
checks.check_equal(q6_bn_batch_of_one, truth_q6_t, "q6_bn_batch_of_one")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - An MLP is a stack of `Linear` layers with non-linear activations between them; without the
#   activations, any depth collapses into one linear map. `nn.Linear` stores its weight as
#   `(out, in)` and computes `x @ W.T + b`.
# - One hidden layer can approximate any continuous function (given enough units); depth can be
#   exponentially more economical, but it is harder to optimize.
# - **Activations:** ReLU for hidden layers by default; GELU/SiLU for smooth targets and
#   transformers; sigmoid and softmax only at the output (and usually inside the loss).
#   Sigmoid hidden layers train slowly: their slope is at most 1/4.
# - **Why training fails:** vanishing and exploding gradients (a product of one factor per
#   layer), dead ReLUs, and symmetric or badly scaled initial weights.
# - **Initialization:** He for ReLU, Xavier for tanh, zero biases. PyTorch's default is *not*
#   He; it shrinks deep ReLU stacks. All-equal weights never break the symmetry.
# - **Normalization:** batch norm standardizes each feature over the batch and behaves
#   differently in train and eval mode (call `model.eval()`!); layer norm standardizes each
#   sample and does not care about the batch size.
# - **Regularization:** dropout (inverted: scaled in training, identity in eval) and weight
#   decay narrow the gap between training and validation; choose by validation, report on test.
# - **Debugging:** forward hooks reveal dead units (zero for *every* input), saturated
#   activations and vanishing gradients; measure before you change the architecture.
