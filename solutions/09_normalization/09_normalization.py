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
# # Chapter 9 — Batch Normalization & Layer Normalization
#
# Deep networks are fragile: change the initialization or the learning rate a little and
# training stalls or blows up. Normalization layers are the cheapest, most widely used cure.
# They appear in nearly every modern architecture — batch norm in CNNs, layer norm in every
# transformer — and they come with a surprising number of traps. This chapter shows you what
# they compute, measures what they buy you, and has you build one yourself.
#
# **What you will learn**
# - why normalization helps — the famous "internal covariate shift" story, and what
#   experiments say instead;
# - exactly what batch norm computes in training and in evaluation, running statistics
#   included (with the variance detail that trips up almost every from-scratch version);
# - its limits: small batches, train/eval modes, sequences;
# - layer norm, and why transformers use it; group, instance and RMS norm;
# - using them in PyTorch: placement, `bias=False`, the common mistakes;
# - batch norm from scratch, matching `nn.BatchNorm1d` and `nn.BatchNorm2d` to the last digit.
#
# **Prerequisites:** chapters 2–4 (autograd, modules, the training loop), 6 (MLPs, He
# initialization), 7 (CNNs) and 8 (residual blocks, for exercise 9.5).
#
# **Expected time:** 2–3 hours, exercises included. The notebook runs top to bottom in about
# half a minute on a laptop CPU: every experiment is small on purpose.
#
# Exercises are marked **Exercise 9.k**: write your answer where it says `# YOUR CODE HERE`,
# then run the test cell below it. A failing test says what it expected, what it got, and
# gives a hint. Hidden tests run when your notebook is graded, so make your code correct, not
# just green.

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import checks
from helpers.train import accuracy, fit

device = helpers.setup(seed=0, threads=1)  # tiny models: one thread avoids splitting overhead
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# **The data.** Most experiments use the 1,797 handwritten digits of scikit-learn (8×8 grey
# images, 10 classes): small enough to train a dozen networks in seconds, real enough for
# the effects to show. We keep a fixed split: 1,437 images to train on, 360 to test on.

# %%
X_all, y_all = helpers.data.digits()  # (1797, 1, 8, 8) in [0, 1], labels (1797,)
order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
X_train, y_train = X_all[order[:1437]].to(device), y_all[order[:1437]].to(device)
X_test, y_test = X_all[order[1437:]].to(device), y_all[order[1437:]].to(device)
print("train", tuple(X_train.shape), "| test", tuple(X_test.shape))

# %% [markdown]
# **Two small tools for all experiments.** `Batches` serves shuffled mini-batches of tensors
# that are already in memory (what `DataLoader(TensorDataset(X, y), shuffle=True)` does, with
# less overhead). With `steps=k` it draws exactly `k` batches instead of one epoch, so that
# runs with different batch sizes get the same number of updates. `train` wraps the course's
# `helpers.train.fit` and records the test accuracy after every epoch; a run whose loss
# becomes NaN (it *diverged*) is recorded as NaN instead of stopping the notebook.

# %%
class Batches:
    """Mini-batches (X[idx], y[idx]): one shuffled epoch, or `steps` batches drawn at random."""

    def __init__(self, X, y, batch_size=64, steps=None, seed=0):
        self.X, self.y, self.batch_size, self.steps, self.seed = X, y, batch_size, steps, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        if self.steps is None:
            perm = torch.randperm(len(self.y), generator=g).to(self.X.device)
            chunks = perm.split(self.batch_size)
        else:
            chunks = (torch.randint(len(self.y), (self.batch_size,), generator=g).to(self.X.device)
                      for _ in range(self.steps))
        for idx in chunks:
            yield self.X[idx], self.y[idx]


# %%
def train(model, X, y, lr, epochs=1, batch_size=64, steps=None, optimizer="sgd",
          X_val=None, y_val=None):
    """Train `model` (moved to `device`); return fit's history, with 'val_acc' per epoch."""
    model.to(device)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    val = [(X_test if X_val is None else X_val, y_test if y_val is None else y_val)]
    try:
        return fit(model, Batches(X, y, batch_size, steps), F.cross_entropy, opt, epochs=epochs,
                   val_loader=val, metrics={"acc": accuracy}, progress=False)
    except FloatingPointError:  # the loss became NaN or infinite: the run diverged
        return {"train_loss": [math.nan] * epochs, "val_acc": [math.nan] * epochs}


# %% [markdown]
# ## 9.1 Why normalization matters
#
# As data flows forward through a deep network, every layer rescales it. If each layer
# multiplies the typical size of the activations by 0.6, twenty layers multiply it by
# $0.6^{20} \approx 4 \times 10^{-5}$: the signal — and with it the gradient — all but vanishes.
# If each multiplies by 1.5, it explodes. Chapter 6 fixed the *starting point* with careful
# initialization (He init for ReLU). Normalization goes further: it rescales the activations
# *at every layer, at every step*, whatever the weights have become.
#
# Let us watch the signal through a 20-layer ReLU MLP at initialization, on a batch of 256
# digits. We measure how much each activation *differs from image to image* (its standard
# deviation over the batch, averaged over the 64 features): that variation is what carries
# information about the input. Three networks: PyTorch's default init, He init, and default
# init plus a batch-norm layer after every linear layer.

# %%
def activation_stds(depth=20, width=64, init="default", norm=False):
    """Spread over the batch of the activations after each Linear(-BatchNorm)-ReLU layer."""
    torch.manual_seed(0)
    h, stds = X_train[:256].flatten(1), []  # (256, 64)
    with torch.no_grad():
        for _ in range(depth):
            layer = nn.Linear(h.shape[1], width).to(device)
            if init == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
            h = layer(h)
            if norm:
                h = nn.BatchNorm1d(width).to(device)(h)  # a fresh layer is in training mode
            h = torch.relu(h)
            stds.append(h.std(dim=0).mean().item())  # over images, averaged over features
    return stds


# %%
fig, ax = plt.subplots()
layers = range(1, 21)
for label, kwargs in [("default init", {}), ("He init", {"init": "he"}),
                      ("default init + batch norm", {"norm": True})]:
    ax.plot(layers, activation_stds(**kwargs), marker="o", ms=3, label=label)
ax.set(yscale="log", xlabel="layer", ylabel="std over images (log scale)",
       title="How much activations differ between images, at initialization")
ax.legend()
plt.show()

# %% [markdown]
# Notice the three behaviours. With the default init the signal shrinks by a constant factor
# (about 2.5) per layer — a straight line on the log scale — and is some ten million times
# smaller at layer 20: the output hardly depends on the input at all, and neither does the
# gradient. He init keeps it within a factor of a few, *at the start* (training moves the
# weights away from their careful initial scale). Batch norm keeps it at the same size at every
# layer, by construction, whatever the init. That robustness is behind the benefits usually
# listed for normalization:
#
# - **faster training**, because **larger learning rates** stay stable (we measure this in 9.2.3);
# - **less sensitivity to initialization** (the plot above);
# - a mild **regularization** effect, from the noise of batch statistics;
# - **deeper networks** become trainable (together with the residual connections of chapter 8).
#
# You rarely need it in a shallow network that already trains stably; you almost always want
# it in a deep one.
#
# ## 9.2 Batch normalization
#
# ### 9.2.1 The problem it was invented for: internal covariate shift
#
# Ioffe and Szegedy (2015) introduced batch norm with this argument: while the network trains,
# the weights of layers 1 and 2 change, so the *distribution of the inputs* of layer 3 changes
# too — its mean drifts, its spread grows or shrinks. They called this **internal covariate
# shift**: layer 3 keeps chasing a moving target, which forces small learning rates.
# Normalizing each layer's inputs to a fixed mean and variance should remove the shift.
#
# The story is intuitive and still repeated everywhere. It is also, as far as experiments can
# tell, **not why batch norm works**. Santurkar et al. (2018, "How does batch normalization
# help optimization?") injected deliberate, random shifts *after* every batch-norm layer —
# far more covariate shift than a plain network ever has — and the network still trained
# about as well as with ordinary batch norm. What they found instead is that batch norm makes
# the loss landscape **smoother**: the loss and its gradient change more gently from one step
# to the next, so large steps stay safe. You will repeat a version of their experiment in
# 9.2.3, once you know exactly what batch norm computes.
#
# ### 9.2.2 How batch normalization computes
#
# Take a batch of $m$ values $x_1, \dots, x_m$ of **one feature** (one channel). In training
# mode, batch norm
#
# 1. computes the batch statistics
#    $$\mu_B = \frac{1}{m}\sum_{i=1}^{m} x_i, \qquad
#      \sigma_B^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i - \mu_B)^2 \quad\text{(the biased variance, divided by } m\text{)};$$
# 2. normalizes, with a small $\epsilon$ (PyTorch: $10^{-5}$) that keeps the division safe:
#    $$\hat{x}_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}};$$
# 3. scales and shifts with two learned parameters per feature, $\gamma$ (`weight`, starts at 1)
#    and $\beta$ (`bias`, starts at 0):
#    $$y_i = \gamma\, \hat{x}_i + \beta.$$
#
# Step 3 gives the network its freedom back: with $\gamma = \sqrt{\sigma_B^2 + \epsilon}$ and
# $\beta = \mu_B$ it could undo the normalization entirely. What batch norm changes is the
# *parametrization* — the scale of a feature is now one number, $\gamma$, instead of a product
# of many weights — and that is what makes optimization easier.
#
# For a `(B, C)` input, "one feature" is a column: the statistics are taken over the batch,
# $m = B$. For images `(B, C, H, W)` (`BatchNorm2d`) they are taken per channel over the batch
# *and* all positions, $m = B \cdot H \cdot W$, because a convolution treats every position
# alike.
#
# **Evaluation mode.** At test time a prediction must not depend on which other images happen
# to share its batch — and a batch may hold a single image. So in training mode batch norm
# also keeps **running estimates** of the mean and variance, exponential moving averages with
# `momentum` $= 0.1$ (the weight of the *new* value; the opposite of an optimizer's momentum):
#
# $$\mu_{\text{run}} \leftarrow (1 - 0.1)\,\mu_{\text{run}} + 0.1\,\mu_B, \qquad
#   \sigma^2_{\text{run}} \leftarrow (1 - 0.1)\,\sigma^2_{\text{run}} + 0.1\,\frac{m}{m-1}\,\sigma_B^2 .$$
#
# Look twice at the last factor: PyTorch **normalizes with the biased variance** but **stores
# the unbiased one** ($\frac{m}{m-1}\sigma_B^2$, divided by $m - 1$) in `running_var`, because
# the running value estimates the variance of the whole data set. Many from-scratch versions
# found online get this wrong. In evaluation mode (`model.eval()`) the running statistics replace
# the batch statistics, and the layer is a fixed affine map of its input.
#
# Let us check all of that against `nn.BatchNorm1d` on a tiny batch.

# %%
x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0], [6.0, 30.0]])  # (B=4, C=2)
bn = nn.BatchNorm1d(2)  # weight 1, bias 0, running_mean 0, running_var 1
out = bn(x)  # training mode: batch statistics, and one update of the running statistics

mean = x.mean(dim=0)  # (2,): one mean per feature, over the batch
var_biased = x.var(dim=0, unbiased=False)  # divided by m = 4: used to normalize
var_unbiased = x.var(dim=0, unbiased=True)  # divided by m - 1 = 3: stored
by_hand = (x - mean) / torch.sqrt(var_biased + bn.eps)
print("output matches the formula:  ", torch.allclose(out, by_hand, atol=1e-6))
print("running_mean = 0.9*0 + 0.1*mean:", torch.allclose(bn.running_mean, 0.1 * mean))
print("running_var uses the unbiased variance:",
      torch.allclose(bn.running_var, 0.9 + 0.1 * var_unbiased),
      "| the biased one:", torch.allclose(bn.running_var, 0.9 + 0.1 * var_biased))

# %% [markdown]
# And in evaluation mode the output is $\gamma\,(x - \mu_{\text{run}})/\sqrt{\sigma^2_{\text{run}}
# + \epsilon} + \beta$, the same map for every sample, whatever else is in the batch:

# %%
bn.eval()
eval_by_hand = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
print("eval output uses the running statistics:", torch.allclose(bn(x), eval_by_hand, atol=1e-6))
print("each row alone gives the same result:   ",
      torch.allclose(torch.cat([bn(row[None]) for row in x]), bn(x), atol=1e-6))
print("parameters:", [n for n, _ in bn.named_parameters()],
      "| buffers:", [n for n, _ in bn.named_buffers()])

