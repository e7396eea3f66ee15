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
# # Chapter 7 — Convolutional Neural Networks
#
# A fully connected network looks at an image as a long list of numbers and has to learn, from
# scratch and at every position separately, that neighbouring pixels belong together. A
# convolutional network is built on that knowledge: it slides one small set of weights over the
# whole image. This chapter takes the convolution apart, builds it back up in PyTorch, and
# applies it to images, time series and 3-D volumes.
#
# **What you will learn**
#
# - how a convolution computes its output, and why sharing weights across positions is the idea
#   that makes CNNs work (parameter sharing, locality, translation equivariance);
# - receptive fields, the output-size formula, padding, stride, dilation and pooling — and how to
#   check each of them against PyTorch in one line;
# - `nn.Conv2d`, `nn.Conv1d`, `nn.Conv3d` and `nn.ConvTranspose2d`, and the shapes they produce;
# - simple and modern CNNs (batch norm, global average pooling), VGG-style blocks and a small U-Net;
# - how to look inside a trained CNN: learned filters, feature maps, mistakes, shapes and memory.
#
# **Prerequisites:** chapters 3 (`nn.Module`), 4 (the training loop) and 6 (MLPs, batch norm,
# dropout). We train with `helpers.train.fit`, the loop you wrote in chapter 4.
#
# **Expected time:** about 3 hours, half of it on the exercises. The notebook runs top to bottom
# in under a minute on a laptop CPU.
#
# The exercises are collected in section 7.5. Write your answer where a cell says
# `# YOUR CODE HERE`, then run the test cell below it: a failing test says what it expected, what
# it got, and gives a hint. More tests are hidden and run when your notebook is graded, so make
# your code correct, not just green.

# %% [markdown]
# ## Setup

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import helpers
from helpers import checks, data, plot
from helpers.train import accuracy, evaluate, fit

# One CPU thread: our models are tiny, and on a CPU extra threads cost more in coordination than
# they save (they can make training several times slower on a busy machine). A GPU is used if present.
device = helpers.setup(threads=1)
print(f"torch {torch.__version__}, device: {device}")

# %% [markdown]
# ### The data of this chapter
#
# Our image set is scikit-learn's 1,797 handwritten digits: 8×8 grey images, shipped with the
# library, so nothing is downloaded. They are small — MNIST's are 28×28 — which keeps every model
# in this chapter trainable in seconds on a CPU; everything you learn carries over to bigger
# images unchanged. We fix one random split, 1,437 images for training and 360 for testing, and
# use it everywhere.

# %%
X_digits, y_digits = data.digits()                  # (1797, 1, 8, 8) in [0, 1], (1797,) int64
order = torch.randperm(len(X_digits), generator=torch.Generator().manual_seed(0))
X_train, y_train = X_digits[order[:1437]], y_digits[order[:1437]]   # (1437, 1, 8, 8), (1437,)
X_test, y_test = X_digits[order[1437:]], y_digits[order[1437:]]     # (360, 1, 8, 8), (360,)


