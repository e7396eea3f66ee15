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
# # Chapter 2 — Autograd: automatic differentiation
#
# Every model in this course learns the same way: compute a loss, ask how the loss changes when
# each parameter moves a little, and nudge the parameters downhill. The "how the loss changes"
# part is the gradient, and PyTorch's **autograd** computes it for you, exactly and cheaply, for
# any computation you can write in Python. This chapter opens the box.
#
# **What you will learn**
# - how PyTorch records a computational graph while your code runs, and walks it backwards
#   with the chain rule;
# - leaf and non-leaf tensors, `grad_fn`, and why `.grad` *accumulates*;
# - vector-Jacobian products: what `backward(v)` really computes;
# - switching tracking off (`no_grad`, `inference_mode`, `detach`), the in-place traps, and
#   `retain_graph`;
# - higher-order derivatives with `torch.autograd.grad`;
# - how to check a gradient: finite differences, `gradcheck`, and backpropagation by hand for a
#   two-layer network compared with autograd;
# - how to watch gradients flow through a deep network, and how to write your own
#   `torch.autograd.Function`.
#
# **Prerequisites:** Chapter 1 (tensors, shapes, dtypes, devices); derivatives, partial
# derivatives and the chain rule; matrix–vector products.
#
# **Expected time:** about 2.5 hours (1 hour reading and running the demos, 1.5 hours of
# exercises). The notebook itself runs in well under a minute on a laptop CPU.
#
# Work through the cells in order. Exercises are in Section 2.5: write your answer where a cell
# says `# YOUR CODE HERE` (replace the `raise NotImplementedError()`), then run the test cell
# below it. A failing test says what it expected, what it got, and gives a hint. Some tests are
# hidden and run when your notebook is graded, so make your code correct, not just green.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device (a GPU when there is one) and sets the plot style.

# %%
import math
import time
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

import helpers
from helpers import checks
from helpers.data import digits

device = helpers.setup()
print(f"PyTorch {torch.__version__}, running on {device}")

# %% [markdown]
# ## 2.1 Why autograd matters
#
# Training is optimisation. A model with parameters $\theta$ makes predictions, a loss
# $\mathcal{L}(\theta)$ measures how wrong they are, and **gradient descent** improves the
# parameters by a small step against the gradient:
#
# $$\theta_{\text{new}} = \theta_{\text{old}} - \eta \, \nabla_{\theta} \mathcal{L}(\theta_{\text{old}}),$$
#
# where $\eta$ is the learning rate. The gradient $\nabla_\theta \mathcal{L}$ has one entry per
# parameter: millions of them for a modest network. Deriving them by hand is out of the
# question, and estimating them numerically would need at least one extra evaluation of the
# loss *per parameter*. Autograd gets all of them from one backward pass that costs about as
# much as a couple of forward passes, whatever the number of parameters (Section 2.4.1 measures
# both claims). This is reverse-mode automatic differentiation, better known in deep learning
# as **backpropagation**.

# %% [markdown]
# ## 2.2 Computational graphs and backpropagation
#
# ### 2.2.1 The computational graph
#
# When a tensor has `requires_grad=True`, PyTorch records every operation applied to it. Take
# $z = xy + x^2$ at $x = 2$, $y = 3$:

# %%
x = torch.tensor(2.0, requires_grad=True, device=device)
y = torch.tensor(3.0, requires_grad=True, device=device)
z = x * y + x**2
print(z)
print("z.grad_fn:", z.grad_fn)

# %% [markdown]
# `z` remembers the operation that produced it, `z.grad_fn`, and every `grad_fn` points to the
# functions that produced *its* inputs (`next_functions`). Together they form the **backward
# graph**. This small function walks it and prints one node per line; the `AccumulateGrad` nodes
# are the places where gradients are finally written into the `.grad` of the inputs.

# %%
def show_graph(fn, depth=0):
    """Print the backward graph that ends in the node `fn` (a tensor's grad_fn), as a tree."""
    if fn is None:
        return
    leaf = getattr(fn, "variable", None)  # AccumulateGrad nodes hold their leaf tensor
    label = f"  <- leaf tensor {leaf.tolist()}" if leaf is not None else ""
    print("    " * depth + type(fn).__name__ + label)
    for child, _ in fn.next_functions:
        show_graph(child, depth + 1)


show_graph(z.grad_fn)

# %% [markdown]
# Read it from the innermost lines outwards and you get the forward computation: `x` and `y`
# are multiplied
# (`MulBackward0`), `x` is squared (`PowBackward0`), the two are added (`AddBackward0`). The
# backward pass walks the same tree from the top down.
#
# Three words you will meet everywhere:
#
# - a **leaf tensor** is one that autograd did not compute: the tensors you created yourself,
#   such as `x`, `y` and, later, the weights of a network. Gradients are stored in their `.grad`;
# - a **non-leaf tensor** is the result of a recorded operation, such as `z`;
# - its **`grad_fn`** is the node of the graph that will compute the gradient with respect to its
#   inputs. Leaves have `grad_fn = None`.

# %%
print(f"x: is_leaf={x.is_leaf}, grad_fn={x.grad_fn}")
print(f"z: is_leaf={z.is_leaf}, grad_fn={type(z.grad_fn).__name__}")

# %% [markdown]
# ### 2.2.2 Backpropagation is the chain rule
#
# Write the graph as $u = xy$, $v = x^2$, $z = u + v$. The variable $x$ reaches $z$ along two
# paths, so the multivariable chain rule sums one product of local derivatives per path:
#
# $$\frac{\partial z}{\partial x}
#   = \frac{\partial z}{\partial u}\frac{\partial u}{\partial x}
#   + \frac{\partial z}{\partial v}\frac{\partial v}{\partial x}
#   = 1\cdot y + 1 \cdot 2x = y + 2x, \qquad
#   \frac{\partial z}{\partial y} = \frac{\partial z}{\partial u}\frac{\partial u}{\partial y} = x.$$
#
# At $x = 2$, $y = 3$ these are $7$ and $2$. `z.backward()` does exactly this: starting from
# $\partial z/\partial z = 1$ at the top, each node receives the gradient of $z$ with respect to
# its output (the *upstream gradient*), multiplies it by its own local derivative, and passes the
# result down. Where paths meet, the contributions are added.

# %%
z.backward()
print("autograd:", x.grad.item(), y.grad.item())
print("by hand: ", (y + 2 * x).item(), x.item())

# %% [markdown]
# No derivative formula was written for this particular $z$. Every PyTorch operation (`mul`,
# `pow`, `sin`, `matmul`, `conv2d`, …) knows its own local derivative, and autograd chains them.
# That is all "automatic" means here; the result is exact up to floating-point rounding, not an
# approximation.
#
# ### 2.2.3 Dynamic graphs: define by run
#
# The graph is built *while your code runs*, one operation at a time. Ordinary Python (`if`,
# `for`, `while`, function calls) decides which operations happen, and the graph records only
# those. Here the number of operations depends on the data itself:

# %%
def halve_until_small(v):
    """Halve v until its norm is at most 1; how many halvings happen depends on v."""
    while v.norm() > 1:
        v = v / 2
    return v


for start in ([3.0, 4.0], [0.3, 0.4]):  # norms 5 and 0.5
    v = torch.tensor(start, requires_grad=True, device=device)
    out = halve_until_small(v).sum()
    out.backward()
    print(f"start {start}: output {out.item():.4f}, gradient {v.grad.tolist()}")

# %% [markdown]
# Starting from norm 5, the loop halves three times, so the output is $v/8$ and the gradient
# is $1/8$ per entry; starting from norm 0.5 it never runs and the gradient is $1$. Each run
# builds its own graph, and the gradient is the derivative *of the path that was taken*. (Static
# graph frameworks, such as TensorFlow 1.x, asked you to declare the whole graph first; PyTorch's
# define-by-run graphs are why you can debug a model with `print` and a breakpoint.)

# %% [markdown]
# ## 2.3 Using autograd in practice
#
# ### 2.3.1 A first gradient
#
# $z = x^2 + 2xy + y^2 = (x+y)^2$, so $\partial z/\partial x = \partial z/\partial y = 2(x+y)$,
# which is $10$ at $x = 2$, $y = 3$.

# %%
x = torch.tensor(2.0, requires_grad=True, device=device)
y = torch.tensor(3.0, requires_grad=True, device=device)
z = x**2 + 2 * x * y + y**2
z.backward()
print(f"z = {z.item()}, dz/dx = {x.grad.item()}, dz/dy = {y.grad.item()}")

# %% [markdown]
# ### 2.3.2 Leaf and non-leaf tensors
#
# Only leaves get a `.grad` by default: intermediate gradients are computed during the backward
# pass and thrown away, because a network has far more intermediate values than parameters.
# Reading `.grad` of a non-leaf gives `None`, and PyTorch warns you (captured and printed here):

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
y = x * 2
y.sum().backward()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("x.grad:", x.grad, "| y.grad:", y.grad)
print("warning:", str(caught[0].message)[:95], "...")

# %% [markdown]
# When you do want an intermediate gradient (to inspect it while debugging, say), ask for it
# with `retain_grad()` *before* the backward pass:

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
y = x * 2
y.retain_grad()
y.sum().backward()
print("x.grad:", x.grad, "| y.grad:", y.grad)

# %% [markdown]
# ### 2.3.3 Gradients accumulate: zero them
#
# `backward()` **adds** into `.grad`; it never overwrites it. Run the same backward twice and
# the gradient doubles:

