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
# # Chapter 8 — Residual networks and skip connections
#
# In 2015, residual networks up to 152 layers deep won the ImageNet competition. A year
# earlier the winners had 19 and 22 layers, and even those needed tricks to train: weights
# copied from shallower networks, extra classifiers halfway up. The change that made the
# difference fits in one line of code: `out = F(x) + x`. This chapter is about that line — why it works, how to build
# every common network around it, and how to check that it does its job.
#
# **What you will learn**
# - the *degradation problem*: why a deeper plain network can train *worse* than a shallower
#   one, and why that is not overfitting;
# - residual connections, and what they do to the gradient (measured, not just claimed);
# - the block variants: basic, pre-activation, bottleneck, with projection shortcuts when
#   shapes change;
# - a complete ResNet, checked layer for layer against `torchvision.models.resnet18`;
# - DenseNet's concatenating skips and U-Net's long skips, used for denoising a microscope image;
# - how to verify skip connections and compare networks with and without them;
# - transfer learning: reusing a trained ResNet for new classes with very few labels.
#
# **Prerequisites:** chapters 2–7 (autograd, `nn.Module`, the training loop, CNNs). Batch
# normalization (`nn.BatchNorm2d`) appears in every block here; chapter 9 opens it up. For now:
# it normalizes each channel over the batch, then scales and shifts it with learned
# parameters, and it behaves differently in `train()` and `eval()` mode.
#
# **Expected time:** 2–3 hours with the exercises. The notebook runs top to bottom in under a
# minute on a laptop CPU: every network is small, and every experiment is seeded.
#
# The exercises are in section 8.6. Write your answers where a cell says `# YOUR CODE HERE`,
# then run the test cell below it: a failing test says what it expected, what it got, and
# gives a hint. Hidden tests run when your notebook is graded, so make your code right, not
# just green.

# %%
import copy
import io
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock

import helpers
from helpers import checks
from helpers.data import digits, science_image
from helpers.train import accuracy, fit

device = helpers.setup(seed=0, threads=1)  # tiny networks: one CPU thread is the fastest choice
print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, on: {device}")

# %% [markdown]
# The experiments use scikit-learn's handwritten digits: 1,797 grey images of 8 × 8 pixels,
# small enough to train a dozen networks in a minute. We split them once, with a fixed seed,
# and every experiment uses the same split.

# %%
X, y = digits()  # (1797, 1, 8, 8) float32 in [0, 1]; (1797,) int64 labels 0-9
order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
X_train, y_train = X[order[:1200]], y[order[:1200]]  # (1200, 1, 8, 8), (1200,)
X_test, y_test = X[order[1200:]], y[order[1200:]]  # (597, 1, 8, 8), (597,)
print("train", tuple(X_train.shape), "| test", tuple(X_test.shape))


def make_loader(inputs, targets, batch_size, shuffle=False, seed=0):
    """Mini-batches of (inputs, targets); the shuffling is seeded so reruns agree."""
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def accuracy_on(model, inputs, targets):
    """Fraction of correct arg-max predictions of `model` (put in eval mode) on a data set."""
    model.eval()
    return (model(inputs.to(device)).argmax(dim=1).cpu() == targets).float().mean().item()