def make_loader(X, y, batch_size=64, shuffle=True, seed=0):
    """Mini-batches of (X, y); shuffled reproducibly when `shuffle` is True."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)


print(X_train.shape, X_test.shape, "classes:", y_train.unique().tolist())

# %% [markdown]
# ## 7.1 Why convolutions?
#
# Put a modest 224×224 colour photo into an MLP whose first layer has 1,000 units. Count the
# weights of that single layer (on the `meta` device, which records shapes without allocating
# memory):

# %%
fc_photo = nn.Linear(3 * 224 * 224, 1000, device="meta")
conv_photo = nn.Conv2d(3, 64, kernel_size=3, device="meta")
print(f"first Linear layer: {sum(p.numel() for p in fc_photo.parameters()):>12,} parameters")
print(f"first Conv2d layer: {sum(p.numel() for p in conv_photo.parameters()):>12,} parameters")

# %% [markdown]
# A hundred and fifty million weights for one layer — and the MLP has learned nothing about
# images yet: it treats pixel (10, 10) and pixel (10, 11) as unrelated inputs, and a cat learned in
# the top-left corner has to be learned again in the centre. Convolutions fix this with four ideas:
#
# 1. **Local connectivity** — each output looks at a small window of the input (its *receptive
#    field*).
# 2. **Parameter sharing** — the same small kernel is used at every position, so a 3×3 kernel
#    on 3 input channels has 27 weights whatever the image size.
# 3. **Translation equivariance** — shift the input and the feature map shifts with it; a pattern
#    learned at one position is recognised everywhere.
# 4. **Hierarchy** — stacking layers lets later layers combine edges into strokes and strokes
#    into digits.
#
# Idea 3 is a mathematical fact we can check. With circular padding (the image wraps around),
# convolving a shifted digit gives exactly the shifted feature map; a linear layer gives no such
# guarantee.

# %%
torch.manual_seed(0)
digit = X_train[:1]                                             # (1, 1, 8, 8)
shifted = torch.roll(digit, shifts=2, dims=-1)                  # move 2 pixels to the right
conv = nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular", bias=False)
mlp_layer = nn.Linear(64, 4 * 64, bias=False)
shift_maps = lambda z: torch.roll(z, shifts=2, dims=-1)
with torch.no_grad():
    conv_gap = (conv(shifted) - shift_maps(conv(digit))).abs().max().item()
    mlp_out = lambda z: mlp_layer(z.flatten(1)).reshape(1, 4, 8, 8)
    mlp_gap = (mlp_out(shifted) - shift_maps(mlp_out(digit))).abs().max().item()
print(f"conv: |f(shift x) - shift f(x)| max = {conv_gap:.2e}   (equivariant)")
print(f"MLP:  |f(shift x) - shift f(x)| max = {mlp_gap:.2e}   (no such structure)")

# %% [markdown]
# The picture below shows the same fact: the feature map of the shifted digit is the feature map
# of the original, shifted by the same two pixels. Notice the two columns that wrapped around from
# the right edge to the left one: circular padding treats the image as if it were drawn on a
# cylinder.

# %% tags=["autograde-skip"]
with torch.no_grad():
    panels = [digit[0, 0], conv(digit)[0, 0], shifted[0, 0], conv(shifted)[0, 0]]
titles = ["digit", "feature map of digit", "digit shifted 2 px right", "feature map of shifted"]
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, panel, title in zip(axes, panels, titles):
    ax.imshow(panel, cmap="gray" if "map" not in title else "RdBu_r")
    ax.set(title=title, xlabel="x (pixel)", ylabel="y (pixel)")
    ax.grid(False)
fig.suptitle("Convolution is translation equivariant: shift in, shift out")
fig.tight_layout()
plt.show()

# %% [markdown]
# **When to reach for a CNN:** images; time series, audio and text (1-D convolutions); volumes
# such as CT scans, videos or simulation grids (3-D); any data on a grid whose nearby values are
# related. **When not to:** tabular data (column 3 is not "next to" column 4), inputs so small that
# a layer sees everything anyway, or tasks that hinge on long-range interactions, where attention
# (chapter 11) is more direct.

# %% [markdown]
# ## 7.2 How convolutions work
#
# ### 7.2.1 The convolution operation
#
# A 2-D convolution slides a **kernel** $K$ of size $k \times k$ over the input $X$ and takes a
# dot product at every position:
#
# $$Y[i, j] = \sum_{m=0}^{k-1} \sum_{n=0}^{k-1} X[i + m,\; j + n]\; K[m, n].$$
#
# (Mathematicians call this *cross-correlation*; a true convolution flips the kernel first. Deep
# learning libraries skip the flip — for learned kernels it makes no difference.) With $C_\text{in}$
# input channels, $C_\text{out}$ kernels, a bias, stride $s$, zero padding $p$ and dilation $d$:
#
# $$Y[b, o, i, j] = \text{bias}[o] + \sum_{c=0}^{C_\text{in}-1} \sum_{m=0}^{k-1}\sum_{n=0}^{k-1}
#   X_\text{pad}[b,\, c,\; s\,i + d\,m,\; s\,j + d\,n]\; W[o, c, m, n],$$
#
# where $X_\text{pad}$ is the input with $p$ zeros added on every side. Each output channel $o$
# has its own kernel $W[o]$ of shape $(C_\text{in}, k, k)$ and sees *all* input channels.
#
# A worked example: a 5×5 ramp whose values grow by one per column, and the Sobel kernel, which
# compares the column on the left with the column on the right.

# %%
ramp = (torch.arange(5.0)[:, None] + torch.arange(5.0)[None, :] + 1).reshape(1, 1, 5, 5)
sobel_x = torch.tensor([[1.0, 0.0, -1.0],
                        [2.0, 0.0, -2.0],
                        [1.0, 0.0, -1.0]]).reshape(1, 1, 3, 3)    # (C_out, C_in, k, k)
by_library = F.conv2d(ramp, sobel_x)                               # (1, 1, 3, 3)
by_hand = torch.zeros(3, 3)
for i in range(3):
    for j in range(3):
        by_hand[i, j] = (ramp[0, 0, i:i + 3, j:j + 3] * sobel_x[0, 0]).sum()
print("input:\n", ramp[0, 0])
print("F.conv2d:\n", by_library[0, 0])
print("same as the double loop:", torch.equal(by_library[0, 0], by_hand))

# %% [markdown]
# Every output is $-8$: in each row the left column is 2 smaller than the right one, and the rows
# are weighted 1, 2, 1, so the sum is $-2 \cdot (1 + 2 + 1) = -8$. A constant slope gives a constant
# response — the kernel measures horizontal change, which is why it is called a vertical-edge
# detector. On a real image that turns into an edge map:

# %% tags=["autograde-skip"]
coins = torch.from_numpy(data.science_image("coins"))[None, None]   # (1, 1, 303, 384) in [0, 1]
sobel_xy = torch.cat([sobel_x, sobel_x.transpose(-1, -2)])         # (2, 1, 3, 3): along x, along y
grads = F.conv2d(coins, sobel_xy, padding=1)                       # (1, 2, 303, 384)
magnitude = grads.pow(2).sum(dim=1).sqrt()                         # (1, 303, 384)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
shown = [(coins[0, 0], "Greek coins (scikit-image)", "gray"),
         (grads[0, 0], "Sobel x: left minus right", "RdBu_r"),
         (magnitude[0], "edge strength |∇|", "magma")]
for ax, (img, title, cmap) in zip(axes, shown):
    im = ax.imshow(img, cmap=cmap)
    ax.set(title=title, xlabel="x (pixel)", ylabel="y (pixel)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the middle panel the left rim of each coin is negative (blue: dark background on the left of
# the kernel, bright coin on the right) and the right rim positive (red); the top and bottom rims,
# where brightness changes vertically, barely respond. The magnitude on the right combines both
# directions. A CNN *learns* kernels like these instead of being handed them.
#
# Try it yourself: pick a kernel and see what it does to the image, once or several times in a
# row. (The menu and the slider need a running notebook.)

# %% tags=["autograde-skip"]
import ipywidgets as widgets

KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x": sobel_x[0, 0].tolist(),
    "Sobel y": sobel_x[0, 0].T.tolist(),
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}


@widgets.interact(name=list(KERNELS), repeat=widgets.IntSlider(1, 1, 5, description="times"))
def explore_kernel(name="Sobel x", repeat=1):
    kernel = torch.tensor(KERNELS[name], dtype=torch.float32).reshape(1, 1, 3, 3)
    out = coins
    for _ in range(repeat):                     # applying a kernel again = a bigger kernel
        out = F.conv2d(out, kernel, padding=1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(out[0, 0], cmap="gray")
    ax.set(title=f"{name}, applied {repeat}×", xlabel="x (pixel)", ylabel="y (pixel)")
    ax.grid(False)
    plt.show()


# %% [markdown]
# The vocabulary, once more: the **kernel** (or filter) is the small weight tensor; the **stride**
# is how far it moves between outputs; **padding** adds zeros around the input; the **channels** are
# the input's depth (3 for colour); each kernel produces one **feature map**, so a layer with 64
# kernels outputs 64 channels. In Exercise 7.2 you will write the whole operation yourself and
# check it against `F.conv2d` for dozens of settings.

# %% [markdown]
# ### 7.2.2 Parameter sharing
#
# Compare the first layer of an MLP on a 28×28 image with a convolutional layer of 32 kernels:

# %%
fc = nn.Linear(28 * 28, 128)
conv = nn.Conv2d(1, 32, kernel_size=3)
n_fc = sum(p.numel() for p in fc.parameters())
n_conv = sum(p.numel() for p in conv.parameters())
out_hw = conv(torch.zeros(1, 1, 28, 28)).shape[-1]                  # 26
print(f"Linear(784, 128): {n_fc:,} parameters, {784 * 128:,} multiply-adds")
print(f"Conv2d(1, 32, 3): {n_conv:,} parameters, {32 * out_hw**2 * 9:,} multiply-adds")
print(f"{n_fc / n_conv:.0f}x fewer parameters")

# %% [markdown]
# 320 parameters ($3 \cdot 3 \cdot 1 \cdot 32$ weights $+ 32$ biases) against 100,480 — over 300
# times fewer. But look at the second column: the convolution does *more* arithmetic, because
# its 9 weights are reused at all 26×26 positions. Sharing saves parameters (and so data needed to
# fit them), not compute.
#
# ### 7.2.3 Receptive fields
#
# The **receptive field** of an output is the input region it depends on. One 3×3 layer sees
# 3×3 pixels; a second 3×3 layer sees 3×3 outputs of the first, which together cover 5×5 pixels.
# Layer $n$, with kernel $k_n$ and dilation $d_n$, placed after layers with strides
# $s_1, \dots, s_{n-1}$, grows the field to
#
# $$r_n = r_{n-1} + (k_n - 1)\, d_n \prod_{i=1}^{n-1} s_i, \qquad r_0 = 1.$$
#
# We can *measure* a receptive field with autograd: backpropagate from one output and see which
# input pixels get a non-zero gradient. (All weights are set to one and there is no activation,
# so no gradient is accidentally zero.)

# %%
def conv_stack(*specs):
    """Single-channel 3x3 convolutions with all-one weights; each spec is (stride, dilation)."""
    layers = []
    for stride, dilation in specs:
        layer = nn.Conv2d(1, 1, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        nn.init.ones_(layer.weight)
        layers.append(layer)
    return nn.Sequential(*layers)


def input_gradient(layers, size=25):
    """|d y[centre] / d x| over a (size, size) input: nonzero exactly on the receptive field."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    y = layers(x)                                                    # (1, 1, H', W')
    y[0, 0, y.shape[-2] // 2, y.shape[-1] // 2].backward()
    return x.grad[0, 0].abs()                                        # (size, size)


def extent(grad):
    """Width of the smallest square holding every nonzero entry of `grad`."""
    cols = grad.sum(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1)

# %%
rf_configs = {
    "one 3x3": [(1, 1)],
    "two 3x3": [(1, 1)] * 2,
    "three 3x3": [(1, 1)] * 3,
    "3x3 stride 2, then two 3x3": [(2, 1), (1, 1), (1, 1)],
}
rf_maps = {}
for name, specs in rf_configs.items():
    r, jump = 1, 1                                  # the formula: r grows by (k - 1) * d * jump
    for stride, dilation in specs:
        r, jump = r + 2 * dilation * jump, jump * stride
    rf_maps[name] = input_gradient(conv_stack(*specs))
    print(f"{name:28s} measured {extent(rf_maps[name]):2d}   formula {r:2d}")

# %% [markdown]
# The measured fields match the formula. The picture adds something the formula does not say:
# inside its receptive field an output does not weigh all pixels alike. The centre is reached by
# many paths through the stack, the rim by one, so the *effective* receptive field is a bump, much
# narrower than the theoretical square (Luo et al., 2016). And one stride-2 layer early makes every
# later layer see twice as far.

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, (name, grad) in zip(axes, rf_maps.items()):
    im = ax.imshow(grad, cmap="viridis")
    ax.set(title=f"{name}\nfield {extent(grad)}×{extent(grad)}", xlabel="x (pixel)",
           ylabel="y (pixel)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.75, label="paths to centre")
fig.suptitle("Receptive field of the centre output, measured by backpropagation")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Why it matters.** To classify a whole image, the last layer's receptive field must cover it.
# How deep must a network be to see all of a 32×32 image? The formula answers it:

# %%
def layers_to_cover(size, pool_every=None):
    """3x3 stride-1 convs needed for r >= size; optionally a 2x2 pool after every few convs."""
    r, jump, n_conv = 1, 1, 0
    while r < size:
        n_conv += 1
        r += 2 * jump
        if pool_every and n_conv % pool_every == 0:
            r, jump = r + jump, jump * 2            # a 2x2 pool: k = 2, stride 2
    return n_conv


for size in (32, 224):
    print(f"{size}x{size}: {layers_to_cover(size):3d} plain 3x3 convs, or "
          f"{layers_to_cover(size, pool_every=2):2d} with a 2x2 max pool after every two")

# %% [markdown]
# Stacking stride-1 3×3 layers grows the field linearly (16 layers for 32 pixels, 112 for 224);
# pooling or striding makes it grow exponentially. That is why every classic architecture
# downsamples regularly.
#
# ### 7.2.4 Output size
#
# Along each spatial axis, an input of size $n$ gives
#
# $$n_\text{out} = \left\lfloor \frac{n + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1 .$$
#
# With $d = 1$ this is the familiar $\lfloor (n + 2p - k)/s \rfloor + 1$; dilation makes the kernel
# span $d(k-1)+1$ pixels. The table below is measured with real layers, not computed from the
# formula — you will write the formula in Exercise 7.2.

# %%
print(" input kernel stride padding dilation -> output")
for n, k, s, p, d in [(28, 3, 1, 0, 1), (28, 3, 1, 1, 1), (28, 3, 2, 0, 1), (28, 5, 1, 2, 1),
                      (32, 3, 1, 0, 1), (32, 3, 2, 1, 1), (32, 3, 1, 2, 2)]:
    layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    n_out = layer(torch.zeros(1, 1, n, n)).shape[-1]
    print(f"{n:6d} {k:6d} {s:6d} {p:7d} {d:8d} -> {n_out:4d}")

# %% [markdown]
# Three padding strategies have names. **Valid** ($p=0$): the output shrinks by $k-1$. **Same**
# ($p = (k-1)/2$ for odd $k$, stride 1): the output keeps the input's size. **Full** ($p = k-1$):
# every partial overlap counts and the output grows by $k-1$. PyTorch accepts the first two by
# name, and refuses `"same"` with a stride, where no padding could keep the size:

# %%
x = torch.zeros(1, 1, 28, 28)
for padding in ("valid", "same", 4):
    print(f"padding={padding!r:8}:", tuple(nn.Conv2d(1, 1, 5, padding=padding)(x).shape))
try:
    nn.Conv2d(1, 1, 5, stride=2, padding="same")
except ValueError as err:
    print("stride 2 with 'same':", err)

# %% [markdown]
# ### 7.2.5 Pooling
#
# Pooling downsamples each channel on its own, with no weights: **max pooling** keeps the
# largest value of each window, **average pooling** the mean. It makes the next layers cheaper,
# grows the receptive field, and makes the output less sensitive to small shifts (a feature that
# moves by one pixel often stays inside the same window).

# %%
grid = torch.tensor([[1.0, 2, 3, 4],
                     [2, 4, 6, 8],
                     [3, 6, 9, 12],
                     [4, 8, 12, 16]]).reshape(1, 1, 4, 4)
print("max pool 2x2, stride 2:\n", F.max_pool2d(grid, 2)[0, 0])
print("average pool 2x2, stride 2:\n", F.avg_pool2d(grid, 2)[0, 0])

# %% [markdown]
# Check one by hand: the bottom-right window holds 9, 12, 12, 16, whose maximum is 16 and whose
# mean is $49/4 = 12.25$. On a digit, max pooling keeps the strokes bold, average pooling blurs
# them:

# %% tags=["autograde-skip"]
sample = X_test[:1]                                                # (1, 1, 8, 8)
pooled = [("digit, 8×8", sample), ("max pool → 4×4", F.max_pool2d(sample, 2)),
          ("average pool → 4×4", F.avg_pool2d(sample, 2))]
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
for ax, (title, img) in zip(axes, pooled):
    ax.imshow(img[0, 0], cmap="gray", vmin=0, vmax=1)
    ax.set(title=title, xlabel="x (pixel)", ylabel="y (pixel)")
    ax.grid(False)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Which to use.** Max pooling is the classic choice inside classifiers. Average pooling is
# smoother; *global* average pooling (one number per channel) is the standard last step before a
# classifier. Many modern networks skip pooling and downsample with **strided convolutions**
# instead, which learn how to downsample — `nn.Conv2d(C, C, 3, stride=2, padding=1)` halves
# $H$ and $W$ just like `nn.MaxPool2d(2)`.

# %% [markdown]
# ## 7.3 Building CNNs in PyTorch
#
# ### 7.3.1 `nn.Conv2d`, the core layer
#
# `nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
# bias=True)` takes a batch of shape $(B, C_\text{in}, H, W)$ — PyTorch is channels-first — and
# returns $(B, C_\text{out}, H', W')$. Its weight has shape $(C_\text{out}, C_\text{in}, k_H, k_W)$.

# %%
conv = nn.Conv2d(in_channels=3, out_channels=64, kernel_size=3, stride=1, padding=1)
x = torch.randn(8, 3, 32, 32)                       # (B, C, H, W): 8 colour images of 32x32
print("output:", tuple(conv(x).shape))              # (8, 64, 32, 32): same H, W thanks to padding
print("weight:", tuple(conv.weight.shape), " bias:", tuple(conv.bias.shape))
n_params = conv.weight.numel() + conv.bias.numel()
print(f"parameters: {n_params} = 3*3*3*64 + 64 = {3 * 3 * 3 * 64 + 64}")

# %% [markdown]
# `kernel_size`, `stride`, `padding` and `dilation` accept an int or an `(h, w)` pair; `padding`
# also accepts `"same"` and `"valid"`. `groups` splits the channels into independent groups;
# with `groups=in_channels` each channel gets its own kernel (a **depthwise** convolution).
# Followed by a 1×1 "pointwise" convolution, it replaces a full convolution at a fraction of the
# cost — the trick behind MobileNet:

# %%
full = nn.Conv2d(64, 128, 3, padding=1)
depthwise = nn.Conv2d(64, 64, 3, padding=1, groups=64)
pointwise = nn.Conv2d(64, 128, 1)
count = lambda *mods: sum(p.numel() for m in mods for p in m.parameters())
print(f"full 3x3 conv:          {count(full):,} parameters")
print(f"depthwise + pointwise:  {count(depthwise, pointwise):,} parameters")

# %% [markdown]
# ### 7.3.2 Shape practice
#
# Predict each shape before running the cell.

# %%
x = torch.randn(1, 3, 64, 64)                                       # one 64x64 colour image
layers = {
    "3x3, padding 1": nn.Conv2d(3, 32, 3, padding=1),
    "3x3, stride 2, padding 1": nn.Conv2d(3, 32, 3, stride=2, padding=1),
    "5x5, no padding": nn.Conv2d(3, 32, 5),
    "7x7, padding 3": nn.Conv2d(3, 32, 7, padding=3),
}
for name, layer in layers.items():
    print(f"{name:26s} -> {tuple(layer(x).shape)}")

# %% [markdown]
# Two mistakes account for most shape errors. **First: forgetting to flatten** before a
# `nn.Linear`. A linear layer acts on the *last* dimension only, so a 4-D feature map gives a
# confusing error (or, worse, silently the wrong thing when the sizes happen to fit).

# %%
features = torch.randn(4, 64, 2, 2)                                 # (B, C, H, W) after the convs
head = nn.Linear(64 * 2 * 2, 10)
try:
    head(features)
except RuntimeError as err:
    print("without flatten:", str(err).splitlines()[0])
print("with flatten:   ", tuple(head(features.flatten(start_dim=1)).shape))   # (B, C*H*W) -> (B, 10)

# %% [markdown]
# **Second: channels-last images.** NumPy, PIL and Matplotlib store images as $(H, W, C)$;
# PyTorch wants $(C, H, W)$. `permute` fixes the order (it is a view; add `.contiguous()` if a later
# operation needs contiguous memory).

# %%
images_hwc = torch.randn(8, 32, 32, 3)                              # (B, H, W, C): wrong order
conv = nn.Conv2d(3, 16, 3, padding=1)
try:
    conv(images_hwc)
except RuntimeError as err:
    print("channels last: ", str(err).splitlines()[0][:100], "...")
print("after permute: ", tuple(conv(images_hwc.permute(0, 3, 1, 2)).shape))

# %% [markdown]
# ### 7.3.3 A simple CNN
#
# The classic recipe: convolution → ReLU → pooling, a few times, then flatten and a small MLP.
# For our 8×8 digits, two poolings bring the maps down to 2×2.

# %%
class SimpleCNN(nn.Module):
    """Three conv layers and two linear layers for (B, 1, 8, 8) digits -> (B, 10) logits."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)        # (B, 32, 8, 8)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)       # (B, 64, 4, 4) after pool 1
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)      # (B, 128, 2, 2) after pool 2
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * 2 * 2, 256)
        self.fc2 = nn.Linear(256, num_classes)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x)).flatten(1)               # (B, 512)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


simple = SimpleCNN()
print(tuple(simple(torch.randn(4, 1, 8, 8)).shape), f"{count(simple):,} parameters")

# %% [markdown]
# Notice the hard-coded `128 * 2 * 2`: this network only accepts 8×8 inputs. The next design
# removes that limitation.
#
# ### 7.3.4 A modern CNN: batch norm and global average pooling
#
# Two changes mark the "modern" CNN. Each convolution is followed by **batch normalization**
# (chapter 6; chapter 9 in depth), which keeps activations well scaled and lets us train faster
# with larger learning rates — the convolution's bias becomes redundant, so we drop it. And the
# classifier starts with **global average pooling**, `nn.AdaptiveAvgPool2d(1)`, which averages
# each channel over whatever $H \times W$ remains, so the network accepts any input size.

# %%
def conv_bn_relu(c_in, c_out):
    """3x3 convolution (size-preserving) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ModernCNN(nn.Module):
    """Three blocks of two conv-BN-ReLU layers, pooling between blocks, global average pooling."""

    def __init__(self, widths=(32, 64, 128), num_classes=10):
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            conv_bn_relu(1, c1), conv_bn_relu(c1, c1), nn.MaxPool2d(2),     # H/2
            conv_bn_relu(c1, c2), conv_bn_relu(c2, c2), nn.MaxPool2d(2),    # H/4
            conv_bn_relu(c2, c3), conv_bn_relu(c3, c3))
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),                          # (B, c3)
            nn.Linear(c3, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

# %%
modern = ModernCNN()
for hw in (8, 16, 28):
    print(f"input {hw}x{hw} -> output {tuple(modern(torch.randn(2, 1, hw, hw)).shape)}")

# %% [markdown]
# One network, three input sizes. Now we train it — at half the widths, which is plenty for 8×8
# digits and keeps this cell to a few seconds on a CPU — with Adam and a cosine learning-rate
# schedule (chapter 4), which lowers the step size towards the end so that the last epoch is a
# good one rather than a lucky or unlucky one. **Quality target: at least 97 % accuracy on the 360
# test digits.**

# %% tags=["autograde-skip"]
torch.manual_seed(0)
demo_cnn = ModernCNN(widths=(16, 32, 64)).to(device)
optimizer = torch.optim.Adam(demo_cnn.parameters(), lr=3e-3)
demo_history = fit(demo_cnn, make_loader(X_train, y_train), nn.CrossEntropyLoss(), optimizer,
                   epochs=8, scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 8),
                   val_loader=make_loader(X_test, y_test, 360, shuffle=False), device=device,
                   metrics={"acc": accuracy})
demo_acc = demo_history["val_acc"][-1]
print(f"test accuracy {demo_acc:.1%} (target >= 97%)")
checks.check(demo_acc >= 0.97, "the demo CNN missed its quality target.", ">= 0.97", demo_acc)

# %% tags=["autograde-skip"]
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
plot.training_curves(demo_history, keys=["train_loss", "val_loss"], ax=ax_loss,
                     title="ModernCNN on digits: loss", ylabel="cross-entropy")
plot.training_curves(demo_history, keys=["val_acc"], ax=ax_acc,
                     title="ModernCNN on digits: test accuracy", ylabel="accuracy")
ax_acc.axhline(0.97, color="gray", ls="--", lw=1)
ax_acc.text(1, 0.972, "target 97 %", color="gray")
fig.tight_layout()
plt.show()

# %% [markdown]
# The test loss follows the training loss down and the accuracy crosses the dashed 97 % line
# within a few epochs. Early on the test loss can sit *below* the training loss: the training
# loss is averaged over an epoch while the weights were still improving, and dropout is active
# during training only.

# %% [markdown]
# ### 7.3.5 1-D convolutions for time series
#
# A 1-D convolution slides a kernel along time: input $(B, C, T)$, weight
# $(C_\text{out}, C_\text{in}, k)$. With hand-picked weights, two classic filters become
# convolutions — here on the yearly sunspot numbers, 1700–2008 (statsmodels): an 11-year moving
# average (one solar cycle) and a first difference.