# %%
x = torch.tensor(2.0, requires_grad=True, device=device)
(x**2).backward()
print("after one backward:   ", x.grad.item())
(x**2).backward()
print("after two backwards:  ", x.grad.item(), " <- 4 + 4")
x.grad.zero_()  # or: x.grad = None
(x**2).backward()
print("after zeroing, again: ", x.grad.item())

# %% [markdown]
# Accumulation is not a bug; it is the chain rule's "sum over paths" (Section 2.2.2) and it is
# useful: to train with a batch too large for memory, split it into micro-batches and call
# `backward()` on each, and the gradients add up to the gradient of the whole batch. Here the
# loss is a sum over samples, so the four micro-batch gradients should add up to the full-batch
# one, up to rounding. (With a mean loss, divide each micro-batch loss by the number of
# micro-batches.)

# %%
X = torch.randn(64, 5, device=device)  # (B, features)
t = torch.randn(64, device=device)  # (B,) targets
w = torch.zeros(5, requires_grad=True, device=device)
((X @ w - t) ** 2).sum().backward()
full = w.grad.clone()
w.grad = None
for Xb, tb in zip(X.split(16), t.split(16)):  # four micro-batches of 16
    ((Xb @ w - tb) ** 2).sum().backward()  # no zeroing in between: on purpose
print(f"largest gradient entry {full.abs().max().item():.1f}, "
      f"max |difference| {(w.grad - full).abs().max().item():.1e}")

# %% [markdown]
# The flip side: in a training loop, every step must start from clean gradients, otherwise
# step $k$ uses the sum of the gradients of steps $1, \dots, k$. The standard loop (Chapter 4
# writes it in full) therefore reads:
#
# ```python
# for inputs, targets in loader:
#     optimizer.zero_grad()            # forget the previous step's gradients
#     loss = loss_fn(model(inputs), targets)
#     loss.backward()                  # fill .grad of every parameter
#     optimizer.step()                 # move the parameters using .grad
# ```
#
# (`optimizer.zero_grad()` sets every `.grad` to `None` by default, which saves memory and a
# pass of writing zeros.)

# %% [markdown]
# ### 2.3.4 Vector-Jacobian products
#
# `backward()` with no argument only works on a scalar. For a vector output PyTorch refuses,
# because it does not know how to weigh the outputs:

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
y = x * 2  # a vector, shape (3,)
try:
    y.backward()
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# Let $\mathbf{y} = f(\mathbf{x})$ map $\mathbb{R}^n$ to $\mathbb{R}^m$, with Jacobian
# $J \in \mathbb{R}^{m \times n}$, $J_{ij} = \partial y_i / \partial x_j$. Given a vector
# $\mathbf{v} \in \mathbb{R}^m$, `y.backward(v)` computes the **vector-Jacobian product**
#
# $$\texttt{x.grad} = J^{\top}\mathbf{v}, \qquad
#   (J^{\top}\mathbf{v})_j = \sum_i v_i \frac{\partial y_i}{\partial x_j}
#   = \frac{\partial (\mathbf{v}^{\top}\mathbf{y})}{\partial x_j},$$
#
# the gradient of the scalar $\mathbf{v}^\top \mathbf{y}$. For a scalar loss, $m = 1$ and
# $v = 1$: that is what a bare `loss.backward()` uses. Let us check the formula against the full
# Jacobian on a function whose Jacobian is not diagonal (a cumulative sum of squares):

# %%
def f(x):
    return torch.cumsum(x**2, dim=0)  # y_i = x_0^2 + ... + x_i^2


x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
v = torch.tensor([0.5, -1.0, 2.0], device=device)
f(x).backward(v)
J = torch.autograd.functional.jacobian(f, x.detach())  # (m, n) = (3, 3)
print("J =\n", J)
print("x.grad =", x.grad, "  J^T v =", J.T @ v)

# %% [markdown]
# Backpropagation never builds $J$: each node applies its local $J^\top$ to the incoming vector.
# That matters, because the Jacobian of a layer mapping a million numbers to a million numbers has
# $10^{12}$ entries, while a vector-Jacobian product costs about as much as the layer itself.

# %% [markdown]
# ### 2.3.5 Switching gradient tracking off
#
# Recording a graph costs memory: every operation keeps the tensors its backward will need (its
# inputs or outputs). When you only need values (evaluation, inference, logging) turn recording
# off. Let us *measure* what the graph keeps, with a hook that sees every tensor saved for the
# backward pass (parameters are not counted: they exist anyway).