# %% [markdown]
# Buffers (`running_mean`, `running_var`, `num_batches_tracked`) are part of the state dict
# and move with `.to(device)`, but the optimizer never sees them: they are updated by the
# forward pass itself — even under `torch.no_grad()`, as you will see in 9.4.5.
#
# ### 9.2.3 Why batch normalization helps — measured
#
# The usual list has five reasons: a smoother loss landscape, less internal covariate shift,
# regularization, robustness to initialization, and larger learning rates. Let us test two of
# them at once, with the experiment of Santurkar et al. in miniature. Three 6-layer MLPs on the
# digits, trained for 3 epochs with SGD (momentum 0.9) at learning rates from 0.01 to 1:
#
# - **plain**: no normalization, He init (the best a plain network can do);
# - **batch norm**: `Linear → BatchNorm1d → ReLU`;
# - **batch norm + shift**: the same, plus a `RandomShift` after every batch norm that scales
#   and shifts each feature by fresh random amounts *at every training step* — deliberately
#   injected covariate shift.
#
# If reducing covariate shift were the point, the third network should do worse than the plain
# one. **Target:** both batch-norm networks reach ≥ 90 % test accuracy at a learning rate
# (0.3) at which the plain network fails (diverges, or stays below 20 %).

# %%
class RandomShift(nn.Module):
    """Training only: scale each feature by exp(s * N(0, 1)) and shift it by s * N(0, 1)."""

    def __init__(self, num_features, strength=0.25):
        super().__init__()
        self.num_features, self.strength = num_features, strength

    def forward(self, x):  # (B, C)
        if not self.training:
            return x
        noise = torch.randn(2, self.num_features, device=x.device) * self.strength
        return x * noise[0].exp() + noise[1]


# %%
def make_mlp6(kind, width=64, depth=6):
    """kind: 'plain' (He init), 'batch norm' or 'batch norm + shift'."""
    layers, fan_in = [], 64
    for _ in range(depth):
        linear = nn.Linear(fan_in, width, bias=kind == "plain")
        if kind == "plain":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if kind != "plain":
            layers.append(nn.BatchNorm1d(width))
        if kind == "batch norm + shift":
            layers.append(RandomShift(width))
        layers.append(nn.ReLU())
        fan_in = width
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(width, 10))


# %%
learning_rates = [0.01, 0.1, 0.3, 1.0]
sweep = {}  # kind -> final test accuracy per learning rate (NaN = diverged)
for kind in ["plain", "batch norm", "batch norm + shift"]:
    sweep[kind] = []
    for lr in learning_rates:
        torch.manual_seed(0)
        history = train(make_mlp6(kind), X_train, y_train, lr=lr, epochs=3)
        sweep[kind].append(history["val_acc"][-1])
    print(f"{kind:20s}", "  ".join("diverged" if math.isnan(a) else f"{a:.1%}" for a in sweep[kind]))

# %%
fig, ax = plt.subplots()
for kind, accs in sweep.items():
    line, = ax.plot(learning_rates, accs, marker="o", label=kind)
    diverged = [lr for lr, a in zip(learning_rates, accs) if math.isnan(a)]
    ax.plot(diverged, [0.1] * len(diverged), "x", ms=10, mew=2, color=line.get_color())
ax.axhline(0.1, color="0.6", ls=":", lw=1)
ax.set(xscale="log", ylim=(0, 1.02), xlabel="learning rate (SGD, momentum 0.9)",
       ylabel="test accuracy after 3 epochs",
       title="6-layer MLPs on digits: x marks a run that diverged (NaN loss)")
ax.legend(loc="lower left")
plt.show()
plain_failed = math.isnan(sweep["plain"][2]) or sweep["plain"][2] < 0.2
bn_at_03 = min(sweep["batch norm"][2], sweep["batch norm + shift"][2])
print("reached the target:", plain_failed and bn_at_03 >= 0.9)

# %% [markdown]
# Read the figure from left to right. The plain network trains only at the smallest learning
# rate; from 0.1 on it is stuck at chance or diverges. Both batch-norm networks stay above 90 %
# over a 30-fold range of learning rates — and the one drowned in injected covariate shift is
# nearly as good as the clean one. Reducing covariate shift is not what makes batch norm work; keeping the
# optimization well behaved at large steps is. (At lr = 1 even batch norm struggles: nothing
# is unconditionally stable.)
#
# ### 9.2.4 Limits of batch normalization
#
# 1. **It needs large enough batches.** The batch mean is an estimate whose noise shrinks like
#    $\sigma / \sqrt{m}$: small batches give noisy statistics, and a batch of 2 gives a
#    degenerate one (below).
# 2. **Training and evaluation behave differently**, so `model.train()` and `model.eval()`
#    matter. Forgetting `eval()` is one of the most common bugs in deep learning (9.4.5,
#    exercise 9.2).
# 3. **Sequences fit it badly.** Statistics pooled over time steps mix early and late steps,
#    padding and real tokens, and at generation time there is one sequence, one step at a
#    time (9.3, exercise 9.4).
# 4. **Samples in a batch are coupled**: in training mode each sample's output depends on the
#    other samples in its batch.
#
# The first point, measured on the 64 pixel features of the digits: the spread of the batch
# mean over 200 random batches, for growing batch sizes.

# %%
pixels = X_train.flatten(1)  # (1437, 64)
sizes = [2, 4, 8, 16, 32, 64, 128]
g = torch.Generator().manual_seed(0)
noise = []
for m in sizes:
    idx = torch.randint(len(pixels), (200, m), generator=g).to(device)  # 200 batches of m rows
    batch_means = pixels[idx].mean(dim=1)  # (200, 64): one mean per batch and feature
    noise.append(batch_means.std(dim=0).mean().item())  # spread over batches, averaged
sigma = pixels.std(dim=0).mean().item()
fig, ax = plt.subplots()
ax.plot(sizes, noise, marker="o", label="measured spread of the batch mean")
ax.plot(sizes, [sigma / math.sqrt(m) for m in sizes], "--", label=r"$\sigma/\sqrt{m}$")
ax.set(xscale="log", yscale="log", xlabel="batch size m", ylabel="std of the batch mean",
       title="Batch statistics get noisy as batches shrink")
ax.set_xticks(sizes, [str(m) for m in sizes])
ax.legend()
plt.show()

# %% [markdown]
# The measured noise follows $\sigma/\sqrt{m}$ almost exactly: a batch of 2 has a mean about
# 8 times noisier than a batch of 128. And at $m = 2$ something worse happens. For two values
# $a$ and $b$, the mean is $(a+b)/2$ and the biased variance $((a-b)/2)^2$, so
# $\hat{x} = \pm 1$ whatever $a$ and $b$ are (unless they are equal): **all information about
# magnitudes is gone**. Exercise 9.6 shows what that does to training.
#
# Point 4 is easy to see too: the same image, normalized in two different batches, comes out
# differently in training mode.

# %%
bn = nn.BatchNorm1d(64).to(device)  # training mode
print("batch of 2, distinct outputs (rounded):", bn(pixels[:2]).round(decimals=3).unique().tolist())
first_in_batch_a = bn(pixels[:32])[0]
first_in_batch_b = bn(torch.cat([pixels[:1], pixels[100:131]]))[0]
print("same image, two batches: max difference",
      f"{(first_in_batch_a - first_in_batch_b).abs().max().item():.3f}")

# %% [markdown]
# (The zeros are pixels equal in both images — always-blank corners — where the difference is
# 0 and $\epsilon$ saves the division; values like 0.995 come from small differences, where
# $\epsilon$ starts to matter.)
#
# ## 9.3 Layer normalization
#
# Layer normalization (Ba, Kiros and Hinton, 2016) keeps the formula and changes the axis: it
# normalizes **all features of one sample**, instead of one feature across the batch. For an
# input $x$ of shape `(B, d)`:
#
# $$\text{batch norm:}\quad \hat{x}_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}},
#   \quad \mu_j = \frac{1}{B}\sum_{i=1}^{B} x_{ij} \qquad\text{(over the batch, per feature } j)$$
#
# $$\text{layer norm:}\quad \hat{x}_{ij} = \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}},
#   \quad \mu_i = \frac{1}{d}\sum_{j=1}^{d} x_{ij} \qquad\text{(over the features, per sample } i)$$
#
# with the biased variance in both, and a learned $\gamma, \beta$ per feature afterwards. The
# consequences:
#
# | | batch norm | layer norm |
# |---|---|---|
# | statistics over | the batch (and positions) | the features of one sample |
# | depends on the batch size | yes, fails for tiny batches | no, works with a batch of 1 |
# | train vs eval | different (batch vs running statistics) | identical |
# | running statistics | yes (buffers) | none |
# | learned parameters | $\gamma, \beta$ per feature (channel) | $\gamma, \beta$ per normalized element |
# | typical home | CNNs, MLPs with large batches | transformers, RNNs, small batches |
#
# Check it by hand, and check the property that matters: one sample's output does not depend
# on the rest of the batch, in either mode.

# %%
x = torch.randn(8, 5) * 3 + 1  # (B, d)
ln = nn.LayerNorm(5)  # weight 1, bias 0
mu = x.mean(dim=1, keepdim=True)  # (8, 1): one mean per sample
var = x.var(dim=1, unbiased=False, keepdim=True)
print("matches the formula:", torch.allclose(ln(x), (x - mu) / torch.sqrt(var + ln.eps), atol=1e-5))
print("sample 0 alone gives the same output:", torch.allclose(ln(x[:1]), ln(x)[:1], atol=1e-6))
print("buffers:", list(ln.named_buffers()), "| parameters:",
      [(n, tuple(p.shape)) for n, p in ln.named_parameters()])

# %% [markdown]
# **Which values share one mean and variance?** The picture below answers it for the four
# normalizations you will meet, on a batch of images `(B, C, H, W)`. Each square stands for
# the $H \times W$ values of one image (row) in one channel (column); squares of the same
# colour are normalized together. Group norm and instance norm are introduced in 9.4.3.