# %%
years, spots = data.sunspots()                                      # (309,), (309,)
series = torch.tensor(spots, dtype=torch.float32).reshape(1, 1, -1)   # (B=1, C=1, T=309)
moving_average = torch.full((1, 1, 11), 1 / 11)                     # (C_out, C_in, k)
difference = torch.tensor([[[-1.0, 1.0]]])                          # x[t+1] - x[t]
smooth = F.conv1d(series, moving_average, padding=5)                # (1, 1, 309): "same"
change = F.conv1d(series, difference)                               # (1, 1, 308): "valid"
print(tuple(smooth.shape), tuple(change.shape))

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(10, 3.4))
ax.plot(years, spots, lw=0.8, color="0.6", label="yearly sunspot number")
ax.plot(years[5:-5], smooth[0, 0, 5:-5], lw=2, label="Conv1d, 11-year moving average")
ax.plot(years[1:], change[0, 0], lw=0.8, label="Conv1d, difference x[t+1] - x[t]")
ax.set(title="Two fixed 1-D convolutions on sunspot numbers (statsmodels)", xlabel="year",
       ylabel="sunspot number")
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# The moving average keeps the 11-year cycle and drops the year-to-year noise (we hide the five
# years at each end, where the zero padding drags it down); the difference is large where the
# cycle rises or falls fastest. A `Conv1d` layer learns such filters from data. Stacked with
# pooling and a global pool, it makes a sequence classifier:

# %%
class TimeSeriesCNN(nn.Module):
    """(B, C, T) sequences -> (B, num_classes) logits, for any length T."""

    def __init__(self, in_channels=1, num_classes=10, widths=(32, 64, 128)):
        super().__init__()
        c1, c2, c3 = widths
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, c1, kernel_size=7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(c2, c3, kernel_size=3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c3, num_classes))

    def forward(self, x):
        return self.net(x)


print(tuple(TimeSeriesCNN()(torch.randn(32, 1, 100)).shape))        # (B, num_classes)

# %% [markdown]
# Global pooling throws away *where* in the sequence a pattern occurred — right for "which kind
# of signal is this?", wrong for "what comes next?", where the most recent steps matter most.
# Keep that in mind for Exercise 7.3. 1-D convolutions suit sensor readings, audio waveforms,
# spectra, and characters or words of a text.
#
# ### 7.3.6 3-D convolutions for volumes
#
# `nn.Conv3d` works on $(B, C, D, H, W)$: CT and MRI scans, videos (time as depth), 3-D
# simulation fields. The kernel is a small cube, so a 3×3×3 kernel has 27 weights per channel
# pair instead of 9.

# %%
volumetric = nn.Sequential(
    nn.Conv3d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
    nn.Conv3d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
    nn.Conv3d(64, 128, 3, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(128, 2))
with torch.device("meta"):                                          # shapes only, no memory
    volumes = torch.empty(4, 1, 32, 32, 32)                         # (B, C, D, H, W)
    print("output:", tuple(volumetric.to("meta")(volumes).shape))
print(f"{count(volumetric):,} parameters")

# %% [markdown]
# Memory is the catch: activations grow with the *cube* of the side. Let us count the bytes of
# the first layer's output, which the backward pass must keep, for a batch of 4:

# %%
for side in (32, 64, 128):
    n_2d = 4 * 32 * side * side                                     # (B, C, H, W) after Conv2d
    n_3d = 4 * 32 * side * side * side                              # (B, C, D, H, W) after Conv3d
    print(f"side {side:3d}: 2-D {n_2d * 4 / 2**20:7.1f} MiB   3-D {n_3d * 4 / 2**20:9.1f} MiB")

# %% [markdown]
# A single 128³ volume with 32 channels already needs a gigabyte in that one layer — hence small
# batches, fewer channels, patches, mixed precision and gradient checkpointing (section 7.4.2) for
# 3-D work.
#
# ### 7.3.7 Transposed convolutions: learned upsampling
#
# Decoders, segmentation networks and generators need to go *up* in resolution.
# `nn.ConvTranspose2d` does that; its output size is
#
# $$n_\text{out} = (n - 1)\,s - 2p + d\,(k - 1) + p_\text{out} + 1,$$
#
# where `output_padding` $p_\text{out}$ picks one of the several input sizes a strided
# convolution maps to the same output size.

# %%
down = nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)
up = nn.ConvTranspose2d(128, 64, kernel_size=3, stride=2, padding=1, output_padding=1)
x = torch.randn(1, 64, 32, 32)
print("down:", tuple(down(x).shape), "  up again:", tuple(up(down(x)).shape))

# %% [markdown]
# Why "transposed"? A convolution is a linear map $x \mapsto Wx$; the transposed convolution
# applies $W^\top$ — exactly the map that backpropagation uses to send gradients from a
# convolution's output to its input. We can verify $\langle Wx, y\rangle = \langle x, W^\top y\rangle$:

# %%
torch.manual_seed(0)
weight = torch.randn(4, 3, 3, 3, dtype=torch.float64)               # (C_out, C_in, k, k)
x = torch.randn(2, 3, 9, 9, dtype=torch.float64)                    # conv input
y = torch.randn(2, 4, 5, 5, dtype=torch.float64)                    # shaped like conv's output
lhs = (F.conv2d(x, weight, stride=2, padding=1) * y).sum()
rhs = (x * F.conv_transpose2d(y, weight, stride=2, padding=1)).sum()
print(f"<conv(x), y> = {lhs.item():.10f}\n<x, convT(y)> = {rhs.item():.10f}")

# %% [markdown]
# Mirroring an encoder needs care with odd sizes. An encoder 28 → 14 → 7 → 4 (a stride-2 3×3
# convolution rounds 7/2 up) followed by three identical upsampling layers does *not* come back
# to 28:

# %%
encoder = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.Conv2d(32, 64, 3, 2, 1),
                        nn.Conv2d(64, 128, 3, 2, 1))
up_layer = lambda c_in, c_out, out_pad: nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, out_pad)
naive = nn.Sequential(up_layer(128, 64, 1), up_layer(64, 32, 1), up_layer(32, 1, 1))
fixed = nn.Sequential(up_layer(128, 64, 0), up_layer(64, 32, 1), up_layer(32, 1, 1))
z = encoder(torch.randn(4, 1, 28, 28))
print("code:", tuple(z.shape), " naive decoder:", tuple(naive(z).shape),
      " fixed:", tuple(fixed(z).shape))

# %% [markdown]
# The naive decoder goes 4 → 8 → 16 → 32; using `output_padding=0` in the first layer gives
# $(4-1)\cdot 2 - 2 + 3 = 7$ and the sizes line up again. Print the shapes of every autoencoder you
# build.
#
# **Checkerboard artifacts.** When the kernel size is not a multiple of the stride, output pixels
# receive contributions from different numbers of input pixels. Feed a constant image through a
# transposed convolution whose weights are all one, and the overlap pattern appears directly
# (Odena, Dumoulin & Olah, 2016). The usual fix — upsample, then convolve — spreads every input
# evenly:

# %% tags=["autograde-skip"]
flat_image = torch.ones(1, 1, 6, 6)
transposed = nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2, bias=False)
resize_conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                            nn.Conv2d(1, 1, kernel_size=3, padding=1, bias=False))
for layer in (transposed, resize_conv[1]):
    nn.init.ones_(layer.weight)
with torch.no_grad():
    outputs = {"ConvTranspose2d(k=3, s=2)": transposed(flat_image)[0, 0],
               "Upsample ×2 + Conv2d(k=3)": resize_conv(flat_image)[0, 0]}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, (title, img) in zip(axes, outputs.items()):
    im = ax.imshow(img, cmap="magma", vmin=0)
    ax.set(title=f"{title}\non a constant input", xlabel="x (pixel)", ylabel="y (pixel)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.8, label="output value")
fig.tight_layout()
plt.show()

# %% [markdown]
# On the left, a constant input becomes a grid of 1s, 2s and 4s: some output pixels collect one
# kernel tap, others four. A trained network has to fight that pattern. On the right, the interior
# is uniform (9 everywhere); only the zero-padded border differs.
#
# ### 7.3.8 Dilated convolutions
#
# A dilated (atrous) convolution spreads its taps $d$ pixels apart: a 3×3 kernel with $d=2$
# spans $k + (k-1)(d-1) = 5$ pixels with the same 9 weights and, with padding $d$, keeps the
# resolution. Stacking dilations $1, 2, 4$ grows the receptive field exponentially. Measured with
# the same gradient trick as before:

# %%
dilation_configs = {"dilation 1, 1, 1": [(1, 1)] * 3, "dilation 1, 2, 4": [(1, 1), (1, 2), (1, 4)],
                    "dilation 2, 2, 2": [(1, 2)] * 3}
dilation_maps = {name: input_gradient(conv_stack(*specs), size=19)
                 for name, specs in dilation_configs.items()}
for name, grad in dilation_maps.items():
    print(f"{name}: 27 weights, receptive field {extent(grad)}x{extent(grad)}, "
          f"{int((grad > 0).sum())} input pixels actually used")

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, (name, grad) in zip(axes, dilation_maps.items()):
    im = ax.imshow(grad > 0, cmap="Greys", vmin=0, vmax=1)
    ax.set(title=f"{name}: field {extent(grad)}×{extent(grad)}", xlabel="x (pixel)",
           ylabel="y (pixel)")
    ax.grid(False)
fig.suptitle("Input pixels that reach the centre output (black) — same parameters, different fields")
fig.tight_layout()
plt.show()

# %% [markdown]
# Dilations 1, 2, 4 cover a 15×15 field without holes. Dilations 2, 2, 2 cover 13×13 but only
# every other pixel: the **gridding** problem — the network is blind to odd offsets. Mix dilation
# rates (or start at 1) when you stack them. Dilated convolutions shine in segmentation and
# other dense predictions (WaveNet used them for audio), where you need context without
# shrinking the map.
#
# ### 7.3.9 Classic architectures
#
# A few networks set the patterns everybody reuses: LeNet-5 (1998) — conv, pool, conv, pool,
# dense; AlexNet (2012) — the same on GPUs with ReLU and dropout; VGG (2014) — only 3×3 convs in
# blocks, channels doubling after each pool; GoogLeNet (2014) — parallel branches and global
# average pooling; ResNet (2015) — residual connections (chapter 8); MobileNetV2 (2018) —
# depthwise separable convolutions. Their sizes and ImageNet top-1 accuracies, read from the
# torchvision package (the models are built on the `meta` device; nothing is downloaded):

# %% tags=["autograde-skip"]
from torchvision import models as tv_models

arch_table = {}
for name, weights in [("alexnet", "AlexNet_Weights"), ("vgg16", "VGG16_Weights"),
                      ("googlenet", "GoogLeNet_Weights"), ("resnet18", "ResNet18_Weights"),
                      ("resnet50", "ResNet50_Weights"), ("mobilenet_v2", "MobileNet_V2_Weights")]:
    extra = {"init_weights": True, "aux_logits": False} if name == "googlenet" else {}
    with torch.device("meta"):
        net = getattr(tv_models, name)(weights=None, **extra)
    top1 = getattr(tv_models, weights).IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    arch_table[name] = (count(net), top1)
    print(f"{name:13s} {count(net) / 1e6:6.1f} M parameters   top-1 {top1:.1f} %")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots(figsize=(7, 4))
for name, (n, top1) in arch_table.items():
    ax.scatter(n / 1e6, top1, s=40)
    ax.annotate(name, (n / 1e6, top1), textcoords="offset points", xytext=(6, -4))
ax.set_xscale("log")
ax.set(title="Parameters are not accuracy (torchvision, IMAGENET1K_V1 weights)",
       xlabel="parameters (millions, log scale)", ylabel="ImageNet top-1 accuracy (%)")
fig.tight_layout()
plt.show()

# %% [markdown]
# VGG-16 is the largest network here and not the best: ResNet-50 beats it with about a fifth of
# the parameters, and MobileNetV2 matches it with forty times fewer. Architecture matters more
# than size. The design patterns worth remembering:
#
# 1. **Double the channels when you halve the resolution** (64 → 128 → 256 …), so each layer costs
#    about the same.
# 2. **Several convolutions per block** before downsampling: richer features per scale.
# 3. **Small kernels.** Two 3×3 layers see 5×5 with $18C^2$ weights instead of $25C^2$, plus an
#    extra nonlinearity.
# 4. **Batch norm after each convolution** for stable, fast training.
# 5. **Global pooling** before the classifier: fewer parameters, any input size.
#
# You will build a VGG-style network from blocks in Exercise 7.4.

# %% [markdown]
# ## 7.4 Debugging and understanding CNNs
#
# ### 7.4.1 Looking inside: filters and feature maps
#
# The first layer's kernels of the trained `demo_cnn` are 3×3 weight arrays, one per output
# channel. Red is positive, blue negative.

# %% tags=["autograde-skip"]
filters = demo_cnn.features[0][0].weight.detach().cpu()[:, 0]       # (16, 3, 3)
limit = filters.abs().max().item()
fig, axes = plt.subplots(2, 8, figsize=(10, 3.6))
for i, ax in enumerate(axes.flat):
    ax.imshow(filters[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"filter {i}", fontsize=9)
    ax.axis("off")
fig.suptitle("First-layer filters of the trained ModernCNN (3×3 weights; red > 0, blue < 0)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Look for structure, but expect little: with 9 weights each and 8×8 images to learn from, the
# filters are rough. Several have a positive side and a negative side — edge detectors at different
# orientations, like the Sobel kernel — and others are mostly of one sign and respond to ink or to
# background. In networks trained on large photographs, the first layer shows crisp oriented
# edges and colour blobs.
#
# Feature maps show what a layer *does* to one input. A **forward hook** is a function PyTorch calls
# with a module's output after every forward pass — the standard way to look inside a network
# without editing its `forward`.

# %% tags=["autograde-skip"]
captured = {}


def save_output(name):
    def hook(module, inputs, output):
        captured[name] = output.detach().cpu()
    return hook


blocks = {"block 1 (8×8)": demo_cnn.features[1], "block 2 (4×4)": demo_cnn.features[4]}
handles = [module.register_forward_hook(save_output(name)) for name, module in blocks.items()]
demo_cnn.eval()
with torch.no_grad():
    demo_cnn(X_test[:1].to(device))
for handle in handles:
    handle.remove()                           # forgetting this leaves the hook on for good
print({name: tuple(out.shape) for name, out in captured.items()})

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(2, 9, figsize=(12, 3.2))
for row, (name, maps) in enumerate(captured.items()):
    axes[row, 0].imshow(X_test[0, 0], cmap="gray")
    axes[row, 0].set_title("input", fontsize=9)
    for j, ax in enumerate(axes[row, 1:]):
        ax.imshow(maps[0, j], cmap="viridis")
        ax.set_title(f"block {name.split()[1]}, ch {j}", fontsize=8)
    for ax in axes[row]:
        ax.axis("off")
fig.suptitle(f"Feature maps (after ReLU) for one test digit, label {y_test[0].item()}")
fig.tight_layout()
plt.show()

# %% [markdown]
# In the first row, each channel responds to a different part of the digit — some along the
# strokes, some along one side of them, some to the background — and a few stay nearly dark for
# this digit. After the second block the maps are 4×4 and no longer look like the digit: each
# value says *whether* a pattern is present in a 2×2 patch of the image, which is what the
# classifier needs.
#
# ### 7.4.2 Shape and memory problems
#
# **Trace the shapes.** When a model raises a shape error, print the output shape of every leaf
# module. Hooks again do it without touching the model — unlike looping over `named_children()`,
# this also works for models whose `forward` is not a straight chain.

# %%
def trace_shapes(model, x):
    """Print the output shape of every leaf module during one forward pass of `x`."""
    def report(name):
        return lambda module, inputs, output: print(f"  {name:14s} -> {tuple(output.shape)}")
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(report(n)) for n, m in leaves]
    try:
        print(f"  {'input':14s}    {tuple(x.shape)}")
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()


trace_shapes(SimpleCNN(), torch.randn(1, 1, 8, 8))

# %% [markdown]
# The trace follows the order modules are *called*: `pool` appears twice because `forward` uses
# it twice, and `dropout` keeps the shape.
#
# **Out of memory with 3-D convolutions.** Backpropagation needs the activations of the forward
# pass. *Gradient checkpointing* stores only a segment's input and recomputes the rest during the
# backward pass — memory for compute. We can measure what autograd saves with a hook on saved
# tensors:

# %%
from torch.utils.checkpoint import checkpoint

volume_net = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(),
                           nn.Conv3d(8, 8, 3, padding=1), nn.ReLU(),
                           nn.Conv3d(8, 8, 3, padding=1), nn.ReLU())
volume = torch.randn(2, 1, 32, 32, 32)                              # (B, C, D, H, W)


def saved_mib(forward):
    """MiB of tensors autograd saves for the backward pass of forward(volume)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(volume)
    out.sum().backward()                                            # still works
    return total / 2**20


print(f"plain:        {saved_mib(volume_net):6.2f} MiB saved for backward")
print(f"checkpointed: {saved_mib(lambda v: checkpoint(volume_net, v, use_reentrant=False)):6.2f}"
      " MiB saved for backward")

# %% [markdown]
# Other ways to save memory: smaller batches, fewer channels, mixed precision (half the bytes per
# activation, chapter 14) and cutting big volumes into patches.
#
# **A debugging checklist for CNNs**
#
# 1. Print shapes at every layer (`trace_shapes`) — most bugs are shape bugs.
# 2. Check the input: $(B, C, H, W)$ order, dtype `float32`, values scaled (here $[0, 1]$).
# 3. Overfit one small batch first: a correct model and loop reach near-zero loss on 64 examples in
#    a few dozen steps. If not, the bug is in the code, not in the data or the capacity.
# 4. Call `model.eval()` before evaluating (batch norm and dropout change behaviour) and
#    `model.train()` before training again.
# 5. Look at feature maps and at the mistakes the model makes (Exercise 7.1).
# 6. Start small — few layers, few channels — and scale up once it works.
#
# Item 3, measured:

# %% tags=["autograde-skip"]
torch.manual_seed(0)
tiny_model = ModernCNN(widths=(8, 16, 32))
tiny_batch, tiny_labels = X_train[:64], y_train[:64]
optimizer = torch.optim.Adam(tiny_model.parameters(), lr=1e-2)
for step in range(1, 61):
    optimizer.zero_grad()
    loss = F.cross_entropy(tiny_model(tiny_batch), tiny_labels)
    loss.backward()
    optimizer.step()
    if step in (1, 20, 40, 60):
        print(f"step {step:2d}: loss on the batch {loss.item():.4f}")

# %% [markdown]
# ## 7.5 Exercises
#
# Six exercises, from a first CNN to a 3-D classifier. Each one says what the tests check; run
# the test cell after your solution for immediate feedback. Hidden tests check more cases when
# your notebook is graded. Training cells are seeded and take a few seconds each.

# %% [markdown]
# ### Exercise 7.1 — Your first CNN on digits (★★, 4 points)
#
# Build and train a CNN for the 8×8 digits.
#
# **(a) The model.** Write `MyCNN`: two convolutional layers with **32 and 64 filters of size
# 3×3** (`nn.Conv2d(1, 32, 3, ...)`, `nn.Conv2d(32, 64, 3, ...)`), ReLU, **max pooling with
# `nn.MaxPool2d` modules**, then exactly **two `nn.Linear` layers**, the last with 10 outputs.
# Input $(B, 1, 8, 8)$ float32, output $(B, 10)$ logits. Dropout is allowed; batch norm is not
# needed.
#
# **(b) Training.** Train `model_71` on `X_train, y_train` with `fit` (cross-entropy, Adam), and
# store its history in `history_71`.
#
# **Tests.** (a) the layer types and sizes above, the output shape for several batch sizes, no
# change to the input; (b) `model_71`'s accuracy on the 360 test digits, **which must be at least
# 97 %** (the reference solution reaches about 99 % in 12 epochs). The test computes the accuracy
# itself, in `eval()` mode.
#
# **Hints.** With padding 1 the convolutions keep 8×8; each `MaxPool2d(2)` halves it, so after
# two of them the feature map is $(B, 64, 2, 2)$ and the first linear layer needs
# $64 \cdot 2 \cdot 2 = 256$ inputs. Flatten with `x.flatten(1)` — never `x.view(-1, …)` with a
# guessed size, which silently mixes examples. Adam with `lr=3e-3` and 12 epochs is plenty.

# %% nbgrader={"grade": false, "grade_id": "ex07_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyCNN(nn.Module):
    """Two 3x3 conv layers (32, 64 filters) with ReLU and max pooling, then two linear layers.

    Input (B, 1, 8, 8) float32 -> output (B, 10) logits.
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)         # (B, 32, 8, 8)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)        # (B, 64, 4, 4)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 2 * 2, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout = nn.Dropout(0.25)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = self.pool(F.relu(self.conv1(x)))                # (B, 32, 4, 4)
        x = self.pool(F.relu(self.conv2(x)))                # (B, 64, 2, 2)
        x = self.dropout(F.relu(self.fc1(x.flatten(1))))    # (B, 128)
        return self.fc2(x)                                  # (B, 10)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_1_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(1)