# %%
def saved_megabytes(model, inputs):
    """Megabytes of activations autograd keeps for the backward pass during model(inputs)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):  # called for every tensor saved for backward
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(inputs)
    return sum(kept.values()) / 2**20


# %% [markdown]
# A small multilayer network on a batch of 1024 inputs, with and without `torch.no_grad()`:

# %%
mlp = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                    nn.Linear(512, 10)).to(device)
batch = torch.randn(1024, 256, device=device)  # (B, features)
print(f"tracking on : {saved_megabytes(mlp, batch):.1f} MB kept for backward")
with torch.no_grad():
    print(f"no_grad     : {saved_megabytes(mlp, batch):.1f} MB kept for backward")
    out = mlp(batch)
print("output under no_grad: requires_grad =", out.requires_grad, ", grad_fn =", out.grad_fn)

# %% [markdown]
# Five megabytes for a toy network (the input and the two ReLU outputs, each saved once); a large
# model keeps gigabytes, which is why evaluation always runs under `no_grad`.
#
# You have four tools, from the broadest to the most targeted:
#
# | tool | what it does | typical use |
# |---|---|---|
# | `with torch.no_grad():` | nothing inside is recorded | validation loops, parameter updates |
# | `with torch.inference_mode():` | like `no_grad`, with even less bookkeeping (no version counters); tensors made inside can never enter a graph later | pure inference, serving |
# | `t.detach()` | a new tensor sharing `t`'s data, cut off from the graph | logging, fixed targets, stopping gradients into part of a model |
# | `p.requires_grad_(False)` | `p` stops being tracked from now on | freezing parameters |
#
# `inference_mode` is stricter than `no_grad`, and here is the price: a tensor created inside it
# cannot be saved for a later backward pass.

# %%
with torch.inference_mode():
    scale = torch.full((3,), 2.0, device=device)  # an "inference tensor"
w = torch.ones(3, requires_grad=True, device=device)
try:
    (w * scale).sum().backward()  # mul must save `scale` to compute the gradient of w
except RuntimeError as err:
    print("RuntimeError:", str(err)[:60], "...")

# %% [markdown]
# ### 2.3.6 In-place operations
#
# In-place operations (methods ending in `_`, and `+=`, `x[i] = ...`) overwrite memory. Two rules
# cover nearly every case, and breaking either raises a `RuntimeError`:
#
# 1. **an in-place operation on a leaf that requires grad**, because it would change a parameter
#    inside the graph (the error is immediate);
# 2. **modifying a tensor that an operation saved for its backward**, because the backward would
#    use the wrong value (the error comes at `backward()`).

# %%
x = torch.tensor([1.0, 2.0], requires_grad=True, device=device)
try:
    x.add_(1)
except RuntimeError as err:
    print("1.", err)

e = x.exp()  # exp saves its OUTPUT: d exp(x)/dx = exp(x)
print("version of e before:", e._version)
e.add_(1)
print("version of e after: ", e._version)
try:
    e.sum().backward()
except RuntimeError as err:
    print("2.", str(err)[:150], "...")

# %% [markdown]
# Autograd detects case 2 with a **version counter** on every tensor: each in-place operation
# bumps it, and a saved tensor whose version changed is refused. In-place operations on tensors
# that nothing saved are fine: `x * 2` saves nothing for `x`'s gradient (it is just 2), so
# modifying its output is allowed.

# %%
x = torch.tensor([1.0, 2.0], requires_grad=True, device=device)
y = x * 2
y.add_(1)  # fine: nobody saved y
y.sum().backward()
print("x.grad:", x.grad)
with torch.no_grad():  # the one in-place update you do on leaves: outside the graph
    x -= 0.1 * x.grad
print("x after one gradient step:", x)

# %% [markdown]
# ### 2.3.7 Retaining the graph
#
# To save memory, `backward()` frees the tensors the graph saved as soon as it has used them. A
# second backward through the same graph therefore fails, unless the first one was asked to keep
# them with `retain_graph=True`:

# %%
x = torch.tensor(2.0, requires_grad=True, device=device)
y = x**2
y.backward()
try:
    y.backward()
except RuntimeError as err:
    print("RuntimeError:", str(err)[:75], "...")

y = x**2
y.backward(retain_graph=True)
y.backward()  # fine, and the gradients accumulate: 4 (first call above) + 4 + 4
print("x.grad:", x.grad.item())

# %% [markdown]
# You rarely need this: when two losses share part of a graph, add them and call `backward()`
# once. `retain_graph=True` is for the few algorithms that really backpropagate twice.

# %% [markdown]
# ### 2.3.8 Higher-order derivatives
#
# The backward pass is itself made of differentiable operations, so autograd can differentiate
# a derivative. Use `torch.autograd.grad`, which *returns* gradients instead of accumulating them
# in `.grad`, and pass `create_graph=True` so that the backward pass is recorded too. For
# $y = x^3$ at $x = 2$: $y' = 3x^2 = 12$ and $y'' = 6x = 12$.

# %%
x = torch.tensor(2.0, requires_grad=True, device=device)
y = x**3
(dy_dx,) = torch.autograd.grad(y, x, create_graph=True)  # dy_dx is part of a graph
(d2y_dx2,) = torch.autograd.grad(dy_dx, x)
print(f"dy/dx = {dy_dx.item()}, d2y/dx2 = {d2y_dx2.item()}, x.grad = {x.grad}")

# %% [markdown]
# | | `loss.backward()` | `torch.autograd.grad(out, inputs)` |
# |---|---|---|
# | result | *adds* into `.grad` of every leaf | *returns* a tuple of gradients, `.grad` untouched |
# | for | training | derivatives as values: higher orders, penalties on gradients, physics-informed losses |
#
# **A whole curve of derivatives at once.** For a function applied elementwise, $y_i = f(x_i)$,
# the Jacobian is diagonal, so the gradient of $\sum_i y_i$ with respect to $\mathbf{x}$ is the
# vector of the $f'(x_i)$. With that trick, here is $\tanh$ with its first two derivatives on 401
# points, computed by autograd and compared with the formulas
# $\tanh' = 1 - \tanh^2$ and $\tanh'' = -2\tanh\,(1 - \tanh^2)$.

# %%
xs = torch.linspace(-4, 4, 401, device=device, requires_grad=True)
ys = torch.tanh(xs)
(d1,) = torch.autograd.grad(ys.sum(), xs, create_graph=True)
(d2,) = torch.autograd.grad(d1.sum(), xs)
th = torch.tanh(xs.detach())
print("max |autograd - formula|:", (d1 - (1 - th**2)).abs().max().item(),
      (d2 - (-2 * th * (1 - th**2))).abs().max().item())

# %%
fig, ax = plt.subplots()
xn = xs.detach().cpu()
for curve, label in ((ys, r"$\tanh(x)$"), (d1, r"$\tanh'(x)$ (autograd)"),
                     (d2, r"$\tanh''(x)$ (autograd)")):
    ax.plot(xn, curve.detach().cpu(), lw=2, label=label)
ax.plot(xn, (1 - th**2).cpu(), "k:", lw=1.5, label="formulas")
ax.plot(xn, (-2 * th * (1 - th**2)).cpu(), "k:", lw=1.5)
ax.axvline(0, color="0.5", lw=0.8)
ax.set(title="tanh and its derivatives, from autograd", xlabel="x", ylabel="value")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# What to notice: the dotted formulas lie exactly on the autograd curves. $\tanh'$ peaks at $x=0$,
# where $\tanh''$ crosses zero (the inflection point of $\tanh$), and $\tanh''$ is largest where
# $\tanh'$ rises fastest and smallest where it falls fastest, at
# $x = \mp\,\mathrm{artanh}(1/\sqrt{3}) \approx \mp 0.66$.
# Note also that $\tanh' \le 1$ everywhere and is almost $0$ for $|x| > 3$: a saturated unit passes
# almost no gradient. Keep that in mind for Section 2.4.3.

# %% [markdown]
# ## 2.4 Common patterns and debugging
#
# ### 2.4.1 Checking gradients numerically
#
# The central difference approximates a derivative from two evaluations of the function:
#
# $$f'(x) \approx \frac{f(x+\varepsilon) - f(x-\varepsilon)}{2\varepsilon}.$$
#
# Its truncation error shrinks like $\varepsilon^2$, but the subtraction of two nearly equal
# numbers loses precision like $u/\varepsilon$, where $u$ is the unit round-off of the dtype
# ($6\cdot 10^{-8}$ in float32, $1.1 \cdot 10^{-16}$ in float64). The best $\varepsilon$ balances
# the two. Let us see it for $f = \sin$ at $x = 1$, where the exact answer is $\cos 1$:

# %%
eps = torch.logspace(-12, 0, 61, dtype=torch.float64)
errors = {}
for dtype in (torch.float32, torch.float64):
    x0, h = torch.tensor(1.0, dtype=dtype), eps.to(dtype)
    fd = (torch.sin(x0 + h) - torch.sin(x0 - h)) / (2 * h)
    errors[dtype] = (fd.double() - math.cos(1.0)).abs().clamp_min(1e-17)
fig, ax = plt.subplots()
for dtype, err in errors.items():
    ax.loglog(eps, err, marker=".", label=str(dtype).replace("torch.", ""))
ax.axvline(1e-6, color="0.4", ls="--", lw=1)
ax.text(1.4e-6, 0.6, "gradcheck's\ndefault $\\varepsilon$", fontsize=9, color="0.3", va="top")
ax.set(title=r"Error of the central difference for $\sin'(1)$", xlabel=r"step $\varepsilon$",
       ylabel="absolute error")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# What to notice: both curves are V-shaped. To the right, truncation error (slope 2); to the left,
# round-off error, growing as $\varepsilon$ shrinks. In float64 the error gets down to about
# $10^{-11}$ for $\varepsilon$ between $10^{-7}$ and $10^{-5}$. In float32 the best is a few
# $10^{-6}$, near $\varepsilon \approx 10^{-2.5}$; at gradcheck's default $\varepsilon = 10^{-6}$ it
# is wrong in the second digit, and below $\varepsilon \approx 6 \cdot 10^{-8}$ the step vanishes in
# rounding altogether ($1 \pm \varepsilon$ rounds to $1$, the estimate is $0$, the error
# $\cos 1 \approx 0.54$). **Gradient checks are done in float64.**
#
# Here is a finite-difference gradient for a function of a whole tensor: two evaluations per
# entry.

# %%
def numerical_gradient(fn, x, eps=1e-6):
    """Central-difference estimate of the gradient of the scalar fn(x) w.r.t. x (same shape)."""
    x = x.detach().clone()
    grad = torch.zeros_like(x)
    flat_x, flat_g = x.view(-1), grad.view(-1)  # views: writing them writes x and grad
    with torch.no_grad():
        for i in range(flat_x.numel()):
            old = flat_x[i].item()
            flat_x[i] = old + eps
            plus = fn(x)
            flat_x[i] = old - eps
            minus = fn(x)
            flat_x[i] = old
            flat_g[i] = (plus - minus) / (2 * eps)
    return grad


# %% [markdown]
# Let us compare it with autograd on a real loss: logistic regression that tells handwritten
# zeros from the other digits, with one weight per pixel (64 weights), in float64. We time both.

# %%
images, labels = digits(flat=True)  # (1797, 64) in [0, 1], (1797,)
Xd = images[:256].double().to(device)  # (B, 64)
is_zero = (labels[:256] == 0).double().to(device)  # (B,) targets 0/1
w = (0.1 * torch.randn(64, dtype=torch.float64, device=device)).requires_grad_()


def zero_loss(weights):
    return F.binary_cross_entropy_with_logits(Xd @ weights, is_zero)


def seconds(fn, repeats=5):
    """Median wall time of fn() over `repeats` runs, after one warm-up run."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2]


# %%
t_auto = seconds(lambda: torch.autograd.grad(zero_loss(w), w))
start = time.perf_counter()
num = numerical_gradient(zero_loss, w)
t_num = time.perf_counter() - start
zero_loss(w).backward()
print(f"max |autograd - numerical| = {(w.grad - num).abs().max().item():.1e}")
per_eval = t_num / (2 * w.numel())
print(f"autograd: {1e3 * t_auto:.2f} ms; numerical: {1e3 * t_num:.1f} ms for "
      f"{2 * w.numel()} evaluations ({t_num / t_auto:.0f} times slower)")
print(f"a million parameters would need 2 million evaluations per step: "
      f"about {2e6 * per_eval:.0f} s at {1e6 * per_eval:.0f} µs each")

# %% [markdown]
# The two agree to about $10^{-10}$. But the numerical gradient needs two evaluations of the loss
# per parameter, so its cost grows with the number of parameters while autograd's does not: for
# a network with millions of weights, finite differences are a *test*, never a training method.
#
# And the claim of Section 2.1, measured: on the multilayer network of Section 2.3.5, how does a
# backward pass compare with a forward pass?

# %%
n_params = sum(p.numel() for p in mlp.parameters())
t_forward = seconds(lambda: mlp(batch).sum())
t_both = seconds(lambda: mlp(batch).sum().backward())
print(f"{n_params:,} parameters: forward {1e3 * t_forward:.1f} ms, forward + backward "
      f"{1e3 * t_both:.1f} ms")
print(f"the backward pass costs {(t_both - t_forward) / t_forward:.1f} forward passes "
      f"(finite differences would need {2 * n_params:,})")

# %% [markdown]
# PyTorch packages this test as `torch.autograd.gradcheck`: it compares the full Jacobian from
# autograd with finite differences, entry by entry, and wants float64 inputs.

# %%
x64 = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
print("gradcheck passed:", torch.autograd.gradcheck(lambda t: (t**2).sin().sum(), (x64,)))

