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
# # Chapter 1 — Tensors: the arrays that learn
#
# Everything a neural network touches is a tensor: the images and time series you feed it,
# the weights it learns, the gradients that teach it. This chapter makes you fluent in them.
#
# **What you will learn**
# - what a tensor is (shape, dtype, device) and the shape conventions of deep learning;
# - creating tensors, indexing and slicing them, and when a result is a *view* or a *copy*;
# - reshaping, transposing, squeezing — and why `view` sometimes refuses;
# - broadcasting, the rule that lets tensors of different shapes meet without loops;
# - maths and reductions along a dimension; NumPy interop and shared memory;
# - moving work to a GPU, and timing it honestly.
#
# **Prerequisites:** Python and a first contact with NumPy arrays. No deep learning yet.
#
# **Expected time:** 60–90 minutes, exercises included. The notebook runs top to bottom in
# under 10 seconds on a laptop CPU.
#
# Work through the cells in order. Exercises are marked **Exercise 1.k**: write your answer in
# the cell that says `# YOUR CODE HERE`, then run the test cell below it. A failing test tells
# you what it expected, what it got, and gives a hint. Some tests are hidden and run when your
# notebook is graded, so make your code correct, not just green.

# %%
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import helpers
from helpers import checks

device = helpers.setup(seed=0)
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# ## 1.1 Why tensors?
#
# A tensor is a multi-dimensional array, like NumPy's `ndarray`, with two extra powers:
#
# 1. **It can live on a GPU.** One call moves it to thousands of cores that run the same
#    arithmetic in parallel; for the large matrix products of deep learning that is often
#    10–100× faster than a CPU.
# 2. **It can remember how it was computed.** With `requires_grad=True`, PyTorch records every
#    operation and can then compute derivatives automatically (*autograd*, chapter 2). That is
#    what makes training possible.
#
# Here is real data as a tensor: a microscope image of stained human colon tissue that ships
# with scikit-image. Stored on disk it is height × width × colour; PyTorch's convention for
# images is channels first, `(C, H, W)`.

# %% tags=["autograde-skip"]
image = torch.from_numpy(helpers.data.science_image("immunohistochemistry"))  # (H, W, C)
chw = image.permute(2, 0, 1)  # (C, H, W): channels first, as PyTorch layers expect
print("stored as", tuple(image.shape), "-> channels first", tuple(chw.shape), chw.dtype)

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
axes[0].imshow(image)
axes[0].set_title("image: (H, W, 3)")
for c, (ax, name) in enumerate(zip(axes[1:], ["red", "green", "blue"])):
    ax.imshow(chw[c], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"chw[{c}], {name}: (H, W)")
for ax in axes:
    ax.axis("off")
fig.suptitle("One tensor, three slices: brown stain is dark in the blue channel")
plt.show()

# %% [markdown]
# Notice that the brown stain (a protein marker) is darkest in the blue channel: a network
# reading `chw` sees exactly these three grids of numbers, nothing more.
#
# ## 1.2 Tensor fundamentals
#
# A tensor of **rank** (number of dimensions) 0 is a scalar, rank 1 a vector, rank 2 a matrix,
# and so on. Four properties describe every tensor:
#
# | property | example | meaning |
# |---|---|---|
# | `shape` | `(3, 4, 5)` | size along each dimension |
# | `dtype` | `torch.float32` | the number type of every element |
# | `device` | `cpu`, `cuda:0` | where the memory lives |
# | `requires_grad` | `False` | whether autograd records operations on it |
#
# Deep learning uses a handful of shapes again and again. This course names the dimensions the
# same way everywhere:
#
# | shape | typical content |
# |---|---|
# | `(B, D)` | a batch of `B` samples with `D` features each |
# | `(B, C, H, W)` | a batch of images: `C` channels of `H × W` pixels |
# | `(B, T, C)` | a batch of sequences: `T` time steps of `C` features |
# | `(B, C, D, H, W)` | a batch of 3-D volumes |
#
# ## 1.3 Creating and manipulating tensors
#
# ### Creating tensors

# %%
from_list = torch.tensor([[1, 2, 3], [4, 5, 6]])  # dtype inferred from the data: int64
floats = torch.tensor([1.0, 2.0, 3.0])  # float32, PyTorch's default float type
zeros = torch.zeros(2, 3)  # (2, 3) of 0.0
normal = torch.randn(2, 3)  # standard normal samples
steps = torch.arange(0, 10, 2)  # 0, 2, 4, 6, 8: the end is excluded
grid = torch.linspace(0, 1, 5)  # 5 points from 0 to 1: both ends included
like = torch.ones_like(normal)  # same shape, dtype and device as `normal`
for name, t in [("from_list", from_list), ("floats", floats), ("steps", steps), ("grid", grid)]:
    print(f"{name:9s} {t.dtype}  {t.tolist()}")

# %% [markdown]
# Two details trip up everyone once. `torch.tensor([1, 2])` is an *integer* tensor, and
# `arange` excludes its end while `linspace` includes it. Float32 is the default float type:
# enough precision for learning, half the memory of float64, and much faster on GPUs.
#
# ### Tensor properties

# %%
x = torch.randn(2, 3, 4)
print("shape:", x.shape, "| ndim:", x.ndim, "| numel:", x.numel())
print("dtype:", x.dtype, "| device:", x.device, "| requires_grad:", x.requires_grad)
print("memory:", x.numel() * x.element_size(), "bytes (24 elements x 4 bytes)")