_net = MyCNN()
_convs = [m for m in _net.modules() if isinstance(m, nn.Conv2d)]
_linears = [m for m in _net.modules() if isinstance(m, nn.Linear)]
checks.check_equal(len(_convs), 2, "number of nn.Conv2d layers in MyCNN")
checks.check_equal([(c.in_channels, c.out_channels, c.kernel_size) for c in _convs],
                   [(1, 32, (3, 3)), (32, 64, (3, 3))], "the conv layers (in, out, kernel)",
                   hint="nn.Conv2d(1, 32, 3, padding=1) then nn.Conv2d(32, 64, 3, padding=1)")
checks.check_equal(len(_linears), 2, "number of nn.Linear layers in MyCNN")
checks.check_equal(_linears[-1].out_features, 10, "out_features of the last linear layer")
checks.check(any(isinstance(m, nn.MaxPool2d) for m in _net.modules()),
             "MyCNN has no nn.MaxPool2d module.", "at least one nn.MaxPool2d", "none",
             hint="create self.pool = nn.MaxPool2d(2) in __init__ and use it in forward")
checks.check_module(_net, "MyCNN()", example_input=torch.rand(5, 1, 8, 8), output_shape=(5, 10),
                    hint="after two 2x2 poolings the maps are (B, 64, 2, 2): flatten with x.flatten(1)")
### BEGIN HIDDEN TESTS
_net.eval()
for _b in (1, 3, 17):
    _x = torch.rand(_b, 1, 8, 8)
    _x_copy = _x.clone()
    with torch.no_grad():
        _out = _net(_x)
    checks.check_shape(_out, (_b, 10), f"MyCNN output for a batch of {_b}",
                       hint="flatten with x.flatten(1) so that the batch size is kept")
    checks.check_equal(_x, _x_copy, "the input after MyCNN's forward",
                       hint="do not modify x in place")
    checks.check(torch.isfinite(_out).all(), "MyCNN produced NaN or inf.", "finite logits", _out)
# examples must not be mixed: each output row depends only on its own input row
_x = torch.rand(4, 1, 8, 8)
with torch.no_grad():
    _alone = torch.cat([_net(_x[i:i + 1]) for i in range(4)])
    checks.check_close(_net(_x), _alone, "MyCNN on a batch vs one example at a time",
                       rtol=1e-4, atol=1e-5, hint="a view(-1, ...) with a wrong size mixes examples")
checks.check_equal(sum(p.numel() for c in _convs for p in c.parameters()), 320 + 18496,
                   "parameters of the two conv layers", hint="3*3*1*32 + 32 and 3*3*32*64 + 64")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex07_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
torch.manual_seed(0)
model_71 = MyCNN().to(device)
### BEGIN SOLUTION
history_71 = fit(model_71, make_loader(X_train, y_train), nn.CrossEntropyLoss(),
                 torch.optim.Adam(model_71.parameters(), lr=3e-3), epochs=12, device=device)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_1_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(model_71, MyCNN, "model_71")
model_71.eval()
with torch.no_grad():
    _pred = model_71(X_test.to(device)).argmax(dim=1).cpu()
_acc = (_pred == y_test).float().mean().item()
checks.check(_acc >= 0.97, "model_71 is not accurate enough on the test digits.", ">= 0.97",
             round(_acc, 4), hint="train longer (12 epochs), check the learning rate (3e-3 with "
             "Adam), and that images and labels are paired")
### BEGIN HIDDEN TESTS
checks.check_type(history_71, dict, "history_71", hint="history_71 = fit(...)")
checks.check("train_loss" in history_71 and len(history_71["train_loss"]) >= 1,
             "history_71 has no training losses.", "a fit() history", sorted(history_71))
with torch.no_grad():
    _train_pred = model_71(X_train.to(device)).argmax(dim=1).cpu()
_train_acc = (_train_pred == y_train).float().mean().item()
checks.check(_train_acc >= 0.97, "model_71 does not fit the training digits.", ">= 0.97",
             round(_train_acc, 4))
# every class is recognised, not only the frequent ones
for _c in range(10):
    _mask = y_test == _c
    _class_acc = (_pred[_mask] == _c).float().mean().item()
    checks.check(_class_acc >= 0.85, f"model_71 recognises too few test digits of class {_c}.",
                 ">= 0.85", round(_class_acc, 3))
### END HIDDEN TESTS

# %% [markdown]
# The test set has 360 digits, so each one is worth 0.28 %. Which ones does your model get wrong?
# Looking at mistakes is the quickest way to learn what a model has not understood.

# %% tags=["autograde-skip"]
model_71.eval()
with torch.no_grad():
    probs_71 = model_71(X_test.to(device)).softmax(dim=1).cpu()     # (360, 10)
wrong = (probs_71.argmax(dim=1) != y_test).nonzero().flatten()
print(f"{len(wrong)} of {len(y_test)} test digits misclassified "
      f"({1 - len(wrong) / len(y_test):.1%} accuracy)")
if len(wrong):
    titles = [f"pred {probs_71[i].argmax().item()} ({probs_71[i].max():.0%})\ntrue {y_test[i].item()}"
              for i in wrong[:16]]
    plot.image_grid(X_test[wrong[:16]], titles=titles, ncols=8,
                    title="Misclassified test digits: prediction (confidence) and true label")
    plt.show()

# %% [markdown]
# Most mistakes are digits that a person would hesitate over too, often with low confidence.
# A confident mistake on a clear digit would be worth a second look (a wrong label, or a gap in
# the training data).

# %% [markdown]
# ### Exercise 7.2 — Shapes, and a convolution from scratch (★★★, 5 points)
#
# **(a) Output sizes.** Write `conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1)`
# returning the output length (an `int`) of a convolution or pooling along one axis of length
# `n` — the formula of section 7.2.4. Raise a `ValueError` when the dilated kernel does not fit
# in the padded input (PyTorch refuses those layers). Then, **by hand**, fill in `answers_72`:
# the output height for a 32×32 input of
#
# 1. `"conv3_s1_p1"`: Conv 3×3, stride 1, padding 1;
# 2. `"conv5_s2_p2"`: Conv 5×5, stride 2, padding 2;
# 3. `"conv3_p0_pool2"`: Conv 3×3, stride 1, padding 0, followed by MaxPool 2×2;
# 4. `"three_conv3_p1"`: three consecutive Conv 3×3, stride 1, padding 1;
# 5. `"conv3_p1_d2"`: Conv 3×3, stride 1, padding 1, dilation 2.
#
# **(b) Convolution from scratch.** Write `conv2d_scratch(x, weight, bias=None, stride=1,
# padding=0, dilation=1)` that does what `F.conv2d` does, for `x` of shape
# $(B, C_\text{in}, H, W)$, `weight` $(C_\text{out}, C_\text{in}, k_H, k_W)$, `bias`
# $(C_\text{out},)$ or `None`, and int `stride`, `padding`, `dilation` used on both axes. Return
# $(B, C_\text{out}, H', W')$ in the input's dtype. Do **not** call `F.conv2d`, `nn.Conv2d` or
# `torch.conv2d`; `F.pad` and `F.unfold` are fine, and so is `torch.einsum`.
#
# **Tests.** (a) your answers and your function are compared with the shapes real `nn.Conv2d`,
# `nn.Conv1d` and `nn.MaxPool2d` layers produce, over a grid of sizes, kernels, strides,
# paddings and dilations, including the impossible ones. (b) the 5×5 ramp of section 7.2.1 must
# give $-8$ everywhere; then `F.conv2d` is the reference over dozens of settings (non-square
# kernels, stride, padding, dilation, with and without bias, float64), and gradients must match.
#
# **Hints.**
# - (a) Use integer floor division `//`, so the result is an `int`. The kernel spans
#   $d(k-1)+1$ pixels.
# - (b) Pad once with `F.pad(x, (padding,) * 4)`. Then loop over the $k_H \cdot k_W$ kernel
#   offsets (not over output pixels): for offset $(m, n)$, the input pixels that meet weight
#   $W[:, :, m, n]$ form the strided slice `xp[:, :, m*d : m*d + s*(H'-1) + 1 : s, n*d : ...]` of
#   shape $(B, C_\text{in}, H', W')$. Contract it with `weight[:, :, m, n]` — shape
#   $(C_\text{out}, C_\text{in})$ — using `torch.einsum("bchw,oc->bohw", ...)`, and add up.

