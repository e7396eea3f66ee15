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
# # Chapter 3 — Building models with `nn.Module`
#
# In chapter 2 the weights of a network were loose tensors with `requires_grad=True`, and you
# kept track of them yourself. That stops being fun at the fourth tensor. `nn.Module` is
# PyTorch's answer: a container that knows its own parameters, moves them between devices,
# switches between training and evaluation behavior, saves and restores itself, and nests
# inside other modules. Every layer and every model in the rest of the course is one.
#
# **What you will learn**
# - the module tree: parameters, buffers and submodules, and how PyTorch finds them;
# - writing your own modules, and when `nn.Sequential` is enough;
# - training and evaluation mode (dropout, batch normalization), devices and dtypes;
# - saving and loading with `state_dict`, safely;
# - why initialization matters, with the variance argument behind Xavier and He;
# - hooks that let you watch activations and gradients inside a model;
# - freezing layers, models with several inputs and outputs, and layers with your own
#   parameters.
#
# **Prerequisites:** chapter 1 (tensors, shapes, devices) and chapter 2 (autograd, `backward`,
# `torch.no_grad`). Python classes (`__init__`, `super()`).
#
# **Expected time:** about 2 hours (45 minutes of reading and demos, 75 minutes of exercises).
# The notebook runs top to bottom in well under a minute on a laptop CPU.
#
# Work through the cells in order. Exercises are marked **Exercise 3.k**: write your answer
# where it says `# YOUR CODE HERE`, then run the test cell below it. A failing test says what it
# expected, what it got, and gives a hint. Hidden tests run when your notebook is graded, so aim
# for code that is correct, not just green.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device (a GPU when there is one) and sets the plot style.

# %%
import copy
import math
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import checks

device = helpers.setup(seed=0, threads=1)  # one CPU thread: fastest for the small models here
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# ## 3.1 Why `nn.Module`?
#
# Here is a two-layer network the chapter-2 way. Four tensors, a hand-made list of them for the
# optimizer, and a forward function that reaches for globals:

# %%
W1 = torch.randn(16, 4, requires_grad=True)
b1 = torch.zeros(16, requires_grad=True)
W2 = torch.randn(1, 16, requires_grad=True)
b2 = torch.zeros(1, requires_grad=True)
loose_params = [W1, b1, W2, b2]  # forget one here and it silently never trains


def loose_forward(x):  # x: (B, 4) -> (B, 1)
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


print(loose_forward(torch.randn(3, 4)).shape)

# %% [markdown]
# Now imagine moving that to a GPU, saving it, switching dropout off for evaluation, or
# reusing it as a block inside a bigger model. Every one of those chores needs the list of
# tensors, and a list kept by hand goes stale. The same network as modules:

# %%
net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
print(net)
print("parameter tensors found automatically:", len(list(net.parameters())))

# %% [markdown]
# `nn.Module` gives you, for free:
#
# | feature | how you use it |
# |---|---|
# | parameter tracking | `model.parameters()`, `model.named_parameters()` |
# | device and dtype moves | `model.to(device)`, `model.to(torch.float64)` |
# | training / evaluation behavior | `model.train()`, `model.eval()` |
# | saving and loading | `model.state_dict()`, `model.load_state_dict(...)` |
# | composition | a module's attributes can be modules, to any depth |
# | instrumentation | hooks on every module's forward and backward pass |
#
# ## 3.2 The module hierarchy
#
# A module can hold three kinds of things:
#
# - **parameters** (`nn.Parameter`): tensors the optimizer learns, such as weights and biases;
# - **buffers**: tensors that belong to the model but are not learned, such as the running
#   statistics of batch normalization;
# - **submodules**: other modules, which hold their own parameters, buffers and submodules.
#
# So a model is a tree. You build it by assigning attributes in `__init__`: `nn.Module`
# intercepts every `self.something = ...` and files parameters and modules in its registries.
# The computation lives in `forward`. Here is a small model with all three kinds of content:

# %%
class TinyRegressor(nn.Module):
    """(B, 4) -> (B, 1): a feature block, a batch normalization, an output layer."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.norm = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 1)

    def forward(self, x):  # x: (B, 4)
        return self.out(self.norm(self.features(x)))  # (B, 1)


tiny = TinyRegressor()
print(tiny)

# %% [markdown]
# The tree can be walked in several ways. `named_children()` gives the direct children,
# `named_modules()` every module in the tree (the root has the empty name), and
# `named_parameters()` / `named_buffers()` every tensor, named by its dotted path:

# %%
print("children:   ", [name for name, _ in tiny.named_children()])
print("all modules:", [name or "(root)" for name, _ in tiny.named_modules()])
for name, p in tiny.named_parameters():
    print(f"  parameter {name:20s} {tuple(p.shape)}")
for name, b in tiny.named_buffers():
    print(f"  buffer    {name:20s} {tuple(b.shape)}")

# %% [markdown]
# Those dotted names (`features.0.weight`, `norm.running_mean`) will come back as the keys of
# the saved model in section 3.3.8.
#
# **Call the module, not `forward`.** `model(x)` runs `nn.Module.__call__`, which runs the hooks
# registered on the module (section 3.3.10) around your `forward`. Calling `model.forward(x)`
# skips them:

# %%
calls = []
handle = tiny.register_forward_hook(lambda module, args, output: calls.append(output.shape))
x = torch.randn(5, 4)  # (B, 4)
tiny(x)  # through __call__: forward and hooks
tiny.forward(x)  # forward alone: the hook never sees it
handle.remove()
print("the hook fired", len(calls), "time(s) for two forward passes")

# %% [markdown]
# **The classic trap: a plain Python list.** `nn.Module` registers what you assign as an
# attribute, and only things it recognizes. Modules hidden inside a plain `list` or `dict` are
# invisible: the forward pass works, but the optimizer, `.to(device)` and `state_dict()` never
# see those layers. `nn.ModuleList` and `nn.ModuleDict` are lists and dicts that register their
# contents.

# %%
class StackedLinear(nn.Module):
    def __init__(self, sizes, use_module_list):
        super().__init__()
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.layers = nn.ModuleList(layers) if use_module_list else layers

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


for flag in (False, True):
    m = StackedLinear([4, 8, 1], use_module_list=flag)
    kind = "nn.ModuleList" if flag else "plain list"
    print(f"{kind:13s}: output {tuple(m(torch.randn(2, 4)).shape)}, "
          f"{len(list(m.parameters()))} parameter tensors registered")

# %% [markdown]
# ## 3.3 Building modules
#
# ### 3.3.1 A first module
#
# Every module follows the same recipe:
#
# 1. subclass `nn.Module`;
# 2. in `__init__`, call `super().__init__()` **first**, then create the layers and parameters
#    as attributes;
# 3. in `forward`, say how inputs become outputs.
#
# The workhorse layer is `nn.Linear(d_in, d_out)`. For a batch $x \in \mathbb{R}^{B \times
# d_\text{in}}$ it computes
#
# $$ y = x W^\top + b, \qquad W \in \mathbb{R}^{d_\text{out} \times d_\text{in}},\;
#    b \in \mathbb{R}^{d_\text{out}}, $$
#
# so the weight is stored *output-major*: row $j$ of $W$ holds the weights of output $j$.

# %%
class LinearRegression(nn.Module):
    """y = x W^T + b for x of shape (B, d_in); returns (B, d_out)."""

    def __init__(self, d_in, d_out):
        super().__init__()  # first: creates the registries for parameters and submodules
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x):  # (B, d_in) -> (B, d_out)
        return self.linear(x)


reg = LinearRegression(10, 1)
x = torch.randn(32, 10)  # (B, d_in)
y = reg(x)  # (B, d_out)
by_hand = x @ reg.linear.weight.T + reg.linear.bias
print("output", tuple(y.shape), "| equals x W^T + b:", torch.allclose(y, by_hand))

# %% [markdown]
# Why must `super().__init__()` come first? It creates the registries that `self.linear = ...`
# files the layer into. Without them, PyTorch stops you at the first assignment:

# %%
class Forgetful(nn.Module):
    def __init__(self):
        self.linear = nn.Linear(2, 2)  # no super().__init__() before this line


try:
    Forgetful()
except AttributeError as err:
    print("AttributeError:", err)

# %% [markdown]
# ### 3.3.2 Accessing parameters
#
# An `nn.Parameter` is a tensor with `requires_grad=True` that registers itself when assigned
# to a module. A linear layer has $d_\text{in} d_\text{out}$ weights and $d_\text{out}$ biases:

# %%
for name, p in reg.named_parameters():
    print(f"{name:14s} {str(tuple(p.shape)):8s} requires_grad={p.requires_grad}  "
          f"{type(p).__name__}")
total = sum(p.numel() for p in reg.parameters())
print("total:", total, "| formula d_in * d_out + d_out =", 10 * 1 + 1)
print("memory at float32:", total * reg.linear.weight.element_size(), "bytes")

# %% [markdown]
# `p.numel()` counts the scalars in one parameter tensor; summing it over `parameters()` is the
# standard way to measure a model's size. Exercise 3.2 makes you do it properly.
#
# ### 3.3.3 `nn.Sequential`
#
# When data flows straight through a chain of layers, `nn.Sequential` writes the `forward` for
# you. Give the layers names with an `OrderedDict` when you want to refer to them later:

# %%
seq = nn.Sequential(
    nn.Linear(10, 50), nn.ReLU(),
    nn.Linear(50, 20), nn.ReLU(),
    nn.Linear(20, 1),
)
named = nn.Sequential(OrderedDict([
    ("fc1", nn.Linear(10, 50)), ("relu1", nn.ReLU()),
    ("fc2", nn.Linear(50, 20)), ("relu2", nn.ReLU()),
    ("out", nn.Linear(20, 1)),
]))
print("output:", tuple(seq(torch.randn(32, 10)).shape))
print("named[0] is named.fc1:", named[0] is named.fc1)
print("state_dict keys:", list(seq.state_dict())[:2], "vs", list(named.state_dict())[:2])

# %% [markdown]
# Indexing a `Sequential` counts **modules**, not layers: a ReLU is a module too. Slicing
# returns a new `Sequential` that *shares* the same layer objects (no copy). Keep both facts in
# mind when you freeze "the first two layers" in Exercise 3.7.

# %%
front = named[:2]
print(front)
print("shares the layer object:", front[0] is named.fc1)

# %% [markdown]
# | use `nn.Sequential` when | write a custom `nn.Module` when |
# |---|---|
# | layers run one after the other | the graph branches or merges (skip connections, U-Nets) |
# | each layer takes one tensor and returns one | there are several inputs or outputs |
# | `forward` has no logic | `forward` has loops, conditions, or returns intermediate values |
#
# The two mix freely: custom modules contain `Sequential` blocks, and a `Sequential` can hold
# custom modules.
#
# ### 3.3.4 Custom modules with many layers
#
# A configurable multilayer perceptron: the layers are built in a loop and kept in an
# `nn.ModuleList`, and `forward` can hand back the hidden features too, which a `Sequential`
# cannot do.

# %%
class MLP(nn.Module):
    """input_dim -> hidden_dims... -> output_dim, ReLU after every hidden layer."""

    def __init__(self, input_dim, hidden_dims, output_dim):
        super().__init__()
        dims = [input_dim, *hidden_dims]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], output_dim)

    def forward(self, x, return_features=False):  # x: (B, input_dim)
        features = []
        for layer in self.hidden:
            x = torch.relu(layer(x))
            features.append(x)  # (B, hidden_dims[i])
        y = self.out(x)  # (B, output_dim)
        return (y, features) if return_features else y


mlp = MLP(10, [50, 30], 1)
y, feats = mlp(torch.randn(8, 10), return_features=True)
print(tuple(y.shape), [tuple(f.shape) for f in feats])

# %% [markdown]
# ### 3.3.5 Parameters vs buffers
#
# Some tensors belong to a model without being learned: normalization statistics, fixed
# masks, constant tables. Register them with `register_buffer`. A buffer moves with
# `.to(device)` and is saved in the `state_dict`, but it is not in `parameters()`, so no
# optimizer ever touches it.
#
# A useful example: input standardization whose statistics come from the training data and
# travel inside the model, so that nobody can forget them at inference time.

# %%
class Standardize(nn.Module):
    """(x - mean) / std, with mean and std (D,) fixed from training inputs (N, D)."""

    def __init__(self, train_inputs):
        super().__init__()
        self.register_buffer("mean", train_inputs.mean(dim=0))
        self.register_buffer("std", train_inputs.std(dim=0))

    def forward(self, x):  # (B, D) -> (B, D)
        return (x - self.mean) / self.std


train_inputs = torch.randn(500, 3) * torch.tensor([1.0, 10.0, 100.0]) + 5.0  # (N, 3)
model_with_buffers = nn.Sequential(Standardize(train_inputs), nn.Linear(3, 1))
print("parameters:", [n for n, _ in model_with_buffers.named_parameters()])
print("buffers:   ", [n for n, _ in model_with_buffers.named_buffers()])
print("state_dict:", list(model_with_buffers.state_dict()))

# %% [markdown]
# Why not a plain tensor attribute, `self.mean = ...`? Because the module does not know about
# it: it is not converted by `.to(...)` and not saved. (`register_buffer(...,
# persistent=False)` gives the middle ground: moved with the model, but not saved.)

# %%
class PlainAttribute(nn.Module):
    def __init__(self):
        super().__init__()
        self.plain = torch.zeros(3)  # invisible to the module
        self.register_buffer("buffered", torch.zeros(3))


converted = PlainAttribute().to(torch.float64)
print("plain:", converted.plain.dtype, "| buffered:", converted.buffered.dtype,
      "| saved:", list(converted.state_dict()))

# %% [markdown]
# ### 3.3.6 Training vs evaluation mode
#
# A few layers must behave differently while learning and while predicting. `model.train()`
# and `model.eval()` set the flag `module.training` on every module of the tree, and those
# layers read it.
#
# **Dropout** zeroes each activation with probability $p$ during training and scales the
# survivors up so that the expected value is unchanged (*inverted* dropout):
#
# $$ \tilde h_i = \frac{m_i\, h_i}{1 - p}, \quad m_i \sim \text{Bernoulli}(1 - p)
#    \quad\Rightarrow\quad \mathbb{E}[\tilde h_i] = h_i . $$
#
# In evaluation mode dropout is the identity. So a train-mode network is *random*: the same
# input gives a different output on every call. We feed one input 4,000 times in a single batch
# (each row gets its own dropout mask):

# %%
torch.manual_seed(0)
drop_net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(p=0.5), nn.Linear(64, 1))
x_one = torch.randn(1, 10).expand(4000, 10)  # the same input, 4000 times: (4000, 10)
with torch.no_grad():
    train_out = drop_net.train()(x_one).squeeze(1)  # (4000,): a new mask per row
    eval_out = drop_net.eval()(x_one[:1]).item()
print(f"train mode: mean {train_out.mean():.3f}, std {train_out.std():.3f}"
      f" | eval mode: {eval_out:.3f}")

# %%
fig, ax = plt.subplots()
ax.hist(train_out.numpy(), bins=60, color="tab:blue", alpha=0.7, label="train mode, 4000 calls")
ax.axvline(eval_out, color="black", lw=2, label=f"eval mode: {eval_out:.3f}")
ax.axvline(train_out.mean().item(), color="tab:orange", ls="--", lw=2,
           label=f"mean of train mode: {train_out.mean():.3f}")
ax.set(title="Dropout p = 0.5, one input: train vs eval mode",
       xlabel="network output", ylabel="count")
ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # headroom for the legend
ax.legend(loc="upper left", fontsize=9)
plt.show()

# %% [markdown]
# Notice the spread: with `model.train()` left on at inference, the same input gives answers
# whose standard deviation (printed above) is larger than the answer itself. Notice too that
# the eval-mode output sits at the centre of the histogram: because dropout is followed here
# by a linear layer, inverted dropout keeps the *expected* output exactly equal to the
# eval-mode one, and the mean of 4,000 random calls lands close to it.
#
# **Batch normalization** normalizes with the statistics of the current batch in training, and
# keeps exponential moving averages of them in two buffers, which it uses in evaluation:
#
# $$ \hat\mu \leftarrow (1 - \alpha)\,\hat\mu + \alpha\,\mu_\text{batch}, \qquad
#    \hat\sigma^2 \leftarrow (1 - \alpha)\,\hat\sigma^2 + \alpha\,\sigma^2_\text{batch},
#    \qquad \alpha = 0.1 \text{ (PyTorch's momentum)}, $$
#
# starting from $\hat\mu = 0$, $\hat\sigma^2 = 1$ (the batch variance here is the unbiased one).

# %%
bn = nn.BatchNorm1d(3)
batch = torch.randn(64, 3) * 2 + torch.tensor([5.0, -1.0, 0.0])  # (B, 3)
bn.train()(batch)
print("running_mean after one batch:", bn.running_mean)
print("0.9 * 0 + 0.1 * batch mean:  ", 0.1 * batch.mean(dim=0))
bn.eval()(batch)
print("after an eval-mode pass (unchanged):", bn.running_mean)

# %% [markdown]
# Two consequences to remember. In training mode a batch of one sample has no variance to
# normalize with, and PyTorch refuses it. And `eval()` is **not** `torch.no_grad()`: it changes
# layer behavior, not gradient tracking.

# %%
try:
    bn.train()(torch.randn(1, 3))
except ValueError as err:
    print("ValueError:", err)
out = bn.eval()(torch.randn(4, 3, requires_grad=True))
print("eval mode still builds a graph:", out.requires_grad)

# %% [markdown]
# The rule: `model.train()` before training steps, `model.eval()` (and usually
# `torch.no_grad()`) before validation or inference.
#
# ### 3.3.7 Devices (and dtypes)
#
# `helpers.setup()` chose `device` for you. `model.to(device)` moves every parameter and buffer
# of the tree. Unlike `tensor.to(...)`, which returns a new tensor, `module.to(...)` changes the
# module **in place** and returns the same object, so `model = model.to(device)` and
# `model.to(device)` do the same thing.

# %%
block = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
moved = block.to(device)
print("module.to returns the same object:", moved is block)
print("devices of every parameter and buffer:",
      sorted({str(t.device) for t in block.state_dict().values()}))
block.to(torch.float64)
print("dtypes after .to(torch.float64):", {k: str(v.dtype) for k, v in block.state_dict().items()})

# %% [markdown]
# Notice that `num_batches_tracked`, an integer counter, stays an integer: dtype conversion
# only touches floating-point tensors.
#
# Inputs must match the model in device *and* dtype. The two errors look alike. Every machine
# can show the dtype one; the device one needs a GPU, so that part only runs when there is one:

# %%
try:
    block(torch.randn(2, 3, device=device))  # float32 input, float64 model
except RuntimeError as err:
    print("dtype mismatch: ", err)
if device.type != "cpu":
    try:
        block(torch.randn(2, 3, dtype=torch.float64))  # input on the CPU, model on the GPU
    except RuntimeError as err:
        print("device mismatch:", err)

# %% [markdown]
# The device-agnostic pattern, used in every chapter: create the model, `model.to(device)`,
# and move each batch with `x, y = x.to(device), y.to(device)` inside the loop. Never write
# `"cuda"` in a model.
#
# ### 3.3.8 Saving and loading
#
# `model.state_dict()` is an ordered dictionary from the dotted names of section 3.2 to tensors:
# every parameter and every persistent buffer. It is what you save:

# %%
tiny.train()(torch.randn(16, 4))  # one training-mode pass, so the BatchNorm buffers change
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    print("saved", path.stat().st_size, "bytes:", list(tiny.state_dict()))
    restored = TinyRegressor()  # the same architecture, other random weights
    report = restored.load_state_dict(torch.load(path, map_location="cpu"))
    print(report)
tiny.eval()
restored.eval()
x = torch.randn(8, 4)
print("identical outputs after reload:", torch.equal(tiny(x), restored(x)))

# %% [markdown]
# Three details in that cell matter:
#
# - `load_state_dict` is **strict** by default: missing, unexpected or wrongly shaped tensors
#   raise, which protects you from loading the wrong checkpoint;
# - `map_location="cpu"` lets a checkpoint written on a GPU load on any machine;
#   `load_state_dict` then copies the values onto whatever device the model lives on;
# - `torch.load` uses `weights_only=True` by default (since PyTorch 2.6): it accepts tensors,
#   numbers, strings and containers of them, and refuses arbitrary Python objects.

# %%
try:
    nn.Linear(4, 2).load_state_dict(nn.Linear(4, 3).state_dict())
except RuntimeError as err:
    print(str(err).splitlines()[0], str(err).splitlines()[1].strip()[:60], "...")

# %% [markdown]
# You *can* save a whole model object with `torch.save(model, path)`. That pickles it: the file
# refers to the class by name, so loading needs the same code, importable under the same name,
# and unpickling can run arbitrary code, which is why the default loader refuses it:

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "whole_model.pt"
    torch.save(tiny, path)
    try:
        torch.load(path)
    except pickle.UnpicklingError as err:
        print("refused:", str(err).splitlines()[0][:70], "...")
    whole = torch.load(path, weights_only=False)  # only ever for files you trust
print("loaded a", type(whole).__name__, "| same outputs:", torch.equal(whole(x), tiny(x)))

# %% [markdown]
# Save `state_dict`s. A training *checkpoint* bundles more: the optimizer's state (Adam keeps
# two running averages per parameter), the step or epoch, perhaps the learning-rate schedule,
# all in one dictionary. Exercise 3.5 builds one.
#
# ### 3.3.9 Initialization
#
# Training starts from the initial weights, and a bad start can stop it before it begins. The
# argument fits in three lines. A layer computes $z_j = \sum_{i=1}^{n} W_{ji} a_i$ from $n$
# inputs (its *fan-in*). With independent zero-mean weights of variance $\sigma_w^2$,
#
# $$ \operatorname{Var}(z_j) = n\, \sigma_w^2\, \mathbb{E}[a_i^2]. $$
#
# If $a = \operatorname{ReLU}(z')$ and $z'$ is symmetric around zero, half of it is cut off:
# $\mathbb{E}[a^2] = \tfrac12 \operatorname{Var}(z')$. So each ReLU layer multiplies the
# variance of the signal by $n \sigma_w^2 / 2$:
#
# - **He (Kaiming) initialization**, $\sigma_w^2 = 2/n$, makes the factor exactly 1: the signal
#   keeps its size through any depth of ReLU layers;
# - **Xavier (Glorot)**, $\sigma_w^2 = 2/(n_\text{in} + n_\text{out})$, balances the forward
#   and backward passes for layers *without* the ReLU halving (tanh near zero, linear); for
#   square layers it is $1/n$, a factor $1/2$ per ReLU layer;
# - **PyTorch's default for `nn.Linear`** draws $W \sim \mathcal{U}(-1/\sqrt{n}, 1/\sqrt{n})$,
#   whose variance is $1/(3n)$: a factor $1/6$ per ReLU layer.
#
# | method | suited to | function |
# |---|---|---|
# | Xavier / Glorot | tanh, sigmoid, linear | `nn.init.xavier_uniform_`, `nn.init.xavier_normal_` |
# | He / Kaiming | ReLU and relatives | `nn.init.kaiming_normal_(w, nonlinearity="relu")` |
# | zeros | biases | `nn.init.zeros_` |
# | constant | a chosen value (e.g. norm-layer scales) | `nn.init.constant_` |
# | normal | a chosen standard deviation | `nn.init.normal_` |
# | orthogonal | recurrent weight matrices | `nn.init.orthogonal_` |
#
# Functions ending in `_` work in place. Let us check the variances by drawing them, for a
# $256 \times 256$ layer:

# %%
fan_in = 256
theory_std = {"PyTorch default": 1 / math.sqrt(3 * fan_in),
              "Xavier normal": math.sqrt(2 / (fan_in + fan_in)),
              "He normal": math.sqrt(2 / fan_in)}
weights = {}
for name in theory_std:
    layer = nn.Linear(fan_in, fan_in)  # arrives with PyTorch's default
    if name == "Xavier normal":
        nn.init.xavier_normal_(layer.weight)
    elif name == "He normal":
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    weights[name] = layer.weight.detach().flatten()
    print(f"{name:16s} measured std {weights[name].std():.4f}   theory {theory_std[name]:.4f}")

# %%
fig, ax = plt.subplots()
for name, w in weights.items():
    ax.hist(w.numpy(), bins=120, density=True, histtype="step", lw=1.8,
            label=f"{name} (std {theory_std[name]:.3f})")
ax.set(title="Initial weights of a 256 x 256 linear layer",
       xlabel="weight value", ylabel="probability density")
ax.legend()
plt.show()

# %% [markdown]
# Notice the flat top of the default: it is a uniform distribution, and the narrowest of the
# three. He's bell curve is about 2.4 times wider ($\sqrt{2/n} \big/ \sqrt{1/(3n)} =
# \sqrt{6}$). The next section shows what those factors do to a signal travelling through ten
# layers.
#
# Poor initialization shows up as **vanishing** signals and gradients (weights too small),
# **exploding** ones (too large), or slow early training. Biases are usually started at zero.
#
# ### 3.3.10 Hooks for debugging
#
# A hook is a function that PyTorch calls for you when a module runs. There are three kinds:
#
# | registered with | called | signature |
# |---|---|---|
# | `register_forward_pre_hook` | before `forward` | `hook(module, args)` |
# | `register_forward_hook` | after `forward` | `hook(module, args, output)` |
# | `register_full_backward_hook` | during `backward`, once the gradients w.r.t. the module's inputs are known | `hook(module, grad_input, grad_output)` |
#
# Each returns a handle; call `handle.remove()` when you are done, or the hook stays forever.
# A forward hook that returns nothing only observes; one that returns a tensor replaces the
# module's output, so keep debugging hooks silent. (Older code uses `register_backward_hook`;
# it is deprecated because it can report incomplete gradients for modules made of several
# operations.)
#
# A shape tracer is the classic first use: print the output shape of every leaf module, in
# the order they run.

# %%
def trace_shapes(model, *inputs):
    """Print the output shape of every leaf module while model(*inputs) runs."""
    handles = []
    for name, module in model.named_modules():
        if not list(module.children()):  # leaves only
            def show(mod, args, out, name=name):
                print(f"  {name:12s} {type(mod).__name__:12s} -> {tuple(out.shape)}")
            handles.append(module.register_forward_hook(show))
    try:
        return model(*inputs)
    finally:
        for h in handles:
            h.remove()


_ = trace_shapes(tiny, torch.randn(5, 4))

# %% [markdown]
# A backward hook sees the gradient flowing *into* a module from above. Here on the output
# layer of a small network (the starting point of every "are my gradients alive?" check):

# %%
probe = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 1))
seen = {}
handle = probe[2].register_full_backward_hook(
    lambda module, grad_input, grad_output: seen.update(out=grad_output[0].shape,
                                                        inp=grad_input[0].shape))
probe(torch.randn(5, 10)).sum().backward()
handle.remove()
print("gradient w.r.t. the layer's output:", tuple(seen["out"]),
      "| w.r.t. its input:", tuple(seen["inp"]))

# %% [markdown]
# Now the payoff. Ten ReLU layers of width 256, initialized three ways. Forward hooks record
# the standard deviation of every linear layer's output; inside each forward hook a *tensor*
# hook (`output.register_hook`) records the gradient arriving at that output during `backward`.

# %%
def deep_relu_stack(init, depth=10, width=256):
    """depth x (Linear(width, width) -> ReLU), weights set by init(weight), zero biases."""
    layers = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        if init is not None:
            init(linear.weight)
            nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers)


def layer_statistics(model, x):
    """Std of every Linear output (forward) and of the gradient reaching it (backward)."""
    forward_std, backward_std, handles = [], [], []

    def record(module, args, out):
        forward_std.append(out.std().item())
        out.register_hook(lambda grad: backward_std.append(grad.std().item()))

    for module in model.modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(record))
    model(x).mean().backward()
    for h in handles:
        h.remove()
    return forward_std, backward_std[::-1]  # backward runs from the last layer to the first

# %%
torch.manual_seed(0)
x_deep = torch.randn(512, 256, device=device)  # (B, width)
stack_inits = {"PyTorch default": None, "Xavier normal": nn.init.xavier_normal_,
               "He normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")}
stats = {name: layer_statistics(deep_relu_stack(init).to(device), x_deep)
         for name, init in stack_inits.items()}  # name -> (forward stds, backward stds)
for name, (fwd, bwd) in stats.items():
    print(f"{name:16s} output std: layer 1 {fwd[0]:.3f}, layer 10 {fwd[-1]:.3f} | "
          f"gradient std: layer 1 {bwd[0]:.1e}, layer 10 {bwd[-1]:.1e}")

# %%
fig, (ax_f, ax_b) = plt.subplots(1, 2, figsize=(11, 4))
depths = range(1, 11)
for name, (fwd, bwd) in stats.items():
    ax_f.plot(depths, fwd, marker="o", label=name)
    ax_b.plot(depths, bwd, marker="o", label=name)
ax_f.plot(depths, [stats["PyTorch default"][0][0] * 6 ** (-(d - 1) / 2) for d in depths],
          "k:", label="theory: x 1/sqrt(6) per layer")
ax_f.set(yscale="log", title="Forward: std of each layer's output",
         xlabel="layer (1 = nearest the input)", ylabel="standard deviation")
ax_b.set(yscale="log", title="Backward: std of the gradient at each layer's output",
         xlabel="layer (1 = nearest the input)", ylabel="standard deviation")
ax_f.legend()
ax_b.legend()
plt.show()

# %% [markdown]
# Read the left panel first. With He initialization the signal keeps its size through all ten
# layers. With Xavier it halves in variance per layer, with the default it shrinks by
# $\sqrt 6 \approx 2.4$ per layer, just as the variance argument predicts (the dotted line),
# until the small random biases of the default initialization set a floor. The right panel is
# the same story backwards: the gradient that reaches the first layer of the default-initialized
# network is more than a thousand times smaller than at the top, so the early layers barely
# learn; with He initialization it stays within a small factor across all ten layers.
# Exercise 3.4 shows what this does to training.
#
# ## 3.4 Practical patterns
#
# ### 3.4.1 Freezing layers
#
# To keep part of a model fixed, typically a pretrained feature extractor while you train a
# new head, switch off its gradients: `module.requires_grad_(False)` sets `requires_grad=False`
# on every parameter of `module`. Frozen parameters get no `.grad`, and optimizers skip
# parameters whose `.grad` is `None`; still, give the optimizer only the trainable ones, which
# makes the intent explicit and saves its memory.

# %%
frozen_demo = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 1))
frozen_demo[0].requires_grad_(False)  # weight and bias of the first layer
trainable = [p for p in frozen_demo.parameters() if p.requires_grad]
optimizer = torch.optim.Adam(trainable, lr=1e-3)
frozen_demo(torch.randn(8, 10)).sum().backward()
for name, p in frozen_demo.named_parameters():
    print(f"{name:9s} requires_grad={p.requires_grad!s:5s} grad: "
          f"{None if p.grad is None else tuple(p.grad.shape)}")
print("trainable scalars:", sum(p.numel() for p in trainable),
      "of", sum(p.numel() for p in frozen_demo.parameters()))

# %% [markdown]
# Two traps. `model.eval()` does **not** freeze anything: it only changes dropout and batch
# norm behavior. And a frozen batch-normalization layer still updates its running statistics
# in training mode (they are buffers, not parameters): put frozen BN layers in `eval()` mode
# too if they must stay exactly as they were.
#
# ### 3.4.2 Multiple inputs and outputs
#
# `forward` is an ordinary Python method: it can take several tensors, and return a tuple or a
# dictionary. A common shape is one shared trunk with several heads, trained on a sum of losses:

# %%
class TwoHeads(nn.Module):
    """A shared trunk and two heads: class scores (B, K) and a real value (B,)."""

    def __init__(self, d_in, hidden, n_classes):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU())
        self.classify = nn.Linear(hidden, n_classes)
        self.regress = nn.Linear(hidden, 1)

    def forward(self, x):  # x: (B, d_in)
        h = self.trunk(x)  # (B, hidden)
        return {"logits": self.classify(h), "value": self.regress(h).squeeze(1)}

# %% [markdown]
# Both losses send gradients into the trunk, and because differentiation is linear, the
# gradient of the sum is the sum of the gradients. Weighting the losses decides how hard each
# task pulls on the shared weights.

# %%
torch.manual_seed(0)
heads = TwoHeads(6, 16, 3)
x, labels, targets = torch.randn(32, 6), torch.randint(0, 3, (32,)), torch.randn(32)
out = heads(x)
loss_cls = F.cross_entropy(out["logits"], labels)
loss_reg = F.mse_loss(out["value"], targets)
w = heads.trunk[0].weight
(g_cls,) = torch.autograd.grad(loss_cls, w, retain_graph=True)
(g_reg,) = torch.autograd.grad(loss_reg, w, retain_graph=True)
(g_sum,) = torch.autograd.grad(loss_cls + loss_reg, w)
print({k: tuple(v.shape) for k, v in out.items()})
print("trunk gradient of the sum == sum of the gradients:", torch.allclose(g_sum, g_cls + g_reg))

# %% [markdown]
# Models with several *inputs* work the same way, `forward(self, x_a, x_b)`: Exercise 3.6.
#
# ### 3.4.3 Custom layers with their own parameters
#
# A layer that PyTorch does not ship is a module that creates `nn.Parameter`s itself. As an
# example, *weight normalization* (Salimans & Kingma, 2016) writes each row of the weight as a
# direction times a learned length,
#
# $$ w_j = g_j \, \frac{v_j}{\lVert v_j \rVert}, \qquad y = x W^\top + b , $$
#
# so that the size and the direction of each output's weights are learned separately.

# %%
class WeightNormLinear(nn.Module):
    """Linear layer with weight rows w_j = g_j * v_j / ||v_j||: (B, d_in) -> (B, d_out)."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.v = nn.Parameter(torch.empty(d_out, d_in))  # directions
        self.g = nn.Parameter(torch.empty(d_out))  # lengths
        self.b = nn.Parameter(torch.zeros(d_out))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.v, a=math.sqrt(5))  # what nn.Linear does
        with torch.no_grad():
            self.g.copy_(self.v.norm(dim=1))  # start as an ordinary linear layer

    def forward(self, x):
        weight = self.g.unsqueeze(1) * self.v / self.v.norm(dim=1, keepdim=True)  # (d_out, d_in)
        return F.linear(x, weight, self.b)

    def extra_repr(self):
        return f"d_in={self.v.shape[1]}, d_out={self.v.shape[0]}"