# %% [markdown]
# ### Indexing and slicing
#
# Indexing works as in NumPy. The important subtlety is memory: **basic slicing returns a
# view** that shares memory with the original, while **advanced indexing** (with a tensor of
# indices or a boolean mask) **returns a copy**.

# %%
x = torch.arange(12).reshape(3, 4)
print(x)
print("row 0:", x[0].tolist(), "| column 0:", x[:, 0].tolist(), "| x[1, 2] =", x[1, 2].item())
print("top-left 2x2:", x[:2, :2].tolist())
print("rows 0 and 2:", x[torch.tensor([0, 2])].tolist())
print("elements > 5:", x[x > 5].tolist())


# %% [markdown]
# To ask whether two tensors share memory, compare the addresses of the storage blocks behind
# them: `a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()`. The course's
# `helpers.checks.shares_memory(a, b)` does exactly that.

# %%
from helpers.checks import shares_memory

x = torch.zeros(3, 3)
row = x[0]  # basic slicing: a view
picked = x[torch.tensor([0])]  # advanced indexing: a copy
row[0] = 999.0  # writes through the view into x!
print("x[0, 0] after writing to the view:", x[0, 0].item())
print("row is a view:", shares_memory(row, x), "| picked is a view:", shares_memory(picked, x))

# %% [markdown]
# When you need an independent copy of a slice, say so with `.clone()`.
#
# ### Shape manipulation
#
# `reshape` and `view` reinterpret the same elements with a new shape (the number of elements
# must not change; `-1` means "whatever fits"). `transpose` swaps two dimensions, `permute`
# reorders all of them, `flatten` merges dimensions, `unsqueeze` inserts a dimension of size 1
# and `squeeze` removes such dimensions.

# %%
x = torch.arange(12)
print(x.reshape(3, 4).shape, x.view(2, 6).shape, x.reshape(3, -1).shape)
m = torch.randn(2, 3)
print("transpose:", m.T.shape, m.transpose(0, 1).shape)
t = torch.randn(2, 3, 4)
print("permute(2, 0, 1):", t.permute(2, 0, 1).shape, "| flatten:", t.flatten().shape,
      "| flatten(1):", t.flatten(1).shape)
s = torch.randn(2, 1, 3, 1)
print("squeeze():", s.squeeze().shape, "| squeeze(1):", s.squeeze(1).shape,
      "| unsqueeze(0):", m.unsqueeze(0).shape, "| unsqueeze(-1):", m.unsqueeze(-1).shape)

# %% [markdown]
# Why do both `view` and `reshape` exist? A tensor is a flat block of memory plus **strides**:
# how many elements to skip to move one step along each dimension. Transposing just swaps the
# strides — no data moves — so the result is no longer laid out row by row
# (*non-contiguous*). `view` never copies, so it refuses shapes that the strides cannot
# express; `reshape` returns a view when it can and silently copies when it must.

# %%
a = torch.arange(6).reshape(2, 3)
at = a.T
print("strides of a:", a.stride(), "| strides of a.T:", at.stride(),
      "| a.T contiguous?", at.is_contiguous())
try:
    at.view(6)
except RuntimeError as err:
    print("view refused:", str(err).split(".")[0])
flat = at.reshape(6)
print("reshape copied:", not shares_memory(flat, a), "->", flat.tolist())

# %% [markdown]
# ### Broadcasting
#
# Broadcasting lets an operation combine tensors of different shapes without copying data.
# Compare the shapes **from the right**:
#
# 1. if one tensor has fewer dimensions, pad its shape with 1s on the left;
# 2. two sizes are compatible when they are equal or one of them is 1;
# 3. a size-1 dimension is stretched (virtually) to match the other; the result takes the
#    larger size in every dimension.
#
# For example $(3, 1) + (4,) \to (3, 1) + (1, 4) \to (3, 4)$: a column plus a row gives a
# table. The picture shows what broadcasting pretends to copy.

# %% tags=["autograde-skip"]
column = torch.tensor([[0.0], [10.0], [20.0]])  # (3, 1)
row = torch.tensor([1.0, 2.0, 3.0, 4.0])  # (4,)
print((column + row).shape)
helpers.plot.broadcasting(column, row, "+")
plt.show()

# %% [markdown]
# The pale dashed cells were never stored: PyTorch walks the same memory with a stride of 0.
# That is why broadcasting is both fast and memory-free.
#
# The classic mistake is adding two vectors of different lengths and hoping for a table. It
# fails, and the fix is to say which one is the column:

# %%
u, v = torch.ones(3), torch.ones(4)
try:
    u + v
except RuntimeError as err:
    print("error:", err)
print("outer sum:", (u.unsqueeze(1) + v.unsqueeze(0)).shape)  # (3, 1) + (1, 4) -> (3, 4)

# %% [markdown]
# The silent mistake is worse than the loud one: when the sizes happen to match, a wrong
# alignment broadcasts without complaint. Print shapes whenever you are unsure.
#
# ### Mathematical operations
#
# Arithmetic is elementwise; `@` (or `torch.matmul`) is the matrix product and works on
# batches of matrices; methods ending in `_` work **in place**.

