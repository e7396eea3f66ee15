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
# # Grand challenge 5 — An end-to-end pipeline
#
# A notebook is a good place to find out *whether* something works. It is a poor place to
# keep it working: cells run out of order, settings hide in variables, and nobody else can
# rerun your result. In this challenge you turn a small digits classifier into a **project**
# that someone else could pick up: a folder with a YAML config, a training script that logs
# what it does, seeds that make two runs bit-identical, checkpoints that resume a crashed run
# exactly, an exported model served by an inference script that does not even need PyTorch,
# and unit tests that prove they can catch bugs. The notebook builds that folder in a
# temporary directory, writes *your* functions into it, and runs the scripts as separate
# processes, exactly as you would from a terminal.
#
# **What you will learn**
# - to validate a YAML configuration so that a bad value fails at once, with a message that
#   names the field (and the YAML traps that make `1e-3` a string);
# - to log with the `logging` module to a file and the console, instead of `print`;
# - to make training reproducible across processes (seeds, generators, deterministic mode)
#   and to write checkpoints that resume training bit for bit;
# - to export a model with `torch.export` and ONNX and check it against eager PyTorch, then
#   serve it with a standalone inference script;
# - to run a project's own tests with pytest, and to check that the tests test something
#   by running them against deliberately broken code (mutation testing).
#
# **Prerequisites:** chapter 4 (the training loop), chapter 12 (configurations, reproducibility,
# checkpoints), chapter 14 (`torch.export`, ONNX). Basic command-line Python (`argparse`,
# scripts, `python -m pytest`) helps.
#
# **Expected time:** about 4 hours. The notebook runs in well under a minute on a laptop CPU;
# most of that time is the handful of separate Python processes it starts.
#
# **The target.** At the end, the project must: reject bad configs with a message naming the
# field; produce **bit-identical** checkpoints from two independent processes (this notebook's
# kernel and `train.py`), and from a run resumed from a checkpoint in a new process; export a
# model whose `torch.export`
# and ONNX outputs agree with eager PyTorch within $10^{-5}$ at any batch size; pass its own
# tests and have those tests fail on broken versions of the code; and serve a model that
# reaches **≥ 93 % accuracy on the held-out test split** (300 digits no step of training
# or model selection sees), beating the **nearest-centroid baseline** computed below.
#
# The graded steps are **Exercises 15.51 to 15.56**: write your code where it says
# `# YOUR CODE HERE`, then run the test cell below it. Hidden tests run when the notebook is
# graded; the three questions of the Analysis section at the end are graded by hand.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device and sets the plot style. One CPU thread keeps timings steady on a shared machine.

# %%
import contextlib
import copy
import inspect
import io
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

import helpers
from helpers import checks
from helpers.data import digits

device = helpers.setup(seed=0, threads=1)
print(f"PyTorch {torch.__version__}, PyYAML {yaml.__version__}, pytest {pytest.__version__}; "
      f"computing on {device}")

# %% [markdown]
# ## 1. The project folder and the data
#
# The seed material of this course sketches a large layout (`data/raw`, `models/`,
# `training/`, `configs/`, `notebooks/`, `tests/` ...). Ours is the same idea at the size of
# the problem, one folder per job:
#
# ```
# project/
#   configs/base.yaml      the experiment: every number that defines a run
#   data/digits.pt         the prepared splits (made once, by the notebook, from the raw data)
#   pipeline/core.py       the library: config, logging, seeding, training, checkpoints, export
#   train.py               entry point: config -> run folder (log, metrics, checkpoints)
#   predict.py             entry point: exported model + input file -> predictions
#   tests/                 pytest unit tests of pipeline/core.py
#   runs/<name>/           one folder per run: config.yaml, train.log, metrics.jsonl, epoch_<k>.pt
#   artifacts/             exported models (model.pt2, model.onnx)
#   README.md, requirements.txt, pytest.ini
# ```
#
# It lives in a temporary directory, deleted at the end of the notebook: nothing is written
# next to the notebook. The data are the scikit-learn handwritten digits, split **once** with
# a seeded permutation into 1,200 training, 297 validation and 300 test images. The split is
# saved as a file, so every process reads exactly the same examples: preprocessing is a step
# of the pipeline with an output, not something each script redoes its own way.

# %%
_project_tmp = tempfile.TemporaryDirectory(prefix="c5_project_")
PROJECT = Path(_project_tmp.name)
for folder in ("configs", "data", "pipeline", "tests", "runs", "artifacts"):
    (PROJECT / folder).mkdir(exist_ok=True)

X_all, y_all = digits(flat=True)  # (1797, 64) float32 in [0, 1], (1797,) int64
order = torch.randperm(len(X_all), generator=torch.Generator().manual_seed(0))
split_index = {"train": order[:1200], "val": order[1200:1497], "test": order[1497:]}
splits = {f"{kind}_{part}": tensor[idx] for part, idx in split_index.items()
          for kind, tensor in (("x", X_all), ("y", y_all))}
torch.save(splits, PROJECT / "data" / "digits.pt")
print({name: tuple(t.shape) for name, t in splits.items()})

# %% [markdown]
# The baseline to beat: **nearest centroid**. Average the training images of each class into
# one "template" per digit, and classify a test image by the closest template. No training
# loop, no hyperparameters; any model we ship must do better than this.

# %%
centroids = torch.stack([splits["x_train"][splits["y_train"] == k].mean(0)
                         for k in range(10)])  # (10, 64)
nearest = torch.cdist(splits["x_test"], centroids).argmin(1)  # (300,)
centroid_acc = (nearest == splits["y_test"]).float().mean().item()
print(f"nearest-centroid baseline: {centroid_acc:.1%} test accuracy")

# %% [markdown]
# ## 2. Configuration in YAML
#
# A run is defined by a handful of numbers (learning rate, epochs, sizes, seed). They belong in
# one file per experiment, saved next to the results, rather than scattered through the code.
# YAML is the usual format: readable, with comments. It has traps, though. PyYAML implements
# YAML 1.1, whose rules for numbers and booleans surprise everybody once:

# %%
tricky = yaml.safe_load("""
lr_a: 1e-3       # no decimal point: YAML 1.1 reads a string!
lr_b: 1.0e-3     # a float
lr_c: 1.0e3      # no sign in the exponent: a string again
epochs: 010      # a leading zero: octal, so 8
device: no       # no/yes/on/off are booleans (the "Norway problem": country code NO)
name: ~          # null
""")
for key, value in tricky.items():
    print(f"{key:7s} -> {value!r:10} ({type(value).__name__})")

# %% [markdown]
# Always load with `yaml.safe_load` (`yaml.load` with `yaml.Loader` or `yaml.UnsafeLoader` can
# build arbitrary Python objects, and run code, from a file), and never trust what comes out: a config that says
# `lr: 1e-3` would reach the optimizer as the string `'1e-3'` and fail deep inside PyTorch,
# or worse, a typo such as `learnig_rate: 0.1` would be silently ignored and the default used.
# The cure is to **validate** the config as soon as it is read, and to fail with a message
# that names the field.
#
# ### Exercise 15.51 — Validate a config (★★, 4 points)
#
# Write `validate_config(raw)`. `raw` is what `yaml.safe_load` returned; the result is a **new**
# dict with all eight keys (defaults filled in). The rules:
#
# | key | type | allowed values | default |
# |---|---|---|---|
# | `name` | `str` | not empty | required |
# | `lr` | number (`int` or `float`) | $0 < \text{lr} \le 1$, returned as `float` | required |
# | `epochs` | `int` | $1 \le \text{epochs} \le 1000$ | required |
# | `seed` | `int` | $\ge 0$ | `0` |
# | `batch_size` | `int` | $1 \ldots 4096$ | `64` |
# | `hidden` | `int` | $1 \ldots 4096$ | `128` |
# | `dropout` | number | $0 \le p < 1$, returned as `float` | `0.1` |
# | `device` | `str` | `"cpu"`, `"cuda"` or `"auto"` | `"cpu"` |
#
# Every problem raises `ValueError` with a message that **starts with the field name and a
# colon**, e.g. `lr: expected a number, got '1e-3' (str)`, and includes the offending value
# (its `repr`) for wrong types and out-of-range values. The cases: an unknown key (the
# message starts with that key), a missing required key, a wrong type, a value out of range.
# If `raw` is not a dict at all (an empty file gives `None`), the message starts with
# `config:`. Do not modify `raw`.
#
# **Tests check:** a minimal config gets the defaults and `lr` as a `float`; a full config comes
# back unchanged as a new dict; bad configs (visible: an unknown key, a missing key, `'1e-3'`,
# out-of-range and boolean values, a non-dict; hidden: more of each kind, edge values on both
# sides of each bound) raise `ValueError` whose message starts with the right field name.
#
# **Hints:** `bool` is a subclass of `int` in Python (`isinstance(True, int)` is `True`), so
# `epochs: yes` would pass a naive check: test `isinstance(value, bool)` first. Check unknown
# keys, then missing ones, then each value. `math.isfinite` rejects `.nan` and `.inf`.