# %% [markdown]
# Its parameters register like any others. Two checks: it agrees with PyTorch's own
# `nn.utils.parametrizations.weight_norm` given the same numbers, and scaling a direction
# vector changes nothing, since only $v_j / \lVert v_j \rVert$ enters.

# %%
wn = WeightNormLinear(5, 3)
print(wn, [(n, tuple(p.shape)) for n, p in wn.named_parameters()])
reference = nn.utils.parametrizations.weight_norm(nn.Linear(5, 3))
with torch.no_grad():
    reference.parametrizations.weight.original0.copy_(wn.g.unsqueeze(1))  # g: (d_out, 1)
    reference.parametrizations.weight.original1.copy_(wn.v)  # v: (d_out, d_in)
    reference.bias.copy_(wn.b)
    x = torch.randn(4, 5)
    print("matches PyTorch's weight_norm:", torch.allclose(wn(x), reference(x), atol=1e-6))
    before = wn(x)
    wn.v[0] *= 3.0  # a longer direction vector, same direction
    print("scale invariant:", torch.allclose(wn(x), before, atol=1e-6))

# %% [markdown]
# ## 3.5 Exercises
#
# Three of the exercises train small models. Chapter 4 takes the training loop apart; here it
# is as a ready-made tool. It runs full-batch steps (all the data at once) and returns the loss
# measured at each step. Notice that it receives the optimizer: an optimizer is built over a
# model's parameters, and holds references to those very tensors.