# %% nbgrader={"grade": false, "grade_id": "ex07_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """Output length along one axis of a convolution (or pooling) of an input of length n.

    Returns an int; raises ValueError if the dilated kernel is larger than the padded input.
    """
    ### BEGIN SOLUTION
    span = dilation * (kernel_size - 1) + 1                 # pixels covered by the kernel
    if n + 2 * padding < span:
        raise ValueError(f"a kernel spanning {span} pixels does not fit in an input of "
                         f"{n} pixels padded by {padding} on each side")
    return (n + 2 * padding - span) // stride + 1
    ### END SOLUTION


answers_72 = {
    "conv3_s1_p1": None,
    "conv5_s2_p2": None,
    "conv3_p0_pool2": None,
    "three_conv3_p1": None,
    "conv3_p1_d2": None,
}
### BEGIN SOLUTION
answers_72 = {
    "conv3_s1_p1": 32,          # (32 + 2 - 3) // 1 + 1
    "conv5_s2_p2": 16,          # (32 + 4 - 5) // 2 + 1 = 15 + 1
    "conv3_p0_pool2": 15,       # 30, then (30 - 2) // 2 + 1
    "three_conv3_p1": 32,       # "same" three times
    "conv3_p1_d2": 30,          # kernel spans 5: (32 + 2 - 5) // 1 + 1
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_x32 = torch.zeros(1, 1, 32, 32)
_real = {
    "conv3_s1_p1": nn.Conv2d(1, 1, 3, stride=1, padding=1),
    "conv5_s2_p2": nn.Conv2d(1, 1, 5, stride=2, padding=2),
    "conv3_p0_pool2": nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2)),
    "three_conv3_p1": nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)]),
    "conv3_p1_d2": nn.Conv2d(1, 1, 3, padding=1, dilation=2),
}
checks.check_type(answers_72, dict, "answers_72")
for _key, _layer in _real.items():
    with torch.no_grad():
        _want = _layer(_x32).shape[-1]
    checks.check_equal(answers_72.get(_key), _want, f'answers_72["{_key}"]',
                       hint="n_out = (n + 2p - d(k-1) - 1) // s + 1; apply layers one after another")
for _n, _k, _s, _p, _d in [(28, 3, 1, 0, 1), (28, 3, 2, 0, 1), (64, 5, 1, 2, 1), (32, 3, 2, 1, 2)]:
    with torch.no_grad():
        _want = nn.Conv2d(1, 1, _k, stride=_s, padding=_p, dilation=_d)(
            torch.zeros(1, 1, _n, _n)).shape[-1]
    _got = conv_output_size(_n, _k, stride=_s, padding=_p, dilation=_d)
    checks.check_type(_got, int, f"conv_output_size({_n}, {_k}, {_s}, {_p}, {_d})",
                      hint="use floor division // so the result stays an int")
    checks.check_equal(_got, _want, f"conv_output_size({_n}, {_k}, stride={_s}, padding={_p}, "
                       f"dilation={_d})", hint="the kernel spans d*(k-1)+1 pixels")
### BEGIN HIDDEN TESTS
# the whole grid against F.conv1d, impossible settings included
for _n in range(1, 12):
    for _k in range(1, 6):
        for _s in (1, 2, 3):
            for _p in (0, 1, 2):
                for _d in (1, 2, 3):
                    _what = f"conv_output_size({_n}, {_k}, stride={_s}, padding={_p}, dilation={_d})"
                    try:
                        _want = F.conv1d(torch.zeros(1, 1, _n), torch.zeros(1, 1, _k), stride=_s,
                                         padding=_p, dilation=_d).shape[-1]
                    except RuntimeError:
                        checks.check_raises(
                            lambda: conv_output_size(_n, _k, stride=_s, padding=_p, dilation=_d),
                            ValueError, _what,
                            hint="raise ValueError when n + 2*padding < dilation*(kernel_size-1)+1")
                        continue
                    checks.check_equal(conv_output_size(_n, _k, stride=_s, padding=_p,
                                                        dilation=_d), _want, _what)
# pooling follows the same formula
for _n, _k, _s, _p in [(8, 2, 2, 0), (7, 2, 2, 0), (9, 3, 2, 1), (5, 3, 1, 1), (10, 4, 3, 2)]:
    _want = nn.MaxPool2d(_k, stride=_s, padding=_p)(torch.zeros(1, 1, _n, _n)).shape[-1]
    checks.check_equal(conv_output_size(_n, _k, stride=_s, padding=_p), _want,
                       f"conv_output_size for MaxPool2d({_k}, stride={_s}, padding={_p}) on {_n}")
# defaults are stride 1, padding 0, dilation 1
checks.check_equal(conv_output_size(10, 3), 8, "conv_output_size(10, 3)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex07_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d_scratch(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D convolution (cross-correlation) like F.conv2d, without calling F.conv2d.

    x: (B, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None.
    stride, padding, dilation: ints used on both axes. Returns (B, C_out, H', W').
    """
    ### BEGIN SOLUTION
    _, _, H, W = x.shape
    _, _, kH, kW = weight.shape
    H_out = conv_output_size(H, kH, stride, padding, dilation)
    W_out = conv_output_size(W, kW, stride, padding, dilation)
    xp = F.pad(x, (padding, padding, padding, padding))              # (B, C_in, H+2p, W+2p)
    out = 0
    for m in range(kH):
        for n in range(kW):
            top, left = m * dilation, n * dilation
            patch = xp[:, :, top:top + stride * (H_out - 1) + 1:stride,
                       left:left + stride * (W_out - 1) + 1:stride]   # (B, C_in, H', W')
            out = out + torch.einsum("bchw,oc->bohw", patch, weight[:, :, m, n])
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_2_test_b", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from unittest import mock

_ramp = (torch.arange(5.0)[:, None] + torch.arange(5.0)[None, :] + 1).reshape(1, 1, 5, 5)
_sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).reshape(1, 1, 3, 3)
checks.check_close(conv2d_scratch(_ramp, _sobel), torch.full((1, 1, 3, 3), -8.0),
                   "conv2d_scratch(ramp, sobel_x)",
                   hint="no kernel flip: out[i, j] = sum of x[i+m, j+n] * w[m, n]")
_g = torch.Generator().manual_seed(0)
_x = torch.randn(2, 3, 9, 10, generator=_g)
_w = torch.randn(4, 3, 3, 3, generator=_g)
_b = torch.randn(4, generator=_g)
checks.check_close(conv2d_scratch(_x, _w, _b, stride=2, padding=1),
                   F.conv2d(_x, _w, _b, stride=2, padding=1),
                   "conv2d_scratch(x, w, b, stride=2, padding=1)", rtol=1e-4, atol=1e-5,
                   hint="pad first, then take strided slices; add the bias per output channel")
### BEGIN HIDDEN TESTS
_x64 = torch.randn(2, 3, 9, 10, generator=_g, dtype=torch.float64)
for _kshape in [(3, 3), (2, 4), (1, 1), (5, 3)]:
    _w64 = torch.randn(4, 3, *_kshape, generator=_g, dtype=torch.float64)
    _b64 = torch.randn(4, generator=_g, dtype=torch.float64)
    for _s in (1, 2, 3):
        for _p in (0, 1, 2):
            for _d in (1, 2):
                for _bias in (None, _b64):
                    try:
                        _want = F.conv2d(_x64, _w64, _bias, stride=_s, padding=_p, dilation=_d)
                    except RuntimeError:
                        continue
                    _x_before = _x64.clone()
                    _got = conv2d_scratch(_x64, _w64, _bias, stride=_s, padding=_p, dilation=_d)
                    _what = (f"conv2d_scratch with kernel {_kshape}, stride={_s}, padding={_p}, "
                             f"dilation={_d}, bias={'yes' if _bias is not None else 'None'}")
                    checks.check_dtype(_got, torch.float64, _what)
                    checks.check_close(_got, _want, _what, rtol=1e-9, atol=1e-10,
                                       hint="offset m starts at m * dilation; slices step by stride")
                    checks.check_equal(_x64, _x_before, "x after conv2d_scratch",
                                       hint="do not modify the input in place")
# gradients flow like F.conv2d's
_xg = torch.randn(2, 2, 7, 6, dtype=torch.float64, generator=_g, requires_grad=True)
_wg = torch.randn(3, 2, 3, 2, dtype=torch.float64, generator=_g, requires_grad=True)
_bg = torch.randn(3, dtype=torch.float64, generator=_g, requires_grad=True)
_up = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=_g)        # like the output
_want_grads = torch.autograd.grad((F.conv2d(_xg, _wg, _bg, stride=2, padding=1) * _up).sum(),
                                  (_xg, _wg, _bg))
_got_grads = torch.autograd.grad(
    (conv2d_scratch(_xg, _wg, _bg, stride=2, padding=1) * _up).sum(), (_xg, _wg, _bg))
for _name, _got, _want in zip(("x", "weight", "bias"), _got_grads, _want_grads):
    checks.check_close(_got, _want, f"gradient of conv2d_scratch w.r.t. {_name}", rtol=1e-9,
                       atol=1e-10, hint="build the result from differentiable torch operations")
# the library convolution must not be used
_forbidden = checks.CheckError("conv2d_scratch called the library convolution.",
                               "your own computation", "F.conv2d / nn.Conv2d / torch.conv2d",
                               hint="use strided slices (or F.unfold) and a sum over products")
with mock.patch.object(F, "conv2d", side_effect=_forbidden), \
        mock.patch.object(torch, "conv2d", side_effect=_forbidden), \
        mock.patch.object(torch, "convolution", side_effect=_forbidden):
    _got = conv2d_scratch(_x, _w, _b, stride=1, padding=2, dilation=2)