# %% nbgrader={"grade": false, "grade_id": "ex15_51_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def validate_config(raw):
    """Check a config read from YAML and fill in the defaults.

    Args:
        raw: the object yaml.safe_load returned (normally a dict).
    Returns:
        A new dict with the keys name, lr, epochs, seed, batch_size, hidden, dropout, device.
    Raises:
        ValueError: "<field>: <what is wrong>" (or "config: ..." when raw is not a dict).
    """
    ### BEGIN SOLUTION
    allowed = ("name", "lr", "epochs", "seed", "batch_size", "hidden", "dropout", "device")
    defaults = {"seed": 0, "batch_size": 64, "hidden": 128, "dropout": 0.1, "device": "cpu"}
    if not isinstance(raw, dict):
        raise ValueError(f"config: expected a mapping of keys to values, got {raw!r}")
    for key in raw:
        if key not in allowed:
            raise ValueError(f"{key}: unknown key (allowed: {', '.join(allowed)})")
    for key in ("name", "lr", "epochs"):
        if key not in raw:
            raise ValueError(f"{key}: missing required key")
    cfg = {**defaults, **raw}

    def integer(key, low, high):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an int, got {value!r} ({type(value).__name__})")
        if not low <= value <= high:
            raise ValueError(f"{key}: must be between {low} and {high}, got {value!r}")

    def number(key, inside, interval):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = (" (YAML 1.1 reads exponents without a decimal point, like 1e-3, as strings: "
                    "write 1.0e-3)") if isinstance(value, str) else ""
            raise ValueError(f"{key}: expected a number, got {value!r} ({type(value).__name__})"
                             + hint)
        if not (math.isfinite(value) and inside(value)):
            raise ValueError(f"{key}: must be in {interval}, got {value!r}")
        cfg[key] = float(value)

    if not isinstance(cfg["name"], str) or not cfg["name"]:
        raise ValueError(f"name: expected a non-empty string, got {cfg['name']!r}")
    number("lr", lambda v: 0 < v <= 1, "(0, 1]")
    integer("epochs", 1, 1000)
    integer("seed", 0, 2**63 - 1)
    integer("batch_size", 1, 4096)
    integer("hidden", 1, 4096)
    number("dropout", lambda v: 0 <= v < 1, "[0, 1)")
    if cfg["device"] not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device: must be 'cpu', 'cuda' or 'auto', got {cfg['device']!r}")
    return cfg
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex15_51_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def _expect_rejected(raw, field):
    """validate_config(raw) must raise ValueError whose message starts with 'field:'."""
    err = checks.check_raises(lambda: validate_config(raw), ValueError,
                              f"validate_config({raw!r})",
                              hint=f"this config has a bad {field!r}: raise ValueError")
    checks.check(str(err).startswith(f"{field}:"),
                 f"the error for {raw!r} must start with the field name.", f"'{field}: ...'",
                 str(err), hint=f"raise ValueError(f\"{field}: ...\")")
    return str(err)


minimal = {"name": "mlp", "lr": 1, "epochs": 3}
given = dict(minimal)
cfg = validate_config(given)
checks.check_equal(cfg, {"name": "mlp", "lr": 1.0, "epochs": 3, "seed": 0, "batch_size": 64,
                         "hidden": 128, "dropout": 0.1, "device": "cpu"},
                   "validate_config of a minimal config", hint="fill in the defaults")
checks.check(type(cfg["lr"]) is float, "lr must come back as a float.", "float",
             type(cfg["lr"]).__name__, hint="cfg['lr'] = float(value)")
checks.check_equal(given, minimal, "the config passed in", hint="do not modify raw: copy it")
full = {"name": "big", "lr": 0.5, "epochs": 1000, "seed": 7, "batch_size": 4096,
        "hidden": 1, "dropout": 0.0, "device": "auto"}
checks.check_equal(validate_config(dict(full)), full, "validate_config of a complete config")
checks.check(validate_config(full) is not full, "validate_config must return a new dict.",
             hint="build a new dict: {**defaults, **raw}")
message = _expect_rejected(yaml.safe_load("name: a\nlr: 1e-3\nepochs: 5"), "lr")
checks.check("'1e-3'" in message, "the message should show the offending value.", "'1e-3'",
             message, hint="include {value!r} in the message")
for bad, field in [({**minimal, "colour": "red"}, "colour"),
                   ({"name": "a", "epochs": 2}, "lr"),
                   ({**minimal, "lr": 0}, "lr"),
                   ({**minimal, "epochs": 2.5}, "epochs"),
                   ({**minimal, "epochs": True}, "epochs"),
                   ({**minimal, "dropout": 1}, "dropout"),
                   ({**minimal, "device": "gpu"}, "device")]:
    _expect_rejected(bad, field)
_expect_rejected(None, "config")
print("validate_config: the visible tests pass")
### BEGIN HIDDEN TESTS
for bad, field in [({**minimal, "learning_rate": 0.1}, "learning_rate"),
                   ({"lr": 0.1, "epochs": 2}, "name"),
                   ({"name": "a", "lr": 0.1}, "epochs"),
                   ({**minimal, "name": ""}, "name"),
                   ({**minimal, "name": 3}, "name"),
                   ({**minimal, "lr": 1.0000001}, "lr"),
                   ({**minimal, "lr": -0.1}, "lr"),
                   ({**minimal, "lr": True}, "lr"),
                   ({**minimal, "lr": float("nan")}, "lr"),
                   ({**minimal, "lr": None}, "lr"),
                   ({**minimal, "epochs": 0}, "epochs"),
                   ({**minimal, "epochs": 1001}, "epochs"),
                   ({**minimal, "epochs": "10"}, "epochs"),
                   ({**minimal, "seed": -1}, "seed"),
                   ({**minimal, "seed": 1.0}, "seed"),
                   ({**minimal, "batch_size": 0}, "batch_size"),
                   ({**minimal, "batch_size": 4097}, "batch_size"),
                   ({**minimal, "hidden": 0}, "hidden"),
                   ({**minimal, "hidden": False}, "hidden"),
                   ({**minimal, "dropout": -0.01}, "dropout"),
                   ({**minimal, "dropout": "0.1"}, "dropout"),
                   ({**minimal, "device": False}, "device"),
                   ({**minimal, "device": "CPU"}, "device")]:
    _expect_rejected(bad, field)
_expect_rejected(["name", "lr"], "config")
_expect_rejected("lr: 0.1", "config")
_expect_rejected(yaml.safe_load("name: a\nlr: 0.1\nepochs: 3\ndevice: no"), "device")
_expect_rejected(yaml.safe_load("name: a\nlr: 1.0e3\nepochs: 3"), "lr")
edge = validate_config({"name": "x", "lr": 1e-12, "epochs": 1, "dropout": 0.999, "seed": 2**40})
checks.check_equal(edge, {"name": "x", "lr": 1e-12, "epochs": 1, "seed": 2**40, "batch_size": 64,
                          "hidden": 128, "dropout": 0.999, "device": "cpu"}, "an edge-value config")
checks.check(type(validate_config({**minimal, "dropout": 0})["dropout"]) is float,
             "dropout must come back as a float.")
from_yaml = validate_config(yaml.safe_load("name: run\nlr: 5.0e-3\nepochs: 010\ndevice: cuda"))
checks.check_equal(from_yaml["epochs"], 8, "epochs read from '010'")
checks.check_equal(from_yaml["lr"], 0.005, "lr read from '5.0e-3'")
returned = validate_config(given)
returned["lr"] = 0.25
checks.check_equal(given, minimal, "the input after changing the returned config")
### END HIDDEN TESTS

# %% [markdown]
# With a validator, loading a config file is two lines. `load_config` becomes part of the
# project's library below; it passes any problem on as a `ValueError` that names the file too.

# %%
def load_config(path):
    """Read and validate a YAML config file; ValueError naming the file and the field."""
    path = Path(path)
    try:
        return validate_config(yaml.safe_load(path.read_text()))
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None


example_config = PROJECT / "configs" / "example.yaml"
example_config.write_text("name: demo\nlr: 1e-3\nepochs: 5\n")
try:
    load_config(example_config)
except ValueError as err:
    print("rejected:", err)
finally:
    example_config.unlink()

# %% [markdown]
# ## 3. Logging, not print
#
# `print` writes to one place, with no time, no severity, and no way to turn it down. The
# `logging` module gives each message a **level** (`DEBUG < INFO < WARNING < ERROR`), a
# **logger** name saying where it came from, and **handlers** that send it to several places
# at once, each with its own format: here the console and a `train.log` file kept with the
# run. A script's log file is its memory: when a run from last week looks odd, the log says
# which config, which library versions, and what happened at every epoch.
#
# Two details matter in practice. Handlers accumulate: a function that adds a handler every
# time it is called prints every line twice on the second call (a classic in notebooks, where
# cells are rerun), so `get_logger` removes the old ones first. And the console handler
# writes to **stdout** here: a command-line tool would normally log to stderr, but in a
# notebook stderr shows as an alarming red box, and the autograder counts any stderr output
# in a test cell as a failure.