# %%
def train_steps(model, optimizer, inputs, targets, loss_fn, steps):
    """Run `steps` full-batch gradient steps; return the loss before each step (floats)."""
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses

# %% [markdown]
# ### Exercise 3.1 — A first module: `TwoLayerNet` (★★, 2 points)
#
# Complete `TwoLayerNet(input_dim, hidden_dim, output_dim)`:
#
# - a linear layer `fc1` from `input_dim` to `hidden_dim`, then a ReLU,
# - a linear layer `fc2` from `hidden_dim` to `output_dim`, with **no** activation after it;
# - input `(B, input_dim)` float32, output `(B, output_dim)` float32.
#
# Name the layers `fc1` and `fc2`: the tests read them. The tests check, for
# `TwoLayerNet(20, 50, 10)` and a batch of 16: the output shape, the number of parameters
# against the formula $d_\text{in} h + h + h\, d_\text{out} + d_\text{out}$, and the output
# against $\operatorname{ReLU}(x W_1^\top + b_1) W_2^\top + b_2$ computed from your weights;
# then other sizes, a batch of one, and that every parameter receives a gradient.
#
# *Hints:* `super().__init__()` is already there. `torch.relu` (or `F.relu`) works inside
# `forward`; an `nn.ReLU()` attribute works too. The whole `forward` fits in one line:
# `return self.fc2(torch.relu(self.fc1(x)))`.

# %% nbgrader={"grade": false, "grade_id": "ex03_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TwoLayerNet(nn.Module):
    """input_dim -> hidden_dim -> ReLU -> output_dim; layers fc1 and fc2."""

    def __init__(self, input_dim, hidden_dim, output_dim):
        super().__init__()
        ### BEGIN SOLUTION
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)
        ### END SOLUTION

    def forward(self, x):
        """x: (B, input_dim) -> (B, output_dim)."""
        ### BEGIN SOLUTION
        return self.fc2(torch.relu(self.fc1(x)))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_1_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
two = TwoLayerNet(20, 50, 10)
x = torch.randn(16, 20)  # (B, input_dim)
n_formula = 20 * 50 + 50 + 50 * 10 + 10  # weights and biases of both layers
out = checks.check_module(two, "TwoLayerNet(20, 50, 10)", n_params=n_formula, example_input=x,
                          output_shape=(16, 10),
                          hint="two nn.Linear layers assigned as attributes self.fc1, self.fc2")
checks.check_type(getattr(two, "fc1", None), nn.Linear, "two.fc1")
checks.check_type(getattr(two, "fc2", None), nn.Linear, "two.fc2")
with torch.no_grad():
    hidden = torch.clamp(x @ two.fc1.weight.T + two.fc1.bias, min=0)  # ReLU written out
    expected = hidden @ two.fc2.weight.T + two.fc2.bias
checks.check_close(out, expected, "TwoLayerNet(20, 50, 10)(x)", atol=1e-5,
                   hint="ReLU between fc1 and fc2, and no activation after fc2")
### BEGIN HIDDEN TESTS
checks.check_dtype(out, torch.float32, "the output of TwoLayerNet")
small = TwoLayerNet(3, 7, 2)
x1 = torch.randn(1, 3)
x1_before = x1.clone()
out1 = checks.check_module(small, "TwoLayerNet(3, 7, 2)", n_params=3 * 7 + 7 + 7 * 2 + 2,
                           example_input=x1, output_shape=(1, 2))
with torch.no_grad():
    ref1 = torch.clamp(x1 @ small.fc1.weight.T + small.fc1.bias, min=0) @ small.fc2.weight.T
    ref1 = ref1 + small.fc2.bias
checks.check_close(out1, ref1, "TwoLayerNet(3, 7, 2) on a batch of one", atol=1e-6)
checks.check_equal(x1, x1_before, "the input after the forward pass", hint="do not modify x")
checks.check_equal(sorted(n for n, _ in small.named_parameters()),
                   ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"], "the parameter names")
big = TwoLayerNet(5, 9, 4)
big(torch.randn(64, 5)).pow(2).sum().backward()
checks.check(all(p.grad is not None for p in big.parameters()),
             "every parameter of TwoLayerNet should receive a gradient.")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.2 — Parameter counting (★★, 3 points)
#
# How big is a model? Write three functions:
#
# 1. `make_mlp(sizes)`: an `nn.Sequential` of `nn.Linear(sizes[k], sizes[k + 1])` layers with an
#    `nn.ReLU()` between consecutive linear layers and none after the last. `make_mlp([100, 500,
#    200, 50, 10])` has 7 modules: Linear, ReLU, Linear, ReLU, Linear, ReLU, Linear.
# 2. `count_parameters(model, trainable_only=False)`: the number of scalar parameters, a Python
#    `int`. A parameter used twice in a model counts once; buffers are not parameters. With
#    `trainable_only=True`, count only parameters with `requires_grad=True`.
# 3. `parameters_per_layer(model)`: a dict `{module name: count}` with one entry per module
#    that holds parameters **directly** (not through its children), named as
#    `model.named_modules()` names them (`"0"`, `"2"`, … in a `Sequential`; `""` for the root
#    module itself). Modules without parameters of their own are left out.
#
# By hand, a linear layer has $d_\text{in} d_\text{out} + d_\text{out}$ parameters, so the
# model of item 1 has
#
# | layer | count |
# |---|---|
# | 100 → 500 | $100 \cdot 500 + 500 = 50{,}500$ |
# | 500 → 200 | $500 \cdot 200 + 200 = 100{,}200$ |
# | 200 → 50 | $200 \cdot 50 + 50 = 10{,}050$ |
# | 50 → 10 | $50 \cdot 10 + 10 = 510$ |
# | total | $161{,}260$ |
#
# The tests compare your counts with this formula, then with other modules: a convolution, a
# batch normalization (whose buffers must not count), a model that uses one layer twice, and a
# partly frozen model.
#
# *Hints:* `p.numel()` counts the scalars of one tensor; `model.parameters()` already skips
# duplicates. For item 3, `module.parameters(recurse=False)` yields only a module's own
# parameters.

# %% nbgrader={"grade": false, "grade_id": "ex03_2_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_mlp(sizes):
    """Linear(sizes[0], sizes[1]) -> ReLU -> ... -> Linear(sizes[-2], sizes[-1])."""
    ### BEGIN SOLUTION
    layers = []
    for k, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k > 0:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)
    ### END SOLUTION