checks.check_close(_got, F.conv2d(_x, _w, _b, padding=2, dilation=2),
                   "conv2d_scratch(x, w, b, padding=2, dilation=2)", rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 7.3 — A 1-D CNN for time series (★★★, 5 points)
#
# Forecast a noisy periodic signal, $y(t) = \sin t + 0.5 \sin 3t + \varepsilon$ with
# $\varepsilon \sim \mathcal{N}(0, 0.1^2)$, sampled every 0.1 time units. From a window of 100
# past values, predict the next 10. The first 1,400 samples are for training, the last 600 for
# testing — a *temporal* split, so no test window overlaps a training one. No model can predict
# the noise, so no model can reach a mean squared error below the noise variance, **0.01**.
#
# **(a) Windows.** Write `make_windows(series, window=100, horizon=10)`: from a 1-D float tensor
# of length $T$, return `X` of shape $(N, 1, \text{window})$ (one channel, ready for `Conv1d`) and
# `Y` of shape $(N, \text{horizon})$, with $N = T - \text{window} - \text{horizon} + 1$; window $i$
# holds `series[i : i + window]` and its target the `horizon` values right after it. Raise a
# `ValueError` if the series is too short for one window. Do not modify `series`.
#
# **(b) Models.** Write `SeriesCNN`: **three `nn.Conv1d` layers with increasing numbers of
# filters** (e.g. 8, 16, 32) and kernel size 7, ReLU, max pooling, and a linear head that outputs
# `horizon` values; and `SeriesMLP`: a baseline MLP on the flattened window (one hidden layer of
# 64 units). Both map $(B, 1, 100) \to (B, 10)$. Train `cnn_73` and `mlp_73` (MSE loss, Adam,
# lr `1e-3`, 10 epochs) and store their **test** MSE in `results_73 = {"cnn": ..., "mlp": ...}`
# (Python floats).
#
# **Tests.** (a) against a reference loop, including the last window, lengths and the error.
# (b) layer counts and shapes; the test MSEs are recomputed from your models on test windows the
# test builds itself, must agree with `results_73`, and **must both be below 0.02**, twice the
# noise floor (the reference reaches 0.011–0.012 for both).
#
# **Hints.** `series.unfold(0, size, step)` returns all windows of length `size` as rows of a
# view — or write a loop. For the CNN head, *flatten* the feature maps rather than
# global-pooling them: the forecast depends on where in the window each pattern sits, and
# pooling throws that away (try it!). With two `MaxPool1d(2)`, 100 steps become 25.

# %%
t_73 = torch.arange(2000) * 0.1
noise_73 = 0.1 * torch.randn(2000, generator=torch.Generator().manual_seed(7))
series_73 = torch.sin(t_73) + 0.5 * torch.sin(3 * t_73) + noise_73              # (2000,)
train_series_73, test_series_73 = series_73[:1400], series_73[1400:]

# %% nbgrader={"grade": false, "grade_id": "ex07_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_windows(series, window=100, horizon=10):
    """Sliding windows of a 1-D series: X (N, 1, window) and the next values Y (N, horizon)."""
    ### BEGIN SOLUTION
    if series.dim() != 1 or len(series) < window + horizon:
        raise ValueError(f"series must be 1-D with at least window + horizon = "
                         f"{window + horizon} values, got shape {tuple(series.shape)}")
    rows = series.unfold(0, window + horizon, 1)             # (N, window + horizon), a view
    return rows[:, None, :window].clone(), rows[:, window:].clone()
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_3_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_s = torch.arange(20.0)
_X, _Y = make_windows(_s, window=5, horizon=3)
checks.check_shape(_X, (13, 1, 5), "X of make_windows(arange(20), 5, 3)",
                   hint="N = T - window - horizon + 1 windows, each with one channel")
checks.check_shape(_Y, (13, 3), "Y of make_windows(arange(20), 5, 3)")
for _i in (0, 7, 12):
    checks.check_close(_X[_i, 0], _s[_i:_i + 5], f"X[{_i}, 0]")
    checks.check_close(_Y[_i], _s[_i + 5:_i + 8], f"Y[{_i}]",
                       hint="the target starts right after the window: series[i+window : i+window+horizon]")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(3)
for _T, _w, _h in [(50, 10, 1), (111, 100, 10), (110, 100, 10), (30, 1, 5)]:
    _s = torch.randn(_T, generator=_g)
    _s_before = _s.clone()
    _X, _Y = make_windows(_s, window=_w, horizon=_h)
    _n = _T - _w - _h + 1
    _ref_X = torch.stack([_s[i:i + _w] for i in range(_n)])[:, None]     # reference loop
    _ref_Y = torch.stack([_s[i + _w:i + _w + _h] for i in range(_n)])
    checks.check_close(_X, _ref_X, f"X of make_windows(T={_T}, window={_w}, horizon={_h})")
    checks.check_close(_Y, _ref_Y, f"Y of make_windows(T={_T}, window={_w}, horizon={_h})")
    checks.check_equal(_s, _s_before, "the series after make_windows")
    checks.check_dtype(_X, torch.float32, "X")
checks.check_raises(lambda: make_windows(torch.zeros(109), 100, 10), ValueError,
                    "make_windows on a series of 109 values with window 100 and horizon 10")
_X, _Y = make_windows(train_series_73)
checks.check_shape(_X, (1291, 1, 100), "make_windows(train_series_73) X")
### END HIDDEN TESTS

# %% [markdown]
# The windows for the models: the test windows come from the last 600 samples only.

# %%
X_train_73, Y_train_73 = make_windows(train_series_73)      # (1291, 1, 100), (1291, 10)
X_test_73, Y_test_73 = make_windows(test_series_73)         # (491, 1, 100), (491, 10)

# %% nbgrader={"grade": false, "grade_id": "ex07_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SeriesCNN(nn.Module):
    """Three Conv1d layers with increasing filters, then a linear head: (B, 1, 100) -> (B, 10)."""

    def __init__(self, window=100, horizon=10):
        super().__init__()
        ### BEGIN SOLUTION
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),     # (B, 8, 50)
            nn.Conv1d(8, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),    # (B, 16, 25)
            nn.Conv1d(16, 32, 7, padding=3), nn.ReLU())                    # (B, 32, 25)
        self.head = nn.Linear(32 * (window // 4), horizon)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.head(self.features(x).flatten(1))
        ### END SOLUTION


class SeriesMLP(nn.Module):
    """Baseline: flatten the window, one hidden layer of 64 ReLU units: (B, 1, 100) -> (B, 10)."""

    def __init__(self, window=100, horizon=10, hidden=64):
        super().__init__()
        ### BEGIN SOLUTION
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(window, hidden), nn.ReLU(),
                                 nn.Linear(hidden, horizon))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.net(x)
        ### END SOLUTION


torch.manual_seed(0)
cnn_73, mlp_73 = SeriesCNN().to(device), SeriesMLP().to(device)
results_73 = {}
### BEGIN SOLUTION
for name, model in [("cnn", cnn_73), ("mlp", mlp_73)]:
    fit(model, make_loader(X_train_73, Y_train_73), nn.MSELoss(),
        torch.optim.Adam(model.parameters(), lr=1e-3), epochs=10, device=device)
    test_loader = make_loader(X_test_73, Y_test_73, batch_size=512, shuffle=False)
    results_73[name] = evaluate(model, test_loader, nn.MSELoss(), device)["loss"]
### END SOLUTION
print({name: round(mse, 4) for name, mse in results_73.items()}, "(noise floor 0.01)")

# %% nbgrader={"grade": true, "grade_id": "ex07_3_test_b", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_convs = [m for m in SeriesCNN().modules() if isinstance(m, nn.Conv1d)]
checks.check_equal(len(_convs), 3, "number of nn.Conv1d layers in SeriesCNN")
checks.check(all(a.out_channels < b.out_channels for a, b in zip(_convs, _convs[1:])),
             "the Conv1d layers of SeriesCNN should have increasing numbers of filters.",
             "e.g. 8 -> 16 -> 32", [c.out_channels for c in _convs])
for _name, _cls in [("SeriesCNN", SeriesCNN), ("SeriesMLP", SeriesMLP)]:
    checks.check_module(_cls(), f"{_name}()", example_input=torch.randn(4, 1, 100),
                        output_shape=(4, 10))
checks.check_type(results_73, dict, "results_73")
checks.check_equal(sorted(results_73), ["cnn", "mlp"], "the keys of results_73")
_rows = test_series_73.unfold(0, 110, 1)                    # independent test windows
_Xt, _Yt = _rows[:, None, :100], _rows[:, 100:]
for _name, _model in [("cnn", cnn_73), ("mlp", mlp_73)]:
    _model.eval()
    with torch.no_grad():
        _mse = F.mse_loss(_model(_Xt.to(device)).cpu(), _Yt).item()
    checks.check_type(results_73[_name], float, f'results_73["{_name}"]', hint="use .item()")
    checks.check_close(results_73[_name], _mse, f'results_73["{_name}"] (test MSE)', rtol=1e-3,
                       hint="evaluate the trained model on X_test_73, Y_test_73 in eval mode")
    checks.check(_mse < 0.02, f"the {_name} model's test MSE is too high.", "< 0.02", round(_mse, 4),
                 hint="train 10 epochs with Adam(lr=1e-3); flatten (do not pool) before the head")
### BEGIN HIDDEN TESTS
# fresh data from the same process: the models must generalise, not memorise
_tf = torch.arange(3000, 3600) * 0.1
_fresh = torch.sin(_tf) + 0.5 * torch.sin(3 * _tf) + 0.1 * torch.randn(
    600, generator=torch.Generator().manual_seed(99))
_rows = _fresh.unfold(0, 110, 1)
for _name, _model in [("cnn", cnn_73), ("mlp", mlp_73)]:
    with torch.no_grad():
        _mse = F.mse_loss(_model(_rows[:, None, :100].to(device)).cpu(), _rows[:, 100:]).item()
    checks.check(_mse < 0.025, f"the {_name} model does not generalise to a fresh stretch.",
                 "< 0.025", round(_mse, 4))
checks.check_type(cnn_73, SeriesCNN, "cnn_73")
checks.check_type(mlp_73, SeriesMLP, "mlp_73")
checks.check_module(SeriesCNN(), "SeriesCNN()", example_input=torch.randn(1, 1, 100),
                    output_shape=(1, 10))
### END HIDDEN TESTS

# %% [markdown]
# Both models sit close to the noise floor of 0.01: on this clean periodic signal, a small MLP
# forecasts as well as the CNN. That is what baselines are for. The CNN's built-in assumption —
# local patterns that can appear anywhere in the window — pays off when such patterns recur at
# different positions; a sum of two sines, always seen through the same 100-step window, does not
# need it. Here is what the CNN predicts on a few test windows:

# %% tags=["autograde-skip"]
cnn_73.eval()
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
for ax, i in zip(axes, (0, 150, 300)):
    with torch.no_grad():
        forecast = cnn_73(X_test_73[i:i + 1].to(device))[0].cpu()
    ax.plot(range(100), X_test_73[i, 0], color="0.5", lw=1, label="input window")
    ax.plot(range(100, 110), Y_test_73[i], "o", ms=3, color="black", label="true next 10")
    ax.plot(range(100, 110), forecast, lw=2, color="C3", label="CNN forecast")
    ax.set(title=f"test window {i}", xlabel="step (0.1 time units)")
axes[0].set_ylabel("y(t)")
axes[0].legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 7.4 — A VGG-style network (★★★, 6 points)
#
# Build a deeper network the VGG way, from blocks.
#
# **(a)** Write `vgg_block(in_channels, out_channels, num_convs)`, returning an `nn.Sequential`
# of `num_convs` times [`nn.Conv2d(…, kernel_size=3, padding=1)`, `nn.BatchNorm2d`, `nn.ReLU`],
# then one `nn.MaxPool2d(2)` — in exactly that order. The first convolution maps `in_channels`
# to `out_channels`, the others keep `out_channels`. Keep the convolutions' default bias.
#
# **(b)** Write `VGGStyle(widths=(64, 128, 256), convs=(2, 2, 3), num_classes=10, dropout=0.0)`
# for one-channel images: `self.features`, an `nn.Sequential` of one block per width (block 1: 2
# convs of 64, block 2: 2 of 128, block 3: 3 of 256 by default); and `self.classifier`, an
# `nn.Sequential` of `nn.AdaptiveAvgPool2d(1)`, `nn.Flatten()`, `nn.Linear(w, w)`, `nn.ReLU()`,
# `nn.Dropout(dropout)`, `nn.Linear(w, num_classes)` with `w = widths[-1]`.
#
# **(c)** Compare dropout: train two networks with widths `(8, 16, 32)` (the full widths would
# take minutes on a CPU; the digits do not need them), one with `dropout=0.5` and one with
# `dropout=0.0`, each for 6 epochs with Adam, lr `3e-3` and a cosine schedule
# (`torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 6)`, passed to `fit` as `scheduler`),
# seeded with `torch.manual_seed(0)` before building each. Keep them in
# `models_74 = {"dropout": ..., "no_dropout": ...}` and their
# test accuracies (floats) in `results_74` with the same keys.
#
# **Tests.** (a) module order, output shape and parameter count (compared with a count from the
# formula $9 C_\text{in} C_\text{out} + C_\text{out}$ per convolution, $2C$ per batch norm);
# (b) the parameter count of the full-width network and that it accepts 8×8 and 16×16 inputs;
# (c) both models reach **at least 95 %** test accuracy (recomputed by the test; the reference
# reaches about 98 %) and `results_74` agrees.
#
# **Hints.** Build a Python list of layers and unpack it: `nn.Sequential(*layers)`. Three blocks
# halve 8×8 three times, to 1×1 — global pooling then costs nothing and makes the network
# size-agnostic. On 1,437 easy images, do not expect dropout to win clearly: it is a regulariser,
# and these models barely overfit.

# %% nbgrader={"grade": false, "grade_id": "ex07_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def vgg_block(in_channels, out_channels, num_convs):
    """num_convs x [Conv2d 3x3 (padding 1), BatchNorm2d, ReLU], then MaxPool2d(2): halves H, W."""
    ### BEGIN SOLUTION
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.BatchNorm2d(out_channels), nn.ReLU()]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_block = vgg_block(3, 16, 2)
checks.check_type(_block, nn.Sequential, "vgg_block(3, 16, 2)")
_types = [type(m).__name__ for m in _block]
checks.check_equal(_types, ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU",
                            "MaxPool2d"], "the layers of vgg_block(3, 16, 2)")
checks.check_module(_block, "vgg_block(3, 16, 2)", n_params=(9 * 3 * 16 + 16) + 2 * 16
                    + (9 * 16 * 16 + 16) + 2 * 16, example_input=torch.randn(2, 3, 8, 8),
                    output_shape=(2, 16, 4, 4), hint="3x3 kernels with padding=1, then MaxPool2d(2)")
### BEGIN HIDDEN TESTS
for _cin, _cout, _n in [(1, 8, 1), (16, 32, 3), (5, 7, 4)]:
    _block = vgg_block(_cin, _cout, _n)
    _params = sum(9 * (_cin if i == 0 else _cout) * _cout + _cout + 2 * _cout for i in range(_n))
    checks.check_module(_block, f"vgg_block({_cin}, {_cout}, {_n})", n_params=_params,
                        example_input=torch.randn(3, _cin, 12, 10), output_shape=(3, _cout, 6, 5))
    checks.check_equal(len(_block), 3 * _n + 1, f"len(vgg_block({_cin}, {_cout}, {_n}))")
    _convs = [m for m in _block if isinstance(m, nn.Conv2d)]
    checks.check(all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs),
                 "every convolution of a VGG block is 3x3 with padding 1.")
    _pool = _block[-1]
    checks.check(isinstance(_pool, nn.MaxPool2d) and _pool.kernel_size in (2, (2, 2)),
                 "a VGG block ends with nn.MaxPool2d(2).", "MaxPool2d(2)", _pool)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex07_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class VGGStyle(nn.Module):
    """VGG-style blocks, then global average pooling and two linear layers.

    Input (B, 1, H, W) with H, W divisible by 2**len(widths) -> (B, num_classes) logits.
    """

    def __init__(self, widths=(64, 128, 256), convs=(2, 2, 3), num_classes=10, dropout=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        blocks, c_in = [], 1
        for width, n in zip(widths, convs):
            blocks.append(vgg_block(c_in, width, n))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, c_in), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.classifier(self.features(x))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _vgg_params(widths, convs, num_classes=10):
    """Independent count: 9*Cin*Cout + Cout per conv, 2*C per batch norm, two linear layers."""
    total, c_in = 0, 1
    for width, n in zip(widths, convs):
        for _ in range(n):
            total += 9 * c_in * width + width + 2 * width
            c_in = width
    return total + (c_in * c_in + c_in) + (c_in * num_classes + num_classes)


_net = VGGStyle()
checks.check_module(_net, "VGGStyle()", n_params=_vgg_params((64, 128, 256), (2, 2, 3)),
                    hint="blocks of 2, 2, 3 convs; classifier Linear(256, 256) and Linear(256, 10)")
checks.check_type(_net.features, nn.Sequential, "VGGStyle().features")
checks.check_equal(len(_net.features), 3, "number of blocks in VGGStyle().features")
_small = VGGStyle(widths=(8, 16, 32)).eval()
for _hw in (8, 16):
    checks.check_module(_small, "VGGStyle(widths=(8, 16, 32))",
                        example_input=torch.randn(2, 1, _hw, _hw), output_shape=(2, 10),
                        hint="start the classifier with nn.AdaptiveAvgPool2d(1)")
### BEGIN HIDDEN TESTS
for _widths, _convs_n, _k in [((8, 16, 32), (2, 2, 3), 10), ((4, 6), (1, 2), 3),
                              ((5, 6, 7, 8), (1, 1, 1, 2), 2)]:
    _net = VGGStyle(widths=_widths, convs=_convs_n, num_classes=_k).eval()
    checks.check_module(_net, f"VGGStyle({_widths}, {_convs_n}, {_k})",
                        n_params=_vgg_params(_widths, _convs_n, _k),
                        example_input=torch.randn(3, 1, 16, 16), output_shape=(3, _k))
_drops = [m.p for m in VGGStyle(widths=(8, 16, 32), dropout=0.3).modules()
          if isinstance(m, nn.Dropout)]
checks.check_equal(_drops, [0.3], "dropout probabilities in VGGStyle(dropout=0.3)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex07_4_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
models_74, results_74 = {}, {}
### BEGIN SOLUTION
for name, p in [("dropout", 0.5), ("no_dropout", 0.0)]:
    torch.manual_seed(0)
    model = VGGStyle(widths=(8, 16, 32), dropout=p).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    fit(model, make_loader(X_train, y_train), nn.CrossEntropyLoss(), optimizer, epochs=6,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 6), device=device)
    models_74[name] = model
    results_74[name] = evaluate(model, make_loader(X_test, y_test, 360, shuffle=False),
                                nn.CrossEntropyLoss(), device, {"acc": accuracy})["acc"]
### END SOLUTION
print({name: f"{acc:.1%}" for name, acc in results_74.items()})