# %%
def get_logger(name, log_file=None, level=logging.INFO):
    """A logger writing to stdout and, if given, to log_file; safe to call again."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False  # do not pass messages on to the root logger's handlers too
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger

# %% [markdown]
# A quick try: messages below the logger's level are dropped, `%`-style arguments are only
# formatted when a message is actually emitted, and the file keeps everything after the
# process has gone.

# %%
demo_log = PROJECT / "runs" / "demo.log"
log = get_logger("demo", demo_log)
log = get_logger("demo", demo_log)  # called twice: still one line per message
log.debug("not shown: DEBUG is below INFO")
log.info("epoch %d/%d train_loss %.4f", 1, 10, 0.6931)
log.warning("validation accuracy dropped from %.3f to %.3f", 0.95, 0.91)
for handler in log.handlers:
    handler.flush()
print("--- the log file ---\n" + demo_log.read_text())

# %% [markdown]
# ## 4. Reproducibility
#
# Two runs of the same code and config should give the same numbers, bit for bit; otherwise
# you can never tell whether a change helped or the dice did. Chapter 12 listed the sources of
# randomness; in a training script they are:
#
# | source | control |
# |---|---|
# | initial weights, dropout masks | torch's global generator: `torch.manual_seed(seed)` |
# | shuffling the training set | a `torch.Generator` of its own, passed to `torch.randperm` |
# | Python's `random`, NumPy (augmentation, libraries) | `random.seed`, `np.random.seed` |
# | kernels whose order of additions varies (GPU atomics) | `torch.use_deterministic_algorithms(True)` and `CUBLAS_WORKSPACE_CONFIG=:4096:8` |
# | the number of CPU threads (reductions split differently) | a fixed `torch.set_num_threads` |
#
# A separate generator for shuffling means that the order of the data does not change when
# somebody adds a layer (which draws more numbers from the global generator) or an augmentation.
# The mean loss of an epoch is an average over **samples**; with batches of sizes $|b|$ and
# batch losses $\ell_b$ (each a mean over its batch):
#
# $$\bar\ell = \frac{1}{N} \sum_b |b|\,\ell_b ,$$
#
# which differs from the plain mean of the $\ell_b$ whenever the last batch is smaller.
#
# ### Exercise 15.52 — Seeds and a reproducible epoch (★★, 3 points)
#
# 1. `seed_everything(seed)` seeds Python's `random`, NumPy's global generator and torch's
#    global generator (`torch.manual_seed` also seeds every GPU), and returns a **new**
#    `torch.Generator` seeded with `seed`, for shuffling.
# 2. `train_one_epoch(model, optimizer, x, y, batch_size, generator)` trains one epoch:
#    switch the model to training mode; shuffle with
#    `order = torch.randperm(len(x), generator=generator)` (on the CPU; move it to `x.device`);
#    take consecutive batches `order[i:i + batch_size]`; for each: cross-entropy loss of the
#    logits, `zero_grad`, `backward`, `step`. Return the mean loss per sample over the epoch as
#    a Python `float` (formula above). `x`: `(N, 64)` float32, `y`: `(N,)` int64, on the
#    model's device. Do not modify `x` or `y`.
#
# **Tests check:** the three generators are seeded and the returned generator is a new one;
# with `lr=0` the returned mean equals the full-data loss (50 samples in batches of 16, so the
# last batch has 2); the weights after an epoch do not depend on draws from the global
# generator between seeding and training; (hidden) the weights and loss equal a reference
# epoch with dropout and Adam, starting from a model left in eval mode; other batch sizes.
#
# **Hints:** `torch.Generator().manual_seed(seed)` returns the generator itself. Accumulate
# `loss.item() * len(idx)`.

# %% nbgrader={"grade": false, "grade_id": "ex15_52_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def seed_everything(seed):
    """Seed random, NumPy and torch (CPU, GPUs); return a new torch.Generator seeded with seed."""
    ### BEGIN SOLUTION
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
    ### END SOLUTION


def train_one_epoch(model, optimizer, x, y, batch_size, generator):
    """One epoch of shuffled mini-batch training; returns the mean loss per sample (float).

    x: (N, 64) float32, y: (N,) int64 on the model's device; generator: a CPU torch.Generator.
    """
    ### BEGIN SOLUTION
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total = 0.0
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(x)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex15_52_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
gen = seed_everything(7)
checks.check_type(gen, torch.Generator, "seed_everything(7)",
                  hint="return torch.Generator().manual_seed(seed)")
checks.check(gen is not torch.default_generator, "seed_everything must return a NEW generator.",
             hint="torch.Generator().manual_seed(seed), not torch's global generator")
checks.check_equal(gen.initial_seed(), 7, "the seed of the returned generator")
checks.check_equal(random.random(), random.Random(7).random(), "random.random() after seeding",
                   hint="random.seed(seed)")
checks.check_equal(float(np.random.rand()), float(np.random.RandomState(7).rand()),
                   "np.random.rand() after seeding", hint="np.random.seed(seed)")
checks.check_equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(7)),
                   "torch.rand(3) after seeding", hint="torch.manual_seed(seed)")


def _small_mlp(seed, p=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 10)).to(device)


x50, y50 = X_all[:50].to(device), y_all[:50].to(device)
x50_before = x50.clone()
net = _small_mlp(0)
with torch.no_grad():
    full_loss = F.cross_entropy(net(x50), y50).item()  # the mean over all 50 samples
mean_loss = train_one_epoch(net, torch.optim.SGD(net.parameters(), lr=0.0), x50, y50, 16,
                            torch.Generator().manual_seed(0))
checks.check_type(mean_loss, float, "the value train_one_epoch returns", hint="use loss.item()")
checks.check_close(mean_loss, full_loss, "the epoch's mean loss with lr=0", rtol=1e-5,
                   hint="weight each batch by its size: total += loss.item() * len(idx); "
                        "return total / len(x)")


def _weights_after_epoch(disturb):
    net = _small_mlp(1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    if disturb:
        torch.rand(100)  # e.g. a new augmentation draws from the global generator
    train_one_epoch(net, opt, x50, y50, 8, torch.Generator().manual_seed(5))
    return torch.cat([p.detach().flatten() for p in net.parameters()])


trained = _weights_after_epoch(False)
untrained = torch.cat([p.detach().flatten() for p in _small_mlp(1).parameters()])
checks.check(not torch.equal(trained, untrained), "the weights did not change during the epoch.",
             hint="call optimizer.step() for every batch")
checks.check_equal(_weights_after_epoch(True), trained,
                   "the weights after an epoch, with the global generator used before it",
                   hint="shuffle with torch.randperm(len(x), generator=generator)")
checks.check_equal(x50, x50_before, "x after train_one_epoch", hint="do not modify the inputs")
print("seed_everything and train_one_epoch: the visible tests pass")
### BEGIN HIDDEN TESTS
for seed in (0, 123456):
    g1, g2 = seed_everything(seed), seed_everything(seed)
    checks.check(g1 is not g2, "each call must return a new generator.")
    checks.check_equal(torch.randperm(20, generator=g1),
                       torch.randperm(20, generator=torch.Generator().manual_seed(seed)),
                       f"the first permutation from seed_everything({seed})'s generator")


def _reference_epoch(net, opt, x, y, bs, g):
    net.train()
    perm = torch.randperm(len(x), generator=g).to(x.device)
    weighted = []
    for chunk in torch.split(perm, bs):
        opt.zero_grad()
        batch_loss = F.cross_entropy(net(x[chunk]), y[chunk])
        batch_loss.backward()
        opt.step()
        weighted.append(batch_loss.item() * len(chunk))
    return sum(weighted) / len(x)


x_h, y_h = X_all[100:177].to(device), y_all[100:177].to(device)
for bs in (10, 32, 77, 100):
    results = []
    for fn in (train_one_epoch, _reference_epoch):
        net = _small_mlp(3, p=0.3).eval()  # the function must switch to training mode itself
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        g = torch.Generator().manual_seed(11)
        torch.manual_seed(21)  # same dropout masks for both
        losses = [fn(net, opt, x_h, y_h, bs, g) for _ in range(2)]
        results.append((losses, [p.detach().clone() for p in net.parameters()],
                        torch.randperm(5, generator=g)))
    (got_l, got_p, got_next), (ref_l, ref_p, ref_next) = results
    checks.check_close(torch.tensor(got_l), torch.tensor(ref_l), f"epoch losses, batch size {bs}",
                       rtol=1e-5)
    for i, (a, b) in enumerate(zip(got_p, ref_p)):
        checks.check_close(a, b, f"parameter {i} after two epochs, batch size {bs}", rtol=1e-5,
                           atol=1e-6, hint="model.train(); zero_grad before backward")
    checks.check_equal(got_next, ref_next, "the generator's state after two epochs",
                       hint="draw exactly one randperm(len(x)) per epoch from the generator")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Checkpoints
#
# A checkpoint lets a crashed or pre-empted run continue. A good one lets it continue
# **exactly** as if nothing had happened, which needs every piece of state the next epoch
# reads:
#
# | state | why |
# |---|---|
# | `model.state_dict()` | parameters and buffers (batch-norm statistics) |
# | `optimizer.state_dict()` | Adam's moment estimates and step counts: without them the next steps are different (and often too large) |
# | the shuffling generator's state, `generator.get_state()` | the next epoch's order of the data |
# | torch's global RNG state, `torch.get_rng_state()` (and `torch.cuda.get_rng_state_all()` on GPUs) | the next dropout masks |
# | the epoch number | where to continue |
#
# Save plain tensors, dicts and numbers only, so the file loads with
# `torch.load(path, weights_only=True)`: that loader refuses arbitrary pickled objects, so a
# checkpoint downloaded from somewhere cannot run code on your machine. Keep timestamps and
# paths out of the checkpoint (they go in the log): two identical runs should produce identical
# checkpoint contents, which is how we will compare runs below.
#
# ### Exercise 15.53 — Save and resume exactly (★★★, 3 points)
#
# - `save_checkpoint(path, model, optimizer, generator, epoch)` writes one file at `path` with
#   the state of the table above (plus the CUDA RNG states when `torch.cuda.is_available()`).
# - `load_checkpoint(path, model, optimizer, generator)` loads it with `weights_only=True`
#   (`map_location="cpu"`), restores everything into the objects given (built the same way as
#   the saved ones, possibly on another device), and returns the saved epoch (an `int`).
#
# **Tests check:** train 2 epochs, save, train 2 more: the reference. Then in fresh objects
# with other weights and RNG states, load and train 2 epochs: the weights must be
# **bit-identical** to the reference (Adam, dropout); the file loads with `weights_only=True`;
# the returned epoch; (hidden) SGD with momentum and batch norm, saving does not disturb the
# generators.
#
# **Hints:** `generator.set_state(...)`, `torch.set_rng_state(...)`. Optionally, write to a
# temporary name and rename (`Path.replace`), so a crash during saving never leaves a
# half-written checkpoint behind.

# %% nbgrader={"grade": false, "grade_id": "ex15_53_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def save_checkpoint(path, model, optimizer, generator, epoch):
    """Write everything needed to resume training exactly after `epoch` to the file `path`."""
    ### BEGIN SOLUTION
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)  # atomic: the file at `path` is always a complete checkpoint
    ### END SOLUTION


def load_checkpoint(path, model, optimizer, generator):
    """Restore model, optimizer, generator and RNG states from `path`; return the saved epoch."""
    ### BEGIN SOLUTION
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex15_53_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
x100, y100 = X_all[:100].to(device), y_all[:100].to(device)


def _loop(net, opt, g, epochs):
    """The test's own training loop (shuffling from g, dropout from the global generator)."""
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x100), generator=g).split(20):
            idx = idx.to(device)
            opt.zero_grad()
            F.cross_entropy(net(x100[idx]), y100[idx]).backward()
            opt.step()


def _resume_check(make_net, make_opt, epoch, folder):
    path = Path(folder) / "checkpoint.pt"
    torch.manual_seed(0)
    net, g = make_net(), torch.Generator().manual_seed(0)
    opt = make_opt(net)
    _loop(net, opt, g, 2)
    g_state, rng_state = g.get_state(), torch.get_rng_state()
    save_checkpoint(path, net, opt, g, epoch)
    checks.check(path.is_file(), "save_checkpoint did not write the file.", str(path), None,
                 hint="torch.save(state, path)")
    _loop(net, opt, g, 2)  # the uninterrupted run: two more epochs
    reference = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(123)  # "another process": other weights, other RNG states
    net2, g2 = make_net(), torch.Generator().manual_seed(999)
    opt2 = make_opt(net2)
    got = load_checkpoint(path, net2, opt2, g2)
    checks.check_equal(got, epoch, "the epoch load_checkpoint returns")
    _loop(net2, opt2, g2, 2)
    for i, (a, b) in enumerate(zip(net2.parameters(), reference)):
        checks.check_equal(a.detach(), b, f"parameter {i} after resuming and training 2 epochs",
                           hint="restore the optimizer state, the generator state and torch's "
                                "global RNG state (dropout draws from it)")
    saved = torch.load(path, weights_only=True)
    checks.check_type(saved, dict, "the checkpoint loaded with weights_only=True")
    return g_state, rng_state, g, net