def count_parameters(model, trainable_only=False):
    """Number of scalar parameters of model (an int); only trainable ones if asked."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_2_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
sizes = [100, 500, 200, 50, 10]
mlp = make_mlp(sizes)
checks.check_type(mlp, nn.Sequential, "make_mlp(sizes)")
checks.check_equal([type(m).__name__ for m in mlp], ["Linear", "ReLU"] * 3 + ["Linear"],
                   "the module types of make_mlp([100, 500, 200, 50, 10])",
                   hint="a ReLU between two Linear layers, none after the last")
formula = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))  # 161,260
n_counted = count_parameters(mlp)
checks.check_type(n_counted, int, "count_parameters(mlp)",
                  hint="sum(p.numel() for p in model.parameters()) is an int")
checks.check_equal(n_counted, formula, "count_parameters(make_mlp([100, 500, 200, 50, 10]))",
                   hint="sum p.numel() over model.parameters(): the number of scalars, "
                        "not the number of tensors")
### BEGIN HIDDEN TESTS
checks.check_equal([(m.in_features, m.out_features) for m in mlp[::2]],
                   list(zip(sizes[:-1], sizes[1:])), "the layer sizes of make_mlp(sizes)")
checks.check_equal([type(m).__name__ for m in make_mlp([7, 2])], ["Linear"], "make_mlp([7, 2])")
checks.check_equal(count_parameters(nn.Conv2d(3, 8, kernel_size=3)), 3 * 8 * 3 * 3 + 8,
                   "count_parameters(nn.Conv2d(3, 8, 3))")
checks.check_equal(count_parameters(nn.BatchNorm1d(10)), 2 * 10, "count_parameters(BatchNorm1d(10))",
                   hint="running statistics are buffers, not parameters")
shared = nn.Linear(4, 4)
checks.check_equal(count_parameters(nn.Sequential(shared, nn.ReLU(), shared)), 4 * 4 + 4,
                   "count_parameters of a model that uses one layer twice",
                   hint="model.parameters() lists a shared parameter once; state_dict() twice")
part = make_mlp([6, 5, 4, 3])
part[0].requires_grad_(False)
checks.check_equal(count_parameters(part), 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3,
                   "count_parameters(model) with a frozen layer", hint="all parameters by default")
checks.check_equal(count_parameters(part, trainable_only=True), 5 * 4 + 4 + 4 * 3 + 3,
                   "count_parameters(model, trainable_only=True)",
                   hint="skip parameters with requires_grad=False")
x = torch.randn(5, 6)
with torch.no_grad():
    h = torch.clamp(x @ part[0].weight.T + part[0].bias, min=0)
    h = torch.clamp(h @ part[2].weight.T + part[2].bias, min=0)
    checks.check_close(part(x), h @ part[4].weight.T + part[4].bias, "make_mlp([6, 5, 4, 3])(x)",
                       atol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex03_2_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def parameters_per_layer(model):
    """{name: number of scalar parameters held directly by that module}, non-zero only."""
    ### BEGIN SOLUTION
    counts = {}
    for name, module in model.named_modules():
        n = sum(p.numel() for p in module.parameters(recurse=False))
        if n > 0:
            counts[name] = n
    return counts
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_2_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
big_mlp = nn.Sequential(nn.Linear(100, 500), nn.ReLU(), nn.Linear(500, 200), nn.ReLU(),
                        nn.Linear(200, 50), nn.ReLU(), nn.Linear(50, 10))
per_layer = parameters_per_layer(big_mlp)
checks.check_type(per_layer, dict, "parameters_per_layer(model)")
expected_per_layer = {"0": 100 * 500 + 500, "2": 500 * 200 + 200, "4": 200 * 50 + 50,
                      "6": 50 * 10 + 10}
checks.check_equal(per_layer, expected_per_layer, "parameters_per_layer of the 100-500-200-50-10 MLP",
                   hint="loop over model.named_modules(); count module.parameters(recurse=False); "
                        "leave out modules with none")
### BEGIN HIDDEN TESTS
nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.BatchNorm1d(3),
                       nn.Linear(3, 1))
checks.check_equal(parameters_per_layer(nested), {"0.0": 9, "1": 6, "2": 4},
                   "parameters_per_layer of a nested model")


class _OwnAndChild(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2))
        self.linear = nn.Linear(3, 3)


checks.check_equal(parameters_per_layer(_OwnAndChild()), {"": 2, "linear": 12},
                   "parameters_per_layer of a module with a parameter of its own",
                   hint="the root module is named ''")
### END HIDDEN TESTS

# %% [markdown]
# With both functions working, here is the table of item 4 of the seed exercise, with the
# memory each layer needs at 4 bytes per float32 parameter:

# %%
for name, n in parameters_per_layer(mlp).items():
    layer = mlp[int(name)]
    print(f"layer {name}: {layer.in_features:4d} -> {layer.out_features:4d}  "
          f"{n:8,d} parameters  {n * 4 / 1024:7.1f} KiB")
print(f"total: {count_parameters(mlp):,d} parameters, {count_parameters(mlp) * 4 / 1024:.1f} KiB")

# %% [markdown]
# ### Exercise 3.3 — Sequential vs custom (★★★, 3 points)
#
# Build the same network, $10 \to 50 \to 30 \to 1$ with a ReLU after each hidden layer, twice:
#
# 1. `build_sequential()`: an `nn.Sequential` of five modules, Linear, ReLU, Linear, ReLU,
#    Linear;
# 2. `CustomMLP()`: an `nn.Module` with attributes `fc1`, `fc2`, `fc3` (created **in this
#    order**) and a `forward` that applies the ReLUs;
# 3. `copy_weights(src, dst)`: copy the values of the three linear layers of a
#    `build_sequential()` model `src` into a `CustomMLP` `dst`, so that both compute the same
#    function afterwards. Copy *into* `dst`'s existing parameters (an optimizer may already
#    hold references to them), and do not share memory with `src`: training one must not
#    change the other. Return nothing.
#
# Why can a seed make the two models identical? Each `nn.Linear` draws its weight, then its
# bias, from the global random generator when it is **created**; ReLU draws nothing. Created in
# the same order after the same `torch.manual_seed(s)`, the layers get the same numbers.
#
# The tests seed, build both, and compare with three `nn.Linear` layers made independently
# after the same seed; the two outputs must be identical. For `copy_weights` they check the
# outputs, that `dst` keeps its parameter objects, and that `src` and `dst` stay independent.
#
# *Hints:* under `torch.no_grad()`, `dst.fc1.weight.copy_(src[0].weight)` copies in place.
# Alternatively rename the keys of `src.state_dict()` (`"0.weight"` → `"fc1.weight"`, …) and
# call `dst.load_state_dict(...)`, which copies in place too. The linear layers of `src` are at
# indices 0, 2 and 4.

# %% nbgrader={"grade": false, "grade_id": "ex03_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def build_sequential():
    """10 -> 50 -> 30 -> 1 as nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)."""
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(),
                         nn.Linear(30, 1))
    ### END SOLUTION


class CustomMLP(nn.Module):
    """10 -> 50 -> 30 -> 1 with layers fc1, fc2, fc3 (created in this order) and ReLUs."""

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.fc1 = nn.Linear(10, 50)
        self.fc2 = nn.Linear(50, 30)
        self.fc3 = nn.Linear(30, 1)
        ### END SOLUTION

    def forward(self, x):
        """x: (B, 10) -> (B, 1)."""
        ### BEGIN SOLUTION
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_3_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(3)
reference_layers = [nn.Linear(10, 50), nn.Linear(50, 30), nn.Linear(30, 1)]  # same draws


def mlp_by_formula(x, layers):  # ReLU(ReLU(x W1^T + b1) W2^T + b2) W3^T + b3, written out
    h = torch.clamp(x @ layers[0].weight.T + layers[0].bias, min=0)
    h = torch.clamp(h @ layers[1].weight.T + layers[1].bias, min=0)
    return h @ layers[2].weight.T + layers[2].bias


torch.manual_seed(3)
seq_model = build_sequential()
torch.manual_seed(3)
custom_model = CustomMLP()
checks.check_type(seq_model, nn.Sequential, "build_sequential()")
x = torch.randn(8, 10)
with torch.no_grad():
    expected = mlp_by_formula(x, reference_layers)
    out_seq, out_custom = seq_model(x), custom_model(x)
checks.check_close(out_seq, expected, "build_sequential()(x) after torch.manual_seed(3)", atol=1e-6,
                   hint="Linear(10, 50), ReLU, Linear(50, 30), ReLU, Linear(30, 1)")
checks.check_close(out_custom, expected, "CustomMLP()(x) after torch.manual_seed(3)", atol=1e-6,
                   hint="create fc1, fc2, fc3 in this order, and apply ReLU after fc1 and fc2")
checks.check_equal(out_custom, out_seq, "CustomMLP output vs Sequential output (bit for bit)")
### BEGIN HIDDEN TESTS
checks.check_equal(len(seq_model), 5, "the number of modules of build_sequential()")
checks.check_equal(sorted(n for n, _ in custom_model.named_parameters()),
                   sorted(f"fc{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias")),
                   "the parameter names of CustomMLP")
n_mlp = 10 * 50 + 50 + 50 * 30 + 30 + 30 * 1 + 1
checks.check_module(custom_model, "CustomMLP()", n_params=n_mlp, example_input=torch.randn(1, 10),
                    output_shape=(1, 1))
checks.check_module(seq_model, "build_sequential()", n_params=n_mlp)
x_big = torch.randn(64, 10) * 3
with torch.no_grad():
    checks.check_close(custom_model(x_big), mlp_by_formula(x_big, reference_layers),
                       "CustomMLP on a larger batch", atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex03_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def copy_weights(src, dst):
    """Copy the weights of a build_sequential() model into a CustomMLP, in place."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        for source, target in zip([src[0], src[2], src[4]], [dst.fc1, dst.fc2, dst.fc3]):
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_3_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(1)
src = build_sequential()
torch.manual_seed(2)
dst = CustomMLP()
x = torch.randn(6, 10)
params_before = dict(dst.named_parameters())
copy_weights(src, dst)
with torch.no_grad():
    checks.check_equal(dst(x), src(x), "dst(x) after copy_weights(src, dst)",
                       hint="copy weight AND bias of src[0], src[2], src[4] into fc1, fc2, fc3")
replaced = [name for name, p in dst.named_parameters() if p is not params_before.get(name)]
checks.check(not replaced, "copy_weights must keep dst's parameter objects.", "none replaced",
             f"new objects for {replaced}",
             hint="copy values into the existing parameters: param.copy_(...) under "
                  "torch.no_grad(), or dst.load_state_dict(...); do not assign new ones")
### BEGIN HIDDEN TESTS
src_state = {k: v.clone() for k, v in src.state_dict().items()}
dst_state = {k: v.clone() for k, v in dst.state_dict().items()}
with torch.no_grad():
    for p in src.parameters():
        p.add_(1.0)  # "train" src: dst must not follow
for k, v in dst.state_dict().items():
    checks.check_equal(v, dst_state[k], f"dst's {k} after src changed",
                       hint="copy the values; do not share the tensors")
checks.check(all(p.requires_grad for p in dst.parameters()),
             "dst's parameters must still require gradients after the copy.")
torch.manual_seed(5)
src2, dst2 = build_sequential(), CustomMLP()
before2 = {k: v.clone() for k, v in src2.state_dict().items()}
copy_weights(src2, dst2)
for k, v in src2.state_dict().items():
    checks.check_equal(v, before2[k], f"src's {k} after copy_weights", hint="only dst may change")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.4 — Custom initialization (★★★, 3 points)
#
# 1. Write `he_init_(model)`: for **every** `nn.Linear` in `model`, however deeply nested, draw
#    the weights from He's normal distribution $\mathcal{N}(0, 2/n_\text{in})$ and set the
#    bias to zero (some layers are built with `bias=False`: their `bias` is `None`). Leave every
#    other kind of module untouched. Work in place and return `model`.
# 2. Compare training with and without it. Build the deep network `make_mlp([1] + [32] * 6 +
#    [1])` (seven linear layers) twice after `torch.manual_seed(0)`: once with PyTorch's
#    default initialization and once passed through `he_init_`. Move both to `device` and
#    train each with `torch.optim.SGD(..., lr=0.05)` for 300 `train_steps` of `F.mse_loss` on
#    $y = x^2$ with the 128 points `x_sq`, `y_sq` given below. Store the two loss lists in
#    `init_losses = {"default": [...], "he": [...]}`.
#
# The tests check the weight statistics of large layers (standard deviation within 3 % of
# $\sqrt{2/n_\text{in}}$, mean zero, and the shape of a normal distribution, which tells it apart
# from a uniform one with the same spread), zero biases, nested and bias-free layers, and that
# other modules are untouched. For item 2: 300 finite losses each, a final He loss below 0.01,
# and below the default one.
#
# *Hints:* `model.modules()` walks the whole tree. `nn.init.kaiming_normal_(w, mode="fan_in",
# nonlinearity="relu")` and `nn.init.zeros_(b)`. Mind `mode`: `fan_in` is `in_features`.

# %% nbgrader={"grade": false, "grade_id": "ex03_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def he_init_(model):
    """He-normal weights and zero biases for every nn.Linear in model; returns model."""
    ### BEGIN SOLUTION
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def weight_stats(weight):  # mean, std and kurtosis (3 for a normal, 1.8 for a uniform)
    w = weight.detach().double().flatten()
    z = (w - w.mean()) / w.std()
    return w.mean().item(), w.std().item(), z.pow(4).mean().item()


torch.manual_seed(0)
wide = nn.Linear(400, 2000)  # fan_in = 400, fan_out = 2000: the modes differ by a factor 5
returned = he_init_(nn.Sequential(wide))
checks.check(isinstance(returned, nn.Sequential) and returned[0] is wide,
             "he_init_ should change the model in place and return it.", "the same model",
             returned)
mean, std, kurtosis = weight_stats(wide.weight)
checks.check_close(std, math.sqrt(2 / 400), "std of the weights of Linear(400, 2000)", rtol=0.03,
                   hint="He: Var(w) = 2 / fan_in, and fan_in is in_features (mode='fan_in')")
checks.check(abs(mean) < 5 * math.sqrt(2 / 400) / math.sqrt(400 * 2000),
             "the weights should have mean zero.", 0.0, mean)
checks.check(abs(kurtosis - 3) < 0.1, "the weights should be normally distributed (kurtosis 3).",
             3.0, round(kurtosis, 3), "kaiming_normal_, not kaiming_uniform_ (kurtosis 1.8)")
checks.check_equal(wide.bias.detach(), torch.zeros(2000), "the biases after he_init_",
                   hint="nn.init.zeros_(layer.bias)")
### BEGIN HIDDEN TESTS


class _Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(300, 600, bias=False), nn.ReLU())
        self.norm = nn.LayerNorm(600)
        self.conv = nn.Conv1d(2, 2, 3)
        self.head = nn.Linear(600, 50)


nested_model = _Nested()
with torch.no_grad():
    nested_model.norm.weight.fill_(0.5)  # distinctive values that must survive
    nested_model.norm.bias.fill_(0.25)
untouched = {k: v.clone() for k, v in nested_model.state_dict().items()
             if k.startswith(("norm", "conv"))}