# %%
a = torch.tensor([1.0, 2.0, 3.0])
b = torch.tensor([4.0, 5.0, 6.0])
print("a * b =", (a * b).tolist(), "| a ** 2 =", (a**2).tolist(), "| exp:", a.exp().round(decimals=2).tolist())
A, B = torch.randn(3, 4), torch.randn(4, 5)
print("A @ B:", (A @ B).shape)
As, Bs = torch.randn(10, 3, 4), torch.randn(10, 4, 5)
print("batched:", (As @ Bs).shape, "same as bmm:", torch.allclose(As @ Bs, torch.bmm(As, Bs)))
a.add_(1)  # in place: a itself changes
print("after a.add_(1):", a.tolist())

# %% [markdown]
# Elementwise arithmetic works on a whole image at once. Brightness and contrast are one line
# on the `(H, W, 3)` tensor `image` of section 1.1, whose values lie in $[0, 1]$:
#
# $$\text{out} = \operatorname{clamp}\big(c\,(\text{image} - 0.5) + 0.5 + b,\; 0,\; 1\big)$$
#
# The scalars $b$ (brightness) and $c$ (contrast) broadcast to all 786 432 values; no loop.
# Move the sliders (the picture redraws when you release one). Notice in the histogram that
# $b$ shifts every channel sideways, $c$ stretches it around 0.5, and `clamp` piles up at 0
# and 1 whatever leaves the range: the title says which fraction of the values was clipped,
# detail that no later step can recover.

# %% tags=["autograde-skip"]
from helpers.widgets import brightness_contrast

brightness_contrast(image)  # sliders above the adjusted image and its histogram

# %% [markdown]
# A **reduction** such as `sum`, `mean` or `max` collapses the dimension you name: reducing a
# `(3, 4)` tensor over `dim=0` leaves shape `(4,)` (one value per column), over `dim=1` shape
# `(3,)` (one per row). `keepdim=True` keeps the reduced dimension with size 1, which is
# exactly what you need to broadcast the result back against the input.

# %%
x = torch.arange(12.0).reshape(3, 4)
print("sum over dim 0:", x.sum(dim=0).tolist())
print("sum over dim 1:", x.sum(dim=1).tolist())
values, indices = x.max(dim=1)
print("max per row:", values.tolist(), "at columns", indices.tolist())
centred = x - x.mean(dim=1, keepdim=True)  # (3, 4) - (3, 1): every row now has mean 0
print("row means after centring:", centred.mean(dim=1).tolist())

# %% [markdown]
# ### NumPy interop and shared memory
#
# Tensors and NumPy arrays convert both ways, and two of the conversions **share memory**:
# `torch.from_numpy(array)` and `tensor.numpy()` (for CPU tensors). A write through one is seen
# by the other. `torch.tensor(array)` always copies.

# %%
array = np.array([1.0, 2.0, 3.0], dtype=np.float32)
shared = torch.from_numpy(array)  # shares memory with `array`
copied = torch.tensor(array)  # an independent copy
array[0] = 100.0
print("from_numpy sees the change:", shared.tolist())
print("torch.tensor does not:     ", copied.tolist())
back = copied.numpy()  # shares memory with `copied`
copied[1] = -1.0
print("tensor.numpy() shares too: ", back.tolist())

# %% [markdown]
# A tensor that is on a GPU or that requires gradients cannot be viewed as a NumPy array
# directly; the safe, general idiom is `t.detach().cpu().numpy()`.
#
# ### Moving tensors between devices
#
# `helpers.setup()` chose `device` for you: a CUDA GPU if there is one, else Apple's MPS, else
# the CPU. Write code that says `.to(device)` and never names a device itself, and the same
# notebook runs everywhere. Tensors in one operation must live on the same device; mixing them
# is one of the most common errors: `RuntimeError: Expected all tensors to be on the same device`.

# %%
x = torch.randn(3, 3).to(device)
y = torch.randn(3, 3, device=device)  # or create it there directly
print("x + y computed on", (x + y).device)
if device.type != "cpu":
    try:
        torch.ones(2) + torch.ones(2, device=device)  # a CPU tensor meets a GPU tensor
    except RuntimeError as err:
        print("device mismatch:", err)

# %% [markdown]
# ## 1.4 Exercises
#
# ### Exercise 1.1 — Tensor creation (★★, 2 points)
#
# Create:
#
# - `x1`: shape `(5, 3)`, samples of a standard normal distribution, float32;
# - `x2`: shape `(4, 4)`, the integers 0 to 15 in row-major order (use `arange` and `reshape`),
#   int64;
# - `x3`: shape `(10,)`, evenly spaced values from 0 to 1, **both ends included**, float32;
# - `x4`: the `(3, 3)` identity matrix, float32.
#
# The tests check shapes, dtypes and values.
# *Hint:* `torch.randn`, `torch.arange(...).reshape(...)`, `torch.linspace`, `torch.eye`.

# %% nbgrader={"grade": false, "grade_id": "ex01_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
x1 = ...  # (5, 3) standard normal samples
x2 = ...  # (4, 4) the integers 0..15
x3 = ...  # (10,) from 0 to 1, ends included
x4 = ...  # (3, 3) identity
### BEGIN SOLUTION
x1 = torch.randn(5, 3)
x2 = torch.arange(16).reshape(4, 4)
x3 = torch.linspace(0, 1, 10)
x4 = torch.eye(3)
### END SOLUTION
print(x1.shape, x2.shape, x3.shape, x4.shape)