def train_classifier(model, epochs, lr, batch_size=128):
    """Adam on the digits training set; returns fit's history (train loss, test accuracy)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model.to(device), make_loader(X_train, y_train, batch_size, shuffle=True),
               nn.CrossEntropyLoss(), optimizer, epochs=epochs,
               val_loader=make_loader(X_test, y_test, 600), metrics={"acc": accuracy},
               progress=False)


# %% [markdown]
# ## 8.1 The deep network problem
#
# Depth is what makes deep learning work: each layer builds features out of the previous
# layer's features. So in 2015 Kaiming He and colleagues asked the obvious question — does
# stacking more layers keep helping? On CIFAR-10 they trained "plain" convolutional networks
# (convolution, batch norm, ReLU, repeated) of 20 and 56 layers. The 56-layer network ended
# with a higher **test** error, and also a higher **training** error.
#
# That second fact is the puzzle. Overfitting would mean low training error and high test
# error. Here the deeper network is worse *on the data it is trained on*. And it should not
# be: take the trained 20-layer network, add 36 layers that compute the identity, and you have
# a 56-layer network exactly as good. A deeper network can always represent the shallower
# one; the optimizer just fails to find such a solution. This is the **degradation problem**:
#
# - training error *rises* with depth beyond some point, even with batch norm;
# - it is an optimization difficulty, not overfitting and not a lack of capacity.
#
# The "just add identity layers" argument hides an assumption: that a stack of layers can
# learn the identity. Let us test it. Below, a 20-layer plain network (linear + ReLU) and a
# 20-layer residual network (each pair of layers adds its output to its input) are trained
# for 60 steps to reproduce their own input, `target = x`.

# %% tags=["autograde-skip"]
D = 16
points = torch.randn(512, D)  # (B, D) random inputs; the target is the input itself


class IdentityLearner(nn.Module):
    """10 two-layer units f: h + f(h) if `residual`, else f(h) with a ReLU between units."""

    def __init__(self, residual):
        super().__init__()
        self.residual = residual
        self.units = nn.ModuleList(
            nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)) for _ in range(10))

    def forward(self, h):
        for i, unit in enumerate(self.units):
            if self.residual:
                h = h + unit(h)
            else:
                h = unit(h) if i == len(self.units) - 1 else F.relu(unit(h))
        return h


# %% tags=["autograde-skip"]
identity_curves = {}
for residual in (False, True):
    torch.manual_seed(0)
    learner = IdentityLearner(residual)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    identity_curves[residual] = []
    for step in range(60):
        optimizer.zero_grad()
        loss = F.mse_loss(learner(points), points)
        loss.backward()
        optimizer.step()
        identity_curves[residual].append(loss.item())
    print(f"{'residual' if residual else 'plain   '}: MSE after 60 steps {loss.item():.3f}")

# %% [markdown]
# A mean squared error of about 1 is what you get by answering 0 every time (the inputs have
# variance 1): the plain stack learns nothing in 60 steps, while the residual one is
# already close to the identity. With residual units, "do nothing" is the easy default —
# every unit only has to learn to output zero. Exercise 8.2 reproduces the degradation problem
# itself on the digits.

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
ax.plot(identity_curves[False], label="plain, 20 layers")
ax.plot(identity_curves[True], label="residual, 20 layers")
ax.set(xlabel="optimizer step", ylabel="MSE between output and input", yscale="log",
       title="Learning the identity function")
ax.legend()
plt.show()

# %% [markdown]
# Two landmarks, for scale. Residual networks ("ResNets") took first place in the ImageNet
# classification challenge of 2015 with an ensemble reaching 3.57 % top-5 error on the test
# set; the best single model, ResNet-152, had 4.49 % top-5 error on the validation set. (One
# trained human annotator, measured in 2014, made about 5.1 % top-5 errors — a comparison
# often quoted, with that caveat.) Today the same idea sits inside almost every deep
# architecture: U-Nets, transformers, diffusion models.
#
# ## 8.2 Why skip connections work
#
# ### 8.2.1 The problem: gradients through a long chain
#
# A plain network is a composition, $\mathbf{x}_L = f_L(f_{L-1}(\dots f_1(\mathbf{x}_0)))$.
# By the chain rule, the gradient that reaches an early layer is a product of Jacobians
# (written for row-vector gradients):
#
# $$\frac{\partial \mathcal{L}}{\partial \mathbf{x}_0} = \frac{\partial \mathcal{L}}{\partial
# \mathbf{x}_L}\,\frac{\partial \mathbf{x}_L}{\partial \mathbf{x}_{L-1}}\cdots
# \frac{\partial \mathbf{x}_1}{\partial \mathbf{x}_0}.$$
#
# If each factor shrinks the gradient by 10 %, 10 layers leave $0.9^{10} \approx 0.35$ of
# it, 20 layers $0.12$, and 50 layers $0.005$; if each factor grows it by 10 %, 50 layers
# multiply it by $1.1^{50} \approx 117$. A product of many factors is rarely well behaved.
#
# Let us measure it instead of imagining it. The cell below pushes a batch through a stack of
# 30 random linear layers, then records $\lVert \partial \mathcal{L} / \partial
# \mathbf{h}_l \rVert$, the size of the gradient arriving at the hidden states
# $\mathbf{h}_l$. A plain stack applies $\mathbf{h} \leftarrow \mathrm{ReLU}(W\mathbf{h} +
# \mathbf{b})$ thirty times; a residual stack groups the layers in pairs, as ResNet blocks do,
# and adds: $\mathbf{h} \leftarrow \mathbf{h} + W_2\,\mathrm{ReLU}(W_1 \mathbf{h} +
# \mathbf{b}_1) + \mathbf{b}_2$.

# %%
def backprop_profile(depth, residual, init="default", width=64, batch=256):
    """(layer index, norm of dLoss/dh) after each layer (plain) or pair of layers (residual)."""
    torch.manual_seed(0)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    if init == "he":  # He (Kaiming) initialization keeps the signal's scale (chapter 6)
        for layer in layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    h, states = torch.randn(batch, width), []  # (B, width)
    step = 2 if residual else 1
    for i in range(0, depth, step):
        h = h + layers[i + 1](F.relu(layers[i](h))) if residual else F.relu(layers[i](h))
        h.retain_grad()  # keep the gradient of this intermediate tensor
        states.append((i + step, h))
    h.pow(2).mean().backward()  # any scalar loss will do
    return [l for l, _ in states], torch.stack([s.grad.norm() for _, s in states])


# %% [markdown]
# Three stacks of 30 layers: plain with PyTorch's default initialization, plain with He
# initialization, and residual with the default initialization.

# %%
profiles = {
    "plain, default init": backprop_profile(30, residual=False),
    "plain, He init": backprop_profile(30, residual=False, init="he"),
    "residual, default init": backprop_profile(30, residual=True),
}
for name, (layer_ids, norms) in profiles.items():
    print(f"{name:24s} gradient after layer {layer_ids[0]}: {norms[0]:9.2e}, "
          f"after layer 30: {norms[-1]:9.2e}, ratio {norms[0] / norms[-1]:8.1e}")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
for name, (layer_ids, norms) in profiles.items():
    ax.plot(layer_ids, norms, marker=".", label=name)
ax.set(yscale="log", xlabel="layer l (1 = closest to the input)",
       ylabel=r"$\|\partial \mathcal{L} / \partial h_l\|$",
       title="Gradient reaching the layers of a 30-layer stack, at initialization")
ax.legend()
plt.show()

# %% [markdown]
# Read the plot from right (the loss) to left (the input). With the default initialization,
# each plain layer shrinks the signal, and the gradient near the input is smaller than at
# the top by more than ten orders of magnitude: it has **vanished**. He initialization fixes
# the scale on average — the curve stays within a factor of ten — but only on average, and
# only at initialization; training moves the weights away from it. The residual stack stays
# within a small factor from top to bottom without any care: every pair of layers *adds* to
# an identity path instead of replacing the signal.
#
# A correction to a common story: vanishing gradients are not what He et al. saw. Their plain
# networks used batch norm, and they checked that the gradients stayed healthy. Exercise 8.2
# measures what batch norm does to a deep plain network (you may be surprised), and shows
# that it still trains badly — the degradation problem is an optimization problem that
# clever initialization and normalization do not remove.
#
# ### 8.2.2 The solution: learn a residual
#
# Instead of asking a block of layers to produce the desired mapping $\mathcal{H}(\mathbf{x})$
# directly, let it produce a correction and add the input back:
#
# $$\mathbf{y} = \mathcal{F}(\mathbf{x}) + \mathbf{x}, \qquad \text{so the layers learn }
# \mathcal{F}(\mathbf{x}) = \mathcal{H}(\mathbf{x}) - \mathbf{x}.$$
#
# The addition is the **skip connection** (or shortcut); $\mathcal{F}$ is the **residual
# branch**. If the best thing a block can do is nothing, it only has to drive $\mathcal{F}$
# to zero, which weight decay and small initial weights already push it toward. A popular
# trick makes every block start *exactly* as the identity: initialize the scale $\gamma$ of
# the last batch norm of each residual branch to zero, so $\mathcal{F}(\mathbf{x}) = 0$ at
# step 0 (`torchvision.models.resnet18(zero_init_residual=True)` does this; section 8.4 uses
# it to test a network's wiring).
#
# ### 8.2.3 Gradient flow through a skip connection
#
# Differentiate $\mathbf{y} = \mathbf{x} + \mathcal{F}(\mathbf{x})$:
#
# $$\frac{\partial \mathcal{L}}{\partial \mathbf{x}} = \frac{\partial \mathcal{L}}{\partial
# \mathbf{y}} \left( I + \frac{\partial \mathcal{F}}{\partial \mathbf{x}} \right).$$
#
# The identity matrix $I$ (not the number 1: $\mathbf{x}$ is a vector) is a path along which
# the gradient passes unchanged. Stack blocks whose shortcuts are pure identities,
# $\mathbf{x}_L = \mathbf{x}_l + \sum_{i=l}^{L-1} \mathcal{F}_i(\mathbf{x}_i)$, and the
# gradient at any block $l$ contains $\partial \mathcal{L} / \partial \mathbf{x}_L$ itself,
# untouched by the layers in between. Autograd agrees: for a small branch
# $\mathcal{F}(\mathbf{x}) = \tanh(W\mathbf{x})$ the Jacobian of the block is $I$ plus the
# Jacobian of the branch.

# %%
W = torch.randn(3, 3)
x0 = torch.randn(3)
jac_block = torch.autograd.functional.jacobian(lambda v: v + torch.tanh(W @ v), x0)  # (3, 3)
jac_branch = torch.autograd.functional.jacobian(lambda v: torch.tanh(W @ v), x0)
print("block Jacobian - branch Jacobian =\n", (jac_block - jac_branch).round(decimals=6))

# %% [markdown]
# Two honest caveats. The $I$ guarantees a *path*, not a large gradient: the branch's
# Jacobian can partly cancel it (the concept check has an extreme case). And anything placed
# *on* the shortcut — a ReLU after the addition, a projection — sits in the path too. The
# original ResNet block does put a ReLU after the addition; the next variant removes it.
#
# ### 8.2.4 Residual block variants
#
# The **basic block** of the original ResNet ("post-activation": the ReLU comes after the
# addition):
#
# $$\mathbf{y} = \mathrm{ReLU}\Big(\mathrm{BN}\big(\mathrm{conv}(\mathrm{ReLU}(\mathrm{BN}(
# \mathrm{conv}(\mathbf{x}))))\big) + \mathbf{x}\Big)$$
#
# The **pre-activation block** (He et al., 2016) moves batch norm and ReLU *before* each
# convolution and leaves the sum alone:
#
# $$\mathbf{y} = \mathbf{x} + \mathrm{conv}\Big(\mathrm{ReLU}\big(\mathrm{BN}(\mathrm{conv}(
# \mathrm{ReLU}(\mathrm{BN}(\mathbf{x}))))\big)\Big)$$
#
# | | post-activation (original) | pre-activation |
# |---|---|---|
# | branch | conv → BN → ReLU → conv → BN | BN → ReLU → conv → BN → ReLU → conv |
# | after the addition | ReLU | nothing: the shortcut is a clean identity |
# | where it shines | up to ~100 layers, the default everywhere | very deep networks (hundreds of layers) |
#
# With pre-activation, the identity path runs from the first block to the last untouched.
# He et al. trained a 1001-layer pre-activation ResNet to 4.62 % test error on CIFAR-10, a
# depth at which the original block trained clearly worse; at 18 or 34 layers the two are close.
# Exercise 8.3 builds the pre-activation block and compares the two on the digits.
#
# ### 8.2.5 When dimensions don't match
#
# The addition needs $\mathcal{F}(\mathbf{x})$ and $\mathbf{x}$ to have the same shape. When a
# block doubles the channels and halves the resolution (stride 2), the shortcut must change
# shape too. Two options:
#
# 1. **parameter-free**: subsample $\mathbf{x}$ with stride 2 and pad the new channels with
#    zeros (option A of the ResNet paper);
# 2. **projection**: $\mathbf{y} = \mathcal{F}(\mathbf{x}) + W_s \mathbf{x}$ with $W_s$ a
#    1 × 1 convolution of stride 2 (usually followed by batch norm). It costs
#    $C_\text{in} C_\text{out}$ weights and is what torchvision and most code use.
#
# Both, on a `(B, C, H, W) = (2, 16, 8, 8)` tensor going to 32 channels at half resolution:

# %%
x = torch.randn(2, 16, 8, 8)  # (B, C, H, W)
zero_padded = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 16))  # pad channels 16 -> 32: (2, 32, 4, 4)
projection = nn.Conv2d(16, 32, kernel_size=1, stride=2, bias=False)
print("zero padding:", tuple(zero_padded.shape), "with 0 parameters")
print("projection:  ", tuple(projection(x).shape), "with",
      sum(p.numel() for p in projection.parameters()), "parameters (16 x 32)")

# %% [markdown]
# ## 8.3 Building residual blocks
#
# torchvision ships the reference implementations, and we use them as the yardstick: in the
# exercises you write your own blocks and your own ResNet, and the tests load torchvision's
# weights into them and demand the same outputs.
#
# ### 8.3.1 The basic block
#
# Here is torchvision's basic block going from 64 to 128 channels with stride 2. It needs its
# projection shortcut passed in as `downsample`.

# %%
down = nn.Sequential(nn.Conv2d(64, 128, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(128))
reference = TorchvisionBasicBlock(64, 128, stride=2, downsample=down)
print(reference)
x = torch.randn(4, 64, 32, 32)  # (B, C, H, W)
print("input", tuple(x.shape), "-> output", tuple(reference(x).shape))

# %% [markdown]
# Notice `bias=False` in every convolution. A convolution followed by batch norm does not
# need a bias: batch norm subtracts the per-channel mean over the batch, and a constant bias
# added to every position of a channel is subtracted right back. A bias there is a parameter
# that can never have any effect. Checked:

# %%
torch.manual_seed(0)
conv_with_bias = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=True)
conv_without = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
conv_without.weight.data.copy_(conv_with_bias.weight.data)
bn = nn.BatchNorm2d(8)  # training mode: normalizes with the batch statistics
images = torch.randn(16, 3, 10, 10)
gap = (bn(conv_with_bias(images)) - bn(conv_without(images))).abs().max().item()
print(f"largest difference with and without the bias: {gap:.1e}")

# %% [markdown]
# ### 8.3.2 The pre-activation block
#
# Two details decide whether a pre-activation block keeps its promise of a clean identity path:
#
# - **no ReLU after the addition** — the next block starts with BN → ReLU anyway;
# - when the shapes match, the shortcut carries **`x` itself**, not the normalized and
#   activated `ReLU(BN(x))`. (When a projection is needed, it is applied to `ReLU(BN(x))`,
#   as in the authors' code: the first BN → ReLU then serves both paths.)
#
# A network of pre-activation blocks also needs a final BN → ReLU before pooling, because the
# last block's output has not been through one. You build it in Exercise 8.3.
#
# ### 8.3.3 The bottleneck block
#
# Deep ResNets (50 layers and more) replace the two 3 × 3 convolutions with three: a 1 × 1
# convolution that *reduces* the channels (say 256 → 64), a 3 × 3 convolution at the reduced
# width, and a 1 × 1 convolution that *expands* back (64 → 256, the `expansion` factor is 4).
# The expensive 3 × 3 work happens on 4× fewer channels. Counting parameters with torchvision's
# blocks, for 256 channels in and out:

# %%
from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck


def n_params(module):
    return sum(p.numel() for p in module.parameters())


basic_256 = TorchvisionBasicBlock(256, 256)
bottleneck_256 = TorchvisionBottleneck(256, 64)  # 256 -> 64 -> 64 -> 256
print(f"basic block, 256 channels:      {n_params(basic_256):>9,} parameters")
print(f"bottleneck block, 256 channels: {n_params(bottleneck_256):>9,} parameters")
print(f"ratio: {n_params(basic_256) / n_params(bottleneck_256):.1f}x")

# %% [markdown]
# By hand: the basic block has two 3 × 3 convolutions with $3 \cdot 3 \cdot 256 \cdot 256 =
# 589{,}824$ weights each, about 1.18 million in total (a number you will sometimes see
# quoted as 590 thousand — that is one convolution, not the block). The bottleneck has
# $256 \cdot 64 + 9 \cdot 64 \cdot 64 + 64 \cdot 256 = 69{,}632$ convolution weights, plus batch
# norm: about 17 times fewer, for a block that is one layer deeper. Exercise 8.5 builds it.
#
# ### 8.3.4 A complete ResNet
#
# A ResNet is a **stem** (a 7 × 7 convolution with stride 2, then 3 × 3 max pooling with
# stride 2), four **stages** of residual blocks at 64, 128, 256 and 512 channels — each stage
# after the first halves the resolution in its first block — then global average pooling and
# one linear layer. The number in the name counts the layers with weights on the main path:
# ResNet-18 has $1 + 4 \times 2 \times 2 + 1 = 18$ (stem, 4 stages of 2 basic blocks with 2
# convolutions each, the classifier); ResNet-50 has $1 + (3+4+6+3) \times 3 + 1 = 50$. The
# 1 × 1 projection shortcuts are not counted.
#
# Watch a 224 × 224 image travel through torchvision's ResNet-18 (random weights; nothing is
# downloaded):

# %%
resnet18 = torchvision.models.resnet18(weights=None).eval()
h = torch.randn(1, 3, 224, 224)  # (B, C, H, W)
with torch.no_grad():
    for name in ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                 "avgpool"]:
        h = getattr(resnet18, name)(h)
        print(f"{name:8s} -> {tuple(h.shape)}")
    print(f"{'fc':8s} -> {tuple(resnet18.fc(h.flatten(1)).shape)}")
print(f"parameters: {n_params(resnet18):,}")

# %% [markdown]
# For small images such as CIFAR's 32 × 32 (or our 8 × 8 digits) the stem would throw away
# most of the picture, so small-image ResNets use a 3 × 3 convolution with stride 1 and no
# max pooling. How big are the famous ones? Measured, with the classifier for ImageNet's
# 1000 classes:

# %% tags=["autograde-skip"]
with torch.device("meta"):  # shapes only, no memory and no initialization: instant
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "densenet121"]:
        model = getattr(torchvision.models, name)(weights=None)
        print(f"{name:12s} {n_params(model) / 1e6:5.1f} M parameters")

# %% [markdown]
# In practice you would start from weights trained on ImageNet. The download is one argument
# away — shown here, not run, because this course works offline:
#
# ```python
# weights = torchvision.models.ResNet18_Weights.DEFAULT          # downloads ~45 MB once
# model = torchvision.models.resnet18(weights=weights)
# preprocess = weights.transforms()                               # the matching normalization
# ```
#
# (Older code writes `pretrained=True`; that argument is deprecated.) Section 8.5 does
# transfer learning offline with a network you pretrain yourself.
#
# ### 8.3.5 Dense connections (DenseNet)
#
# DenseNet (Huang et al., 2017) takes skips to the extreme: inside a *dense block*, every
# layer receives the **concatenation** of the block's input and all earlier layers' outputs,
# and adds $k$ new channels (the *growth rate*):
#
# $$\mathbf{x}_\ell = H_\ell\big([\mathbf{x}_0, \mathbf{x}_1, \dots, \mathbf{x}_{\ell-1}]\big),
# \qquad C_\text{out} = C_0 + L\,k \text{ channels after } L \text{ layers}.$$
#
# Each $H_\ell$ is BN → ReLU → 3 × 3 convolution. Concatenation instead of addition means
# nothing is overwritten: later layers read earlier features directly, so each layer can be
# thin ($k = 12$ or $32$), which makes DenseNets parameter-efficient. Between blocks, a
# **transition layer** (BN → ReLU → 1 × 1 convolution → 2 × 2 average pooling) shrinks the
# channels and the resolution. The price is memory: concatenations keep every intermediate
# feature map alive for the backward pass. Here is the channel bookkeeping of one block with
# $C_0 = 64$, $k = 32$, $L = 4$, using bare concatenation with stand-in features:

# %%
features = [torch.randn(2, 64, 16, 16)]  # x_0: (B, C_0, H, W)
for layer in range(4):
    new = torch.randn(2, 32, 16, 16)  # stands in for H_l(torch.cat(features, dim=1))
    print(f"layer {layer}: input {sum(f.shape[1] for f in features)} channels -> adds 32")
    features.append(new)
print("block output:", tuple(torch.cat(features, dim=1).shape))  # 64 + 4 * 32 = 192

# %% [markdown]
# ### 8.3.6 Skip connections in practice
#
# Skips come in three shapes, and good architectures often use all three:
#
# | kind | what it does | example |
# |---|---|---|
# | short, additive | `x + F(x)` across 2–3 layers | ResNet blocks, transformer layers |
# | long, concatenating | encoder features handed to the decoder at the same resolution | U-Net |
# | global | the network predicts a *correction* to its input: `x + net(x)` | denoisers (DnCNN), super-resolution |
#
# Guidelines that hold up:
#
# 1. **put a skip around every 2–3 layers** (one block), not around single layers;
# 2. **keep the shortcut an identity** whenever the shapes allow; project (1 × 1 convolution)
#    only where channels or resolution change;
# 3. **add before the final activation**, or use pre-activation so that nothing follows the sum;
# 4. **the branch should be able to output zero**: end it with a normalization or a linear
#    layer, not with a ReLU that forces corrections to be positive.
#
# Skips are not specific to convolutions. A residual MLP is the same idea with linear
# layers — Exercise 8.2 builds one. A U-Net for images combines short residual skips inside
# its blocks, long skips across, and a global skip — Exercise 8.6 builds one and denoises real
# microscope images with it.
#
# ## 8.4 Debugging ResNets
#
# ### 8.4.1 Verifying skip connections
#
# A skip connection that is wired wrong often *still trains* — just worse — so bugs hide.
# Three checks catch most of them.
#
# **1. Identity test.** Zero every residual branch; then every block with an identity
# shortcut must return its input (after the final ReLU, which leaves non-negative inputs
# alone). torchvision's `zero_init_residual=True` zeroes the last BN scale of each branch,
# which is exactly this:

# %%
identity_net = torchvision.models.resnet18(weights=None, zero_init_residual=True).eval()
h = torch.relu(torch.randn(2, 64, 16, 16))  # a non-negative input, as after the stem's ReLU
with torch.no_grad():
    out = identity_net.layer1(h)  # two basic blocks with identity shortcuts
print("layer1 is the identity when its branches are zero:", torch.equal(out, h))

# %% [markdown]
# **2. Gradient reaches the input.** Backpropagate a scalar to the input image: a zero or
# missing gradient there means something detached the graph. **3. Per-block gradient
# norms.** Record the gradient of the first convolution of each block: a healthy network
# shows no block whose gradient is orders of magnitude off its neighbours.

# %%
model = torchvision.models.resnet18(weights=None)
image = torch.randn(2, 3, 64, 64, requires_grad=True)  # (B, C, H, W)
model(image).logsumexp(dim=1).sum().backward()
print(f"mean |gradient| at the input image: {image.grad.abs().mean():.2e}")
block_norms = {name: p.grad.norm().item() for name, p in model.named_parameters()
               if name.endswith("conv1.weight")}
for name, norm in block_norms.items():
    print(f"{name:22s} {norm:.3f}")

# %% [markdown]
# ### 8.4.2 Comparing with and without skip connections
#
# The decisive test is the one He et al. ran: the same network with and without its
# shortcuts, trained the same way. Compare training loss curves (the degradation problem
# shows in the *training* loss), test accuracy, and gradient norms per layer at
# initialization. Exercise 8.2 is exactly this experiment.
#
# **Common mistakes**, in the order you will probably make them:
#
# 1. forgetting the projection when the shapes change — PyTorch then refuses the addition:

# %%
branch_out = torch.randn(4, 128, 16, 16)  # F(x) after a stride-2 block with 128 channels
x = torch.randn(4, 64, 32, 32)  # the block's input
try:
    branch_out + x
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# 2. a ReLU after the addition in a pre-activation block, or a shortcut that carries
#    `ReLU(BN(x))` instead of `x` — the network trains, the identity path is gone;
# 3. a ReLU at the end of the residual branch — the branch can then only *add*;
# 4. in-place operations on the tensor you saved for the shortcut (`x.relu_()` before
#    `out + x`), which silently change what the shortcut carries;
# 5. comparing "plain vs residual" with different learning rates, seeds or data orders.
#
# ## 8.5 Transfer learning: reusing a trained ResNet
#
# Training from scratch needs many labelled examples. Often you have few, but there is a
# related task with many: then train (or download) a network on the big task and **transfer**
# it. Early layers learn general features — edges, strokes, textures — and later layers
# increasingly specific ones (Yosinski et al., 2014). Three ways to adapt a trained backbone to
# new classes:
#
# | strategy | what is trained | when it fits |
# |---|---|---|
# | **frozen backbone + new head** | only a fresh final linear layer | very few labels, target similar to source |
# | **fine-tuning with discriminative learning rates** | everything; small learning rates for early layers, larger toward the head | more labels, or a target that differs |
# | **from scratch** | everything, from random weights | lots of labels (the baseline) |
#
# Freezing is `p.requires_grad_(False)` on the backbone's parameters. But batch norm has a
# trap: its running mean and variance are *buffers*, not parameters, and they keep updating
# whenever the model runs in `train()` mode — `requires_grad` does not stop them. A frozen
# backbone must run in `eval()` mode.
#
# **Discriminative learning rates** (Howard and Ruder, 2018) give each stage its own learning
# rate through optimizer *parameter groups*, decaying by a factor per stage from the head down:
#
# ```python
# torch.optim.Adam([{"params": model.layer4.parameters(), "lr": 1e-3},
#                   {"params": model.fc.parameters(), "lr": 1e-2}])
# ```
#
# In Exercise 8.4 you pretrain your own small ResNet on the digits 0–4, then adapt it to the
# digits 5–9 from only 5 labelled images per class, with all three strategies.
#
# ## 8.6 Exercises
#
# ### Exercise 8.1 — Basic residual block (★★, 3 points)
#
# Write `BasicBlock(in_channels, out_channels, stride=1)`, the post-activation block of
# section 8.2.4, with these attributes (the tests load torchvision's weights into them by
# name):
#
# - `conv1`: 3 × 3 convolution `in_channels → out_channels` with the block's `stride`,
#   padding 1, no bias; `bn1`: `nn.BatchNorm2d(out_channels)`;
# - `conv2`: 3 × 3 convolution `out_channels → out_channels`, stride 1, padding 1, no bias;
#   `bn2`: `nn.BatchNorm2d(out_channels)`;
# - `shortcut`: `nn.Identity()` when `stride == 1` and the channel counts match; otherwise
#   the projection `nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride,
#   bias=False), nn.BatchNorm2d(out_channels))`.
#
# `forward(x)` maps `(B, in_channels, H, W)` to `(B, out_channels, ⌈H/stride⌉,
# ⌈W/stride⌉)`: `ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x))`. The class attribute
# `expansion = 1` says that the block outputs `out_channels × expansion` channels; the ResNet
# of Exercise 8.4 relies on it.
#
# The tests check the seed's three cases (64 → 64; 64 → 128 with stride 2; 64 → 64 with
# stride 2) and the parameter count, then copy the weights into torchvision's `BasicBlock`
# and demand the same outputs in training and in evaluation mode. Hidden tests try odd image
# sizes, check that the input is left unchanged, that a zeroed branch makes the block the
# identity on non-negative inputs, and the gradient.
#
# *Hints:* a stride-2 block needs a projection even when the channel counts match. Never
# apply an in-place operation to `x`: the shortcut still needs it.

# %% nbgrader={"grade": false, "grade_id": "ex08_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BasicBlock(nn.Module):
    """Post-activation residual block: (B, C_in, H, W) -> (B, C_out, ceil(H/s), ceil(W/s))."""

    expansion = 1  # the block outputs out_channels * expansion channels

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = F.relu(self.bn1(self.conv1(x)))  # (B, C_out, H', W')
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_1_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from torchvision.models.resnet import BasicBlock as _ReferenceBasic


def _randomize_batchnorm(module):
    """Random BN scales, shifts and running statistics, so that eval mode is a real test."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.5)
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def _torchvision_twin(block, cin, cout, stride):
    """torchvision's BasicBlock carrying the weights of `block` (shortcut -> downsample)."""
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    twin = _ReferenceBasic(cin, cout, stride, down)
    state = {k.replace("shortcut.", "downsample."): v for k, v in block.state_dict().items()}
    try:
        twin.load_state_dict(state)
    except RuntimeError as err:
        checks.fail(f"the parameters of BasicBlock({cin}, {cout}, stride={stride}) do not have "
                    "the expected names and shapes.",
                    "conv1, bn1, conv2, bn2, and shortcut = nn.Sequential(1x1 Conv2d, "
                    "BatchNorm2d) when projecting", " ".join(str(err).split())[:200],
                    "name the layers exactly as in the task; nn.Identity() has no parameters")
    return twin