# %%
B_demo, C_demo = 3, 6
groups = {
    "batch norm": torch.arange(C_demo).repeat(B_demo, 1),  # one group per channel
    "layer norm": torch.arange(B_demo)[:, None].repeat(1, C_demo),  # one group per sample
    "instance norm": torch.arange(B_demo * C_demo).reshape(B_demo, C_demo),
    "group norm (2 groups)": (torch.arange(B_demo)[:, None] * 2 + torch.arange(C_demo) // 3),
}
fig, axes = plt.subplots(1, 4, figsize=(13, 2.8))
for ax, (name, ids) in zip(axes, groups.items()):
    ax.imshow(ids % 20, cmap="tab20", vmin=0, vmax=19)
    ax.set_xticks(range(C_demo), [f"c{c}" for c in range(C_demo)])
    ax.set_yticks(range(B_demo), [f"image {b}" for b in range(B_demo)])
    ax.set_xticks([c - 0.5 for c in range(1, C_demo)], minor=True)
    ax.set_yticks([b - 0.5 for b in range(1, B_demo)], minor=True)
    ax.grid(which="major", visible=False)
    ax.grid(which="minor", color="white", lw=2)
    ax.set(title=name, xlabel="channel")
fig.suptitle("Same colour = normalized together (each square holds the H×W values)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Batch norm is the only one whose colours run *down* the columns, across images: it is the
# only one that mixes samples, needs running statistics, and behaves differently in training
# and evaluation.
#
# ### Why transformers use layer norm
#
# A transformer works on sequences of token vectors, `(B, T, d_model)`. Layer norm normalizes
# each token's vector on its own, over its `d_model` features. That is exactly what language
# and sequence models need:
#
# - **any batch size, any length**: generating text runs with one sequence, one new token at a
#   time; fine-tuning large models often runs with batches of 1–8;
# - **no leakage between positions or samples**: batch statistics over `(B, T)` would mix in
#   padding tokens and — in a causal model — *future* tokens of the same sequence;
# - **the same computation in training and at inference**: no running statistics to go stale.
#
# The original transformer (2017) put the norm after the residual addition ("post-norm",
# `x = LN(x + f(x))`, still the form of many tutorials); GPT-2 and almost every large model since
# put it *before* the sublayer ("pre-norm", `x = x + f(LN(x))`), which keeps the residual path
# clean and trains more stably when deep. Many recent models (LLaMA, for example) use **RMS
# norm**, a cheaper cousin (9.4.3). A padded batch shows the first two points: change how much
# padding a sequence gets, and layer norm's output for the real tokens does not move, while
# batch norm's does.

# %%
torch.manual_seed(0)
d_model = 16
tokens = torch.randn(1, 5, d_model)  # (B=1, T=5, d_model): one sentence of 5 tokens
short_pad = torch.cat([tokens, torch.zeros(1, 3, d_model)], dim=1)  # (1, 8, d_model)
long_pad = torch.cat([tokens, torch.zeros(1, 20, d_model)], dim=1)  # (1, 25, d_model)
ln, bn = nn.LayerNorm(d_model), nn.BatchNorm1d(d_model)


def batch_norm_tokens(x):  # BatchNorm1d wants (B, C, T): statistics over batch AND time
    return bn(x.transpose(1, 2)).transpose(1, 2)


for name, norm in [("layer norm", ln), ("batch norm", batch_norm_tokens)]:
    change = (norm(short_pad)[:, :5] - norm(long_pad)[:, :5]).abs().max().item()
    print(f"{name}: real tokens change by {change:.2e} when the padding grows from 3 to 20")

# %% [markdown]
# ## 9.4 Normalization in PyTorch
#
# ### 9.4.1 Batch norm: shapes, placement, and `bias=False`
#
# | layer | input | statistics per channel over |
# |---|---|---|
# | `nn.BatchNorm1d(C)` | `(B, C)` or `(B, C, L)` | `B` (and `L`) |
# | `nn.BatchNorm2d(C)` | `(B, C, H, W)` | `B, H, W` |
# | `nn.BatchNorm3d(C)` | `(B, C, D, H, W)` | `B, D, H, W` |
#
# The channel dimension is always dimension 1 — which is why a `(B, T, C)` sequence has to be
# transposed to `(B, C, T)` first, as in the padding demo above. The standard placement is
# **Conv → BN → ReLU** (Linear → BN → ReLU in an MLP); Conv → ReLU → BN also trains, and
# exercise 9.5 compares placements.
#
# **Set `bias=False` on the layer before a batch norm.** Batch norm subtracts the batch mean,
# so any constant the layer adds is removed again, and $\beta$ plays the role of the bias.
# Proof by experiment: two convolutions that differ only in their bias give identical outputs
# after batch norm.

# %%
torch.manual_seed(0)
conv = nn.Conv2d(1, 8, 3, padding=1)  # bias=True
conv_shifted = copy.deepcopy(conv)
with torch.no_grad():
    conv_shifted.bias += torch.randn(8) * 5  # a very different bias
bn_a, bn_b = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
x = X_train[:16].cpu()  # (16, 1, 8, 8)
print("outputs identical:", torch.allclose(bn_a(conv(x)), bn_b(conv_shifted(x)), atol=1e-5))
print("wasted parameters in a Conv2d(64, 128, 3) before BN:", nn.Conv2d(64, 128, 3).bias.numel())

# %% [markdown]
# **A CNN with batch norm.** Here is the standard pattern in a small digits classifier, which
# we also use later to study evaluation mode. Like most CNNs it ends on small feature maps
# (2×2 here, 7×7 in an ImageNet ResNet). **Target:** ≥ 97 % test accuracy in 4 epochs.

# %%
def make_bn_cnn():
    """(B, 1, 8, 8) -> (B, 10): three Conv-BN-ReLU stages, two poolings, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 32, 2, 2)
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )


torch.manual_seed(0)
bn_cnn = make_bn_cnn()
history = train(bn_cnn, X_train, y_train, lr=0.05, epochs=4)
bn_cnn_accuracy = history["val_acc"][-1]
print("test accuracy per epoch:", [f"{a:.1%}" for a in history["val_acc"]])
print("reached the target (>= 97 %):", bn_cnn_accuracy >= 0.97)

# %% [markdown]
# ### 9.4.2 Layer norm, and a transformer block
#
# `nn.LayerNorm(normalized_shape)` normalizes over the **last** dimensions, given by
# `normalized_shape`: `nn.LayerNorm(d_model)` on `(B, T, d_model)` normalizes each token;
# `nn.LayerNorm([C, H, W])` on images normalizes each whole image. Here is a pre-norm
# transformer block, the form used by GPT-2 and its successors. (Chapter 11 builds attention
# itself; here it is a black box that mixes information between tokens.)

# %%
class PreNormBlock(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model): x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, d_model=32, n_heads=4):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # the residual path stays untouched
        return x + self.mlp(self.ln2(x))


block = PreNormBlock()
x = torch.randn(2, 7, 32)  # (B, T, d_model)
print(tuple(block(x).shape), "| the same block at batch size 1:", tuple(block(x[:1]).shape))
print("sample 0 is independent of sample 1:", torch.allclose(block(x[:1]), block(x)[:1], atol=1e-5))

# %% [markdown]
# ### 9.4.3 Other normalizations: instance, group, RMS
#
# - **Instance norm** (`nn.InstanceNorm2d`): statistics per sample *and* per channel, over
#   `H, W` only. It erases each image's per-channel contrast, which is what style transfer
#   wants. Careful: PyTorch's default is `affine=False` (no $\gamma, \beta$).
# - **Group norm** (`nn.GroupNorm(G, C)`, Wu and He 2018): splits the `C` channels into `G`
#   groups and normalizes each group of each sample. No batch dependence, so it is the usual
#   replacement for batch norm when batches are small (detection, segmentation, 3-D volumes).
#   It contains the others as extremes: `G = 1` is layer norm over `(C, H, W)`, `G = C` is
#   instance norm.
# - **RMS norm** (`nn.RMSNorm`, Zhang and Sennrich 2019): layer norm without the mean,
#   $y = \gamma\, x / \sqrt{\tfrac{1}{d}\sum_j x_j^2 + \epsilon}$. Cheaper, and in practice as
#   good; it is the norm of LLaMA and most recent language models.
#
# The extremes, checked (with the layers' default, untrained $\gamma = 1, \beta = 0$), and RMS
# norm by hand:

# %%
x = torch.randn(4, 6, 5, 5) * 2 + 3  # (B, C, H, W)
print("GroupNorm(1, C) == LayerNorm([C, H, W]):",
      torch.allclose(nn.GroupNorm(1, 6)(x), nn.LayerNorm([6, 5, 5])(x), atol=1e-5))
print("GroupNorm(C, C) == InstanceNorm2d(C):   ",
      torch.allclose(nn.GroupNorm(6, 6)(x), nn.InstanceNorm2d(6)(x), atol=1e-5))
tokens = torch.randn(3, 4, 8)  # (B, T, d)
rms = nn.RMSNorm(8, eps=1e-6)
by_hand = tokens / torch.sqrt(tokens.pow(2).mean(dim=-1, keepdim=True) + 1e-6)
print("RMSNorm matches the formula:           ", torch.allclose(rms(tokens), by_hand, atol=1e-5))

# %% [markdown]
# | normalization | statistics over | typical use |
# |---|---|---|
# | batch norm | batch (+ positions), per channel | CNNs and MLPs with batches of 16+ |
# | layer norm | features of one sample | transformers, RNNs, any batch size |
# | RMS norm | features of one sample, no mean | large language models |
# | instance norm | positions of one sample and channel | style transfer, some GANs |
# | group norm | groups of channels of one sample | small batches: detection, segmentation, 3-D |
#
# ### 9.4.4 Batch norm from scratch
#
# The best way to be sure you understand batch norm is to write it, and compare it number for
# number with PyTorch's — in training and evaluation mode, running statistics included. That
# is **exercise 9.3** below: a `MyBatchNorm1d` for `(B, C)` inputs and a `MyBatchNorm2d` for
# images, checked against `nn.BatchNorm1d` and `nn.BatchNorm2d`.
#
# ### 9.4.5 Common mistakes and how to catch them
#
# **Mistake 1: forgetting `model.eval()`.** In training mode batch norm normalizes each
# evaluation batch with its own statistics — predictions then depend on the batch — and it
# *updates the running statistics with your test data*. `torch.no_grad()` does not prevent
# that: it switches off gradients, not training mode. Exercise 9.2 measures the damage; here is
# the silent side effect.

# %%
probe = copy.deepcopy(bn_cnn)  # a copy, so bn_cnn itself stays clean
before = probe[1].running_mean.clone()
with torch.no_grad():  # no gradients... but still training mode
    probe.train()(X_test[:64])
print("running statistics changed by an 'evaluation' under no_grad:",
      not torch.equal(before, probe[1].running_mean))

# %% [markdown]
# **Mistake 2: a batch of one.** With one value per channel there is no variance to estimate,
# and PyTorch refuses in training mode. The usual culprit is the last, incomplete batch of an
# epoch: `DataLoader(..., drop_last=True)` avoids it. `BatchNorm2d` accepts a single image
# (it still has `H × W` values per channel) but then silently acts like instance norm.

# %%
try:
    nn.BatchNorm1d(4)(torch.randn(1, 4))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# **Mistake 3: a bias before batch norm** (9.4.1) wastes parameters. **Mistake 4: batch norm
# in the wrong place** — on sequences, or with tiny batches — is the subject of exercises 9.4
# and 9.6. When you suspect your batch-norm layers, two checks help: do the running
# statistics move during training, and do training and evaluation mode actually differ?

# %%
def check_batch_norm(model, x):
    """Print whether the first batch-norm layer of `model` updates and switches modes."""
    model = copy.deepcopy(model)  # leave the caller's model untouched
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    bn_layer = next((m for m in model.modules() if isinstance(m, kinds)), None)
    if bn_layer is None:
        print("no batch-norm layer found")
        return
    before = bn_layer.running_mean.clone()
    with torch.no_grad():
        out_train = model.train()(x)
        out_eval = model.eval()(x)
    print("running mean updated in train mode:", not torch.equal(before, bn_layer.running_mean))
    print("train and eval outputs differ:     ", not torch.allclose(out_train, out_eval))


check_batch_norm(bn_cnn, X_test[:64])

# %% [markdown]
# ## 9.5 Exercises
#
# ### Exercise 9.1 — Batch norm impact (★★, 2 points)
#
# See batch norm's effect on a CNN for yourself. (The classic version of this experiment uses
# CIFAR-10; the digits make the same point in seconds.)
#
# **Part a (1 point).** Write `make_cnn(use_bn)` returning an `nn.Sequential` that maps
# `(B, 1, 8, 8)` to logits `(B, 10)`, with, in this order:
#
# `conv(1→8)`, `conv(8→8)`, `MaxPool2d(2)`, `conv(8→16)`, `conv(16→16)`, `MaxPool2d(2)`,
# `Flatten`, `Linear(64→10)`,
#
# where every `conv(a→b)` is `nn.Conv2d(a, b, 3, padding=1)` followed by `nn.ReLU()` — and,
# when `use_bn` is true, by an `nn.BatchNorm2d(b)` **between** the convolution and the ReLU,
# with the convolution's bias switched off (`bias=False`). The tests check the layer order,
# the parameter counts (4,802 without batch norm, 4,850 with) and the output shape.
#
# **Part b (1 point).** For `use_bn` in `(False, True)` and `lr` in `(0.01, 0.1)`: call
# `torch.manual_seed(0)`, build the model, train it with `train(model, X_train, y_train,
# lr=lr, epochs=6)` (SGD with momentum 0.9, batches of 64), and store
#
# - `impact[(use_bn, lr)]`: the list of the 6 test accuracies, one per epoch
#   (`history["val_acc"]`);
# - `epochs_to_90[(use_bn, lr)]`: the first epoch (counting from 1) whose test accuracy is
#   ≥ 0.90, or `None` if none is.
#
# The tests check that the results are complete and consistent, and that the batch-norm CNN
# reaches ≥ 93 % at both learning rates while the plain one stays below 80 % at lr = 0.01.
#
# *Hints:* build the layers in a Python list and unpack it into `nn.Sequential(*layers)`;
# a helper `def conv(a, b)` that returns the 2 or 3 layers of one stage keeps it short.
# For `epochs_to_90`: `next((e + 1 for e, a in enumerate(accs) if a >= 0.9), None)`.

# %% nbgrader={"grade": false, "grade_id": "ex09_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_cnn(use_bn: bool) -> nn.Sequential:
    """(B, 1, 8, 8) -> (B, 10): four 3x3 conv stages (with or without batch norm), two pools."""
    ### BEGIN SOLUTION
    def conv(a, b):
        if use_bn:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        return [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]

    return nn.Sequential(*conv(1, 8), *conv(8, 8), nn.MaxPool2d(2),
                         *conv(8, 16), *conv(16, 16), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex09_1_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
plain_cnn, bn_cnn_91 = make_cnn(False), make_cnn(True)
checks.check_type(plain_cnn, nn.Sequential, "make_cnn(False)")
checks.check_module(plain_cnn, "make_cnn(False)", n_params=80 + 584 + 1168 + 2320 + 650,
                    example_input=torch.randn(5, 1, 8, 8), output_shape=(5, 10),
                    hint="convolutions with bias, no batch norm")
checks.check_module(bn_cnn_91, "make_cnn(True)",
                    n_params=72 + 576 + 1152 + 2304 + 2 * (8 + 8 + 16 + 16) + 650,
                    example_input=torch.randn(5, 1, 8, 8), output_shape=(5, 10),
                    hint="bias=False in the convolutions; each BatchNorm2d(b) has 2*b parameters")
kinds = [type(m).__name__ for m in bn_cnn_91]
expected_kinds = ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"] + \
    ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d", "Flatten", "Linear"]
checks.check_equal(kinds, expected_kinds, "the layer types of make_cnn(True), in order",
                   hint="Conv -> BatchNorm -> ReLU: the norm goes between conv and activation")
### BEGIN HIDDEN TESTS
checks.check_equal([type(m).__name__ for m in plain_cnn],
                   ["Conv2d", "ReLU"] * 2 + ["MaxPool2d"] + ["Conv2d", "ReLU"] * 2 +
                   ["MaxPool2d", "Flatten", "Linear"], "the layer types of make_cnn(False)")
convs = [m for m in bn_cnn_91 if isinstance(m, nn.Conv2d)]
checks.check(all(c.bias is None for c in convs), "with batch norm, every conv has bias=False.")
checks.check(all(c.bias is not None for c in plain_cnn if isinstance(c, nn.Conv2d)),
             "without batch norm, the convs keep their bias.")
checks.check_equal([(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs],
                   [(1, 8, (3, 3), (1, 1)), (8, 8, (3, 3), (1, 1)), (8, 16, (3, 3), (1, 1)),
                    (16, 16, (3, 3), (1, 1))], "the conv shapes")
checks.check_equal([m.num_features for m in bn_cnn_91 if isinstance(m, nn.BatchNorm2d)],
                   [8, 8, 16, 16], "the BatchNorm2d sizes")
checks.check(make_cnn(True) is not make_cnn(True), "make_cnn must build a new model per call.")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex09_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
impact = {}  # (use_bn, lr) -> list of 6 test accuracies
epochs_to_90 = {}  # (use_bn, lr) -> first epoch (1-based) with accuracy >= 0.90, or None
### BEGIN SOLUTION
for use_bn in (False, True):
    for lr in (0.01, 0.1):
        torch.manual_seed(0)
        history = train(make_cnn(use_bn), X_train, y_train, lr=lr, epochs=6)
        impact[(use_bn, lr)] = history["val_acc"]
        epochs_to_90[(use_bn, lr)] = next(
            (e + 1 for e, a in enumerate(history["val_acc"]) if a >= 0.9), None)
### END SOLUTION
for key, accs in impact.items():
    print(f"batch norm={key[0]!s:5} lr={key[1]:<4}: final {accs[-1]:.1%}, "
          f"90 % reached at epoch {epochs_to_90[key]}")

# %% nbgrader={"grade": true, "grade_id": "ex09_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
wanted = [(False, 0.01), (False, 0.1), (True, 0.01), (True, 0.1)]
checks.check_type(impact, dict, "impact")
checks.check_equal(sorted(impact), wanted, "the keys of impact",
                   hint="one entry per (use_bn, lr) pair, e.g. impact[(True, 0.1)]")
checks.check_equal(sorted(epochs_to_90), wanted, "the keys of epochs_to_90")
for key in wanted:
    checks.check_equal(len(impact[key]), 6, f"len(impact[{key}])", hint="6 epochs, one value each")
for use_bn in (False, True):
    for lr in (0.01, 0.1):
        first = next((e + 1 for e, a in enumerate(impact[(use_bn, lr)]) if a >= 0.9), None)
        checks.check_equal(epochs_to_90[(use_bn, lr)], first, f"epochs_to_90[{(use_bn, lr)}]",
                           hint="epochs count from 1; None when 0.90 is never reached")
### BEGIN HIDDEN TESTS
for key in wanted:
    checks.check(all(0.0 <= a <= 1.0 for a in impact[key] if not math.isnan(a)),
                 f"impact[{key}] holds values outside [0, 1].", got=impact[key])
checks.check(min(impact[(True, 0.01)][-1], impact[(True, 0.1)][-1]) >= 0.93,
             "the batch-norm CNN should reach >= 93 % at both learning rates.",
             ">= 0.93", (impact[(True, 0.01)][-1], impact[(True, 0.1)][-1]),
             "train make_cnn(True) for the True keys")
checks.check(impact[(False, 0.01)][-1] < 0.8,
             "the plain CNN at lr=0.01 should still be far from trained after 6 epochs.",
             "< 0.80", impact[(False, 0.01)][-1], "train make_cnn(False) for the False keys")
checks.check(epochs_to_90[(True, 0.01)] is not None and epochs_to_90[(True, 0.01)] <= 3,
             "batch norm at lr=0.01 should pass 90 % within 3 epochs.", "<= 3",
             epochs_to_90[(True, 0.01)])
### END HIDDEN TESTS

# %% [markdown]
# Your curves:

# %%
fig, ax = plt.subplots()
for (use_bn, lr), accs in impact.items():
    ax.plot(range(1, len(accs) + 1), accs, marker="o", ls="-" if use_bn else "--",
            label=f"{'with' if use_bn else 'without'} batch norm, lr={lr}")
ax.axhline(0.9, color="0.6", ls=":", lw=1)
ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02),
       title="The same CNN with and without batch norm")
ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.3))
plt.show()

# %% [markdown]
# With batch norm the CNN passes 90 % within two epochs at either learning rate. Without it,
# lr = 0.01 hardly moves in 6 epochs (the signal is tiny at PyTorch's default init, as in 9.1)
# and lr = 0.1 learns, but erratically. Same architecture, same data, same seed: the
# difference is the normalization.
#
# ### Exercise 9.2 — Train vs eval mode (★★, 2 points)
#
# `bn_cnn`, trained in 9.4.1, reaches about 99 % in evaluation mode. How much does forgetting
# `model.eval()` cost, and does the evaluation batch size matter then? And what if the
# evaluation data arrive *in order* — all the zeros, then all the ones, as they would from a
# folder per class, or from one patient or one sensor after another?
#
# **Part a.** Write `accuracy_in_mode(model, X, y, batch_size, train_mode)`: the fraction of
# correctly classified images (a Python `float`), computed in consecutive chunks of
# `batch_size` images (the last chunk may be smaller), without gradients, with the model in
# training mode if `train_mode` else evaluation mode. It must **leave the model exactly as it
# found it**: same mode, and running statistics unchanged — even though in training mode every
# forward pass updates them. Work on a copy: `copy.deepcopy(model)`.
#
# **Part b.** With `model_92` (a copy of `bn_cnn`) and evaluation batch sizes 1, 8 and 64, fill
#
# - `mode_results["eval"][batch_size]`: accuracy on the test set in evaluation mode;
# - `mode_results["train"][batch_size]`: the same in training mode (the forgotten `eval()`);
# - `mode_results["train_sorted"][batch_size]`: training mode on the test set **sorted by
#   class**, `X_sorted, y_sorted` (given);
#
# and answer in `answer_92` (a letter) **why** training mode hurts, and why order matters:
#
# - (a) in training mode gradients are computed during evaluation, which adds noise;
# - (b) in training mode each batch is normalized with its own statistics, so a prediction
#   depends on the other images in the batch: harmless for large shuffled batches, whose
#   statistics resemble the data set's, damaging for a batch of one image or of one class;
# - (c) in training mode dropout is active, and this network uses dropout;
# - (d) in training mode the weights are updated by every forward pass.
#
# The tests compare your function with an independent computation, check that the model is
# left untouched, and check your results against each other.

# %%
by_class = torch.argsort(y_test, stable=True)
X_sorted, y_sorted = X_test[by_class], y_test[by_class]  # all 0s first, then all 1s, ...
print("first 12 labels:", y_sorted[:12].tolist())

# %% nbgrader={"grade": false, "grade_id": "ex09_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
model_92 = copy.deepcopy(bn_cnn)


def accuracy_in_mode(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int,
                     train_mode: bool) -> float:
    """Accuracy of model on (X (N, ...), y (N,)) in chunks of batch_size, in train or eval mode."""
    ### BEGIN SOLUTION
    work = copy.deepcopy(model)  # running statistics may change: never on the caller's model
    work.train(train_mode)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = work(X[start:start + batch_size])
            correct += (logits.argmax(dim=1) == y[start:start + batch_size]).sum().item()
    return correct / len(y)
    ### END SOLUTION


mode_results = {"eval": {}, "train": {}, "train_sorted": {}}  # -> {batch_size: accuracy}
answer_92 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for batch_size in (1, 8, 64):
    mode_results["eval"][batch_size] = accuracy_in_mode(model_92, X_test, y_test, batch_size, False)
    mode_results["train"][batch_size] = accuracy_in_mode(model_92, X_test, y_test, batch_size, True)
    mode_results["train_sorted"][batch_size] = accuracy_in_mode(model_92, X_sorted, y_sorted,
                                                                batch_size, True)
answer_92 = "b"
### END SOLUTION
for mode, accs in mode_results.items():
    print(f"{mode:12s}:", "  ".join(f"batch {b}: {a:.1%}" for b, a in accs.items()))

# %% nbgrader={"grade": true, "grade_id": "ex09_2_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
net = copy.deepcopy(bn_cnn).eval()
state = {k: v.clone() for k, v in net.state_dict().items()}
got = accuracy_in_mode(net, X_test, y_test, 64, train_mode=False)
checks.check_type(got, float, "accuracy_in_mode(...)", hint="return a Python float: .item()")
with torch.no_grad():
    expected = (net(X_test).argmax(dim=1) == y_test).float().mean().item()
checks.check_close(got, expected, "eval-mode accuracy", atol=1e-6)
checks.check(not net.training, "accuracy_in_mode changed the model's mode.", "eval", "train",
             "work on copy.deepcopy(model), or restore the mode")
net.train()
accuracy_in_mode(net, X_test, y_test, 8, train_mode=True)
checks.check(net.training, "accuracy_in_mode changed the model's mode.", "train", "eval")
for name, value in net.state_dict().items():
    checks.check_equal(value, state[name], f"model.state_dict()['{name}'] after the call",
                       hint="a forward pass in training mode updates the running statistics: "
                            "evaluate a copy.deepcopy(model)")
### BEGIN HIDDEN TESTS
for batch_size, (Xe, ye) in [(8, (X_sorted, y_sorted)), (50, (X_test, y_test))]:
    reference = copy.deepcopy(bn_cnn).train()
    with torch.no_grad():
        hits = sum((reference(Xe[s:s + batch_size]).argmax(1) == ye[s:s + batch_size]).sum().item()
                   for s in range(0, len(ye), batch_size))
    checks.check_close(accuracy_in_mode(copy.deepcopy(bn_cnn), Xe, ye, batch_size, True),
                       hits / len(ye), f"train-mode accuracy with batches of {batch_size}",
                       atol=1e-6, hint="consecutive chunks X[s:s + batch_size], last one smaller")
checks.check_equal(sorted(mode_results), ["eval", "train", "train_sorted"], "the keys of mode_results")
for mode in mode_results:
    checks.check_equal(sorted(mode_results[mode]), [1, 8, 64], f"the keys of mode_results['{mode}']")
evals = list(mode_results["eval"].values())
checks.check(max(evals) - min(evals) < 1e-6 and evals[0] > 0.9,
             "in eval mode the batch size must not matter, and the accuracy should be > 90 %.",
             "three equal values > 0.9", evals)
checks.check_close(mode_results["train_sorted"][1], mode_results["train"][1],
                   "train mode with batches of 1, sorted vs shuffled (the order cannot matter)")
checks.check(mode_results["train_sorted"][8] < mode_results["eval"][8] - 0.1,
             "train mode on class-sorted batches of 8 should be far worse than eval mode.",
             got=mode_results["train_sorted"][8], hint="use X_sorted, y_sorted for train_sorted")
checks.check(mode_results["train"][64] > mode_results["eval"][64] - 0.03,
             "train mode on shuffled batches of 64 should be close to eval mode.",
             got=mode_results["train"][64])
checks.check_equal(answer_92, "b", "answer_92")
### END HIDDEN TESTS

# %% [markdown]
# Look at your numbers, and notice how well this bug hides. In evaluation mode the batch size
# changes nothing — each image is mapped by the same fixed function. In training mode, on
# shuffled batches of 64, the accuracy is nearly unchanged: the batch statistics resemble the
# running ones, and a quick benchmark would never notice. A batch of 1 normalizes each image by
# itself and loses a few points. But feed the same model *ordered* data — batches of 8 images
# of one digit — and about one prediction in four goes wrong: every batch is re-centred on its
# own class. Data
# arrive ordered all the time in production (one patient, one site, one request at a time);
# `model.eval()` is not optional.
#
# ### Exercise 9.3 — Batch norm from scratch (★★★, 3 points)
#
# Write `MyBatchNorm1d`, a drop-in replacement for `nn.BatchNorm1d` on `(B, C)` inputs, and
# extend it to `MyBatchNorm2d` for `(B, C, H, W)` inputs. Use the same names as PyTorch, so
# that the tests can compare them:
#
# - parameters `weight` (ones) and `bias` (zeros), shape `(C,)`;
# - buffers (`register_buffer`) `running_mean` (zeros), `running_var` (ones), both `(C,)`, and
#   `num_batches_tracked` (`torch.tensor(0)`, int64), incremented at every training-mode call.
#
# `forward`, in **training mode**: statistics over the dimensions in `self.reduce_dims`;
# normalize with the **biased** variance; update the running statistics with `momentum`,
# storing the **unbiased** variance (multiply by $m/(m-1)$, $m$ = values per channel), without
# recording the update in the autograd graph; raise a `ValueError` if there is only one value
# per channel ($m = 1$). In **evaluation mode**: normalize with the running statistics, update
# nothing. Both modes: scale by `weight` and shift by `bias`; never modify `x`.
#
# `MyBatchNorm2d` inherits everything and only needs its own `reduce_dims`.
#
# The tests feed the same batches to your layers and to `nn.BatchNorm1d` / `nn.BatchNorm2d`
# and compare the outputs, the running statistics after each batch, the evaluation-mode
# outputs, the gradients, other dtypes, `momentum` and `eps` values, and the `m = 1` case.
#
# *Hints:* a `(C,)` vector broadcasts against `(B, C, H, W)` after `.view(1, -1, 1, 1)`;
# `self._per_channel(v, x)` below does that for any number of dimensions.
# `x.mean(dim=self.reduce_dims)`, `x.var(dim=..., unbiased=False)`; update the buffers inside
# `with torch.no_grad():` and in place (`self.running_mean.mul_(1 - self.momentum)
# .add_(self.momentum * mean)`), so they stay buffers. $m$ is `x.numel() // x.shape[1]`.

# %% nbgrader={"grade": false, "grade_id": "ex09_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyBatchNorm1d(nn.Module):
    """Batch normalization of (B, C) inputs, matching nn.BatchNorm1d(num_features)."""

    reduce_dims = (0,)  # the statistics of channel c are taken over these dimensions

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        ### END SOLUTION

    @staticmethod
    def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A (C,) vector reshaped to broadcast along dimension 1 of x: (1, C, 1, ..., 1)."""
        return v.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        if self.training:
            m = x.numel() // x.shape[1]  # values per channel
            if m < 2:
                raise ValueError(f"Expected more than 1 value per channel when training, "
                                 f"got input of shape {tuple(x.shape)}")
            mean = x.mean(dim=self.reduce_dims)  # (C,)
            var = x.var(dim=self.reduce_dims, unbiased=False)  # (C,): used to normalize
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - self._per_channel(mean, x)) / torch.sqrt(self._per_channel(var, x) + self.eps)
        return self._per_channel(self.weight, x) * x_hat + self._per_channel(self.bias, x)
        ### END SOLUTION


class MyBatchNorm2d(MyBatchNorm1d):
    """Batch normalization of (B, C, H, W) inputs, matching nn.BatchNorm2d(num_features)."""

    reduce_dims = ...  # the dimensions of (B, C, H, W) that the statistics of a channel cover
    ### BEGIN SOLUTION
    reduce_dims = (0, 2, 3)  # per channel: over the batch and every position
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex09_3_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def same_start(mine, ref):
    """Give both layers the same random weight and bias."""
    with torch.no_grad():
        w, b = torch.rand(ref.num_features) + 0.5, torch.randn(ref.num_features)
        for layer in (mine, ref):
            layer.weight.copy_(w)
            layer.bias.copy_(b)


torch.manual_seed(1)
mine, ref = MyBatchNorm1d(5), nn.BatchNorm1d(5)
checks.check_module(mine, "MyBatchNorm1d(5)", n_params=10, hint="weight and bias, (C,) each")
checks.check(set(dict(mine.named_buffers())) >= {"running_mean", "running_var"},
             "running_mean and running_var must be registered buffers.",
             got=sorted(dict(mine.named_buffers())), hint="self.register_buffer('running_mean', ...)")
same_start(mine, ref)
for step in range(3):
    x = torch.randn(16, 5) * 3 + 2
    x_before = x.clone()
    checks.check_close(mine(x), ref(x), f"training-mode output, batch {step}", rtol=1e-4,
                       atol=1e-5, hint="normalize with the BIASED variance (unbiased=False)")
    checks.check_equal(x, x_before, "the input after your forward pass", hint="do not modify x")
    checks.check_close(mine.running_mean, ref.running_mean, f"running_mean after batch {step}",
                       rtol=1e-4, atol=1e-6, hint="(1 - momentum) * running + momentum * batch")
    checks.check_close(mine.running_var, ref.running_var, f"running_var after batch {step}",
                       rtol=1e-4, atol=1e-6,
                       hint="PyTorch stores the UNBIASED variance: var_biased * m / (m - 1)")
mine.eval()
ref.eval()
x = torch.randn(7, 5) * 3 + 2
checks.check_close(mine(x), ref(x), "evaluation-mode output", rtol=1e-4, atol=1e-5,
                   hint="in eval mode, normalize with running_mean and running_var")
### BEGIN HIDDEN TESTS
checks.check_close(mine.running_mean, ref.running_mean, "running_mean after an eval call",
                   hint="eval mode must not update the running statistics")
checks.check_equal(int(mine.num_batches_tracked), 3, "num_batches_tracked after 3 batches")
checks.check_equal(sorted(mine.state_dict()), sorted(ref.state_dict()), "the state_dict keys")
checks.check(mine.running_mean.grad_fn is None and not mine.running_var.requires_grad,
             "the running statistics must not be part of the autograd graph.",
             hint="update them inside torch.no_grad()")
# gradients, float64, other momentum and eps
for momentum, eps in [(0.3, 1e-3), (0.1, 1e-5)]:
    mine = MyBatchNorm1d(4, eps=eps, momentum=momentum).double()
    ref = nn.BatchNorm1d(4, eps=eps, momentum=momentum).double()
    same_start(mine, ref)
    x = (torch.randn(9, 4, dtype=torch.float64) * 2 - 1).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    w_out = torch.randn(9, 4, dtype=torch.float64)
    out = mine(x)
    checks.check_dtype(out, torch.float64, "the output for a float64 input")
    (out * w_out).sum().backward()
    (ref(x_ref) * w_out).sum().backward()
    checks.check_close(x.grad, x_ref.grad, f"the gradient w.r.t. x (momentum={momentum})", rtol=1e-6,
                       atol=1e-9, hint="compute everything with differentiable tensor operations")
    checks.check_close(mine.weight.grad, ref.weight.grad, "the gradient w.r.t. weight", rtol=1e-6)
    checks.check_close(mine.bias.grad, ref.bias.grad, "the gradient w.r.t. bias", rtol=1e-6)
    checks.check_close(mine.running_var, ref.running_var, f"running_var (momentum={momentum})",
                       rtol=1e-6)
    checks.check(mine.running_var.grad_fn is None and mine.running_mean.grad_fn is None,
                 "after a forward pass on an input that requires grad, the running statistics "
                 "are part of the autograd graph.", hint="update them inside torch.no_grad()")
    mine.eval()
    ref.eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    checks.check_close(mine(x), ref(x), f"eval output (eps={eps})", rtol=1e-6)
checks.check_raises(lambda: MyBatchNorm1d(3)(torch.randn(1, 3)), ValueError,
                    "MyBatchNorm1d(3) in training mode on a batch of 1")
single = MyBatchNorm1d(3).eval()
checks.check_shape(single(torch.randn(1, 3)), (1, 3), "eval-mode output for a batch of 1")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex09_3_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(2)
mine, ref = MyBatchNorm2d(3), nn.BatchNorm2d(3)
same_start(mine, ref)
for step in range(2):
    x = torch.randn(8, 3, 5, 4) * 2 + 1  # (B, C, H, W)
    checks.check_close(mine(x), ref(x), f"MyBatchNorm2d training-mode output, batch {step}",
                       rtol=1e-4, atol=1e-5, hint="statistics per channel over dims (0, 2, 3)")
    checks.check_close(mine.running_var, ref.running_var, f"MyBatchNorm2d running_var, batch {step}",
                       rtol=1e-4, atol=1e-6, hint="m = B * H * W values per channel")
mine.eval()
ref.eval()
x = torch.randn(2, 3, 5, 4)
checks.check_close(mine(x), ref(x), "MyBatchNorm2d evaluation-mode output", rtol=1e-4, atol=1e-5)
### BEGIN HIDDEN TESTS
checks.check_close(mine.running_mean, ref.running_mean, "MyBatchNorm2d running_mean", rtol=1e-4,
                   atol=1e-6)
mine, ref = MyBatchNorm2d(4).double(), nn.BatchNorm2d(4).double()
same_start(mine, ref)
x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)  # one image: m = 9 is fine
x_ref = x.detach().clone().requires_grad_()
w_out = torch.randn(1, 4, 3, 3, dtype=torch.float64)
(mine(x) * w_out).sum().backward()
(ref(x_ref) * w_out).sum().backward()
checks.check_close(x.grad, x_ref.grad, "MyBatchNorm2d gradient w.r.t. x (one 3x3 image)", rtol=1e-6,
                   atol=1e-9)
