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
# # Chapter 14 — Performance and optimization
#
# A model that trains in ten minutes instead of two hours lets you try a dozen ideas a day
# instead of one. This chapter is about getting there: making training and inference faster,
# fitting larger models and batches into memory, and shipping a trained model out of Python.
# Above all it is about **measuring**, because intuition about performance is wrong
# surprisingly often. Every claim of speed or memory in this chapter comes with a cell that
# measures it — and on the 2-core CPU this course is tested on, one famous "2× faster" recipe
# turns out to be *slower*. You will see why, and when it is faster.
#
# **What you will learn**
# - to time code honestly (warm-up, synchronization, medians) with `torch.utils.benchmark`,
#   and to find the bottleneck of a training loop with `torch.profiler` and a phase-by-phase
#   breakdown;
# - mixed precision: float16 and bfloat16, `torch.autocast`, and loss scaling with
#   `torch.amp.GradScaler`;
# - to trade computation for memory with gradient checkpointing, and to count the memory
#   that activations take;
# - what data transfers, the batch size, DataLoader workers and prefetching do to throughput;
# - how `DistributedDataParallel` splits training over several processes — run for real with
#   two CPU processes — and why its averaged gradient is the full-batch gradient;
# - to monitor and reduce memory, with gradient accumulation among the tools;
# - to export a model with `torch.export` and ONNX and check it against PyTorch, and to speed
#   up inference with `inference_mode`, batching and int8 dynamic quantization.
#
# **Prerequisites:** chapter 2 (autograd, tensors saved for backward), chapter 4 (the training
# loop, optimizers), chapter 5 (`Dataset`, `DataLoader`, workers). A GPU is not needed: every
# cell runs on a CPU, and where a CUDA GPU is present the same cells measure it.
#
# **Expected time:** about 3 hours (1.5 hours of reading and running, 1.5 hours for the seven
# exercises). The notebook runs in well under a minute on a laptop CPU.
#
# **About the numbers.** Timings depend on the hardware and on whatever else runs on the
# machine; run a cell twice and the numbers move by 10–20 %. Compare numbers measured in the
# same run, and trust ratios more than absolute values. The exercises are graded on
# correctness, never on speed.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds the random generators, picks
# the device and sets the plot style. We ask PyTorch for one CPU thread: timings are steadier,
# and a machine shared with other work is not oversubscribed.

# %%
import copy
import io
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

# importing torch.utils.benchmark logs a harmless "No CUDA runtime is found" on CPU-only machines
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.utils import benchmark
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader

import helpers
from helpers import checks
from helpers.data import digits

device = helpers.setup(seed=0, threads=1)
WORKDIR = Path(tempfile.mkdtemp(prefix="ch14_"))  # scripts, traces and exported models go here
print(f"PyTorch {torch.__version__} on {device}; "
      f"CPU vector unit: {torch.backends.cpu.get_cpu_capability()}")

# %% [markdown]
# ## 14.1 Measure first
#
# A training step is a pipeline: **load** a batch, **copy** it to the device, run the
# **forward** pass, the **backward** pass, and the **optimizer** update. The step is as fast as
# the sum of its stages, and making a stage faster only helps if that stage takes a real share
# of the time. Hence the one rule of this chapter: *measure, change one thing, measure again.*
#
# The techniques ahead, and what each one buys and costs:
#
# | technique | saves | costs | section |
# |---|---|---|---|
# | mixed precision | time (on hardware with 16-bit units), activation memory | precision, care with small gradients | 14.2 |
# | gradient checkpointing | activation memory | about one extra forward pass | 14.2.3 |
# | pinned memory, `non_blocking` | transfer time | page-locked host memory | 14.3.1 |
# | larger batches | time per sample | memory; optimization changes | 14.3.2 |
# | `DistributedDataParallel` | wall-clock time, with more devices | communication, hardware | 14.3.3 |
# | DataLoader workers, prefetching | data time | CPU cores, RAM | 14.4 |
# | gradient accumulation | memory | time per sample | 14.5 |
# | export, `inference_mode`, quantization | inference time and size | some accuracy (quantization) | 14.7 |
#
# Timing code looks easy and is not: the first call of anything is slow (memory allocation,
# library initialisation), GPUs run *asynchronously* so a clock read too early measures
# nothing, and a busy machine adds noise. `torch.utils.benchmark.Timer` handles all three: it
# warms up while it chooses how many calls to time per block, it synchronizes the accelerator
# before reading the clock, and it repeats. We wrap it in a one-liner used throughout
# (Section 14.6 opens the box).
#
# One more precaution, for comparisons. On a machine shared with other work the load changes
# from second to second, so timing candidate A now and candidate B a moment later can compare
# the machine rather than the code. `compare` measures the candidates in turn, for a few
# rounds, and keeps each one's best time — the one least disturbed by others.

# %%
def measure(fn, min_run_time=0.2):
    """Median seconds per call of fn(), by torch.utils.benchmark (warm-up and sync included)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def compare(fns, rounds=2, min_time=0.03):
    """{name: seconds per call} for a dict of functions, timed in turn for `rounds` rounds.

    Each round times about `min_time` seconds of calls of each function (Timer.timeit warms up
    and synchronizes too); every function keeps its best round.
    """
    timers = {name: benchmark.Timer(stmt="fn()", globals={"fn": fn},
                                    num_threads=torch.get_num_threads()) for name, fn in fns.items()}
    number = {name: max(1, int(min_time / t.timeit(1).mean)) for name, t in timers.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, t in timers.items():
            best[name] = min(best[name], t.timeit(number[name]).mean)
    return best


# %% [markdown]
# Our data throughout: the scikit-learn handwritten digits (8×8 images, flattened to 64
# features), split into a training and a test set, and a small multilayer perceptron factory.

# %%
X_all, y_all = digits(flat=True)  # (1797, 64) float32 in [0, 1], (1797,) int64
order = torch.randperm(len(X_all), generator=torch.Generator().manual_seed(0))
X_train, y_train = X_all[order[:1400]].to(device), y_all[order[:1400]].to(device)
X_test, y_test = X_all[order[1400:]].to(device), y_all[order[1400:]].to(device)


def make_mlp(width=512, depth=3, n_in=64, n_out=10):
    """Linear-ReLU stack: n_in -> width (depth times) -> n_out, on `device`."""
    layers, d = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, n_out)).to(device)


print(f"train {tuple(X_train.shape)}, test {tuple(X_test.shape)}")

# %% [markdown]
# ## 14.2 Mixed precision training
#
# ### 14.2.1 Three floating-point formats
#
# A floating-point number stores a sign, an exponent and a mantissa. The exponent bits set the
# **range** (largest and smallest numbers), the mantissa bits set the **precision**: the gap
# between 1 and the next number is $\varepsilon = 2^{-\text{mantissa bits}}$.
#
# | format | sign | exponent | mantissa | typical use |
# |---|---|---|---|---|
# | float32 | 1 | 8 | 23 | default for training |
# | float16 (half) | 1 | 5 | 10 | GPU mixed precision since Volta |
# | bfloat16 ("brain float") | 1 | 8 | 7 | mixed precision on Ampere+ GPUs, TPUs, recent CPUs |
#
# Half the bits means half the memory and half the bandwidth per number, and GPUs with tensor
# cores (and CPUs with AMX or AVX512-BF16 units) multiply 16-bit matrices several times faster
# than float32 ones. `torch.finfo` tells what each format can hold:

# %%
def smallest_positive(dtype):
    """The smallest positive (subnormal) number of a floating-point dtype."""
    return torch.nextafter(torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)).item()


print(f"{'dtype':>15} {'bytes':>5} {'eps':>9} {'max':>9} {'min normal':>10} {'min subnormal':>13}")
for dt in (torch.float32, torch.float16, torch.bfloat16):
    fi = torch.finfo(dt)
    print(f"{str(dt):>15} {fi.bits // 8:>5} {fi.eps:9.1e} {fi.max:9.1e} {fi.smallest_normal:10.1e} "
          f"{smallest_positive(dt):13.1e}")

# %% [markdown]
# Read the two 16-bit rows against each other. **float16** has more precision ($\varepsilon
# \approx 10^{-3}$) but a tiny range: anything above 65,504 overflows to `inf`, and anything below
# $6 \times 10^{-8}$ flushes to zero. **bfloat16** keeps float32's exponent, hence its range,
# and pays with precision ($\varepsilon \approx 8 \times 10^{-3}$, about two decimal digits).
# Three one-liners show what that means in practice:

# %%
print("70000 in float16:        ", torch.tensor(70000.0).half().item())
print("1e-8 in float16:         ", torch.tensor(1e-8).half().item())
print("1 + 0.001 in bfloat16:   ", (torch.tensor(1.0, dtype=torch.bfloat16) + 0.001).item())

# %% [markdown]
# The last line is the reason mixed precision keeps the **weights in float32**: a typical
# update ($\eta \cdot g \approx 10^{-3}$ or smaller) added to a weight near 1 in bfloat16
# would simply vanish. Only the heavy arithmetic runs in 16 bits.
#
# And the middle line is the reason for loss scaling. Gradients are small numbers. Here are the
# gradient magnitudes of a freshly initialised MLP on one batch of digits, against the two
# float16 limits:

# %%
probe = make_mlp(width=256, depth=2)
grad_outputs = []  # gradients flowing between layers (what backward passes along)
hooks = [m.register_full_backward_hook(lambda mod, g_in, g_out: grad_outputs.append(g_out[0]))
         for m in probe if isinstance(m, nn.Linear)]
with warnings.catch_warnings():  # the hook on the first layer has no input gradient: fine here
    warnings.simplefilter("ignore")
    F.cross_entropy(probe(X_train[:256]), y_train[:256]).backward()
for h in hooks:
    h.remove()
grads = torch.cat([p.grad.flatten() for p in probe.parameters()] +
                  [g.flatten() for g in grad_outputs]).abs().cpu()
grads = grads[grads > 0]
fp16_normal, fp16_sub = torch.finfo(torch.float16).smallest_normal, smallest_positive(torch.float16)
print(f"{len(grads)} gradient entries: {(grads < fp16_normal).float().mean():.0%} below float16's "
      f"normal range, {(grads < fp16_sub).float().mean():.2%} would become 0")

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
bins = np.linspace(-14, 1, 76)
ax.hist(np.log10(grads.numpy()), bins=bins, alpha=0.7, label="gradients")
ax.hist(np.log10(grads.numpy() * 2**16), bins=bins, alpha=0.5, label="gradients × 2¹⁶ (scaled)")
for value, text in [(fp16_sub, "float16 smallest\n(below: 0)"), (fp16_normal, "float16 normal\nrange starts")]:
    ax.axvline(np.log10(value), color="black", ls="--", lw=1)
    ax.text(np.log10(value) - 0.1, ax.get_ylim()[1] * 0.7, text, ha="right", fontsize=8)
ax.set(xlabel="log10 |gradient|", ylabel="count", title="Gradient magnitudes vs float16 limits")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# A good share of the gradients sits below float16's normal range, where the format loses
# precision, and a few fall below its smallest number and would become exactly 0. Multiplying
# the loss by $2^{16}$ multiplies every gradient by $2^{16}$ (the chain rule is linear) and
# shifts the whole histogram 4.8 decades to the right, safely inside the range. That is **loss
# scaling**, coming in Section 14.2.2.
#
# ### 14.2.2 Automatic mixed precision (AMP)
#
# `torch.autocast` runs each operation in the precision that suits it. Inside
# `with torch.autocast(device_type, dtype=...)`:
# - matrix products (`linear`, `matmul`, convolutions) run in the 16-bit dtype: they are where
#   the time goes, and they accumulate internally in float32;
# - operations that need range or precision (`cross_entropy`, `log_softmax`, norms, most
#   reductions) run in float32;
# - the **parameters stay float32**; autocast casts them on the fly (and keeps the cast copies
#   until the region ends).
#
# The lists of which operation goes where differ slightly between CPU and CUDA; the PyTorch
# documentation page "Automatic Mixed Precision" has them. We pick the 16-bit dtype from the
# device: float16 on CUDA (with loss scaling, the classic recipe), bfloat16 on the CPU (CPU
# autocast supports it, and its range makes scaling unnecessary). Watch the dtypes:

# %%
amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
mlp = make_mlp()
xb, yb = X_train[:256], y_train[:256]  # (B, 64), (B,)
with torch.autocast(device.type, dtype=amp_dtype):
    hidden = mlp[0](xb)
    logits = mlp(xb)
    loss = F.cross_entropy(logits, yb)
loss.backward()
print(f"weight: {mlp[0].weight.dtype} | linear output: {hidden.dtype} | logits: {logits.dtype} | "
      f"loss: {loss.dtype} | weight.grad: {mlp[0].weight.grad.dtype}")

# %% [markdown]
# Now the measurement: the time of one training step (forward, backward, SGD update) of a
# 3-layer MLP with 512 units on a batch of 128, in float32 and under autocast. We also count
# the bytes of the tensors autograd keeps for the backward pass — the **activation memory** —
# on a batch of 2048, with the `saved_tensors_hooks` trick of chapter 2: a hook sees every
# tensor saved for backward, and we add up the sizes of the distinct storages that are not
# parameters.

# %%
def saved_bytes(fn, params=()):
    """Bytes of the tensors autograd saves for backward while fn() runs (params excluded)."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    kept = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(kept.values())