torch.manual_seed(0)
x = torch.randn(2, 64, 32, 32)  # (B, C, H, W)
for args, shape in [((64, 64, 1), (2, 64, 32, 32)), ((64, 128, 2), (2, 128, 16, 16)),
                    ((64, 64, 2), (2, 64, 16, 16))]:
    checks.check_module(BasicBlock(*args), f"BasicBlock{args}", example_input=x,
                        output_shape=shape,
                        hint="the stride goes to conv1 and to the projection shortcut")
checks.check_module(BasicBlock(64, 64), "BasicBlock(64, 64)", n_params=2 * (9 * 64 * 64 + 2 * 64),
                    hint="two 3x3 convolutions without bias, two BatchNorm2d, and an identity "
                         "shortcut, which has no parameters")
block = BasicBlock(16, 32, stride=2)
_randomize_batchnorm(block)
twin = _torchvision_twin(block, 16, 32, 2)
x = torch.randn(4, 16, 9, 9)
for mode in (True, False):
    block.train(mode), twin.train(mode)
    checks.check_close(block(x), twin(x), f"BasicBlock(16, 32, stride=2) in "
                       f"{'train' if mode else 'eval'} mode", rtol=1e-4, atol=1e-5,
                       hint="conv1 -> bn1 -> ReLU -> conv2 -> bn2, plus shortcut(x), then ReLU")
### BEGIN HIDDEN TESTS
block = BasicBlock(8, 8).eval()
with torch.no_grad():
    block.bn2.weight.zero_()
    block.bn2.bias.zero_()
h = torch.relu(torch.randn(3, 8, 5, 5))
checks.check_close(block(h), h, "BasicBlock(8, 8) with a zeroed branch, on h >= 0",
                   hint="the shortcut must carry x itself into the sum")
checks.check_equal(sum(p.numel() for p in BasicBlock(8, 8).shortcut.parameters()), 0,
                   "the number of parameters of an identity shortcut")
checks.check_module(BasicBlock(8, 16, 2), "BasicBlock(8, 16, stride=2)",
                    n_params=9 * 8 * 16 + 9 * 16 * 16 + 8 * 16 + 3 * 2 * 16)
for cin, cout, stride, size in [(8, 8, 2, 7), (6, 10, 1, 5), (5, 5, 1, 6), (4, 12, 2, 6)]:
    block = BasicBlock(cin, cout, stride)
    _randomize_batchnorm(block)
    twin = _torchvision_twin(block, cin, cout, stride)
    x = torch.randn(3, cin, size, size)
    x_before = x.clone()
    for mode in (True, False):
        block.train(mode), twin.train(mode)
        checks.check_close(block(x), twin(x), f"BasicBlock({cin}, {cout}, stride={stride}) on "
                           f"{size}x{size} images", rtol=1e-4, atol=1e-5)
    checks.check_equal(x, x_before, "the input after calling the block",
                       hint="no in-place operation on x")
block = BasicBlock(3, 3).double().eval()
checks.check_gradcheck(block, (torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True),),
                       "BasicBlock(3, 3)")
checks.check_equal(BasicBlock.expansion, 1, "BasicBlock.expansion")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 8.2 — Plain vs residual comparison (★★★, 5 points)
#
# Reproduce the degradation problem and its cure. To fit in a CPU minute, the networks are
# multilayer perceptrons on the flattened 8 × 8 digits: a skip connection does not care
# whether its branch holds convolutions or linear layers, and the recipe is the one He et al.
# followed on CIFAR-10 — the same network with and without shortcuts, trained identically.
#
# **(a)** Write `DeepMLP(depth, width=64, residual=True, in_features=64, num_classes=10)`:
#
# - `self.stem = nn.Linear(in_features, width)`;
# - `self.blocks`: an `nn.ModuleList` of `(depth - 2) // 2` blocks, each
#   `nn.Sequential(nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
#   nn.Linear(width, width, bias=False), nn.BatchNorm1d(width))`;
# - `self.head = nn.Linear(width, num_classes)`;
# - `forward(x)`: flatten `x` to `(B, in_features)`; `h = ReLU(stem(x))`; then each block
#   computes `h = ReLU(block(h) + h)` if `residual`, else `h = ReLU(block(h))`; return the
#   logits `head(h)`, shape `(B, num_classes)`.
#
# `depth` counts the linear layers (2 + 2 per block), so it must be an even int ≥ 2: raise a
# `ValueError` otherwise. Both variants have exactly the same parameters; only `+ h` differs.
#
# **(b)** Write `layer_grad_norms(model, x, y)`: a float tensor of shape `(L,)`, one entry per
# `nn.Linear` of `model` in the order in which `model.modules()` lists them: the Frobenius
# norm of $\partial \mathcal{L} / \partial W$ for that layer's weight $W$, where
# $\mathcal{L}$ is the cross-entropy of `model(x)` against `y`, computed in training mode. A
# debugging tool must not disturb what it inspects: the caller's model — parameters,
# batch-norm running statistics, `.grad` fields, train/eval mode — must be left exactly as
# it was.
#
# The tests compare your forward pass with one written with `torch.nn.functional`, count
# layers and parameters, compare your norms with `torch.autograd.grad` on fresh models, and
# check that nothing of the caller's model changed.
#
# *Hints:* (a) `x.flatten(1)`. (b) Batch norm updates its running statistics in every
# training-mode forward pass, so work on `copy.deepcopy(model)`, put the copy in `.train()`
# mode, collect `[m.weight for m in copy.modules() if isinstance(m, nn.Linear)]`, and let
# `torch.autograd.grad(loss, weights)` return the gradients without touching any `.grad`.

# %% nbgrader={"grade": false, "grade_id": "ex08_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DeepMLP(nn.Module):
    """`depth` linear layers, plain or residual: (B, in_features) or (B, 1, 8, 8) -> (B, classes)."""

    def __init__(self, depth: int, width: int = 64, residual: bool = True, in_features: int = 64,
                 num_classes: int = 10):
        super().__init__()
        self.residual = residual
        ### BEGIN SOLUTION
        if not isinstance(depth, int) or depth < 2 or depth % 2:
            raise ValueError(f"depth must be an even int >= 2 (2 + 2 per block), got {depth!r}")
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
                          nn.Linear(width, width, bias=False), nn.BatchNorm1d(width))
            for _ in range((depth - 2) // 2))
        self.head = nn.Linear(width, num_classes)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        h = F.relu(self.stem(x.flatten(1)))  # (B, width)
        for block in self.blocks:
            h = F.relu(block(h) + h) if self.residual else F.relu(block(h))
        return self.head(h)  # (B, num_classes)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _mlp_reference(net, x, residual, training):
    """The forward pass of the task, written with torch.nn.functional on net's parameters."""
    def norm(bn, t):
        return F.batch_norm(t, bn.running_mean.clone(), bn.running_var.clone(), bn.weight,
                            bn.bias, training=training, eps=bn.eps)
    h = F.relu(F.linear(x.flatten(1), net.stem.weight, net.stem.bias))
    for block in net.blocks:
        kinds = [type(m).__name__ for m in block]
        checks.check_equal(kinds, ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"],
                           "the layers of a block", hint="see the task for the exact sequence")
        first, bn1, _, second, bn2 = block
        checks.check(first.bias is None and second.bias is None,
                     "the linear layers of a block should have no bias (batch norm follows).")
        z = F.linear(F.relu(norm(bn1, F.linear(h, first.weight))), second.weight)
        z = norm(bn2, z)
        h = F.relu(z + h) if residual else F.relu(z)
    return F.linear(h, net.head.weight, net.head.bias)


checks.check_raises(lambda: DeepMLP(5), ValueError, "DeepMLP(5)",
                    hint="depth counts linear layers: 2 + 2 per block, so it must be even")
torch.manual_seed(0)
x = torch.randn(6, 1, 8, 8)  # (B, 1, H, W) digits-shaped input
for residual in (True, False):
    net = DeepMLP(6, width=16, residual=residual)
    name = f"DeepMLP(6, width=16, residual={residual})"
    checks.check_equal(sum(isinstance(m, nn.Linear) for m in net.modules()), 6,
                       f"the number of nn.Linear layers of {name}")
    checks.check_module(net, name, n_params=64 * 16 + 16 + 2 * (2 * 16 * 16 + 4 * 16) + 16 * 10 + 10,
                        example_input=x, output_shape=(6, 10))
    _randomize_batchnorm(net)
    net.train()
    checks.check_close(net(x), _mlp_reference(net, x, residual, True), f"{name}(x)", rtol=1e-4,
                       atol=1e-5, hint="h = ReLU(block(h) + h) for residual, ReLU(block(h)) else")
### BEGIN HIDDEN TESTS
for bad in (0, 1, 7, -2, 4.0):
    checks.check_raises(lambda: DeepMLP(bad), ValueError, f"DeepMLP({bad!r})")
shallow = DeepMLP(2, width=8)
checks.check_equal(len(shallow.blocks), 0, "the number of blocks of DeepMLP(2)")
checks.check_type(shallow.blocks, nn.ModuleList, "DeepMLP(...).blocks")
checks.check_shape(shallow(torch.randn(3, 64)), (3, 10), "DeepMLP(2) on (3, 64) inputs")
for residual in (True, False):
    net = DeepMLP(8, width=12, residual=residual, in_features=20, num_classes=3)
    _randomize_batchnorm(net)
    x = torch.randn(7, 20)
    for training in (True, False):
        net.train(training)
        checks.check_close(net(x), _mlp_reference(net, x, residual, training),
                           f"DeepMLP(8, residual={residual}) in {'train' if training else 'eval'}"
                           " mode", rtol=1e-4, atol=1e-5)
deep = DeepMLP(32)
checks.check_equal(len(deep.blocks), 15, "the number of blocks of DeepMLP(32)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex08_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layer_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Norm of dLoss/dW for the weight of every nn.Linear of `model`: (L,), model untouched."""
    ### BEGIN SOLUTION
    probe = copy.deepcopy(model).train()
    weights = [m.weight for m in probe.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(probe(x), y), weights)
    return torch.stack([g.norm() for g in grads]).detach()
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_2_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def _reference_norms(model, x, y):
    probe = copy.deepcopy(model).train()
    weights = [m.weight for m in probe.modules() if isinstance(m, nn.Linear)]
    return torch.stack([g.norm() for g in torch.autograd.grad(F.cross_entropy(probe(x), y),
                                                              weights)])


torch.manual_seed(1)
net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
                    nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
xb, yb = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
state_before = {k: v.clone() for k, v in net.state_dict().items()}
norms = layer_grad_norms(net, xb, yb)
checks.check_tensor(norms, "layer_grad_norms(net, x, y)", shape=(3,), dtype=torch.float32,
                    hint="one norm per nn.Linear, stacked into one tensor")
checks.check_close(norms, _reference_norms(net, xb, yb), "layer_grad_norms(net, x, y)", rtol=1e-4,
                   hint="the Frobenius norm of the gradient of each Linear's weight, in train mode")
checks.check(not net.training, "layer_grad_norms switched the caller's model to train mode.",
             "the model still in eval mode", "train mode", "work on copy.deepcopy(model)")
for key, value in net.state_dict().items():
    checks.check_equal(value, state_before[key], f"net.state_dict()['{key}'] after the call",
                       hint="a training-mode forward pass updates batch-norm statistics: "
                            "use a deep copy of the model")
checks.check(all(p.grad is None for p in net.parameters()),
             "layer_grad_norms left gradients in the caller's .grad fields.",
             hint="torch.autograd.grad returns gradients without storing them")
### BEGIN HIDDEN TESTS
torch.manual_seed(2)
for residual in (True, False):
    model = DeepMLP(10, width=16, residual=residual)
    xs, ys = torch.randn(40, 64), torch.randint(0, 10, (40,))
    first = layer_grad_norms(model, xs, ys)
    second = layer_grad_norms(model, xs, ys)
    checks.check_close(first, _reference_norms(model, xs, ys), f"norms of DeepMLP(10, residual="
                       f"{residual})", rtol=1e-4)
    checks.check_close(second, first, "a second call on the same model",
                       hint="gradients must not accumulate from one call to the next")
    checks.check(model.training, "layer_grad_norms switched the caller's model to eval mode.")
### END HIDDEN TESTS

# %% [markdown]
# **(c)** The experiment: a shallow plain network (4 layers), a deep plain one and a deep
# residual one (32 layers each), trained identically — same seed, data order, optimizer and
# 8 epochs. Before training, `layer_grad_norms` takes a snapshot of the gradient per layer.
# **Quality target:** the residual network reaches a training loss below 0.3 and at least
# 90 % test accuracy (the tests require 88 %).

# %%
runs = {"plain_4": (4, False), "plain_32": (32, False), "residual_32": (32, True)}
x_probe, y_probe = X_train[:256].to(device), y_train[:256].to(device)
results_82 = {}
for name, (depth, residual) in runs.items():
    torch.manual_seed(0)
    model = DeepMLP(depth, residual=residual).to(device)
    grad_norms = layer_grad_norms(model, x_probe, y_probe).cpu()  # (depth,) at initialization
    history = train_classifier(model, epochs=8, lr=3e-3)
    results_82[name] = {"grad_norms": grad_norms, "train_loss": history["train_loss"],
                        "test_acc": history["val_acc"][-1]}
    print(f"{name:12s} final training loss {history['train_loss'][-1]:.3f}, "
          f"test accuracy {history['val_acc'][-1]:.1%}")
print(f"QUALITY: 8.2 residual_32 test accuracy {results_82['residual_32']['test_acc']:.1%} "
      f"(target >= 90 %), plain_32 {results_82['plain_32']['test_acc']:.1%}")

# %% tags=["autograde-skip"]
fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(12, 4))
for name, run in results_82.items():
    epochs = range(1, len(run["train_loss"]) + 1)
    ax_loss.plot(epochs, run["train_loss"], marker="o", ms=3, label=name)
    ax_grad.plot(range(1, len(run["grad_norms"]) + 1), run["grad_norms"], marker=".", label=name)
ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log",
            title="Training loss: deeper plain is worse, residual is not")