def _dropout_net():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(32, 10)).to(device)


with tempfile.TemporaryDirectory() as folder:
    _resume_check(_dropout_net, lambda n: torch.optim.Adam(n.parameters(), lr=1e-2), 2, folder)
print("save_checkpoint and load_checkpoint: the visible tests pass")
### BEGIN HIDDEN TESTS
def _bn_net():
    return nn.Sequential(nn.Linear(64, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(24, 10)).to(device)


with tempfile.TemporaryDirectory() as folder:
    torch.manual_seed(5)
    n, g = _bn_net(), torch.Generator().manual_seed(4)
    o = torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9)
    _loop(n, o, g, 1)
    before_g, before_rng = g.get_state(), torch.get_rng_state()
    save_checkpoint(Path(folder) / "c.pt", n, o, g, 1)
    checks.check_equal(g.get_state(), before_g, "the generator's state after save_checkpoint",
                       hint="saving must not draw random numbers")
    checks.check_equal(torch.get_rng_state(), before_rng, "torch's RNG state after save_checkpoint")
    _resume_check(_bn_net, lambda n: torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9), 7,
                  folder)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Export: `torch.export` and ONNX
#
# Chapter 14 exported a model with `torch.export` and checked it against PyTorch. In a
# pipeline, export is a **step with an output file**, and the file is what gets shipped; so
# the checks must run on what is loaded back from the file, on fresh inputs, and at batch sizes
# the export never saw. The format chain:
#
# - `torch.export.export(model, (example,), dynamic_shapes=...)` traces the model (in eval
#   mode: dropout off, batch norm on its running statistics) into an `ExportedProgram` of
#   ATen operations; `torch.export.save` / `torch.export.load` write and read `.pt2` files.
# - `torch.onnx.export(program)` converts that program to ONNX, a framework-neutral format;
#   `onnxruntime` runs it **without PyTorch** (our inference script will not import torch).
#
# "Agrees with eager" means $\max_i |f_{\text{exported}}(x)_i - f(x)_i|$ at the level of
# float32 rounding, not necessarily 0: ONNX Runtime runs its own kernels, which may fuse or
# reorder operations. (Below, the `.pt2` program matches eager exactly and ONNX within about
# $10^{-7}$.)
#
# ### Exercise 15.54 — Export with parity checks (★★, 4 points)
#
# `export_model(model, example, path)`: put the model in **eval mode** (and leave it there),
# export it with `torch.export.export` on the example batch `example` (shape `(B, ...)`, with
# `B ≥ 2`) with dimension 0 **dynamic** (`torch.export.Dim("batch")`), save the program to the
# file `path` with `torch.export.save`, and return the `ExportedProgram`.
#
# **Tests check:** on an MLP with batch norm and dropout whose running statistics are not
# trivial: the type; that the file exists; eval mode; the program **loaded back from the
# file** against the eager model in eval mode on fresh inputs of batch sizes 1, 5 and 64
# (tolerance $10^{-5}$); then the same program converted to ONNX and run by `onnxruntime`, at
# batch sizes 1, 6 and 200; (hidden) a small CNN on `(1, 8, 8)` images, other batch sizes, the
# example not modified.
#
# **Hints:** chapter 14, Exercise 14.6; `dynamic_shapes=({0: torch.export.Dim("batch")},)` has
# one entry per input. Call `model.eval()` *before* exporting: export records what the model
# does at that moment.

# %% nbgrader={"grade": false, "grade_id": "ex15_54_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def export_model(model, example, path):
    """Export `model` (eval mode, dynamic batch) traced on `example` (B, ...); save it to `path`.

    Returns:
        The torch.export.ExportedProgram (also written to the .pt2 file `path`).
    """
    ### BEGIN SOLUTION
    model.eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return program
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex15_54_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import onnxruntime as ort

_export_dir = tempfile.TemporaryDirectory()


def _export_and_check(net, in_shape, batch_sizes, name):
    """Export with export_model, load the file back, compare with eager on fresh inputs."""
    net.train()
    with torch.no_grad():  # non-trivial running statistics for batch norm
        for _ in range(3):
            net(torch.randn(32, *in_shape) * 2 + 1)
    example = torch.randn(4, *in_shape)
    example_before = example.clone()
    path = Path(_export_dir.name) / f"{name}.pt2"
    program = export_model(net, example, path)
    checks.check_type(program, torch.export.ExportedProgram, "the result of export_model",
                      hint="return the program torch.export.export returned")
    checks.check(path.is_file(), "export_model did not write the file.", str(path), None,
                 hint="torch.export.save(program, path)")
    checks.check(not net.training, "the model must be left in eval mode.", hint="model.eval()")
    checks.check_equal(example, example_before, "the example batch after export_model")
    served = torch.export.load(path).module()
    for b in batch_sizes:
        x = torch.randn(b, *in_shape)
        with torch.no_grad():
            expected = net.eval()(x)
            try:
                got = served(x)
            except Exception as err:  # noqa: BLE001 -- turned into a teaching message
                checks.fail(f"the exported program fails on a batch of {b}.", "an output",
                            f"{type(err).__name__}: {str(err)[:150]}",
                            hint="declare dimension 0 dynamic: torch.export.Dim('batch')")
        checks.check_close(got, expected, f"{name}: the program loaded from the file, batch {b}",
                           rtol=1e-5, atol=1e-5, hint="export in eval mode: model.eval() first")
    return program


def _onnx_max_diff(program, net, in_shape, batch_sizes, name):
    """Convert to ONNX, run with onnxruntime (no PyTorch), return the largest |diff| to eager."""
    path = Path(_export_dir.name) / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(program, dynamo=True, verbose=False).save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b in batch_sizes:
        x = torch.randn(b, *in_shape)
        with torch.no_grad():
            expected = net.eval()(x)
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        checks.check_close(got, expected, f"{name}: onnxruntime's output, batch {b}", rtol=1e-5,
                           atol=1e-5)
        worst = max(worst, (got - expected).abs().max().item())
    return worst


torch.manual_seed(54)
mlp = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Dropout(0.5),
                    nn.Linear(48, 10))
mlp_program = _export_and_check(mlp, (64,), (1, 5, 64), "mlp")
onnx_diff = _onnx_max_diff(mlp_program, mlp, (64,), (1, 6, 200), "mlp")
print(f"export_model: the visible tests pass; max |onnxruntime - eager| = {onnx_diff:.1e}")
### BEGIN HIDDEN TESTS
cnn = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.3),
                    nn.Flatten(), nn.Linear(6 * 64, 10))
_export_and_check(cnn, (1, 8, 8), (1, 3, 129), "cnn")
### END HIDDEN TESTS
_export_dir.cleanup()

# %% [markdown]
# ## 7. Assembling the project
#
# Everything the training script needs is now in the notebook: your functions, and a few
# small ones given below (the model, the optimizer, evaluation, reading the data, choosing the
# device). The project's library `pipeline/core.py` will be made of all of them, copied with
# `inspect.getsource`, so that the scripts run **your** code.

# %%
def resolve_device(name):
    """torch.device for a config's device: "cpu", "cuda", or "auto" (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_splits(path):
    """The prepared data: a dict of tensors x_train (N, 64), y_train (N,), x_val, y_val, ..."""
    return torch.load(path, weights_only=True)


def build_model(cfg):
    """The MLP of a config: 64 -> hidden -> ReLU -> Dropout -> 10 logits (on the CPU)."""
    return nn.Sequential(nn.Linear(64, cfg["hidden"]), nn.ReLU(), nn.Dropout(cfg["dropout"]),
                         nn.Linear(cfg["hidden"], 10))


def make_optimizer(model, cfg):
    """Adam with the config's learning rate."""
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"])


def evaluate(model, x, y):
    """Accuracy (a float in [0, 1]) of model on x (N, 64), y (N,), in eval mode."""
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()

# %% [markdown]
# The last piece of the library is the run loop, which ties the others together. It is where
# the order of things matters: seed *before* building the model (initial weights come from the
# global generator), restore a checkpoint *after* building the model and the optimizer, and
# continue with the epoch after the saved one.
#
# ### Exercise 15.55 — The run loop, reproducible across processes (★★★, 4 points)
#
# Write `run_training(cfg, data, run_dir, logger, resume_from=None)`:
#
# 1. create `run_dir` (a `Path`) if needed; `device = resolve_device(cfg["device"])`;
# 2. `generator = seed_everything(cfg["seed"])`, then the model (`build_model(cfg)`, moved to
#    the device) and the optimizer (`make_optimizer(model, cfg)`);
# 3. move `data["x_train"]`, `data["y_train"]`, `data["x_val"]`, `data["y_val"]` to the device;
# 4. if `resume_from` is given, `start = load_checkpoint(resume_from, model, optimizer,
#    generator)`, else `start = 0`;
# 5. for each epoch from `start + 1` to `cfg["epochs"]`: `train_one_epoch` (batch size
#    `cfg["batch_size"]`), `val_acc = evaluate(model, x_val, y_val)`, then append one JSON line
#    `{"epoch": ..., "train_loss": ..., "val_acc": ...}` to `run_dir / "metrics.jsonl"`, save
#    a checkpoint `run_dir / f"epoch_{epoch}.pt"`, and log a line with `logger.info` that
#    contains the word `epoch`;
# 6. return the last epoch's dict `{"epoch", "train_loss", "val_acc"}`.
#
# Use only the logger, not `print`: the scripts' output is their log.
#
# **Tests check**, first in this notebook on a small subset: two runs give identical
# checkpoints; a run resumed from the epoch-1 checkpoint ends with the same checkpoint as the
# straight run; the metrics file, the log records and the returned dict (its `val_acc` must be
# the accuracy of the saved model, recomputed by the test). Then for real: the test trains the
# base config in this kernel, writes the project folder, and runs `train.py` in a **fresh
# process** that resumes from the kernel's epoch-4 checkpoint (as if the notebook had crashed
# there). Its final checkpoint must be bit-identical to the kernel's, and the validation
# accuracy at least 93 % (about 98 % is typical).
#
# **Hints:** `with (run_dir / "metrics.jsonl").open("a") as f: f.write(json.dumps(row) + "\n")`.
# `logger.info("epoch %d/%d train_loss %.4f val_acc %.4f", ...)`.