# %%
def train_step(model, optimizer, x, y, dtype=None):
    """One SGD step; with a dtype, forward and loss run under autocast."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()


opt = torch.optim.SGD(mlp.parameters(), lr=0.01)
x_2048, y_2048 = torch.cat([X_train, X_train])[:2048], torch.cat([y_train, y_train])[:2048]
precisions = {"float32": None, str(amp_dtype).split(".")[1]: amp_dtype}
step_seconds = compare({name: (lambda dt=dt: train_step(mlp, opt, xb[:128], yb[:128], dt))
                        for name, dt in precisions.items()}, rounds=2)
kept_bytes = {}
for name, dt in precisions.items():
    with torch.autocast(device.type, dtype=dt or torch.float32, enabled=dt is not None):
        kept_bytes[name] = saved_bytes(lambda: F.cross_entropy(mlp(x_2048), y_2048),
                                       mlp.parameters())
    print(f"{name:>9}: {step_seconds[name] * 1e3:6.2f} ms per step (B=128), "
          f"{kept_bytes[name] / 2**20:5.2f} MiB kept for backward (B=2048)")

# %%
(t32, t16), (m32, m16) = step_seconds.values(), kept_bytes.values()
amp_speedup = t32 / t16
print(f"autocast {amp_dtype} vs float32 on {device}: {amp_speedup:.2f}x the speed, "
      f"{m16 / m32:.2f}x the activation memory")

# %% [markdown]
# The memory is measured and robust: the activations kept for backward are stored in 16 bits,
# so they take about half as much (a little more, because autocast also keeps its 16-bit copies
# of the weights and float32 keeps the loss's inputs). The speed depends entirely on the
# hardware. On a GPU with tensor cores, expect a clear gain for large matrices. On a CPU without
# bfloat16 units — on Linux, run `lscpu` and look for `avx512_bf16` or `amx_bf16` — bfloat16
# products are emulated with float32 arithmetic plus conversions, and autocast is *slower*: the
# speed ratio above is below 1 on such machines. Mixed precision is a hardware feature; measure before
# believing any recipe.
#
# **Loss scaling with `GradScaler`.** With float16 the gradients need the scaling shown in the
# histogram. `torch.amp.GradScaler` automates it:
#
# 1. `scaler.scale(loss).backward()` multiplies the loss by the scale $s$ (initially $2^{16}$),
#    so every gradient is $s$ times larger and stays representable;
# 2. `scaler.step(optimizer)` divides the gradients by $s$ in float32 ("unscales") and checks
#    them: if any is `inf` or `NaN` — the scale was too large — it **skips** the update;
#    otherwise it calls `optimizer.step()`;
# 3. `scaler.update()` halves $s$ after a skipped step and doubles it after 2,000 clean ones,
#    so $s$ settles just below the overflow point.
#
# bfloat16 has float32's range and needs no scaling; a scaler built with `enabled=False` does
# nothing (`scale` returns the loss, `step` calls `optimizer.step()`), so one code path serves
# both: `torch.amp.GradScaler(device.type, enabled=(amp_dtype == torch.float16))`.
#
# ### Exercise 14.1 — A mixed-precision training step (★★★, 4 points)
#
# **Goal:** write the AMP training step that works on any device and with either 16-bit dtype.
#
# `amp_train_step(model, x, y, loss_fn, optimizer, scaler, amp_dtype)` performs one step:
# 1. clear the gradients;
# 2. compute the output and the loss inside `torch.autocast` for the device type of `x`
#    (`x.device.type`) with `dtype=amp_dtype`;
# 3. backward pass on the *scaled* loss (outside the autocast region);
# 4. `scaler.step(optimizer)`, then `scaler.update()`;
# 5. return the (unscaled) loss as a Python float.
#
# **Tests check:** that the linear layers ran in `amp_dtype` (bfloat16, and float16 too); the
# loss returned and the weights after one SGD step against a float32 computation (within 16-bit
# tolerance), with the scaler disabled and enabled (scale 1024: the update must use *unscaled*
# gradients); two steps in a row (stale gradients would show); that a step whose gradients
# overflow is skipped and the scale halved.
#
# **Hints:** the device type is a string such as `"cpu"` or `"cuda"`: `x.device.type`.
# Calling `optimizer.step()` yourself bypasses the scaler's unscaling and its overflow check.
# The whole body is seven lines: `optimizer.zero_grad(set_to_none=True)`; `with
# torch.autocast(...)`: output and loss; `scaler.scale(loss).backward()`;
# `scaler.step(optimizer)`; `scaler.update()`; `return loss.item()`.

# %% nbgrader={"grade": false, "grade_id": "ex14_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def amp_train_step(model, x, y, loss_fn, optimizer, scaler, amp_dtype):
    """One mixed-precision training step.

    Args:
        model: nn.Module on the device of x.
        x, y: a batch (inputs and targets) on that device.
        loss_fn: loss_fn(output, y) -> scalar tensor.
        optimizer: a torch.optim optimizer of model's parameters.
        scaler: torch.amp.GradScaler (enabled or not).
        amp_dtype: torch.float16 or torch.bfloat16.
    Returns:
        the loss of this batch (before the update), a Python float.
    """
    ### BEGIN SOLUTION
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=amp_dtype):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_1_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def _sgd_reference(net, x, y, lr):
    """Float32 loss and the parameters after one SGD step, computed on a copy of net."""
    ref = copy.deepcopy(net)
    loss = F.cross_entropy(ref(x), y)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    return loss.item(), [p.detach() - lr * g for p, g in zip(ref.parameters(), grads)]


torch.manual_seed(1)
_net = nn.Linear(16, 4).to(device)
_x, _y = torch.randn(32, 16, device=device), torch.randint(0, 4, (32,), device=device)
_ref_loss, _expected = _sgd_reference(_net, _x, _y, lr=0.5)
_dtypes = []
_hook = _net.register_forward_hook(lambda mod, inp, out: _dtypes.append(out.dtype))
_opt = torch.optim.SGD(_net.parameters(), lr=0.5)
_loss = amp_train_step(_net, _x, _y, F.cross_entropy, _opt,
                       torch.amp.GradScaler(device.type, enabled=False), torch.bfloat16)
_hook.remove()
checks.check_type(_loss, float, "the value returned by amp_train_step", hint="return loss.item()")
checks.check_equal(_dtypes, [torch.bfloat16], "the dtype of the linear layer's output in your step",
                   hint="run model(x) inside torch.autocast(x.device.type, dtype=amp_dtype)")
checks.check_close(_loss, _ref_loss, "the returned loss", rtol=3e-2,
                   hint="return the loss itself, not the scaled loss")
for _p, _e, _n in zip(_net.parameters(), _expected, ["weight", "bias"]):
    checks.check_close(_p.detach(), _e, f"the {_n} after one SGD step", rtol=5e-2, atol=3e-3)
_ref_loss, _expected = _sgd_reference(_net, _x, _y, lr=0.5)
amp_train_step(_net, _x, _y, F.cross_entropy, _opt, torch.amp.GradScaler(device.type, enabled=False),
               torch.bfloat16)
for _p, _e, _n in zip(_net.parameters(), _expected, ["weight", "bias"]):
    checks.check_close(_p.detach(), _e, f"the {_n} after a second SGD step", rtol=5e-2, atol=3e-3,
                       hint="clear the gradients at the start of every step")
### BEGIN HIDDEN TESTS
torch.manual_seed(2)
_net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
_opt = torch.optim.SGD(_net.parameters(), lr=0.5)
_scaler = torch.amp.GradScaler(device.type, init_scale=1024.0)
for _step in range(2):  # the second step would reveal gradients left over from the first
    _ref_loss, _expected = _sgd_reference(_net, _x, _y, lr=0.5)
    _loss = amp_train_step(_net, _x, _y, F.cross_entropy, _opt, _scaler, torch.bfloat16)
    checks.check_close(_loss, _ref_loss, f"the loss of step {_step + 1} with a scaler", rtol=3e-2,
                       hint="return loss.item(), not the scaled loss")
    for _i, (_p, _e) in enumerate(zip(_net.parameters(), _expected)):
        checks.check_close(_p.detach(), _e, f"parameter {_i} after step {_step + 1} with scale 1024",
                           rtol=5e-2, atol=3e-3,
                           hint="backward on scaler.scale(loss), then scaler.step(optimizer) "
                                "(which unscales); clear the gradients first")
checks.check_equal(_scaler.get_scale(), 1024.0, "the scale after two clean steps")
_before = [p.detach().clone() for p in _net.parameters()]
_xbad = _x.clone()
_xbad[0, 0] = float("inf")  # the gradients overflow
amp_train_step(_net, _xbad, _y, F.cross_entropy, _opt, _scaler, torch.bfloat16)
for _p, _b in zip(_net.parameters(), _before):
    checks.check_equal(_p.detach(), _b, "the parameters after a step with inf gradients",
                       hint="scaler.step(optimizer) skips the update when gradients overflow")
checks.check_equal(_scaler.get_scale(), 512.0, "the scale after an overflow",
                   hint="call scaler.update() after scaler.step(optimizer)")
_ref_loss, _expected = _sgd_reference(_net, _x, _y, lr=0.5)
_dtypes = []
_hook = _net[0].register_forward_hook(lambda mod, inp, out: _dtypes.append(out.dtype))
_loss = amp_train_step(_net, _x, _y, F.cross_entropy, _opt,
                       torch.amp.GradScaler(device.type, init_scale=256.0), torch.float16)
_hook.remove()
checks.check_equal(_dtypes, [torch.float16], "the linear output's dtype with amp_dtype=float16",
                   hint="use dtype=amp_dtype, do not hard-code bfloat16")
checks.check_close(_loss, _ref_loss, "the loss with float16", rtol=1e-2)
for _i, (_p, _e) in enumerate(zip(_net.parameters(), _expected)):
    checks.check_close(_p.detach(), _e, f"parameter {_i} after a float16 step", rtol=2e-2, atol=1e-3)
### END HIDDEN TESTS

# %% [markdown]
# With your step, a fair comparison on real training: the same MLP trained for 8 epochs on
# the digits in float32 and with AMP (float16 + scaling on a GPU, bfloat16 on a CPU). Same
# seed, same batches; we compare test accuracy and time per epoch.

# %% tags=["autograde-skip"]
def train_digits(step, epochs=8, seed=0):
    """Train a fresh MLP on the digits with step(model, xb, yb, optimizer); accuracy, s/epoch."""
    torch.manual_seed(seed)
    model = make_mlp(width=256, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(X_train), device=device).split(64):
            step(model, X_train[idx], y_train[idx], optimizer)
    seconds = (time.perf_counter() - start) / epochs
    with torch.inference_mode():
        accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
    return accuracy, seconds


def fp32_step(model, x, y, optimizer):
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
runs = {"float32": train_digits(fp32_step),
        "AMP": train_digits(lambda m, x, y, o: amp_train_step(m, x, y, F.cross_entropy, o, scaler,
                                                               amp_dtype))}
for name, (acc, sec) in runs.items():
    print(f"{name:>8}: test accuracy {acc:.1%}, {sec * 1e3:.0f} ms per epoch")

# %% [markdown]
# The accuracies agree to within a few test images: 16-bit arithmetic in the forward and
# backward passes does not hurt this model, because the weights and their updates stay in
# float32. The time per epoch follows the hardware verdict of the measurement above. Mixed
# precision pays off where matrix products dominate the time — large models, large batches —
# on hardware that has 16-bit units.
#
# ### 14.2.3 Gradient checkpointing
#
# Backpropagation needs, for every layer, what its backward formula uses — usually the layer's
# input or output. For a chain of $L$ blocks, all $L$ activations are kept from the forward to
# the backward pass, so activation memory grows linearly with depth (and with batch size).
#
# **Checkpointing** keeps only the inputs of a few segments. Split the $L$ blocks into $k$
# segments; in the forward pass, run each segment without keeping its internals, keeping only
# its input. In the backward pass, when the gradient reaches a segment, run its forward again
# from the kept input (now keeping the internals) and backpropagate through it. Memory while
# training is about
#
# $$\underbrace{k}_{\text{segment inputs}} + \underbrace{L/k}_{\text{one segment's internals}}
# \quad\text{activations, smallest at } k = \sqrt{L},$$
#
# instead of $L$, for the price of one extra forward pass — in theory about a third more
# compute, since the backward pass costs about twice the forward.
#
# `torch.utils.checkpoint.checkpoint(fn, *inputs, use_reentrant=False)` runs `fn(*inputs)` as one
# such segment. Always pass `use_reentrant=False`: the older "reentrant" implementation drops
# the parameters' gradients, with only a warning, when no input requires grad (the usual case
# for the first segment!), and PyTorch asks you to choose explicitly. A 16-block network, without and with a
# checkpoint around the whole of it:

# %%
def make_blocks(n_blocks=16, width=256):
    """n_blocks blocks Linear(width, width) + Tanh, in an nn.Sequential on `device`."""
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh())
                           for _ in range(n_blocks)]).to(device)


deep = make_blocks()
xd = torch.randn(128, 256, device=device)  # (B, width)
plain_kept = saved_bytes(lambda: deep(xd), deep.parameters())
ckpt_kept = saved_bytes(lambda: checkpoint(deep, xd, use_reentrant=False), deep.parameters())
out_plain, out_ckpt = deep(xd), checkpoint(deep, xd, use_reentrant=False)
g_plain = torch.autograd.grad(out_plain.sum(), deep[0][0].weight)[0]
g_ckpt = torch.autograd.grad(out_ckpt.sum(), deep[0][0].weight)[0]
print(f"kept for backward: plain {plain_kept / 2**20:.2f} MiB, one checkpoint "
      f"{ckpt_kept / 2**20:.3f} MiB (the input only)")
print(f"same output: {torch.equal(out_plain, out_ckpt)}, "
      f"max gradient difference: {(g_plain - g_ckpt).abs().max().item():.1e}")

# %% [markdown]
# One checkpoint around everything keeps just the input — but its backward then recomputes all
# 16 blocks at once, so the peak is as high as without checkpointing. The useful middle ground
# is a few segments, which is your next exercise. (PyTorch ships
# `torch.utils.checkpoint.checkpoint_sequential` for `nn.Sequential`; writing it yourself shows
# exactly what it does.)
#
# ### Exercise 14.2 — Checkpoint a network in segments (★★★, 4 points)
#
# **Goal:** run an `nn.Sequential` of blocks in `segments` checkpointed segments.
#
# `checkpointed_forward(blocks, x, segments)`:
# - `blocks`: an `nn.Sequential` of $L$ modules; `x`: its input; `segments`: an int $k$ with
#   $1 \le k \le L$, otherwise raise `ValueError`;
# - split the blocks into $k$ **consecutive** segments whose lengths differ by at most one, the
#   longer ones first (for $L = 7$, $k = 3$: lengths 3, 2, 2 — like `torch.tensor_split`);
# - run each segment with `checkpoint(segment, h, use_reentrant=False)`, feeding each output to
#   the next segment, and return the last output.
#
# **Tests check:** the output and the gradients (of the parameters, and of `x` when it requires
# grad) equal those of `blocks(x)`; that exactly the $k$ segment inputs are kept for backward
# (counted with saved-tensor hooks: $k \times B \times \text{width} \times 4$ bytes for float32
# blocks of equal width); $k = 1$, $k = L$, uneven splits such as $L = 9$, $k = 4$; the
# `ValueError`; that nothing is written to stderr (no warnings).
#
# **Hints:** slicing an `nn.Sequential` gives an `nn.Sequential`: `blocks[2:5]`. Segment
# lengths: `L // k + 1` for the first `L % k` segments, `L // k` for the others; or take the
# boundaries from `torch.tensor_split(torch.arange(L), k)`.

# %% nbgrader={"grade": false, "grade_id": "ex14_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def checkpointed_forward(blocks, x, segments):
    """blocks(x), computed in `segments` checkpointed consecutive segments.

    Args:
        blocks: nn.Sequential of L modules.
        x: input tensor of blocks[0].
        segments: int, 1 <= segments <= L.
    Returns:
        the output of the last block (same values as blocks(x)).
    """
    ### BEGIN SOLUTION
    n = len(blocks)
    if not 1 <= segments <= n:
        raise ValueError(f"segments must be between 1 and {n}, got {segments}")
    h, start = x, 0
    for i in range(segments):
        stop = start + n // segments + (1 if i < n % segments else 0)
        h = checkpoint(blocks[start:stop], h, use_reentrant=False)
        start = stop
    return h
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_2_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def _kept_bytes(fn, params):
    """The test's own count of bytes saved for backward while fn() runs, and fn()'s result."""
    skip, kept = {p.untyped_storage().data_ptr() for p in params}, {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in skip:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return sum(kept.values()), result


def _check_segments(n_blocks, k, batch=8, width=32, input_grad=False):
    torch.manual_seed(10 * n_blocks + k)
    blocks = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh())
                             for _ in range(n_blocks)]).to(device)
    x = torch.randn(batch, width, device=device, requires_grad=input_grad)
    params = list(blocks.parameters())
    wrt = params + ([x] if input_grad else [])
    kept, out = _kept_bytes(lambda: checkpointed_forward(blocks, x, k), params)
    expected_out = blocks(x)
    checks.check_close(out, expected_out, f"checkpointed_forward with L={n_blocks}, k={k}",
                       rtol=1e-5, atol=1e-6, hint="every block must run once, in order")
    got, want = torch.autograd.grad(out.sum(), wrt), torch.autograd.grad(expected_out.sum(), wrt)
    for i, (g, w) in enumerate(zip(got, want)):
        checks.check_close(g, w, f"gradient {i} with L={n_blocks}, k={k}", rtol=1e-5, atol=1e-6,
                           hint="do not detach between segments; use use_reentrant=False")
    checks.check_equal(kept, k * batch * width * 4, f"bytes kept for backward, L={n_blocks}, k={k}",
                       hint="exactly one checkpoint(...) per segment: only segment inputs are kept")


_check_segments(6, 3)
### BEGIN HIDDEN TESTS
_check_segments(6, 1)
_check_segments(6, 6)
_check_segments(9, 4)
_check_segments(7, 3, input_grad=True)
_check_segments(5, 2, batch=3, width=16, input_grad=True)
_blocks = nn.Sequential(nn.Linear(4, 4), nn.Tanh()).to(device)
for _bad in (0, 3):
    checks.check_raises(lambda: checkpointed_forward(_blocks, torch.randn(2, 4, device=device), _bad),
                        ValueError, f"checkpointed_forward(blocks of length 2, x, {_bad})")
### END HIDDEN TESTS

# %% [markdown]
# Your function on the 16-block network, for every number of segments that divides 16. Left:
# the bytes kept between the forward and the backward pass (measured), and an estimate of the
# peak during backward (kept + the internals of one segment being recomputed, also measured).
# Right: the time of a forward + backward pass.

# %% tags=["autograde-skip"]
def fwd_bwd(fn):
    deep.zero_grad(set_to_none=True)
    fn().sum().backward()


ks = [1, 2, 4, 8, 16]
kept_mib, peak_mib = [], []
for k in ks:
    kept_mib.append(saved_bytes(lambda: checkpointed_forward(deep, xd, k), deep.parameters()) / 2**20)
    one_segment = saved_bytes(lambda: deep[: len(deep) // k](xd), deep.parameters()) / 2**20
    peak_mib.append(kept_mib[-1] + one_segment)
ckpt_seconds = compare({"plain": lambda: fwd_bwd(lambda: deep(xd)),
                        **{k: (lambda k=k: fwd_bwd(lambda: checkpointed_forward(deep, xd, k)))
                           for k in ks}}, rounds=3)
plain_ms, step_ms = ckpt_seconds["plain"] * 1e3, [ckpt_seconds[k] * 1e3 for k in ks]

# %% tags=["autograde-skip"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(ks, kept_mib, "o-", label="kept after forward")
ax1.plot(ks, peak_mib, "s--", label="estimated peak in backward")
ax1.axhline(plain_kept / 2**20, color="gray", ls=":", label="no checkpointing")
ax1.set(xscale="log", xlabel="segments k", ylabel="activation memory (MiB)",
        ylim=(0, 1.6 * plain_kept / 2**20), title="Memory of 16 checkpointed blocks")
ax2.plot(ks, step_ms, "o-", label="checkpointed")
ax2.axhline(plain_ms, color="gray", ls=":", label="no checkpointing")
ax2.set(xscale="log", xlabel="segments k", ylabel="forward + backward (ms)",
        ylim=(0, 1.6 * max(step_ms)), title="Time of 16 checkpointed blocks")
for ax in (ax1, ax2):
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(loc="upper center", ncol=2, fontsize=8)
plt.show()
print(f"k=4: peak {peak_mib[2]:.2f} MiB vs {plain_kept / 2**20:.2f} MiB plain, "
      f"time {step_ms[2] / plain_ms:.2f}x")

# %% [markdown]
# The kept memory grows with $k$, the recomputed segment shrinks with $L/k$, and their sum is
# lowest near $k = \sqrt{16} = 4$, at about half of the plain network's memory here. The time
# cannot truly drop below the plain network's — checkpointing does strictly more work — so a
# point below the dotted line is the noise of a busy machine (a reminder to distrust single
# timings). On a quiet machine the overhead is usually larger than the textbook "one extra
# forward": each checkpoint also pays a fixed bookkeeping cost (it saves the random-number
# state so that dropout replays identically, and it hooks into autograd), which weighs on
# blocks as small as these and grows with the number of segments. Use
# checkpointing when memory, not time, limits you — typically to fit a larger batch or a deeper
# model, with large blocks as segments (transformer layers are the classic choice).
#
# ## 14.3 GPU optimization
#
# ### 14.3.1 Data transfer
#
# A GPU computes on its own memory; every batch must cross the PCIe (or NVLink) bus first.
# Three habits keep that crossing cheap:
#
# - **Pinned memory.** The GPU's copy engine can only read *page-locked* ("pinned") host memory.
#   From ordinary (pageable) memory, CUDA first copies into a pinned staging buffer.
#   `DataLoader(..., pin_memory=True)` puts batches in pinned memory directly; chapter 5
#   measured the faster copies.
# - **Asynchronous copies.** From pinned memory, `x.to(device, non_blocking=True)` returns at
#   once: the CPU goes on preparing and queueing the next operations while the copy runs.
#   Operations queued later on the same CUDA stream wait for the copy, so it is safe. (From
#   pageable memory the call waits for the staging copy, whatever `non_blocking` says.)
# - **Stay on the device.** Keep the model, the batch, the loss and the metrics on the GPU.
#   Every `.item()`, `.cpu()`, `print(tensor)` or `if tensor > 0:` makes the CPU *wait* for the
#   GPU to finish everything queued so far: a **synchronization point** that stops the CPU from
#   running ahead and queueing the next step.
#
# The last point is measurable: the same training steps, logging the loss with `.item()` at
# every step, or accumulating it on the device and reading it once.

# %%
def steps_with_logging(model, optimizer, every_step, steps=20):
    total = torch.zeros((), device=device)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        if every_step:
            total += loss.item()  # the CPU waits for the device here
        else:
            total += loss.detach()  # stays on the device: no waiting
    return total.item()


small = make_mlp(width=128, depth=2)
opt_small = torch.optim.SGD(small.parameters(), lr=0.01)
sync_s = compare({every: (lambda every=every: steps_with_logging(small, opt_small, every))
                  for every in (True, False)}, rounds=2)
print(f".item() every step: {sync_s[True] * 1e3:.1f} ms | once at the end: "
      f"{sync_s[False] * 1e3:.1f} ms (20 steps on {device})")

# %% [markdown]
# On a CPU the two are the same up to noise: the CPU executes every operation itself,
# synchronously, so there is nothing to wait for. On a GPU the `.item()` version is slower whenever the steps are
# short, because the CPU can no longer queue work ahead of the GPU. The pinned-memory and
# `non_blocking` pattern, measured only where there is a GPU: a batch copied to the device,
# then a large matrix product queued behind it.

# %% tags=["autograde-skip"]
if device.type == "cuda":
    batch = torch.randn(256, 3, 64, 64)  # about 12 MB of images
    weights = torch.randn(4096, 4096, device=device)
    for name, host in {"pageable": batch, "pinned": batch.pin_memory()}.items():
        def copy_and_compute():
            x = host.to(device, non_blocking=True)  # pinned: returns at once, CPU queues on
            return weights @ weights, x.sum()
        print(f"{name:>8}: copy + independent matmul {measure(copy_and_compute) * 1e3:.2f} ms")
else:
    print("No CUDA device: nothing to transfer. The loader flags would be",
          dict(pin_memory=device.type == "cuda"), "and x.to(device, non_blocking=True).")

# %% [markdown]
# ### 14.3.2 Batch size and utilization
#
# Each training step pays a fixed overhead — Python, the optimizer loop over parameters,
# launching kernels — plus work proportional to the batch. Small batches leave the hardware
# idle between those overheads; larger batches amortise them, until the device is saturated
# and throughput (samples per second) stops growing. On a GPU, `nvidia-smi` shows the
# utilization; a low number usually means the batch is too small or the data loading too slow.
# Measured here for the 3-layer MLP:

# %%
batch_sizes = [1, 4, 16, 64, 256, 1024]
mlp = make_mlp()
opt = torch.optim.SGD(mlp.parameters(), lr=0.01)
X_big, y_big = X_train[:1024], y_train[:1024]  # (1024, 64), (1024,)
step_s = compare({b: (lambda b=b: train_step(mlp, opt, X_big[:b], y_big[:b])) for b in batch_sizes},
                 rounds=1)  # the differences are far larger than the noise
throughput = [b / step_s[b] for b in batch_sizes]
for b, s in zip(batch_sizes, throughput):
    print(f"batch {b:>5}: {s:>9,.0f} samples/s")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(batch_sizes, throughput, "o-")
ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="training throughput (samples/s)",
       title=f"Throughput of a 3-layer MLP on {device}")
ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
plt.show()

# %% [markdown]
# Throughput climbs steeply while the fixed cost per step dominates, and the climb slows as
# the arithmetic takes over; once the device is saturated, a larger batch only uses more
# memory. On a GPU, which has far more arithmetic units to fill, saturation comes at a much
# larger batch. Two cautions: the largest batch that fits is not automatically the best for
# learning (chapter 13: a larger batch usually wants a larger learning rate and a warm-up, and
# may generalize differently), and when memory runs out before saturation, gradient
# accumulation (Section 14.5) and mixed precision come to the rescue.
#
# ### 14.3.3 Multi-GPU training
#
# **Data parallelism** runs a full copy (replica) of the model on each device, gives each a
# different slice of the batch, and averages the gradients so that every replica makes the
# same update. PyTorch has two implementations:
#
# - `nn.DataParallel`: one process, one thread per GPU. Every step it copies the model to all
#   GPUs, scatters the batch from GPU 0 and gathers the outputs back on it; GPU 0 becomes a
#   bottleneck and the threads contend for Python's GIL. Simple, but not recommended.
# - `nn.parallel.DistributedDataParallel` (DDP): **one process per device** (possibly on several
#   machines), each with its own replica built once. At construction DDP broadcasts rank 0's
#   weights so all replicas start equal; during `backward()` it **all-reduces** (averages) the
#   gradients in buckets, overlapping communication with the rest of the backward pass. Every
#   process then runs the same optimizer step on the same averaged gradient, so the replicas
#   stay identical without ever exchanging weights again.
#
# Each process sees its own **shard** of the data, chosen by
# `torch.utils.data.distributed.DistributedSampler` (call `sampler.set_epoch(epoch)` each
# epoch so the shuffling changes). With $W$ processes, equal shards $S_r$ of $B/W$ samples and a
# mean loss, the all-reduced gradient is exactly the full-batch gradient:
#
# $$\frac{1}{W}\sum_{r=1}^{W} \nabla_\theta \frac{W}{B}\sum_{i \in S_r} \ell_i
#   = \nabla_\theta \frac{1}{B}\sum_{i=1}^{B} \ell_i .$$
#
# (Layers that compute statistics over the batch, such as BatchNorm, see only their shard:
# `nn.SyncBatchNorm` synchronizes them.) A DDP script is started once per device, usually by
# `torchrun --nproc_per_node=4 train.py`, which sets the environment variables `RANK`,
# `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` that `init_process_group` reads. The
# communication **backend** is `"nccl"` between NVIDIA GPUs and `"gloo"` on CPUs — so we can run
# the real thing here, with two CPU processes.
#
# The worker function goes in a `.py` file, like a real training script: worker processes must
# be able to import it (with the `"spawn"` start method of macOS and Windows, functions defined
# in a notebook cannot be found by the new process).

# %%
DDP_WORKER = '''
"""One DDP process (rank): what torchrun would start once per device."""
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler


def run(rank, world_size, port, model, x, y, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)  # "nccl" on GPUs
    torch.set_num_threads(1)
    ddp_model = DDP(model)  # broadcasts rank 0's weights; all-reduces gradients in backward
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world_size, rank=rank,
                                 shuffle=False)
    shard = list(sampler)  # this rank's sample indices
    loss = F.cross_entropy(ddp_model(x[shard]), y[shard])
    loss.backward()  # after this, every rank holds the averaged gradient
    grads = {name: p.grad for name, p in model.named_parameters()}
    torch.save({"shard": shard, "grads": grads}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()
'''
(WORKDIR / "ddp_worker.py").write_text(DDP_WORKER)
sys.path.insert(0, str(WORKDIR))
import ddp_worker  # noqa: E402

# %% [markdown]
# The launch: `torch.multiprocessing.start_processes` starts two processes that each run
# `ddp_worker.run(rank, ...)`. Forking is fastest, because the children inherit the
# already-imported PyTorch; we fork on Linux, unless CUDA has been initialised (a forked child
# cannot use it), and spawn fresh processes otherwise. The model and the batch live on the CPU here.

# %% tags=["autograde-skip"]
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


import torch._dynamo  # noqa: E402,F401  -- DDP imports it on first use: once here, not per worker

torch.manual_seed(0)
ddp_net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))  # CPU
x_ddp, y_ddp = X_train[:64].cpu(), y_train[:64].cpu()
method = "fork" if sys.platform.startswith("linux") and not torch.cuda.is_initialized() else "spawn"
start = time.perf_counter()
mp.start_processes(ddp_worker.run, args=(2, free_port(), ddp_net, x_ddp, y_ddp, str(WORKDIR)),
                   nprocs=2, start_method=method)
print(f"2 DDP processes ({method}) ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# Each rank saved its shard and its gradients after `backward()`. Compare them with one process
# computing the gradient of the full batch of 64:

# %% tags=["autograde-skip"]
ranks = [torch.load(WORKDIR / f"rank{r}.pt") for r in range(2)]
F.cross_entropy(ddp_net(x_ddp), y_ddp).backward()  # single process, full batch
print("rank 0 shard starts", ranks[0]["shard"][:4], "| rank 1 shard starts", ranks[1]["shard"][:4])
for name, p in ddp_net.named_parameters():
    vs_full = (ranks[0]["grads"][name] - p.grad).abs().max().item()
    between = (ranks[0]["grads"][name] - ranks[1]["grads"][name]).abs().max().item()
    print(f"{name:>8}: |DDP - full batch| <= {vs_full:.1e}, |rank 0 - rank 1| = {between:.1e}")

# %% [markdown]
# Both ranks hold *identical* gradients (difference exactly 0: the all-reduce gives everyone
# the same numbers), and they equal the single-process full-batch gradient up to float32
# rounding (the sums are added in a different order). Training on $W$ devices is therefore
# training with a batch $W$ times larger, spread over $W$ devices: ideally $W$ times faster,
# minus the time spent communicating. Now do by hand, in one process, what DDP just did.
#
# ### Exercise 14.3 — Data parallelism by hand (★★★, 3 points)
#
# **Goal:** simulate DDP's gradient computation for `world_size` ranks in a single process.
#
# `ddp_gradients(model, loss_fn, x, y, world_size)` returns `{name: averaged gradient}` for
# every `name, p in model.named_parameters()`:
# - raise `ValueError` if `len(x)` is not divisible by `world_size` (we want equal shards);
# - rank `r` takes the samples `r, r + world_size, r + 2·world_size, …` — what
#   `DistributedSampler(shuffle=False)` gives it;
# - each rank works on its **own replica**, a `copy.deepcopy(model)`: it computes
#   `loss_fn(replica(x_r), y_r)` on its shard and calls `backward()`;
# - the all-reduce: average each parameter's gradient over the ranks.
#
# `model` itself must not change: its parameters and their `.grad` stay as they were.
#
# **Tests check:** the result against the full-batch gradient of `loss_fn(model(x), y)` (MSE
# and cross-entropy, world sizes 1, 2, 3, 4 and 8); which targets each rank's loss receives,
# against `DistributedSampler`; that `model.grad` stays `None`; the `ValueError`.
#
# **Hints:** `x[r::world_size]` is rank `r`'s shard. Collect each replica's
# `named_parameters()` gradients, then `torch.stack([...]).mean(0)` per name.

# %% nbgrader={"grade": false, "grade_id": "ex14_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddp_gradients(model, loss_fn, x, y, world_size):
    """The gradients DDP would leave on every rank, computed in one process.

    Args:
        model: nn.Module (left unchanged).
        loss_fn: loss_fn(output, target) -> scalar mean loss.
        x, y: the global batch, (N, ...) and (N, ...), N divisible by world_size.
        world_size: number of simulated ranks W.
    Returns:
        dict {parameter name: tensor shaped like the parameter}, the mean over ranks.
    """
    ### BEGIN SOLUTION
    if len(x) % world_size != 0:
        raise ValueError(f"len(x) = {len(x)} is not divisible by world_size = {world_size}")
    per_rank = []
    for rank in range(world_size):
        replica = copy.deepcopy(model)
        replica.zero_grad(set_to_none=True)
        loss_fn(replica(x[rank::world_size]), y[rank::world_size]).backward()
        per_rank.append({name: p.grad for name, p in replica.named_parameters()})
    return {name: torch.stack([g[name] for g in per_rank]).mean(0) for name in per_rank[0]}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_3_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_ddp(net, loss_fn, x, y, world_size):
    names = [n for n, _ in net.named_parameters()]
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    ref = torch.autograd.grad(loss_fn(net(x), y), list(net.parameters()))  # full batch
    got = ddp_gradients(net, loss_fn, x, y, world_size)
    checks.check_type(got, dict, "the result of ddp_gradients")
    checks.check_equal(sorted(got), sorted(names), "the keys of the result",
                       hint="one entry per name of model.named_parameters()")
    for name, r in zip(names, ref):
        checks.check_close(got[name], r, f"the averaged gradient of {name} (W={world_size})",
                           rtol=1e-4, atol=1e-6, hint="average (not sum) the ranks' gradients")
    for name, p in net.named_parameters():
        checks.check(p.grad is None, f"model's own {name}.grad must stay None.",
                     hint="each rank backpropagates through its own copy.deepcopy(model)")
        checks.check_equal(p.detach(), before[name], f"model's {name} after ddp_gradients")


torch.manual_seed(4)
_net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).to(device)
_check_ddp(_net, F.mse_loss, torch.randn(8, 5, device=device), torch.randn(8, 1, device=device), 2)
### BEGIN HIDDEN TESTS
for _w in (1, 4, 8):
    _check_ddp(_net, F.mse_loss, torch.randn(16, 5, device=device),
               torch.randn(16, 1, device=device), _w)
_clf = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).to(device)
_check_ddp(_clf, F.cross_entropy, torch.randn(12, 6, device=device),
           torch.randint(0, 3, (12,), device=device), 3)
_seen = []


def _recording_mse(out, target):
    _seen.append(target.flatten().tolist())
    return F.mse_loss(out, target)


ddp_gradients(_net, _recording_mse, torch.randn(12, 5, device=device),
              torch.arange(12.0, device=device).unsqueeze(1), 3)  # targets = sample indices
_want = [[float(i) for i in torch.utils.data.distributed.DistributedSampler(
    range(12), num_replicas=3, rank=r, shuffle=False)] for r in range(3)]
checks.check_equal(_seen, _want, "the targets seen by ranks 0, 1, 2 (sample indices)",
                   hint="rank r takes samples r, r + world_size, ... (x[r::world_size])")
checks.check_raises(lambda: ddp_gradients(_net, F.mse_loss, torch.randn(10, 5, device=device),
                                          torch.randn(10, 1, device=device), 3),
                    ValueError, "ddp_gradients with 10 samples and 3 ranks")
### END HIDDEN TESTS

# %% [markdown]
# ## 14.4 DataLoader optimization
#
# Chapter 5 measured the basics: worker processes load batches in parallel, waiting (I/O)
# overlaps perfectly, CPU-bound transforms scale up to the number of cores, and starting
# workers costs time at every epoch unless `persistent_workers=True`. What matters for
# training speed is the **overlap** with computation: while the main process trains on batch
# $t$, the workers already prepare batches $t+1, t+2, \dots$ — each worker keeps up to
# `prefetch_factor` (default 2) batches in flight. Without workers, loading and computing take
# turns, and the epoch lasts their **sum**; with enough workers it approaches their **maximum**.
#
# The experiment: a dataset whose samples take half a millisecond to "read" (a sleep standing
# in for a disk or a network) plus a little CPU work, in an importable module as Section 14.3.3
# explained, and a training step that takes roughly as long as loading a batch.

# %%
SLOW_DATA = '''
"""A digits dataset that is slow to read, like files on a busy disk."""
import time

import torch
from torch.utils.data import Dataset


class SlowDigits(Dataset):
    def __init__(self, x, y, latency=0.0005):
        self.x, self.y, self.latency = x, y, latency

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        time.sleep(self.latency)  # waiting for the storage: no CPU used
        noise = 0.05 * torch.randn(self.x.shape[1])  # a light augmentation: some CPU work
        return (self.x[i] + noise).clamp(0, 1), self.y[i]
'''
(WORKDIR / "slow_data.py").write_text(SLOW_DATA)
import slow_data  # noqa: E402

slow_ds = slow_data.SlowDigits(X_train[:192].cpu(), y_train[:192].cpu())  # 6 batches of 32

# %% [markdown]
# We time an epoch of 6 batches of 32 in two parts: the **start-up**, until the first batch is
# ready, and then the **time per batch** for the other five (fetching and training). Besides
# the real loop with `num_workers` = 0, 1, 2 (with the default `prefetch_factor` of 2) and with
# 2 workers and `prefetch_factor=4`, we time loading alone and computing alone (on batches
# already in memory). `persistent_workers` stays off, so every epoch starts its workers anew.
# As with `compare`, the settings take turns for two rounds and each keeps its better epoch.

# %% tags=["autograde-skip"]
worker_mlp = make_mlp(width=1024, depth=3)
worker_opt = torch.optim.SGD(worker_mlp.parameters(), lr=0.01)
in_memory = [(X_train[i:i + 32], y_train[i:i + 32]) for i in range(0, 192, 32)]


def epoch_profile(batches, train=True):
    """(seconds until the first batch is ready, seconds per batch for the others) of an epoch."""
    def step(batch):
        if train:
            xw, yw = batch
            train_step(worker_mlp, worker_opt, xw.to(device, non_blocking=True),
                       yw.to(device, non_blocking=True))

    start = time.perf_counter()
    it = iter(batches)  # a DataLoader starts its workers here
    first = next(it)
    startup = time.perf_counter() - start
    step(first)
    start, count = time.perf_counter(), 0
    for batch in it:
        step(batch)
        count += 1
    return startup, (time.perf_counter() - start) / count


def slow_loader(workers, prefetch=None):
    extra = {"prefetch_factor": prefetch} if workers else {}
    return DataLoader(slow_ds, batch_size=32, num_workers=workers,
                      pin_memory=device.type == "cuda", **extra)


# %% tags=["autograde-skip"]
settings = {"load only": (slow_loader(0), False), "compute only": (in_memory, True)}
for workers, prefetch in [(0, None), (1, 2), (2, 2), (2, 4)]:
    label = f"workers={workers}" + (f", prefetch={prefetch}" if workers else "")
    settings[label] = (slow_loader(workers, prefetch), True)
profiles = dict.fromkeys(settings, (float("inf"), float("inf")))
for _ in range(2):  # two interleaved rounds; each setting keeps its better epoch
    for label, (batches, train) in settings.items():
        profiles[label] = min(profiles[label], epoch_profile(batches, train), key=sum)
for label, (startup, per_batch) in profiles.items():
    print(f"{label:>24}: start-up {startup * 1e3:6.1f} ms, then {per_batch * 1e3:5.1f} ms per batch")
load_ms, compute_ms = profiles["load only"][1] * 1e3, profiles["compute only"][1] * 1e3

# %% tags=["autograde-skip"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
labels = list(profiles)
colors = ["gray", "gray"] + ["tab:blue"] * (len(labels) - 2)
ax1.barh(labels, [profiles[k][0] * 1e3 for k in labels], color=colors)
ax1.set(xlabel="ms until the first batch is ready", title="Start-up (every epoch)")
ax2.barh(labels, [profiles[k][1] * 1e3 for k in labels], color=colors)
ax2.axvline(load_ms + compute_ms, color="tab:red", ls="--", label="load + compute")
ax2.axvline(max(load_ms, compute_ms), color="tab:green", ls="--", label="max(load, compute)")
ax2.set(xlabel="ms per batch, after the first", title="Steady state")
ax2.legend(loc="upper right", fontsize=8)
ax1.invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# Right panel, the steady state: without workers a batch costs load + compute (red line). A
# worker prefetches the next batches while the main process trains, so loading and computing
# overlap; two workers also load two batches at a time. On a machine with idle cores the time
# per batch then drops toward the longer of the two stages (green line). When the cores are
# busy, the worker processes compete with the training for them and the gain shrinks: on a
# 2-core machine, two workers plus the training process already make three busy processes, and
# other work on the machine can make the gain vanish.
#
# Left panel, the price: every epoch starts its worker processes, which takes far longer than
# loading one batch. Over this 6-batch epoch the start-up eats most of the gain; over a real
# epoch of thousands of batches it is negligible, and `persistent_workers=True` pays it only
# once. The `prefetch_factor` rows differ by about as much as two runs of the same setting do on
# a busy machine (run the cell again to see): once the workers keep up, a deeper queue buys
# little. It helps when loading time varies from batch to batch, and it costs memory (every
# prefetched batch sits in RAM, pinned memory on a GPU machine).
#
# Rules of thumb that follow (and that you should re-measure on your own machine): start with
# `num_workers` equal to the number of cores you can spare, raise it for I/O-bound data (waiting
# costs no CPU), lower it when CPU usage is already at 100 %; use `persistent_workers=True` when
# epochs are short and workers slow to start; set `pin_memory=True` when training on a GPU.
#
# ## 14.5 Memory management
#
# ### 14.5.1 Monitoring memory usage
#
# Training memory has four parts: the **parameters**, their **gradients** (same size), the
# **optimizer state** (SGD with momentum: one buffer per parameter; Adam: two), and the
# **activations** kept for backward, which grow with the batch size and the depth. The first
# three are easy to add up from the tensors themselves:

# %%
def tensor_bytes(tensors):
    """Total bytes of an iterable of tensors (None entries are skipped)."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