# %% nbgrader={"grade": true, "grade_id": "ex01_1_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_tensor(x1, "x1", shape=(5, 3), dtype=torch.float32)
checks.check((x1 < 0).any() and (x1 > 0).any(), "x1 should hold normal samples, which take both signs.",
             "negative and positive values", x1, "torch.rand is uniform on [0, 1); use torch.randn")
checks.check_equal(x2, torch.tensor([[4 * r + c for c in range(4)] for r in range(4)]), "x2",
                   hint="torch.arange(16).reshape(4, 4)")
checks.check_tensor(x3, "x3", shape=(10,), dtype=torch.float32)
checks.check_close(x3, torch.tensor([k / 9 for k in range(10)]), "x3",
                   hint="10 points from 0 to 1 inclusive are 1/9 apart: torch.linspace(0, 1, 10)")
### BEGIN HIDDEN TESTS
checks.check_equal(x4, torch.tensor([[float(r == c) for c in range(3)] for r in range(3)]), "x4")
checks.check(x1.std() > 0.2 and x1.abs().max() < 8, "x1 does not look standard normal.",
             "spread around 1", x1.std())
checks.check_close(x3[-1], torch.tensor(1.0), "x3[-1]")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.2 — Shape manipulation (★★, 2 points)
#
# Start from `x = torch.arange(24)` and build, each from the previous one:
#
# 1. `y1`: `x` reshaped to `(2, 3, 4)`;
# 2. `y2`: `y1` with its last two dimensions transposed, shape `(2, 4, 3)`;
# 3. `y3`: `y2` flattened to one dimension, shape `(24,)`;
# 4. `y4`: `y3` with a new leading dimension, shape `(1, 24)` — and it must be a **view** of
#    `y3` (share its memory).
#
# Then answer: does `y3` share memory with `x`? Set `y3_shares_memory_with_x` to `True` or
# `False`. Think about the strides of `y2` before you try it.
#
# The tests check shapes, the order of the values, and memory sharing.

# %% nbgrader={"grade": false, "grade_id": "ex01_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
x = torch.arange(24)
y1 = ...  # (2, 3, 4)
y2 = ...  # (2, 4, 3)
y3 = ...  # (24,)
y4 = ...  # (1, 24), a view of y3
y3_shares_memory_with_x = ...  # True or False
### BEGIN SOLUTION
y1 = x.reshape(2, 3, 4)
y2 = y1.transpose(1, 2)
y3 = y2.flatten()
y4 = y3.unsqueeze(0)
y3_shares_memory_with_x = False  # y2 is non-contiguous, so flatten has to copy
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_2_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_tensor(y1, "y1", shape=(2, 3, 4))
checks.check_tensor(y2, "y2", shape=(2, 4, 3), hint="transpose dimensions 1 and 2 (or -1 and -2)")
expected_y2 = torch.tensor([[[12 * b + 4 * i + j for i in range(3)] for j in range(4)] for b in range(2)])
checks.check_equal(y2, expected_y2, "y2", hint="y2[b, j, i] must equal y1[b, i, j]")
checks.check_tensor(y4, "y4", shape=(1, 24), hint="y3.unsqueeze(0)")
### BEGIN HIDDEN TESTS
checks.check_equal(y3, expected_y2.flatten(), "y3", hint="flatten y2, not y1")
checks.check(checks.shares_memory(y4, y3), "y4 must be a view of y3.", "shared memory", "a copy",
             "unsqueeze returns a view; clone() or torch.tensor(...) copy")
base24 = torch.arange(24)
reference = base24.reshape(2, 3, 4).transpose(1, 2).flatten()
checks.check_equal(y3_shares_memory_with_x, checks.shares_memory(reference, base24),
                   "y3_shares_memory_with_x", hint="is y2 contiguous? flatten copies when it must")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.3 — Broadcasting mastery (★★★, 3 points)
#
# 1. Make `A`, shape `(5, 1)`, holding 1, 2, 3, 4, 5 (float32), and `b`, shape `(3,)`, holding
#    10, 20, 30 (float32). Compute `C = A + b` and store its shape as a tuple in `C_shape`.
# 2. Write `outer(u, v)`: the outer product of a `(M,)` and an `(N,)` vector, shape `(M, N)`,
#    `out[i, j] = u[i] * v[j]`, **without loops** and without `torch.outer`.
# 3. Write `center_images(images, mean)`: subtract a per-channel mean `(C,)` from a batch of
#    images `(B, C, H, W)`, so that `out[:, c] = images[:, c] - mean[c]`.
#
# The tests compare with loop-based references, on square and non-square images, with any
# number of channels. *Hint:* for 3, reshape `mean` so that its size-C dimension lines up with
# the channel dimension: `(C,)` → `(C, 1, 1)`. Plain `images - mean` aligns `mean` with the
# *width*, and only fails loudly when W ≠ C.

# %% nbgrader={"grade": false, "grade_id": "ex01_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def outer(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Outer product of u (M,) and v (N,) -> (M, N), by broadcasting."""
    ### BEGIN SOLUTION
    return u.unsqueeze(1) * v.unsqueeze(0)  # (M, 1) * (1, N)
    ### END SOLUTION