# %% nbgrader={"grade": true, "grade_id": "ex07_4_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(models_74), ["dropout", "no_dropout"], "the keys of models_74")
checks.check_equal(sorted(results_74), ["dropout", "no_dropout"], "the keys of results_74")
for _name, _want_p in [("dropout", 0.5), ("no_dropout", 0.0)]:
    _model = models_74[_name]
    checks.check_type(_model, VGGStyle, f'models_74["{_name}"]')
    _ps = [m.p for m in _model.modules() if isinstance(m, nn.Dropout)]
    checks.check_equal(_ps, [_want_p], f'dropout probability of models_74["{_name}"]')
    _model.eval()
    with torch.no_grad():
        _acc = (_model(X_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
    checks.check(_acc >= 0.95, f'models_74["{_name}"] is not accurate enough.', ">= 0.95",
                 round(_acc, 4), hint="6 epochs of Adam(lr=3e-3) on X_train, y_train")
    checks.check_close(results_74[_name], _acc, f'results_74["{_name}"]', atol=1e-3,
                       hint="test accuracy, in eval mode, on X_test")
### BEGIN HIDDEN TESTS
for _name in models_74:
    checks.check_type(results_74[_name], float, f'results_74["{_name}"]')
    checks.check_equal(
        [m.out_channels for m in models_74[_name].modules() if isinstance(m, nn.Conv2d)],
        [8, 8, 16, 16, 32, 32, 32], f'conv widths of models_74["{_name}"]',
        hint="VGGStyle(widths=(8, 16, 32), ...)")
checks.check(models_74["dropout"] is not models_74["no_dropout"],
             "models_74 holds the same model twice.")
### END HIDDEN TESTS

# %% [markdown]
# Did dropout help? Compare the two numbers above: on 360 test digits one image is 0.28 %, so a
# gap of a few images is within the run-to-run noise of a single seed. An honest comparison would
# average several seeds — and pick a harder problem, where the network can overfit.

# %% [markdown]
# ### Exercise 7.5 — A small U-Net for denoising (★★★★★, 6 points)
#
# A U-Net (Ronneberger et al., 2015) is an encoder–decoder whose decoder also receives the
# encoder's feature maps at the same resolution through **skip connections**: the encoder finds
# *what* is there, the skips keep *where*. We use one to remove Gaussian noise ($\sigma = 0.3$)
# from digits. The blocks are given below.
#
# ```
# x (1, H) -> enc1 -> e1 (c1, H) - - - - - - - - - - - - - - - - - - - - -> cat -> dec1 -> sigmoid
#                     |                                                     ^
#                    pool                                                   |
#                     v                                                     |
#                    enc2 -> e2 (c2, H/2) - - - - - - - - -> cat -> dec2 -> d2 (c1, H)
#                            |                               ^
#                           pool                             |
#                            v                               |
#                            enc3 -> e3 (c3, H/4) -> dec3 -> d3 (c2, H/2)
# ```
#
# Channels and resolution are in brackets; the dashed arrows are the skip connections.
#
# **(a)** Write `SimpleUNet(widths=(32, 64, 128))` with attributes `enc1 = conv_block(1, c1)`,
# `enc2 = conv_block(c1, c2)`, `enc3 = conv_block(c2, c3)`, `pool = nn.MaxPool2d(2)`,
# `dec3 = upconv_block(c3, c2)`, `dec2 = upconv_block(2 * c2, c1)` and
# `dec1 = nn.Conv2d(2 * c1, 1, kernel_size=1)`, and the forward pass of the diagram: concatenate
# along the **channel** dimension and end with a sigmoid. Input $(B, 1, H, W)$ with $H, W$
# divisible by 4; output of the same shape, values in $(0, 1)$.
#
# **(b)** Train `unet_75 = SimpleUNet(widths=(16, 32, 64))` to map `noisy_train` to the clean
# `X_train` (MSE loss, Adam, lr `3e-3`, 6 epochs), and store test mean squared errors in
# `results_75 = {"noisy": ..., "unet": ...}`: the noisy test images against the clean ones, and
# the U-Net's output on them against the clean ones.
#
# **Tests.** (a) the parameter count (from the formula, for several widths), output shape and
# range for 8×8, 16×16 and 32×32 inputs; (b) `results_75` is recomputed, and **the U-Net must
# remove at least 65 % of the squared error** of the noisy input (`unet <= 0.35 * noisy`; the
# reference reaches about 0.24). A hidden test repeats it with fresh noise.
#
# **Hints.** `torch.cat([d3, e2], dim=1)` concatenates channels; the order of the two does not
# matter. The encoder outputs are computed in order, `e1 = self.enc1(x)`,
# `e2 = self.enc2(self.pool(e1))`, … The target of training is the *clean* image.

# %%
def conv_block(c_in, c_out):
    """3x3 convolution (size-preserving) -> batch norm -> ReLU: (B, c_in, H, W) -> (B, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


def upconv_block(c_in, c_out):
    """2x2 transposed convolution, stride 2 -> batch norm -> ReLU: doubles H and W."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride=2), nn.BatchNorm2d(c_out),
                         nn.ReLU())


noise_gen_75 = torch.Generator().manual_seed(75)
noisy_train = X_train + 0.3 * torch.randn(X_train.shape, generator=noise_gen_75)   # (1437, 1, 8, 8)
noisy_test = X_test + 0.3 * torch.randn(X_test.shape, generator=noise_gen_75)      # (360, 1, 8, 8)

# %% nbgrader={"grade": false, "grade_id": "ex07_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SimpleUNet(nn.Module):
    """Three-level U-Net with concatenating skips: (B, 1, H, W) -> (B, 1, H, W) in (0, 1)."""

    def __init__(self, widths=(32, 64, 128)):
        super().__init__()
        c1, c2, c3 = widths
        ### BEGIN SOLUTION
        self.enc1, self.enc2, self.enc3 = conv_block(1, c1), conv_block(c1, c2), conv_block(c2, c3)
        self.pool = nn.MaxPool2d(2)
        self.dec3 = upconv_block(c3, c2)
        self.dec2 = upconv_block(2 * c2, c1)
        self.dec1 = nn.Conv2d(2 * c1, 1, kernel_size=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        e1 = self.enc1(x)                                    # (B, c1, H, W)
        e2 = self.enc2(self.pool(e1))                        # (B, c2, H/2, W/2)
        e3 = self.enc3(self.pool(e2))                        # (B, c3, H/4, W/4)
        d3 = self.dec3(e3)                                   # (B, c2, H/2, W/2)
        d2 = self.dec2(torch.cat([d3, e2], dim=1))           # (B, c1, H, W)
        return torch.sigmoid(self.dec1(torch.cat([d2, e1], dim=1)))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_5_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _unet_params(c1, c2, c3):
    """Independent count: conv_block 9*i*o + o + 2o, upconv_block 4*i*o + o + 2o, 1x1 conv."""
    conv = lambda i, o: 9 * i * o + 3 * o
    up = lambda i, o: 4 * i * o + 3 * o
    return conv(1, c1) + conv(c1, c2) + conv(c2, c3) + up(c3, c2) + up(2 * c2, c1) + 2 * c1 + 1


checks.check_module(SimpleUNet(), "SimpleUNet()", n_params=_unet_params(32, 64, 128),
                    hint="dec2 takes 2*c2 channels (d3 and e2 concatenated), dec1 takes 2*c1")
torch.manual_seed(0)
_net = SimpleUNet(widths=(8, 16, 32)).eval()
_x = torch.rand(3, 1, 8, 8)
_x_before = _x.clone()
with torch.no_grad():
    _out = checks.check_module(_net, "SimpleUNet((8, 16, 32))", example_input=_x,
                               output_shape=(3, 1, 8, 8), hint="concatenate along dim=1 (channels)")
checks.check(bool(((_out > 0) & (_out < 1)).all()), "SimpleUNet's output is not in (0, 1).",
             "values in (0, 1)", f"min {_out.min():.3f}, max {_out.max():.3f}",
             hint="end with torch.sigmoid")
checks.check_equal(_x, _x_before, "the input after SimpleUNet's forward")
### BEGIN HIDDEN TESTS
for _w in [(4, 8, 16), (16, 32, 64), (3, 5, 7)]:
    checks.check_module(SimpleUNet(widths=_w), f"SimpleUNet({_w})", n_params=_unet_params(*_w))
for _hw in (16, 32, 12):
    with torch.no_grad():
        checks.check_module(_net, "SimpleUNet((8, 16, 32))", example_input=torch.rand(2, 1, _hw, _hw),
                            output_shape=(2, 1, _hw, _hw))
for _name in ("enc1", "enc2", "enc3", "dec3", "dec2", "dec1", "pool"):
    checks.check(hasattr(_net, _name), f"SimpleUNet has no attribute {_name}.")
# the skip connections matter: the fine encoder features reach the output directly
_grad_x = torch.rand(1, 1, 8, 8, requires_grad=True)
_net.train()
_net(_grad_x).sum().backward()
checks.check(_net.enc1[0].weight.grad is not None and _net.enc1[0].weight.grad.abs().sum() > 0,
             "no gradient reaches enc1: is e1 used in the forward pass?")
_net.eval()
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex07_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
torch.manual_seed(0)
unet_75 = SimpleUNet(widths=(16, 32, 64)).to(device)
results_75 = {}
### BEGIN SOLUTION
fit(unet_75, make_loader(noisy_train, X_train), nn.MSELoss(),
    torch.optim.Adam(unet_75.parameters(), lr=3e-3), epochs=6, device=device)
unet_75.eval()
with torch.no_grad():
    denoised_test = unet_75(noisy_test.to(device)).cpu()
results_75["noisy"] = F.mse_loss(noisy_test, X_test).item()
results_75["unet"] = F.mse_loss(denoised_test, X_test).item()
### END SOLUTION
print({name: round(mse, 4) for name, mse in results_75.items()})

# %% nbgrader={"grade": true, "grade_id": "ex07_5_test_b", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_type(unet_75, SimpleUNet, "unet_75")
checks.check_equal(sorted(results_75), ["noisy", "unet"], "the keys of results_75")
_noisy_mse = ((noisy_test - X_test) ** 2).mean().item()
unet_75.eval()
with torch.no_grad():
    _unet_mse = ((unet_75(noisy_test.to(device)).cpu() - X_test) ** 2).mean().item()
checks.check_close(results_75["noisy"], _noisy_mse, 'results_75["noisy"]', rtol=1e-4,
                   hint="mean squared error between noisy_test and X_test")
checks.check_close(results_75["unet"], _unet_mse, 'results_75["unet"]', rtol=1e-3,
                   hint="MSE between unet_75(noisy_test) (in eval mode) and X_test")
checks.check(_unet_mse <= 0.35 * _noisy_mse, "the U-Net does not remove enough noise.",
             f"MSE <= {0.35 * _noisy_mse:.4f} (35 % of the noisy input's)", round(_unet_mse, 4),
             hint="train on (noisy_train -> X_train), the clean images are the targets")
### BEGIN HIDDEN TESTS
_fresh = X_test + 0.3 * torch.randn(X_test.shape, generator=torch.Generator().manual_seed(2024))
with torch.no_grad():
    _fresh_mse = ((unet_75(_fresh.to(device)).cpu() - X_test) ** 2).mean().item()
_fresh_noisy = ((_fresh - X_test) ** 2).mean().item()
checks.check(_fresh_mse <= 0.4 * _fresh_noisy, "the U-Net does not denoise fresh noise well.",
             f"<= {0.4 * _fresh_noisy:.4f}", round(_fresh_mse, 4))
checks.check_type(results_75["unet"], float, 'results_75["unet"]', hint="use .item()")
### END HIDDEN TESTS

# %% [markdown]
# Noisy input, U-Net output and clean target for eight test digits:

# %% tags=["autograde-skip"]
with torch.no_grad():
    denoised_75 = unet_75.eval()(noisy_test[:8].to(device)).cpu()
rows_75 = torch.cat([noisy_test[:8].clamp(0, 1), denoised_75, X_test[:8]])        # (24, 1, 8, 8)
titles_75 = [f"{kind} {i}" for kind in ("noisy", "U-Net", "clean") for i in range(8)]
plot.image_grid(rows_75, titles=titles_75, ncols=8,
                title=f"Denoising digits: MSE {results_75['noisy']:.3f} (noisy) → "
                      f"{results_75['unet']:.3f} (U-Net)")
plt.show()

# %% [markdown]
# The U-Net restores the strokes and cleans the background; what it cannot recover is detail the
# noise destroyed, so thin strokes come out slightly blurred.

# %% [markdown]
# ### Exercise 7.6 — A 3-D CNN for volumes (★★★★★, 6 points)
#
# Detect a "tumour" — a bright 3-D Gaussian blob — in a noisy volume with a smooth tissue
# background, as in a CT scan. Half of the volumes contain one blob at a random position, of
# random width and brightness; the others contain none.
#
# **(a)** Write `gaussian_blob(size, center, sigma, amplitude=1.0)`: a float32 tensor of shape
# $(\text{size}, \text{size}, \text{size})$ with
# $v[z, y, x] = a \exp\!\big(-\tfrac{(z - c_0)^2 + (y - c_1)^2 + (x - c_2)^2}{2\sigma^2}\big)$ for
# `center = (c0, c1, c2)` (floats allowed). Use broadcasting, not a triple Python loop.
#
# **(b)** Write `VolumeCNN(widths=(4, 8, 16))`: three `nn.Conv3d` layers (3×3×3, padding 1),
# each followed by `nn.BatchNorm3d` and ReLU, with `nn.MaxPool3d(2)` after the first two; then a
# **global pooling** layer and `nn.Linear(widths[-1], 2)`. Input $(B, 1, D, H, W)$, output
# $(B, 2)$ logits, for any size. Train `model_76` on the volumes made below for 6 epochs with
# **batch size 32** (3-D batches are memory-hungry; small ones are the norm), Adam, lr `3e-3` and
# a cosine schedule as in Exercise 7.4.
#
# **Tests.** (a) against an explicit loop over voxels; (b) the structure, any input size, and
# the accuracy on **fresh volumes the test generates itself**, which must be **at least 85 %**
# (the reference reaches 95 % there and 92 % on `X_test_76`; a brightest-voxel threshold gets
# about 79 %).
#
# **Hints.** (a) `torch.arange(size)` gives coordinates; `r.view(-1, 1, 1)`, `r.view(1, -1, 1)`
# and `r.view(1, 1, -1)` broadcast to a cube. (b) Which global pooling? A blob fills a few dozen
# of the 1,728 voxels. *Averaging* mixes its signal with all the background — the bigger the
# volume, the more it is diluted — while the *maximum* asks exactly "is there a blob anywhere?":
# `nn.AdaptiveMaxPool3d(1)`.

# %% nbgrader={"grade": false, "grade_id": "ex07_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gaussian_blob(size, center, sigma, amplitude=1.0):
    """A 3-D Gaussian: (size, size, size) float32, v[z, y, x] = a * exp(-|r - c|^2 / (2 sigma^2))."""
    ### BEGIN SOLUTION
    r = torch.arange(size, dtype=torch.float32)
    c0, c1, c2 = (float(c) for c in center)
    d2 = ((r.view(-1, 1, 1) - c0) ** 2 + (r.view(1, -1, 1) - c1) ** 2
          + (r.view(1, 1, -1) - c2) ** 2)                             # (size, size, size)
    return amplitude * torch.exp(-d2 / (2 * sigma**2))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_6_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math


def _blob_loop(size, center, sigma, amplitude):
    """Reference: one voxel at a time."""
    out = torch.zeros(size, size, size)
    for z in range(size):
        for y in range(size):
            for x in range(size):
                d2 = (z - center[0]) ** 2 + (y - center[1]) ** 2 + (x - center[2]) ** 2
                out[z, y, x] = amplitude * math.exp(-d2 / (2 * sigma**2))
    return out


_v = gaussian_blob(5, (2, 2, 2), 1.0)
checks.check_tensor(_v, "gaussian_blob(5, (2, 2, 2), 1.0)", shape=(5, 5, 5), dtype=torch.float32)
checks.check_close(_v[2, 2, 2], torch.tensor(1.0), "the value at the centre")
checks.check_close(_v, _blob_loop(5, (2, 2, 2), 1.0, 1.0), "gaussian_blob(5, (2, 2, 2), 1.0)",
                   rtol=1e-5, atol=1e-6, hint="exp(-d^2 / (2 sigma^2)), d^2 summed over z, y, x")
### BEGIN HIDDEN TESTS
for _size, _c, _sg, _a in [(6, (1.0, 2.5, 4.0), 1.5, 0.7), (7, (0, 6, 3), 0.8, 2.0),
                           (4, (3.2, 0.1, 1.7), 2.5, 1.0)]:
    _v = gaussian_blob(_size, _c, _sg, _a)
    checks.check_tensor(_v, f"gaussian_blob({_size}, {_c}, {_sg}, {_a})",
                        shape=(_size, _size, _size), dtype=torch.float32)
    checks.check_close(_v, _blob_loop(_size, _c, _sg, _a), f"gaussian_blob({_size}, {_c}, {_sg}, {_a})",
                       rtol=1e-5, atol=1e-6, hint="center is (z, y, x) in index order")
_v = gaussian_blob(9, (1, 4, 7), 1.0)
checks.check_equal(tuple(int(i) for i in np.unravel_index(int(_v.argmax()), _v.shape)), (1, 4, 7),
                   "position of the maximum of gaussian_blob(9, (1, 4, 7), 1.0)",
                   hint="v[z, y, x] with center = (z, y, x)")
### END HIDDEN TESTS

# %% [markdown]
# The data set: 12³ volumes — a smooth random "tissue" background (random values on a 4³ grid,
# interpolated) plus white noise, and in half of them a blob of width $\sigma \in [1.2, 2]$ and
# brightness in $[0.8, 1.2]$. The cell uses your `gaussian_blob`, so it runs once part (a) does.

# %%
def make_volumes(n, size=12, seed=0):
    """n noisy volumes (n, 1, size, size, size), half with a blob; labels (n,) int64 (1 = blob)."""
    g = torch.Generator().manual_seed(seed)
    tissue = F.interpolate(torch.randn(n, 1, 4, 4, 4, generator=g), size=(size,) * 3,
                           mode="trilinear", align_corners=False)
    volumes = 0.2 * tissue + 0.3 * torch.randn(n, 1, size, size, size, generator=g)
    labels = (torch.rand(n, generator=g) < 0.5).long()
    for i in labels.nonzero().flatten().tolist():
        center = (torch.rand(3, generator=g) * (size - 6) + 3).tolist()
        sigma = 1.2 + 0.8 * torch.rand(1, generator=g).item()
        amplitude = 0.8 + 0.4 * torch.rand(1, generator=g).item()
        volumes[i, 0] += gaussian_blob(size, center, sigma, amplitude)
    return volumes, labels


X_train_76, y_train_76 = make_volumes(400, seed=0)          # (400, 1, 12, 12, 12), (400,)
X_test_76, y_test_76 = make_volumes(400, seed=1)

# %% nbgrader={"grade": false, "grade_id": "ex07_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class VolumeCNN(nn.Module):
    """Three Conv3d-BN-ReLU layers, global pooling, a linear layer: (B, 1, D, H, W) -> (B, 2)."""

    def __init__(self, widths=(4, 8, 16)):
        super().__init__()
        ### BEGIN SOLUTION
        layers, c_in = [], 1
        for i, width in enumerate(widths):
            layers += [nn.Conv3d(c_in, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool3d(2))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool3d(1)
        self.head = nn.Linear(c_in, 2)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.head(self.pool(self.features(x)).flatten(1))
        ### END SOLUTION


torch.manual_seed(0)
model_76 = VolumeCNN().to(device)
### BEGIN SOLUTION
optimizer = torch.optim.Adam(model_76.parameters(), lr=3e-3)
fit(model_76, make_loader(X_train_76, y_train_76, batch_size=32), nn.CrossEntropyLoss(), optimizer,
    epochs=6, scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 6), device=device)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex07_6_test_b", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
_convs = [m for m in VolumeCNN().modules() if isinstance(m, nn.Conv3d)]
checks.check_equal(len(_convs), 3, "number of nn.Conv3d layers in VolumeCNN")
checks.check_type(model_76, VolumeCNN, "model_76")
model_76.eval()
for _side in (12, 16):
    with torch.no_grad():
        checks.check_module(model_76, "model_76", example_input=torch.randn(2, 1, _side, _side, _side,
                            device=device), output_shape=(2, 2),
                            hint="a global pooling layer before the linear layer makes any size work")


def _fresh_volumes(n, size, seed):
    """Independent generator of the same distribution, vectorised."""
    g = torch.Generator().manual_seed(seed)
    vol = 0.2 * F.interpolate(torch.randn(n, 1, 4, 4, 4, generator=g), size=(size,) * 3,
                              mode="trilinear", align_corners=False)
    vol = vol + 0.3 * torch.randn(n, 1, size, size, size, generator=g)
    label = (torch.rand(n, generator=g) < 0.5).long()
    centre = torch.rand(n, 3, generator=g) * (size - 6) + 3                       # (n, 3)
    sigma = (1.2 + 0.8 * torch.rand(n, generator=g)).view(n, 1, 1, 1)
    amp = (0.8 + 0.4 * torch.rand(n, generator=g)).view(n, 1, 1, 1)
    r = torch.arange(size, dtype=torch.float32)
    d2 = ((r.view(1, -1, 1, 1) - centre[:, 0].view(n, 1, 1, 1)) ** 2
          + (r.view(1, 1, -1, 1) - centre[:, 1].view(n, 1, 1, 1)) ** 2
          + (r.view(1, 1, 1, -1) - centre[:, 2].view(n, 1, 1, 1)) ** 2)
    vol[:, 0] += label.view(n, 1, 1, 1) * amp * torch.exp(-d2 / (2 * sigma**2))
    return vol, label


_vol, _label = _fresh_volumes(400, 12, seed=2024)
with torch.no_grad():
    _acc = (model_76(_vol.to(device)).argmax(1).cpu() == _label).float().mean().item()
checks.check(_acc >= 0.85, "model_76 does not detect blobs in fresh volumes well enough.",
             ">= 0.85", round(_acc, 4), hint="global max pooling; 6 epochs, batch 32, Adam(3e-3)")
### BEGIN HIDDEN TESTS
_vol, _label = _fresh_volumes(400, 16, seed=7)
with torch.no_grad():
    _acc16 = (model_76(_vol.to(device)).argmax(1).cpu() == _label).float().mean().item()
checks.check(_acc16 >= 0.75, "model_76 fails on larger (16^3) volumes.", ">= 0.75", round(_acc16, 4),
             hint="global pooling makes the detector work at any size")
checks.check(len([m for m in model_76.modules() if isinstance(m, nn.BatchNorm3d)]) == 3,
             "VolumeCNN should have a BatchNorm3d after each Conv3d.")
### END HIDDEN TESTS

# %% [markdown]
# How good is 92 %? A baseline that needs no training: call a volume positive when its
# brightest voxel exceeds a threshold, chosen as the best one on the training volumes.

# %% tags=["autograde-skip"]
peak_train, peak_test = X_train_76.amax(dim=(1, 2, 3, 4)), X_test_76.amax(dim=(1, 2, 3, 4))
baseline_acc = lambda peaks, labels, th: ((peaks > th).long() == labels).float().mean().item()
best_th = max(peak_train.tolist(), key=lambda th: baseline_acc(peak_train, y_train_76, th))
model_76.eval()
with torch.no_grad():
    cnn_acc_76 = (model_76(X_test_76.to(device)).argmax(1).cpu() == y_test_76).float().mean().item()
print(f"brightest-voxel threshold: {baseline_acc(peak_test, y_test_76, best_th):.1%}   "
      f"3-D CNN: {cnn_acc_76:.1%}   (test volumes)")

# %% [markdown]
# Volumes are hard to show on a flat screen. Radiologists look at three orthogonal slices through
# a point of interest; here, through the brightest voxel of a lightly smoothed copy of the volume.
# Two test volumes with a blob and two without, with the CNN's probability of "blob":

# %% tags=["autograde-skip"]
picked = torch.cat([(y_test_76 == 1).nonzero()[:2, 0], (y_test_76 == 0).nonzero()[:2, 0]])
with torch.no_grad():
    p_blob = model_76.eval()(X_test_76[picked].to(device)).softmax(dim=1)[:, 1].cpu()
smooth_76 = F.avg_pool3d(X_test_76[picked], 3, stride=1, padding=1)          # (4, 1, 12, 12, 12)
fig, axes = plt.subplots(4, 3, figsize=(7, 9))
for row, i in enumerate(picked.tolist()):
    vol = X_test_76[i, 0]                                                    # (D, H, W)
    z, y, x = np.unravel_index(int(smooth_76[row, 0].argmax()), vol.shape)
    views = [(vol[z], f"z = {z}: (y, x) plane"), (vol[:, y], f"y = {y}: (z, x) plane"),
             (vol[:, :, x], f"x = {x}: (z, y) plane")]
    for ax, (img, title) in zip(axes[row], views):
        ax.imshow(img, cmap="magma", vmin=-0.8, vmax=1.6)
        ax.set(xticks=[], yticks=[], title=title)
        ax.grid(False)
    axes[row, 0].set_ylabel(f"label {y_test_76[i].item()}, P(blob) {p_blob[row]:.2f}")
fig.suptitle("Three orthogonal slices (12×12 voxels) through the brightest smoothed voxel")
fig.tight_layout()
plt.show()

# %% [markdown]
# In the first two rows a brighter, roundish patch several voxels wide sits where the slices
# cross (clearest in the second row); in the last two the brightest point is a chance cluster of
# noise, small and irregular. Telling the two apart by eye is hard; the CNN has learned a 3-D
# detector for it from 400 examples.

# %% [markdown]
# Your exercises against their quality targets, in one table (each number is recomputed here):

# %% tags=["autograde-skip"]
def accuracy_on(model, X, y):
    model.eval()
    with torch.no_grad():
        return (model(X.to(device)).argmax(dim=1).cpu() == y).float().mean().item()


acc_71, acc_76 = accuracy_on(model_71, X_test, y_test), accuracy_on(model_76, X_test_76, y_test_76)
ratio_75 = results_75["unet"] / results_75["noisy"]
summary = [("7.1 digits CNN, test accuracy", acc_71, ">= 0.97"),
           ("7.3 1-D CNN, test MSE", results_73["cnn"], "< 0.02"),
           ("7.4 VGG-style, worst test accuracy", min(results_74.values()), ">= 0.95"),
           ("7.5 U-Net, MSE / noisy MSE", ratio_75, "<= 0.35"),
           ("7.6 3-D CNN, test accuracy", acc_76, ">= 0.85")]
for name, value, target in summary:
    print(f"{name:36s} {value:7.4f}   target {target}")
print(f"QUALITY: 7.1 digits {acc_71:.1%} (>= 97 %); 7.3 MSE {results_73['cnn']:.4f} (< 0.02); "
      f"7.4 {min(results_74.values()):.1%} (>= 95 %); 7.5 {ratio_75:.2f} x noisy MSE (<= 0.35); "
      f"7.6 {acc_76:.1%} (>= 85 %)")

# %% [markdown]
# ## Concept check (4 points)
#
# Answer in the variables below. Compute by hand first — then check yourself with PyTorch, as
# the tests will.
#
# 1. `cc_shape`: the output shape of `nn.Conv2d(3, 16, kernel_size=5, stride=2, padding=1)` on
#    an input of shape `(4, 3, 33, 33)`, as a tuple.
# 2. `cc_params`: the number of parameters of `nn.Conv2d(64, 128, kernel_size=3)`.
# 3. `cc_depthwise`: the number of parameters of `nn.Conv2d(64, 64, kernel_size=3, groups=64)`.
# 4. `cc_receptive_field`: the receptive field (one side, in pixels) of a 3×3 convolution with
#    stride 2 followed by two 3×3 convolutions with stride 1.
# 5. `cc_transposed`: the output height of `nn.ConvTranspose2d(8, 8, kernel_size=4, stride=2,
#    padding=1)` on a 7×7 input.
# 6. `cc_choice`: why do VGG-style networks stack two 3×3 convolutions instead of one 5×5?
#    - **a** — two 3×3 layers see a larger region than one 5×5 layer;
#    - **b** — they see the same 5×5 region with fewer weights ($18C^2$ vs $25C^2$) and one
#      more nonlinearity;
#    - **c** — 3×3 kernels need no padding;
#    - **d** — 5×5 kernels cannot be trained with batch norm.

# %% nbgrader={"grade": false, "grade_id": "cc07_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
cc_shape = None
cc_params = None
cc_depthwise = None
cc_receptive_field = None
cc_transposed = None
cc_choice = None
### BEGIN SOLUTION
cc_shape = (4, 16, 16, 16)          # (33 + 2 - 5) // 2 + 1 = 16
cc_params = 73856                   # 3*3*64*128 + 128
cc_depthwise = 640                  # 64 kernels of 3x3x1, plus 64 biases
cc_receptive_field = 11             # 3, then + 2*2, then + 2*2
cc_transposed = 14                  # (7 - 1)*2 - 2 + 4
cc_choice = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc07_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
with torch.no_grad():
    _want_shape = tuple(nn.Conv2d(3, 16, 5, stride=2, padding=1)(torch.zeros(4, 3, 33, 33)).shape)
checks.check_equal(tuple(cc_shape) if isinstance(cc_shape, (tuple, list, torch.Size)) else cc_shape,
                   _want_shape, "cc_shape", hint="(B, C_out, H', W') with H' = (33 + 2 - 5) // 2 + 1")
checks.check_equal(cc_params, sum(p.numel() for p in nn.Conv2d(64, 128, 3).parameters()),
                   "cc_params", hint="k*k*C_in*C_out weights plus C_out biases")
checks.check_equal(cc_depthwise,
                   sum(p.numel() for p in nn.Conv2d(64, 64, 3, groups=64).parameters()),
                   "cc_depthwise", hint="with groups=64 each kernel sees only 1 input channel")
### BEGIN HIDDEN TESTS
_stack = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False),
                       nn.Conv2d(1, 1, 3, padding=1, bias=False),
                       nn.Conv2d(1, 1, 3, padding=1, bias=False))