ax_grad.set(xlabel="linear layer (1 = closest to the input)", yscale="log",
            ylabel=r"$\|\partial \mathcal{L} / \partial W\|$", title="Gradient per layer at init")
ax_loss.legend()
ax_grad.legend()
plt.show()

# %% [markdown]
# Read both panels before you answer. On the left, the *training* loss: compare the two
# plain networks with each other, then the two deep ones. On the right, the gradient each
# linear layer receives at initialization (log scale): follow plain_32 from its last layer
# (right) to its first (left), then residual_32.
#
# - `answer_82_depth`: plain_32 ends with a higher *training* loss than plain_4. That shows:
#   (A) plain_32 overfits the training set; (B) plain_32 is harder to optimize — the
#   degradation problem; (C) plain_32 has fewer parameters than plain_4.
# - `answer_82_gradients`: at initialization, the gradients of plain_32's first layers
#   compared with its last layers are: (A) far smaller — they vanish; (B) far larger — they
#   explode; (C) about the same size.

# %% nbgrader={"grade": false, "grade_id": "ex08_2_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
answer_82_depth = ...  # "A", "B" or "C"
answer_82_gradients = ...  # "A", "B" or "C"
### BEGIN SOLUTION
answer_82_depth = "B"
answer_82_gradients = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_2_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for variable, value in [("answer_82_depth", answer_82_depth),
                        ("answer_82_gradients", answer_82_gradients)]:
    checks.check_choice(value, "ABC", variable)
checks.check_equal(sorted(results_82), ["plain_32", "plain_4", "residual_32"], "the runs of results_82")
for name, (depth, _) in runs.items():
    checks.check_equal(len(results_82[name]["train_loss"]), 8, f"epochs recorded for {name}")
    checks.check_shape(results_82[name]["grad_norms"], (depth,), f'results_82["{name}"]["grad_norms"]')
final = {name: run["train_loss"][-1] for name, run in results_82.items()}
checks.check(final["residual_32"] < 0.3, "residual_32 should reach a training loss below 0.3.",
             "< 0.3", final["residual_32"], "check the + h of DeepMLP's residual blocks")
checks.check(results_82["residual_32"]["test_acc"] >= 0.88,
             "residual_32 should reach at least 88 % test accuracy.", ">= 0.88",
             results_82["residual_32"]["test_acc"])
### BEGIN HIDDEN TESTS
checks.check(final["residual_32"] <= final["plain_32"] / 3,
             "residual_32's training loss should be at most a third of plain_32's.",
             f"<= {final['plain_32'] / 3:.3f}", final["residual_32"])
checks.check_equal(answer_82_depth, "B" if final["plain_32"] > final["plain_4"] else "C",
                   "answer_82_depth", hint="a higher TRAINING loss cannot be overfitting")
torch.manual_seed(0)
reference_plain = nn.Sequential(
    nn.Flatten(), nn.Linear(64, 64), nn.ReLU(),
    *[nn.Sequential(nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
                    nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(15)],
    nn.Linear(64, 10))
ref_norms = _reference_norms(reference_plain, X_train[:256], y_train[:256])
ratio = (ref_norms[:3].mean() / ref_norms[-3:].mean()).item()
expected_letter = "B" if ratio > 10 else ("A" if ratio < 0.1 else "C")
checks.check_equal(answer_82_gradients, expected_letter, "answer_82_gradients")
### END HIDDEN TESTS

# %% [markdown]
# What happened? With batch norm, the deep plain network's gradients do not vanish — they
# *explode* toward the input at initialization (a known property of deep batch-normalized
# networks, analysed by Yang et al., 2019) — and the network trains far more slowly than its
# 4-layer cousin: degradation, although every layer gets gradient. The residual network has
# the same parameters and the same normalization, but each block starts close to the
# identity, its gradients grow far less toward the input, and depth stops hurting. That is
# the central experiment of the ResNet paper, reproduced on a laptop in seconds.
#
# ### Exercise 8.3 — Pre-activation vs post-activation (★★★, 4 points)
#
# **(a)** Write `PreActBlock(in_channels, out_channels, stride=1)` (sections 8.2.4 and 8.3.2)
# with these attributes:
#
# - `bn1 = nn.BatchNorm2d(in_channels)`; `conv1`: 3 × 3, `in_channels → out_channels`, the
#   block's `stride`, padding 1, no bias;
# - `bn2 = nn.BatchNorm2d(out_channels)`; `conv2`: 3 × 3, `out_channels → out_channels`,
#   stride 1, padding 1, no bias;
# - `shortcut`: `nn.Identity()` when `stride == 1` and the channel counts match; otherwise
#   `nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)` — no batch norm.
#
# `forward(x)`: `a = ReLU(bn1(x))`; the skip is `x` itself for an identity shortcut and
# `shortcut(a)` for a projection; return `conv2(ReLU(bn2(conv1(a)))) + skip` — with **no**
# ReLU after the sum. Output shape as for `BasicBlock`.
#
# The tests compare your block with the formula written with `torch.nn.functional` in both
# modes, and check the clean identity path: with `conv2`'s weights zeroed, the block must
# return its input *exactly* — negative values included.
#
# *Hint:* compute `a` once and decide what the skip carries with
# `isinstance(self.shortcut, nn.Identity)`.

# %% nbgrader={"grade": false, "grade_id": "ex08_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PreActBlock(nn.Module):
    """Pre-activation residual block: BN -> ReLU -> conv, twice, plus a clean identity path."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        else:
            self.shortcut = nn.Identity()
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        a = F.relu(self.bn1(x))  # shared pre-activation
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(a)
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + skip  # no activation after the sum
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_3_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _preact_reference(block, x, stride, training):
    """The pre-activation formula, written with torch.nn.functional on block's parameters."""
    def norm(bn, t):
        return F.batch_norm(t, bn.running_mean.clone(), bn.running_var.clone(), bn.weight,
                            bn.bias, training=training, eps=bn.eps)
    a = F.relu(norm(block.bn1, x))
    if isinstance(block.shortcut, nn.Identity):
        skip = x
    else:
        skip = F.conv2d(a, block.shortcut.weight, stride=stride)
    out = F.conv2d(a, block.conv1.weight, stride=stride, padding=1)
    return F.conv2d(F.relu(norm(block.bn2, out)), block.conv2.weight, padding=1) + skip


torch.manual_seed(0)
for cin, cout, stride in [(8, 8, 1), (8, 16, 2)]:
    block = PreActBlock(cin, cout, stride)
    projecting = stride != 1 or cin != cout
    kind = nn.Conv2d if projecting else nn.Identity
    checks.check_type(block.shortcut, kind, f"PreActBlock({cin}, {cout}, {stride}).shortcut",
                      hint="nn.Identity() when the shapes match, else a 1x1 nn.Conv2d, no BN")
    checks.check_module(block, f"PreActBlock({cin}, {cout}, {stride})",
                        n_params=9 * cin * cout + 9 * cout * cout + 2 * cin + 2 * cout
                        + (cin * cout if projecting else 0),
                        example_input=torch.randn(2, cin, 8, 8),
                        output_shape=(2, cout, 8 // stride, 8 // stride))
    _randomize_batchnorm(block)
    x = torch.randn(3, cin, 8, 8)
    for training in (True, False):
        block.train(training)
        checks.check_close(block(x), _preact_reference(block, x, stride, training),
                           f"PreActBlock({cin}, {cout}, {stride}) in "
                           f"{'train' if training else 'eval'} mode", rtol=1e-4, atol=1e-5,
                           hint="a = ReLU(bn1(x)); conv2(ReLU(bn2(conv1(a)))) + skip, no final ReLU")
block = PreActBlock(6, 6).eval()
with torch.no_grad():
    block.conv2.weight.zero_()
x = torch.randn(2, 6, 5, 5)
checks.check_close(block(x), x, "PreActBlock(6, 6) with conv2 zeroed, on x with negative values",
                   hint="the identity shortcut carries x itself (not ReLU(bn1(x))), and nothing "
                        "follows the sum")
### BEGIN HIDDEN TESTS
for cin, cout, stride, size in [(5, 5, 2, 7), (4, 10, 1, 6), (3, 3, 1, 4)]:
    block = PreActBlock(cin, cout, stride)
    _randomize_batchnorm(block)
    x = torch.randn(2, cin, size, size)
    x_before = x.clone()
    for training in (True, False):
        block.train(training)
        checks.check_close(block(x), _preact_reference(block, x, stride, training),
                           f"PreActBlock({cin}, {cout}, {stride}) on {size}x{size}", rtol=1e-4,
                           atol=1e-5)
    checks.check_equal(x, x_before, "the input after calling PreActBlock")
checks.check(bool((PreActBlock(4, 4).eval()(-torch.ones(1, 4, 3, 3)) < 0).any()),
             "PreActBlock's output should be able to be negative: no ReLU after the sum.")
block = PreActBlock(3, 3).double().eval()
checks.check_gradcheck(block, (torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True),),
                       "PreActBlock(3, 3)")
### END HIDDEN TESTS

# %% [markdown]
# **(b)** The comparison. The cell below builds two small ResNets that differ only in their
# blocks — torchvision's post-activation `BasicBlock` and your `PreActBlock` — each with a
# 3 × 3 stem, three blocks (8 × 8 → 4 × 4 → 2 × 2), global average pooling and a linear
# classifier: 8 weight layers. The pre-activation network gets the extra BN → ReLU before
# pooling. Both train with the same seed and settings. **Quality target:** both reach at
# least 90 % test accuracy.

# %%
def post_block(in_channels, out_channels, stride=1):
    """torchvision's post-activation BasicBlock, with a projection shortcut when needed."""
    down = None
    if stride != 1 or in_channels != out_channels:
        down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                             nn.BatchNorm2d(out_channels))
    return TorchvisionBasicBlock(in_channels, out_channels, stride, down)


def tiny_resnet(block, pre_activation, width=8, blocks_per_stage=1, num_classes=10):
    """3x3 stem, three stages at width, 2 width, 4 width (8x8, 4x4, 2x2), pooling, linear."""
    layers = [nn.Conv2d(1, width, 3, padding=1, bias=False)]
    if not pre_activation:
        layers += [nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
    for stage in range(3):
        for i in range(blocks_per_stage):
            layers.append(block(channels, width * 2**stage, 2 if stage > 0 and i == 0 else 1))
            channels = width * 2**stage
    if pre_activation:  # the last block's sum has not been through BN -> ReLU yet
        layers += [nn.BatchNorm2d(channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))


# %%
results_83 = {}
for name, block, pre in [("post", post_block, False), ("pre", PreActBlock, True)]:
    torch.manual_seed(0)
    model = tiny_resnet(block, pre_activation=pre)
    start = time.perf_counter()
    history = train_classifier(model, epochs=4, lr=3e-3)
    results_83[name] = {"train_loss": history["train_loss"], "test_acc": history["val_acc"][-1],
                        "seconds": time.perf_counter() - start}
    print(f"{name}-activation: test accuracy {results_83[name]['test_acc']:.1%}, "
          f"final training loss {history['train_loss'][-1]:.3f}, {results_83[name]['seconds']:.1f} s")
print(f"QUALITY: 8.3 test accuracy post {results_83['post']['test_acc']:.1%}, "
      f"pre {results_83['pre']['test_acc']:.1%} (target >= 90 % each)")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
for name, run in results_83.items():
    ax.plot(range(1, 5), run["train_loss"], marker="o", ms=3, label=f"{name}-activation")
ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", xticks=range(1, 5),
       title="Post- vs pre-activation blocks, 8-layer ResNet on digits")
ax.legend()
plt.show()

# %% [markdown]
# `answer_83`: what do your results show? (A) pre-activation is clearly better here (test
# accuracy more than 2 points higher); (B) the two are within 2 points of each other; (C)
# post-activation is clearly better (more than 2 points higher).

# %% nbgrader={"grade": false, "grade_id": "ex08_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
answer_83 = ...  # "A", "B" or "C"
### BEGIN SOLUTION
answer_83 = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_3_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_choice(answer_83, "ABC", "answer_83")
checks.check_equal(sorted(results_83), ["post", "pre"], "the keys of results_83")
for name, run in results_83.items():
    checks.check(run["test_acc"] >= 0.9, f"the {name}-activation network should reach 90 % "
                 "test accuracy.", ">= 0.9", run["test_acc"])
### BEGIN HIDDEN TESTS
gap = results_83["pre"]["test_acc"] - results_83["post"]["test_acc"]
checks.check_equal(answer_83, "A" if gap > 0.02 else ("C" if gap < -0.02 else "B"), "answer_83",
                   hint="compare the two test accuracies in results_83")
checks.check_equal(len(results_83["pre"]["train_loss"]), 4, "epochs recorded for pre")
### END HIDDEN TESTS

# %% [markdown]
# At 8 layers the identity path is short, and both blocks train well. Here the
# pre-activation network even ends the 4 epochs with the higher training loss, while the
# test accuracies are within a point of each other: no winner at this depth. The advantage
# of pre-activation grows with depth; He et al. needed hundreds of layers to see it clearly.
# The timing difference is noise: both blocks do the same work.
#
# ### Exercise 8.4 — Building ResNet-18, and reusing it (★★★, 6 points)
#
# **(a)** Write `ResNet(block, layers, num_classes=1000, in_channels=3, width=64,
# small_input=False)` with torchvision's attribute names, so that torchvision's weights load
# into it:
#
# - the stem: `conv1`, a 7 × 7 convolution `in_channels → width` with stride 2, padding 3 and
#   no bias; `bn1`; `relu` (an `nn.ReLU`); `maxpool`, 3 × 3 max pooling with stride 2 and
#   padding 1. With `small_input=True`: `conv1` is 3 × 3 with stride 1 and padding 1, and
#   `maxpool` is `nn.Identity()`;
# - `layer1` … `layer4`: `nn.Sequential`s of `layers[i]` blocks. Stage `i` (0-based) passes
#   `width * 2**i` as the blocks' `out_channels`; the first block of stages 1, 2, 3 has stride
#   2, every other block stride 1. Each block is built as `block(in_channels, out_channels,
#   stride)`, and its input channels are the previous block's `out_channels *
#   block.expansion` (the stem's `width` for the very first block);
# - `avgpool = nn.AdaptiveAvgPool2d(1)`; `fc`: `nn.Linear` from the last block's output
#   channels to `num_classes`;
# - `features(x)`: the stem, the four stages and the pooling, flattened to `(B, C)`;
#   `forward(x) = fc(features(x))`, logits `(B, num_classes)`.
#
# `block` is any class with that call signature and an `expansion` attribute: your
# `BasicBlock`, the `Bottleneck` of Exercise 8.5, or the reference blocks the tests use (so
# part (a) is graded independently of 8.1; part (c) trains a network built from your own
# `BasicBlock`). The tests load the weights of
# torchvision's ResNet-18 into `ResNet(block, [2, 2, 2, 2])` and compare the outputs; hidden
# tests do the same for ResNet-34 and ResNet-50 and check the small-input variant.
#
# *Hint:* keep a running `channels` counter while you build the stages.

# %% nbgrader={"grade": false, "grade_id": "ex08_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResNet(nn.Module):
    """Stem, four stages of residual blocks, global average pooling, linear classifier."""

    def __init__(self, block, layers, num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64, small_input: bool = False):
        super().__init__()
        ### BEGIN SOLUTION
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        channels = width
        for i, n_blocks in enumerate(layers):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(channels, width * 2**i, stride))
                channels = width * 2**i * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        ### END SOLUTION

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> pooled features (B, C)."""
        ### BEGIN SOLUTION
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, num_classes)

# %% nbgrader={"grade": true, "grade_id": "ex08_4_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from torchvision.models import resnet as _tv_resnet


class _RefBasic(_tv_resnet.BasicBlock):
    """torchvision's basic block, called as block(in_channels, out_channels, stride)."""

    def __init__(self, in_channels, out_channels, stride=1):
        down = None
        if stride != 1 or in_channels != out_channels * self.expansion:
            down = nn.Sequential(nn.Conv2d(in_channels, out_channels * self.expansion, 1, stride,
                                           bias=False), nn.BatchNorm2d(out_channels * self.expansion))
        super().__init__(in_channels, out_channels, stride, down)