def center_images(images: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) minus a per-channel mean (C,) -> (B, C, H, W)."""
    ### BEGIN SOLUTION
    return images - mean.view(-1, 1, 1)  # (B, C, H, W) - (C, 1, 1)
    ### END SOLUTION


A = ...  # (5, 1): 1, 2, 3, 4, 5
b = ...  # (3,): 10, 20, 30
C = ...  # A + b
C_shape = ...  # the shape of C, as a tuple
### BEGIN SOLUTION
A = torch.arange(1.0, 6.0).reshape(5, 1)
b = torch.tensor([10.0, 20.0, 30.0])
C = A + b
C_shape = tuple(C.shape)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_3_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_tensor(A, "A", shape=(5, 1), dtype=torch.float32)
checks.check_tensor(b, "b", shape=(3,), dtype=torch.float32)
checks.check_equal(C_shape, torch.broadcast_shapes((5, 1), (3,)), "C_shape",
                   hint="align shapes from the right: (5, 1) and (1, 3)")
u, v = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, -1.0, 0.5])
checks.check_close(outer(u, v), torch.tensor([[ui * vj for vj in v.tolist()] for ui in u.tolist()]),
                   "outer(u, v)", hint="u as a column (M, 1) times v as a row (1, N)")
images = torch.randn(16, 3, 32, 32)
mean = torch.tensor([0.5, -1.0, 2.0])
expected = torch.stack([images[:, c] - mean[c] for c in range(3)], dim=1)
checks.check_close(center_images(images, mean), expected, "center_images(images, mean)",
                   hint="mean must broadcast along the channel dimension: mean.view(-1, 1, 1)")
### BEGIN HIDDEN TESTS
checks.check_close(C, torch.tensor([[i * 1.0 + j for j in (10, 20, 30)] for i in range(1, 6)]), "C")
for m, n in [(1, 5), (6, 2), (3, 3)]:
    uu, vv = torch.randn(m), torch.randn(n)
    checks.check_close(outer(uu, vv), torch.einsum("i,j->ij", uu, vv), f"outer on ({m},) and ({n},)")
for shape in [(4, 3, 5, 3), (2, 1, 6, 4), (3, 5, 2, 7)]:
    imgs = torch.randn(*shape)
    mu = torch.randn(shape[1])
    ref = torch.stack([imgs[:, c] - mu[c] for c in range(shape[1])], dim=1)
    checks.check_close(center_images(imgs, mu), ref, f"center_images on {shape}")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.4 — Advanced indexing (★★★, 3 points)
#
# Write four functions of a `(N, D)` float tensor `x`:
#
# - `positive_first_column(x)`: the rows whose first column is strictly positive, shape `(K, D)`;
# - `row_max(x)`: a pair `(values, indices)` with the maximum of each row and its column index,
#   both of shape `(N,)`;
# - `even_rows(x)`: rows 0, 2, 4, …;
# - `zero_negatives(x)`: a **new** tensor equal to `x` with negative entries replaced by 0.
#   `x` itself must not change.
#
# The tests use fresh random inputs and edge cases, and check that `x` is left intact.
# *Hint:* boolean masks (`mask = x[:, 0] > 0; x[mask]`), `max(dim=...)`, slicing with a step,
# and `clone()` before writing through a mask.

# %% nbgrader={"grade": false, "grade_id": "ex01_4_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def positive_first_column(x: torch.Tensor) -> torch.Tensor:
    """Rows of x (N, D) whose first entry is > 0 -> (K, D)."""
    ### BEGIN SOLUTION
    return x[x[:, 0] > 0]
    ### END SOLUTION


def row_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum of each row of x (N, D) and its column index -> ((N,), (N,))."""
    ### BEGIN SOLUTION
    return x.max(dim=1)
    ### END SOLUTION