for _layer in _stack:
    nn.init.ones_(_layer.weight)
_xin = torch.zeros(1, 1, 31, 31, requires_grad=True)
_yout = _stack(_xin)
_yout[0, 0, _yout.shape[-2] // 2, _yout.shape[-1] // 2].backward()
_cols = _xin.grad[0, 0].abs().sum(dim=0).nonzero()
checks.check_equal(cc_receptive_field, int(_cols.max() - _cols.min() + 1), "cc_receptive_field",
                   hint="r grows by (k - 1) times the product of the earlier strides")
with torch.no_grad():
    _want_t = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)(torch.zeros(1, 8, 7, 7)).shape[-1]
checks.check_equal(cc_transposed, _want_t, "cc_transposed")
# b: same 5x5 field (two stacked 3x3), 2 * 9 C^2 < 25 C^2 weights, and an extra ReLU in between
checks.check_equal(str(cc_choice).strip().lower(), "b", "cc_choice")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - A convolution slides one small kernel over the input: **local connectivity** and **parameter
#   sharing** cut the parameters by orders of magnitude (not the compute) and make the layer
#   **translation equivariant** — checked in this notebook to machine precision.
# - **Shapes:** $n_\text{out} = \lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1$; transposed convolutions
#   invert it, with `output_padding` to pick among odd sizes. Print shapes at every layer.
# - **Receptive fields** grow by $(k-1)\,d$ times the product of earlier strides per layer; pooling,
#   strides and dilation make them grow fast. The effective field is a bump, not a square.
# - **Modern CNN recipe:** 3×3 convs in blocks, batch norm after each, double the channels when
#   you halve the resolution, global pooling before a small classifier.
# - **Dimensions:** `Conv1d` for sequences (flatten, don't pool, when position matters),
#   `Conv2d` for images, `Conv3d` for volumes (memory grows with the cube of the side: small
#   batches, checkpointing); transposed convs and U-Net skips for dense outputs.
# - **Debug by looking:** overfit one batch, trace shapes with hooks, look at filters, feature maps
#   and misclassified examples — and always compare with a baseline.