# %% nbgrader={"grade": false, "grade_id": "ex15_55_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def run_training(cfg, data, run_dir, logger, resume_from=None):
    """Train as cfg says, logging, with a checkpoint and a metrics line per epoch.

    Args:
        cfg: a validated config (dict); data: dict of tensors (load_splits);
        run_dir: folder for metrics.jsonl and epoch_<k>.pt; logger: a logging.Logger;
        resume_from: a checkpoint path to continue from, or None.
    Returns:
        {"epoch": int, "train_loss": float, "val_acc": float} of the last epoch trained.
    """
    ### BEGIN SOLUTION
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg["device"])
    generator = seed_everything(cfg["seed"])
    model = build_model(cfg).to(device)
    optimizer = make_optimizer(model, cfg)
    x_train, y_train = data["x_train"].to(device), data["y_train"].to(device)
    x_val, y_val = data["x_val"].to(device), data["y_val"].to(device)
    start = 0
    if resume_from is not None:
        start = load_checkpoint(resume_from, model, optimizer, generator)
        logger.info("resumed from %s after epoch %d", resume_from, start)
    row = {"epoch": start}
    for epoch in range(start + 1, cfg["epochs"] + 1):
        train_loss = train_one_epoch(model, optimizer, x_train, y_train, cfg["batch_size"],
                                     generator)
        val_acc = evaluate(model, x_val, y_val)
        row = {"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc}
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        save_checkpoint(run_dir / f"epoch_{epoch}.pt", model, optimizer, generator, epoch)
        logger.info("epoch %d/%d train_loss %.4f val_acc %.4f", epoch, cfg["epochs"],
                    train_loss, val_acc)
    return row
    ### END SOLUTION

# %% [markdown]
# The project's files. `write_project()` writes the library (the functions above, copied with
# `inspect.getsource`, under a header of imports), the scripts, the config, the test setup, a
# README and the exact package versions. Call it again whenever you change a function: the
# test cells do. The training script first, which only parses arguments, reads and validates
# the config, sets the process up for determinism, and hands over to `run_training`:

# %%
TRAIN_SCRIPT = '''"""Train the digits MLP from a YAML config; checkpoints and metrics every epoch.

    python train.py --config configs/base.yaml --run-dir runs/a [--seed 1]
    python train.py --config configs/base.yaml --run-dir runs/b --resume runs/a/epoch_4.pt

Writes to the run folder: config.yaml (the validated config), train.log, metrics.jsonl and
epoch_<k>.pt. Exit status 0: done; 2: bad config.
"""
import argparse
import os
import sys
from pathlib import Path

import torch
import yaml

from pipeline.core import get_logger, load_splits, run_training, validate_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="YAML config file")
    parser.add_argument("--run-dir", type=Path, required=True, help="folder for this run")
    parser.add_argument("--data", type=Path, default=Path("data/digits.pt"), help="prepared splits")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    args = parser.parse_args(argv)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    logger = get_logger("train", args.run_dir / "train.log")
    try:
        raw = yaml.safe_load(args.config.read_text())
        if args.seed is not None and isinstance(raw, dict):
            raw["seed"] = args.seed
        cfg = validate_config(raw)
    except (OSError, yaml.YAMLError, ValueError) as err:
        logger.error("bad config %s: %s", args.config, err)
        return 2
    # Bit-identical reruns: deterministic kernels (this matters on GPUs), a fixed thread count.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    (args.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    logger.info("config %s | torch %s | python %s", cfg, torch.__version__, sys.version.split()[0])
    final = run_training(cfg, load_splits(args.data), args.run_dir, logger, resume_from=args.resume)
    logger.info("finished: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

# %% [markdown]
# The experiment's config. The small settings train in a fraction of a second per epoch on a
# CPU; the comment says what a full-size run would use.

# %%
BASE_CONFIG = """# Baseline: an MLP 64-256-10 on the 8x8 digits (seconds of training on a CPU).
# Settings picked on the validation split, never on the test split. Full size, with a GPU
# and more data: epochs: 100, hidden: 1024, device: auto, early stopping on validation.
name: digits-mlp
seed: 0
epochs: 20
lr: 5.0e-3        # not 5e-3: PyYAML would read that as a string
batch_size: 64
hidden: 256
dropout: 0.2
device: cpu
"""

# %% [markdown]
# The inference script uses only NumPy and `onnxruntime`: a serving machine does not need
# PyTorch (gigabytes, with its CUDA libraries) to run the exported model. It checks its input,
# and logs.

# %%
PREDICT_SCRIPT = '''"""Classify 8x8 digit images with the exported ONNX model (no PyTorch needed).

    python predict.py --model artifacts/model.onnx --input x.npy --output predictions.json

x.npy: an array (B, 64) of grey levels in [0, 1]. Writes {"labels": [...], "confidence": [...]}.
Exit status 0: done; 2: bad input.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Serving over HTTP (FastAPI is not installed here): create the InferenceSession once at
# start-up, add `@app.post("/predict")` taking {"pixels": [[64 floats], ...]} checked by a
# pydantic model, answer with classify(...), and test it with fastapi.testclient.TestClient:
# a request with the wrong shape must get a 422 error, a good one the labels of this script.


def classify(session, x):
    """(labels (B,), confidence (B,)) for a float32 batch x of shape (B, 64)."""
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]  # (B, 10)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    return probs.argmax(axis=1), probs.max(axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an ONNX file")
    parser.add_argument("--input", type=Path, required=True, help="a .npy array (B, 64)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)-7s predict: %(message)s")
    log = logging.getLogger("predict")
    x = np.load(args.input)
    if x.ndim != 2 or x.shape[1] != 64:
        log.error("input must have shape (B, 64), got %s", x.shape)
        return 2
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    labels, confidence = classify(session, x.astype(np.float32))
    args.output.write_text(json.dumps({"labels": labels.tolist(),
                                       "confidence": confidence.round(5).tolist()}))
    log.info("%d predictions written to %s", len(labels), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

# %% [markdown]
# The test setup: `pytest.ini` makes the project folder the root (so `import pipeline` works),
# and `tests/conftest.py` provides the fixture `core`, the module under test. Tests written
# against `core` rather than a fixed import can be pointed at another version of the module,
# which Exercise 15.56 uses to check that the tests catch bugs.

# %%
PYTEST_INI = """[pytest]
testpaths = tests
pythonpath = .
addopts = -p no:cacheprovider
"""

CONFTEST = '''"""Fixtures shared by the project's tests."""
import importlib
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def core():
    """The module under test: pipeline.core, or the module named by $PIPELINE_CORE."""
    return importlib.import_module(os.environ.get("PIPELINE_CORE", "pipeline.core"))
'''

TESTS_HEADER = '''"""Unit tests of pipeline.core: python -m pytest -q (from the project folder).

Each test receives the module under test as the fixture `core` (tests/conftest.py).
"""
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
'''

# %% [markdown]
# And the writer itself. The library's header imports what the functions use; a function you
# write may import anything else inside its body.

# %%
CORE_HEADER = '''"""pipeline.core: the library of the digits project.

Written by the notebook c5_pipeline from its functions (inspect.getsource).
"""
from __future__ import annotations

import json
import logging
import math
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
'''

README = """# digits project

A small, reproducible classifier: an MLP on the scikit-learn 8x8 handwritten digits.

    python train.py --config configs/base.yaml --run-dir runs/baseline
    python train.py --config configs/base.yaml --run-dir runs/resumed \\
        --resume runs/baseline/epoch_4.pt
    python predict.py --model artifacts/model.onnx --input x.npy --output predictions.json
    python -m pytest -q

data/digits.pt: sklearn's load_digits() / 16, split 1200 / 297 / 300 (train / val / test) by
torch.randperm with a generator seeded 0. Each run folder holds config.yaml (validated),
train.log, metrics.jsonl and one checkpoint per epoch. Package versions: requirements.txt.
"""


def library_functions():
    """The functions of pipeline/core.py, in order (your current versions)."""
    return [validate_config, load_config, get_logger, seed_everything, train_one_epoch,
            save_checkpoint, load_checkpoint, export_model, resolve_device, load_splits,
            build_model, make_optimizer, evaluate, run_training]


def requirements():
    import onnx
    import onnxruntime
    import onnxscript

    pins = {"torch": torch.__version__.split("+")[0], "numpy": np.__version__,
            "pyyaml": yaml.__version__, "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__,
            "pytest": pytest.__version__}
    return "".join(f"{name}=={version}\n" for name, version in pins.items())


def write_project(tests=()):
    """Write the project's files into PROJECT; `tests`: test functions for tests/test_core.py."""
    files = {"pipeline/__init__.py": '"""The digits project."""\n',
             "pipeline/core.py": CORE_HEADER + "".join(
                 "\n\n" + inspect.getsource(f) for f in library_functions()),
             "train.py": TRAIN_SCRIPT, "predict.py": PREDICT_SCRIPT,
             "configs/base.yaml": BASE_CONFIG, "pytest.ini": PYTEST_INI,
             "tests/conftest.py": CONFTEST, "README.md": README, "requirements.txt": requirements()}
    if tests:
        files["tests/test_core.py"] = TESTS_HEADER + "".join(
            "\n\n" + inspect.getsource(f) for f in tests)
    for name, text in files.items():
        (PROJECT / name).parent.mkdir(parents=True, exist_ok=True)
        (PROJECT / name).write_text(text)
    return sorted(files)

# %% nbgrader={"grade": true, "grade_id": "ex15_55_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import subprocess

SCRIPT_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def run_commands(commands, timeout=150):
    """Run {name: [arguments for python]} as parallel processes in PROJECT; wait for all.

    Returns {name: (exit status, output)}. Every process has ended when this returns."""
    procs, results = {}, {}
    try:
        for name, args in commands.items():
            procs[name] = subprocess.Popen([sys.executable, *args], cwd=PROJECT, env=SCRIPT_ENV,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
        for name, proc in procs.items():
            output, _ = proc.communicate(timeout=timeout)
            results[name] = (proc.returncode, output)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return results


def _difference(a, b, where="checkpoint"):
    """'' if the nested checkpoint contents a and b are exactly equal, else where they differ."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return "" if same else f"{where}: the tensors differ"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        return next((d for k in a if (d := _difference(a[k], b[k], f"{where}[{k!r}]"))), "")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return next((d for i, (u, v) in enumerate(zip(a, b))
                     if (d := _difference(u, v, f"{where}[{i}]"))), "")
    return "" if type(a) is type(b) and a == b else f"{where}: {a!r} vs {b!r}"


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _quiet_run(cfg, data, run_dir, resume=None):
    capture = _Records()
    test_logger = logging.getLogger(f"c5_test.{Path(run_dir).name}")
    test_logger.handlers = [capture]
    test_logger.propagate = False
    test_logger.setLevel(logging.INFO)
    torch.rand(13)  # other code used the global generator before this run
    final = run_training(dict(cfg), data, Path(run_dir), test_logger, resume_from=resume)
    return final, capture.records


# 1. In this process, on a subset of the data.
small = {"x_train": splits["x_train"][:240], "y_train": splits["y_train"][:240],
         "x_val": splits["x_val"][:90], "y_val": splits["y_val"][:90]}
small_cfg = {"name": "small", "lr": 0.01, "epochs": 3, "seed": 3, "batch_size": 32, "hidden": 32,
             "dropout": 0.2, "device": "auto"}
with tempfile.TemporaryDirectory() as folder:
    a, b, c = (Path(folder) / name for name in "abc")
    final_a, records_a = _quiet_run(small_cfg, small, a)
    checks.check_type(final_a, dict, "the value run_training returns")
    checks.check_equal(sorted(final_a), ["epoch", "train_loss", "val_acc"],
                       "the keys of the dict run_training returns")
    checks.check_equal(final_a["epoch"], 3, "the epoch run_training returns")
    for k in (1, 2, 3):
        checks.check((a / f"epoch_{k}.pt").is_file(), f"run_training did not write epoch_{k}.pt.",
                     hint="save_checkpoint(run_dir / f'epoch_{epoch}.pt', ...) after every epoch")
    rows = _metrics(a)
    checks.check_equal([r.get("epoch") for r in rows], [1, 2, 3], "the epochs in metrics.jsonl",
                       hint="append one JSON line per epoch")
    checks.check_close(final_a["train_loss"], rows[-1]["train_loss"], "the returned train_loss")
    saved = build_model(small_cfg)
    load_checkpoint(a / "epoch_3.pt", saved, make_optimizer(saved, small_cfg), torch.Generator())
    with torch.no_grad():
        recomputed = (saved.eval()(small["x_val"]).argmax(1) == small["y_val"]).float().mean()
    checks.check_close(final_a["val_acc"], recomputed.item(),
                       "the returned val_acc (recomputed from epoch_3.pt)",
                       hint="evaluate on x_val, y_val after the epoch's training")
    logged = [r for r in records_a if r.levelno >= logging.INFO and "epoch" in r.getMessage()]
    checks.check(len(logged) >= 3, "run_training must log every epoch with the logger.",
                 ">= 3 records mentioning 'epoch'", len(logged),
                 hint="logger.info('epoch %d/%d ...', ...), not print")
    _quiet_run(small_cfg, small, b)
    diff = _difference(_load(a / "epoch_3.pt"), _load(b / "epoch_3.pt"))
    checks.check(not diff, "two runs with the same config gave different checkpoints.", "identical",
                 diff, hint="seed_everything(cfg['seed']) first, then build the model")
    _quiet_run(small_cfg, small, c, resume=a / "epoch_1.pt")
    checks.check_equal([r.get("epoch") for r in _metrics(c)], [2, 3],
                       "the epochs trained by the run resumed from epoch_1.pt",
                       hint="continue with epoch start + 1")
    diff = _difference(_load(a / "epoch_3.pt"), _load(c / "epoch_3.pt"))
    checks.check(not diff, "the run resumed from epoch_1.pt ended unlike the straight run.",
                 "identical", diff, hint="load the checkpoint after building model and optimizer")
    ### BEGIN HIDDEN TESTS
    other_cfg = {**small_cfg, "seed": 4, "batch_size": 50, "epochs": 2, "dropout": 0.0}
    _quiet_run(other_cfg, small, Path(folder) / "d")
    _quiet_run(other_cfg, small, Path(folder) / "e")
    _quiet_run({**other_cfg, "seed": 5}, small, Path(folder) / "f")
    d2, e2, f2 = (_load(Path(folder) / n / "epoch_2.pt") for n in "def")
    checks.check(not _difference(d2, e2), "two runs (seed 4, batch 50) gave different checkpoints.")
    checks.check(bool(_difference(d2, f2)), "seeds 4 and 5 gave identical checkpoints.",
                 hint="use cfg['seed']")
    final_g, _ = _quiet_run(other_cfg, small, Path(folder) / "g",
                            resume=Path(folder) / "d" / "epoch_1.pt")
    checks.check_equal(final_g["epoch"], 2, "the epoch returned by a resumed run")
    checks.check(not _difference(d2, _load(Path(folder) / "g" / "epoch_2.pt")),
                 "a resumed run (seed 4) ended differently from the straight run.")
    ### END HIDDEN TESTS

# 2. For real. This kernel trains the base config (its epoch-4 checkpoint stands in for a run
# that crashed there); then train.py, in a fresh process, resumes from that checkpoint (run D).
write_project()
base_cfg = yaml.safe_load(BASE_CONFIG)
epochs = base_cfg["epochs"]
torch.set_num_threads(1)  # as train.py does: the thread count changes the order of sums
_quiet_run(base_cfg, splits, PROJECT / "runs" / "notebook")
train = ["train.py", "--config", "configs/base.yaml", "--run-dir"]
(status, output), = run_commands(
    {"D": [*train, "runs/D", "--resume", "runs/notebook/epoch_4.pt"]}).values()
checks.check(status == 0, "train.py (run D) failed.", "exit status 0",
             f"{status}; its last lines:\n{output[-1500:]}")
diff = _difference(_load(PROJECT / "runs" / "notebook" / f"epoch_{epochs}.pt"),
                   _load(PROJECT / "runs" / "D" / f"epoch_{epochs}.pt"))
checks.check(not diff, "train.py, resumed in a new process from the notebook's epoch-4 "
             "checkpoint, did not end with the notebook's final checkpoint.", "identical", diff,
             hint="every random draw must come from a generator you seed and checkpoint")
val_acc_D = _metrics(PROJECT / "runs" / "D")[-1]["val_acc"]
checks.check(val_acc_D >= 0.93, "the final validation accuracy is too low.", ">= 0.93", val_acc_D)
log_lines = (PROJECT / "runs" / "D" / "train.log").read_text().splitlines()
checks.check(sum("epoch" in line for line in log_lines) >= epochs - 4,
             "runs/D/train.log lacks the epoch lines.", f">= {epochs - 4} lines with 'epoch'",
             len(log_lines), hint="log every epoch with logger.info")
repro_report = {"notebook == D (resumed)": True, "val_acc": val_acc_D}
print(f"train.py resumed in a new process from the notebook's epoch 4: final checkpoint "
      f"bit-identical to the notebook's; validation accuracy {val_acc_D:.1%}")

# %% [markdown]
# Here is the log of run D, written by the `logging` handlers of the separate process: the
# validated config, the library versions, the checkpoint it resumed from, one line per epoch.

# %%
train_log = PROJECT / "runs" / "D" / "train.log"
print(train_log.read_text() if train_log.is_file() else "run the test cell of Exercise 15.55 first")

# %% [markdown]
# Three more runs, in parallel: run A, the same config trained **from scratch** in a fresh
# process, which must end bit-identical to the notebook's run; run C, with **another seed**;
# and a config with the YAML trap of section 2, which must stop at once, with exit status 2
# and a message naming the field, before any training.

# %% tags=["autograde-skip"]
if not (PROJECT / "runs" / "D" / "metrics.jsonl").is_file():
    print("Exercise 15.55 first: its test cell trains the runs notebook and D.")
else:
    (PROJECT / "configs" / "typo.yaml").write_text(BASE_CONFIG.replace("lr: 5.0e-3", "lr: 5e-3"))
    extra = run_commands({
        "A": ["train.py", "--config", "configs/base.yaml", "--run-dir", "runs/A"],
        "C": ["train.py", "--config", "configs/base.yaml", "--run-dir", "runs/C", "--seed", "1"],
        "bad": ["train.py", "--config", "configs/typo.yaml", "--run-dir", "runs/bad"]})
    status, output = extra["bad"]
    print(f"bad config: exit status {status}\n{output.strip()}")
    last = f"epoch_{yaml.safe_load(BASE_CONFIG)['epochs']}.pt"
    repro_report["notebook == A"] = not _difference(
        _load(PROJECT / "runs" / "notebook" / last), _load(PROJECT / "runs" / "A" / last))
    print(f"run A (exit status {extra['A'][0]}): final checkpoint identical to the notebook's "
          f"run: {repro_report['notebook == A']}; run C (seed 1): exit status {extra['C'][0]}")

# %% [markdown]
# The four runs side by side, read back from their `metrics.jsonl` files. Notice that the
# notebook's run and A are one curve (the dashed line lies exactly on the solid one), that D
# joins them at epoch 5 and follows them exactly, and that C, the other seed, takes a visibly
# different path to a similar accuracy: seed-to-seed variation is the noise that any
# comparison between two configs must beat.

# %% tags=["autograde-skip"]
curves = {name: _metrics(PROJECT / "runs" / name) for name in ("A", "notebook", "C", "D")
          if (PROJECT / "runs" / name / "metrics.jsonl").is_file()}
if len(curves) == 4:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"A": dict(lw=3, alpha=0.5), "notebook": dict(ls="--", color="k"),
              "C": dict(marker="s", ms=4), "D": dict(ls="none", marker="o", color="tab:red")}
    labels = {"A": "A: train.py, seed 0", "notebook": "the notebook's kernel, seed 0",
              "C": "C: train.py, seed 1", "D": "D: train.py resumed at epoch 4"}
    for name, rows in curves.items():
        epochs_run = [r["epoch"] for r in rows]
        style = dict(label=labels[name], **styles[name])
        axes[0].plot(epochs_run, [r["train_loss"] for r in rows], **style)
        axes[1].plot(epochs_run, [100 * r["val_acc"] for r in rows], **style)
    axes[0].set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)", yscale="log",
                title="Training loss of four runs")
    for ax in axes:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[1].set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    axes[1].legend()
    plt.tight_layout()
    plt.show()
else:
    print("the figure needs the four runs (Exercise 15.55 and the cell above)")

# %% [markdown]
# ## 8. Serving: export, then an inference script
#
# The pipeline's last steps: load run A's final checkpoint, export it with your `export_model`
# (`artifacts/model.pt2`), convert the program to ONNX (`artifacts/model.onnx`), save the 300
# held-out test images as a NumPy file, and run `predict.py` on them in a separate process.
# Then compare what the script wrote with eager PyTorch, and compute the test accuracy, the
# number this challenge promised, against the baselines. (A second baseline, measured here
# for honesty: a plain logistic regression from scikit-learn. On these tiny, clean images a
# linear model is already strong.)

# %% tags=["autograde-skip"]
checkpoint_A = PROJECT / "runs" / "A" / f"epoch_{yaml.safe_load(BASE_CONFIG)['epochs']}.pt"
if not checkpoint_A.is_file():
    print("Exercise 15.55 and the runs above first.")
else:
    cfg_A = load_config(PROJECT / "runs" / "A" / "config.yaml")
    model_A = build_model(cfg_A)
    load_checkpoint(checkpoint_A, model_A, make_optimizer(model_A, cfg_A), torch.Generator())
    program_A = export_model(model_A, splits["x_val"][:8], PROJECT / "artifacts" / "model.pt2")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(program_A, dynamo=True, verbose=False).save(
            str(PROJECT / "artifacts" / "model.onnx"))
    np.save(PROJECT / "artifacts" / "x_test.npy", splits["x_test"].numpy())
    start = time.perf_counter()
    status, output = run_commands({"predict": [
        "predict.py", "--model", "artifacts/model.onnx", "--input", "artifacts/x_test.npy",
        "--output", "artifacts/predictions.json"]})["predict"]
    predict_seconds = time.perf_counter() - start
    print(f"predict.py: exit status {status}, {predict_seconds:.2f} s including start-up\n"
          f"{output.strip()}")

# %% [markdown]
# Now check what came out of the file against the model in memory, and score it:

# %% tags=["autograde-skip"]
predictions_file = PROJECT / "artifacts" / "predictions.json"
if predictions_file.is_file():
    from sklearn.linear_model import LogisticRegression

    served = torch.tensor(json.loads(predictions_file.read_text())["labels"])  # (300,)
    with torch.no_grad():
        eager_logits = model_A.eval()(splits["x_test"])  # (300, 10)
        pt2_diff = (torch.export.load(PROJECT / "artifacts" / "model.pt2").module()(
            splits["x_test"]) - eager_logits).abs().max().item()
    served_acc = (served == splits["y_test"]).float().mean().item()
    agreement = (served == eager_logits.argmax(1)).float().mean().item()
    logreg = LogisticRegression(max_iter=2000).fit(splits["x_train"].numpy(),
                                                   splits["y_train"].numpy())
    logreg_acc = logreg.score(splits["x_test"].numpy(), splits["y_test"].numpy())
    print(f"model.pt2 vs eager: max |diff| {pt2_diff:.1e}; predict.py (ONNX) labels agree with "
          f"eager on {agreement:.1%} of the test images")
    print(f"test accuracy: served model {served_acc:.1%} | nearest centroid {centroid_acc:.1%} | "
          f"logistic regression {logreg_acc:.1%}")
else:
    print("run the cell above first")

# %% [markdown]
# ## 9. The project's own tests
#
# The notebook's test cells check your functions today. The project needs tests of its own,
# which anyone can run with `python -m pytest -q` before changing anything, and which run
# in seconds. A test is a function whose name starts with `test_` and which raises (usually
# through `assert`) when something is wrong; `pytest.raises(ValueError, match=...)` checks that
# an error is raised with a matching message; pytest passes **fixtures** by argument name:
# here `core` (the module under test, from `tests/conftest.py`) and pytest's own `tmp_path`
# (a fresh temporary folder).
#
# Tests that pass prove little by themselves: `assert True` passes too. The way to find out
# whether tests can catch bugs is **mutation testing**: break the code on purpose, in the ways
# it could plausibly break, and check that some test fails each time. This course's grader
# checks its own tests that way.
#
# ### Exercise 15.56 — Tests that catch bugs (★★★, 4 points)
#
# Write at least **four** pytest tests of `pipeline/core.py`, as functions taking the fixture
# `core` (and `tmp_path` if they need a folder), calling everything through `core.` (e.g.
# `core.validate_config(...)`), and list them, with any helper functions they call, in
# `project_tests`. They are written to `tests/test_core.py` under a header that imports
# `copy, math, Path, numpy as np, pytest, torch, nn, F, yaml`. Together they must check:
#
# 1. `validate_config` rejects an unknown key with a message that starts with that key;
# 2. `validate_config` rejects bad learning rates (`0`, negative, above 1, a string);
# 3. `validate_config` fills in the defaults of a minimal config;
# 4. two training runs with the same seed (`seed_everything`, `build_model`,
#    `make_optimizer`, `train_one_epoch` on a tiny fixed data set) give identical weights,
#    even if the global generator is used between them, and another seed gives other weights;
# 5. a checkpoint resumes exactly: train, save, train on (the reference); then fresh objects
#    (another seed), `load_checkpoint`, train: identical weights, and the returned epoch.
#
# **Tests check:** at least 4 tests; all pass against your module; each of several broken
# modules makes at least one test fail (visible: `validate_config` silently drops unknown keys;
# `seed_everything` does not seed torch; `load_checkpoint` does not restore the optimizer;
# hidden: one broken module for each of items 2, 3 and 5 above); then `python -m pytest` on
# the project, in its own process, collects all your tests and passes them.
#
# **Hints:** keep the tests tiny (40 samples, 16 hidden units). A test that compares a run
# with *itself* cannot fail; run twice. Use `torch.equal` for bit-identity. Your test
# functions are also run in this kernel against each module, so they take only the fixtures
# `core` and `tmp_path`.

# %% nbgrader={"grade": false, "grade_id": "ex15_56_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
project_tests = []  # your test functions, and the helpers they call

### BEGIN SOLUTION
def test_config_rejects_unknown_key(core):
    with pytest.raises(ValueError, match=r"^learnig_rate:"):
        core.validate_config({"name": "t", "lr": 0.1, "epochs": 1, "learnig_rate": 0.1})


def test_config_rejects_bad_learning_rates(core):
    for lr in (0, -1e-3, 1.5, float("nan"), "1e-3", True):
        with pytest.raises(ValueError, match=r"^lr:"):
            core.validate_config({"name": "t", "lr": lr, "epochs": 1})


def test_config_fills_defaults(core):
    cfg = core.validate_config(yaml.safe_load("name: t\nlr: 1\nepochs: 2"))
    assert cfg == {"name": "t", "lr": 1.0, "epochs": 2, "seed": 0, "batch_size": 64,
                   "hidden": 128, "dropout": 0.1, "device": "cpu"}


def tiny_setup(core, seed):
    """(model, optimizer, generator) of a tiny config, built after seeding with `seed`."""
    cfg = core.validate_config({"name": "t", "lr": 0.01, "epochs": 2, "seed": seed,
                                "hidden": 16, "batch_size": 8})
    generator = core.seed_everything(seed)
    model = core.build_model(cfg)
    return model, core.make_optimizer(model, cfg), generator


def tiny_data():
    """40 fixed random images (40, 64) and labels (40,)."""
    return torch.rand(40, 64, generator=torch.Generator().manual_seed(99)), torch.arange(40) % 10


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_weights(core):
    x, y = tiny_data()

    def run(seed):
        model, optimizer, generator = tiny_setup(core, seed)
        core.train_one_epoch(model, optimizer, x, y, 8, generator)
        return weights(model)

    first = run(0)
    torch.rand(10)  # the global generator is used in between
    assert torch.equal(run(0), first)
    assert not torch.equal(run(1), first)


def test_checkpoint_resumes_exactly(core, tmp_path):
    x, y = tiny_data()
    model, optimizer, generator = tiny_setup(core, 0)
    core.train_one_epoch(model, optimizer, x, y, 8, generator)
    core.save_checkpoint(tmp_path / "epoch_1.pt", model, optimizer, generator, 1)
    core.train_one_epoch(model, optimizer, x, y, 8, generator)
    model2, optimizer2, generator2 = tiny_setup(core, 1)  # other weights, other generator
    assert core.load_checkpoint(tmp_path / "epoch_1.pt", model2, optimizer2, generator2) == 1
    core.train_one_epoch(model2, optimizer2, x, y, 8, generator2)
    assert torch.equal(weights(model2), weights(model))


project_tests += [test_config_rejects_unknown_key, test_config_rejects_bad_learning_rates,
                  test_config_fills_defaults, tiny_setup, tiny_data, weights,
                  test_same_seed_same_weights, test_checkpoint_resumes_exactly]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex15_56_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import subprocess
import types
import xml.etree.ElementTree as ET

checks.check_type(project_tests, list, "project_tests", hint="a list of your test functions")
checks.check(all(inspect.isfunction(f) for f in project_tests),
             "project_tests must hold functions (def ...).")
test_names = [f.__name__ for f in project_tests if f.__name__.startswith("test_")]
checks.check(len(test_names) >= 4, "write at least 4 tests and list them in project_tests.",
             ">= 4 functions named test_...", len(test_names))
write_project(tests=project_tests)
core_path = PROJECT / "pipeline" / "core.py"
core_source = core_path.read_text()


def _module(patch=""):
    """pipeline/core.py as written (plus `patch`, definitions that replace some functions)."""
    module = types.ModuleType("pipeline.core")
    module.__file__ = str(core_path)
    exec(compile(core_source + "\n\n" + patch, str(core_path), "exec"), module.__dict__)
    return module


def _failing(module):
    """{test name: error} of the tests in project_tests that fail against `module`."""
    failed = {}
    for fn in project_tests:
        if not fn.__name__.startswith("test_"):
            continue
        wanted = inspect.signature(fn).parameters
        with tempfile.TemporaryDirectory() as tmp:
            fixtures = {"core": module, "tmp_path": Path(tmp)}
            try:
                with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                    warnings.simplefilter("ignore")
                    fn(**{k: v for k, v in fixtures.items() if k in wanted})
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 -- assert, pytest.fail, any error
                failed[fn.__name__] = f"{type(err).__name__}: {str(err)[:100]}"
    return failed


failures = _failing(_module())
checks.check(not failures, "your tests must pass on your own module.", "no failures", failures,
             hint="fix the test (or the bug it found); tests take only the fixtures core, tmp_path")
BROKEN = {
    "validate_config silently drops unknown keys": '''
_validate_config = validate_config
def validate_config(raw):
    known = ("name", "lr", "epochs", "seed", "batch_size", "hidden", "dropout", "device")
    return _validate_config({k: v for k, v in raw.items() if k in known})
''',
    "seed_everything does not seed torch's global generator": '''
def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)
''',
    "load_checkpoint does not restore the optimizer": '''