def even_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows 0, 2, 4, ... of x."""
    ### BEGIN SOLUTION
    return x[::2]
    ### END SOLUTION


def zero_negatives(x: torch.Tensor) -> torch.Tensor:
    """A copy of x with negative entries set to 0; x is unchanged."""
    ### BEGIN SOLUTION
    out = x.clone()
    out[out < 0] = 0
    return out
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_4_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
x = torch.randn(100, 5)
x_before = x.clone()
rows = x.tolist()
checks.check_close(positive_first_column(x), torch.tensor([r for r in rows if r[0] > 0]),
                   "positive_first_column(x)", hint="mask = x[:, 0] > 0, then x[mask]")
values, indices = row_max(x)
checks.check_close(values, torch.tensor([max(r) for r in rows]), "row_max(x) values",
                   hint="the maximum of each ROW is a reduction over dim=1")
checks.check_equal(indices, torch.tensor([r.index(max(r)) for r in rows]), "row_max(x) indices")
checks.check_close(even_rows(x), torch.tensor(rows[0::2]), "even_rows(x)", hint="x[::2]")
checks.check_close(zero_negatives(x), torch.tensor([[max(v, 0.0) for v in r] for r in rows]),
                   "zero_negatives(x)")
checks.check_equal(x, x_before, "x after your functions ran", hint="clone() before you write")
### BEGIN HIDDEN TESTS
edge = torch.tensor([[0.0, 1.0], [2.0, -1.0], [-3.0, 5.0], [1e-6, 0.0], [4.0, 4.0]])
checks.check_close(positive_first_column(edge), edge[[1, 3, 4]], "positive_first_column(edge)",
                   hint="strictly positive: 0 is not positive")
checks.check_close(even_rows(edge), edge[[0, 2, 4]], "even_rows on 5 rows")
checks.check_shape(even_rows(torch.randn(1, 3)), (1, 3), "even_rows on one row")
wide = torch.randn(7, 11)
checks.check_close(row_max(wide)[0], torch.amax(wide, dim=1), "row_max(wide) values")
checks.check_tensor(row_max(wide)[1], "row_max indices", shape=(7,), dtype=torch.int64)
wide_before = wide.clone()
checks.check_close(zero_negatives(wide), wide.clamp(min=0), "zero_negatives(wide)")
checks.check_equal(wide, wide_before, "the input of zero_negatives", hint="clone first")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.5 — Pairwise distance matrix (★★★★★, 5 points)
#
# Given `N` points in `D` dimensions, `X` of shape `(N, D)`:
#
# 1. Write `pairwise_distances(X)`, the `(N, N)` matrix with entries
#    $D_{ij} = \lVert x_i - x_j \rVert_2 = \sqrt{\sum_k (x_{ik} - x_{jk})^2}$,
#    **without Python loops** (and without `torch.cdist`). Keep the input's dtype.
# 2. Write `nearest_neighbours(D)`: for each point, the index of its nearest *other* point,
#    shape `(N,)`, int64. Do not modify `D`.
#
# The tests compare with an independent reference on other point sets, dimensions and dtypes,
# including duplicated points (distance 0 to another point). Check for yourself that the
# diagonal of the distance matrix is exactly zero.
#
# *Hints:* `X.unsqueeze(1)` has shape `(N, 1, D)` and `X.unsqueeze(0)` has shape `(1, N, D)`;
# their difference broadcasts to `(N, N, D)`. For the neighbours, a point is at distance 0 from
# itself, so hide the diagonal first — on a copy — for example by adding `+inf` there
# (`torch.diag(torch.full((N,), float("inf")))`), then take `argmin` along a row.

# %% nbgrader={"grade": false, "grade_id": "ex01_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pairwise_distances(X: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows of X (N, D) -> (N, N)."""
    ### BEGIN SOLUTION
    diff = X.unsqueeze(1) - X.unsqueeze(0)  # (N, 1, D) - (1, N, D) -> (N, N, D)
    return diff.pow(2).sum(dim=-1).sqrt()
    ### END SOLUTION


def nearest_neighbours(D: torch.Tensor) -> torch.Tensor:
    """Index of the nearest other point for each row of a distance matrix D (N, N) -> (N,)."""
    ### BEGIN SOLUTION
    masked = D + torch.diag(torch.full((len(D),), float("inf"), dtype=D.dtype, device=D.device))
    return masked.argmin(dim=1)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_5_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
checks.check_close(pairwise_distances(points),
                   torch.tensor([[0.0, 5.0, 1.0], [5.0, 0.0, 18**0.5], [1.0, 18**0.5, 0.0]]),
                   "pairwise_distances of 3 points", hint="sqrt of the summed squared differences")
checks.check_equal(nearest_neighbours(pairwise_distances(points)), torch.tensor([2, 2, 0]),
                   "nearest_neighbours of 3 points", hint="a point is not its own neighbour")
### BEGIN HIDDEN TESTS
for n, d, dtype in [(50, 2, torch.float32), (17, 5, torch.float64), (1, 3, torch.float32)]:
    P = torch.randn(n, d, dtype=dtype)
    got = pairwise_distances(P)
    ref = torch.cdist(P, P, compute_mode="donot_use_mm_for_euclid_dist")
    checks.check_tensor(got, f"pairwise_distances on ({n}, {d})", shape=(n, n), dtype=dtype)
    checks.check_close(got, ref, f"pairwise_distances on ({n}, {d})", rtol=1e-4, atol=1e-5)
    checks.check_equal(torch.diagonal(got), torch.zeros(n, dtype=dtype), "the diagonal")
P = torch.randn(30, 3)
P[7] = P[3]  # a duplicated point: its nearest neighbour is at distance 0
Dm = torch.cdist(P, P, compute_mode="donot_use_mm_for_euclid_dist")
Dm_before = Dm.clone()
brute = torch.tensor([min((j for j in range(30) if j != i), key=lambda j: Dm[i, j].item())
                      for i in range(30)])
nn_got = nearest_neighbours(Dm)
checks.check_tensor(nn_got, "nearest_neighbours", shape=(30,), dtype=torch.int64)
checks.check_close(Dm[torch.arange(30), nn_got], Dm[torch.arange(30), brute], "neighbour distances")
checks.check((nn_got != torch.arange(30)).all(), "a point was its own nearest neighbour.")
checks.check_equal(Dm, Dm_before, "D after nearest_neighbours", hint="work on a copy")
### END HIDDEN TESTS

# %% [markdown]
# Let us look at what you computed, on 100 points in three clusters. On the left, each point
# is joined to its nearest neighbour; on the right, the distance matrix with the points sorted
# by cluster. Notice the dark blocks on the diagonal: points of one cluster are close to each
# other, and the off-diagonal blocks tell how far apart the clusters are.

# %% tags=["autograde-skip"]
X, labels = helpers.data.clustered_points(n=100, dim=2, centers=3, seed=1)
D = pairwise_distances(X)
nn_index = nearest_neighbours(D)
order = torch.argsort(labels, stable=True)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
for i, j in enumerate(nn_index.tolist()):
    left.plot(*zip(X[i].tolist(), X[j].tolist()), color="0.6", lw=0.8, zorder=1)