class _RefBottleneck(_tv_resnet.Bottleneck):
    """torchvision's bottleneck block, called as block(in_channels, mid_channels, stride)."""

    def __init__(self, in_channels, out_channels, stride=1):
        down = None
        if stride != 1 or in_channels != out_channels * self.expansion:
            down = nn.Sequential(nn.Conv2d(in_channels, out_channels * self.expansion, 1, stride,
                                           bias=False), nn.BatchNorm2d(out_channels * self.expansion))
        super().__init__(in_channels, out_channels, stride, down)


def _same_as_torchvision(mine, reference, name, size=64):
    """Load reference's weights into `mine` and compare the logits in eval mode."""
    _randomize_batchnorm(reference)
    try:
        mine.load_state_dict(reference.state_dict())
    except RuntimeError as err:
        checks.fail(f"torchvision's {name} weights do not load into your ResNet.",
                    "the same parameter names and shapes", " ".join(str(err).split())[:240],
                    "conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc; check the number of "
                    "blocks and the channels of each stage")
    mine.eval(), reference.eval()
    x = torch.randn(2, reference.conv1.in_channels, size, size)
    with torch.no_grad():
        checks.check_close(mine(x), reference(x), f"the logits of your {name}", rtol=1e-4,
                           atol=1e-4, hint="stem: conv -> bn -> relu -> maxpool; stride 2 in the "
                                           "first block of stages 2-4 only")


torch.manual_seed(0)
reference = torchvision.models.resnet18(weights=None)
mine = ResNet(_RefBasic, [2, 2, 2, 2])
checks.check_module(mine, "ResNet(block, [2, 2, 2, 2])",
                    n_params=sum(p.numel() for p in reference.parameters()),
                    hint="torchvision's resnet18 has 11,689,512 parameters")
_same_as_torchvision(mine, reference, "ResNet-18")
### BEGIN HIDDEN TESTS
_same_as_torchvision(ResNet(_RefBasic, [3, 4, 6, 3]), torchvision.models.resnet34(weights=None),
                     "ResNet-34", size=32)
_same_as_torchvision(ResNet(_RefBottleneck, [3, 4, 6, 3]),
                     torchvision.models.resnet50(weights=None), "ResNet-50", size=32)
small = ResNet(_RefBasic, [1, 1, 1, 1], num_classes=5, in_channels=1, width=8, small_input=True)
checks.check_type(small.maxpool, nn.Identity, "ResNet(..., small_input=True).maxpool")
checks.check_equal(tuple(small.conv1.kernel_size) + tuple(small.conv1.stride), (3, 3, 1, 1),
                   "kernel size and stride of the small-input stem")
x = torch.randn(3, 1, 8, 8)
checks.check_shape(small(x), (3, 5), "ResNet(small_input=True) on 8x8 digits")
checks.check_shape(small.features(x), (3, 64), "ResNet(small_input=True).features(x)")
checks.check_close(small.fc(small.features(x)), small(x), "fc(features(x)) vs forward(x)")
checks.check_equal(small.fc.in_features, 64, "fc.in_features of the small ResNet")
shapes = []
h = small.maxpool(small.relu(small.bn1(small.conv1(x))))
for stage in (small.layer1, small.layer2, small.layer3, small.layer4):
    h = stage(h)
    shapes.append(tuple(h.shape))
checks.check_equal(shapes, [(3, 8, 8, 8), (3, 16, 4, 4), (3, 32, 2, 2), (3, 64, 1, 1)],
                   "the output shapes of the four stages of the small ResNet")
### END HIDDEN TESTS

# %% [markdown]
# **(b)** Three small tools for transfer learning (section 8.5). They only rely on the
# attribute names `conv1`, `bn1`, `layer1` … `layer4` and `fc`, which your `ResNet` shares with
# torchvision's — the tests use torchvision's ResNet-18.
#
# - `new_head(model, num_classes)`: replace `model.fc` by a fresh `nn.Linear` with the same
#   number of input features and `num_classes` outputs, on the same device; return `model`
#   (changed in place).
# - `freeze_backbone(model)`: set `requires_grad` to `False` for every parameter outside
#   `model.fc` (and `True` for those of `model.fc`); return the list of parameters that
#   remain trainable.
# - `discriminative_param_groups(model, head_lr, decay)`: a list of six optimizer parameter
#   groups `{"params": [...], "lr": ...}`, in this order: the stem (`conv1` and `bn1`),
#   `layer1`, `layer2`, `layer3`, `layer4`, `fc`. The head gets `head_lr`; every group gets
#   `decay` times the learning rate of the group after it, so group `i` has
#   `head_lr * decay ** (5 - i)`. Every parameter must appear in exactly one group.
#
# *Hint:* `name.startswith("fc.")` over `model.named_parameters()`.

# %% nbgrader={"grade": false, "grade_id": "ex08_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def new_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace model.fc by a fresh nn.Linear(model.fc.in_features, num_classes); return model."""
    ### BEGIN SOLUTION
    model.fc = nn.Linear(model.fc.in_features, num_classes).to(model.fc.weight.device)
    return model
    ### END SOLUTION


def freeze_backbone(model: nn.Module) -> list:
    """requires_grad=False for every parameter outside model.fc; return the trainable ones."""
    ### BEGIN SOLUTION
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("fc."))
    return [p for p in model.parameters() if p.requires_grad]
    ### END SOLUTION


def discriminative_param_groups(model: nn.Module, head_lr: float, decay: float) -> list:
    """Groups stem, layer1, ..., layer4, fc with learning rates head_lr * decay ** (5 - i)."""
    ### BEGIN SOLUTION
    stages = [[model.conv1, model.bn1], [model.layer1], [model.layer2], [model.layer3],
              [model.layer4], [model.fc]]
    return [{"params": [p for module in modules for p in module.parameters()],
             "lr": head_lr * decay ** (5 - i)} for i, modules in enumerate(stages)]
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None)
backbone = {name: p for name, p in model.named_parameters() if not name.startswith("fc.")}
old_fc = model.fc
checks.check(new_head(model, 7) is model, "new_head should return the model it changed.")
checks.check_type(model.fc, nn.Linear, "model.fc after new_head(model, 7)")
checks.check_equal((model.fc.in_features, model.fc.out_features), (512, 7),
                   "(in_features, out_features) of the new head")
checks.check(model.fc is not old_fc, "new_head must put a NEW nn.Linear in place of model.fc.")
now = dict(model.named_parameters())
checks.check(all(now[name] is p for name, p in backbone.items()),
             "new_head must keep the backbone's parameters as they are.")
trainable = freeze_backbone(model)
names = sorted(name for name, p in model.named_parameters() if p.requires_grad)
checks.check_equal(names, ["fc.bias", "fc.weight"], "the parameters that still require gradients",
                   hint="requires_grad_(False) on everything outside model.fc")
checks.check_type(trainable, list, "freeze_backbone(model)")
checks.check_equal(sorted(id(p) for p in trainable), sorted([id(model.fc.weight), id(model.fc.bias)]),
                   "the parameters returned by freeze_backbone (as ids)")
fresh = torchvision.models.resnet18(weights=None)
groups = discriminative_param_groups(fresh, head_lr=1e-2, decay=0.5)
checks.check_type(groups, list, "discriminative_param_groups(...)")
checks.check_equal(len(groups), 6, "the number of parameter groups")
checks.check_close(torch.tensor([g["lr"] for g in groups]),
                   torch.tensor([1e-2 * 0.5 ** (5 - i) for i in range(6)]), "the learning rates",
                   hint="the head gets head_lr; each group below gets decay times the one above")
### BEGIN HIDDEN TESTS
ids = [id(p) for g in groups for p in g["params"]]
checks.check_equal(len(ids), len(set(ids)), "the number of distinct parameters in the groups",
                   hint="no parameter may appear twice")
checks.check_equal(sorted(ids), sorted(id(p) for p in fresh.parameters()),
                   "the parameters covered by the groups (as ids)", hint="every parameter once")
for index, module in [(0, fresh.conv1), (0, fresh.bn1), (1, fresh.layer1), (4, fresh.layer4),
                      (5, fresh.fc)]:
    member = {id(p) for p in groups[index]["params"]}
    checks.check(all(id(p) in member for p in module.parameters()),
                 f"group {index} misses parameters it should hold.")
torch.optim.Adam(discriminative_param_groups(fresh, 1e-3, 0.1))  # must be accepted by PyTorch


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)
        self.layer1, self.layer2 = nn.Linear(2, 2), nn.Linear(2, 2)
        self.layer3, self.layer4 = nn.Linear(2, 2), nn.Linear(2, 2)
        self.fc = nn.Linear(5, 3)


toy = _Toy()
freeze_backbone(toy)
new_head(toy, 9)
checks.check_equal((toy.fc.in_features, toy.fc.out_features), (5, 9), "the new head of a toy model")
checks.check_equal(sorted(n for n, p in toy.named_parameters() if p.requires_grad),
                   ["fc.bias", "fc.weight"], "trainable parameters after freezing, then a new head")
lrs = [g["lr"] for g in discriminative_param_groups(_Toy(), head_lr=0.3, decay=0.1)]
checks.check_close(torch.tensor(lrs), torch.tensor([0.3 * 0.1 ** (5 - i) for i in range(6)]),
                   "the learning rates with head_lr=0.3, decay=0.1")
### END HIDDEN TESTS

# %% [markdown]
# **(c)** Now use everything. The cells below (nothing to write until the question at the
# end):
#
# 1. pretrain your `ResNet` — with your `BasicBlock`, sized for 8 × 8 images — on the
#    digits 0–4 of the training set;
# 2. save its weights and load them into a fresh network, the way you would ship a model;
# 3. adapt it to the digits 5–9 from only **5 labelled images per class** (25 images), with
#    the three strategies of section 8.5, evaluating on all held-out 5–9 digits.
#
# **Quality targets:** the pretrained network reaches at least 97 % on held-out digits 0–4
# (the tests require 95 %); after 20 adaptation steps, fine-tuning is at least 20 points
# ahead of training from scratch; fine-tuning ends above 75 %.

# %%
source_train, source_test = y_train < 5, y_test < 5  # digits 0-4: the pretraining task


def digits_resnet(num_classes):
    """Your ResNet with your BasicBlock, sized for 8x8 digits (10 weight layers)."""
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes, in_channels=1, width=8,
                  small_input=True).to(device)


torch.manual_seed(0)
pretrained = digits_resnet(5)
optimizer = torch.optim.Adam(pretrained.parameters(), lr=3e-3)
fit(pretrained, make_loader(X_train[source_train], y_train[source_train], 64, shuffle=True),
    nn.CrossEntropyLoss(), optimizer, epochs=6, progress=False)
source_acc = accuracy_on(pretrained, X_test[source_test], y_test[source_test])
print(f"{n_params(pretrained):,} parameters; test accuracy on digits 0-4: {source_acc:.1%}")

# %% [markdown]
# Saving a model means saving its `state_dict` — the tensors, by name — not the Python
# object. To use it, build the same architecture and load the tensors into it. (We write to a
# buffer in memory; on disk it is `torch.save(model.state_dict(), "resnet_0to4.pt")`, then
# `torch.load("resnet_0to4.pt", weights_only=True)`.)

# %%
buffer = io.BytesIO()
torch.save(pretrained.state_dict(), buffer)
buffer.seek(0)
restored = digits_resnet(5)
restored.load_state_dict(torch.load(buffer, weights_only=True))
probe = X_test[:100].to(device)
with torch.no_grad():
    restored_ok = torch.equal(restored.eval()(probe), pretrained.eval()(probe))