# %% [markdown]
# ### 2.4.2 Backpropagation by hand for a two-layer network
#
# To see that there is no magic, let us derive the backward pass of a small classifier ourselves
# and check it against autograd. The network takes a batch $X$ of $B$ digit images with 64 pixels,
# has a hidden layer of 32 ReLU units and 10 outputs:
#
# $$H_{\text{pre}} = X W_1^\top + b_1, \quad H = \mathrm{ReLU}(H_{\text{pre}}), \quad
#   Z = H W_2^\top + b_2, \quad
#   \mathcal{L} = -\frac{1}{B}\sum_{b=1}^{B} \log \mathrm{softmax}(Z_b)_{y_b},$$
#
# with shapes $X$: (B, 64), $W_1$: (32, 64), $H$: (B, 32), $W_2$: (10, 32), $Z$: (B, 10).
# Going backwards, one layer at a time (write $P = \mathrm{softmax}(Z)$ row by row and $Y$ for the
# one-hot labels):
#
# $$\frac{\partial \mathcal{L}}{\partial Z} = \frac{P - Y}{B}, \quad
#   \frac{\partial \mathcal{L}}{\partial W_2} = \Big(\frac{\partial \mathcal{L}}{\partial Z}\Big)^{\!\top} H, \quad
#   \frac{\partial \mathcal{L}}{\partial b_2} = \sum_b \frac{\partial \mathcal{L}}{\partial Z_b}, \quad
#   \frac{\partial \mathcal{L}}{\partial H} = \frac{\partial \mathcal{L}}{\partial Z} W_2,$$
#
# $$\frac{\partial \mathcal{L}}{\partial H_{\text{pre}}} = \frac{\partial \mathcal{L}}{\partial H} \odot \mathbb{1}[H_{\text{pre}} > 0], \quad
#   \frac{\partial \mathcal{L}}{\partial W_1} = \Big(\frac{\partial \mathcal{L}}{\partial H_{\text{pre}}}\Big)^{\!\top} X, \quad
#   \frac{\partial \mathcal{L}}{\partial b_1} = \sum_b \frac{\partial \mathcal{L}}{\partial H_{\text{pre},b}}.$$
#
# Each gradient has the shape of the thing it is the gradient of; checking shapes is the quickest
# way to catch a missing transpose. First the forward pass, in float32 as in real training:

# %%
Xb = images[:64].to(device)  # (B, 64)
yb = labels[:64].to(device)  # (B,)
W1 = (torch.randn(32, 64, device=device) / 8).requires_grad_()
b1 = torch.zeros(32, device=device, requires_grad=True)
W2 = (torch.randn(10, 32, device=device) / math.sqrt(32)).requires_grad_()
b2 = torch.zeros(10, device=device, requires_grad=True)
H_pre = Xb @ W1.T + b1  # (B, 32)
H = torch.relu(H_pre)  # (B, 32)
Z = H @ W2.T + b2  # (B, 10)
loss = F.cross_entropy(Z, yb)
print(f"loss = {loss.item():.4f}  (log 10 = {math.log(10):.4f} for a clueless classifier)")

# %% [markdown]
# The backward pass by hand, straight from the equations (no autograd involved: `no_grad`):

# %%
with torch.no_grad():
    B = Xb.shape[0]
    dZ = (torch.softmax(Z, dim=1) - F.one_hot(yb, 10).float()) / B  # (B, 10)
    dW2 = dZ.T @ H  # (10, 32)
    db2 = dZ.sum(dim=0)  # (10,)
    dH = dZ @ W2  # (B, 32)
    dH_pre = dH * (H_pre > 0).float()  # (B, 32)
    dW1 = dH_pre.T @ Xb  # (32, 64)
    db1 = dH_pre.sum(dim=0)  # (32,)
mine = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

# %% [markdown]
# And autograd's answer. A good checker does not just say "equal" or "not equal": it says whether
# the tensors are *exactly* equal, whether they are equal *within a tolerance*, and by how much
# they differ at worst.

# %%
loss.backward()
reference = {"W1": W1.grad, "b1": b1.grad, "W2": W2.grad, "b2": b2.grad}
print(f"{'param':<6}{'shape':<10}{'exact':<8}{'allclose':<10}max |diff|")
for name, ours in mine.items():
    theirs = reference[name]
    exact = torch.equal(ours, theirs)
    close = torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    diff = (ours - theirs).abs().max().item()
    print(f"{name:<6}{str(tuple(ours.shape)):<10}{str(exact):<8}{str(close):<10}{diff:.1e}")
worst = max((mine[k] - reference[k]).abs().max().item() for k in mine)
print(f"QUALITY: backprop by hand matches autograd, max |diff| {worst:.1e}")

# %% [markdown]
# What to notice: the hand-derived gradients agree with autograd to about $10^{-8}$, which is
# float32 rounding, yet they are typically not *bit-for-bit* equal. The arithmetic is the same;
# only the order of the additions differs, and floating-point addition is not associative. Never
# compare floats with `==`; compare with a tolerance and report the largest difference.

# %% [markdown]
# ### 2.4.3 Is the gradient flowing?
#
# When a model does not learn, look at its gradients. A parameter whose `.grad` is `None` after
# `backward()` is not connected to the loss at all: a classic bug when a layer is built but not
# used in the forward pass. Here the forward pass "forgets" the last layer:

# %%
model = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 1), nn.Linear(1, 1)).to(device)
inputs = torch.randn(32, 10, device=device)  # (B, features)
loss = model[:3](inputs).mean()  # bug: model[3] never runs
loss.backward()
for name, param in model.named_parameters():
    report = "NO GRADIENT" if param.grad is None else f"mean |grad| = {param.grad.abs().mean():.2e}"
    print(f"{name:<9} {report}")

# %% [markdown]
# The other symptoms: gradients that are all zeros (dead ReLUs, a loss that does not depend on the
# output), huge ones (exploding gradients: lower the learning rate, clip) and tiny ones (vanishing
# gradients). The last deserves a picture. Stack 20 layers of `Linear(64, 64)` followed by an
# activation, backpropagate a loss, and plot the mean $|\partial\mathcal{L}/\partial W|$ of each
# layer. The weights are initialised the way each activation is usually paired with (Xavier for
# sigmoid and tanh, Kaiming for ReLU; Chapter 3 explains why).

# %%
def deep_stack(activation, depth=20, width=64):
    """`depth` blocks of Linear(width, width) + activation, then Linear(width, 1)."""
    layers = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        if activation is nn.ReLU:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        else:
            nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, activation()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


# %%
inputs, targets = torch.randn(256, 64, device=device), torch.randn(256, 1, device=device)
magnitudes = {}
for activation in (nn.Sigmoid, nn.Tanh, nn.ReLU):
    torch.manual_seed(0)
    net = deep_stack(activation).to(device)
    F.mse_loss(net(inputs), targets).backward()
    linears = [m for m in net if isinstance(m, nn.Linear)][:-1]  # the 20 hidden layers
    magnitudes[activation.__name__] = [m.weight.grad.abs().mean().item() for m in linears]
fig, ax = plt.subplots()
for name, mags in magnitudes.items():
    ax.semilogy(range(1, len(mags) + 1), mags, marker="o", ms=4, label=name)
ax.set(title="Gradient magnitude through a 20-layer stack", xlabel="layer (1 = next to the input)",
       ylabel=r"mean $|\partial \mathcal{L} / \partial W|$", xticks=range(2, 21, 2))
ax.legend()
plt.show()

# %% [markdown]
# What to notice: with tanh and ReLU the gradient keeps roughly the same size from the last layer
# to the first. With sigmoid it shrinks by about a factor of four *per layer*, some twelve orders of
# magnitude over twenty layers, so the first layers effectively never learn. The reason is the
# chain rule: the backward signal is multiplied by the activation's derivative at every layer, and
# $\sigma'(x) = \sigma(x)(1 - \sigma(x)) \le 1/4$. This is the **vanishing gradient** problem;
# Chapters 8 and 9 (residual connections, normalisation) are largely about curing it.

# %% [markdown]
# ### 2.4.4 Custom autograd functions
#
# Sometimes you want to define the backward pass yourself: for an operation PyTorch lacks, for a
# more stable or cheaper formula, or to *change* the gradient on purpose. Subclass
# `torch.autograd.Function` and write two static methods:
#
# - `forward(ctx, *inputs)` computes the output; `ctx.save_for_backward(...)` keeps the tensors
#   the backward will need;
# - `backward(ctx, grad_output)` receives $\partial\mathcal{L}/\partial\,\text{output}$ and returns
#   $\partial\mathcal{L}/\partial\,\text{input}$ for each input: a vector-Jacobian product.
#
# Call it through `.apply`, never by instantiating the class. Here is $x^3$:

# %%
class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x**2  # chain rule: upstream gradient times local derivative


x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
Cube.apply(x).sum().backward()
print("x.grad:", x.grad, "(3x^2 = [3, 12, 27])")

# %% [markdown]
# A hand-written backward is exactly where mistakes hide, so always `gradcheck` it. Here is the
# same function with the factor 3 forgotten; gradcheck notices (with `raise_exception=False` it
# returns `False` instead of raising):

# %%
class BrokenCube(Cube):
    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x**2  # wrong: forgot the 3


x64 = torch.randn(5, dtype=torch.float64, device=device, requires_grad=True)
print("Cube:      ", torch.autograd.gradcheck(Cube.apply, (x64,)))
print("BrokenCube:", torch.autograd.gradcheck(BrokenCube.apply, (x64,), raise_exception=False))

# %% [markdown]
# And a function that changes the gradient on purpose: rounding has derivative $0$ almost
# everywhere, which would stop all learning through it. The **straight-through estimator**, used
# to train quantised networks, rounds in the forward pass and pretends to be the identity in the
# backward pass:

# %%
class RoundStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output  # pretend d round(x)/dx = 1


x = torch.tensor([0.2, 1.7, -2.6], requires_grad=True, device=device)
(torch.round(x) * torch.arange(1.0, 4.0, device=device)).sum().backward()
print("torch.round gradient:       ", x.grad)
x.grad = None
(RoundStraightThrough.apply(x) * torch.arange(1.0, 4.0, device=device)).sum().backward()
print("straight-through gradient:  ", x.grad)