he_init_(nested_model)
for layer, fan in [(nested_model.inner[0], 300), (nested_model.head, 600)]:
    _, std_l, kurt_l = weight_stats(layer.weight)
    checks.check_close(std_l, math.sqrt(2 / fan), f"std of a nested Linear({fan}, ...)", rtol=0.03)
    checks.check(abs(kurt_l - 3) < 0.3, "nested weights should be normal.", 3.0, kurt_l)
checks.check(nested_model.inner[0].bias is None, "a bias-free layer must stay bias-free.")
checks.check_equal(nested_model.head.bias.detach(), torch.zeros(50), "the head's bias")
for k, v in nested_model.state_dict().items():
    if k in untouched:
        checks.check_equal(v, untouched[k], f"{k} after he_init_",
                           hint="only nn.Linear layers are re-initialized")
### END HIDDEN TESTS

# %% [markdown]
# The data of item 2: 128 points of the parabola $y = x^2$ on $[-1, 1]$.

# %%
x_sq = torch.linspace(-1, 1, 128, device=device).unsqueeze(1)  # (N, 1)
y_sq = x_sq**2  # (N, 1)

# %% nbgrader={"grade": false, "grade_id": "ex03_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
init_losses = {"default": None, "he": None}  # each: the list returned by train_steps
### BEGIN SOLUTION
for name in init_losses:
    torch.manual_seed(0)
    deep = make_mlp([1] + [32] * 6 + [1])
    if name == "he":
        he_init_(deep)
    deep.to(device)
    sgd = torch.optim.SGD(deep.parameters(), lr=0.05)
    init_losses[name] = train_steps(deep, sgd, x_sq, y_sq, F.mse_loss, steps=300)
### END SOLUTION
print({name: round(losses[-1], 5) for name, losses in init_losses.items()})

# %% nbgrader={"grade": true, "grade_id": "ex03_4_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_type(init_losses, dict, "init_losses")
checks.check_equal(sorted(init_losses), ["default", "he"], "the keys of init_losses")
for key in ("default", "he"):
    losses = init_losses[key]
    checks.check_type(losses, list, f'init_losses["{key}"]', hint="the list train_steps returns")
    checks.check_equal(len(losses), 300, f'len(init_losses["{key}"])', hint="300 steps")
    checks.check(all(isinstance(v, float) and math.isfinite(v) for v in losses),
                 f'init_losses["{key}"] should hold finite floats.')
checks.check(init_losses["he"][-1] < 0.01, "the He-initialized network should fit y = x^2.",
             "final loss < 0.01", init_losses["he"][-1],
             "he_init_ the network before moving it and building the optimizer; SGD lr=0.05")
### BEGIN HIDDEN TESTS
checks.check(init_losses["he"][-1] < init_losses["default"][-1],
             "He initialization should end below the default one here.",
             f"< {init_losses['default'][-1]:.4g}", init_losses["he"][-1])
checks.check(init_losses["he"] != init_losses["default"], "the two runs must differ.")
### END HIDDEN TESTS

# %% [markdown]
# The two learning curves, with the loss of the best *constant* prediction for reference (the
# variance of $y$, $\operatorname{Var}(x^2) = \tfrac15 - \tfrac19 = \tfrac{4}{45} \approx
# 0.089$ for $x$ uniform on $[-1, 1]$):

# %%
fig, ax = plt.subplots()
for name, label in [("default", "PyTorch default initialization"), ("he", "He initialization")]:
    ax.plot(range(1, len(init_losses[name]) + 1), init_losses[name], label=label)
ax.axhline(y_sq.var(unbiased=False).item(), color="0.4", ls=":", label="predict the mean")
ax.set(yscale="log", title="Seven ReLU layers fitting y = x^2 (SGD, lr 0.05)",
       xlabel="step", ylabel="mean squared error")
ax.legend()
plt.show()
print(f"QUALITY: He init reaches MSE {init_losses['he'][-1]:.1e} on y = x^2 in 300 SGD steps; "
      f"default init {init_losses['default'][-1]:.1e}")

# %% [markdown]
# Notice where the default curve sits: on the dotted line, the loss of always predicting the
# average. The network has learned nothing but a constant, because (section 3.3.10) its signal
# and its gradients shrink by a factor of about 2.4 at every layer, and the first layers
# receive almost no gradient. He initialization keeps them alive: after a brief overshoot in
# the first steps (the spike), the loss falls by more than two orders of magnitude. (Adaptive optimizers such as Adam, chapter 4, rescale tiny gradients
# and partly hide the problem; good initialization is still the cheaper cure.)
#
# ### Exercise 3.5 — Save and load (★★★, 3 points)
#
# Write a checkpoint that lets training resume exactly where it stopped:
#
# - `save_checkpoint(path, model, optimizer, step)`: write **one** file at `path` holding the
#   model's `state_dict`, the optimizer's `state_dict` and `step` (an int), in a dict. It must
#   load with `torch.load(path, weights_only=True)`: state dicts and numbers only, no pickled
#   objects.
# - `load_checkpoint(path, model, optimizer=None)`: load the states into the given `model`
#   (strictly: a checkpoint of another architecture must raise) and into `optimizer` when one
#   is given, and return `step`. Load with `map_location="cpu"` so that a GPU checkpoint opens
#   anywhere.
#
# The tests train a model with batch normalization and dropout for 20 Adam steps, save it in a
# temporary directory, and load it into a fresh, differently initialized model and optimizer.
# In evaluation mode the two models must give **identical** outputs, and one more Adam step on
# each must give identical parameters (Adam's running averages must come back too). They also
# load your file with `weights_only=True`, load without an optimizer, and try a wrong
# architecture.
#
# *Hints:* `torch.save({"model": ..., "optimizer": ..., "step": ...}, path)`;
# `torch.load(path, map_location="cpu", weights_only=True)`; `model.load_state_dict(...)` and
# `optimizer.load_state_dict(...)`.

# %% nbgrader={"grade": false, "grade_id": "ex03_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def save_checkpoint(path, model, optimizer, step):
    """Save model and optimizer state dicts and the step (int) in one file at path."""
    ### BEGIN SOLUTION
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "step": int(step)}, path)
    ### END SOLUTION


def load_checkpoint(path, model, optimizer=None):
    """Restore model (and optimizer, if given) from path; return the saved step (int)."""
    ### BEGIN SOLUTION
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["step"]
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_5_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def checkpoint_net():
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, 1)).to(device)


torch.manual_seed(0)
x_ck = torch.randn(64, 4, device=device)
y_ck = x_ck.sum(dim=1, keepdim=True)
net_a = checkpoint_net()
opt_a = torch.optim.Adam(net_a.parameters(), lr=1e-2)
train_steps(net_a, opt_a, x_ck, y_ck, F.mse_loss, steps=20)
ckpt_dir = tempfile.TemporaryDirectory()
ckpt_path = Path(ckpt_dir.name) / "checkpoint.pt"
save_checkpoint(ckpt_path, net_a, opt_a, step=20)
try:
    torch.load(ckpt_path, weights_only=True)
except Exception as err:  # noqa: BLE001 -- reported as a teaching message
    checks.fail("the checkpoint does not load with weights_only=True.",
                "a dict of state dicts and numbers", f"{type(err).__name__}",
                "save model.state_dict() and optimizer.state_dict(), not the objects")
torch.manual_seed(1)
net_b = checkpoint_net()
opt_b = torch.optim.Adam(net_b.parameters(), lr=1e-2)
step = load_checkpoint(ckpt_path, net_b, opt_b)
checks.check_equal(step, 20, "the step returned by load_checkpoint")
net_a.eval()
net_b.eval()
with torch.no_grad():
    checks.check_equal(net_b(x_ck), net_a(x_ck), "the reloaded model's outputs in eval mode",
                       hint="save and load model.state_dict(): it holds the parameters AND the "
                            "BatchNorm running statistics (buffers)")
### BEGIN HIDDEN TESTS
checks.check_type(step, int, "the step returned by load_checkpoint")
for k, v in net_a.state_dict().items():
    checks.check_equal(net_b.state_dict()[k], v, f"the reloaded {k}")
for net, opt in [(net_a, opt_a), (net_b, opt_b)]:  # one more step each, without dropout noise
    opt.zero_grad()
    F.mse_loss(net(x_ck), y_ck).backward()
    opt.step()
for (k, pa), pb in zip(net_a.named_parameters(), net_b.parameters()):
    checks.check_close(pb, pa, f"{k} after one more Adam step on both models", rtol=0, atol=1e-7,
                       hint="restore the optimizer's state_dict too: Adam keeps running averages")
net_c = checkpoint_net()
checks.check_equal(load_checkpoint(ckpt_path, net_c), 20, "load_checkpoint without an optimizer")
checks.check_raises(lambda: load_checkpoint(ckpt_path, nn.Sequential(nn.Linear(4, 8)).to(device)),
                    RuntimeError, "loading the checkpoint into another architecture",
                    hint="load_state_dict must stay strict (the default)")
ckpt_dir.cleanup()
### END HIDDEN TESTS

# %% [markdown]
# Item 6 of the seed exercise, saving with `torch.save(model, ...)`, was the demonstration of
# section 3.3.8: it works, but ties the file to your code and needs `weights_only=False`,
# which you should only use on files you trust.
#
# ### Exercise 3.6 — Multi-input network (★★★, 3 points)
#
# Some problems come with two kinds of input: a measurement and its metadata, an image and a
# caption. Complete `TwoBranchNet(dim_a=20, dim_b=10, hidden=32, skip=False)`:
#
# - `branch_a`: `nn.Sequential(Linear(dim_a, hidden), ReLU, Linear(hidden, hidden), ReLU)`;
# - `branch_b`: the same, from `dim_b`;
# - `head`: one `nn.Linear` from the concatenated features to 1 output;
# - `forward(x_a, x_b)` with `x_a` of shape `(B, dim_a)` and `x_b` of shape `(B, dim_b)`:
#   concatenate `[branch_a(x_a), branch_b(x_b)]` along the feature dimension, in this order,
#   then apply `head`; output `(B, 1)`.
# - With `skip=True` (the extra challenge), also concatenate the raw inputs **after** the
#   branch features, `[branch_a(x_a), branch_b(x_b), x_a, x_b]`, so that the head sees both the
#   processed and the original features; `head` then has `2 * hidden + dim_a + dim_b` inputs.
#
# The tests count parameters against the formula (each branch: $d\,h + h + h^2 + h$; head:
# $2h + 1$, plus $d_a + d_b$ weights with `skip`), and compare the output with the computation
# written out from your layers' weights, for both settings and other sizes.
#
# *Hints:* `torch.cat([...], dim=1)`; store `skip` (already done) and branch on it in
# `forward`.