left.scatter(X[:, 0], X[:, 1], c=labels, cmap="viridis", s=18, zorder=2)
left.set(title="100 points and their nearest neighbours", xlabel="$x_1$", ylabel="$x_2$")
helpers.plot.heatmap(D[order][:, order], ax=right, title="distance matrix, sorted by cluster",
                     xlabel="point j", ylabel="point i", cbar_label="distance $\\|x_i - x_j\\|$")
plt.show()
print("diagonal exactly zero:", bool((torch.diagonal(D) == 0).all()))

# %% [markdown]
# ### Exercise 1.6 — GPU operations and honest timing (★★★, 3 points)
#
# GPUs run asynchronously: a CUDA call *queues* work and returns at once. A timer stopped right
# after it measures the queueing, not the computation. Honest timing therefore:
#
# - **warms up** first (the first call pays for memory allocation and kernel selection);
# - **synchronizes** — waits for the device to finish — before reading the clock;
# - repeats the measurement and reports the **median**, which ignores the odd slow run.
#
# Write:
#
# 1. `sync(device)`: wait for all queued work on `device`; on a CPU there is nothing to wait
#    for, and it must not fail on a machine without a GPU.
# 2. `time_it(fn, device, repeats=5, warmup=1)`: call `fn()` `warmup` times, then time
#    `repeats` calls one by one (synchronizing each time), and return the median duration of
#    one call in seconds, a float.
# 3. `matmul_times(n)`: a dict `{"cpu": seconds, "cuda": seconds or None}` for the product of
#    two random `(n, n)` float32 matrices, timed with `time_it` on the CPU and — only if
#    `torch.cuda.is_available()` — on the GPU (create the matrices on that device). Without a
#    GPU, `"cuda"` is `None`.
#
# The tests use functions with known durations, count calls, and check the dict on whatever
# machine grades you, with or without a GPU. *Hints:* `time.perf_counter()`,
# `statistics.median`, `torch.cuda.synchronize(device)` only when `device.type == "cuda"`.

# %% nbgrader={"grade": false, "grade_id": "ex01_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sync(device: torch.device) -> None:
    """Block until all work queued on `device` has finished (nothing to do on a CPU)."""
    ### BEGIN SOLUTION
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ### END SOLUTION