# %% [markdown]
# ## 2.5 Exercises
#
# Six exercises, from a first `backward()` to your own autograd function. Work out what you
# expect before you run anything: autograd is easiest to learn by being surprised.
#
# ### Exercise 2.1 — Basic gradient computation (★★, 3 points)
#
# **Goal:** get comfortable with `.backward()` and `.grad`, and see accumulation happen.
#
# Write `two_backward_passes(a_value, b_value)` that
# 1. creates 0-d float32 tensors `a` and `b` holding `a_value`, `b_value`, with
#    `requires_grad=True`;
# 2. computes $c = a^2 + b^2$ and calls `c.backward()`; records the gradients at that moment in
#    `first`, a float32 tensor of shape (2,) holding `[a.grad, b.grad]`;
# 3. computes $d = 2a + 3b$ and calls `d.backward()` (no zeroing in between);
# 4. returns `a, b, first`.
#
# Then answer in `answer_2_1` with one letter: why are `a.grad` and `b.grad` what they are after
# step 3?
#
# - **A.** `d.backward()` overwrites `.grad`: now `a.grad` $= 2$ and `b.grad` $= 3$.
# - **B.** `d.backward()` adds $\partial d/\partial a = 2$ and $\partial d/\partial b = 3$ to the
#   gradients left by `c.backward()`: `.grad` accumulates until you zero it.
# - **C.** `d.backward()` differentiates $c + d$, because the graph of $c$ is still attached to `a`
#   and `b`.
# - **D.** `d.backward()` raises an error, because `c.backward()` freed the graph of `a` and `b`.
#
# **Tests check:** `first` for $(3, 4)$ and other values, `a.grad` and `b.grad` after both passes,
# that `a` and `b` are leaves that require grad, and your letter.
#
# **Hints:** work out by hand what you expect first. `torch.stack([a.grad, b.grad])` makes a new
# tensor. Careful: `backward()` updates `.grad` *in place*, so a tensor you saved as
# `g = a.grad` changes under your feet at the second backward; copy it (`stack` or `.clone()`)
# before calling `d.backward()`.

# %% nbgrader={"grade": false, "grade_id": "ex02_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def two_backward_passes(a_value, b_value):
    """Two backward passes without zeroing.

    Args:
        a_value, b_value: Python floats.
    Returns:
        a, b: the 0-d float32 leaf tensors (requires_grad=True), after both backward passes.
        first: float32 tensor of shape (2,), [a.grad, b.grad] right after c.backward().
    """
    ### BEGIN SOLUTION
    a = torch.tensor(float(a_value), requires_grad=True)
    b = torch.tensor(float(b_value), requires_grad=True)
    c = a**2 + b**2
    c.backward()
    first = torch.stack([a.grad, b.grad])  # a new tensor: a copy of the current gradients
    d = 2 * a + 3 * b
    d.backward()
    return a, b, first
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_1_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_a, _b, _first = two_backward_passes(3.0, 4.0)
checks.check_tensor(_first, "first", shape=(2,), dtype=torch.float32)
checks.check_close(_first, torch.tensor([6.0, 8.0]), "first (after c.backward())",
                   hint="dc/da = 2a and dc/db = 2b; copy the gradients before d.backward()")
checks.check(_a.is_leaf and _a.requires_grad and _b.is_leaf and _b.requires_grad,
             "a and b must be leaf tensors with requires_grad=True.",
             hint="create them with torch.tensor(value, requires_grad=True)")
checks.check_grad(_a, torch.tensor(8.0), "a", hint="2a from c, plus 2 from d: no zeroing")
checks.check_grad(_b, torch.tensor(11.0), "b", hint="2b from c, plus 3 from d: no zeroing")
### BEGIN HIDDEN TESTS
for _av, _bv in [(-1.5, 0.25), (0.0, 0.0), (10.0, -7.0)]:
    _a, _b, _first = two_backward_passes(_av, _bv)
    checks.check_tensor(_first, "first", shape=(2,), dtype=torch.float32)
    checks.check_close(_first, torch.tensor([2 * _av, 2 * _bv]), f"first for ({_av}, {_bv})")
    checks.check_dtype(_a, torch.float32, "a")
    checks.check_grad(_a, torch.tensor(2 * _av + 2), f"a for ({_av}, {_bv})")
    checks.check_grad(_b, torch.tensor(2 * _bv + 3), f"b for ({_av}, {_bv})")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex02_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
answer_2_1 = ...  # one letter: "A", "B", "C" or "D"
### BEGIN SOLUTION
answer_2_1 = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_type(answer_2_1, str, "answer_2_1")
checks.check(answer_2_1.strip().upper() in {"A", "B", "C", "D"},
             "answer_2_1 must be one of the letters A, B, C, D.", got=answer_2_1)
### BEGIN HIDDEN TESTS
# B: .grad accumulates. A would give [2, 3], C would give [8, 11] for the wrong reason (the
# graph of c was freed by c.backward() and is not revisited), D does not happen: d has its own graph.
checks.check_equal(answer_2_1.strip().upper(), "B", "answer_2_1")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.2 — Matrix gradients (★★, 3 points)
#
# **Goal:** see that the gradient with respect to a matrix is a matrix of the same shape, and
# derive it once by hand.
#
# For a weight matrix $W$ of shape $(m, n)$ and an input $x$ of shape $(n,)$, let $y = Wx$ and
# $L = \lVert y \rVert^2 = \sum_i y_i^2$.
#
# **(a)** Write `matrix_grad(W, x)` that returns `(L, grad_W)`: `L` a 0-d tensor without a graph,
# `grad_W` $= \partial L/\partial W$ computed by **autograd**. The caller's `W` does not require
# grad and must be left alone: work on a copy, `W.detach().clone().requires_grad_(True)`.
#
# **(b)** Write `matrix_grad_by_hand(W, x)` that returns the same gradient from a formula, without
# autograd. Derive it: $\partial L / \partial W_{ij} = \sum_k 2 y_k\, \partial y_k/\partial W_{ij}$,
# and $y_k = \sum_j W_{kj} x_j$ depends on $W_{ij}$ only when $k = i$.
#
# Inputs and outputs: float tensors on any device; the outputs have the dtype and device of `W`,
# and `grad_W` has the shape $(m, n)$ of `W`.
#
# **Tests check:** (a) against the formula and (b) against `torch.autograd.grad`, on the seed's
# example (`torch.manual_seed(42)`, $W$: (3, 4), $x$: (4,)) and on other shapes and float64; that
# the caller's `W` is unchanged, still does not require grad, and has no `.grad`.
#
# **Hints:** (b) the result is an *outer product*: `torch.outer(u, v)` has entries $u_i v_j$.
# It is $2\,y\,x^\top$.

# %% nbgrader={"grade": false, "grade_id": "ex02_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def matrix_grad(W, x):
    """L = ||W x||^2 and dL/dW by autograd.

    Args:
        W: (m, n) float tensor (requires_grad=False; do not modify it).
        x: (n,) float tensor.
    Returns:
        L: 0-d tensor (no graph attached), grad_W: (m, n) tensor.
    """
    ### BEGIN SOLUTION
    W = W.detach().clone().requires_grad_(True)
    L = (W @ x).pow(2).sum()
    L.backward()
    return L.detach(), W.grad
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(42)
_W = torch.randn(3, 4, device=device)
_x = torch.randn(4, device=device)
_W_before = _W.clone()
_L, _gW = matrix_grad(_W, _x)
checks.check_tensor(_gW, "grad_W", shape=(3, 4), dtype=torch.float32,
                    hint="the gradient has the shape of W")
checks.check_close(_L, ((_W @ _x) ** 2).sum(), "L", rtol=1e-5, hint="L = (W @ x).pow(2).sum()")
checks.check_close(_gW, 2 * torch.outer(_W @ _x, _x), "grad_W", rtol=1e-5, atol=1e-6)
checks.check(_W.grad is None and not _W.requires_grad,
             "the caller's W was changed: it now requires grad or has a .grad.",
             hint="work on W.detach().clone().requires_grad_(True)")
checks.check_equal(_W, _W_before, "W after the call", hint="do not modify W in place")
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(7)
for _shape in [(5, 2), (1, 1), (2, 6)]:
    _W = torch.randn(_shape, generator=_gen, dtype=torch.float64).to(device)
    _x = torch.randn(_shape[1], generator=_gen, dtype=torch.float64).to(device)
    _L, _gW = matrix_grad(_W, _x)
    checks.check_tensor(_gW, f"grad_W for W of shape {_shape}", shape=_shape, dtype=torch.float64)
    checks.check_close(_L, ((_W @ _x) ** 2).sum(), "L", rtol=1e-10)
    checks.check_close(_gW, 2 * torch.outer(_W @ _x, _x), "grad_W", rtol=1e-10, atol=1e-12)
    checks.check(not _L.requires_grad, "L must not carry a graph.", hint="return L.detach()")
    checks.check(_W.grad is None and not _W.requires_grad, "the caller's W was changed.")
_L, _gW = matrix_grad(torch.ones(2, 3, device=device), torch.zeros(3, device=device))
checks.check_close(_gW, torch.zeros(2, 3), "grad_W for x = 0")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex02_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def matrix_grad_by_hand(W, x):
    """dL/dW for L = ||W x||^2 from the formula, without autograd.

    Args:
        W: (m, n) float tensor; x: (n,) float tensor.
    Returns:
        grad_W: (m, n) tensor, same dtype and device as W.
    """
    ### BEGIN SOLUTION
    y = W @ x  # (m,)
    return 2 * torch.outer(y, x)  # (m, n)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_2_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(42)