# %% nbgrader={"grade": false, "grade_id": "ex03_6_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TwoBranchNet(nn.Module):
    """Two inputs, two branches, one head: (B, dim_a), (B, dim_b) -> (B, 1)."""

    def __init__(self, dim_a=20, dim_b=10, hidden=32, skip=False):
        super().__init__()
        self.skip = skip
        ### BEGIN SOLUTION
        self.branch_a = nn.Sequential(nn.Linear(dim_a, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Linear(dim_b, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(2 * hidden + (dim_a + dim_b if skip else 0), 1)
        ### END SOLUTION

    def forward(self, x_a, x_b):
        """x_a: (B, dim_a), x_b: (B, dim_b) -> (B, 1)."""
        ### BEGIN SOLUTION
        parts = [self.branch_a(x_a), self.branch_b(x_b)]  # (B, hidden) each
        if self.skip:
            parts += [x_a, x_b]
        return self.head(torch.cat(parts, dim=1))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_6_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def branch_by_formula(x, seq):  # Linear -> ReLU -> Linear -> ReLU, written out
    h = torch.clamp(x @ seq[0].weight.T + seq[0].bias, min=0)
    return torch.clamp(h @ seq[2].weight.T + seq[2].bias, min=0)


def two_branch_params(d_a, d_b, h, skip):  # the parameter count, by formula
    branch = lambda d: d * h + h + h * h + h  # noqa: E731
    return branch(d_a) + branch(d_b) + (2 * h + (d_a + d_b if skip else 0)) + 1


torch.manual_seed(0)
two_branch = TwoBranchNet(20, 10, hidden=32)
x_a, x_b = torch.randn(16, 20), torch.randn(16, 10)
out = checks.check_module(two_branch, "TwoBranchNet(20, 10, hidden=32)",
                          n_params=two_branch_params(20, 10, 32, False), example_input=(x_a, x_b),
                          output_shape=(16, 1), hint="two 2-layer branches and one Linear head")
with torch.no_grad():
    features = torch.cat([branch_by_formula(x_a, two_branch.branch_a),
                          branch_by_formula(x_b, two_branch.branch_b)], dim=1)  # (B, 2 hidden)
    expected = features @ two_branch.head.weight.T + two_branch.head.bias
checks.check_close(out, expected, "TwoBranchNet(20, 10, hidden=32)(x_a, x_b)", atol=1e-5,
                   hint="ReLU after both linear layers of each branch; concatenate [a, b] on dim 1")
### BEGIN HIDDEN TESTS
small_tb = TwoBranchNet(dim_a=7, dim_b=3, hidden=5)
xa1 = torch.randn(1, 7, requires_grad=True)
xb1 = torch.randn(1, 3, requires_grad=True)
out1 = checks.check_module(small_tb, "TwoBranchNet(7, 3, hidden=5)",
                           n_params=two_branch_params(7, 3, 5, False), example_input=(xa1, xb1),
                           output_shape=(1, 1))
with torch.no_grad():
    f1 = torch.cat([branch_by_formula(xa1, small_tb.branch_a),
                    branch_by_formula(xb1, small_tb.branch_b)], dim=1)
    checks.check_close(out1, f1 @ small_tb.head.weight.T + small_tb.head.bias,
                       "TwoBranchNet(7, 3, hidden=5) on a batch of one", atol=1e-6)
out1.sum().backward()
checks.check(all(p.grad is not None for p in small_tb.parameters()),
             "every parameter of TwoBranchNet should receive a gradient.")
checks.check(xa1.grad is not None and xb1.grad is not None, "the output must depend on both inputs.")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex03_6_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
skip_net = TwoBranchNet(20, 10, hidden=32, skip=True)
out_skip = checks.check_module(skip_net, "TwoBranchNet(20, 10, hidden=32, skip=True)",
                               n_params=two_branch_params(20, 10, 32, True),
                               example_input=(x_a, x_b), output_shape=(16, 1),
                               hint="with skip, the head takes 2 * hidden + dim_a + dim_b inputs")
with torch.no_grad():
    features = torch.cat([branch_by_formula(x_a, skip_net.branch_a),
                          branch_by_formula(x_b, skip_net.branch_b), x_a, x_b], dim=1)
    expected = features @ skip_net.head.weight.T + skip_net.head.bias
checks.check_close(out_skip, expected, "TwoBranchNet(..., skip=True)(x_a, x_b)", atol=1e-5,
                   hint="concatenate [branch_a(x_a), branch_b(x_b), x_a, x_b] in this order")
### BEGIN HIDDEN TESTS
small_skip = TwoBranchNet(dim_a=4, dim_b=6, hidden=3, skip=True)
xa2, xb2 = torch.randn(5, 4), torch.randn(5, 6)
out2 = checks.check_module(small_skip, "TwoBranchNet(4, 6, hidden=3, skip=True)",
                           n_params=two_branch_params(4, 6, 3, True), example_input=(xa2, xb2),
                           output_shape=(5, 1))
with torch.no_grad():
    f2 = torch.cat([branch_by_formula(xa2, small_skip.branch_a),
                    branch_by_formula(xb2, small_skip.branch_b), xa2, xb2], dim=1)
    checks.check_close(out2, f2 @ small_skip.head.weight.T + small_skip.head.bias,
                       "TwoBranchNet(4, 6, hidden=3, skip=True)", atol=1e-6)
checks.check_module(TwoBranchNet(4, 6, hidden=3), "TwoBranchNet(4, 6, hidden=3) without skip",
                    n_params=two_branch_params(4, 6, 3, False))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.7 — Frozen layers (★★★, 4 points)
#
# Transfer learning in miniature. A four-layer network is pretrained on one task, then its
# first two layers are frozen and the rest is fine-tuned on a second task with few labels.
#
# - **Task 1 (pretraining):** points in the square $[-1, 1]^2$, labelled by their quadrant
#   (4 classes), 512 labelled points.
# - **Task 2 (fine-tuning):** the same kind of points, labelled by their distance from the
#   origin: inside or outside the circle of radius $r = \sqrt{2/\pi} \approx 0.80$, which splits
#   the square into two equal areas (2 classes). Only **32** labelled points.
#
# The data and the pretrained network are ready below. Your part:
#
# 1. `make_finetune_model(pretrained, n_classes, n_frozen=2)`: return a **deep copy** of the
#    `nn.Sequential` `pretrained` (which must stay untouched) in which the parameters of the
#    first `n_frozen` `nn.Linear` layers are frozen (`requires_grad=False`) and the **last**
#    `nn.Linear` is replaced by a fresh `nn.Linear(its in_features, n_classes)` on the same
#    device. Everything else stays trainable.
# 2. Fine-tune `finetuned = make_finetune_model(pretrained, n_classes=2)` on `(x_ring, y_ring)`
#    with `torch.optim.Adam` (lr `1e-2`) over its trainable parameters, 200 `train_steps` of
#    `F.cross_entropy`, after `torch.manual_seed(1)`. Then train `scratch = four_layer_net(2)`
#    (moved to `device`) the same way, from scratch, on the same 32 points.
# 3. Store the test accuracies (on `x_ring_test`, `y_ring_test`, in eval mode) in
#    `transfer_results = {"frozen": ..., "scratch": ...}` (floats in [0, 1]) and the name of the
#    better one in `transfer_verdict` (`"frozen"` or `"scratch"`).
#
# The tests check item 1 on fresh networks (the frozen flags, the copy, the new head, the
# trainable-parameter count, and that frozen weights do not move in training), then that your
# fine-tuned layers 0 and 2 are **bit for bit** the pretrained ones, that layer 4 did train,
# that the accuracies are what your models give, at least 65 % for `"frozen"` and 75 % for
# `"scratch"` (chance is 50 %), and the verdict.
#
# *Hints:* `copy.deepcopy`; find the linear layers with
# `[i for i, m in enumerate(model) if isinstance(m, nn.Linear)]` (in a `Sequential`, index `i`
# counts the ReLUs too, so `model[:2]` is **not** the first two linear layers);
# `layer.requires_grad_(False)`; `nn.Linear(..., device=old.weight.device)`;
# `helpers.train.accuracy(logits, labels)`.

# %%
def quadrant_labels(points):  # (N, 2) -> (N,) in {0, 1, 2, 3}
    return (points[:, 0] < 0).long() + 2 * (points[:, 1] < 0).long()


RING_RADIUS = math.sqrt(2 / math.pi)  # the circle with half the area of the square [-1, 1]^2


def ring_labels(points):  # (N, 2) -> (N,): 0 inside the circle, 1 outside
    return (points.norm(dim=1) > RING_RADIUS).long()


square = torch.Generator().manual_seed(7)
x_quad = (torch.rand(512, 2, generator=square) * 2 - 1).to(device)  # pretraining inputs
x_ring = (torch.rand(32, 2, generator=square) * 2 - 1).to(device)  # the few task-2 labels
x_ring_test = (torch.rand(2000, 2, generator=square) * 2 - 1).to(device)
y_quad, y_ring, y_ring_test = quadrant_labels(x_quad), ring_labels(x_ring), ring_labels(x_ring_test)
print("task 2 labels: inside", int((y_ring == 0).sum()), "| outside", int((y_ring == 1).sum()))

# %% [markdown]
# The network, and its pretraining on the quadrants:

# %%
def four_layer_net(n_out, width=32):
    """2 -> width -> width -> width -> n_out with ReLUs: Linear layers at indices 0, 2, 4, 6."""
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out))


torch.manual_seed(0)
pretrained = four_layer_net(4).to(device)
train_steps(pretrained, torch.optim.Adam(pretrained.parameters(), lr=1e-2), x_quad, y_quad,
            F.cross_entropy, steps=200)
pretrained.eval()
with torch.no_grad():
    print(f"pretrained quadrant accuracy (training points): "
          f"{helpers.train.accuracy(pretrained(x_quad), y_quad):.1%}")

# %% nbgrader={"grade": false, "grade_id": "ex03_7_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_finetune_model(pretrained, n_classes, n_frozen=2):
    """Deep copy of an nn.Sequential with its first n_frozen Linear layers frozen and its
    last Linear layer replaced by a fresh nn.Linear(in_features, n_classes)."""
    ### BEGIN SOLUTION
    model = copy.deepcopy(pretrained)
    linear_at = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    for i in linear_at[:n_frozen]:
        model[i].requires_grad_(False)
    last = model[linear_at[-1]]
    model[linear_at[-1]] = nn.Linear(last.in_features, n_classes, device=last.weight.device)
    return model
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03_7_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def frozen_flags(model):
    return {name: p.requires_grad for name, p in model.named_parameters()}


torch.manual_seed(0)
base = four_layer_net(4, width=16).to(device)
base_state = copy.deepcopy(base.state_dict())
ft = make_finetune_model(base, n_classes=3)
checks.check_type(ft, nn.Sequential, "make_finetune_model(base, 3)")
checks.check(ft is not base and ft[0] is not base[0], "make_finetune_model must return a copy.",
             hint="copy.deepcopy(pretrained)")
checks.check(all(frozen_flags(base).values()) and base[6].out_features == 4,
             "the pretrained model must stay untouched (all trainable, its own head).",
             hint="freeze and replace in the deep copy, not in pretrained")
expected_flags = {f"{i}.{k}": i >= 4 for i in (0, 2, 4, 6) for k in ("weight", "bias")}
checks.check_equal(frozen_flags(ft), expected_flags, "requires_grad of each parameter",
                   hint="freeze weight AND bias of the Linear layers at indices 0 and 2")
checks.check_type(ft[6], nn.Linear, "the new head ft[6]")
checks.check_equal((ft[6].in_features, ft[6].out_features), (16, 3), "the new head's sizes")
checks.check_module(ft, "the fine-tuning model", n_params=(16 * 16 + 16) + (16 * 3 + 3),
                    hint="only the third linear layer and the new head are trainable")
### BEGIN HIDDEN TESTS
for k in ("0.weight", "0.bias", "2.weight", "4.weight"):
    checks.check_equal(ft.state_dict()[k], base_state[k], f"the copied {k}")
sgd = torch.optim.SGD(ft.parameters(), lr=0.5)  # all parameters: frozen ones get no gradient
xs = torch.randn(64, 2, device=device)
for _ in range(3):
    sgd.zero_grad()
    F.cross_entropy(ft(xs), torch.randint(0, 3, (64,), device=device)).backward()
    sgd.step()
for k in ("0.weight", "0.bias", "2.weight", "2.bias"):
    checks.check_equal(ft.state_dict()[k], base_state[k], f"frozen {k} after training",
                       hint="requires_grad_(False) on the parameters of the frozen layers")
checks.check(not torch.equal(ft.state_dict()["4.weight"], base_state["4.weight"]),
             "the unfrozen layer 4 should train.")
for k, v in base.state_dict().items():
    checks.check_equal(v, base_state[k], f"pretrained {k}", hint="work on a deep copy")
one = make_finetune_model(base, n_classes=5, n_frozen=1)
checks.check_equal(frozen_flags(one), {f"{i}.{k}": i >= 2 for i in (0, 2, 4, 6)
                                       for k in ("weight", "bias")}, "flags with n_frozen=1")
checks.check_equal(one[6].out_features, 5, "the head with n_classes=5")
three = make_finetune_model(four_layer_net(2, width=8).to(device), n_classes=2, n_frozen=3)
checks.check_module(three, "n_frozen=3", n_params=8 * 2 + 2)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex03_7_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
finetuned = None  # make_finetune_model(pretrained, 2), fine-tuned on (x_ring, y_ring)
scratch = None  # four_layer_net(2) on device, trained from scratch on the same points
transfer_results = {}  # {"frozen": test accuracy of finetuned, "scratch": test accuracy of scratch}
transfer_verdict = ...  # "frozen" or "scratch"
### BEGIN SOLUTION
torch.manual_seed(1)
finetuned = make_finetune_model(pretrained, n_classes=2)
adam = torch.optim.Adam([p for p in finetuned.parameters() if p.requires_grad], lr=1e-2)
train_steps(finetuned, adam, x_ring, y_ring, F.cross_entropy, steps=200)
torch.manual_seed(1)
scratch = four_layer_net(2).to(device)
adam = torch.optim.Adam(scratch.parameters(), lr=1e-2)
train_steps(scratch, adam, x_ring, y_ring, F.cross_entropy, steps=200)
finetuned.eval()
scratch.eval()
with torch.no_grad():
    transfer_results = {"frozen": helpers.train.accuracy(finetuned(x_ring_test), y_ring_test),
                        "scratch": helpers.train.accuracy(scratch(x_ring_test), y_ring_test)}
transfer_verdict = max(transfer_results, key=transfer_results.get)
### END SOLUTION
print({k: f"{v:.1%}" for k, v in transfer_results.items()}, "->", transfer_verdict)

# %% nbgrader={"grade": true, "grade_id": "ex03_7_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(finetuned, nn.Sequential, "finetuned")
checks.check_type(scratch, nn.Module, "scratch")
for i in (0, 2):
    for k in ("weight", "bias"):
        checks.check_equal(getattr(finetuned[i], k).detach(), getattr(pretrained[i], k).detach(),
                           f"finetuned[{i}].{k} (frozen) vs pretrained[{i}].{k}",
                           hint="frozen layers must not move while fine-tuning")
checks.check(not torch.equal(finetuned[4].weight, pretrained[4].weight),
             "finetuned[4] should have been trained on the ring task.",
             hint="fine-tune with train_steps on (x_ring, y_ring)")
checks.check_type(transfer_results, dict, "transfer_results")
checks.check_equal(sorted(transfer_results), ["frozen", "scratch"], "the keys of transfer_results")
with torch.no_grad():
    acc = {name: (model.eval()(x_ring_test).argmax(dim=1) == y_ring_test).float().mean().item()
           for name, model in [("frozen", finetuned), ("scratch", scratch)]}
for name in acc:
    checks.check_close(transfer_results[name], acc[name], f'transfer_results["{name}"]', atol=1e-6,
                       hint="accuracy on (x_ring_test, y_ring_test), a float in [0, 1]")
checks.check(acc["frozen"] >= 0.65, "the fine-tuned model should reach 65 % on task 2.",
             ">= 0.65", acc["frozen"])
### BEGIN HIDDEN TESTS
checks.check(acc["scratch"] >= 0.75, "the scratch model should reach 75 % on task 2.",
             ">= 0.75", acc["scratch"])
checks.check_equal(transfer_verdict, max(acc, key=acc.get), "transfer_verdict")
checks.check_equal(finetuned[6].out_features, 2, "the fine-tuned head's outputs")
### END HIDDEN TESTS

# %% [markdown]
# What did the three networks learn? Each panel colors the square by the predicted class and
# shows the training points of its task; the dashed circle is the true boundary of task 2.

# %%
grid_1d = torch.linspace(-1, 1, 150, device=device)
grid = torch.cartesian_prod(grid_1d, grid_1d)  # (150 * 150, 2): (x, y) pairs
panels = [("pretrained: quadrants (task 1)", pretrained, x_quad, y_quad),
          (f"frozen + fine-tuned: {transfer_results['frozen']:.0%}", finetuned, x_ring, y_ring),
          (f"from scratch: {transfer_results['scratch']:.0%}", scratch, x_ring, y_ring)]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
for ax, (title, model, xs, ys) in zip(axes, panels):
    with torch.no_grad():
        pred = model.eval()(grid).argmax(dim=1).reshape(150, 150).T.cpu()  # rows = y
    ax.imshow(pred, origin="lower", extent=(-1, 1, -1, 1), cmap="Pastel1", vmin=0, vmax=8)
    ax.scatter(*xs.cpu().T, c=ys.cpu(), cmap="Set1", vmin=0, vmax=8, s=12, edgecolors="k", lw=0.3)
    ax.add_patch(plt.Circle((0, 0), RING_RADIUS, fill=False, ls="--", color="0.2"))
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.grid(False)
fig.suptitle("Decision regions (background) and training points; ring-task accuracies on 2,000 test points")
fig.tight_layout()
plt.show()

# %% [markdown]
# Look at the middle panel. The frozen layers compute features that were made to find the two
# axes; the trainable layers can only recombine them, and the boundary they draw has corners
# and spikes along the axes (see the top, along $x_1 = 0$) instead of following the circle.
# Training from scratch, the network was free to bend its first layers to the circle.
#
# **When does freezing pay off?** When the frozen features are relevant to the new task. Here
# is the same experiment with a pretraining task that *is* related, a smaller circle of radius
# 0.5, on the same 512 points:

# %% tags=["autograde-skip"]
torch.manual_seed(0)
related = four_layer_net(2).to(device)
small_circle = (x_quad.norm(dim=1) > 0.5).long()  # a related task
train_steps(related, torch.optim.Adam(related.parameters(), lr=1e-2), x_quad, small_circle,
            F.cross_entropy, steps=200)
torch.manual_seed(1)
from_related = make_finetune_model(related, n_classes=2)
adam = torch.optim.Adam([p for p in from_related.parameters() if p.requires_grad], lr=1e-2)
train_steps(from_related, adam, x_ring, y_ring, F.cross_entropy, steps=200)
with torch.no_grad():
    related_acc = helpers.train.accuracy(from_related.eval()(x_ring_test), y_ring_test)
for name, value in [("frozen, pretrained on quadrants", transfer_results["frozen"]),
                    ("frozen, pretrained on a circle of radius 0.5", related_acc),
                    ("from scratch", transfer_results["scratch"])]:
    print(f"{name:45s} {value:.1%}")

# %% [markdown]
# With features from a related task, the frozen network now does better than the quadrant one
# and than the network trained from scratch on the same 32 labels (compare the printed
# accuracies): it only has to learn where the new circle lies, not what a circle is. Freezing
# is a bet that the old features fit the new task; measure before you trust it.

# %% [markdown]
# ### Concept check (3 points)
#
# Answer in the variables below. The tests compute the true answers with PyTorch, so you can
# check any of them by experiment, but decide first, then try.
#
# 1. `cc_n_params`: the number of trainable parameters of
#    `nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))`.
# 2. `cc_n_state`: the number of entries (keys) in that model's `state_dict()`.
# 3. `cc_plain_list`: a module stores its layers as `self.layers = [nn.Linear(4, 4)]`, a plain
#    list. What does `list(module.parameters())` contain? (a) the layer's weight and bias;
#    (b) nothing; (c) it raises an error. Answer with a letter.
# 4. `cc_dropout`: the value of every non-zero entry of
#    `nn.Dropout(p=0.75).train()(torch.ones(100))`.
# 5. `cc_eval_grad`: `True` or `False`: after `model.eval()`, does `model(x)` still record an
#    autograd graph (is the output's `requires_grad` `True`)?
# 6. `cc_same_object`: `True` or `False`: for a module `m`, is `m.to(device)` the very same
#    object as `m`?

# %% nbgrader={"grade": false, "grade_id": "cc03_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
cc_n_params = ...  # an int
cc_n_state = ...  # an int
cc_plain_list = ...  # "a", "b" or "c"
cc_dropout = ...  # a number
cc_eval_grad = ...  # True or False
cc_same_object = ...  # True or False
### BEGIN SOLUTION
cc_n_params = (8 * 16 + 16) + 2 * 16 + (16 * 4 + 4)  # BatchNorm learns a scale and a shift
cc_n_state = 9  # 2 + 5 (weight, bias, running_mean, running_var, num_batches_tracked) + 2
cc_plain_list = "b"
cc_dropout = 4.0  # 1 / (1 - 0.75)
cc_eval_grad = True
cc_same_object = True
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc03_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_type(cc_n_params, int, "cc_n_params")
checks.check_type(cc_n_state, int, "cc_n_state")
checks.check(cc_plain_list in ("a", "b", "c"), "cc_plain_list must be one of 'a', 'b', 'c'.",
             got=cc_plain_list)
checks.check_type(cc_dropout, (int, float), "cc_dropout")
checks.check_type(cc_eval_grad, bool, "cc_eval_grad")
checks.check_type(cc_same_object, bool, "cc_same_object")
### BEGIN HIDDEN TESTS
cc_model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
checks.check_equal(cc_n_params, sum(p.numel() for p in cc_model.parameters() if p.requires_grad),
                   "cc_n_params")
checks.check_equal(cc_n_state, len(cc_model.state_dict()), "cc_n_state")


class _PlainList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4)]