mem_model = make_mlp(width=1024, depth=4)
mem_opt = torch.optim.Adam(mem_model.parameters(), lr=1e-3)
batch_x, batch_y = X_train[:512], y_train[:512]
activations = saved_bytes(lambda: F.cross_entropy(mem_model(batch_x), batch_y), mem_model.parameters())
train_step(mem_model, mem_opt, batch_x, batch_y)
usage = {"parameters": tensor_bytes(mem_model.parameters()),
         "gradients": tensor_bytes(p.grad for p in mem_model.parameters()),
         "Adam state": tensor_bytes(v for s in mem_opt.state.values() for v in s.values()),
         "activations (B=512)": activations}
for part, nbytes in usage.items():
    print(f"{part:>20}: {nbytes / 2**20:6.2f} MiB")

# %% [markdown]
# For this model the optimizer state is twice the parameters (Adam keeps a first and a second
# moment per weight), and parameters + gradients + Adam take 16 bytes per float32 weight before
# a single activation is stored. Activations scale with the batch: here they are small, for a
# convolutional network on large images or a transformer on long sequences they dominate.
#
# On a GPU, PyTorch's caching allocator reports its own numbers:
# `torch.cuda.memory_allocated()` (bytes in live tensors), `torch.cuda.max_memory_allocated()`
# (the peak since `torch.cuda.reset_peak_memory_stats()`), `torch.cuda.memory_reserved()`
# (what the allocator holds from the driver, allocated or cached for reuse) and
# `torch.cuda.memory_summary()`. Measured around the same training step where a GPU exists:

# %% tags=["autograde-skip"]
if device.type == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_step(mem_model, mem_opt, batch_x, batch_y)
    torch.cuda.synchronize()
    print(f"allocated before {before / 2**20:.1f} MiB, peak during the step "
          f"{torch.cuda.max_memory_allocated() / 2**20:.1f} MiB, "
          f"reserved {torch.cuda.memory_reserved() / 2**20:.1f} MiB")
else:
    print("No CUDA device: on the CPU, count tensors as above, or use the profiler's "
          "profile_memory=True (Section 14.6).")

# %% [markdown]
# ### 14.5.2 Reducing memory usage
#
# In order of how often they help:
#
# 1. **Do not build graphs you will not backpropagate through.** Evaluation inside
#    `torch.no_grad()` or `torch.inference_mode()` keeps no activations at all (measured below).
#    Store losses for logging with `loss.item()` or `loss.detach()`, never the loss tensor
#    itself, which keeps its whole graph alive.
# 2. **Smaller batches with gradient accumulation** (the exercise below): the activation memory
#    of a small batch, the gradient of a large one.
# 3. **Mixed precision** (Section 14.2) roughly halves activation memory; **gradient checkpointing**
#    (Section 14.2.3) trades it for computation.
# 4. **Right-sized dtypes** for data: labels as `int64` indices, not one-hot float matrices;
#    images as `uint8` until they are batched and normalized.
# 5. **Free what you no longer need:** `del big_tensor` drops the reference; on a GPU the memory
#    returns to PyTorch's cache, not to the driver, and `torch.cuda.empty_cache()` releases the
#    cache (useful to let *other* processes use it, rarely needed otherwise).