_W = torch.randn(3, 4, device=device)
_x = torch.randn(4, device=device)
_Wg = _W.clone().requires_grad_(True)
(_ref,) = torch.autograd.grad((_Wg @ _x).pow(2).sum(), _Wg)
_gW = matrix_grad_by_hand(_W, _x)
checks.check_tensor(_gW, "matrix_grad_by_hand(W, x)", shape=(3, 4),
                    hint="an outer product of y (m,) and x (n,) has shape (m, n)")
checks.check_close(_gW, _ref, "matrix_grad_by_hand(W, x)", rtol=1e-5, atol=1e-6,
                   hint="dL/dW_ij = 2 y_i x_j")
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(11)
for _shape in [(5, 2), (1, 1), (4, 7)]:
    _W = torch.randn(_shape, generator=_gen, dtype=torch.float64).to(device)
    _x = torch.randn(_shape[1], generator=_gen, dtype=torch.float64).to(device)
    _Wg = _W.clone().requires_grad_(True)
    (_ref,) = torch.autograd.grad((_Wg @ _x).pow(2).sum(), _Wg)
    _gW = matrix_grad_by_hand(_W, _x)
    checks.check_tensor(_gW, f"matrix_grad_by_hand for shape {_shape}", shape=_shape,
                        dtype=torch.float64)
    checks.check_close(_gW, _ref, "matrix_grad_by_hand(W, x)", rtol=1e-10, atol=1e-12)
    checks.check(not _gW.requires_grad, "matrix_grad_by_hand must not use autograd on W.")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.3 — Gradient descent with zeroing (★★★, 3 points)
#
# **Goal:** write the smallest possible training loop, and zero the gradient in it.
#
# Write `train_scalar(w0=5.0, target=2.0, lr=0.1, steps=10)` that creates a parameter `w`
# (0-d float32 leaf, `requires_grad=True`) equal to `w0`, then for each of `steps` iterations:
# 1. computes the loss $(w - \text{target})^2$ and appends its value (a Python `float`) to
#    `losses`;
# 2. computes the gradient with `backward()`;
# 3. updates $w \leftarrow w - \text{lr}\cdot\partial\mathcal{L}/\partial w$, in place, without
#    recording it in the graph;
# 4. zeroes the gradient.
#
# Return `w, losses`. Work out what to expect: the gradient is $2(w - \text{target})$, so each
# step multiplies the distance to the target by $1 - 2\,\text{lr}$. With the defaults,
# $w_k = 2 + 3 \cdot 0.8^k$, and after 10 steps $w \approx 2.32$: getting there, not there yet.
#
# **Tests check:** the final `w` and every loss against the closed form above, for the defaults
# and other `w0`, `target`, `lr`, `steps` (including `steps=0`); that `w` is still a leaf that
# requires grad, and that its gradient was zeroed (zeros or `None`) at the end.
#
# **Hints:** do the update inside `with torch.no_grad():` with `w -= lr * w.grad` (an in-place
# update on a leaf is only allowed there). `w = w - lr * w.grad` would make `w` a non-leaf, the
# result of an operation. Zero with `w.grad.zero_()` or `w.grad = None`. Record `loss.item()`.