print(f"saved {buffer.getbuffer().nbytes / 1024:.0f} KiB; reloaded model gives identical logits:",
      restored_ok)

# %% [markdown]
# The new task: 5 labelled images of each digit 5–9, relabelled 0–4 (label `k` means digit
# `k + 5`), and every held-out 5–9 digit for testing.

# %%
g = torch.Generator().manual_seed(1)
picked = []
for digit in range(5, 10):
    candidates = torch.nonzero(y_train == digit).squeeze(1)
    picked.append(candidates[torch.randperm(len(candidates), generator=g)[:5]])
few = torch.cat(picked)
X_few, y_few = X_train[few], y_train[few] - 5  # (25, 1, 8, 8), labels 0-4
X_target, y_target = X_test[y_test >= 5], y_test[y_test >= 5] - 5  # held-out digits 5-9
print("labelled images:", tuple(X_few.shape), "| test images:", tuple(X_target.shape))

# %% [markdown]
# One adaptation loop for all three strategies: full-batch Adam on the 25 images, test
# accuracy recorded after 5, 10, 20, 40 and 60 steps. `train_batchnorm=False` keeps the
# network in `eval()` mode, so a frozen backbone's batch-norm statistics stay frozen too.

# %%
EVAL_STEPS = (5, 10, 20, 40, 60)


def adapt(model, param_groups, train_batchnorm, steps=60):
    """Full-batch Adam on (X_few, y_few); test accuracy on digits 5-9 at each of EVAL_STEPS."""
    optimizer = torch.optim.Adam(param_groups)
    curve = []
    for step in range(1, steps + 1):
        model.train(train_batchnorm)
        optimizer.zero_grad()
        F.cross_entropy(model(X_few.to(device)), y_few.to(device)).backward()
        optimizer.step()
        if step in EVAL_STEPS:
            curve.append(accuracy_on(model, X_target, y_target))
    return curve


# %%
torch.manual_seed(0)
frozen = new_head(copy.deepcopy(restored), 5)
frozen_params = freeze_backbone(frozen)
finetuned = new_head(copy.deepcopy(restored), 5)
scratch = digits_resnet(5)
transfer_results = {
    "frozen": adapt(frozen, [{"params": frozen_params, "lr": 1e-2}], train_batchnorm=False),
    "finetune": adapt(finetuned, discriminative_param_groups(finetuned, head_lr=1e-2, decay=0.5),
                      train_batchnorm=True),
    "scratch": adapt(scratch, [{"params": scratch.parameters(), "lr": 3e-3}], train_batchnorm=True),
}
for name, curve in transfer_results.items():
    print(f"{name:9s}" + "  ".join(f"step {s}: {a:.0%}" for s, a in zip(EVAL_STEPS, curve)))
print(f"QUALITY: 8.4 pretrained 0-4 {source_acc:.1%} (target >= 97 %); digits 5-9 from 25 "
      f"labels after 20 steps: finetune {transfer_results['finetune'][2]:.0%} vs scratch "
      f"{transfer_results['scratch'][2]:.0%} (target: >= 20 points ahead)")

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
for name, curve in transfer_results.items():
    ax.plot(EVAL_STEPS, curve, marker="o", label=name)
ax.axhline(0.2, color="grey", ls=":", label="chance (5 classes)")
ax.set(xlabel="adaptation steps (full batch of 25 labelled images)", ylabel="test accuracy, digits 5-9",
       title="Transfer from digits 0-4 to 5-9 with 5 labels per class", ylim=(0, 1))
ax.legend()
plt.show()

# %% [markdown]
# `answer_84`: after 20 adaptation steps, which strategy is ahead? (A) the frozen backbone;
# (B) fine-tuning — it gets to a good accuracy in far fewer steps than training from
# scratch; (C) training from scratch.

# %% nbgrader={"grade": false, "grade_id": "ex08_4_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
answer_84 = ...  # "A", "B" or "C"
### BEGIN SOLUTION
answer_84 = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_4_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_choice(answer_84, "ABC", "answer_84")
checks.check(source_acc >= 0.95, "the pretrained ResNet should reach 95 % on digits 0-4.",
             ">= 0.95", source_acc, "check your BasicBlock and ResNet")
checks.check(restored_ok, "the reloaded network should give the same logits as the original.")
checks.check_equal(sorted(transfer_results), ["finetune", "frozen", "scratch"],
                   "the keys of transfer_results")
for name, curve in transfer_results.items():
    checks.check_equal(len(curve), len(EVAL_STEPS), f"the number of points of {name}'s curve")
checks.check(transfer_results["finetune"][-1] >= 0.75, "fine-tuning should end above 75 %.",
             ">= 0.75", transfer_results["finetune"][-1])
### BEGIN HIDDEN TESTS
ahead = transfer_results["finetune"][2] - transfer_results["scratch"][2]
checks.check(ahead >= 0.2, "after 20 steps, fine-tuning should be 20 points ahead of scratch.",
             ">= 0.2", ahead)
checks.check(transfer_results["frozen"][-1] >= 0.5, "the frozen backbone should beat 50 %.",
             ">= 0.5", transfer_results["frozen"][-1])
base_state, frozen_state = restored.state_dict(), frozen.state_dict()
for key, value in base_state.items():
    if not key.startswith("fc."):
        checks.check_equal(frozen_state[key], value, f"the frozen backbone's {key}",
                           hint="a frozen backbone must not change, batch-norm statistics included")
best = max(transfer_results, key=lambda k: transfer_results[k][2])
checks.check_equal(answer_84, {"frozen": "A", "finetune": "B", "scratch": "C"}[best], "answer_84")
### END HIDDEN TESTS

# %% [markdown]
# Three lessons, all visible in the figure. Fine-tuning starts from features that already
# know strokes and loops, so it is useful after a handful of steps, while the network from
# scratch is still near chance. Given enough steps on 25 images, the scratch network catches
# up a good part of the way — 8 × 8 digits are an easy problem, and honest comparisons say
# so. And the frozen backbone plateaus lowest: features trained to separate 0–4 have been
# squeezed to what *those* classes need, so a linear head on top cannot separate 5–9 as well.
# Freezing works best when the source task is broad (ImageNet's 1000 classes) and close to
# the target.
#
# ### Exercise 8.5 — Bottleneck block (★★★★★, 4 points)
#
# **(a)** Write `Bottleneck(in_channels, mid_channels, stride=1)` with class attribute
# `expansion = 4` (section 8.3.3). Attributes, named as in torchvision:
#
# - `conv1`: 1 × 1, `in_channels → mid_channels`, no bias; `bn1`;
# - `conv2`: 3 × 3, `mid_channels → mid_channels`, the block's `stride`, padding 1, no bias;
#   `bn2`;
# - `conv3`: 1 × 1, `mid_channels → 4 · mid_channels`, no bias; `bn3`;
# - `shortcut`: `nn.Identity()` when `stride == 1` and `in_channels == 4 · mid_channels`,
#   else `nn.Sequential(nn.Conv2d(in_channels, 4 · mid_channels, 1, stride, bias=False),
#   nn.BatchNorm2d(4 · mid_channels))`.
#
# `forward(x)` = `ReLU(bn3(conv3(ReLU(bn2(conv2(ReLU(bn1(conv1(x)))))))) + shortcut(x))`,
# shape `(B, 4 · mid_channels, ⌈H/stride⌉, ⌈W/stride⌉)`. The stride sits in the 3 × 3
# convolution, as in torchvision ("ResNet v1.5"; the 2015 paper put it in the first 1 × 1,
# which skips three quarters of the input pixels).
#
# **(b)** Store in `basic_params` and `bottleneck_params` the parameter counts (ints) of a
# basic block with 256 channels in and out and of a bottleneck block with 256 channels in
# and out (`mid_channels = 64`).
#
# The tests compare your block with torchvision's `Bottleneck` carrying the same weights, in
# both modes and for several shapes, and your counts with torchvision's blocks.

# %% nbgrader={"grade": false, "grade_id": "ex08_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand: (B, C_in, H, W) -> (B, 4 mid, ceil(H/s), ceil(W/s))."""

    expansion = 4

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        out_channels = mid_channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = F.relu(self.bn1(self.conv1(x)))  # (B, mid, H, W): reduce
        out = F.relu(self.bn2(self.conv2(out)))  # (B, mid, H', W')
        out = self.bn3(self.conv3(out))  # (B, 4 mid, H', W'): expand
        return F.relu(out + self.shortcut(x))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_5_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _bottleneck_twin(block, cin, mid, stride):
    """torchvision's Bottleneck carrying the weights of `block` (shortcut -> downsample)."""
    down = None
    if stride != 1 or cin != 4 * mid:
        down = nn.Sequential(nn.Conv2d(cin, 4 * mid, 1, stride, bias=False), nn.BatchNorm2d(4 * mid))
    twin = _tv_resnet.Bottleneck(cin, mid, stride, down)
    state = {k.replace("shortcut.", "downsample."): v for k, v in block.state_dict().items()}
    try:
        twin.load_state_dict(state)
    except RuntimeError as err:
        checks.fail(f"the parameters of Bottleneck({cin}, {mid}, stride={stride}) do not have the "
                    "expected names and shapes.", "conv1, bn1, conv2, bn2, conv3, bn3, shortcut",
                    " ".join(str(err).split())[:200],
                    "conv3 expands to 4 * mid_channels; project only when the shapes differ")
    return twin


torch.manual_seed(0)
checks.check_equal(Bottleneck.expansion, 4, "Bottleneck.expansion")
for cin, mid, stride, shape in [(256, 64, 1, (2, 256, 8, 8)), (64, 64, 1, (2, 256, 8, 8)),
                                (256, 128, 2, (2, 512, 4, 4))]:
    checks.check_module(Bottleneck(cin, mid, stride), f"Bottleneck({cin}, {mid}, {stride})",
                        example_input=torch.randn(2, cin, 8, 8), output_shape=shape)
checks.check_module(Bottleneck(256, 64), "Bottleneck(256, 64)",
                    n_params=256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256))
block = Bottleneck(16, 8, stride=2)
_randomize_batchnorm(block)
twin = _bottleneck_twin(block, 16, 8, 2)
x = torch.randn(3, 16, 7, 7)
for mode in (True, False):
    block.train(mode), twin.train(mode)
    checks.check_close(block(x), twin(x), f"Bottleneck(16, 8, stride=2) in "
                       f"{'train' if mode else 'eval'} mode", rtol=1e-4, atol=1e-5,
                       hint="the stride belongs to conv2, the 3x3 convolution")
### BEGIN HIDDEN TESTS
for cin, mid, stride, size in [(32, 8, 1, 5), (12, 8, 1, 6), (32, 8, 2, 6), (20, 4, 2, 5)]:
    block = Bottleneck(cin, mid, stride)
    _randomize_batchnorm(block)
    twin = _bottleneck_twin(block, cin, mid, stride)
    x = torch.randn(2, cin, size, size)
    x_before = x.clone()
    for mode in (True, False):
        block.train(mode), twin.train(mode)
        checks.check_close(block(x), twin(x), f"Bottleneck({cin}, {mid}, {stride}) on {size}x{size}",
                           rtol=1e-4, atol=1e-5)
    checks.check_equal(x, x_before, "the input after calling Bottleneck")
block = Bottleneck(16, 4).eval()
with torch.no_grad():
    block.bn3.weight.zero_()
    block.bn3.bias.zero_()