# %%
with torch.no_grad():
    no_grad_kept = saved_bytes(lambda: mem_model(batch_x), mem_model.parameters())
print(f"activations kept: training mode {activations / 2**20:.2f} MiB, no_grad {no_grad_kept} bytes")
for dt in (torch.float32, torch.bfloat16, torch.uint8, torch.int64):
    print(f"  one 224x224 RGB image as {str(dt):>14}: {torch.empty(3, 224, 224, dtype=dt).nbytes:>9,} bytes")

# %% [markdown]
# **Gradient accumulation.** Gradients add up across `backward()` calls (chapter 2). So a
# batch of $B$ samples split into micro-batches $M_1, \dots, M_m$ can be processed one at a
# time: for a mean loss $\mathcal{L} = \frac{1}{B}\sum_{i=1}^{B} \ell_i$,
#
# $$\nabla \mathcal{L} = \sum_{j=1}^{m} \frac{|M_j|}{B}\, \nabla \Big( \frac{1}{|M_j|}
#   \sum_{i \in M_j} \ell_i \Big),$$
#
# so each micro-batch's mean loss is weighted by its share $|M_j|/B$ of the batch before its
# `backward()`, and the optimizer steps once after the last one. Only one micro-batch's
# activations are alive at any moment. When every micro-batch has the same size, the weight is
# simply $1/m$, the "divide the loss by the number of accumulation steps" of the usual recipe —
# which is wrong for a smaller last micro-batch.
#
# ### Exercise 14.4 — Gradient accumulation (★★, 3 points)
#
# **Goal:** compute the full-batch gradient while only ever running small micro-batches.
#
# `accumulate_gradients(model, loss_fn, x, y, micro_batch)`:
# - `loss_fn(output, target)` returns the **mean** loss of a batch;
# - start from clean gradients (stale ones may be there: clear them);
# - run the model on consecutive micro-batches of `micro_batch` samples (the last one may be
#   smaller), never on more samples at once;
# - call `backward()` once per micro-batch on its mean loss weighted by its share of the batch;
# - afterwards every `p.grad` equals the gradient of `loss_fn(model(x), y)`; do **not** update
#   the parameters (that is the optimizer's job, once, after this function);
# - return the full-batch mean loss as a Python float.
#
# **Tests check:** the batch sizes the model sees; the gradients and the loss against the
# full-batch computation, for even and uneven splits (10 samples in micro-batches of 4:
# 4, 4, 2), `micro_batch` ≥ the batch and `micro_batch = 1`; stale gradients present before the
# call; unchanged parameters.
#
# **Hints:** `x.split(micro_batch)` and `y.split(micro_batch)` give the micro-batches. Clear the
# gradients with `model.zero_grad(set_to_none=True)` once, *before* the loop. The weight of a
# micro-batch `xb` is `len(xb) / len(x)`.

# %% nbgrader={"grade": false, "grade_id": "ex14_4_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def accumulate_gradients(model, loss_fn, x, y, micro_batch):
    """Fill every p.grad with the gradient of loss_fn(model(x), y), micro-batch by micro-batch.

    Args:
        model: nn.Module.
        loss_fn: loss_fn(output, target) -> scalar mean loss.
        x, y: the batch, (N, ...) and (N, ...).
        micro_batch: int >= 1, the largest number of samples run at once.
    Returns:
        the mean loss over the N samples, a Python float.
    """
    ### BEGIN SOLUTION
    model.zero_grad(set_to_none=True)
    total = 0.0
    for xb, yb in zip(x.split(micro_batch), y.split(micro_batch)):
        loss = loss_fn(model(xb), yb) * (len(xb) / len(x))
        loss.backward()
        total += loss.item()
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_4_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_accumulation(net, loss_fn, x, y, micro, stale=False):
    sizes = []
    hook = net.register_forward_pre_hook(lambda mod, args: sizes.append(len(args[0])))
    before = [p.detach().clone() for p in net.parameters()]
    ref_loss = loss_fn(net(x), y)
    ref = torch.autograd.grad(ref_loss, list(net.parameters()))  # full batch, no .grad touched
    sizes.clear()
    if stale:
        for p in net.parameters():
            p.grad = torch.full_like(p, 7.0)
    loss = accumulate_gradients(net, loss_fn, x, y, micro)
    hook.remove()
    checks.check_equal(sizes, [len(c) for c in x.split(micro)],
                       f"the batch sizes the model saw ({len(x)} samples, micro_batch={micro})",
                       hint="one forward pass per micro-batch: x.split(micro_batch)")
    checks.check_type(loss, float, "the value returned by accumulate_gradients")
    checks.check_close(loss, ref_loss.item(), "the returned loss", rtol=1e-5,
                       hint="the full-batch mean: the sum of the weighted micro-batch losses")
    for i, (p, r, b) in enumerate(zip(net.parameters(), ref, before)):
        checks.check_grad(p, r, f"parameter {i}", rtol=1e-4, atol=1e-6,
                          hint="weight each micro-batch loss by len(xb) / len(x); clear old "
                               "gradients once, before the loop")
        checks.check_equal(p.detach(), b, f"parameter {i} (must not be updated)")


torch.manual_seed(5)
_net = nn.Linear(6, 3).to(device)
_check_accumulation(_net, F.cross_entropy, torch.randn(12, 6, device=device),
                    torch.randint(0, 3, (12,), device=device), 4)
### BEGIN HIDDEN TESTS
_x, _y = torch.randn(10, 6, device=device), torch.randint(0, 3, (10,), device=device)
_check_accumulation(_net, F.cross_entropy, _x, _y, 4)
_check_accumulation(_net, F.cross_entropy, _x, _y, 4, stale=True)
_check_accumulation(_net, F.cross_entropy, _x, _y, 16)
_check_accumulation(_net, F.cross_entropy, _x, _y, 1)
_reg = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2)).to(device)
_check_accumulation(_reg, F.mse_loss, torch.randn(7, 3, device=device),
                    torch.randn(7, 2, device=device), 3, stale=True)
### END HIDDEN TESTS

# %% [markdown]
# The point of it, measured: the activations alive at once for a batch of 512 and for
# micro-batches of 64 — while the gradient is the same.

# %%
micro_kept = saved_bytes(lambda: F.cross_entropy(mem_model(batch_x[:64]), batch_y[:64]),
                         mem_model.parameters())
print(f"activation memory: batch of 512 {activations / 2**20:.2f} MiB, "
      f"micro-batch of 64 {micro_kept / 2**20:.2f} MiB ({activations / micro_kept:.0f}x less)")

# %% [markdown]
# In a training loop, the optimizer steps once per accumulated batch:
#
# ```python
# for x, y in loader:                      # loader yields the large batches
#     accumulate_gradients(model, loss_fn, x, y, micro_batch=64)
#     optimizer.step()
# ```
#
# (with a loader of micro-batches instead, call `backward()` on each, and step and zero the
# gradients every $m$ batches). One caveat: BatchNorm computes its statistics per micro-batch,
# so accumulation is exact only for models without batch statistics.
#
# ## 14.6 Profiling and bottleneck analysis
#
# ### 14.6.1 Simple timing, done honestly
#
# Three traps, each visible on any machine:
#
# 1. **The first call is slow.** Allocating memory, choosing algorithms, initializing
#    libraries: all happen once. Never time a single first call.
# 2. **GPUs are asynchronous.** A CUDA call queues work and returns; `time.perf_counter()` read
#    right after measures the queueing. Call `torch.cuda.synchronize()` before each clock read
#    (chapter 1 wrote such a timer).
# 3. **Timings are noisy.** Other processes, caches and frequency scaling make repeats differ;
#    report the **median** of many repeats, which ignores the occasional slow outlier.
#
# Trap 1, measured on a fresh convolutional network:

# %%
conv_net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 64, 10)).to(device)
images = X_train[:256].reshape(-1, 1, 8, 8)  # (B, C, H, W)
start = time.perf_counter()
conv_net(images)
if device.type == "cuda":
    torch.cuda.synchronize()
first_ms = (time.perf_counter() - start) * 1e3
print(f"first call {first_ms:.2f} ms, typical call {measure(lambda: conv_net(images)) * 1e3:.2f} ms")

# %% [markdown]
# Trap 3: two hundred timings of the same call, one by one.

# %%
one_by_one = []
for _ in range(200):
    start = time.perf_counter()
    conv_net(images[:32])
    one_by_one.append((time.perf_counter() - start) * 1e3)
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(one_by_one, bins=np.geomspace(min(one_by_one), max(one_by_one), 50))
for value, label, color in [(statistics.median(one_by_one), "median", "tab:green"),
                            (statistics.mean(one_by_one), "mean", "tab:red")]:
    ax.axvline(value, color=color, ls="--", label=f"{label} {value:.3f} ms")
ax.set(xscale="log", xlabel="time of one forward pass (ms, log scale)", ylabel="count",
       title="200 timings of the same call")
ax.xaxis.set_minor_locator(ticker.LogLocator(subs=(2, 5)))
for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
    axis_format(ticker.FormatStrFormatter("%g"))
ax.legend()
plt.show()

# %% [markdown]
# A narrow peak and a tail to the right (note the log scale): the tail is the machine doing
# something else — on a busy machine it is long. The mean is pulled toward the tail, the
# median stays on the peak. `torch.utils.benchmark` reports the median and the spread
# (interquartile range) and warns when the spread is large:

# %%
print(benchmark.Timer(stmt="net(images)", globals={"net": conv_net, "images": images[:32]},
                      label="conv_net forward", num_threads=1).blocked_autorange(min_run_time=0.2))

# %% [markdown]
# ### 14.6.2 The PyTorch profiler
#
# Timing tells *how long*; the profiler tells *where*. `torch.profiler.profile` records every
# operator (and on GPUs, every CUDA kernel) with its time, shapes and memory;
# `record_function("name")` adds your own labels. Its C++ core writes a few diagnostic lines
# straight to the process's error stream, which we silence with a small context manager.