checks.check_close(mine.weight.grad, ref.weight.grad, "MyBatchNorm2d gradient w.r.t. weight",
                   rtol=1e-6)
checks.check_close(mine.running_var, ref.running_var, "MyBatchNorm2d running_var, one image",
                   rtol=1e-6)
checks.check_raises(lambda: MyBatchNorm2d(2)(torch.randn(1, 2, 1, 1)), ValueError,
                    "MyBatchNorm2d(2) in training mode on one 1x1 image")
### END HIDDEN TESTS

# %% [markdown]
# The last check of a from-scratch layer: does a network *train* with it? Below, two
# copies of `bn_cnn`'s architecture start from the same weights; in one, every `BatchNorm2d`
# is swapped for your `MyBatchNorm2d`. If your layer is right, the two runs are the same
# computation. **Target:** the per-epoch training losses agree to within $10^{-4}$, and both
# networks reach ≥ 97 % test accuracy.

# %% tags=["autograde-skip"]
def swap_batch_norm(model):
    """Replace every nn.BatchNorm2d of a Sequential by a MyBatchNorm2d with the same state."""
    for i, layer in enumerate(model):
        if isinstance(layer, nn.BatchNorm2d):
            mine = MyBatchNorm2d(layer.num_features).to(layer.weight.device)
            mine.load_state_dict(layer.state_dict())
            model[i] = mine
    return model