def time_it(fn, device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of one call of fn() on `device`, after `warmup` calls."""
    ### BEGIN SOLUTION
    for _ in range(warmup):
        fn()
    sync(device)
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_6_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
cpu = torch.device("cpu")
checks.check(sync(cpu) is None, "sync(cpu) should simply return.")
calls = []
seconds = time_it(lambda: (calls.append(1), time.sleep(0.05)), cpu, repeats=4, warmup=2)
checks.check_equal(len(calls), 6, "number of calls of fn with repeats=4, warmup=2",
                   hint="warm-up calls first, then the timed ones")
checks.check_type(seconds, float, "time_it(...)")
checks.check(0.04 < seconds < 0.15, "time_it should return the duration of ONE call.",
             "about 0.05 s for fn = sleep(0.05)", seconds, "time each call on its own")
### BEGIN HIDDEN TESTS
durations = iter([0.0, 0.5, 0.01, 0.01, 0.01, 0.01])  # warm-up, then one slow outlier
median = time_it(lambda: time.sleep(next(durations)), cpu, repeats=5, warmup=1)
checks.check(0.005 < median < 0.05, "time_it should report the median, robust to one slow run.",
             "about 0.01 s", median, "statistics.median, not the mean")
counted = []
time_it(lambda: counted.append(1), cpu, repeats=7, warmup=0)
checks.check_equal(len(counted), 7, "calls with repeats=7, warmup=0")
if torch.cuda.is_available():
    sync(torch.device("cuda"))
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex01_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def matmul_times(n: int = 1000, repeats: int = 5) -> dict:
    """{'cpu': seconds, 'cuda': seconds or None} for an (n, n) @ (n, n) float32 product."""
    ### BEGIN SOLUTION
    results = {"cpu": None, "cuda": None}
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for dev in devices:
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        results[dev.type] = time_it(lambda: a @ b, dev, repeats=repeats)
    return results
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01_6_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
times = matmul_times(256, repeats=3)
checks.check_type(times, dict, "matmul_times(256)")
checks.check_equal(sorted(times), ["cpu", "cuda"], "the keys of matmul_times(256)")
checks.check_type(times["cpu"], float, 'matmul_times(256)["cpu"]')
gpu = torch.cuda.is_available()
checks.check((times["cuda"] is None) == (not gpu), 'matmul_times(...)["cuda"] must be None '
             "exactly when there is no GPU.", "None" if not gpu else "a float", times["cuda"])
### BEGIN HIDDEN TESTS
small, large = matmul_times(8, repeats=3), matmul_times(512, repeats=3)
checks.check(large["cpu"] > small["cpu"], "a 512x512 product should take longer than an 8x8 one.",
             "the time to grow with n", (small["cpu"], large["cpu"]), "multiply (n, n) matrices")
if gpu:
    checks.check_type(large["cuda"], float, 'matmul_times(512)["cuda"]')
### END HIDDEN TESTS

# %% [markdown]
# Now the picture: matrix-product throughput as the matrices grow. A product of two $n \times n$
# matrices costs about $2n^3$ floating-point operations, so dividing by the time gives the
# achieved GFLOP/s. On a GPU, small products are dominated by launch overhead and large ones by
# arithmetic, so the GPU curve overtakes the CPU one as $n$ grows; without a GPU you see the
# CPU alone, which also speeds up as its vector units fill. (On a machine busy with other work
# the curve gets noisy: that is what the median protects against, and what it cannot fix.)

# %% tags=["autograde-skip"]
sizes = [64, 128, 256, 512, 1024]
curves = {"cpu": []}
if torch.cuda.is_available():
    curves["cuda"] = []
for n in sizes:
    for kind, dev in [("cpu", torch.device("cpu")), ("cuda", torch.device("cuda"))][: len(curves)]:
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        curves[kind].append(2 * n**3 / time_it(lambda: a @ b, dev, repeats=5) / 1e9)
fig, ax = plt.subplots()
for kind, gflops in curves.items():
    ax.plot(sizes, gflops, marker="o", label=kind.upper())
ax.set(xscale="log", yscale="log", xlabel="matrix size n (n x n)", ylabel="throughput (GFLOP/s)",
       title="Matrix product throughput, float32")
ax.set_xticks(sizes, [str(s) for s in sizes])
ax.legend()
plt.show()
for kind, gflops in curves.items():
    print(f"QUALITY: {kind} matmul {max(gflops):.0f} GFLOP/s (best over n)")

# %% [markdown]
# ## Concept check (5 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch itself, so
# you can check any of these by experiment — but decide first, then try.
#
# 1. `q1_shape`: the shape (a tuple) of `torch.zeros(8, 1, 5) + torch.zeros(3, 1)`.
# 2. `q2_views`: with `x = torch.arange(6).reshape(2, 3)`, which of these results share memory
#    with `x`? Give a set of letters. (a) `x.t()`, (b) `x.t().contiguous()`, (c) `x[:, 1]`,
#    (d) `x[[0, 1]]`, (e) `x.reshape(3, 2)`.
# 3. `q3_dtype`: the dtype of `torch.tensor([1, 2]) / 2`.
# 4. `q4_shape`: the shape (a tuple) of `torch.randn(4, 5).sum(dim=0, keepdim=True)`.
# 5. `q5_shared`: `True` or `False`: after `t = torch.from_numpy(a)` and `a[0] = 7`, is
#    `t[0] == 7`?

# %% nbgrader={"grade": false, "grade_id": "cc01_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_shape = ...  # a tuple
q2_views = ...  # a set of letters
q3_dtype = ...  # a torch.dtype
q4_shape = ...  # a tuple
q5_shared = ...  # True or False
### BEGIN SOLUTION
q1_shape = (8, 3, 5)
q2_views = {"a", "c", "e"}
q3_dtype = torch.float32
q4_shape = (1, 5)
q5_shared = True
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc01_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
checks.check_type(q1_shape, tuple, "q1_shape")
checks.check_type(q2_views, set, "q2_views", hint='a set of letters, such as {"a", "b"}')
checks.check(q2_views <= set("abcde"), "q2_views may only contain the letters a to e.", got=q2_views)
checks.check_type(q3_dtype, torch.dtype, "q3_dtype", hint="for example torch.int64")
checks.check_type(q4_shape, tuple, "q4_shape")
checks.check_type(q5_shared, bool, "q5_shared")
### BEGIN HIDDEN TESTS
checks.check_equal(q1_shape, tuple(torch.broadcast_shapes((8, 1, 5), (3, 1))), "q1_shape")
base = torch.arange(6).reshape(2, 3)
candidates = {"a": base.t(), "b": base.t().contiguous(), "c": base[:, 1], "d": base[[0, 1]],
              "e": base.reshape(3, 2)}
truth = {k for k, t in candidates.items() if checks.shares_memory(t, base)}
checks.check_equal(q2_views, truth, "q2_views")
checks.check_equal(q3_dtype, (torch.tensor([1, 2]) / 2).dtype, "q3_dtype")
checks.check_equal(q4_shape, tuple(torch.randn(4, 5).sum(dim=0, keepdim=True).shape), "q4_shape")
arr = np.zeros(3)
tensor_view = torch.from_numpy(arr)
arr[0] = 7
checks.check_equal(q5_shared, bool(tensor_view[0] == 7), "q5_shared")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - A tensor is an array with a **shape**, a **dtype** and a **device**; deep learning speaks in
#   a few shapes: `(B, D)`, `(B, C, H, W)`, `(B, T, C)`.
# - Basic slicing, `view`, `transpose`, `permute` and `unsqueeze` return **views** that share
#   memory; advanced indexing and `clone()` copy. `reshape` copies only when it must.
# - **Broadcasting** aligns shapes from the right and stretches size-1 dimensions for free. When
#   sizes happen to match, a wrong alignment fails silently: print shapes.
# - Reductions remove the dimension you name; `keepdim=True` keeps it for broadcasting back.
# - `torch.from_numpy` and `.numpy()` share memory; `torch.tensor(...)` copies.
# - Write device-agnostic code with `.to(device)`, and time GPUs honestly: warm up,
#   synchronize, take the median.
#
# Next, chapter 2 turns on `requires_grad` and lets PyTorch differentiate for you.