# %%
@contextmanager
def quiet_native_stderr():
    """Silence what C++ libraries write directly to file descriptor 2 (Python's is untouched)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# %%
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
conv_opt = torch.optim.SGD(conv_net.parameters(), lr=0.01)
with quiet_native_stderr():
    with profile(activities=activities, profile_memory=True) as prof:
        for step in range(5):
            with record_function("forward"):
                loss = F.cross_entropy(conv_net(images), y_train[:256])
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                conv_opt.step()
                conv_opt.zero_grad(set_to_none=True)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10,
                                      max_name_column_width=40)
print(table)

# %% [markdown]
# Read the **Self CPU** column: time spent in the operator itself, not in the operators it
# calls (those count in **CPU total**). Our labels appear as rows too, with their totals. On a
# CPU the convolutions and their backward (`convolution_backward`) dominate, as expected for a
# CNN (on a GPU, add the CUDA time columns); the memory columns show which operators
# allocate. In a real project, profile a few
# steps *after* a warm-up with `schedule=torch.profiler.schedule(wait=1, warmup=1, active=3)`,
# and open the timeline: `prof.export_chrome_trace(path)` writes a file for
# `chrome://tracing` or https://ui.perfetto.dev.

# %%
with quiet_native_stderr():
    prof.export_chrome_trace(str(WORKDIR / "trace.json"))
print(f"trace written: {(WORKDIR / 'trace.json').stat().st_size / 1e6:.1f} MB")

# %% [markdown]
# ### 14.6.3 Identifying bottlenecks
#
# Before optimizing operators, find which *stage* of the training step takes the time. The
# recipe: read a clock between the stages of each step and add up the differences per stage —
# synchronizing the device before every reading, or the asynchronous GPU work lands in
# whichever stage happens to wait for it.
#
# ### Exercise 14.5 — Where does the time go? (★★★, 4 points)
#
# **Goal:** a phase-by-phase timer for a training loop.
#
# `time_phases(model, loader, loss_fn, optimizer, n_batches, device, sync)` trains on exactly
# `n_batches` batches of `loader` (which may have more: fetch only those) and returns a dict of
# seconds, summed over the batches:
#
# | key | what runs in it |
# |---|---|
# | `"data"` | getting the next `(x, y)` from the loader |
# | `"transfer"` | `x.to(device, non_blocking=True)`, same for `y` |
# | `"forward"` | `loss = loss_fn(model(x), y)` |
# | `"backward"` | `loss.backward()` |
# | `"optimizer"` | `optimizer.step()` then `optimizer.zero_grad(set_to_none=True)` |
# | `"total"` | wall time of the whole loop, from before the first fetch to after the last step |
#
# Put the model in training mode and clear the gradients once before the loop. Read the clock
# with `time.perf_counter()`, and call `sync()` (a function without arguments that waits for the
# device, such as `torch.cuda.synchronize`) right before **every** clock reading.
#
# **Tests check:** the keys; that the parts add up to no more than the total; which phase
# dominates when the data, the model, the loss, the backward pass or the optimizer is made
# slow on purpose (with sleeps); that `sync` is called before every reading; that exactly
# `n_batches` batches are fetched and `n_batches` correct SGD steps are made.
#
# **Hints:** `batches = iter(loader)` then `x, y = next(batches)` inside a `for` loop over
# `range(n_batches)` fetches exactly what you need. A helper that syncs, reads the clock, adds
# the time since the previous reading to a phase and remembers the new reading keeps it short;
# it needs `nonlocal` for the remembered reading.

# %% nbgrader={"grade": false, "grade_id": "ex14_5_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def time_phases(model, loader, loss_fn, optimizer, n_batches, device, sync=lambda: None):
    """Train on n_batches batches; return seconds per phase (summed) and the total.

    Args:
        model: nn.Module on `device`; loss_fn(output, y) -> scalar loss.
        loader: iterable of (x, y) batches (a DataLoader, a list, a generator).
        optimizer: optimizer of model's parameters.
        n_batches: int, the number of batches to fetch and train on.
        device: where to move x and y.
        sync: function without arguments, called before every clock reading.
    Returns:
        dict with float values for "data", "transfer", "forward", "backward", "optimizer",
        "total".
    """
    ### BEGIN SOLUTION
    times = dict.fromkeys(["data", "transfer", "forward", "backward", "optimizer"], 0.0)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    batches = iter(loader)
    sync()
    start = last = time.perf_counter()

    def lap(phase):
        nonlocal last
        sync()
        now = time.perf_counter()
        times[phase] += now - last
        last = now

    for _ in range(n_batches):
        x, y = next(batches)
        lap("data")
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        lap("transfer")
        loss = loss_fn(model(x), y)
        lap("forward")
        loss.backward()
        lap("backward")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lap("optimizer")
    times["total"] = last - start
    return times
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_5_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
_DELAY, _N = 0.06, 3
_PHASES = ["data", "transfer", "forward", "backward", "optimizer"]


class _Sleepy(nn.Module):
    """A linear layer that takes `delay` seconds longer."""

    def __init__(self, delay=0.0):
        super().__init__()
        self.lin, self.delay = nn.Linear(4, 2), delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.lin(x)


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(_DELAY)
        return grad


class _SlowSGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(self.delay)
        return super().step(closure)


def _run_phases(slow, n_extra=2):
    torch.manual_seed(0)
    fetched, syncs = [], []
    data = [(torch.randn(5, 4), torch.randn(5, 2)) for _ in range(_N + n_extra)]

    def loader():
        for i, batch in enumerate(data):
            time.sleep(_DELAY if slow == "data" else 0.0)
            fetched.append(i)
            yield batch

    net = _Sleepy(_DELAY if slow == "forward" else 0.0).to(device)
    initial = copy.deepcopy(net)
    opt = _SlowSGD(net.parameters(), lr=0.1)
    opt.delay = _DELAY if slow == "optimizer" else 0.0

    def loss_fn(out, target):
        time.sleep(_DELAY if slow == "loss" else 0.0)
        if slow == "backward":
            out = _SlowBackward.apply(out)
        return F.mse_loss(out, target)

    wall = time.perf_counter()
    times = time_phases(net, loader(), loss_fn, opt, _N, device, sync=lambda: syncs.append(1))
    wall = time.perf_counter() - wall
    checks.check_type(times, dict, "the result of time_phases")
    checks.check_equal(sorted(times), sorted(_PHASES + ["total"]), "the keys of the result")
    for key, value in times.items():
        checks.check(isinstance(value, float) and value >= 0, f'times["{key}"] must be a float >= 0.',
                     got=value)
    parts = sum(times[p] for p in _PHASES)
    checks.check(parts <= times["total"] + 1e-6 and times["total"] <= wall + 1e-6,
                 "the phases must add up to at most the total, which is at most the wall time.",
                 "sum(phases) <= total <= wall time", (parts, times["total"], wall),
                 hint="time each phase from the end of the previous one; total from the start")
    checks.check_equal(len(fetched), _N, f"batches fetched from a loader of {_N + n_extra} for n_batches={_N}",
                       hint="fetch exactly n_batches: next(batches) inside for _ in range(n_batches)")
    checks.check(len(syncs) >= 5 * _N, "sync() must be called before every clock reading.",
                 f">= {5 * _N} calls for {_N} batches", len(syncs))
    return times, net, initial, data


def _check_slowest(slow, phase, what, hint, tries=3):
    """`phase` must hold the sleeps and be the largest; a busy machine gets `tries` attempts."""
    for _ in range(tries):  # a sleep is a lower bound; only noise elsewhere can spoil a try
        times = _run_phases(slow)[0]
        if times[phase] >= 0.9 * _N * _DELAY and max(_PHASES, key=times.get) == phase:
            return
    checks.fail(what, f"{phase} >= {0.9 * _N * _DELAY:.2f} s and the largest", times, hint=hint)


_check_slowest("data", "data", "with a loader that sleeps, 'data' must be the largest phase.",
               "read the clock right after next(batches), and restart it after each step")
### BEGIN HIDDEN TESTS
for _slow, _phase in [("forward", "forward"), ("loss", "forward"), ("backward", "backward"),
                      ("optimizer", "optimizer")]:
    _check_slowest(_slow, _phase, f"when the {_slow} is slow, '{_phase}' must be the largest phase.",
                   "the loss belongs to 'forward'; zero_grad and step to 'optimizer'")
_times, _net, _ref, _data = _run_phases(None)  # _ref: a copy of the net before training
for _xb, _yb in _data[:_N]:  # three plain SGD steps
    _grads = torch.autograd.grad(F.mse_loss(_ref(_xb.to(device)), _yb.to(device)),
                                 list(_ref.parameters()))
    with torch.no_grad():
        for _p, _g in zip(_ref.parameters(), _grads):
            _p -= 0.1 * _g
for _p, _r in zip(_net.parameters(), _ref.parameters()):
    checks.check_close(_p.detach(), _r.detach(), "the parameters after n_batches SGD steps",
                       rtol=1e-5, atol=1e-6, hint="zero the gradients after every step")
### END HIDDEN TESTS

# %% [markdown]
# Now a realistic diagnosis with your function: the MLP of Section 14.4 trained from the slow
# dataset, first with `num_workers=0`, then with 2 workers.

# %% tags=["autograde-skip"]
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
breakdowns = {}
for workers in (0, 2):
    loader = slow_loader(workers, 2)
    breakdowns[f"num_workers={workers}"] = time_phases(worker_mlp, loader, F.cross_entropy,
                                                       worker_opt, 6, device, sync)
fig, ax = plt.subplots(figsize=(8, 2.8))
for i, (label, times) in enumerate(breakdowns.items()):
    left = 0.0
    for j, phase in enumerate(["data", "transfer", "forward", "backward", "optimizer"]):
        ax.barh(i, times[phase], left=left, color=f"C{j}", label=phase if i == 0 else None)
        left += times[phase]
ax.set_yticks(range(len(breakdowns)), list(breakdowns))
ax.set(xlabel="seconds for 6 batches", title="Where the training time goes")
ax.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.3))
plt.show()

# %% [markdown]
# Without workers, the largest phase is `data`: the model waits for the loader, and no amount
# of mixed precision would help. With workers, the data phase shrinks to the time the main
# process waits for a batch that is not ready yet (the start-up of the workers is part of the
# first fetch). The general reading of such a breakdown:
#
# | dominant phase | what to try |
# |---|---|
# | data | more workers, cheaper decoding, pre-processed or memory-mapped data, caching |
# | transfer | `pin_memory=True`, `non_blocking=True`, keeping data on the device |
# | forward / backward | mixed precision, larger batches, a smaller model, the profiler for hot operators, `torch.compile` |
# | optimizer | fused or foreach optimizer implementations (`torch.optim.AdamW(..., fused=True)`) |
#
# ## 14.7 Production deployment
#
# ### 14.7.1 Model export
#
# A trained model is Python code plus weights. To serve it without Python — in C++, on a phone,
# in another framework — you export it as a **graph**: the exact sequence of tensor operations,
# with the weights attached. The seed material of this course used TorchScript
# (`torch.jit.trace` / `torch.jit.script`); TorchScript is in maintenance mode, and the current
# path is **`torch.export`**, which traces the model into an `ExportedProgram` of core ATen
# operators. That graph is what ONNX export, AOTInductor (compiled C++ libraries) and
# ExecuTorch (mobile) consume.
#
# A model worth shipping first: an MLP with batch normalization and dropout trained on the
# digits (the two layers that behave differently in training and evaluation).

# %%
torch.manual_seed(0)
digits_model = nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
digits_opt = torch.optim.Adam(digits_model.parameters(), lr=2e-3)
for epoch in range(12):
    for idx in torch.randperm(len(X_train), device=device).split(64):
        train_step(digits_model, digits_opt, X_train[idx], y_train[idx])
digits_model.eval()
with torch.inference_mode():
    fp32_accuracy = (digits_model(X_test).argmax(1) == y_test).float().mean().item()
print(f"test accuracy {fp32_accuracy:.1%}")

# %% [markdown]
# `torch.export.export(model, args, dynamic_shapes=...)` runs the model once on example
# inputs and records the graph. Shapes are specialized to the example unless you declare a
# dimension dynamic with `torch.export.Dim`: we want any batch size.

# %%
batch_dim = torch.export.Dim("batch")
exported = torch.export.export(digits_model, (X_test[:8],), dynamic_shapes=({0: batch_dim},))
print(exported.graph_module.code[:900], "...")

# %% [markdown]
# The graph is plain ATen calls, with the parameters and buffers as inputs. Batch norm appears
# in its evaluation form (the `False` argument: use the running statistics) and dropout with
# `train=False`, an identity, because the model was in `eval()` mode when it was traced. `exported.module()` turns the graph back into a callable module; it must agree with
# the eager model, on batch sizes it has never seen, and after a round trip through a file:

# %%
torch.export.save(exported, WORKDIR / "digits.pt2")
reloaded = torch.export.load(WORKDIR / "digits.pt2").module()
with torch.inference_mode():
    for b in (1, 5, 397):
        diff = (reloaded(X_test[:b]) - digits_model(X_test[:b])).abs().max().item()
        print(f"batch {b:>3}: max |exported - eager| = {diff:.1e}")
export_diff = diff

# %% [markdown]
# ### Exercise 14.6 — Export for serving (★★, 3 points)
#
# **Goal:** export a model so that the exported program serves any batch size and agrees with
# the model in evaluation mode.
#
# `export_for_serving(model, example)` returns the `torch.export.ExportedProgram` of `model`
# traced on the example batch `example` (shape `(B, ...)`), with:
# - the model in **evaluation mode** (and left in it);
# - dimension 0 declared dynamic (`torch.export.Dim`), so any batch size works.
#
# **Tests check:** the type; the outputs of `.module()` against the model in eval mode (the
# eager reference) for batch sizes 1, 3 and 17 on an MLP with BatchNorm and Dropout, and on a
# small CNN; that the model is in eval mode afterwards.
#
# **Hints:** call `model.eval()` before exporting. `dynamic_shapes` has one entry per input:
# `({0: torch.export.Dim("batch")},)` for a single input whose dimension 0 is dynamic.

# %% nbgrader={"grade": false, "grade_id": "ex14_6_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def export_for_serving(model, example):
    """torch.export the model in eval mode, with a dynamic batch dimension.

    Args:
        model: nn.Module taking one tensor of shape (B, ...).
        example: an example input, (B, ...), on the model's device.
    Returns:
        torch.export.ExportedProgram.
    """
    ### BEGIN SOLUTION
    model.eval()
    batch = torch.export.Dim("batch")
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_6_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_export(net, shape):
    net.train()
    with torch.no_grad():  # give batch norm non-trivial running statistics
        for _ in range(3):
            net(torch.randn(16, *shape, device=device) * 2 + 1)
    ep = export_for_serving(net, torch.randn(4, *shape, device=device))
    checks.check_type(ep, torch.export.ExportedProgram, "the result of export_for_serving",
                      hint="return torch.export.export(...)")
    checks.check(not net.training, "the model must be left in eval mode.", hint="model.eval()")
    served = ep.module()
    for b in (1, 3, 17):
        x = torch.randn(b, *shape, device=device)
        with torch.no_grad():
            expected = net.eval()(x)
            try:
                got = served(x)
            except Exception as err:  # noqa: BLE001 -- turned into a teaching message
                checks.fail(f"the exported program fails on a batch of {b}.", "an output",
                            f"{type(err).__name__}: {str(err)[:150]}",
                            hint="declare dimension 0 dynamic: dynamic_shapes=({0: Dim('batch')},)")
        checks.check_close(got, expected, f"the exported model on a batch of {b}", rtol=2e-3,
                           atol=2e-4, hint="export the model in eval mode")


torch.manual_seed(6)
_check_export(nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(32, 3)).to(device), (10,))
### BEGIN HIDDEN TESTS
_check_export(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 36, 5)).to(device), (1, 6, 6))
### END HIDDEN TESTS

# %% [markdown]
# **ONNX.** ONNX is a framework-neutral file format for graphs, run by ONNX Runtime and many
# inference engines. `torch.onnx.export(..., dynamo=True)` builds on `torch.export`; the
# resulting file runs in `onnxruntime` without PyTorch. We check it against eager PyTorch and
# time both on a batch of 256. (The export takes a few seconds; the cell skips itself where the
# `onnx`/`onnxruntime` packages are missing.)

# %% tags=["autograde-skip"]
try:
    import onnxruntime as ort
except ImportError:
    ort = None
    print("onnxruntime is not installed: pip install onnx onnxscript onnxruntime")
if ort is not None:
    cpu_model = copy.deepcopy(digits_model).cpu().eval()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(cpu_model, (X_test[:8].cpu(),), dynamo=True, verbose=False,
                                         dynamic_shapes=({0: torch.export.Dim("batch")},))
    onnx_program.save(str(WORKDIR / "digits.onnx"))
    onnx_seconds = time.perf_counter() - start
    session = ort.InferenceSession(str(WORKDIR / "digits.onnx"), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: X_test[:256].cpu().numpy()}
    with torch.inference_mode():
        eager_out = cpu_model(X_test[:256].cpu()).numpy()
    onnx_diff = np.abs(session.run(None, feed)[0] - eager_out).max()
    print(f"ONNX export {onnx_seconds:.1f} s; max |onnxruntime - eager| = {onnx_diff:.1e}")
    x_cpu = X_test[:256].cpu()

    def eager_predict():
        with torch.inference_mode():
            return cpu_model(x_cpu)

    ort_s = compare({"eager": eager_predict, "onnxruntime": lambda: session.run(None, feed)})
    print(f"batch of 256 on CPU: eager {ort_s['eager'] * 1e3:.3f} ms, "
          f"onnxruntime {ort_s['onnxruntime'] * 1e3:.3f} ms")

# %% [markdown]
# The ONNX model agrees with PyTorch to float32 rounding. Whether ONNX Runtime is faster
# depends on the model and the machine (it fuses operations and uses its own kernels): you
# just measured it for this one.
#
# ### 14.7.2 Inference optimization
#
# Serving has different priorities from training: no gradients, often one request at a time,
# and latency, throughput and model size all matter. The steps, measured on the trained digits
# model where there is something to measure:
#
# 1. **`model.eval()`**: the right behaviour for dropout and batch norm (not a speed-up, a
#    correctness requirement).
# 2. **`torch.inference_mode()`** (or `no_grad`): no graph, no saved activations, less
#    bookkeeping.
# 3. **Batching**: one call for many inputs amortises the per-call overhead (Section 14.3.2).

# %%
xs = X_test[:256]


def batched_predict():
    with torch.inference_mode():
        return digits_model(xs)


def one_by_one_predict():
    with torch.inference_mode():
        return [digits_model(x[None]) for x in xs]


infer_s = compare({"with autograd": lambda: digits_model(xs),  # builds a graph nobody uses
                   "inference_mode": batched_predict, "one at a time": one_by_one_predict},
                  rounds=2)
print(", ".join(f"{name} {sec * 1e3:.2f} ms" for name, sec in infer_s.items()), "for 256 samples; "
      f"one at a time is {infer_s['one at a time'] / infer_s['inference_mode']:.0f}x slower")

# %% [markdown]
# Turning autograd off saves all of the activation memory (Section 14.5) and a little
# bookkeeping — a time difference small enough to drown in the noise of a busy machine.
# Batching saves far more, because the per-call overhead dwarfs the arithmetic of one sample
# through a small model. Servers therefore collect concurrent requests into batches ("dynamic
# batching").
#
# 4. **Lower precision.** Autocast works for inference too (Section 14.2 measured it; on GPUs,
#    16-bit inference is routine). For CPUs, **int8 dynamic quantization** stores the weights of
#    `nn.Linear` (and LSTM) layers as 8-bit integers with a scale per tensor,
#    $w \approx s \cdot q$ with $q \in \{-128, \dots, 127\}$, and quantizes the activations on
#    the fly, batch by batch ("dynamic": no calibration data needed). Products run in int8 with
#    int32 accumulation, then are rescaled to float32. The weights shrink 4×; accuracy usually
#    drops a little. The API, `torch.ao.quantization.quantize_dynamic`, is deprecated in favour
#    of the `torchao` package (its `quantize_` function offers equivalent transformations); it
#    still works and prints deprecation warnings, which we silence.
#
# ### Exercise 14.7 — Quantize and measure the trade-off (★★★, 3 points)
#
# **Goal:** quantize a model's linear layers to int8 and report what it costs and saves.
#
# `quantize_and_compare(model, x, y)` returns `(qmodel, report)`:
# - `qmodel`: `torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)` of an
#   evaluation-mode **CPU copy** `m` of `model` (quantized layers run on the CPU; `model` itself
#   must stay unchanged, on its device);
# - `report`: a dict with
#   - `"fp32_bytes"`, `"int8_bytes"`: the size of each model's `state_dict()` saved with
#     `torch.save` into an `io.BytesIO()` (its `.getbuffer().nbytes`),
#   - `"fp32_acc"`, `"int8_acc"`: the accuracy (a float in [0, 1]) of each model on `x`, `y`
#     (`x` of shape (N, features), `y` class indices of shape (N,)),
#   - `"max_abs_diff"`: the largest absolute difference between the two models' outputs on `x`.
#
# Run the models under `torch.inference_mode()`, and call `quantize_dynamic` inside
# `with warnings.catch_warnings(): warnings.simplefilter("ignore")` to silence its deprecation
# warnings.
#
# **Tests check:** that every `nn.Linear` became an int8 dynamically quantized linear layer;
# that `model` is unchanged; the five numbers against the tests' own measurements; that the
# int8 model is much smaller.
#
# **Hints:** `m = copy.deepcopy(model).cpu().eval()`. Accuracy:
# `(out.argmax(1) == y).float().mean().item()`. Move `x` and `y` to the CPU.

# %% nbgrader={"grade": false, "grade_id": "ex14_7_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quantize_and_compare(model, x, y):
    """int8 dynamic quantization of model's nn.Linear layers, and its size/accuracy report.

    Args:
        model: nn.Module classifier (unchanged by this function).
        x: (N, features) float inputs; y: (N,) int64 class indices.
    Returns:
        (qmodel, report): the quantized CPU model and a dict with "fp32_bytes", "int8_bytes",
        "fp32_acc", "int8_acc", "max_abs_diff".
    """
    ### BEGIN SOLUTION
    fp32 = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = torch.ao.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)

    def size(m):
        buffer = io.BytesIO()
        torch.save(m.state_dict(), buffer)
        return buffer.getbuffer().nbytes

    x, y = x.cpu(), y.cpu()
    with torch.inference_mode():
        out32, out8 = fp32(x), qmodel(x)
    report = {"fp32_bytes": size(fp32), "int8_bytes": size(qmodel),
              "fp32_acc": (out32.argmax(1) == y).float().mean().item(),
              "int8_acc": (out8.argmax(1) == y).float().mean().item(),
              "max_abs_diff": (out32 - out8).abs().max().item()}
    return qmodel, report
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex14_7_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_quantization(net, x, y):
    keys = ["fp32_bytes", "int8_bytes", "fp32_acc", "int8_acc", "max_abs_diff"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n_linear = sum(isinstance(m, nn.Linear) for m in net.modules())
    with warnings.catch_warnings():  # the quantization API warns that it is deprecated
        warnings.simplefilter("ignore")
        qmodel, report = quantize_and_compare(net, x, y)
        checks.check_type(report, dict, "the report")
        checks.check_equal(sorted(report), sorted(keys), "the keys of the report")
        qtype = torch.ao.nn.quantized.dynamic.Linear
        checks.check_equal(sum(isinstance(m, qtype) for m in qmodel.modules()), n_linear,
                           "the number of dynamically quantized linear layers in qmodel",
                           hint="quantize_dynamic(model_copy, {nn.Linear}, dtype=torch.qint8)")
        checks.check(all(m.weight().dtype == torch.qint8 for m in qmodel.modules()
                         if isinstance(m, qtype)), "the quantized weights must be int8.",
                     hint="dtype=torch.qint8")
        checks.check_equal(sum(isinstance(m, nn.Linear) for m in net.modules()), n_linear,
                           "nn.Linear layers left in the original model",
                           hint="quantize a copy: copy.deepcopy(model)")
        for k, v in net.state_dict().items():
            checks.check_equal(v, before[k], f"the original model's {k}")
        fp32 = copy.deepcopy(net).cpu().eval()
        sizes = []
        for m in (fp32, qmodel):
            buffer = io.BytesIO()
            torch.save(m.state_dict(), buffer)
            sizes.append(buffer.getbuffer().nbytes)
        with torch.inference_mode():
            out32, out8 = fp32(x.cpu()), qmodel(x.cpu())
    expected = {"fp32_bytes": sizes[0], "int8_bytes": sizes[1],
                "fp32_acc": (out32.argmax(1) == y.cpu()).float().mean().item(),
                "int8_acc": (out8.argmax(1) == y.cpu()).float().mean().item(),
                "max_abs_diff": (out32 - out8).abs().max().item()}
    for k in keys:
        checks.check_close(float(report[k]), expected[k], f'report["{k}"]', rtol=0.02, atol=1e-6)
    checks.check(report["int8_bytes"] < 0.5 * report["fp32_bytes"],
                 "the int8 model should be less than half the float32 size.",
                 got=(report["int8_bytes"], report["fp32_bytes"]))


torch.manual_seed(7)
_net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10)).to(device)
_check_quantization(_net, torch.randn(300, 64, device=device), torch.randint(0, 10, (300,), device=device))
### BEGIN HIDDEN TESTS
_x = torch.randn(200, 32, device=device)
_teacher = torch.randn(32, 4, device=device)
_net = nn.Sequential(nn.Linear(32, 256), nn.Tanh(), nn.Linear(256, 256), nn.ReLU(),
                     nn.Linear(256, 4)).to(device)
_check_quantization(_net, _x, (_x @ _teacher).argmax(1))
### END HIDDEN TESTS

# %% [markdown]
# The trade-off on the trained digits model: size and test accuracy, float32 against int8.
# Then the latency, for one sample and for a batch of 256, of that model (256 units per layer)
# and of a wider, untrained MLP with 1024 units, to see how the answer depends on the size of
# the layers. Everything runs on the CPU.

# %% tags=["autograde-skip"]
q_digits, q_report = quantize_and_compare(digits_model, X_test, y_test)
for name, key in [("float32", "fp32"), ("int8", "int8")]:
    print(f"{name:>8}: {q_report[key + '_bytes'] / 1e3:4.0f} kB, test accuracy {q_report[key + '_acc']:.1%}")
print(f"max |float32 - int8| logit difference: {q_report['max_abs_diff']:.3f}")
wide = make_mlp(width=1024, depth=2).cpu().eval()  # for timing only
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    q_wide = torch.ao.quantization.quantize_dynamic(wide, {nn.Linear}, dtype=torch.qint8)
models = {"256 units": (copy.deepcopy(digits_model).cpu().eval(), q_digits),
          "1024 units": (wide, q_wide)}

# %% tags=["autograde-skip"]
def predictor(model, x):
    def predict():
        with torch.inference_mode():
            return model(x)
    return predict


x_by_batch = {1: X_test[:1].cpu(), 256: X_test[:256].cpu()}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    q_s = compare({(size, precision, b): predictor(m, x) for size, pair in models.items()
                   for precision, m in zip(("float32", "int8"), pair)
                   for b, x in x_by_batch.items()})
for size in models:
    for b in x_by_batch:
        fp32_ms, int8_ms = q_s[(size, "float32", b)] * 1e3, q_s[(size, "int8", b)] * 1e3
        print(f"{size:>10}, batch {b:>3}: float32 {fp32_ms:7.3f} ms, int8 {int8_ms:7.3f} ms "
              f"-> int8 at {fp32_ms / int8_ms:.2f}x the speed")
int8_speedup = {size: q_s[(size, "float32", 256)] / q_s[(size, "int8", 256)] for size in models}

# %% tags=["autograde-skip"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
colors = ["tab:blue", "tab:orange"]
axes[0].bar(["float32", "int8"], [q_report["fp32_bytes"] / 1e3, q_report["int8_bytes"] / 1e3], color=colors)
axes[0].set(ylabel="size (kB)", title="Size of the digits MLP")
axes[1].bar(["float32", "int8"], [100 * q_report["fp32_acc"], 100 * q_report["int8_acc"]], color=colors)
axes[1].set(ylabel="test accuracy (%)", ylim=(80, 100), title="Accuracy of the digits MLP")
positions = np.arange(len(models))
for i, b in enumerate(x_by_batch):
    ratios = [q_s[(size, "float32", b)] / q_s[(size, "int8", b)] for size in models]
    axes[2].bar(positions + (i - 0.5) * 0.35, ratios, width=0.35, color=f"C{i + 2}", label=f"batch {b}")
axes[2].axhline(1, color="black", lw=1, ls="--")
axes[2].set_xticks(positions, list(models))
axes[2].set(ylabel="int8 speed / float32 speed", title="int8 speed-up by layer width")
axes[2].legend()
plt.tight_layout()
plt.show()
print(f"QUALITY: autocast step {amp_speedup:.2f}x the fp32 speed on {device}; torch.export "
      f"max |diff| {export_diff:.1e}; int8 at batch 256: {int8_speedup['256 units']:.2f}x "
      f"(256 units), {int8_speedup['1024 units']:.2f}x (1024 units) the fp32 speed; digits "
      f"accuracy {q_report['fp32_acc']:.1%} -> {q_report['int8_acc']:.1%}")

# %% [markdown]
# The int8 model is about a quarter of the size, and its accuracy is within a test image or
# two of float32. The latency needs careful reading. Quantizing the activations and rescaling
# the results are fixed costs per call: for one sample through the small model there is too
# little arithmetic to win them back, and int8 is *slower*. The int8 products move four times
# fewer weight bytes and, on CPUs with int8 dot-product instructions (VNNI, AMX), do less work
# per multiply — a gain that grows with the size of the layers: in our measurements, anything
# from a small loss to a modest gain for the 256-unit model on a batch (it varies from run to
# run), a clear win for the 1024-unit one. Transformers and
# LSTMs, whose time is mostly spent in large linear layers, are where dynamic quantization is
# one of the cheapest inference speed-ups on a CPU.
#
# A last tool, deliberately left out of this notebook's measurements: `torch.compile(model)`
# traces the model (with the same machinery as `torch.export`) and generates fused kernels.
# Its first call runs the compiler and is slow; time the later calls, with `measure`, to see
# whether it pays off for your model and hardware.

# %% [markdown]
# ## Concept check (5 points)
#
# Interview-style questions. The tests compute the true answers with PyTorch where they can —
# decide first, then check by experiment in a scratch cell if you like.
#
# 1. `q1_bytes`: the number of bytes of `torch.zeros(1024, 1024, dtype=torch.bfloat16)` (an int).
# 2. `q2_adam_mb`: a model with 10 million float32 parameters is trained with Adam. How many
#    megabytes (1 MB = $10^6$ bytes) do the parameters, their gradients and Adam's two moment
#    buffers take together (activations and Adam's step counters not counted)? (an int)
# 3. `q3_dtype`: which 16-bit dtype can hold $10^5$ without overflowing: `torch.float16` or
#    `torch.bfloat16`? (the dtype object)
# 4. `q4_flushed`: the value (a float) of `torch.tensor(1e-8).to(torch.float16).item()`.
# 5. `q5_global_batch`: DDP on 4 GPUs, a DataLoader batch of 32 per process, and gradient
#    accumulation over 2 micro-batches before each optimizer step. How many samples contribute
#    to each optimizer step? (an int)
# 6. `q6_bottleneck`: a phase breakdown says 60 % of the step time is `data`, 5 % `transfer`,
#    35 % forward + backward + optimizer. What do you try first? **A.** mixed precision;
#    **B.** more DataLoader workers or cheaper data preparation; **C.** a larger batch;
#    **D.** gradient checkpointing.
# 7. `q7_timing`: on a GPU you time `y = model(x)` with `time.perf_counter()` before and after,
#    without any synchronization. You mostly measure: **A.** the time of the forward pass;
#    **B.** the time to queue (launch) its kernels; **C.** the forward pass plus copying `y`
#    back to the CPU; **D.** nothing at all, always 0.

# %% nbgrader={"grade": false, "grade_id": "cc14_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_bytes = ...  # int
q2_adam_mb = ...  # int
q3_dtype = ...  # torch.float16 or torch.bfloat16
q4_flushed = ...  # float
q5_global_batch = ...  # int
q6_bottleneck = ...  # "A", "B", "C" or "D"
q7_timing = ...  # "A", "B", "C" or "D"
### BEGIN SOLUTION
q1_bytes = 2 * 1024 * 1024
q2_adam_mb = 160
q3_dtype = torch.bfloat16
q4_flushed = 0.0
q5_global_batch = 4 * 32 * 2
q6_bottleneck = "B"
q7_timing = "B"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc14_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
for _name, _value, _types in [("q1_bytes", q1_bytes, int), ("q2_adam_mb", q2_adam_mb, (int, float)),
                              ("q3_dtype", q3_dtype, torch.dtype), ("q4_flushed", q4_flushed, (int, float)),
                              ("q5_global_batch", q5_global_batch, int)]:
    checks.check_type(_value, _types, _name)
### BEGIN HIDDEN TESTS
# Every expected answer is computed by PyTorch itself.
checks.check_equal(q1_bytes, torch.zeros(1024, 1024, dtype=torch.bfloat16).nbytes, "q1_bytes")
_lin = nn.Linear(1000, 1000, bias=False)  # one million float32 parameters
_adam = torch.optim.Adam(_lin.parameters())
_lin(torch.randn(2, 1000)).sum().backward()
_adam.step()
_state = _adam.state[_lin.weight]
_per_million = sum(t.nbytes for t in (_lin.weight, _lin.weight.grad, _state["exp_avg"],
                                      _state["exp_avg_sq"]))
checks.check_close(q2_adam_mb, 10 * _per_million / 1e6, "q2_adam_mb", rtol=0.01,
                   hint="4 bytes each: the weight, its gradient, and two Adam moments")
_fits = [dt for dt in (torch.float16, torch.bfloat16) if torch.isfinite(torch.tensor(1e5).to(dt))]
checks.check_equal([q3_dtype], _fits, "q3_dtype")
checks.check_close(q4_flushed, torch.tensor(1e-8).to(torch.float16).item(), "q4_flushed", atol=1e-12)
checks.check_equal(q5_global_batch, 4 * 32 * 2, "q5_global_batch",
                   hint="processes x per-process batch x accumulation steps")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cc14_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for _name, _value in [("q6_bottleneck", q6_bottleneck), ("q7_timing", q7_timing)]:
    checks.check_type(_value, str, _name)
    checks.check(_value.strip().upper() in {"A", "B", "C", "D"}, f"{_name} must be A, B, C or D.",
                 got=_value)
### BEGIN HIDDEN TESTS
# q6: B -- the model waits for data; faster compute would only make it wait longer (14.6.3).
# q7: B -- CUDA calls return once the kernels are queued; synchronize before reading the clock.
checks.check_equal(q6_bottleneck.strip().upper(), "B", "q6_bottleneck")
checks.check_equal(q7_timing.strip().upper(), "B", "q7_timing")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - **Measure first, with honest timers:** warm up, synchronize the device, take the median
#   (`torch.utils.benchmark`); find the dominant phase of the step before optimizing anything,
#   and use `torch.profiler` to find the hot operators inside it.
# - **Mixed precision** runs matrix products in 16 bits under `torch.autocast` and keeps the
#   weights in float32. float16 needs loss scaling (`GradScaler`: scale, unscale, skip on
#   overflow, adapt); bfloat16 has float32's range and does not. It roughly halves activation
#   memory everywhere, but is faster only on hardware with 16-bit units — on a CPU without
#   them it is slower, as measured here.
# - **Gradient checkpointing** keeps only segment inputs and recomputes the rest in backward:
#   memory from $L$ to about $2\sqrt{L}$ activations for one extra forward pass plus some
#   bookkeeping per segment. Use `use_reentrant=False`.
# - **Transfers and synchronizations:** pinned memory and `non_blocking=True` let the CPU keep
#   queueing work while copies run; `.item()` and `.cpu()` in the loop make the CPU wait for
#   the GPU.
# - **Batch size** amortises per-step overhead until the device saturates; **DataLoader
#   workers** overlap loading with training (epoch ≈ max instead of sum, when idle cores
#   exist); `prefetch_factor` matters little once the workers keep up.
# - **DDP** runs one process per device on its own data shard and all-reduces (averages) the
#   gradients during backward: with equal shards, exactly the full-batch gradient.
# - **Memory** = parameters + gradients + optimizer state (Adam: 16 bytes per float32 weight in
#   all) + activations; cut activations with `no_grad`/`inference_mode`, gradient accumulation
#   (weight micro-batches by their size), mixed precision and checkpointing.
# - **Deployment:** `torch.export` (dynamic batch via `Dim`, in `eval()` mode) and ONNX, always
#   checked against the eager model; for inference, `inference_mode`, batching, and int8 dynamic
#   quantization (4× smaller linear weights for a small accuracy cost) — measured, not assumed.
#
# **Next:** chapter 15 puts everything together in the grand challenges.