torch.manual_seed(0)
reference_model = make_bn_cnn()
my_model = swap_batch_norm(copy.deepcopy(reference_model))
curves = {name: train(m, X_train, y_train, lr=0.05, epochs=3)
          for name, m in [("nn.BatchNorm2d", reference_model), ("MyBatchNorm2d", my_model)]}
for name, h in curves.items():
    print(f"{name:15s} losses {[round(v, 4) for v in h['train_loss']]}, "
          f"test accuracy {h['val_acc'][-1]:.1%}")
gap = max(abs(a - b) for a, b in zip(*(h["train_loss"] for h in curves.values())))
print(f"largest loss difference {gap:.1e} | reached the target:",
      gap < 1e-4 and min(h["val_acc"][-1] for h in curves.values()) >= 0.97)

# %% [markdown]
# ### Exercise 9.4 — Layer norm vs batch norm for sequences (★★★, 3 points)
#
# **The task.** Each sequence is 16 readings of an oscillating signal from a sensor with its
# own, unknown gain — anywhere from 0.01 to 100, four decades — plus 30 % noise. Class 1 if the
# oscillation is fast (period 4–7 steps), class 0 if it is slow (period 9–16 steps). The gain
# carries no information; a good model must ignore it.
#
# **The model** (given below, after part a): each reading is projected to 16 features, the
# sequence goes through a GRU (a recurrent layer, which chapter 10 opens up), and the last step
# is classified. A normalization is applied to the `(B, T, C)` features before and after the
# GRU: none, batch norm, or layer norm.