h = torch.relu(torch.randn(2, 16, 4, 4))
checks.check_close(block(h), h, "Bottleneck(16, 4) with a zeroed branch, on h >= 0")
checks.check_equal(sum(p.numel() for p in Bottleneck(16, 4).shortcut.parameters()), 0,
                   "the parameters of the identity shortcut of Bottleneck(16, 4)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex08_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
basic_params = ...  # int: parameters of a basic block, 256 channels in and out
bottleneck_params = ...  # int: parameters of a bottleneck block, 256 in and out (mid 64)
### BEGIN SOLUTION
basic_params = n_params(BasicBlock(256, 256))
bottleneck_params = n_params(Bottleneck(256, 64))
### END SOLUTION
print(f"basic {basic_params:,} vs bottleneck {bottleneck_params:,} parameters")

# %% nbgrader={"grade": true, "grade_id": "ex08_5_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_type(basic_params, int, "basic_params")
checks.check_type(bottleneck_params, int, "bottleneck_params")
checks.check(bottleneck_params < basic_params, "the bottleneck block should be the smaller one.",
             f"bottleneck_params < {basic_params}", bottleneck_params)
### BEGIN HIDDEN TESTS
checks.check_equal(basic_params, sum(p.numel() for p in _tv_resnet.BasicBlock(256, 256).parameters()),
                   "basic_params",
                   hint="two 3x3 convolutions of 256 x 256 channels, plus two batch norms")
checks.check_equal(bottleneck_params, sum(p.numel() for p in _tv_resnet.Bottleneck(256, 64).parameters()),
                   "bottleneck_params")
### END HIDDEN TESTS

# %% [markdown]
# With both blocks and the `ResNet` class, ResNet-50 is one line. If your exercises pass,
# it has exactly torchvision's parameters and, with torchvision's weights loaded, gives the
# same outputs. Then the cost of depth, measured: one forward pass of a batch of 4 images.

# %% tags=["autograde-skip"]
torch.manual_seed(0)
resnet50_yours = ResNet(Bottleneck, [3, 4, 6, 3]).eval()
resnet50_torchvision = torchvision.models.resnet50(weights=None).eval()
resnet50_yours.load_state_dict({k.replace("downsample", "shortcut"): v
                                for k, v in resnet50_torchvision.state_dict().items()})
images = torch.randn(4, 3, 64, 64)  # (B, C, H, W)
with torch.no_grad():
    gap = (resnet50_yours(images) - resnet50_torchvision(images)).abs().max().item()
    for name, net in [("ResNet-18", ResNet(BasicBlock, [2, 2, 2, 2]).eval()),
                      ("ResNet-50", resnet50_yours)]:
        net(images)  # warm-up: the first call pays for memory allocation
        start = time.perf_counter()
        net(images)
        print(f"{name}: {n_params(net) / 1e6:.1f} M parameters, forward pass "
              f"{1000 * (time.perf_counter() - start):.0f} ms")
print(f"your ResNet-50 vs torchvision's: largest logit difference {gap:.1e}")

# %% [markdown]
# ResNet-50 has about 2.2 times the parameters of ResNet-18 and nearly three times its depth,
# yet the timing shows it costing only about 2–3 times as much per image (torchvision lists
# 4.1 vs 1.8 billion multiply-adds at 224 × 224): most of the extra depth is in cheap 1 × 1
# convolutions, which is the point of the bottleneck.
#
# ### Exercise 8.6 — Skip connections in a U-Net (★★★★★, 5 points)
#
# A U-Net (chapter 7) is an encoder-decoder whose *long* skips hand the encoder's features
# to the decoder at the same resolution. Here you give it *short* residual skips inside its
# blocks and a *global* skip around the whole network, and use it to denoise patches of a
# real microscope image. The blocks have no batch norm: denoisers train on small batches of
# patches, and restoration networks often leave normalization out (EDSR, 2017, removed it
# from its residual blocks). That also keeps this comparison about skips alone.
#
# **(a)** Write
#
# - `ResBlock(in_channels, out_channels)`: `conv1` (3 × 3, `in → out`, padding 1, with
#   bias), `conv2` (3 × 3, `out → out`, padding 1, with bias), `shortcut`: `nn.Identity()`
#   when the channel counts match, else `nn.Conv2d(in_channels, out_channels, 1)`; forward:
#   `ReLU(conv2(ReLU(conv1(x))) + shortcut(x))`, same height and width;
# - `psnr(estimate, target, max_value=1.0)`: the peak signal-to-noise ratio
#   $10 \log_{10}(m^2 / \mathrm{MSE})$ in decibels, where $m$ is `max_value` and MSE the mean
#   squared error between `estimate` and `target`; return a Python float.
#
# **(b)** Write `UNet(block, in_channels=1, width=8)`, two levels deep, with the attributes
#
# - `enc1 = block(in_channels, width)`, `enc2 = block(width, 2 width)`,
#   `mid = block(2 width, 4 width)`;
# - `up2 = nn.ConvTranspose2d(4 width, 2 width, 2, stride=2)`, `dec2 = block(4 width, 2 width)`;
# - `up1 = nn.ConvTranspose2d(2 width, width, 2, stride=2)`, `dec1 = block(2 width, width)`;
# - `head = nn.Conv2d(width, in_channels, 1)`;
#
# and `forward(x)` for `x` of shape `(B, in_channels, H, W)` with `H, W` divisible by 4:
# `e1 = enc1(x)`; `e2 = enc2(maxpool2(e1))`; `m = mid(maxpool2(e2))`;
# `d2 = dec2(cat([up2(m), e2]))`; `d1 = dec1(cat([up1(d2), e1]))` (concatenate along the
# channels, upsampled features first); return `x + head(d1)` — the network predicts a
# correction to its input.
#
# `block` is any class called as `block(in_channels, out_channels)`: `ResBlock`, or the plain
# `double_conv` given below. The tests compare with the formula above, check that a zeroed
# head makes the network the identity, and compare `psnr` with scikit-image's.

# %% nbgrader={"grade": false, "grade_id": "ex08_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResBlock(nn.Module):
    """conv -> ReLU -> conv, plus a shortcut, then ReLU: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))
        ### END SOLUTION


def psnr(estimate: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(max_value^2 / MSE(estimate, target))."""
    ### BEGIN SOLUTION
    mse = F.mse_loss(estimate.double(), target.double())
    return float(10 * torch.log10(max_value**2 / mse))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_6_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from skimage.metrics import peak_signal_noise_ratio as _skimage_psnr


def _resblock_reference(block, x):
    out = F.conv2d(F.relu(F.conv2d(x, block.conv1.weight, block.conv1.bias, padding=1)),
                   block.conv2.weight, block.conv2.bias, padding=1)
    if isinstance(block.shortcut, nn.Identity):
        return F.relu(out + x)
    return F.relu(out + F.conv2d(x, block.shortcut.weight, block.shortcut.bias))


torch.manual_seed(0)
for cin, cout in [(4, 4), (3, 8)]:
    block = ResBlock(cin, cout)
    kind = nn.Identity if cin == cout else nn.Conv2d
    checks.check_type(block.shortcut, kind, f"ResBlock({cin}, {cout}).shortcut")
    checks.check_module(block, f"ResBlock({cin}, {cout})",
                        n_params=9 * cin * cout + 9 * cout * cout + 2 * cout
                        + (0 if cin == cout else cin * cout + cout),
                        example_input=torch.randn(2, cin, 6, 6), output_shape=(2, cout, 6, 6))
    x = torch.randn(2, cin, 6, 6)
    checks.check_close(block(x), _resblock_reference(block, x), f"ResBlock({cin}, {cout})(x)",
                       rtol=1e-4, atol=1e-6, hint="ReLU(conv2(ReLU(conv1(x))) + shortcut(x))")
clean, noisy = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
value = psnr(noisy, clean)
checks.check_type(value, float, "psnr(noisy, clean)", hint="return float(...)")
checks.check_close(value, _skimage_psnr(clean.numpy(), noisy.numpy(), data_range=1.0),
                   "psnr(noisy, clean)", rtol=1e-5, hint="10 * log10(max_value**2 / MSE)")
### BEGIN HIDDEN TESTS
a, b = 255 * torch.rand(3, 8, 8), 255 * torch.rand(3, 8, 8)
checks.check_close(psnr(a, b, max_value=255.0), _skimage_psnr(b.numpy(), a.numpy(), data_range=255),
                   "psnr with max_value=255", rtol=1e-5)
checks.check_close(psnr(clean + 0.1, clean), 20.0, "psnr of a constant error of 0.1", rtol=1e-4)
block = ResBlock(5, 5)
with torch.no_grad():
    block.conv2.weight.zero_()
    block.conv2.bias.zero_()
h = torch.relu(torch.randn(2, 5, 4, 4))
checks.check_close(block(h), h, "ResBlock(5, 5) with conv2 zeroed, on h >= 0")
x = torch.randn(1, 6, 5, 7)
block = ResBlock(6, 2)
checks.check_close(block(x), _resblock_reference(block, x), "ResBlock(6, 2) on 5x7", rtol=1e-4,
                   atol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex08_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class UNet(nn.Module):
    """Two-level U-Net with a global skip: (B, C, H, W) -> (B, C, H, W), H and W divisible by 4."""

    def __init__(self, block, in_channels: int = 1, width: int = 8):
        super().__init__()
        ### BEGIN SOLUTION
        self.enc1 = block(in_channels, width)
        self.enc2 = block(width, 2 * width)
        self.mid = block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec1 = block(2 * width, width)
        self.head = nn.Conv2d(width, in_channels, 1)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        e1 = self.enc1(x)  # (B, w, H, W)
        e2 = self.enc2(F.max_pool2d(e1, 2))  # (B, 2w, H/2, W/2)
        m = self.mid(F.max_pool2d(e2, 2))  # (B, 4w, H/4, W/4)
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))  # long skip: (B, 2w, H/2, W/2)
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))  # long skip: (B, w, H, W)
        return x + self.head(d1)  # global skip
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
class _TestBlock(nn.Sequential):
    """A plain conv + ReLU block, so that these tests do not depend on your ResBlock."""

    def __init__(self, in_channels, out_channels):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU())


def _unet_reference(net, x):
    e1 = net.enc1(x)
    e2 = net.enc2(F.max_pool2d(e1, 2))
    m = net.mid(F.max_pool2d(e2, 2))
    d2 = net.dec2(torch.cat([net.up2(m), e2], dim=1))
    d1 = net.dec1(torch.cat([net.up1(d2), e1], dim=1))
    return x + net.head(d1)


torch.manual_seed(0)
net = UNet(_TestBlock, in_channels=1, width=4)
checks.check_module(net, "UNet(block, in_channels=1, width=4)",
                    n_params=(9 * 1 * 4 + 4) + (9 * 4 * 8 + 8) + (9 * 8 * 16 + 16) + (4 * 16 * 8 + 8)
                    + (9 * 16 * 8 + 8) + (4 * 8 * 4 + 4) + (9 * 8 * 4 + 4) + (4 + 1),
                    example_input=torch.randn(2, 1, 16, 24), output_shape=(2, 1, 16, 24),
                    hint="see the list of attributes: dec2 takes 4 width channels (concatenation)")
x = torch.randn(2, 1, 16, 24)
checks.check_close(net(x), _unet_reference(net, x), "UNet(...)(x)", rtol=1e-4, atol=1e-6,
                   hint="cat([upsampled, encoder features], dim=1), and return x + head(d1)")
with torch.no_grad():
    net.head.weight.zero_()
    net.head.bias.zero_()
checks.check_close(net(x), x, "UNet with a zeroed head", hint="the global skip: x + head(d1)")
### BEGIN HIDDEN TESTS
net = UNet(_TestBlock, in_channels=3, width=2)
x = torch.randn(1, 3, 8, 12)
checks.check_shape(net(x), (1, 3, 8, 12), "UNet(in_channels=3, width=2) on (1, 3, 8, 12)")
checks.check_close(net(x), _unet_reference(net, x), "UNet(in_channels=3, width=2)", rtol=1e-4,
                   atol=1e-6)
checks.check_type(net.up2, nn.ConvTranspose2d, "UNet.up2")
checks.check_equal((net.up1.in_channels, net.up1.out_channels, tuple(net.up1.stride)), (4, 2, (2, 2)),
                   "(in, out, stride) of up1")
x_before = x.clone()
net(x)
checks.check_equal(x, x_before, "the input after calling UNet")
### END HIDDEN TESTS

# %% [markdown]
# **(c)** The experiment. The data: 16 × 16 patches of a real microscope image of stained
# colon tissue (training patches from the left half, test patches from the right half), with
# Gaussian noise of standard deviation 0.1 added.

# %%
tissue = torch.from_numpy(science_image("immunohistochemistry", gray=True))  # (512, 512) in [0, 1]
g = torch.Generator().manual_seed(0)


def random_patches(n, left, right, size=16):
    """n random size x size patches whose columns lie in [left, right): (n, 1, size, size)."""
    rows = torch.randint(0, tissue.shape[0] - size, (n,), generator=g)
    cols = torch.randint(left, right - size, (n,), generator=g)
    return torch.stack([tissue[r:r + size, c:c + size] for r, c in zip(rows, cols)]).unsqueeze(1)


clean_train, clean_test = random_patches(384, 0, 256), random_patches(128, 256, 512)
noisy_train = clean_train + 0.1 * torch.randn(clean_train.shape, generator=g)
noisy_test = clean_test + 0.1 * torch.randn(clean_test.shape, generator=g)
noisy_psnr = psnr(noisy_test, clean_test)
print(f"{len(clean_train)} training and {len(clean_test)} test patches; noisy PSNR {noisy_psnr:.1f} dB")

# %% [markdown]
# Two U-Nets that differ only in their blocks: the plain `double_conv` (two convolutions with
# ReLUs, the block of the original U-Net without batch norm) and your `ResBlock`, trained the
# same way for 5 epochs. **Quality target:** the residual U-Net improves the test PSNR by at
# least 4 dB over the noisy input.

# %%
def double_conv(in_channels, out_channels):
    """The plain U-Net block: conv -> ReLU -> conv -> ReLU, no shortcut."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())


def train_denoiser(model, epochs=5, lr=2e-3):
    """MSE training on the noisy patches; returns the test PSNR after every epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = make_loader(noisy_train, clean_train, 32, shuffle=True)
    curve = []
    for _ in range(epochs):
        fit(model, loader, nn.MSELoss(), optimizer, epochs=1, progress=False)
        model.eval()
        with torch.no_grad():
            curve.append(psnr(model(noisy_test.to(device)).cpu(), clean_test))
    return curve


# %%
results_86 = {"noisy_psnr": noisy_psnr}
denoisers = {}
for name, block in [("plain", double_conv), ("residual", ResBlock)]:
    torch.manual_seed(0)
    denoisers[name] = UNet(block).to(device)
    results_86[name] = train_denoiser(denoisers[name])
    print(f"{name:8s} U-Net: test PSNR per epoch " + " ".join(f"{p:.1f}" for p in results_86[name]))
print(f"QUALITY: 8.6 residual U-Net {results_86['residual'][-1]:.1f} dB vs noisy "
      f"{noisy_psnr:.1f} dB (target: +4 dB), plain U-Net {results_86['plain'][-1]:.1f} dB")

# %% tags=["autograde-skip"]
with torch.no_grad():
    shown = slice(0, 6)
    rows = [clean_test[shown], noisy_test[shown],
            denoisers["plain"](noisy_test[shown].to(device)).cpu(),
            denoisers["residual"](noisy_test[shown].to(device)).cpu()]
labels = ["clean", "noisy", "plain U-Net", "residual U-Net"]
titles = [label if column == 0 else "" for label in labels for column in range(6)]
helpers.plot.image_grid(torch.cat(rows).clamp(0, 1), titles=titles, ncols=6, size=1.6,
                        title="Denoising held-out tissue patches (rows: clean, noisy, plain, residual)")
plt.show()

# %% tags=["autograde-skip"]
fig, ax = plt.subplots()
epochs = range(1, 6)
ax.plot(epochs, results_86["plain"], marker="o", label="plain U-Net")
ax.plot(epochs, results_86["residual"], marker="o", label="residual U-Net")
ax.axhline(noisy_psnr, color="grey", ls=":", label="noisy input")
ax.set(xlabel="epoch", ylabel="test PSNR (dB)", xticks=epochs, title="Denoising quality during training")
ax.legend()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "ex08_6_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(results_86), ["noisy_psnr", "plain", "residual"], "the keys of results_86")
for name in ("plain", "residual"):
    checks.check_equal(len(results_86[name]), 5, f"the number of epochs recorded for {name}")
gain = results_86["residual"][-1] - results_86["noisy_psnr"]
checks.check(gain >= 4.0, "the residual U-Net should improve the PSNR by at least 4 dB.",
             ">= 4 dB", f"{gain:.2f} dB", "check ResBlock, UNet's skips and psnr")
### BEGIN HIDDEN TESTS
checks.check_close(results_86["noisy_psnr"], _skimage_psnr(clean_test.numpy(), noisy_test.numpy(),
                                                           data_range=1.0), "noisy_psnr", rtol=1e-4)
checks.check(results_86["residual"][-1] > results_86["plain"][-1],
             "the residual U-Net should end ahead of the plain one.")
checks.check(all(isinstance(m, ResBlock) for m in (denoisers["residual"].enc1,
                                                    denoisers["residual"].dec1)),
             "the residual U-Net should be built from ResBlock.")
### END HIDDEN TESTS

# %% [markdown]
# The residual U-Net improves on the noisy input from the first epoch, because with short
# skips in every block and the global skip around the network, "change almost nothing" is
# where training starts. The plain U-Net first *damages* the images — its deep path outputs
# noise of its own that the head passes on — and spends its epochs recovering. Same
# parameters and data: the skips are the difference.
#
# ### Exercise 8.7 — Dense block (★★★★★, 4 points)
#
# **(a)** Write
#
# - `DenseBlock(in_channels, growth_rate, num_layers)` (section 8.3.5): `self.layers`, an
#   `nn.ModuleList` whose layer `i` is `nn.Sequential(nn.BatchNorm2d(c_i), nn.ReLU(),
#   nn.Conv2d(c_i, growth_rate, 3, padding=1, bias=False))` with `c_i = in_channels + i ·
#   growth_rate`; `self.out_channels = in_channels + num_layers · growth_rate`. `forward(x)`
#   feeds each layer the concatenation (along the channels) of `x` and all earlier layers'
#   outputs, and returns the concatenation of `x` and all outputs: `(B, out_channels, H, W)`,
#   with `x` itself as the first `in_channels` channels;
# - `Transition(in_channels, out_channels)`: attributes `bn` (`BatchNorm2d(in_channels)`),
#   `conv` (1 × 1, `in → out`, no bias) and `pool` (`nn.AvgPool2d(2)`); `forward(x)` =
#   `pool(conv(ReLU(bn(x))))`, halving height and width.
#
# The tests check shapes, the pass-through of `x`, the values against a step-by-step
# reference, parameter counts, and the transition layer.
#
# *Hint:* keep a Python list `features = [x]`, append each new output, and
# `torch.cat(features, dim=1)`.