# %% nbgrader={"grade": false, "grade_id": "ex02_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_scalar(w0=5.0, target=2.0, lr=0.1, steps=10):
    """Gradient descent on (w - target)^2.

    Returns:
        w: 0-d float32 leaf tensor with requires_grad=True, after `steps` updates.
        losses: list of `steps` Python floats, the loss before each update.
    """
    ### BEGIN SOLUTION
    w = torch.tensor(float(w0), requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = (w - target) ** 2
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        w.grad.zero_()
    return w, losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_3_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _closed_form(w0, target, lr, steps):
    """w_k = target + (w0 - target) (1 - 2 lr)^k, loss_k = (w_k - target)^2."""
    dist = [(w0 - target) * (1 - 2 * lr) ** k for k in range(steps + 1)]
    return target + dist[-1], [d * d for d in dist[:-1]]


_w, _losses = train_scalar()
_w_ref, _losses_ref = _closed_form(5.0, 2.0, 0.1, 10)
checks.check_type(_w, torch.Tensor, "w")
checks.check(_w.is_leaf and _w.requires_grad, "w must stay a leaf tensor with requires_grad=True.",
             hint="update in place under torch.no_grad(): w -= lr * w.grad")
checks.check_close(_w, torch.tensor(_w_ref), "final w", rtol=1e-5,
                   hint="did you zero the gradient after each update?")
checks.check_type(_losses, list, "losses")
checks.check_equal(len(_losses), 10, "len(losses)")
checks.check_type(_losses[0], float, "losses[0]", hint="append loss.item()")
checks.check_close(torch.tensor(_losses), torch.tensor(_losses_ref), "losses", rtol=1e-5,
                   hint="record the loss before the update of the same iteration")
checks.check(_w.grad is None or bool((_w.grad == 0).all()),
             "w.grad was not zeroed after the last update.", 0.0, _w.grad)
### BEGIN HIDDEN TESTS
for _args in [(-1.0, 0.5, 0.25, 7), (2.0, -3.0, 0.05, 25), (4.0, 1.0, 0.5, 3), (1.5, 0.0, 0.1, 0)]:
    _w, _losses = train_scalar(*_args)
    _w_ref, _losses_ref = _closed_form(*_args)
    checks.check(_w.is_leaf and _w.requires_grad, f"w must stay a leaf for {_args}.")
    checks.check_dtype(_w, torch.float32, "w")
    checks.check_close(_w, torch.tensor(_w_ref), f"final w for {_args}", rtol=1e-5, atol=1e-6)
    checks.check_equal(len(_losses), _args[3], f"len(losses) for {_args}")
    if _losses:
        checks.check_close(torch.tensor(_losses), torch.tensor(_losses_ref), f"losses for {_args}",
                           rtol=1e-5, atol=1e-6)
        checks.check(_w.grad is None or bool((_w.grad == 0).all()), "w.grad was not zeroed.")
### END HIDDEN TESTS

# %% [markdown]
# On a logarithmic axis your losses should fall on a straight line: every step multiplies the loss
# by $(1 - 2\,\text{lr})^2 = 0.64$. This steady geometric decrease is called *linear convergence*.

# %%
_, losses_demo = train_scalar(steps=30)
fig, ax = plt.subplots()
ax.semilogy(range(30), losses_demo, marker="o", ms=3, label="your train_scalar")
ax.semilogy(range(30), [9 * 0.64**k for k in range(30)], "k:", label=r"$9 \cdot 0.64^k$")
ax.set(title="Gradient descent on $(w-2)^2$, lr = 0.1", xlabel="step k", ylabel="loss")
ax.legend()
plt.show()

# %% [markdown]
# ### Exercise 2.4 — Detaching (★★★, 3 points)
#
# **Goal:** find out what `detach()` does, by experiment, and when it is useful.
#
# **(a)** Write `detach_experiment(values)`. With `x = values.detach().clone().requires_grad_(True)`
# (a fresh leaf; never modify the caller's tensor), compute `y = x**2`, `y_detach = y.detach()`,
# `z1 = y.sum()`, `z2 = y_detach.sum()`. Then try `z1.backward()` and `z2.backward()`, each inside
# a `try`/`except Exception as err`, and return a dict with the keys:
#
# | key | value |
# |---|---|
# | `"grad_after_z1"` | a copy of `x.grad` after `z1.backward()`: a tensor shaped like `values` |
# | `"z1_error"` | the exception **class** that `z1.backward()` raised (e.g. `ValueError`), or `None` if it ran |
# | `"z2_error"` | the same for `z2.backward()` |
# | `"y_detach_requires_grad"` | `y_detach.requires_grad` (a bool) |
# | `"shares_memory"` | whether `y_detach` and `y` share memory: `y_detach.data_ptr() == y.data_ptr()` (a bool) |
#
# **(b)** Why is detaching useful in training? In `answer_2_4`, put the **set** of letters of all
# true statements:
#
# - **A.** Appending `loss` (rather than `loss.item()` or `loss.detach()`) to a list of per-step
#   losses keeps each step's whole graph alive, and memory grows with every step.
# - **B.** When training a recurrent network on a long sequence in chunks, detaching the hidden state
#   between chunks stops the backward pass at the chunk boundary (truncated backpropagation through
#   time).
# - **C.** `y.detach()` copies the data, so modifying `y_detach` in place leaves `y` unchanged.
# - **D.** After `y_detach = y.detach()`, calling `z1.backward()` no longer reaches `x`.
#
# **Tests check:** every key of the dict for `[1., 2., 3.]` and other inputs (float64, a single
# element), that the caller's tensor is untouched, and your set of letters.
#
# **Hints:** store `type(err)`, not `err`. Your own experiment answers C and D. For (b), the answer
# has two letters.

# %% nbgrader={"grade": false, "grade_id": "ex02_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def detach_experiment(values):
    """Run the detach experiment on a copy of `values` (1-D float tensor) and report.

    Returns:
        dict with keys "grad_after_z1" (tensor, shape of values), "z1_error", "z2_error"
        (exception class or None), "y_detach_requires_grad" (bool), "shares_memory" (bool).
    """
    ### BEGIN SOLUTION
    x = values.detach().clone().requires_grad_(True)
    y = x**2
    y_detach = y.detach()
    z1, z2 = y.sum(), y_detach.sum()
    result = {"z1_error": None, "z2_error": None}
    try:
        z1.backward()
    except Exception as err:
        result["z1_error"] = type(err)
    result["grad_after_z1"] = None if x.grad is None else x.grad.clone()
    try:
        z2.backward()
    except Exception as err:
        result["z2_error"] = type(err)
    result["y_detach_requires_grad"] = y_detach.requires_grad
    result["shares_memory"] = y_detach.data_ptr() == y.data_ptr()
    return result
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_vals = torch.tensor([1.0, 2.0, 3.0], device=device)
_res = detach_experiment(_vals)
checks.check_type(_res, dict, "detach_experiment(...)")
_keys = {"grad_after_z1", "z1_error", "z2_error", "y_detach_requires_grad", "shares_memory"}
checks.check_equal(set(_res), _keys, "the keys of the result")
checks.check_close(_res["grad_after_z1"], 2 * _vals, "grad_after_z1", hint="d(sum x^2)/dx = 2x")
checks.check(_res["z1_error"] is None, "z1.backward() runs without error.", None, _res["z1_error"])
# What does PyTorch raise for backward() on a scalar with no graph? Ask it directly:
try:
    torch.zeros(2, device=device).sum().backward()
except Exception as _err:
    _expected_error = type(_err)
checks.check(_res["z2_error"] is _expected_error, "z2_error is not the exception class raised.",
             _expected_error.__name__, _res["z2_error"],
             hint="catch it with `except Exception as err` and store type(err)")
### BEGIN HIDDEN TESTS
_t = torch.ones(3, device=device, requires_grad=True) * 2
checks.check_equal(_res["shares_memory"], _t.detach().data_ptr() == _t.data_ptr(), "shares_memory")
checks.check_equal(_res["y_detach_requires_grad"], False, "y_detach_requires_grad")
for _vals in [torch.tensor([-1.0, 0.5], dtype=torch.float64, device=device),
              torch.tensor([4.0], device=device)]:
    _before = _vals.clone()
    _res = detach_experiment(_vals)
    checks.check_tensor(_res["grad_after_z1"], "grad_after_z1", shape=tuple(_vals.shape),
                        dtype=_vals.dtype)
    checks.check_close(_res["grad_after_z1"], 2 * _vals, "grad_after_z1")
    checks.check(_res["z1_error"] is None and _res["z2_error"] is _expected_error,
                 "the errors of z1.backward() and z2.backward() are wrong.")
    checks.check(_vals.grad is None and not _vals.requires_grad, "the caller's tensor was changed.")
    checks.check_equal(_vals, _before, "values after the call")
    checks.check(_res["shares_memory"] is True and _res["y_detach_requires_grad"] is False,
                 "shares_memory / y_detach_requires_grad are wrong.")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex02_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
answer_2_4 = ...  # a set of letters, e.g. {"A", "C"}
### BEGIN SOLUTION
answer_2_4 = {"A", "B"}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02_4_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_type(answer_2_4, (set, frozenset, list, tuple), "answer_2_4")
_letters = {str(s).strip().upper() for s in answer_2_4}
checks.check(_letters <= {"A", "B", "C", "D"}, "answer_2_4 may only contain A, B, C, D.",
             got=answer_2_4)
### BEGIN HIDDEN TESTS
# A and B are true. C is false: detach() shares memory (shares_memory above). D is false:
# detaching creates a new tensor and leaves y's graph alone (z1.backward() ran above).
checks.check_equal(_letters, {"A", "B"}, "answer_2_4")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.5 — Higher-order derivatives (★★★, 3 points)
#
# **Goal:** compute derivatives of any order with `torch.autograd.grad`.
#
# Write `derivative(f, x, n)` that returns the $n$-th derivative of an **elementwise** function
# `f` at every entry of `x`: a tensor shaped like `x`, with its dtype and device, carrying no
# graph (`requires_grad=False`). `n = 0` returns $f(x)$ itself. Do not modify `x` and do not call
# `.backward()` (leave every `.grad` alone); work on `x.detach().clone().requires_grad_(True)`.
#
# The seed's check: for $y = \sin x$, $y' = \cos x$ and $y'' = -\sin x$, so at $x = 2$,
# $y'' = -\sin 2 \approx -0.909$.
#
# **Tests check:** $\sin$ at $x = 2$ for $n = 1, 2$; then, hidden: $n = 0 \dots 5$ for $\sin$ on a
# float64 vector (the derivatives cycle $\sin, \cos, -\sin, -\cos$), $\exp$, $x^3$ (whose fourth
# derivative is $0$), a linear function (second derivative $0$), 0-d inputs, an input that itself
# requires grad, and that the result carries no graph and `x.grad` stays `None`.
#
# **Hints:** apply `torch.autograd.grad(out.sum(), x, create_graph=True)` $n$ times (the `.sum()`
# trick of Section 2.3.8 works because `f` is elementwise). If a derivative no longer depends on
# `x` (say the first derivative of $3x + 1$ is the constant 3), it has `requires_grad=False` and
# `autograd.grad` refuses it: every further derivative is then zero, so return
# `torch.zeros_like(x)`. Finish with `.detach()`.

# %% nbgrader={"grade": false, "grade_id": "ex02_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def derivative(f, x, n):
    """n-th derivative of the elementwise function f at every entry of x.

    Args:
        f: function of a tensor, applied elementwise (such as torch.sin).
        x: float tensor of any shape.
        n: int >= 0, the order of the derivative.
    Returns:
        tensor shaped like x, same dtype and device, requires_grad=False.
    """
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    out = f(x)
    for _ in range(n):
        if not out.requires_grad:  # constant: every further derivative is 0
            return torch.zeros_like(x).detach()
        (out,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return out.detach()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_5_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_x2 = torch.tensor(2.0, device=device)
_d1 = derivative(torch.sin, _x2, 1)
_d2 = derivative(torch.sin, _x2, 2)
checks.check_tensor(_d2, "derivative(torch.sin, tensor(2.), 2)", shape=())
checks.check_close(_d1, torch.tensor(math.cos(2.0)), "first derivative of sin at 2", rtol=1e-5)
checks.check_close(_d2, torch.tensor(-math.sin(2.0)), "second derivative of sin at 2", rtol=1e-5,
                   hint="differentiate the first derivative again: it needs create_graph=True")
print(f"d2/dx2 sin(x) at x = 2: {_d2.item():.4f} (expected -sin 2 = {-math.sin(2.0):.4f})")
### BEGIN HIDDEN TESTS
_xs = torch.linspace(-3, 3, 13, dtype=torch.float64, device=device)
_cycle = [torch.sin(_xs), torch.cos(_xs), -torch.sin(_xs), -torch.cos(_xs)]
for _n in range(6):
    _d = derivative(torch.sin, _xs, _n)
    checks.check_tensor(_d, f"derivative(sin, x, {_n})", shape=(13,), dtype=torch.float64)
    checks.check_close(_d, _cycle[_n % 4], f"derivative of order {_n} of sin", rtol=1e-10, atol=1e-12)
    checks.check(not _d.requires_grad, "the result must carry no graph.", hint="return out.detach()")
checks.check_close(derivative(torch.exp, _xs, 3), torch.exp(_xs), "third derivative of exp",
                   rtol=1e-10)
_xc = torch.tensor([-1.5, 0.5, 2.0], dtype=torch.float64, device=device)
for _n, _ref in [(1, 3 * _xc**2), (2, 6 * _xc), (3, torch.full_like(_xc, 6.0)),
                 (4, torch.zeros_like(_xc))]:
    checks.check_close(derivative(lambda t: t**3, _xc, _n), _ref, f"order {_n} of x^3",
                       rtol=1e-10, atol=1e-12)
checks.check_close(derivative(lambda t: 3 * t + 1, _xc, 2), torch.zeros_like(_xc),
                   "second derivative of 3x + 1", hint="a constant derivative has no graph: zeros")
checks.check_close(derivative(lambda t: 3 * t + 1, _xc, 1), torch.full_like(_xc, 3.0),
                   "first derivative of 3x + 1")
_xg = torch.tensor([0.3, -0.7], device=device, requires_grad=True)
_d = derivative(torch.tanh, _xg, 2)
_t = torch.tanh(_xg.detach())
checks.check_close(_d, -2 * _t * (1 - _t**2), "second derivative of tanh", rtol=1e-5, atol=1e-6)
checks.check(_xg.grad is None, "x.grad must stay None: use torch.autograd.grad, not backward().")
checks.check_close(derivative(torch.sin, _xs, 0), torch.sin(_xs), "order 0", rtol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.6 — A custom autograd Function: sigmoid (★★★★★, 5 points)
#
# **Goal:** implement an operation with a hand-written gradient, and prove it right with
# `gradcheck`.
#
# Complete `MySigmoid`, a subclass of `torch.autograd.Function`:
# - `forward(ctx, x)` returns $\sigma(x) = \dfrac{1}{1 + e^{-x}}$, computed with `torch.exp` (not
#   `torch.sigmoid`, which would be cheating), and saves what the backward needs;
# - `backward(ctx, grad_output)` returns $\dfrac{\partial \mathcal L}{\partial x}$, using
#   $\dfrac{d\sigma}{dx} = \sigma(x)\,(1 - \sigma(x))$.
#
# It is used as `MySigmoid.apply(x)` on float tensors of any shape, dtype and device, and must not
# modify `x`.
#
# **Tests check:** the values and the gradient at $x = [0, 1, 2]$ against `torch.sigmoid`;
# `torch.autograd.gradcheck` in float64 on random inputs of several shapes; `backward(v)` with a
# non-trivial $v$; large inputs ($\pm 100$, $\pm 1000$) without NaN; that `x` is left unchanged.
#
# **Hints:** `backward` returns a vector-Jacobian product: the upstream gradient `grad_output`
# times the local derivative, elementwise. The derivative is cheapest from the *output*: save it
# with `ctx.save_for_backward(out)` and get it back with `(out,) = ctx.saved_tensors`. Then
# `return grad_output * out * (1 - out)`.

# %% nbgrader={"grade": false, "grade_id": "ex02_6_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MySigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        """x: float tensor of any shape. Returns sigma(x), same shape and dtype."""
        ### BEGIN SOLUTION
        out = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        """grad_output: dL/d(output), shaped like x. Returns dL/dx, shaped like x."""
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad_output * out * (1 - out)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex02_6_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
checks.check(isinstance(MySigmoid, type) and issubclass(MySigmoid, torch.autograd.Function),
             "MySigmoid must subclass torch.autograd.Function.")
_x = torch.tensor([0.0, 1.0, 2.0], device=device, requires_grad=True)
_y = MySigmoid.apply(_x)
checks.check_tensor(_y, "MySigmoid.apply(x)", shape=(3,), dtype=torch.float32)
checks.check_close(_y, torch.sigmoid(_x.detach()), "MySigmoid.apply([0, 1, 2])", rtol=1e-6)
_y.sum().backward()
_s = torch.sigmoid(_x.detach())
checks.check_grad(_x, _s * (1 - _s), "x", rtol=1e-6, hint="dsigma/dx = sigma (1 - sigma)")
checks.check_gradcheck(MySigmoid.apply, (torch.randn(4, dtype=torch.float64, device=device,
                                                     requires_grad=True),), "MySigmoid")
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(3)
for _shape in [(3, 5), (2, 3, 4), ()]:
    _xh = (3 * torch.randn(_shape, generator=_gen, dtype=torch.float64)).to(device)
    checks.check_gradcheck(MySigmoid.apply, (_xh.requires_grad_(),), f"MySigmoid on {_shape}")
_x = torch.randn(6, generator=_gen).to(device).requires_grad_()
_x_before = _x.detach().clone()
_v = torch.randn(6, generator=_gen).to(device)
_y = MySigmoid.apply(_x)
checks.check(_y.grad_fn is not None and "MySigmoid" in type(_y.grad_fn).__name__,
             "the output was not produced by MySigmoid's own forward.")
_y.backward(_v)
_s = torch.sigmoid(_x_before)
checks.check_grad(_x, _v * _s * (1 - _s), "x after y.backward(v)", rtol=1e-5, atol=1e-7,
                  hint="multiply by grad_output")
checks.check_equal(_x.detach(), _x_before, "x after MySigmoid", hint="do not modify x in place")
for _dtype, _big in [(torch.float32, 100.0), (torch.float64, 1000.0)]:
    _x = torch.tensor([-_big, -20.0, 0.0, 20.0, _big], dtype=_dtype, device=device,
                      requires_grad=True)
    _y = MySigmoid.apply(_x)
    _y.sum().backward()
    _s = torch.sigmoid(_x.detach())
    checks.check_close(_y, _s, f"MySigmoid at ±{_big} ({_dtype})", atol=1e-12)
    checks.check_grad(_x, _s * (1 - _s), f"x at ±{_big} ({_dtype})", atol=1e-12)
    checks.check_dtype(_y, _dtype, "MySigmoid.apply(x)")
### END HIDDEN TESTS

# %% [markdown]
# With your `MySigmoid` you can now swap it for `torch.sigmoid` anywhere in a model: autograd
# calls your `backward` exactly where it would have called PyTorch's.

# %% [markdown]
# ## Concept check (4 points)
#
# Interview-style questions; answer in the variables below. Predict first, then verify with a
# scratch cell if you like.
#
# 1. `cc_leaves`: after
#    ```python
#    a = torch.tensor(1.0, requires_grad=True)
#    b = a * 2
#    c = b.detach()
#    d = torch.ones(3)
#    ```
#    which of `a, b, c, d` are leaf tensors? A set of names, e.g. `{"a"}`.
# 2. `cc_grad`: the list of two floats in `x.grad` after
#    ```python
#    x = torch.tensor([1.0, 2.0], requires_grad=True)
#    (x * x).sum().backward()
#    (3 * x).sum().backward()
#    ```
# 3. `cc_no_grad`: inside `with torch.no_grad():`, `y = x * 2` for an `x` that requires grad.
#    Is `y.requires_grad`? (a bool)
# 4. `cc_vjp`: for $\mathbf{y} = f(\mathbf{x})$ with $\mathbf{x}$ of shape (5,), $\mathbf{y}$ of
#    shape (3,) and Jacobian $J$ of shape (3, 5), `y.backward(v)` puts into `x.grad`:
#    **A.** $J\mathbf{v}$, with `v` of shape (5,); **B.** $J^\top\mathbf{v}$, with `v` of shape (3,);
#    **C.** the whole matrix $J$; **D.** $\mathbf{v}^\top J^\top$, with `v` of shape (5,).
# 5. `cc_cost`: a network has $N$ parameters and one forward pass costs $F$. The backward pass that
#    computes all $N$ gradients of the loss costs about: **A.** $N \cdot F$; **B.** a small constant
#    times $F$ (typically 2 to 3), whatever $N$; **C.** $N^2 \cdot F$; **D.** $F / N$.

# %% nbgrader={"grade": false, "grade_id": "cc02_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
cc_leaves = ...  # set of names
cc_grad = ...  # list of two floats
cc_no_grad = ...  # True or False
cc_vjp = ...  # "A", "B", "C" or "D"
cc_cost = ...  # "A", "B", "C" or "D"
### BEGIN SOLUTION
cc_leaves = {"a", "c", "d"}
cc_grad = [5.0, 7.0]
cc_no_grad = False
cc_vjp = "B"
cc_cost = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc02_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(cc_leaves, (set, frozenset, list, tuple), "cc_leaves")
checks.check_type(cc_grad, (list, tuple, torch.Tensor), "cc_grad")
checks.check_type(cc_no_grad, bool, "cc_no_grad")
### BEGIN HIDDEN TESTS
# Every expected answer is computed by PyTorch itself.
_a = torch.tensor(1.0, requires_grad=True)
_b = _a * 2
_named = {"a": _a, "b": _b, "c": _b.detach(), "d": torch.ones(3)}
checks.check_equal(set(cc_leaves), {k for k, t in _named.items() if t.is_leaf}, "cc_leaves",
                   hint="a tensor that does not require grad is a leaf too")
_xc = torch.tensor([1.0, 2.0], requires_grad=True)
(_xc * _xc).sum().backward()
(3 * _xc).sum().backward()
checks.check_close(torch.as_tensor(cc_grad, dtype=torch.float32), _xc.grad, "cc_grad")
with torch.no_grad():
    _yc = _xc * 2
checks.check_equal(cc_no_grad, _yc.requires_grad, "cc_no_grad")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cc02_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for _name, _value in [("cc_vjp", cc_vjp), ("cc_cost", cc_cost)]:
    checks.check_type(_value, str, _name)
    checks.check(_value.strip().upper() in {"A", "B", "C", "D"}, f"{_name} must be A, B, C or D.",
                 got=_value)
### BEGIN HIDDEN TESTS
# vjp: B, x.grad = J^T v, shape (5,) = shape of x; v has the shape of y (Section 2.3.4).
# cost: B, reverse mode computes all N gradients for a constant multiple of one forward pass.
checks.check_equal(cc_vjp.strip().upper(), "B", "cc_vjp")
checks.check_equal(cc_cost.strip().upper(), "B", "cc_cost")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - Operations on tensors with `requires_grad=True` are recorded as a **graph**, built anew each
#   time the code runs; `backward()` walks it in reverse, applying the **chain rule** node by node.
# - Gradients land in the `.grad` of **leaf** tensors and **accumulate**: zero them before every
#   training step (`optimizer.zero_grad()`).
# - `y.backward(v)` computes the **vector-Jacobian product** $J^\top v$; a scalar loss uses $v = 1$.
#   One backward pass gives all gradients for the cost of a few forward passes.
# - Turn recording off with `no_grad` / `inference_mode` for evaluation (it saves the activation
#   memory we measured), `detach()` to cut a tensor out of the graph, `requires_grad_(False)` to
#   freeze.
# - In-place operations fail on leaves that require grad, and on tensors saved for backward
#   (version counter). A graph is freed after `backward()` unless `retain_graph=True`.
# - `torch.autograd.grad(..., create_graph=True)` differentiates derivatives: any order.
# - Check gradients in float64: finite differences, `gradcheck`, and an exact/close/max-difference
#   report, never `==` on floats. Watch per-layer gradient magnitudes to spot vanishing gradients.
# - A custom `torch.autograd.Function` pairs a `forward` with a hand-written `backward`; always
#   `gradcheck` it.
#
# **Next:** Chapter 3 wraps parameters and operations into `nn.Module`s, so that you never have
# to track `W1, b1, W2, b2` by hand again.