# %%
def make_waves(n, T=16, seed=0):
    """n sequences (n, T, 1) of noisy oscillations with random gain; y = 1 for the fast ones."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    period = torch.where(y == 1, 4 + 3 * torch.rand(n, generator=g), 9 + 7 * torch.rand(n, generator=g))
    gain = torch.exp(torch.empty(n).uniform_(math.log(0.01), math.log(100), generator=g))
    phase = 2 * math.pi * torch.rand(n, generator=g)
    t = torch.arange(T)
    wave = torch.sin(2 * math.pi * t / period[:, None] + phase[:, None])  # (n, T)
    x = gain[:, None] * (wave + 0.3 * torch.randn(n, T, generator=g))
    return x.unsqueeze(-1).to(device), y.to(device)  # (n, T, 1), (n,)


Xs_train, ys_train = make_waves(2000, seed=1)
Xs_test, ys_test = make_waves(500, seed=2)
loudest = Xs_train.abs().amax(dim=(1, 2))  # (2000,): the largest |reading| of each sequence
print("sequences", tuple(Xs_train.shape), "| loudest reading per sequence ranges from",
      f"{loudest.min().item():.2g} to {loudest.max().item():.3g}")

# %% [markdown]
# **Part a (1 point).** Write the module `SeqNorm(kind, C)` that normalizes a `(B, T, C)`
# tensor and returns a `(B, T, C)` tensor. It stores the underlying PyTorch layer in
# `self.norm`:
#
# - `"none"`: `nn.Identity()`;
# - `"batch"`: `nn.BatchNorm1d(C)`, statistics per channel **over the batch and all time
#   steps** (it expects `(B, C, T)`: transpose before, and back after);
# - `"layer"`: `nn.LayerNorm(C)`, statistics over the `C` features of each token;
# - anything else: raise `ValueError`.
#
# The tests compare with the formulas, in both modes, including the treacherous case `T == C`
# where a missing transpose runs without any error.
#
# **Part b (2 points).** For `kind` in `("none", "batch", "layer")` and `batch_size` in
# `(4, 16, 64)`: `torch.manual_seed(0)`, build `SensorGRU(kind)`, train it with
# `train(model, Xs_train, ys_train, lr=0.01, steps=100, batch_size=batch_size,
# optimizer="adam", X_val=Xs_test, y_val=ys_test)` (the same 100 updates for every batch size)
# and store the test accuracy (`history["val_acc"][-1]`) in `seq_results[kind][batch_size]`.
# Then answer in `answer_94` why layer norm does best here:
#
# - (a) layer norm has more parameters than batch norm;
# - (b) layer norm normalizes each sequence at each time step by its own statistics, so a
#   sequence with gain 100 and one with gain 0.01 look alike to the GRU — and nothing depends
#   on the batch or its size;
# - (c) batch norm cannot be combined with a GRU;
# - (d) layer norm uses running statistics, which are more accurate than batch statistics.
#
# The tests check completeness, that layer norm reaches ≥ 65 % at every batch size (the
# solution gets 69–89 %), and that on average over the batch sizes it beats the other two by
# at least 5 points (the solution: by 9 and 14).

# %% nbgrader={"grade": false, "grade_id": "ex09_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SeqNorm(nn.Module):
    """Normalize a (B, T, C) sequence batch with no norm, batch norm or layer norm."""

    def __init__(self, kind: str, C: int):
        super().__init__()
        self.kind = kind
        ### BEGIN SOLUTION
        if kind == "none":
            self.norm = nn.Identity()
        elif kind == "batch":
            self.norm = nn.BatchNorm1d(C)
        elif kind == "layer":
            self.norm = nn.LayerNorm(C)
        else:
            raise ValueError(f"kind must be 'none', 'batch' or 'layer', got {kind!r}")
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        ### BEGIN SOLUTION
        if self.kind == "batch":
            return self.norm(x.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d wants (B, C, T)
        return self.norm(x)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex09_4_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
x = torch.randn(4, 6, 5) * 3 + 1  # (B, T, C) with T != C
x_before = x.clone()
checks.check_close(SeqNorm("none", 5)(x), x, "SeqNorm('none', 5)(x)")
expected_ln = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
checks.check_close(SeqNorm("layer", 5)(x), expected_ln, "SeqNorm('layer', 5)(x)", atol=1e-5,
                   hint="nn.LayerNorm(C) normalizes the last dimension: apply it directly")
mu, var = x.mean(dim=(0, 1)), x.var(dim=(0, 1), unbiased=False)  # per channel, over B and T
checks.check_close(SeqNorm("batch", 5)(x), (x - mu) / torch.sqrt(var + 1e-5), "SeqNorm('batch', 5)(x)",
                   atol=1e-5, hint="transpose (B, T, C) -> (B, C, T), apply BatchNorm1d, transpose back")
checks.check_equal(x, x_before, "the input after SeqNorm")
checks.check_raises(lambda: SeqNorm("group", 5), ValueError, "SeqNorm('group', 5)")
### BEGIN HIDDEN TESTS
square = torch.randn(3, 5, 5) * 2 - 1  # T == C: the missing transpose goes unnoticed here
mu, var = square.mean(dim=(0, 1)), square.var(dim=(0, 1), unbiased=False)
checks.check_close(SeqNorm("batch", 5)(square), (square - mu) / torch.sqrt(var + 1e-5),
                   "SeqNorm('batch', 5) when T == C", atol=1e-5)
for kind, cls in [("none", nn.Identity), ("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)]:
    checks.check_type(SeqNorm(kind, 7).norm, cls, f"SeqNorm('{kind}', 7).norm")
bn_seq = SeqNorm("batch", 5)
bn_seq(x)
bn_seq.eval()
run_mu, run_var = bn_seq.norm.running_mean, bn_seq.norm.running_var
checks.check_close(bn_seq(square), (square - run_mu) / torch.sqrt(run_var + 1e-5),
                   "SeqNorm('batch') in eval mode", atol=1e-5)
checks.check_close(bn_seq.norm.running_mean, 0.1 * x.mean(dim=(0, 1)), "the running mean after one batch",
                   atol=1e-5)
ln_seq = SeqNorm("layer", 5)
checks.check_close(ln_seq(x[:1]), ln_seq(x)[:1], "SeqNorm('layer') on one sequence vs in a batch",
                   atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# The model, built on your `SeqNorm`:

# %%
class SensorGRU(nn.Module):
    """x (B, T, 1) -> logits (B, 2): project, normalize, GRU, normalize, classify the last step."""

    def __init__(self, kind, hidden=16):
        super().__init__()
        self.inp = nn.Linear(1, hidden)
        self.norm_in = SeqNorm(kind, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.norm_out = SeqNorm(kind, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):  # (B, T, 1)
        h, _ = self.gru(self.norm_in(self.inp(x)))  # (B, T, hidden)
        return self.head(self.norm_out(h)[:, -1])  # the last time step: (B, 2)


# %% nbgrader={"grade": false, "grade_id": "ex09_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
seq_results = {"none": {}, "batch": {}, "layer": {}}  # kind -> {batch_size: test accuracy}
answer_94 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for kind in seq_results:
    for batch_size in (4, 16, 64):
        torch.manual_seed(0)
        history = train(SensorGRU(kind), Xs_train, ys_train, lr=0.01, steps=100,
                        batch_size=batch_size, optimizer="adam", X_val=Xs_test, y_val=ys_test)
        seq_results[kind][batch_size] = history["val_acc"][-1]
answer_94 = "b"
### END SOLUTION
for kind, accs in seq_results.items():
    print(f"{kind:5s}:", "  ".join(f"batch {b}: {a:.1%}" for b, a in accs.items()),
          f"| mean {sum(accs.values()) / 3:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex09_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(seq_results), ["batch", "layer", "none"], "the keys of seq_results")
for kind in seq_results:
    checks.check_equal(sorted(seq_results[kind]), [4, 16, 64], f"the batch sizes of seq_results['{kind}']")
    checks.check(all(0.0 <= a <= 1.0 for a in seq_results[kind].values()),
                 f"seq_results['{kind}'] holds values outside [0, 1].", got=seq_results[kind])
checks.check(min(seq_results["layer"].values()) >= 0.65,
             "layer norm should reach >= 65 % test accuracy at every batch size.", ">= 0.65",
             seq_results["layer"], "train SensorGRU('layer') as described, 100 Adam steps")
### BEGIN HIDDEN TESTS
mean_acc = {kind: sum(v.values()) / 3 for kind, v in seq_results.items()}
checks.check(mean_acc["layer"] > max(mean_acc["batch"], mean_acc["none"]) + 0.05,
             "on average over batch sizes, layer norm should beat batch norm and no norm.",
             got=mean_acc)
checks.check(len(set(seq_results["none"].values())) > 1 or len(set(seq_results["batch"].values())) > 1,
             "the results do not change with the batch size: was batch_size passed to train?")
checks.check_equal(answer_94, "b", "answer_94")
### END HIDDEN TESTS

# %%
fig, ax = plt.subplots()
for i, (kind, accs) in enumerate(seq_results.items()):
    ax.bar([j + (i - 1) * 0.27 for j in range(3)], list(accs.values()), width=0.27,
           label=f"{kind} norm" if kind != "none" else "no norm")
ax.set_xticks(range(3), [f"batch size {b}" for b in (4, 16, 64)])
ax.axhline(0.5, color="0.6", ls=":", lw=1)
ax.set(ylim=(0.4, 1.0), ylabel="test accuracy after 100 updates",
       title="Fast or slow oscillation? GRU with different normalizations")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# Layer norm comes out on top at every batch size, and by about 10 points on average: it maps
# every sequence, whatever its gain, to features of the same scale, so the GRU only has to
# learn about *time*. Batch norm normalizes by the batch's statistics, which the largest-gain
# sequences dominate, so the small-gain ones stay squashed near zero; and its statistics pool
# all time steps together. No normalization leaves the GRU to cope with four decades of input
# scale on its own. With the same 100 updates, small batches hurt everyone — 4 sequences per
# update is simply less data and noisier gradients — but batch norm is the only one whose
# *computation* changes with the batch. (These are single runs of a small experiment: rerun
# with another seed and the numbers move by several points; the ranking of the averages does
# not.)
#
# ### Exercise 9.5 — Placement experiments (★★★★★, 5 points)
#
# Where should batch norm go in a residual block? Compare three placements, each a block of
# two 3×3 convolutions `conv1`, `conv2` (C → C channels, `padding=1`, `bias=False` for a fair
# comparison: all three then have the same parameters) and two `nn.BatchNorm2d(C)`, `bn1`,
# `bn2`:
#
# | `placement` | forward | origin |
# |---|---|---|
# | `"conv-bn-relu"` | `relu(x + bn2(conv2(relu(bn1(conv1(x))))))` | original ResNet (2015) |
# | `"conv-relu-bn"` | `x + bn2(relu(conv2(bn1(relu(conv1(x))))))` | norm after the activation |
# | `"bn-relu-conv"` | `x + conv2(relu(bn2(conv1(relu(bn1(x))))))` | pre-activation ResNet (2016) |
#
# **Part a (2 points).** Write `ResBlock(C, placement)` with exactly the attributes `conv1`,
# `bn1`, `conv2`, `bn2` and the forward passes of the table; an unknown placement raises
# `ValueError`. The tests compare your forward pass, in both modes, with the formulas applied
# to your own layers.
#
# **Part b (1 point).** Write `block_grad_norms(model, X, y)`: the norm of the gradient of
# `F.cross_entropy(model(X), y)` with respect to the `conv1.weight` of every `ResBlock` of
# `model`, in order, as a float tensor of shape `(number of blocks,)` — computed with the model
# in training mode, and without leaving anything in the parameters' `.grad` (use
# `torch.autograd.grad`).
#
# **Part c (2 points).** With `make_resnet` (given below), fill `placement_results[placement]`
# for the three placements with a dict of
#
# - `"grad_ratio"`: at initialization (`torch.manual_seed(0)`), for a **16-block** network, the
#   gradient norm of the first block divided by that of the last block, on the first 256
#   training images — how unevenly the gradient reaches the blocks;
# - `"accuracy"`: the test accuracy of a **3-block** network (`torch.manual_seed(0)`) trained
#   with `train(model, X_train, y_train, lr=3e-3, epochs=3, optimizer="adam")`.
#
# and answer `answer_95`:
#
# - (a) at depth 3 all three placements train to similar accuracy; the difference shows in
#   deep stacks, where pre-activation (`bn-relu-conv`) spreads the gradient most evenly over
#   the blocks (ratio closest to 1);
# - (b) `conv-relu-bn` is clearly the most accurate at depth 3 and has the most even gradients;
# - (c) the placement changes neither the accuracy nor the gradients;
# - (d) only the original ResNet placement trains at all.
#
# The tests check your results for completeness, recompute the gradient ratios independently,
# and require ≥ 85 % accuracy for every placement (the solution reaches 93–99 %).

# %% nbgrader={"grade": false, "grade_id": "ex09_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResBlock(nn.Module):
    """A residual block (B, C, H, W) -> (B, C, H, W) with batch norm in one of three places."""

    PLACEMENTS = ("conv-bn-relu", "conv-relu-bn", "bn-relu-conv")

    def __init__(self, C: int, placement: str):
        super().__init__()
        self.placement = placement
        ### BEGIN SOLUTION
        if placement not in self.PLACEMENTS:
            raise ValueError(f"placement must be one of {self.PLACEMENTS}, got {placement!r}")
        self.conv1 = nn.Conv2d(C, C, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(C, C, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(C), nn.BatchNorm2d(C)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        if self.placement == "conv-bn-relu":
            return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        if self.placement == "conv-relu-bn":
            return x + self.bn2(F.relu(self.conv2(self.bn1(F.relu(self.conv1(x))))))
        return x + self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex09_5_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def reference_block(b, x, placement):
    """The table's formulas with F.conv2d and F.batch_norm on block b's own weights."""
    def conv(layer, h):
        return F.conv2d(h, layer.weight, padding=1)

    def bn(layer, h):
        stats = (None, None) if b.training else (layer.running_mean, layer.running_var)
        return F.batch_norm(h, *stats, layer.weight, layer.bias, training=b.training, eps=layer.eps)

    if placement == "conv-bn-relu":
        return F.relu(x + bn(b.bn2, conv(b.conv2, F.relu(bn(b.bn1, conv(b.conv1, x))))))
    if placement == "conv-relu-bn":
        return x + bn(b.bn2, F.relu(conv(b.conv2, bn(b.bn1, F.relu(conv(b.conv1, x))))))
    return x + conv(b.conv2, F.relu(bn(b.bn2, conv(b.conv1, F.relu(bn(b.bn1, x))))))


torch.manual_seed(0)
for placement in ResBlock.PLACEMENTS:
    block = ResBlock(4, placement)
    checks.check_module(block, f"ResBlock(4, '{placement}')", n_params=2 * 4 * 4 * 9 + 2 * 2 * 4,
                        hint="two bias-free 3x3 convs (C -> C) and two BatchNorm2d(C)")
    x = torch.randn(3, 4, 5, 5)
    with torch.no_grad():
        checks.check_close(block(x), reference_block(block, x, placement),
                           f"ResBlock(4, '{placement}') in training mode", atol=1e-5,
                           hint="follow the table's formula from the inside out")
checks.check_raises(lambda: ResBlock(4, "relu-conv-bn"), ValueError, "ResBlock(4, 'relu-conv-bn')")
### BEGIN HIDDEN TESTS
for placement in ResBlock.PLACEMENTS:
    block = ResBlock(3, placement)
    for layer in (block.bn1, block.bn2):  # non-trivial running statistics and affine parameters
        with torch.no_grad():
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, 3, 4, 6)
    with torch.no_grad():
        checks.check_close(block(x), reference_block(block, x, placement),
                           f"ResBlock(3, '{placement}') in eval mode", atol=1e-5)
    checks.check(all(c.bias is None for c in (block.conv1, block.conv2)), "the convs need bias=False")
    checks.check_equal((block.conv1.padding, block.conv1.kernel_size), ((1, 1), (3, 3)),
                       "conv1's padding and kernel size")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex09_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def block_grad_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Norms (n_blocks,) of d cross_entropy(model(X), y) / d block.conv1.weight, in block order."""
    ### BEGIN SOLUTION
    model.train()
    weights = [m.conv1.weight for m in model.modules() if isinstance(m, ResBlock)]
    grads = torch.autograd.grad(F.cross_entropy(model(X), y), weights)
    return torch.stack([g.norm() for g in grads])
    ### END SOLUTION