checks.check_equal(cc_plain_list, "b" if not list(_PlainList().parameters()) else "a",
                   "cc_plain_list")
dropped = nn.Dropout(p=0.75).train()(torch.ones(1000))
checks.check_close(cc_dropout, dropped[dropped != 0][0], "cc_dropout")
probe_model = nn.Linear(2, 2).eval()
checks.check_equal(cc_eval_grad, probe_model(torch.randn(1, 2)).requires_grad, "cc_eval_grad")
checks.check_equal(cc_same_object, probe_model.to(device) is probe_model, "cc_same_object")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - A model is a **tree of modules**. Assigning a layer, an `nn.Parameter`, an
#   `nn.ModuleList` or a registered buffer to `self` registers it; a plain list hides it.
# - Write `__init__` (with `super().__init__()` first) and `forward`, and **call** the module:
#   `model(x)` runs the hooks, `model.forward(x)` does not.
# - `nn.Sequential` for straight chains; a custom module for branches, several inputs or
#   outputs, and logic. Indexing a `Sequential` counts ReLUs too.
# - **Parameters** are learned; **buffers** are saved and moved but not learned. Count size
#   with `sum(p.numel() for p in model.parameters())`.
# - `model.train()` / `model.eval()` switch dropout and batch norm; `eval()` does not stop
#   gradients and does not freeze anything.
# - `module.to(device)` works in place. Keep inputs on the model's device and dtype.
# - Save and load **`state_dict`s** (with the optimizer's for checkpoints); `torch.load` is
#   `weights_only=True` by default, and `load_state_dict` is strict: both protect you.
# - Initialization sets the scale of signals and gradients: He ($\sigma_w^2 = 2/n$) for ReLU
#   keeps them alive through depth; hooks let you measure it.
# - Freeze with `requires_grad_(False)` and give the optimizer only trainable parameters;
#   frozen features help only when they fit the new task.
#
# Next, chapter 4 opens up the training loop that `train_steps` hid: losses, optimizers,
# learning rates and schedules.