# %% nbgrader={"grade": false, "grade_id": "ex08_7_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DenseBlock(nn.Module):
    """Each layer sees all earlier features: (B, C_0, H, W) -> (B, C_0 + L k, H, W)."""

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(in_channels + i * growth_rate), nn.ReLU(),
                          nn.Conv2d(in_channels + i * growth_rate, growth_rate, 3, padding=1,
                                    bias=False))
            for i in range(num_layers))
        self.out_channels = in_channels + num_layers * growth_rate
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # (B, k, H, W) each
        return torch.cat(features, dim=1)
        ### END SOLUTION


class Transition(nn.Module):
    """BN -> ReLU -> 1x1 conv -> 2x2 average pooling: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.pool(self.conv(F.relu(self.bn(x))))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08_7_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _dense_reference(block, x, training):
    features = [x]
    for layer in block.layers:
        kinds = [type(m).__name__ for m in layer]
        checks.check_equal(kinds, ["BatchNorm2d", "ReLU", "Conv2d"], "the modules of a dense layer")
        bn, _, conv = layer
        inputs = torch.cat(features, dim=1)
        normed = F.batch_norm(inputs, bn.running_mean.clone(), bn.running_var.clone(), bn.weight,
                              bn.bias, training=training, eps=bn.eps)
        features.append(F.conv2d(F.relu(normed), conv.weight, padding=1))
    return torch.cat(features, dim=1)


torch.manual_seed(0)
block = DenseBlock(64, growth_rate=32, num_layers=4)
x = torch.randn(2, 64, 16, 16)  # (B, C_0, H, W)
out = checks.check_module(block, "DenseBlock(64, 32, 4)", example_input=x,
                          output_shape=(2, 192, 16, 16), hint="64 + 4 x 32 = 192 channels")
checks.check_equal(block.out_channels, 192, "DenseBlock(64, 32, 4).out_channels")
checks.check_close(out[:, :64], x, "the first 64 output channels", hint="x itself comes first")
checks.check_module(block, "DenseBlock(64, 32, 4)",
                    n_params=sum(9 * (64 + 32 * i) * 32 + 2 * (64 + 32 * i) for i in range(4)))
block = DenseBlock(6, growth_rate=4, num_layers=3)
_randomize_batchnorm(block)
x = torch.randn(3, 6, 5, 5)
checks.check_close(block(x), _dense_reference(block, x, True), "DenseBlock(6, 4, 3)(x)", rtol=1e-4,
                   atol=1e-5, hint="layer i receives torch.cat of x and all earlier outputs")
transition = Transition(12, 6)
checks.check_module(transition, "Transition(12, 6)", n_params=2 * 12 + 12 * 6,
                    example_input=torch.randn(2, 12, 8, 8), output_shape=(2, 6, 4, 4))
### BEGIN HIDDEN TESTS
for cin, k, n, size in [(3, 2, 5, 4), (8, 12, 1, 6), (5, 3, 0, 3)]:
    block = DenseBlock(cin, k, n)
    _randomize_batchnorm(block)
    x = torch.randn(2, cin, size, size)
    x_before = x.clone()
    for training in (True, False):
        block.train(training)
        checks.check_close(block(x), _dense_reference(block, x, training),
                           f"DenseBlock({cin}, {k}, {n}) in {'train' if training else 'eval'} mode",
                           rtol=1e-4, atol=1e-5)
    checks.check_equal(x, x_before, "the input after calling DenseBlock")
    checks.check_equal(block.out_channels, cin + n * k, f"DenseBlock({cin}, {k}, {n}).out_channels")
transition = Transition(5, 3)
_randomize_batchnorm(transition)
x = torch.randn(2, 5, 6, 6)
for training in (True, False):
    transition.train(training)
    normed = F.batch_norm(x, transition.bn.running_mean.clone(), transition.bn.running_var.clone(),
                          transition.bn.weight, transition.bn.bias, training=training)
    expected = F.avg_pool2d(F.conv2d(F.relu(normed), transition.conv.weight), 2)
    checks.check_close(transition(x), expected, "Transition(5, 3)(x)", rtol=1e-4, atol=1e-5)
checks.check(transition.conv.bias is None, "the transition's 1x1 convolution should have no bias.")
### END HIDDEN TESTS

# %% [markdown]
# **(b)** The comparison with a ResNet of similar depth. `small_densenet` assembles a
# DenseNet for 8 × 8 digits from your blocks: a 3 × 3 stem with 24 channels, three dense
# blocks (growth rate 12, 2 layers each) separated by two transitions that halve the
# channels and the resolution, then BN → ReLU → pooling → linear: 10 weight layers. The
# ResNet is the `tiny_resnet` of Exercise 8.3 at widths 16, 32, 64: 8 weight layers. For
# each, the cell measures the parameters, the memory of the activations saved for the
# backward pass of a batch of 128 images (with `torch.autograd.graph.saved_tensors_hooks`,
# which sees every tensor autograd keeps), and the test accuracy after the same 4 epochs of
# training. **Quality target:** the DenseNet reaches at least 95 % test accuracy.

# %%
def small_densenet(growth_rate=12, num_layers=2, num_classes=10):
    """Stem, 3 dense blocks with transitions in between, BN -> ReLU -> pool -> linear."""
    channels = 2 * growth_rate
    layers = [nn.Conv2d(1, channels, 3, padding=1, bias=False)]
    for stage in range(3):
        layers.append(DenseBlock(channels, growth_rate, num_layers))
        channels += num_layers * growth_rate
        if stage < 2:
            layers.append(Transition(channels, channels // 2))
            channels //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(channels, num_classes))


def activation_megabytes(model, inputs):
    """MiB of tensors that autograd saves for the backward pass (parameters excluded)."""
    params = {p.data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.data_ptr() not in params:
            saved[(t.data_ptr(), t.shape, t.stride())] = t.numel() * t.element_size()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(inputs).sum()
    return sum(saved.values()) / 2**20


# %%
results_87 = {}
for name, build in [("densenet", small_densenet),
                    ("resnet", lambda: tiny_resnet(post_block, False, width=16))]:
    torch.manual_seed(0)
    model = build().to(device)
    memory = activation_megabytes(model, X_train[:128].to(device))
    history = train_classifier(model, epochs=4, lr=3e-3, batch_size=64)
    results_87[name] = {"params": n_params(model), "activation_mb": memory,
                        "test_acc": history["val_acc"][-1], "model": model}
    print(f"{name:8s} {n_params(model):>7,} parameters, {memory:5.2f} MiB of saved activations, "
          f"test accuracy {history['val_acc'][-1]:.1%}")
print(f"QUALITY: 8.7 DenseNet test accuracy {results_87['densenet']['test_acc']:.1%} (target >= 95 %)")

# %% nbgrader={"grade": true, "grade_id": "ex08_7_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(sorted(results_87), ["densenet", "resnet"], "the keys of results_87")
dense, res = results_87["densenet"], results_87["resnet"]
checks.check(dense["test_acc"] >= 0.95, "the DenseNet should reach 95 % test accuracy.", ">= 0.95",
             dense["test_acc"], "check DenseBlock and Transition")
checks.check(dense["params"] < res["params"], "the DenseNet should have fewer parameters.",
             f"< {res['params']}", dense["params"])
### BEGIN HIDDEN TESTS
blocks = [m for m in dense["model"] if isinstance(m, DenseBlock)]
checks.check_equal(len(blocks), 3, "the number of dense blocks in small_densenet()")
expected, channels = 9 * 1 * 24, 24  # the stem
for stage in range(3):
    expected += sum(9 * (channels + 12 * i) * 12 + 2 * (channels + 12 * i) for i in range(2))
    channels += 2 * 12
    if stage < 2:
        expected += 2 * channels + channels * (channels // 2)
        channels //= 2
expected += 2 * channels + channels * 10 + 10
checks.check_equal(dense["params"], expected, "the DenseNet's parameter count")
checks.check(dense["activation_mb"] > res["activation_mb"],
             "the DenseNet should keep more activations for the backward pass.")
### END HIDDEN TESTS

# %% [markdown]
# Read the numbers: the DenseNet needs several times fewer parameters for a similar
# accuracy — every layer reuses all earlier features instead of recomputing them — but it
# keeps more activation memory alive for the backward pass, because each concatenation
# creates a new, ever wider tensor that the next convolution must remember. Memory-efficient
# DenseNet implementations recompute the concatenations during the backward pass (gradient
# checkpointing, chapter 14) to trade that memory for time.
#
# ## Concept check (6 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch where they
# can, so you can check most of these by experiment — but decide first, then try.
#
# 1. `cc_dense_channels`: the number of output channels of `DenseBlock(in_channels=64,
#    growth_rate=32, num_layers=6)`.
# 2. `cc_projection_shape`: the output shape (a tuple) of `BasicBlock(64, 128, stride=2)` on
#    an input of shape `(4, 64, 32, 32)`.
# 3. `cc_resnet34_layers`: how many weight layers (convolutions and linear layers) torchvision's
#    ResNet-34 has, counting the 1 × 1 projection shortcuts too (an int).
# 4. `cc_cancel_jacobian`: the Jacobian $\partial \mathbf{y} / \partial \mathbf{x}$, a `(3, 3)`
#    float tensor, of the "residual" block $\mathbf{y} = \mathbf{x} + \mathcal{F}(\mathbf{x})$
#    with $\mathcal{F}(\mathbf{x}) = -\mathbf{x}$, for $\mathbf{x} \in \mathbb{R}^3$.
# 5. `cc_degradation`: a 56-layer plain network has a higher *training* error than a 20-layer
#    one. The most accurate description: (A) it overfits; (B) it is harder to optimize;
#    (C) its gradients must be vanishing.
# 6. `cc_frozen_bn`: you freeze a backbone with `requires_grad_(False)` on all its parameters,
#    then train a new head with the model in `train()` mode. What in the backbone still
#    changes? (A) nothing; (B) the batch-norm running statistics; (C) the convolution weights.

# %% nbgrader={"grade": false, "grade_id": "cc08_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
cc_dense_channels = ...  # an int
cc_projection_shape = ...  # a tuple
cc_resnet34_layers = ...  # an int
cc_cancel_jacobian = ...  # a (3, 3) float tensor
cc_degradation = ...  # "A", "B" or "C"
cc_frozen_bn = ...  # "A", "B" or "C"
### BEGIN SOLUTION
cc_dense_channels = 64 + 6 * 32
cc_projection_shape = (4, 128, 16, 16)
cc_resnet34_layers = 37
cc_cancel_jacobian = torch.zeros(3, 3)
cc_degradation = "B"
cc_frozen_bn = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc08_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_type(cc_dense_channels, int, "cc_dense_channels")
checks.check_type(cc_projection_shape, tuple, "cc_projection_shape")
checks.check_type(cc_resnet34_layers, int, "cc_resnet34_layers")
### BEGIN HIDDEN TESTS
checks.check_equal(cc_dense_channels, 64 + 6 * 32, "cc_dense_channels")
probe = nn.Conv2d(64, 128, 3, stride=2, padding=1, device="meta")(torch.empty(4, 64, 32, 32, device="meta"))
checks.check_equal(cc_projection_shape, tuple(probe.shape), "cc_projection_shape")
with torch.device("meta"):
    resnet34 = torchvision.models.resnet34(weights=None)
checks.check_equal(cc_resnet34_layers, sum(isinstance(m, (nn.Conv2d, nn.Linear))
                                           for m in resnet34.modules()), "cc_resnet34_layers")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cc08_test_b", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_tensor(cc_cancel_jacobian, "cc_cancel_jacobian", shape=(3, 3))
for variable, value in [("cc_degradation", cc_degradation), ("cc_frozen_bn", cc_frozen_bn)]:
    checks.check_choice(value, "ABC", variable)
### BEGIN HIDDEN TESTS
truth = torch.autograd.functional.jacobian(lambda v: v + (-v), torch.randn(3))
checks.check_close(cc_cancel_jacobian, truth, "cc_cancel_jacobian")
checks.check_equal(cc_degradation, "B", "cc_degradation")  # optimization, not over-fitting
frozen_probe = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 2))
for p in list(frozen_probe.parameters())[:4]:
    p.requires_grad_(False)
weights_before = frozen_probe[0].weight.clone()
stats_before = frozen_probe[1].running_mean.clone()
frozen_probe.train()
opt = torch.optim.SGD([p for p in frozen_probe.parameters() if p.requires_grad], lr=0.1)
frozen_probe(torch.randn(8, 1, 8, 8)).sum().backward()
opt.step()
stats_moved = not torch.equal(frozen_probe[1].running_mean, stats_before)
weights_moved = not torch.equal(frozen_probe[0].weight, weights_before)
checks.check_equal(cc_frozen_bn, "C" if weights_moved else ("B" if stats_moved else "A"), "cc_frozen_bn")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - **Degradation** is an optimization problem: past some depth, a plain network trains
#   *worse* on its own training set, with or without batch norm, even when its gradients do
#   not vanish (they can explode instead — you measured both).
# - A **residual block** computes $\mathbf{x} + \mathcal{F}(\mathbf{x})$: the layers learn a
#   correction, the identity is the easy default, and the Jacobian $I + \partial
#   \mathcal{F} / \partial \mathbf{x}$ gives the gradient a direct path.
# - **Block variants:** post-activation (original, ReLU after the sum), pre-activation
#   (BN → ReLU → conv, nothing on the identity path; pays off at hundreds of layers),
#   bottleneck (1 × 1 → 3 × 3 → 1 × 1, ~17× fewer parameters than two 3 × 3 convolutions at
#   256 channels). Project the shortcut with a 1 × 1 convolution only where shapes change;
#   no bias before batch norm.
# - A **ResNet** is stem → four stages → pooling → linear; yours matches torchvision's
#   ResNet-18/34/50 weight for weight. The number counts weight layers on the main path.
# - **DenseNet** concatenates instead of adding: fewer parameters, more activation memory.
#   **U-Nets** combine short, long and global skips; residual blocks made yours denoise from
#   the first epoch.
# - **Verify skips:** zero the branches and expect the identity; check that gradients reach
#   the input; compare per-layer gradient norms; compare with the plain network under
#   identical training.
# - **Transfer learning:** new head + frozen backbone (in `eval()` mode: batch-norm statistics
#   are buffers, not parameters), or fine-tuning with discriminative learning rates. It
#   saves most of the training steps; how much accuracy it buys depends on how broad and how
#   close the source task is — measure it, as you did.
#
# Next, chapter 9 opens up the batch normalization you used in every block.