# %% [markdown]
# The network around the blocks: a stem (conv → BN → ReLU → max-pool to 4×4), `depth` blocks,
# for the pre-activation placement one final BN → ReLU (the blocks end on a convolution), then
# global average pooling and a linear classifier.

# %%
def make_resnet(placement, depth, C=16):
    """(B, 1, 8, 8) -> (B, 10), with `depth` ResBlocks of the given placement."""
    final = [nn.BatchNorm2d(C), nn.ReLU()] if placement == "bn-relu-conv" else []
    return nn.Sequential(
        nn.Conv2d(1, C, 3, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU(), nn.MaxPool2d(2),
        *[ResBlock(C, placement) for _ in range(depth)], *final,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, 10),
    ).to(device)


# %% nbgrader={"grade": true, "grade_id": "ex09_5_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
net = make_resnet("conv-bn-relu", 3)
Xg, yg = X_train[:32], y_train[:32]
got = block_grad_norms(net, Xg, yg)
checks.check_tensor(got, "block_grad_norms(net, X, y)", shape=(3,))
blocks = [m for m in net if isinstance(m, ResBlock)]
net.train()
expected = torch.stack([g.norm() for g in torch.autograd.grad(
    F.cross_entropy(net(Xg), yg), [b.conv1.weight for b in blocks])])
checks.check_close(got, expected, "block_grad_norms(net, X, y)", rtol=1e-4, atol=1e-7,
                   hint="gradient of the cross-entropy w.r.t. each block's conv1.weight, then .norm()")
checks.check(all(p.grad is None for p in net.parameters()),
             "block_grad_norms left gradients in .grad.", hint="use torch.autograd.grad")
### BEGIN HIDDEN TESTS
net = make_resnet("bn-relu-conv", 5)
net.eval()
got = block_grad_norms(net, Xg, yg)
checks.check_shape(got, (5,), "block_grad_norms on 5 blocks")
net.train()
blocks = [m for m in net if isinstance(m, ResBlock)]
expected = torch.stack([g.norm() for g in torch.autograd.grad(
    F.cross_entropy(net(Xg), yg), [b.conv1.weight for b in blocks])])
checks.check_close(got, expected, "block_grad_norms of a model given in eval mode", rtol=1e-4,
                   atol=1e-7, hint="compute in training mode: model.train()")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex09_5_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
placement_results = {}  # placement -> {"grad_ratio": float, "accuracy": float}
answer_95 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for placement in ResBlock.PLACEMENTS:
    torch.manual_seed(0)
    norms = block_grad_norms(make_resnet(placement, 16), X_train[:256], y_train[:256])
    torch.manual_seed(0)
    history = train(make_resnet(placement, 3), X_train, y_train, lr=3e-3, epochs=3,
                    optimizer="adam")
    placement_results[placement] = {"grad_ratio": (norms[0] / norms[-1]).item(),
                                    "accuracy": history["val_acc"][-1]}
answer_95 = "a"
### END SOLUTION
for placement, res in placement_results.items():
    print(f"{placement}: first/last gradient ratio {res['grad_ratio']:.2f}, "
          f"test accuracy {res['accuracy']:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex09_5_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(placement_results, dict, "placement_results")
checks.check_equal(sorted(placement_results), sorted(ResBlock.PLACEMENTS), "the keys of placement_results")
for placement, res in placement_results.items():
    checks.check_equal(sorted(res), ["accuracy", "grad_ratio"], f"the keys of placement_results['{placement}']")
    checks.check(res["accuracy"] >= 0.85, f"'{placement}' should reach >= 85 % test accuracy.",
                 ">= 0.85", res["accuracy"], "3 blocks, 3 epochs of Adam at lr=3e-3")
### BEGIN HIDDEN TESTS
ratios = {}
for placement in ResBlock.PLACEMENTS:
    torch.manual_seed(0)
    net = make_resnet(placement, 16).train()
    blocks = [m for m in net if isinstance(m, ResBlock)]
    grads = torch.autograd.grad(F.cross_entropy(net(X_train[:256]), y_train[:256]),
                                [blocks[0].conv1.weight, blocks[-1].conv1.weight])
    ratios[placement] = (grads[0].norm() / grads[1].norm()).item()
    checks.check_close(placement_results[placement]["grad_ratio"], ratios[placement],
                       f"placement_results['{placement}']['grad_ratio']", rtol=1e-3,
                       hint="16 blocks, seed 0, first 256 training images, first / last block")
checks.check_equal(answer_95, "a", "answer_95")
### END HIDDEN TESTS

# %% [markdown]
# How does the gradient reach each block of a deep stack? The per-block gradient norms of the
# 16-block networks at initialization:

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
for placement in ResBlock.PLACEMENTS:
    torch.manual_seed(0)
    norms = block_grad_norms(make_resnet(placement, 16), X_train[:256], y_train[:256])
    ax.plot(range(1, 17), norms.cpu(), marker="o", ms=3, label=placement)
ax.set(yscale="log", xlabel="block (1 = closest to the input)",
       ylabel="gradient norm of conv1.weight", title="Gradient reaching each of 16 residual blocks")
ax.legend()
plt.show()

# %% [markdown]
# In all three the gradient is larger near the input — blocks there receive the sum of the
# gradient paths through all later blocks — but how much larger depends on the placement: about
# 9× from the last block to the first with `conv-relu-bn`, 4× with the original ResNet block,
# 3× with pre-activation, whose branches all *start* by normalizing the residual stream. The
# full explanation is subtle (it involves how the variance of the stream grows with depth and
# how each normalization rescales the gradient flowing back through its branch); the
# measurement is not. At 3 blocks that makes no reliable
# difference to accuracy — rerun part c with another seed and the ranking of the three changes,
# each landing somewhere between 88 and 99 % — but it is why very deep ResNets (100–1000
# layers) and transformers use the pre-norm form.
#
# ### Exercise 9.6 — Small batch challenge (★★★★★, 5 points)
#
# Train with batches of **2** — deliberately too small — and see which normalization survives.
# The network is an MLP on the flattened digits, `64 → 64 → 64 → 10`, with a normalization
# after each of the two hidden linear layers.
#
# **Part a (1 point).** Write `make_small_batch_mlp(kind)`: `nn.Sequential(Linear(64, 64),
# norm, ReLU, Linear(64, 64), norm, ReLU, Linear(64, 10))`, with a `nn.Flatten()` first so it
# accepts `(B, 1, 8, 8)` images, where `norm` is a fresh `nn.BatchNorm1d(64)` for `"batch"`,
# `nn.LayerNorm(64)` for `"layer"`, `nn.GroupNorm(8, 64)` for `"group"` (8 groups of 8
# features) and `nn.Identity()` for `"none"`. The two hidden linear layers have `bias=False`
# when followed by a normalization, `bias=True` for `"none"`.
#
# **Part b (2 points).** For each kind in `("batch", "layer", "group", "none")`:
# `torch.manual_seed(0)`, build the model, train it with `train(model, X_train, y_train,
# lr=0.01, steps=600, batch_size=2)` (SGD, momentum 0.9) and store its final test accuracy
# (evaluation mode) in `small_batch_results[kind]`.
#
# **Part c (2 points).** Why does batch norm fail? Write `batch_mean_spread(h, batch_size)`:
# cut the rows of `h` `(N, C)` into `N // batch_size` consecutive batches (drop the remainder),
# take each batch's mean of every feature, `(n_batches, C)`, then the standard deviation of
# those means over the batches (`unbiased=False`) for each feature, and return its average over
# the features as a Python `float`. Apply it to `first_bn_inputs` — what the first batch-norm
# layer of your trained `"batch"` model receives for the training images (computed for you
# with a forward hook) — and store `spread = {2: ..., 64: ...}`. Answer in `answer_96`:
#
# - (a) batch norm has more parameters, so it overfits a small batch;
# - (b) with 2 samples per batch the batch statistics are very noisy — and each feature is
#   normalized to exactly ±1, so training never sees magnitudes — while evaluation uses running
#   statistics that describe a different situation: the network is tested on inputs unlike any
#   it was trained on;
# - (c) group norm and layer norm use more groups, which averages the noise away;
# - (d) the learning rate is too high for batch norm.
#
# The tests check your function against a loop, your results for completeness, that layer and
# group norm reach ≥ 80 % (the solution: 85–91 %) while batch norm stays at least 20 points
# below both, and that the spread at batch size 2 is 4–8 times that at 64 ($\sqrt{32} \approx
# 5.7$).

# %% nbgrader={"grade": false, "grade_id": "ex09_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_small_batch_mlp(kind: str) -> nn.Sequential:
    """(B, 1, 8, 8) -> (B, 10): Flatten, then two Linear-norm-ReLU layers of 64, then Linear."""
    ### BEGIN SOLUTION
    def norm():
        return {"batch": lambda: nn.BatchNorm1d(64), "layer": lambda: nn.LayerNorm(64),
                "group": lambda: nn.GroupNorm(8, 64), "none": nn.Identity}[kind]()

    bias = kind == "none"
    return nn.Sequential(nn.Flatten(),
                         nn.Linear(64, 64, bias=bias), norm(), nn.ReLU(),
                         nn.Linear(64, 64, bias=bias), norm(), nn.ReLU(),
                         nn.Linear(64, 10))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex09_6_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
expected_types = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "group": nn.GroupNorm,
                  "none": nn.Identity}
for kind, cls in expected_types.items():
    model = make_small_batch_mlp(kind)
    n_norm = 0 if kind == "none" else 2 * 128
    checks.check_module(model, f"make_small_batch_mlp('{kind}')",
                        n_params=64 * 64 * 2 + (128 if kind == "none" else 0) + n_norm + 650,
                        example_input=torch.randn(3, 1, 8, 8), output_shape=(3, 10),
                        hint="bias=False before a norm; each norm has 2 * 64 parameters")
    checks.check_equal(sum(isinstance(m, cls) for m in model), 2,
                       f"the number of {cls.__name__} layers in make_small_batch_mlp('{kind}')")