_load_checkpoint = load_checkpoint
def load_checkpoint(path, model, optimizer, generator):
    epoch = _load_checkpoint(path, model, optimizer, generator)
    optimizer.state.clear()
    return epoch
''',
}
### BEGIN HIDDEN TESTS
BROKEN.update({
    "validate_config does not check the learning rate": '''
_validate_config = validate_config
def validate_config(raw):
    if isinstance(raw, dict) and "lr" in raw:
        cfg = _validate_config({**raw, "lr": 0.5})
        cfg["lr"] = raw["lr"]
        return cfg
    return _validate_config(raw)
''',
    "validate_config does not fill in defaults": '''
_validate_config = validate_config
def validate_config(raw):
    cfg = _validate_config(raw)
    return {k: v for k, v in cfg.items() if k in raw}
''',
    "load_checkpoint does not restore the shuffling generator": '''
_load_checkpoint = load_checkpoint
def load_checkpoint(path, model, optimizer, generator):
    state = generator.get_state()
    epoch = _load_checkpoint(path, model, optimizer, generator)
    generator.set_state(state)
    return epoch
''',
})
### END HIDDEN TESTS
caught = {bug: sorted(_failing(_module(patch))) for bug, patch in BROKEN.items()}
missed = [bug for bug, failed in caught.items() if not failed]
checks.check(not missed, "your tests all pass on deliberately broken modules.",
             "at least one failing test per broken module", missed,
             hint="items 1-5 of the task: one test each, and run twice what must be equal")

# For real: pytest on the project, in its own process.
junit = PROJECT / "reports" / "junit.xml"
junit.unlink(missing_ok=True)
(status, output), = run_commands({"pytest": ["-m", "pytest", "-q", "--color=no",
                                             "--junitxml", "reports/junit.xml"]}).values()
checks.check(junit.is_file(), "pytest did not run.", "reports/junit.xml", output[-1500:])
suite = ET.parse(junit).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
checks.check(status == 0 and counts == {"tests": len(test_names), "failures": 0, "errors": 0,
                                        "skipped": 0},
             "python -m pytest on the project did not collect and pass all your tests.",
             f"{len(test_names)} passed", f"{counts}, exit status {status}:\n{output[-1500:]}")
project_test_report = {"passed": counts["tests"], "broken caught": len(BROKEN) - len(missed),
                       "broken": len(BROKEN)}
print(f"pytest: {output.strip().splitlines()[-1]}; broken modules caught: "
      f"{len(BROKEN) - len(missed)}/{len(BROKEN)}")

# %% [markdown]
# The project folder as a colleague would receive it (the run folders shortened):

# %%
for path in sorted(PROJECT.rglob("*")):
    parts = path.relative_to(PROJECT).parts
    if "__pycache__" in parts or (len(parts) > 2 and parts[0] == "runs") or path.is_dir():
        continue
    print(f"{'/'.join(parts):40s} {path.stat().st_size:>9,d} bytes")

# %% [markdown]
# The headline numbers of the whole pipeline, in one line:

# %% tags=["autograde-skip"]
ready = all(name in globals() for name in ("served_acc", "project_test_report", "repro_report"))
if ready and "notebook == A" in repro_report:
    same = "bit-identical" if repro_report["notebook == A"] else "NOT identical"
    print(f"QUALITY: c5 served ONNX model {served_acc:.1%} test accuracy (nearest centroid "
          f"{centroid_acc:.1%}, logistic regression {logreg_acc:.1%}); notebook run, train.py "
          f"run A and resumed run D {same}; export max |diff| torch.export {pt2_diff:.1e}, "
          f"ONNX {onnx_diff:.1e}; project tests {project_test_report['passed']} passed, "
          f"{project_test_report['broken caught']}/{project_test_report['broken']} broken "
          "modules caught")
else:
    print("the QUALITY line needs every exercise and demo above")

# %% [markdown]
# ## Analysis
#
# Answer in a few sentences each, with the numbers you measured above.
#
# **1. Reproducibility.** The notebook's run and run A were separate processes; D was resumed
# in a third process from the notebook's epoch-4 checkpoint. What exactly made their final
# checkpoints identical, bit for bit? Name two changes that would make them differ (on this
# machine or on
# another), and say for each whether it would be a bug.

# %% [markdown] nbgrader={"grade": true, "grade_id": "ans15_c5_repro", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# Everything the three runs computed was fixed by the config and the data file, and nothing
# else: `seed_everything(cfg["seed"])` ran **before** `build_model`, so the initial weights and
# then every dropout mask came from the same global-generator stream; the shuffle came from a
# generator of its own, seeded from the config, so no other random draw could change the
# order; all three read the same saved split; and every process used one CPU thread (and
# `train.py` deterministic algorithms), so every sum was added in the same order. For D, the
# checkpoint held all the state the next epoch reads: weights, Adam's moments and step counts,
# the shuffling generator's state and the global RNG state for dropout. Measured: the epoch-20
# checkpoints of the notebook's run, A and D were equal tensor by tensor (validation accuracy
# 98.0 %).
#
# What would break it: (1) another thread count (or another CPU, or another PyTorch/MKL
# version) splits the matrix products' sums differently; the last bits change and training
# amplifies them. Not a bug, but the environment must be recorded with the results
# (`requirements.txt`, the versions in the log). (2) Running on a GPU without deterministic
# mode: atomic additions in some backward kernels add in a varying order, so two runs differ.
# A reproducibility bug if bit-identical reruns are promised. (Also a bug: a seed taken from
# the clock, or shuffling with the global generator, so that adding a layer reorders the data.)

# %% [markdown]
# **2. Tests.** Your tests passed on your module and failed on the broken ones. Why is "all
# tests pass" alone weak evidence? Name one bug in this project that your tests would still
# *not* catch, and the test that would.

# %% [markdown] nbgrader={"grade": true, "grade_id": "ans15_c5_tests", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# A passing test only shows that the code does what the test asks, and a test that asserts
# nothing, or compares a result with itself, passes on any code. Whether tests can *fail* is
# what the mutation check measured: my 5 tests passed on my module and each of the 6
# deliberately broken modules made at least one of them fail.
#
# Still not caught: anything about export. No test exports a model, so an `export_model`
# that forgets `model.eval()` (dropout left active inside the shipped graph) passes the whole
# suite. The test: export a tiny model with `core.export_model` into `tmp_path`, load the file
# back, and compare with the eager model in eval mode at batch sizes 1 and 7 (tolerance
# 1e-5). Likewise untested: `run_training`'s resume arithmetic (an off-by-one epoch) and the
# `train.py` command line; a smoke test would run `train.py` for two epochs on a tiny config in
# a subprocess and check the exit status, the files, and that a resumed run ends equal to a
# straight one.

# %% [markdown]
# **3. Shipping.** The inference script serves the ONNX file with `onnxruntime` only. What does
# that buy, what must you check before trusting the exported file, and how would you put the
# model behind an HTTP endpoint (FastAPI is not installed here: describe it)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "ans15_c5_serving", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# Serving with `onnxruntime` only means a small, fast-starting server: no PyTorch install
# (gigabytes with CUDA), `predict.py` ran in about half a second including start-up, and the
# model is a file that no longer depends on the Python code that defined it (other languages
# can run it too).
#
# Before trusting the file: load the file that ships, not the program in memory, and compare
# it with the eager model **in eval mode** on fresh inputs at several batch sizes, including 1.
# Here: max |ONNX − eager| = 2.2e-7 in the test of Exercise 15.54, `model.pt2` identical to
# eager, and predict.py's labels equal to eager's on 100 % of the 300 test images. Then score
# the served path on held-out data: 97.3 % test accuracy, against 90.0 % for the nearest
# centroid (and 96.3 % for a logistic regression: on this easy data the MLP buys little).
# Also check the input contract: shape (B, 64), float32, values in [0, 1].
#
# HTTP: a FastAPI app that creates the `InferenceSession` once at start-up; `POST /predict`
# takes `{"pixels": [[64 floats], ...]}` through a pydantic model that checks the shape and
# range (FastAPI answers 422 otherwise) and returns labels and confidences; `GET /health` for
# the load balancer. Tested with `fastapi.testclient.TestClient`: a good request returns the
# same labels as `predict.py`, a wrong shape gets a 422. Run with uvicorn, versions pinned in
# `requirements.txt`, ideally in a container.

# %% [markdown]
# ## Key takeaways
#
# - **Validate configs at the door.** `yaml.safe_load`, then a validator that rejects unknown
#   keys, missing keys, wrong types (`bool` is an `int`; `1e-3` is a string in YAML 1.1) and
#   out-of-range values, with a message that starts with the field name.
# - **Log, don't print.** Levels, a file per run next to its checkpoints, the config and the
#   versions at the top; remove old handlers so reruns do not duplicate lines.
# - **Reproducible means bit-identical across processes.** Seed every generator before
#   building the model, shuffle with a generator of your own, fix threads and deterministic
#   kernels, and verify it by comparing the checkpoints of two real runs.
# - **A checkpoint is all the state the next epoch reads**: model, optimizer, shuffling
#   generator, global RNG, epoch; saved atomically and loadable with `weights_only=True`.
# - **An export is checked on the file that ships**: loaded back, on fresh inputs, at new batch
#   sizes, against eager in eval mode; ONNX lets the server drop PyTorch.
# - **Tests must be able to fail.** Run them in their own process with pytest, and check them by
#   mutation: every plausible bug should break at least one test.

# %% [markdown]
# Finally, the temporary project folder is deleted: nothing of this notebook stays on disk.

# %%
_project_tmp.cleanup()
print(f"removed {PROJECT}: {not PROJECT.exists()}")