### BEGIN HIDDEN TESTS
groups = [m.num_groups for m in make_small_batch_mlp("group") if isinstance(m, nn.GroupNorm)]
checks.check_equal(groups, [8, 8], "the number of groups of the GroupNorm layers")
model = make_small_batch_mlp("batch")
norms = [m for m in model if isinstance(m, nn.BatchNorm1d)]
checks.check(norms[0] is not norms[1], "each normalization must be its own layer.")
types = [type(m).__name__ for m in model]
checks.check_equal(types, ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d",
                           "ReLU", "Linear"], "the layer order of make_small_batch_mlp('batch')")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex09_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
small_batch_results = {}  # kind -> final test accuracy after 600 steps with batches of 2
small_batch_models = {}  # kind -> the trained model (part c uses the "batch" one)
### BEGIN SOLUTION
for kind in ("batch", "layer", "group", "none"):
    torch.manual_seed(0)
    small_batch_models[kind] = make_small_batch_mlp(kind)
    history = train(small_batch_models[kind], X_train, y_train, lr=0.01, steps=600, batch_size=2)
    small_batch_results[kind] = history["val_acc"][-1]
### END SOLUTION
print("batches of 2:", "  ".join(f"{k}: {a:.1%}" for k, a in small_batch_results.items()))

# %% nbgrader={"grade": true, "grade_id": "ex09_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(small_batch_results), ["batch", "group", "layer", "none"],
                   "the keys of small_batch_results")
for kind, acc in small_batch_results.items():
    checks.check(0.0 <= acc <= 1.0, f"small_batch_results['{kind}'] is not an accuracy.", got=acc)
checks.check(min(small_batch_results["layer"], small_batch_results["group"]) >= 0.8,
             "layer and group norm should reach >= 80 % with batches of 2.", ">= 0.80",
             (small_batch_results["layer"], small_batch_results["group"]),
             "600 steps of SGD (lr 0.01, momentum 0.9) with batch_size=2")
### BEGIN HIDDEN TESTS
checks.check(small_batch_results["batch"] <= min(small_batch_results["layer"],
                                                 small_batch_results["group"]) - 0.2,
             "batch norm should fail with batches of 2 (at least 20 points below layer/group norm).",
             got=small_batch_results)
checks.check(small_batch_results["none"] >= 0.7, "the MLP without normalization should train too.",
             got=small_batch_results["none"])
checks.check_type(small_batch_models.get("batch"), nn.Sequential, "small_batch_models['batch']")
### END HIDDEN TESTS

# %% [markdown]
# What does the first batch-norm layer of the trained `"batch"` model receive? A forward hook
# records its inputs for all training images (in evaluation mode, so nothing changes).

# %%
first_bn = next(m for m in small_batch_models["batch"] if isinstance(m, nn.BatchNorm1d))
recorded = []
hook = first_bn.register_forward_hook(lambda module, inputs, output: recorded.append(inputs[0]))
with torch.no_grad():
    small_batch_models["batch"].eval()(X_train)
hook.remove()
first_bn_inputs = recorded[0]  # (1437, 64)
print("first_bn_inputs:", tuple(first_bn_inputs.shape))

# %% nbgrader={"grade": false, "grade_id": "ex09_6_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batch_mean_spread(h: torch.Tensor, batch_size: int) -> float:
    """Feature-averaged std over consecutive batches of the batch means of h (N, C)."""
    ### BEGIN SOLUTION
    n_batches = len(h) // batch_size
    means = h[: n_batches * batch_size].reshape(n_batches, batch_size, -1).mean(dim=1)
    return means.std(dim=0, unbiased=False).mean().item()
    ### END SOLUTION


spread = {}  # batch size -> batch_mean_spread(first_bn_inputs, batch size)
answer_96 = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
spread = {b: batch_mean_spread(first_bn_inputs, b) for b in (2, 64)}
answer_96 = "b"
### END SOLUTION
print({b: round(s, 4) for b, s in spread.items()}, "ratio", round(spread[2] / spread[64], 2))

# %% nbgrader={"grade": true, "grade_id": "ex09_6_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
h = torch.arange(12.0).reshape(6, 2)  # batches of 2 rows: means [1, 2], [5, 6], [9, 10]
checks.check_close(batch_mean_spread(h, 2), math.sqrt(32 / 3), "batch_mean_spread(h, 2)", rtol=1e-5,
                   hint="per-batch means (3, 2), std over the 3 batches (unbiased=False), mean over C")
checks.check_type(batch_mean_spread(h, 2), float, "batch_mean_spread(h, 2)")
checks.check_equal(sorted(spread), [2, 64], "the keys of spread")
checks.check(4 <= spread[2] / spread[64] <= 8, "the spread at batch size 2 should be about "
             "sqrt(32) = 5.7 times that at 64.", "4 to 8", spread[2] / spread[64])
### BEGIN HIDDEN TESTS
torch.manual_seed(5)
for n, c, b in [(37, 3, 4), (100, 5, 10), (9, 2, 9)]:
    data = torch.randn(n, c)
    data_before = data.clone()
    k = n // b
    per_batch = [[sum(data[i * b + r, j].item() for r in range(b)) / b for j in range(c)]
                 for i in range(k)]
    stds = []
    for j in range(c):
        column = [row[j] for row in per_batch]
        mu = sum(column) / k
        stds.append(math.sqrt(sum((v - mu) ** 2 for v in column) / k))
    checks.check_close(batch_mean_spread(data, b), sum(stds) / c,
                       f"batch_mean_spread on ({n}, {c}) with batches of {b}", rtol=1e-4, atol=1e-7)
    checks.check_equal(data, data_before, "h after batch_mean_spread")
checks.check_close(spread[64], batch_mean_spread(first_bn_inputs, 64), "spread[64]")
checks.check_equal(answer_96, "b", "answer_96")
### END HIDDEN TESTS

# %% [markdown]
# The spread grows like $1/\sqrt{m}$, as in 9.2.4 — but noise alone is not the whole story.
# Look at what batch norm actually outputs during training with batches of 2, compared with
# evaluation mode on the same images:

# %%
with torch.no_grad():
    pairs = first_bn_inputs[:200].reshape(100, 2, 64)  # 100 training batches of 2
    train_out = torch.cat([F.batch_norm(p, None, None, training=True) for p in pairs])
    eval_out = F.batch_norm(first_bn_inputs[:200], first_bn.running_mean, first_bn.running_var,
                            training=False)  # running statistics, without scale and shift
fig, ax = plt.subplots()
ax.hist(train_out.flatten().cpu(), bins=60, range=(-4, 4), alpha=0.6, label="training mode (batches of 2)")
ax.hist(eval_out.flatten().cpu(), bins=60, range=(-4, 4), alpha=0.6,
        label="evaluation mode (running statistics)")
ax.set(xlabel=r"normalized value $\hat{x}$", ylabel="count",
       title="What the first batch-norm layer produces, before scale and shift")
ax.legend(loc="upper left", fontsize=9)
plt.show()

# %% [markdown]
# In training mode every normalized value is −1 or +1: with two samples, batch norm only
# tells the next layer *which of the two is larger* in each feature. In evaluation mode the
# same layer produces a smooth spread of values the network never saw during training. That
# mismatch is why batch norm collapses while layer and group norm — which never look across the
# batch — train as if nothing were wrong.

# %%
print("QUALITY: BN CNN {:.1%} test acc; batch-2 MLP: batch norm {:.1%}, layer {:.1%}, group {:.1%}"
      .format(bn_cnn_accuracy, small_batch_results["batch"], small_batch_results["layer"],
              small_batch_results["group"]))

# %% [markdown]
# ### Concept check (5 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch, so you can
# check any of them by experiment afterwards — but decide first.
#
# 1. `q1_params`: how many **trainable parameters** does `nn.BatchNorm2d(64)` have?
# 2. `q2_running_var`: a fresh `nn.BatchNorm1d(1)` (momentum 0.1) sees one training batch, the
#    column `[1., 2., 3., 4.]`. What is its `running_var` afterwards (a float, 4 decimals)?
# 3. `q3_count`: `nn.GroupNorm(8, 64)` on an input of shape `(B, 64, 16, 16)`: how many values
#    share one mean and variance?
# 4. `q4_coupled`: in training mode, which of these layers produce an output for sample 0 that
#    changes when sample 1 of the batch changes? A set of letters: (a) `nn.BatchNorm2d`,
#    (b) `nn.LayerNorm`, (c) `nn.GroupNorm`, (d) `nn.InstanceNorm2d`, (e) `nn.RMSNorm`.
# 5. `q5_eval`: what does `model.eval()` do to a network with batch norm and dropout? (a) it
#    turns off gradient tracking; (b) batch norm switches to its running statistics and dropout
#    stops dropping; (c) it freezes the weights so the optimizer cannot change them; (d) all of
#    these.

# %% nbgrader={"grade": false, "grade_id": "cc09_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_params = ...  # an int
q2_running_var = ...  # a float
q3_count = ...  # an int
q4_coupled = ...  # a set of letters
q5_eval = ...  # a letter
### BEGIN SOLUTION
q1_params = 128
q2_running_var = 1.0667
q3_count = 2048
q4_coupled = {"a"}
q5_eval = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc09_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
checks.check_type(q1_params, int, "q1_params")
checks.check_type(q2_running_var, float, "q2_running_var")
checks.check_type(q3_count, int, "q3_count")
checks.check_type(q4_coupled, set, "q4_coupled", hint='a set of letters, such as {"a", "b"}')
checks.check(q4_coupled <= set("abcde"), "q4_coupled may only contain the letters a to e.", got=q4_coupled)
checks.check(q5_eval in ("a", "b", "c", "d"), "q5_eval must be one of the letters a to d.", got=q5_eval)
### BEGIN HIDDEN TESTS
checks.check_equal(q1_params, sum(p.numel() for p in nn.BatchNorm2d(64).parameters()), "q1_params")
probe_bn = nn.BatchNorm1d(1)
probe_bn(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))
checks.check_close(q2_running_var, probe_bn.running_var.item(), "q2_running_var", atol=1e-4,
                   hint="the running variance stores the UNBIASED batch variance")
checks.check_equal(q3_count, (64 // 8) * 16 * 16, "q3_count")
torch.manual_seed(0)
xa = torch.randn(2, 4, 3, 3)
xb = xa.clone()
xb[1] = torch.randn(4, 3, 3) * 5 + 2
layers = {"a": nn.BatchNorm2d(4), "b": nn.LayerNorm([4, 3, 3]), "c": nn.GroupNorm(2, 4),
          "d": nn.InstanceNorm2d(4), "e": nn.RMSNorm([4, 3, 3])}
truth = {k: not torch.allclose(f(xa)[0], f(xb)[0]) for k, f in layers.items()}
checks.check_equal(q4_coupled, {k for k, v in truth.items() if v}, "q4_coupled")
# eval() only flips the .training flag of every module: no autograd change, no frozen weights
checks.check_equal(q5_eval, "b", "q5_eval")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - **Batch norm** normalizes each feature (channel) over the batch — and over positions for
#   images — then scales and shifts with learned $\gamma, \beta$. It normalizes with the biased
#   variance and stores the **unbiased** one in `running_var`.
# - **Training and evaluation differ**: batch statistics and running-statistic updates in
#   `train()`, fixed running statistics in `eval()`. Forgetting `model.eval()` makes
#   predictions depend on the batch and pollutes the running statistics — `no_grad()` does not
#   help.
# - It **works because it keeps optimization well behaved** — larger learning rates, less
#   sensitivity to initialization — not because it removes "internal covariate shift": you
#   injected shift on purpose and it still trained.
# - **Small batches break batch norm**: noisy statistics, and with 2 samples every value
#   becomes ±1. **Layer norm** and **group norm** never look across the batch and hold up at any
#   batch size; **layer norm** (or **RMS norm**) is the norm of sequence models and
#   transformers, where batch and length vary and tokens must not see each other's statistics.
# - In PyTorch: Conv/Linear (`bias=False`) → BatchNorm → ReLU; `nn.BatchNorm1d` wants the
#   channels in dimension 1, so transpose `(B, T, C)` sequences; `nn.LayerNorm` normalizes the
#   last dimensions; a batch of 1 in training mode is an error for `BatchNorm1d`.
# - Placement inside residual blocks matters little for shallow networks; pre-activation keeps
#   the identity path clean and the gradient even across very deep stacks.
#
# Next, chapter 10 opens up the recurrent layers you used as a black box in exercise 9.4.
