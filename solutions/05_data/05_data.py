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
# # Chapter 5 — Data Loading & Preprocessing
#
# A model only ever sees what the data pipeline hands it. In chapters 1–4 the data were a
# couple of tensors already in memory; real projects start from files with gaps, rows in the
# wrong scale, sequences of different lengths and more samples than fit in RAM. This chapter
# builds the pipeline that turns all that into clean batches — and shows the classic ways it
# quietly lies to you (leaked statistics, optimistic splits, padding that counts as data).
#
# **What you will learn**
# - how `Dataset`, `Sampler`, `collate_fn` and `DataLoader` divide the work, and how to write
#   your own dataset for arrays, files, time series and point clouds;
# - how to cut a long, gappy real series (CO₂ at Mauna Loa) into forecasting windows;
# - transforms and data augmentation, applied on the fly;
# - normalization with **training statistics only**, and what goes wrong otherwise;
# - padding, masks and `pack_padded_sequence` for variable-length sequences;
# - random, stratified and temporal splits — and which one tells the truth for forecasting;
# - what workers, `pin_memory` and memory-mapped files buy you, measured.
#
# **Prerequisites:** chapters 1–4 (tensors, autograd, `nn.Module`, the training loop).
# We call `helpers.train.fit`, the loop you wrote in chapter 4, so that the focus stays on data.
#
# **Expected time:** 3–4 hours, exercises included. The notebook runs top to bottom in about
# half a minute on a laptop CPU.
#
# Work through the cells in order. Exercises are marked **Exercise 5.k**: write your answer in
# the cell that says `# YOUR CODE HERE`, then run the test cell below it. A failing test tells
# you what it expected, what it got, and gives a hint. Some tests are hidden and run when your
# notebook is graded, so make your code correct, not just green. The exercises are numbered
# 5.1–5.7 as in the syllabus and sit in the section that teaches what they need, so 5.3 comes
# before 5.2.

# %% [markdown]
# ## Setup
# One cell for everything we import. `helpers.setup()` seeds every random generator, picks the
# device (a GPU if there is one) and sets the plot style. Our models are tiny: one CPU thread is
# all they need, and it leaves the other cores to the data-loading workers of section 5.3.10.

# %%
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image  # Pillow, the image library behind torchvision
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, Subset,
                              TensorDataset, WeightedRandomSampler, default_collate, random_split)
from torchvision.transforms import v2

import helpers
from helpers import checks
from helpers import data as hdata
from helpers import plot as hplot
from helpers.train import evaluate, fit

device = helpers.setup(seed=0, threads=1)
WORKDIR = Path(tempfile.mkdtemp(prefix="ch05_"))  # every file of this chapter goes here
print("device:", device, "| files in:", WORKDIR)

# %% [markdown]
# ## 5.1 Why data loading deserves a chapter
#
# So far training looked like `loss = loss_fn(model(X), y)` with `X` one tensor in memory.
# That stops working as soon as
#
# - the data set is larger than memory (images, simulations, sensor archives);
# - the raw data live in files — CSV tables, image folders, NumPy archives — and need parsing;
# - each sample needs preprocessing, and random augmentation that must differ every epoch;
# - samples have different shapes: sentences, time series of different duration, point clouds;
# - the GPU is fast enough to sit idle while Python reads the next batch.
#
# PyTorch splits the problem in two. A **`Dataset`** answers *"what is sample `i`?"*.
# A **`DataLoader`** answers *"which samples go together, in what order, assembled how, and by
# which process?"*. Keeping the two apart is what lets the same dataset serve training
# (shuffled, augmented, in parallel) and evaluation (in order, untouched).

# %% [markdown]
# ## 5.2 The architecture: sampler → dataset → collate → batch
#
# ```
#  Sampler            Dataset                 collate_fn               model
#  (which indices) →  dataset[i] for each i → list of samples → batch → model(batch)
#  shuffle, weights   read, decode, transform  stack / pad               (.to(device))
#                     ── runs in worker processes when num_workers > 0 ──
# ```
#
# A **map-style** dataset implements two methods: `__len__()` (how many samples) and
# `__getitem__(i)` (sample `i`, for `0 <= i < len`). An **iterable-style** dataset
# (`IterableDataset`) implements `__iter__` instead, for streams without random access; we
# stay with map-style datasets, which are by far the most common.
#
# Here is the smallest useful dataset, so that every step can be followed by eye. Note the
# `IndexError` for indices out of range: Python's `for` loop over an object with only
# `__getitem__` stops exactly when that error appears.

# %%
class Squares(Dataset):
    """Sample i is the pair (i, i**2), both float32 scalars."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} samples")
        return torch.tensor(float(i)), torch.tensor(float(i) ** 2)


squares = Squares(10)
print(len(squares), squares[3], len(list(squares)))

# %% [markdown]
# The `DataLoader` does three things with it. A **sampler** produces the order of indices (a
# fresh random permutation each epoch when `shuffle=True`); a **batch sampler** cuts that order
# into groups of `batch_size`; `collate_fn` turns each group's list of samples into one batch.
# Let us run the three pieces by hand.

# %%
sampler = RandomSampler(squares, generator=torch.Generator().manual_seed(0))
index_batches = list(BatchSampler(sampler, batch_size=4, drop_last=False))
print("index batches:", index_batches)  # 10 samples -> 4 + 4 + 2
samples = [squares[i] for i in index_batches[0]]  # a list of 4 (x, y) pairs
xb, yb = default_collate(samples)  # pairs -> (tensor of all x, tensor of all y)
print("collated:", xb, yb)
print("dicts collate too:", default_collate([{"x": torch.ones(2), "label": 1},
                                             {"x": torch.zeros(2), "label": 0}]))

# %% [markdown]
# `default_collate` follows the structure of a sample: a tuple of tensors becomes a tuple of
# stacked tensors (a new leading batch dimension `B`), a dict becomes a dict, Python numbers
# become a tensor. It only fails when the tensors it must stack have different shapes — the
# problem of section 5.3.8. The `DataLoader` packages all of this:

# %%
loader = DataLoader(squares, batch_size=4, shuffle=True,
                    generator=torch.Generator().manual_seed(0))
for epoch in range(2):
    print(f"epoch {epoch}:", [xb.int().tolist() for xb, _ in loader])
print("batches per epoch:", len(loader))

# %% [markdown]
# Each epoch visits every sample exactly once, in a new order. With a seeded `generator` the
# order is reproducible — and independent of whatever else in the notebook draws random numbers.

# %% [markdown]
# ## 5.3 Implementation
# ### 5.3.1 Built-in datasets
#
# `torchvision.datasets` knows the classic benchmarks (MNIST, CIFAR-10, ImageNet folders …) and
# downloads them on request. This course runs offline, so the download sits behind a flag that
# is `False`; on a machine with internet access, set it to `True` and it fetches ~12 MB.

# %%
DOWNLOAD = False  # True fetches MNIST into ./data (needs internet; not needed anywhere below)

if DOWNLOAD:
    import torchvision

    to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    mnist = torchvision.datasets.MNIST(root="data", train=True, download=True,
                                       transform=to_tensor)
    print(len(mnist), mnist[0][0].shape)  # 60000 torch.Size([1, 28, 28])
else:
    print("MNIST skipped: we use scikit-learn's digits, which ship with the package.")

# %% [markdown]
# Our stand-in is scikit-learn's **handwritten digits**: 1,797 real scans, 8×8 pixels, labels
# 0–9. When the data already sit in tensors, `TensorDataset` is the ready-made dataset: item
# `i` is the tuple of the `i`-th rows.

# %%
X_digits, y_digits = hdata.digits()  # (1797, 1, 8, 8) float32 in [0, 1], (1797,) int64
digits_ds = TensorDataset(X_digits, y_digits)
digits_loader = DataLoader(digits_ds, batch_size=64, shuffle=True,
                           generator=torch.Generator().manual_seed(0))
images, labels = next(iter(digits_loader))
print(images.shape, images.dtype, labels.shape, labels.dtype)  # (B, C, H, W), (B,)
print("batches:", len(digits_loader), "| with drop_last:",
      len(DataLoader(digits_ds, batch_size=64, drop_last=True)))

# %%
hplot.image_grid(images[:16], titles=[f"label {k}" for k in labels[:16].tolist()],
                 title="One shuffled batch of digits (first 16 of B = 64)")
plt.show()

# %% [markdown]
# 1,797 = 28 × 64 + 5, so the last batch holds only 5 digits; `drop_last=True` drops it
# (useful when a layer such as batch normalization misbehaves on tiny batches).
#
# | `DataLoader` argument | what it does | typical value |
# | --- | --- | --- |
# | `batch_size` | samples per batch | 32–256 |
# | `shuffle` | new random order every epoch | `True` for training, `False` for evaluation |
# | `generator` | the random generator of the shuffle | seeded for reproducible runs |
# | `drop_last` | drop an incomplete last batch | `False` unless a layer needs full batches |
# | `collate_fn` | how a list of samples becomes a batch | `default_collate`; custom for padding |
# | `num_workers` | processes that load in parallel | 0 (main process) … number of cores |
# | `pin_memory` | page-locked host memory for faster copies to a GPU | `True` only with CUDA |
# | `persistent_workers` | keep workers alive between epochs | `True` when workers are slow to start |

# %% [markdown]
# ### 5.3.2 Creating custom datasets
#
# For your own data you subclass `Dataset`. A good dataset class
# - does the expensive, one-off work (reading, parsing, generating) in `__init__`, or lazily;
# - keeps `__getitem__` cheap and **free of side effects**: it may be called in any order, many
#   times, from several processes;
# - returns tensors with documented shapes and dtypes — float32 inputs and int64 class labels
#   are what PyTorch's layers and losses expect.

# %% [markdown]
# ### Exercise 5.1 — A synthetic regression dataset (★★, 3 points)
#
# Write your first dataset: $n$ samples of
# $$y = 2x_1 + 3x_2 + \varepsilon,\qquad x_1, x_2 \sim \mathcal N(0, 1),\quad
#   \varepsilon \sim \mathcal N(0, \sigma^2),\ \sigma = \texttt{noise\_std},$$
# and a loader that shuffles it.
#
# - `LinearDataset(n=1000, noise_std=0.1, seed=0)` draws all numbers **once**, in `__init__`,
#   from a private `torch.Generator().manual_seed(seed)` (so the same seed gives the same data
#   and the global random state is left alone). It stores `self.X`, float32 of shape `(n, 2)`,
#   and `self.y`, float32 of shape `(n, 1)`.
# - `len(ds)` is `n`; `ds[i]` returns the pair `(X[i], y[i])` with shapes `(2,)` and `(1,)`;
#   an index out of range raises `IndexError`.
# - `make_loader(dataset, batch_size=32, seed=0)` returns a `DataLoader` that shuffles, with a
#   generator seeded by `seed`, and keeps the last incomplete batch.
#
# The tests check shapes and dtypes, that a least-squares fit of your data recovers the
# coefficients 2 and 3 and a residual spread of `noise_std`, that the seed makes the data
# reproducible, and that one epoch of your loader visits every sample exactly once, shuffled,
# in ⌈n / batch_size⌉ batches.
#
# *Hints:* `torch.randn(n, 2, generator=gen)`; `X[:, :1]` keeps the column dimension;
# `DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(seed))`.

# %% nbgrader={"grade": false, "grade_id": "ex05_1_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LinearDataset(Dataset):
    """n samples of y = 2 x1 + 3 x2 + noise. X: (n, 2) float32, y: (n, 1) float32."""

    def __init__(self, n: int = 1000, noise_std: float = 0.1, seed: int = 0):
        ### BEGIN SOLUTION
        gen = torch.Generator().manual_seed(seed)
        self.X = torch.randn(n, 2, generator=gen)
        noise = noise_std * torch.randn(n, 1, generator=gen)
        self.y = 2 * self.X[:, :1] + 3 * self.X[:, 1:] + noise
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.X)
        ### END SOLUTION

    def __getitem__(self, i: int):
        """Return (X[i] of shape (2,), y[i] of shape (1,))."""
        ### BEGIN SOLUTION
        return self.X[i], self.y[i]
        ### END SOLUTION


def make_loader(dataset: Dataset, batch_size: int = 32, seed: int = 0) -> DataLoader:
    """A shuffling DataLoader over dataset whose order is fixed by seed."""
    ### BEGIN SOLUTION
    return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))
    ### END SOLUTION

# %% [markdown]
# Run one epoch and look at the batch shapes: 31 full batches of 32, then the 8 samples left.

# %%
linear_ds = LinearDataset()
shapes = [(tuple(xb.shape), tuple(yb.shape)) for xb, yb in make_loader(linear_ds)]
print(len(shapes), "batches; first:", shapes[0], "last:", shapes[-1])

# %% nbgrader={"grade": true, "grade_id": "ex05_1_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
ds = LinearDataset(1000, noise_std=0.1, seed=0)
checks.check_equal(len(ds), 1000, "len(LinearDataset(1000))")
checks.check_tensor(ds.X, "ds.X", shape=(1000, 2), dtype=torch.float32)
checks.check_tensor(ds.y, "ds.y", shape=(1000, 1), dtype=torch.float32,
                    hint="keep the column dimension: y has shape (n, 1)")
x0, y0 = ds[0]
checks.check_tensor(x0, "ds[0][0]", shape=(2,), dtype=torch.float32)
checks.check_tensor(y0, "ds[0][1]", shape=(1,), dtype=torch.float32)
checks.check_equal(x0, ds.X[0], "ds[0][0]", hint="item i is (X[i], y[i])")
# An independent least-squares fit of y on [x1, x2, 1] must recover 2, 3 and the noise level.
A = torch.cat([ds.X.double(), torch.ones(1000, 1, dtype=torch.float64)], dim=1)
coef = torch.linalg.lstsq(A, ds.y.double()).solution.flatten()
checks.check_close(coef, torch.tensor([2.0, 3.0, 0.0]), "least-squares coefficients [2, 3, 0]",
                   atol=0.02, hint="y = 2 * x1 + 3 * x2 + noise")
resid_std = (ds.y.double() - A @ coef.unsqueeze(1)).std().item()
checks.check_close(resid_std, 0.1, "spread of the residuals (noise_std)", rtol=0.1,
                   hint="the noise is noise_std * standard normal")
loader = make_loader(ds, batch_size=32)
checks.check_type(loader, DataLoader, "make_loader(ds)")
sizes = [len(xb) for xb, _ in loader]
checks.check_equal(sizes, [32] * 31 + [8], "batch sizes of one epoch",
                   hint="1000 = 31 * 32 + 8; keep the last batch (drop_last=False)")
### BEGIN HIDDEN TESTS
checks.check_equal(LinearDataset(50, 0.1, seed=3).X, LinearDataset(50, 0.1, seed=3).X,
                   "X for the same seed", hint="use a private generator seeded with seed")
checks.check(not torch.equal(LinearDataset(50, 0.1, seed=3).X, LinearDataset(50, 0.1, seed=4).X),
             "different seeds must give different data")
torch.manual_seed(123)
before = torch.rand(1)
torch.manual_seed(123)
LinearDataset(20, 0.1, seed=0)
checks.check_equal(torch.rand(1), before, "the global random state after building a dataset",
                   hint="draw from torch.Generator().manual_seed(seed), not the global one")
exact = LinearDataset(200, noise_std=0.0, seed=1)
checks.check_close(exact.y, 2 * exact.X[:, :1] + 3 * exact.X[:, 1:], "y without noise",
                   rtol=1e-6, atol=1e-6)
big = LinearDataset(5000, noise_std=0.5, seed=2)
checks.check_close(big.X.mean(0), torch.zeros(2), "mean of X", atol=0.06)
checks.check_close(big.X.std(0), torch.ones(2), "std of X", atol=0.06)
noise = big.y - 2 * big.X[:, :1] - 3 * big.X[:, 1:]
checks.check_close(noise.std().item(), 0.5, "std of the noise for noise_std=0.5", rtol=0.06)
small = LinearDataset(7, 0.1, seed=0)
checks.check_equal(len(small), 7, "len(LinearDataset(7))")
checks.check_raises(lambda: small[7], IndexError, "small[7] (out of range)")
xs, ys = [], []
for xb, yb in make_loader(big, batch_size=100, seed=5):
    checks.check_shape(xb, (None, 2), "a batch of X")
    xs.append(xb)
    ys.append(yb)
seen = torch.cat(xs)
checks.check_equal(len(xs), 50, "number of batches for n=5000, batch_size=100")
checks.check(not torch.equal(seen[:100], big.X[:100]), "the loader must shuffle",
             hint="shuffle=True")
checks.check_equal(torch.sort(seen[:, 0]).values, torch.sort(big.X[:, 0]).values,
                   "the samples seen in one epoch", hint="every sample exactly once per epoch")
again = torch.cat([xb for xb, _ in make_loader(big, batch_size=100, seed=5)])
checks.check_equal(again, seen, "the order for the same seed", hint="seed the loader's generator")
other = torch.cat([xb for xb, _ in make_loader(big, batch_size=100, seed=6)])
checks.check(not torch.equal(other, seen), "different seeds must give different orders")
### END HIDDEN TESTS

# %% [markdown]
# ### 5.3.3 Datasets from files
#
# Real data arrive as files. Two patterns cover most cases:
#
# - **eager:** read a small file once in `__init__` (a CSV table, an `.npz` archive) and index
#   tensors in `__getitem__`;
# - **lazy:** keep only a list of paths (or a table of file names and labels) in memory and
#   open one file per `__getitem__` — the only option when the data do not fit in memory.
#
# Let us make a small folder of image files with a label table — the layout of most image
# collections — by saving 40 digits as PNG files in the chapter's temporary directory.

# %%
image_dir = WORKDIR / "digit_pngs"
image_dir.mkdir(exist_ok=True)
rows = []
for k in range(40):
    name = f"digit_{k:03d}.png"
    grey = (X_digits[k, 0].numpy() * 255).round().astype(np.uint8)  # 8-bit grey levels
    Image.fromarray(grey).save(image_dir / name)  # uint8 (H, W) -> a grey PNG
    rows.append({"file": name, "label": int(y_digits[k])})
pd.DataFrame(rows).to_csv(image_dir / "labels.csv", index=False)
print((image_dir / "labels.csv").read_text().splitlines()[:4], "...")

# %% [markdown]
# The dataset reads the small label table eagerly and each image lazily, with Pillow. An
# optional `transform` is applied to every image it returns — the hook used by augmentation in
# section 5.3.6.

# %%
class ImageFolderCSV(Dataset):
    """Images listed in labels.csv (columns file, label): ((1, H, W) float32 in [0, 1], int64)."""

    def __init__(self, folder: Path, transform=None):
        self.folder, self.transform = Path(folder), transform
        self.table = pd.read_csv(self.folder / "labels.csv")  # small: read once

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int):
        row = self.table.iloc[i]
        with Image.open(self.folder / row["file"]) as img:  # opened only when asked for
            pixels = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        image = torch.from_numpy(pixels).unsqueeze(0)  # (1, H, W)
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(row["label"], dtype=torch.int64)


png_ds = ImageFolderCSV(image_dir)
images, labels = next(iter(DataLoader(png_ds, batch_size=8)))
print(images.shape, labels.tolist(), "| max error after the PNG round trip:",
      f"{(images[:, 0] - X_digits[:8, 0]).abs().max().item():.4f}")

# %% [markdown]
# The round trip through 8-bit PNG files costs at most half a grey level, 1/510 ≈ 0.002.
#
# Tables and series travel as **CSV**; arrays as NumPy's **`.npz`** archives (several named
# arrays, compressed, exact). We save the weekly CO₂ record of Mauna Loa in both formats. It
# has missing weeks: NumPy's `NaN` becomes an empty field in the CSV and comes back as `NaN`.

# %%
co2_time, co2_ppm = hdata.co2()  # decimal years, ppm; float64 (2284,)
pd.DataFrame({"year": co2_time, "ppm": co2_ppm}).to_csv(WORKDIR / "co2.csv", index=False)
np.savez_compressed(WORKDIR / "co2.npz", year=co2_time, ppm=co2_ppm)
print((WORKDIR / "co2.csv").read_text().splitlines()[5:9])

frame = pd.read_csv(WORKDIR / "co2.csv")
with np.load(WORKDIR / "co2.npz") as archive:
    same = np.array_equal(archive["ppm"], frame["ppm"].to_numpy(), equal_nan=True)
print(frame.shape, "| missing weeks:", int(frame["ppm"].isna().sum()), "| npz == csv:", same)

# %% [markdown]
# ### 5.3.4 Datasets for time series
#
# A forecasting model learns from many (past → future) pairs cut from one long series. First
# the data: the CO₂ record has a rising trend, a yearly cycle, and 59 missing weeks. The red
# ticks mark them.

# %%
year = frame["year"].to_numpy()
ppm = frame["ppm"].to_numpy()
missing = np.isnan(ppm)
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(year, ppm, lw=0.8, label="weekly mean")
ax.plot(year[missing], np.full(missing.sum(), np.nanmin(ppm) - 2), "|", color="C3", ms=10,
        label=f"missing week ({missing.sum()})")
ax.set(title="Atmospheric CO$_2$ at Mauna Loa, 1958–2001", xlabel="year", ylabel="CO$_2$ (ppm)")
ax.legend()
plt.show()

# %% [markdown]
# A window must cover equally spaced weeks, so we can neither drop the missing rows (the
# window would silently jump over time) nor set them to zero (a 300 ppm plunge). The gaps are
# short — mostly single weeks, the longest 18 weeks in 1964 — so **linear interpolation in
# time** is a sound repair. Whatever you choose, decide it before you cut windows, and count
# how much you invented.

# %%
def fill_gaps(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Replace NaNs by linear interpolation between the nearest observed neighbours in time."""
    gap = np.isnan(values)
    filled = values.copy()
    filled[gap] = np.interp(t[gap], t[~gap], values[~gap])
    return filled


co2_filled = fill_gaps(year, ppm)
runs = np.diff(np.flatnonzero(np.diff(np.r_[0, missing.astype(int), 0])))[::2]  # gap lengths
print("filled:", int(missing.sum()), "weeks =", f"{missing.mean():.1%}", "| gap lengths:",
      np.sort(runs)[::-1][:5], "| NaN left:", int(np.isnan(co2_filled).sum()))

# %% [markdown]
# Now the windows. From a series $s_0, \dots, s_{T-1}$, with input length $W$ (the *window*),
# prediction length $H$ (the *horizon*) and step $S$ between windows (the *stride*), sample
# $i$ is
# $$x^{(i)} = (s_{iS}, \dots, s_{iS+W-1}),\qquad y^{(i)} = (s_{iS+W}, \dots, s_{iS+W+H-1}).$$
# The last index used, $iS + W + H - 1$, must be at most $T-1$, so the number of samples is
# $$N = \left\lfloor \frac{T - W - H}{S} \right\rfloor + 1 \quad\text{if } T \ge W + H,
#   \qquad N = 0 \text{ otherwise}.$$
# Off-by-one errors here are the most common bug in forecasting code: a window too many reads
# past the end, a window too few wastes the most recent (most valuable) data, and a target
# that starts one step early lets the model copy its input.

# %% [markdown]
# ### Exercise 5.3 — Sliding-window dataset (★★★, 4 points)
#
# Write `WindowDataset(series, window, horizon, stride=1)`:
#
# - `series`: a NumPy array or tensor of shape `(T,)` or `(T, C)`; store it as a float32
#   tensor (a copy: later changes to the caller's array must not reach the dataset).
# - `window`, `horizon`, `stride`: positive ints; anything else raises `ValueError`.
# - `len(ds)` is $N$ above (0 when the series is shorter than `window + horizon`).
# - `ds[i]` returns `(x, y)`: `x` of shape `(window,)` or `(window, C)`, `y` of shape
#   `(horizon,)` or `(horizon, C)`, float32. Negative `i` counts from the end as for a list;
#   `i >= len(ds)` or `i < -len(ds)` raises `IndexError`.
#
# The tests check the length for many `(T, window, horizon, stride)`, the first and the last
# window against a direct slice, the edges (a series of exactly `window + horizon` points,
# one shorter, indices just out of range) and multichannel series.
#
# *Hints:* the start of sample `i` is `i * stride`. Check the range yourself before slicing —
# slicing past the end of a tensor does not raise, it silently returns fewer elements.

# %% nbgrader={"grade": false, "grade_id": "ex05_3_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class WindowDataset(Dataset):
    """(past window -> next horizon) pairs cut from a series of shape (T,) or (T, C)."""

    def __init__(self, series, window: int, horizon: int, stride: int = 1):
        ### BEGIN SOLUTION
        for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.series = torch.as_tensor(series).to(torch.float32).clone()
        self.window, self.horizon, self.stride = window, horizon, stride
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        span = len(self.series) - self.window - self.horizon
        return span // self.stride + 1 if span >= 0 else 0
        ### END SOLUTION

    def __getitem__(self, i: int):
        """Return (x, y): x (window,) or (window, C); y (horizon,) or (horizon, C)."""
        ### BEGIN SOLUTION
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index out of range for {n} windows")
        start = i * self.stride
        x = self.series[start:start + self.window]
        y = self.series[start + self.window:start + self.window + self.horizon]
        return x, y
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_3_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
s = torch.arange(20, dtype=torch.float32)  # the value equals the time step: easy to read
ds = WindowDataset(s, window=5, horizon=3)
checks.check_equal(len(ds), 13, "len for T=20, window=5, horizon=3, stride=1",
                   hint="N = (T - W - H) // S + 1 = 12 // 1 + 1")
x, y = ds[0]
checks.check_equal(x, torch.arange(0.0, 5.0), "ds[0] input")
checks.check_equal(y, torch.arange(5.0, 8.0), "ds[0] target", hint="the target starts right "
                   "after the window: s[W : W + H]")
x, y = ds[12]
checks.check_equal(x, torch.arange(12.0, 17.0), "the last input window ds[12]")
checks.check_equal(y, torch.arange(17.0, 20.0), "the last target ds[12]",
                   hint="the last window ends exactly at the last point of the series")
checks.check_raises(lambda: ds[13], IndexError, "ds[13] (one past the last window)",
                    hint="check the index yourself: slicing past the end does not raise")
ds2 = WindowDataset(s, window=5, horizon=3, stride=2)
checks.check_equal(len(ds2), 7, "len with stride=2", hint="(20 - 5 - 3) // 2 + 1")
checks.check_equal(ds2[6][0], torch.arange(12.0, 17.0), "ds2[6] input (starts at 6 * 2)")
### BEGIN HIDDEN TESTS
def _ref_windows(series, W, H, S):
    """Every (x, y) pair by brute force: all starts whose window and target fit."""
    pairs, start = [], 0
    while start + W + H <= len(series):
        pairs.append((series[start:start + W], series[start + W:start + W + H]))
        start += S
    return pairs


gen = torch.Generator().manual_seed(7)
for n_t, w, h, st in [(50, 10, 5, 1), (50, 10, 5, 3), (51, 10, 5, 3), (30, 1, 1, 1),
                   (15, 12, 3, 1), (14, 12, 3, 1), (10, 8, 5, 1), (100, 7, 4, 10), (9, 3, 2, 100)]:
    series = torch.randn(n_t, generator=gen)
    ref = _ref_windows(series, w, h, st)
    got = WindowDataset(series, w, h, st)
    checks.check_equal(len(got), len(ref), f"len for T={n_t}, W={w}, H={h}, S={st}")
    for k in ([0, len(ref) - 1] if ref else []):
        checks.check_equal(got[k][0], ref[k][0], f"input {k} for T={n_t}, W={w}, H={h}, S={st}")
        checks.check_equal(got[k][1], ref[k][1], f"target {k} for T={n_t}, W={w}, H={h}, S={st}")
    if ref:
        checks.check_equal(got[-1][1], ref[-1][1], "ds[-1] target (negative index)")
        checks.check_equal(got[-len(ref)][0], ref[0][0], "ds[-len] input")
    checks.check_raises(lambda: got[len(ref)], IndexError, f"ds[len] for T={n_t}, W={w}, H={h}")
    checks.check_raises(lambda: got[-len(ref) - 1], IndexError, "ds[-len - 1]")
    checks.check_equal(len(list(got)), len(ref), "the number of items a for loop yields")
multi = torch.randn(40, 3, generator=gen, dtype=torch.float64)
dm = WindowDataset(multi.numpy(), 8, 4, 2)
ref = _ref_windows(multi.float(), 8, 4, 2)
checks.check_equal(len(dm), len(ref), "len for a (T, C) series")
checks.check_equal(dm[len(ref) - 1][1], ref[-1][1], "the last target of a (T, C) float64 series",
                   hint="store the series as float32")
checks.check_shape(dm[0][0], (8, 3), "input of a (T, C) series")
arr = np.arange(12, dtype=np.float32)  # float32: torch.as_tensor would share its memory
da = WindowDataset(arr, 3, 2)
arr[:] = -1.0
checks.check_equal(da[0][0], torch.tensor([0.0, 1.0, 2.0]), "input after changing the source array",
                   hint="keep a float32 copy of the series")
xb, yb = next(iter(DataLoader(WindowDataset(torch.arange(30.0), 6, 2), batch_size=4)))
checks.check_shape(xb, (4, 6), "a DataLoader batch of inputs")
checks.check_equal(yb[3], torch.tensor([9.0, 10.0]), "target of the 4th window in a batch")
for bad in [dict(window=0, horizon=1), dict(window=3, horizon=0),
            dict(window=3, horizon=1, stride=0), dict(window=2.5, horizon=1)]:
    checks.check_raises(lambda: WindowDataset(torch.arange(10.0), **bad), ValueError,
                        f"WindowDataset with {bad}")
### END HIDDEN TESTS

# %% [markdown]
# #### The CO₂ series and its windows
#
# One year of weekly data is $W = 52$ points — a full seasonal cycle — and we forecast the next
# quarter, $H = 13$ weeks. With stride 1 consecutive windows overlap in 51 of their 52 weeks.
# The figure shows three windows cut from the series, and one (input, target) pair up close.

# %%
W, H = 52, 13
co2_windows = WindowDataset(co2_filled, window=W, horizon=H)
x, y = co2_windows[0]
print(f"T = {len(co2_filled)} weeks -> {len(co2_windows)} windows; x {tuple(x.shape)}, "
      f"y {tuple(y.shape)}")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2, 1]})
ax1.plot(year, co2_filled, color="0.6", lw=0.8, label="series (gaps filled)")
for k, i in enumerate([300, 900, 1500]):
    ax1.axvspan(year[i], year[i + W - 1], color="C0", alpha=0.25,
                label="input (52 weeks)" if k == 0 else None)
    ax1.axvspan(year[i + W], year[i + W + H - 1], color="C3", alpha=0.35,
                label="target (13 weeks)" if k == 0 else None)
ax1.set(title="Three windows cut from the series", xlabel="year", ylabel="CO$_2$ (ppm)")
ax1.legend(loc="upper left")
x, y = co2_windows[900]
ax2.plot(range(W), x, "o-", ms=2, color="C0", label="input x")
ax2.plot(range(W, W + H), y, "o-", ms=2, color="C3", label="target y")
ax2.set(title="Sample 900 up close", xlabel="week within the sample", ylabel="CO$_2$ (ppm)")
ax2.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Notice the seasonal saw-tooth inside each window and the ~1.5 ppm/year climb between windows.
#
# #### A first forecaster, and the split it deserves
#
# We keep the **time order** when splitting: the first 70 % of the weeks train, the next 15 %
# validate, the last 15 % test, and windows are cut *inside* each part so that no window
# straddles two parts. (Section 5.3.9 measures why a random split of windows would flatter us.)
# The scale comes from the **training part only** — section 5.3.7 explains why.

# %%
n_train, n_val = int(0.70 * len(co2_filled)), int(0.15 * len(co2_filled))
parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
         "test": slice(n_train + n_val, None)}
mu, sigma = co2_filled[parts["train"]].mean(), co2_filled[parts["train"]].std()
co2_scaled = (co2_filled - mu) / sigma  # training statistics, applied to every part
co2_sets = {name: WindowDataset(co2_scaled[part], W, H) for name, part in parts.items()}
print({name: len(ds) for name, ds in co2_sets.items()},
      f"| mu = {mu:.1f} ppm, sigma = {sigma:.1f} ppm")

fig, ax = plt.subplots(figsize=(9, 3.2))
for (name, part), color in zip(parts.items(), ["C0", "C1", "C2"]):
    ax.plot(year[part], co2_filled[part], color=color, lw=0.8,
            label=f"{name} ({len(year[part])} weeks)")
ax.axhline(mu, color="0.4", ls="--", lw=0.8, label="training mean")
ax.set(title="Temporal split: the model is tested on years it has never seen", xlabel="year",
       ylabel="CO$_2$ (ppm)")
ax.legend(ncol=2)
plt.show()

# %% [markdown]
# Look at the test years: every value lies above anything in training. A network that maps
# input *levels* to output levels must extrapolate there. A simple fix is to let it predict the
# **change from the last observed week** — the same idea as normalizing each window by its own
# last value. We train both, and compare with the *persistence* baseline that repeats the last
# observed value; all errors are mean absolute errors in ppm on the test years.

# %%
class ChangeFromLast(nn.Module):
    """Wrap a network so that it predicts the change from the window's last value."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):  # x: (B, W)
        last = x[:, -1:]  # (B, 1)
        return last + self.net(x - last)  # (B, H)


def mlp(window: int = W, horizon: int = H) -> nn.Module:
    return nn.Sequential(nn.Linear(window, 64), nn.ReLU(), nn.Linear(64, horizon))

# %% tags=["autograde-skip"]
co2_loaders = {name: DataLoader(ds, batch_size=128, shuffle=(name == "train"),
                                generator=torch.Generator().manual_seed(0))
               for name, ds in co2_sets.items()}
torch.manual_seed(0)
co2_models = {"level": mlp(), "change": ChangeFromLast(mlp())}
for name, model in co2_models.items():
    model.to(device)
    fit(model, co2_loaders["train"], nn.MSELoss(), torch.optim.Adam(model.parameters(), 3e-3),
        epochs=15, val_loader=co2_loaders["val"], device=device, progress=False)
x_test, y_test = next(iter(DataLoader(co2_sets["test"], batch_size=len(co2_sets["test"]))))
co2_mae = {"persistence": float((x_test[:, -1:] - y_test).abs().mean() * sigma)}  # in ppm
for name, model in co2_models.items():
    co2_mae[name] = evaluate(model, co2_loaders["test"], nn.L1Loss(), device)["loss"] * sigma
print({name: f"{mae:.2f} ppm" for name, mae in co2_mae.items()})
print(f"QUALITY: CO2 13-week forecast, test MAE {co2_mae['change']:.2f} ppm "
      f"(persistence {co2_mae['persistence']:.2f} ppm)")

# %% [markdown]
# The change model beats persistence by a wide margin; the level model does too, but pays for
# extrapolating beyond the training range. Here are the change model's 13-week forecasts,
# started every 26 weeks across the test years (red segments), against what happened.

# %% tags=["autograde-skip"]
test_year = year[parts["test"]]
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(test_year, co2_filled[parts["test"]], color="0.3", lw=1, label="observed (test years)")
model = co2_models["change"].eval()
with torch.no_grad():
    for i in range(0, len(co2_sets["test"]), 26):
        x, _ = co2_sets["test"][i]
        pred = model(x.unsqueeze(0).to(device)).cpu().squeeze(0) * sigma + mu  # back to ppm
        ax.plot(test_year[i + W:i + W + H], pred, color="C3", lw=2,
                label="13-week forecast" if i == 0 else None)
ax.set(title=f"Forecasts on unseen years (test MAE {co2_mae['change']:.2f} ppm)",
       xlabel="year", ylabel="CO$_2$ (ppm)")
ax.legend()
plt.show()

# %% [markdown]
# ### 5.3.5 Datasets for point clouds
#
# A point cloud — atoms of a molecule, a LiDAR scan, particles of a simulation — is a set of
# $N$ points in 3-D, with $N$ different from sample to sample. Many models want a fixed number
# of points per sample, so the dataset **resamples**: a random subset without replacement when
# a cloud has too many points, random repeats when it has too few. (Padding with zeros, as one
# sometimes sees, invents points at the origin; repeating real points does not change the shape.)
# It also **centres** each cloud and scales it into the unit ball, so that the model sees
# shape, not position and size.
#
# We generate twelve clouds of three shapes with 300–900 points each, save them as `.npz`
# files, and read them lazily.

# %%
def sample_shape(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n noisy points, shape (n, 3), on the surface of a sphere, torus or cube."""
    u, v = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    if kind == "sphere":
        p = rng.normal(size=(n, 3))
        p /= np.linalg.norm(p, axis=1, keepdims=True)
    elif kind == "torus":
        p = np.stack([(1 + 0.4 * np.cos(v)) * np.cos(u), (1 + 0.4 * np.cos(v)) * np.sin(u),
                      0.4 * np.sin(v)], axis=1)
    else:  # cube surface: pick a face, then a point on it
        p = rng.uniform(-1, 1, (n, 3))
        face = rng.integers(0, 3, n)
        p[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
    return p * rng.uniform(0.5, 3.0) + rng.normal(0, 5, 3) + rng.normal(0, 0.02, (n, 3))


SHAPES = ["sphere", "torus", "cube"]
cloud_dir = WORKDIR / "clouds"
cloud_dir.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
for k in range(12):
    points = sample_shape(SHAPES[k % 3], int(rng.integers(300, 900)), rng)
    np.savez(cloud_dir / f"cloud_{k:02d}.npz", points=points.astype(np.float32), label=k % 3)
print(sorted(p.name for p in cloud_dir.iterdir())[:3], "...")

# %%
class PointClouds(Dataset):
    """Clouds saved as .npz (points (N, 3), label); item: ((n_points, 3) float32, int64 label)."""

    def __init__(self, folder: Path, n_points: int = 256):
        self.files = sorted(Path(folder).glob("*.npz"))  # only the names are kept in memory
        self.n_points = n_points

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with np.load(self.files[i]) as archive:
            points, label = archive["points"], int(archive["label"])
        idx = np.random.choice(len(points), self.n_points, replace=len(points) < self.n_points)
        points = points[idx] - points.mean(axis=0)  # centre
        points /= np.linalg.norm(points, axis=1).max()  # into the unit ball
        return torch.from_numpy(points.astype(np.float32)), torch.tensor(label)


clouds = PointClouds(cloud_dir)
batch, cloud_labels = next(iter(DataLoader(clouds, batch_size=6)))
print(batch.shape, cloud_labels.tolist())  # (B, n_points, 3): same size whatever N was

# %%
fig = plt.figure(figsize=(10, 3.8))
for k in range(3):
    ax = fig.add_subplot(1, 3, k + 1, projection="3d")
    ax.scatter(*batch[k].T, s=3, c=batch[k][:, 2], cmap="viridis")
    ax.set(title=f"{SHAPES[int(cloud_labels[k])]}", xlabel="x", ylabel="y", zlabel="z",
           xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
    ax.set_box_aspect((1, 1, 1))  # equal scales: a sphere looks round
    ax.view_init(elev=40, azim=-60)
fig.suptitle("Point clouds resampled to 256 points, centred and scaled (unitless; colour = z)")
plt.show()

# %% [markdown]
# Whatever their size and position on disk, the clouds come out centred, of unit radius, with
# 256 points each, and batch into one tensor of shape `(B, 256, 3)`.

# %% [markdown]
# ### 5.3.6 Data transforms
#
# A **transform** is any callable that takes a sample and returns a new one: a function, or an
# object with `__call__` when it has settings. The dataset applies it in `__getitem__`, so a
# *random* transform draws new randomness every time a sample is read — every epoch the model
# sees a slightly different version of each training image. That is **data augmentation**: it
# teaches the model what should *not* change its answer (a one-pixel shift, a bit of noise).
#
# `torchvision.transforms.v2` has the usual ones, and they work on tensors of shape
# `(C, H, W)` (no image files needed). Evaluation uses no random transforms: the test set must
# be measured, not augmented.

# %%
augment = v2.Compose([
    v2.RandomAffine(degrees=10, translate=(0.125, 0.125)),  # rotate <= 10 deg, shift <= 1 pixel
    v2.GaussianNoise(mean=0.0, sigma=0.05, clip=True),
])
digit = X_digits[0]  # (1, 8, 8)
hplot.image_grid(torch.stack([digit] + [augment(digit) for _ in range(7)]),
                 titles=["original"] + [f"augmented {k}" for k in range(1, 8)],
                 title="torchvision v2: eight reads of the same digit")
plt.show()

# %% [markdown]
# Where should transforms run? In `__getitem__` (on the fly) whenever they are random, or
# cheap; pre-computed once and saved when they are deterministic and expensive (decoding,
# resizing a huge image), so that every epoch does not pay for them again.

# %% [markdown]
# ### Exercise 5.5 — Custom augmentations (★★★, 4 points)
#
# Write three transforms for single images, tensors of shape `(C, H, W)`, float. Each returns a
# **new** tensor of the same shape and dtype (never modify the input) and draws fresh
# randomness from PyTorch's global generator at every call:
#
# - `AddGaussianNoise(std)`: adds independent $\mathcal N(0, \texttt{std}^2)$ noise to every pixel;
# - `RandomScale(low, high)`: multiplies the whole image by **one** factor drawn uniformly from
#   $[\texttt{low}, \texttt{high}]$ (the ink gets lighter or darker);
# - `RandomShift(max_shift)`: moves the image by `dy` rows and `dx` columns, each an integer
#   drawn uniformly from $-\texttt{max\_shift}, \dots, \texttt{max\_shift}$ (both ends
#   included); pixels that come in from the border are 0 (no wrap-around).
#
# Then (part b) `TransformedDataset(base, transform=None)` wraps any dataset of `(x, label)`
# pairs and returns `(transform(x), label)` — or the pair unchanged when `transform` is `None`.
#
# The tests check the noise level and independence, that a scale is one factor within the
# range, that every output of `RandomShift` is an exact zero-filled shift and that every shift
# in range appears, and that the input is left untouched. Part b's test also checks the
# experiment that follows: the augmented model must be at least 20 points more accurate on
# shifted digits than the plain one.
#
# *Hints:* `torch.randn_like`; `torch.empty(()).uniform_(low, high)`;
# `torch.randint(-m, m + 1, (2,))`. For the shift, pad with `F.pad(img, (m, m, m, m))` and cut
# an `H × W` window out of the padded image at offset `(m - dy, m - dx)`.

# %% nbgrader={"grade": false, "grade_id": "ex05_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class AddGaussianNoise:
    """img + std * standard normal noise, a new (C, H, W) tensor."""

    def __init__(self, std: float = 0.05):
        self.std = std

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return img + self.std * torch.randn_like(img)
        ### END SOLUTION


class RandomScale:
    """img * s with one s ~ U(low, high) per call."""

    def __init__(self, low: float = 0.8, high: float = 1.2):
        self.low, self.high = low, high

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        factor = torch.empty((), dtype=img.dtype).uniform_(self.low, self.high)
        return img * factor
        ### END SOLUTION


class RandomShift:
    """Shift by integers dy, dx in [-max_shift, max_shift]; zeros come in from the border."""

    def __init__(self, max_shift: int = 1):
        self.max_shift = max_shift

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        m = self.max_shift
        dy, dx = torch.randint(-m, m + 1, (2,)).tolist()
        H, W = img.shape[-2:]
        padded = F.pad(img, (m, m, m, m))
        return padded[..., m - dy:m - dy + H, m - dx:m - dx + W].clone()
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_5_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
img = torch.zeros(1, 64, 64)
out = AddGaussianNoise(std=0.2)(img)
checks.check_tensor(out, "AddGaussianNoise(0.2)(zeros)", shape=(1, 64, 64), dtype=torch.float32)
checks.check_close(out.std().item(), 0.2, "std of the added noise", rtol=0.05,
                   hint="scale a standard normal by std (not std**2)")
checks.check_close(out.mean().item(), 0.0, "mean of the added noise", atol=0.02)
checks.check(not torch.equal(out, AddGaussianNoise(0.2)(img)), "two calls must give different noise")
checks.check_equal(img, torch.zeros(1, 64, 64), "the input after the call", hint="return img + ..., "
                   "do not modify img in place")
digit = X_digits[5].clone()
scaled = RandomScale(0.5, 1.5)(digit)
ratio = scaled[digit > 0] / digit[digit > 0]
checks.check_close(ratio, torch.full_like(ratio, ratio[0].item()), "scaled / original pixel by pixel",
                   rtol=1e-5, hint="one factor for the whole image")
checks.check(0.5 <= ratio[0].item() <= 1.5, "the scale factor must lie in [low, high]",
             "[0.5, 1.5]", ratio[0].item())
m = 1
base = torch.arange(1.0, 1 + 2 * 6 * 5).reshape(2, 6, 5)  # distinct values: shifts are unambiguous
candidates = {(dy, dx): F.pad(base, (m, m, m, m))[..., m - dy:m - dy + 6, m - dx:m - dx + 5]
              for dy in range(-m, m + 1) for dx in range(-m, m + 1)}
seen = set()
for _ in range(200):
    shifted = RandomShift(m)(base)
    checks.check_shape(shifted, (2, 6, 5), "RandomShift(1)(img)")
    match = [k for k, c in candidates.items() if torch.equal(c, shifted)]
    checks.check(match, "RandomShift(1) returned an image that is not a zero-filled shift by at "
                 "most one pixel", hint="pixels coming in from the border must be 0 (no torch.roll)")
    seen.add(match[0])
checks.check_equal(len(seen), 9, "number of different shifts seen in 200 calls of RandomShift(1)",
                   hint="dy and dx are each drawn from -1, 0, 1: torch.randint's high is exclusive")
checks.check_equal(base, torch.arange(1.0, 61.0).reshape(2, 6, 5), "the input after RandomShift")
### BEGIN HIDDEN TESTS
wide = torch.full((3, 40, 40), 2.0)
noisy = AddGaussianNoise(std=0.05)(wide)
checks.check_close((noisy - wide).std().item(), 0.05, "std of the noise for std=0.05", rtol=0.06)
checks.check_close((noisy - wide).mean().item(), 0.0, "mean of the noise", atol=0.005)
checks.check_equal(wide, torch.full((3, 40, 40), 2.0), "input of AddGaussianNoise after the call")
factors = []
ones = torch.ones(1, 4, 4)
for _ in range(400):
    r = RandomScale(0.8, 1.2)(ones)
    checks.check_close(r, torch.full_like(r, r[0, 0, 0].item()), "RandomScale(ones)", rtol=1e-6)
    factors.append(r[0, 0, 0].item())
factors = torch.tensor(factors)
checks.check(factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6,
             "every scale factor must lie in [0.8, 1.2]", "[0.8, 1.2]",
             (factors.min().item(), factors.max().item()))
checks.check(factors.min() < 0.82 and factors.max() > 1.18 and abs(factors.mean() - 1.0) < 0.02,
             "the factors must cover [0.8, 1.2] uniformly", "min ~0.8, max ~1.2, mean ~1.0",
             (factors.min().item(), factors.max().item(), factors.mean().item()))
checks.check_equal(ones, torch.ones(1, 4, 4), "input of RandomScale after the call")
m = 2
base = torch.arange(1.0, 1 + 9 * 7).reshape(1, 9, 7)
candidates = {(dy, dx): F.pad(base, (m, m, m, m))[..., m - dy:m - dy + 9, m - dx:m - dx + 7]
              for dy in range(-m, m + 1) for dx in range(-m, m + 1)}
seen = set()
for _ in range(600):
    shifted = RandomShift(m)(base)
    match = [k for k, c in candidates.items() if torch.equal(c, shifted)]
    checks.check(match, "RandomShift(2) returned an image that is not a zero-filled shift by at "
                 "most two pixels")
    seen.add(match[0])
checks.check_equal(len(seen), 25, "number of different shifts seen for max_shift=2")
checks.check_equal(RandomShift(0)(base), base, "RandomShift(0)(img)")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex05_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TransformedDataset(Dataset):
    """Apply transform to the input of every (x, label) pair of base, at every access."""

    def __init__(self, base: Dataset, transform=None):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.base)
        ### END SOLUTION

    def __getitem__(self, i: int):
        ### BEGIN SOLUTION
        x, label = self.base[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, label
        ### END SOLUTION

# %% [markdown]
# Your transforms at work on one digit: shifted, rescaled and noisy versions of the original.

# %%
train_augment = v2.Compose([RandomShift(1), RandomScale(0.8, 1.2), AddGaussianNoise(0.03)])
hplot.image_grid(torch.stack([X_digits[7]] + [train_augment(X_digits[7]) for _ in range(7)]),
                 titles=["original"] + [f"augmented {k}" for k in range(1, 8)],
                 title="Exercise 5.5: shift + scale + noise")
plt.show()

# %% [markdown]
# Now the experiment of the exercise. Two identical MLPs learn from the same 1,257 training
# digits, one of them through `TransformedDataset` with the augmentation above. We measure
# accuracy on the clean validation digits and on a copy of them shifted by up to one pixel —
# a camera that is slightly off-centre.

# %%
digit_order = torch.randperm(len(X_digits), generator=torch.Generator().manual_seed(0))
digit_train, digit_val = Subset(digits_ds, digit_order[:1257]), digit_order[1257:1527]
torch.manual_seed(1)
X_val_shifted = torch.stack([RandomShift(1)(x) for x in X_digits[digit_val]])
val_sets = {"clean": TensorDataset(X_digits[digit_val], y_digits[digit_val]),
            "shifted": TensorDataset(X_val_shifted, y_digits[digit_val])}


def digits_accuracy(train_set: Dataset, epochs: int = 12) -> dict[str, float]:
    """Train an MLP on train_set; return its accuracy on the clean and shifted validation sets."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    model.to(device)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    fit(model, train_loader, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), 3e-3),
        epochs=epochs, device=device, progress=False)
    return {name: evaluate(model, DataLoader(vs, batch_size=512), nn.CrossEntropyLoss(), device,
                           {"acc": helpers.train.accuracy})["acc"] for name, vs in val_sets.items()}

# %%
augmentation_results = {
    "plain": digits_accuracy(TransformedDataset(digit_train)),
    "augmented": digits_accuracy(TransformedDataset(digit_train, train_augment)),
}
for name, accs in augmentation_results.items():
    print(f"{name:>9}: clean {accs['clean']:.1%}  shifted {accs['shifted']:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex05_5_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
base = TensorDataset(torch.arange(10.0).reshape(10, 1), torch.arange(10))
plain = TransformedDataset(base)
checks.check_equal(len(plain), 10, "len(TransformedDataset(base))")
checks.check_equal(plain[3][0], base[3][0], "input of item 3 without a transform")
checks.check_equal(plain[3][1], base[3][1], "label of item 3 without a transform")
doubled = TransformedDataset(base, lambda x: 2 * x)
checks.check_close(doubled[4][0], torch.tensor([8.0]), "input of item 4 with transform x -> 2x")
checks.check_equal(doubled[4][1], torch.tensor(4), "label of item 4", hint="transform the input only")
for name in ["plain", "augmented"]:
    checks.check_type(augmentation_results.get(name), dict, f"augmentation_results[{name!r}]")
gain = augmentation_results["augmented"]["shifted"] - augmentation_results["plain"]["shifted"]
checks.check(gain >= 0.20, "augmentation should make the model robust to shifts",
             ">= 0.20 more accuracy on shifted digits", round(gain, 3))
### BEGIN HIDDEN TESTS
calls = []
counting = TransformedDataset(base, lambda x: calls.append(1) or x + len(calls))
first, second = counting[2][0], counting[2][0]
checks.check(not torch.equal(first, second), "the transform must run at every access",
             hint="apply it in __getitem__, not once in __init__")
checks.check_equal(base[2][0], torch.tensor([2.0]), "the base dataset after transforming")
noisy_ds = TransformedDataset(base, AddGaussianNoise(0.1))
checks.check_equal(len(list(noisy_ds)), 10, "items yielded by iterating over the dataset",
                   hint="let the base dataset raise IndexError past the end")
checks.check(augmentation_results["plain"]["clean"] >= 0.9,
             "the plain model should reach >= 90 % on clean digits", ">= 0.9",
             augmentation_results["plain"]["clean"])
### END HIDDEN TESTS

# %% [markdown]
# Read the numbers: on clean digits both models are good, the plain one better (it trained on
# exactly that distribution, while the augmented one had a harder task for the same 12
# epochs). Shift the digits by a single pixel and the plain model collapses, while the
# augmented one loses only a few points. Augmentation buys robustness to the variations you
# show it — and only those.

# %% [markdown]
# ### 5.3.7 Normalization strategies
#
# Networks train best when every input feature has a similar, moderate scale. The two usual
# recipes, with statistics computed **per feature** (per column of a table, per channel of an
# image):
# $$\text{standardization: } z = \frac{x - \mu}{\sigma}, \qquad
#   \text{min–max scaling: } z = \frac{x - x_{\min}}{x_{\max} - x_{\min}} \in [0, 1].$$
#
# **The rule:** $\mu, \sigma$ (or $x_{\min}, x_{\max}$) come from the **training set only**,
# and the very same numbers are then applied to validation and test data — and, later, to the
# data the deployed model sees. Statistics computed on the test set leak information about it
# into the model's inputs, and the measured score no longer predicts the deployed one.
#
# A data set too big for memory needs statistics in one pass over a loader. Beware a shortcut
# that circulates in tutorials: *averaging the standard deviations of the images* is **not**
# the standard deviation of all pixels — it ignores how much the image means differ.
# Accumulate $\sum x$, $\sum x^2$ and the count instead:
# $$\mu = \frac{\sum x}{n},\qquad \sigma^2 = \frac{\sum x^2}{n} - \mu^2 .$$
# (In float32 this formula loses precision when $\mu \gg \sigma$; accumulate in float64, as below.)

# %%
def streaming_mean_std(loader: DataLoader) -> tuple[float, float]:
    """Mean and std of all pixels, in one pass, accumulated in float64."""
    total = total_sq = count = 0.0
    for images, _ in loader:
        x = images.double()
        total, total_sq, count = total + x.sum(), total_sq + (x**2).sum(), count + x.numel()
    mean = total / count
    return float(mean), float((total_sq / count - mean**2).sqrt())


# Training digits, each scanned with its own exposure (0.2x to 1x): image means now differ.
train_x = X_digits[digit_order[:1257]]
exposure = torch.empty(len(train_x), 1, 1, 1).uniform_(
    0.2, 1.0, generator=torch.Generator().manual_seed(0))  # (N, 1, 1, 1): one factor per image
for name, images in {"digits": train_x, "digits, varied exposure": train_x * exposure}.items():
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=100)
    mean, std = streaming_mean_std(loader)
    per_image = images.flatten(1).std(dim=1, correction=0).mean()
    print(f"{name:>24}: streaming std {std:.4f} | all pixels at once {images.std(correction=0):.4f}"
          f" | mean of per-image stds {per_image:.4f} (wrong)")

# %% [markdown]
# The one-pass sums agree with the exact value to every printed digit. The shortcut is off by
# under 1 % on the digits, whose scans all have similar ink, but by more than 10 % once the
# exposure varies from image to image — exactly when normalization matters most.

# %% [markdown]
# ### Exercise 5.4 — Normalization with training statistics (★★★, 5 points)
#
# **(a)** Write `Standardizer`, a per-feature standardizer that cannot leak:
#
# - `fit(x)`: `x` has shape `(N, *F)` (rows of features, or images); store `self.mean` and
#   `self.std` of shape `F`, computed over the first dimension; `std` is the population
#   standard deviation (`correction=0`, as scikit-learn's `StandardScaler`), and a feature whose
#   `std` is 0 gets `std = 1` (centred, not scaled). Return `self`. Do not modify `x`.
# - `transform(x)`: `(x - mean) / std` with the **stored** statistics, whatever `x` is;
#   `inverse_transform(z)`: `z * std + mean`. Both return new tensors.
#
# **(b)** The classic experiment: three features on wildly different scales —
# $x_1 \in [0, 1]$, $x_2 \in [0, 1000]$, $x_3 \in [-100, 100]$ — and a linear target. Write
# `train_linear(X, y, lr, steps=200)`: full-batch gradient descent on `nn.Linear(D, 1)` whose
# weight and bias **start at zero**, mean squared error, `torch.optim.SGD(lr=lr)`. Return
# `(losses, first_grad_norm)`: the list of the `steps` losses, each measured *before* its
# update, and the Euclidean norm of the gradient of all parameters (weight and bias together)
# at the first step. The cell after it sweeps learning rates with raw and with standardized
# features. Then answer `why_raw_is_slow` with one letter:
#
# - **a** the raw target has a larger variance;
# - **b** the largest-scale feature forces a tiny learning rate to stay stable, and at that rate
#   the small-scale feature and the bias barely move;
# - **c** gradient descent cannot represent the small weight that $x_2$ needs;
# - **d** numbers around 1000 overflow float32.
#
# The tests check (a) against statistics computed independently, on a test set drawn from a
# *different* distribution (its standardized mean must not be 0), with constant features and
# image-shaped inputs; (b) against a gradient-descent loop written with NumPy in float64, and
# the sweep's conclusion: standardized features reach a loss at least 10 times lower with a
# first gradient at least 100 times smaller.
#
# *Hints:* `x.mean(dim=0)`, `x.std(dim=0, correction=0)`, `torch.where(std > 0, std, 1.0)`;
# `nn.init.zeros_`; record `loss.item()` before `optimizer.step()`, and zero the gradients.

# %% nbgrader={"grade": false, "grade_id": "ex05_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Standardizer:
    """Per-feature (x - mean) / std with statistics from fit()'s data only."""

    def __init__(self):
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "Standardizer":
        ### BEGIN SOLUTION
        self.mean = x.mean(dim=0)
        std = x.std(dim=0, correction=0)
        self.std = torch.where(std > 0, std, torch.ones_like(std))
        return self
        ### END SOLUTION

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return (x - self.mean) / self.std
        ### END SOLUTION

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return z * self.std + self.mean
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_4_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
gen = torch.Generator().manual_seed(11)
X_tr = torch.stack([torch.rand(700, generator=gen), 1000 * torch.rand(700, generator=gen),
                    200 * torch.rand(700, generator=gen) - 100], dim=1)
X_te = X_tr[:150] * torch.tensor([1.0, 1.5, 1.0]) + torch.tensor([0.5, 200.0, -50.0])  # drifted
X_tr_copy, X_te_copy = X_tr.clone(), X_te.clone()
scaler = Standardizer()
checks.check(scaler.fit(X_tr) is scaler, "fit() must return self", hint="end fit with return self")
ref_mean = torch.from_numpy(X_tr.numpy().astype(np.float64).mean(axis=0))
ref_std = torch.from_numpy(X_tr.numpy().astype(np.float64).std(axis=0))  # ddof=0
checks.check_close(scaler.mean, ref_mean, "scaler.mean", rtol=1e-5)
checks.check_close(scaler.std, ref_std, "scaler.std", rtol=1e-5,
                   hint="population std: x.std(dim=0, correction=0)")
Z_te = scaler.transform(X_te)
checks.check_close(Z_te, (X_te.double() - ref_mean) / ref_std, "scaler.transform(X_test)",
                   rtol=1e-4, atol=1e-5, hint="use the statistics stored by fit(), never the test set's")
checks.check(Z_te[:, 1].mean().abs() > 0.5, "the drifted test set must NOT come out centred: "
             "that would mean its own statistics were used", "mean of feature 2 far from 0",
             Z_te[:, 1].mean().item())
checks.check_close(scaler.mean, ref_mean, "scaler.mean after transform(X_test)", rtol=1e-5,
                   hint="transform must not refit")
checks.check_close(scaler.inverse_transform(Z_te), X_te, "inverse_transform(transform(X_test))",
                   rtol=1e-4, atol=1e-3)
checks.check_equal(X_tr, X_tr_copy, "X_train after fit", hint="no in-place operations on x")
checks.check_equal(X_te, X_te_copy, "X_test after transform")
### BEGIN HIDDEN TESTS
const = torch.cat([torch.randn(50, 2, generator=gen), torch.full((50, 1), 3.0)], dim=1)
sc = Standardizer().fit(const)
z = sc.transform(const)
checks.check(torch.isfinite(z).all(), "a constant feature must not give NaN or inf",
             hint="replace a std of 0 by 1")
checks.check_close(z[:, 2], torch.zeros(50), "the standardized constant feature")
checks.check_close(sc.std[2], torch.tensor(1.0), "std stored for a constant feature")
checks.check_close(sc.inverse_transform(z), const, "inverse of a constant feature", atol=1e-5)
imgs = X_digits[:300]
sc_img = Standardizer().fit(imgs)
checks.check_shape(sc_img.mean, (1, 8, 8), "mean of (N, 1, 8, 8) images")
ref_std = imgs.double().numpy().std(axis=0)  # (1, 8, 8); some border pixels are always 0
ref_std[ref_std == 0] = 1.0
checks.check_close(sc_img.std, ref_std, "per-pixel std of images (1 where constant)", rtol=1e-4,
                   atol=1e-6)
other = X_digits[300:310] + 0.5
checks.check_close(sc_img.transform(other), (other - sc_img.mean) / sc_img.std,
                   "transform of other images", rtol=1e-5, atol=1e-6)
small = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
sc_small = Standardizer().fit(small)
checks.check_close(sc_small.std, torch.tensor([1.0, 10.0]), "std of two rows (population)",
                   hint="correction=0")
checks.check_close(sc_small.transform(torch.tensor([[5.0, 0.0]])), torch.tensor([[3.0, -2.0]]),
                   "transform of one new row")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex05_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_linear(X: torch.Tensor, y: torch.Tensor, lr: float, steps: int = 200):
    """Full-batch GD on a zero-initialised nn.Linear(D, 1), MSE loss.

    X: (N, D) float32, y: (N, 1) float32. Returns (losses: list of steps floats, first_grad_norm: float).
    """
    ### BEGIN SOLUTION
    model = nn.Linear(X.shape[1], 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses, first_grad_norm = [], None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        if first_grad_norm is None:
            first_grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
        losses.append(loss.item())
        optimizer.step()
    return losses, first_grad_norm
    ### END SOLUTION


why_raw_is_slow = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
why_raw_is_slow = "b"
### END SOLUTION

# %% [markdown]
# The sweep: for each preprocessing, train with every learning rate, keep the best final loss.
# The standardizer is fitted on the training rows only.

# %%
gen = torch.Generator().manual_seed(0)
X_scales = torch.stack([torch.rand(1000, generator=gen), 1000 * torch.rand(1000, generator=gen),
                        200 * torch.rand(1000, generator=gen) - 100], dim=1)  # (N, 3)
y_scales = (1.5 * X_scales[:, :1] + 0.004 * X_scales[:, 1:2] - 0.02 * X_scales[:, 2:]
            + 0.1 * torch.randn(1000, 1, generator=gen))  # (N, 1); each feature matters
scale_train = X_scales[:700]
inputs = {"raw": scale_train, "standardized": Standardizer().fit(scale_train).transform(scale_train)}
LRS = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 3e-1]
scaling_results = {}
for name, data in inputs.items():
    runs = {lr: train_linear(data, y_scales[:700], lr) for lr in LRS}
    finite = [lr for lr in LRS if math.isfinite(runs[lr][0][-1])]
    best = min(finite, key=lambda lr: runs[lr][0][-1])
    scaling_results[name] = {"best_lr": best, "final_loss": runs[best][0][-1],
                             "first_grad_norm": runs[best][1], "losses": runs[best][0],
                             "diverged": [lr for lr in LRS if lr not in finite]}
    print(f"{name:>12}: best lr {best:g}, final loss {runs[best][0][-1]:.4f}, "
          f"first gradient norm {runs[best][1]:.1f}, diverged at {scaling_results[name]['diverged']}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, res in scaling_results.items():
    ax.plot(res["losses"], label=f"{name} (best lr {res['best_lr']:g})")
ax.axhline(0.01, color="0.5", ls=":", label="noise level (0.1$^2$)")
ax.set(title="Gradient descent, best learning rate for each input scaling", xlabel="step",
       ylabel="training MSE", yscale="log")
ax.legend()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "ex05_4_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _reference_gd(X, y, lr, steps):
    """Gradient descent for y ~ X w + b written out by hand, NumPy float64."""
    X, y = X.numpy().astype(np.float64), y.numpy().astype(np.float64)
    w, b, losses, norm0 = np.zeros((X.shape[1], 1)), 0.0, [], None
    for _ in range(steps):
        r = X @ w + b - y
        losses.append(float((r**2).mean()))
        gw, gb = 2 * X.T @ r / len(X), 2 * r.mean()
        norm0 = norm0 if norm0 is not None else float(np.sqrt((gw**2).sum() + gb**2))
        w, b = w - lr * gw, b - lr * gb
    return losses, norm0


gen = torch.Generator().manual_seed(3)
Xs, ys = torch.randn(64, 3, generator=gen), torch.randn(64, 1, generator=gen)
losses, norm0 = train_linear(Xs, ys, lr=0.1, steps=25)
ref_losses, ref_norm0 = _reference_gd(Xs, ys, 0.1, 25)
checks.check_equal(len(losses), 25, "len(losses) for steps=25")
checks.check_close(losses, ref_losses, "losses of train_linear(lr=0.1)", rtol=1e-4,
                   hint="zero init; the loss before each update; zero_grad every step")
checks.check_close(norm0, ref_norm0, "first_grad_norm", rtol=1e-4,
                   hint="norm of weight and bias gradients together, at the first step")
checks.check_type(why_raw_is_slow, str, "why_raw_is_slow")
checks.check(why_raw_is_slow in {"a", "b", "c", "d"}, "why_raw_is_slow must be one letter",
             "'a', 'b', 'c' or 'd'", why_raw_is_slow)
### BEGIN HIDDEN TESTS
Xb = torch.cat([torch.rand(80, 1, generator=gen), 100 * torch.rand(80, 1, generator=gen)], dim=1)
yb = Xb @ torch.tensor([[2.0], [0.01]]) + 0.5
losses, norm0 = train_linear(Xb, yb, lr=1e-4, steps=40)
ref_losses, ref_norm0 = _reference_gd(Xb, yb, 1e-4, 40)
checks.check_close(losses, ref_losses, "losses for two features and lr=1e-4", rtol=1e-3)
checks.check_close(norm0, ref_norm0, "first_grad_norm for two features", rtol=1e-4)
raw, std = scaling_results["raw"], scaling_results["standardized"]
checks.check(std["final_loss"] * 10 <= raw["final_loss"],
             "standardized features should reach a much lower loss", "10x lower",
             (std["final_loss"], raw["final_loss"]))
checks.check(std["first_grad_norm"] * 100 <= raw["first_grad_norm"],
             "raw features give far larger gradients", "100x larger",
             (std["first_grad_norm"], raw["first_grad_norm"]))
checks.check_equal(why_raw_is_slow, "b", "why_raw_is_slow")  # stability is set by the largest scale
### END HIDDEN TESTS

# %% [markdown]
# With raw inputs every learning rate from $10^{-5}$ up diverges. The mean squared error has
# curvature $2\,\mathbb E[x_2^2] \approx 7\cdot 10^5$ along $w_2$, and gradient descent is
# stable only for $\text{lr} < 2/\text{curvature} \approx 3\cdot 10^{-6}$. At such a rate the
# directions of $x_1$ and of the bias, whose curvature is some $10^5$–$10^6$ times smaller,
# hardly move in 200 steps: the raw curve crawls. Standardized, all directions have comparable
# curvature; a learning rate of 0.1 reaches the noise floor in about 25 steps.

# %% [markdown]
# ### 5.3.8 Handling variable-length sequences
#
# Sentences, heartbeats recorded for different durations, trajectories that end when a particle
# leaves the detector: sequences of different lengths $T_b$. `default_collate` cannot stack them:

# %%
def noisy_wave(length: int, label: int, gen: torch.Generator) -> torch.Tensor:
    """A (length, 1) noisy sine: slow (label 0, ~0.05 cycles/step) or fast (label 1, ~0.12)."""
    freq = (0.05 if label == 0 else 0.12) * (0.9 + 0.2 * torch.rand((), generator=gen))
    t = torch.arange(length, dtype=torch.float32)
    phase = 2 * math.pi * torch.rand((), generator=gen)
    wave = torch.sin(2 * math.pi * freq * t + phase) + 0.3 * torch.randn(length, generator=gen)
    return wave.unsqueeze(1)  # (T, C=1)


class Waves(Dataset):
    """n sequences of random length in [10, 100]: ((T_i, 1) float32, int64 label)."""

    def __init__(self, n: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        lengths = torch.randint(10, 101, (n,), generator=gen).tolist()
        self.labels = torch.randint(0, 2, (n,), generator=gen)
        self.seqs = [noisy_wave(T, int(c), gen) for T, c in zip(lengths, self.labels)]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int):
        return self.seqs[i], self.labels[i]


waves = Waves(600)
try:
    next(iter(DataLoader(waves, batch_size=4)))
except RuntimeError as err:
    print("default_collate fails:", str(err).splitlines()[0])

# %% [markdown]
# The fix is a custom `collate_fn` that **pads** every sequence to the longest one of the batch
# (`pad_sequence` does that) and also returns what the model needs to ignore the padding: the
# **lengths** and a boolean **mask**, with
# $$\text{mask}_{b,t} = \big(t < T_b\big), \qquad \text{padded has shape } (B, T_{\max}, C).$$
# Padding per *batch* (not to the longest sequence of the whole data set) keeps the waste small.
# Any operation that mixes time steps — a mean over time, attention, the final state of an
# RNN — must then use the mask or the lengths, or the zeros count as data.

# %% [markdown]
# ### Exercise 5.6 — Padding, masks and lengths (★★★★★, 5 points)
#
# **(a)** Write `pad_collate(batch)`. `batch` is a list of `B` pairs `(seq, label)` with `seq`
# a float tensor of shape `(T_b, C)` and `label` an int (or 0-d tensor). Return a tuple
# `(padded, lengths, mask, labels)`:
#
# - `padded`: float32 `(B, T_max, C)`, sequence `b` in `padded[b, :T_b]`, zeros after it;
# - `lengths`: int64 `(B,)`, the `T_b`;
# - `mask`: bool `(B, T_max)`, `True` exactly at real (non-padding) steps;
# - `labels`: int64 `(B,)`.
#
# Keep the order of the batch (do not sort), and do not modify the input sequences.
#
# **(b)** Write `masked_mean(padded, mask)`: the mean over time of the real steps only, shape
# `(B, C)` — the simplest way to summarise a padded batch, and the building block of masked
# pooling in later chapters.
#
# The tests compare with references built by a loop over the sequences, on batches of random
# lengths, a batch of one, and a batch whose sequences have equal lengths. `masked_mean` must
# give the same answer whatever sits in the padding — even `NaN` — and its gradient must not
# reach the padding.
#
# *Hints:* `pad_sequence(seqs, batch_first=True)`; compare `torch.arange(T_max)` with
# `lengths[:, None]` to build the mask; in (b), multiply by `mask[..., None]` — or use
# `torch.where`, so that padding holding `inf` or `NaN` cannot leak in — then divide by the
# number of real steps.

# %% nbgrader={"grade": false, "grade_id": "ex05_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pad_collate(batch):
    """List of (seq (T_b, C), label) -> (padded (B, T_max, C), lengths (B,), mask (B, T_max), labels (B,))."""
    ### BEGIN SOLUTION
    seqs, labels = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    padded = pad_sequence([s.to(torch.float32) for s in seqs], batch_first=True)
    mask = torch.arange(padded.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    labels = torch.as_tensor([int(c) for c in labels], dtype=torch.int64)
    return padded, lengths, mask, labels
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_6_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
gen = torch.Generator().manual_seed(5)
seqs = [torch.randn(T, 2, generator=gen) for T in (4, 2, 5)]
copies = [s.clone() for s in seqs]
padded, lengths, mask, labels = pad_collate(list(zip(seqs, [1, 0, 1])))
checks.check_tensor(padded, "padded", shape=(3, 5, 2), dtype=torch.float32)
checks.check_tensor(lengths, "lengths", shape=(3,), dtype=torch.int64)
checks.check_equal(lengths, torch.tensor([4, 2, 5]), "lengths", hint="keep the batch order")
expected_mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False],
                              [True, True, True, True, True]])
checks.check_equal(mask, expected_mask, "mask", hint="mask[b, t] is t < lengths[b]")
for b, s in enumerate(seqs):
    checks.check_equal(padded[b, :len(s)], s, f"padded[{b}, :T_{b}]")
    checks.check_equal(padded[b, len(s):], torch.zeros(5 - len(s), 2), f"padding of sequence {b}")
checks.check_equal(labels, torch.tensor([1, 0, 1]), "labels")
### BEGIN HIDDEN TESTS
for s, c in zip(seqs, copies):
    checks.check_equal(s, c, "an input sequence after pad_collate")
for trial in range(5):
    B = int(torch.randint(1, 9, (1,), generator=gen))
    Ts = torch.randint(1, 30, (B,), generator=gen).tolist()
    seqs = [torch.randn(T, 3, generator=gen) for T in Ts]
    labs = [torch.tensor(int(k) % 4) for k in torch.randint(0, 100, (B,), generator=gen)]
    padded, lengths, mask, labels = pad_collate(list(zip(seqs, labs)))
    T_max = max(Ts)
    checks.check_shape(padded, (B, T_max, 3), f"padded for lengths {Ts}")
    ref_mask = torch.zeros(B, T_max, dtype=torch.bool)
    ref_pad = torch.zeros(B, T_max, 3)
    for b, s in enumerate(seqs):
        ref_mask[b, :len(s)] = True
        ref_pad[b, :len(s)] = s
    checks.check_equal(mask, ref_mask, f"mask for lengths {Ts}")
    checks.check_equal(padded, ref_pad, f"padded for lengths {Ts}")
    checks.check_equal(lengths, torch.tensor(Ts), f"lengths {Ts}")
    checks.check_equal(labels, torch.stack(labs), f"labels for lengths {Ts}")
one = pad_collate([(torch.ones(3, 1), 7)])
checks.check_equal(one[2], torch.ones(1, 3, dtype=torch.bool), "mask of a batch of one")
same = pad_collate([(torch.ones(4, 2), 0), (torch.ones(4, 2), 1)])
checks.check(bool(same[2].all()), "equal lengths: the mask must be all True")
dl = DataLoader(Waves(10, seed=3), batch_size=5, collate_fn=pad_collate)
p, L, M, Y = next(iter(dl))
checks.check_equal(M.sum(dim=1), L, "mask row sums equal lengths in a DataLoader batch")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex05_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def masked_mean(padded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real time steps: padded (B, T, C), mask (B, T) bool -> (B, C)."""
    ### BEGIN SOLUTION
    keep = mask.unsqueeze(-1)  # (B, T, 1)
    total = torch.where(keep, padded, torch.zeros((), dtype=padded.dtype)).sum(dim=1)  # (B, C)
    return total / keep.sum(dim=1).to(padded.dtype)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
seqs = [torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[10.0]])]
padded = torch.tensor([[[1.0], [2.0], [3.0]], [[10.0], [0.0], [0.0]]])  # (B=2, T=3, C=1)
mask = torch.tensor([[True, True, True], [True, False, False]])
checks.check_close(masked_mean(padded, mask), torch.tensor([[2.0], [10.0]]), "masked_mean",
                   hint="divide by the number of real steps, not by T_max")
garbage = padded.clone()
garbage[1, 1:] = 1000.0
checks.check_close(masked_mean(garbage, mask), torch.tensor([[2.0], [10.0]]),
                   "masked_mean with garbage in the padding", hint="the padding must not count")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(9)
Ts = [7, 1, 4, 7, 2]
seqs = [torch.randn(T, 3, generator=gen, dtype=torch.float64) for T in Ts]
padded = torch.full((5, 7, 3), float("nan"), dtype=torch.float64)
mask = torch.zeros(5, 7, dtype=torch.bool)
for b, s in enumerate(seqs):
    padded[b, :len(s)] = s
    mask[b, :len(s)] = True
ref = torch.stack([s.mean(dim=0) for s in seqs])
checks.check_close(masked_mean(padded, mask), ref, "masked_mean with NaN in the padding",
                   hint="use torch.where(mask, padded, 0): NaN * 0 is still NaN")
zero_pad = torch.nan_to_num(padded, nan=0.0).requires_grad_(True)
out = masked_mean(zero_pad, mask)
checks.check_close(out, ref, "masked_mean (float64)")
checks.check_dtype(out, torch.float64, "masked_mean of a float64 batch")
out.sum().backward()
expected_grad = mask.unsqueeze(-1).double() / torch.tensor(Ts, dtype=torch.float64)[:, None, None]
checks.check_grad(zero_pad, expected_grad.expand(-1, -1, 3), "padded")
full = torch.randn(3, 6, 2, generator=gen)
checks.check_close(masked_mean(full, torch.ones(3, 6, dtype=torch.bool)), full.mean(dim=1),
                   "masked_mean without padding", rtol=1e-5, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# #### A padded batch and its mask
#
# Eight waves collated by your `pad_collate`: each row is one sequence, time runs to the right.
# In the left panel, grey is padding, after the end of each sequence; the mask on the right is
# white exactly at the real steps. Notice how much of the batch is padding: one long sequence
# makes everyone wait. Grouping sequences of similar length into the same batches
# (*bucketing*) cuts that waste.

# %%
wave_loader = DataLoader(waves, batch_size=8, shuffle=True, collate_fn=pad_collate,
                         generator=torch.Generator().manual_seed(1))
padded, lengths, mask, labels = next(iter(wave_loader))
print(padded.shape, lengths.tolist(), f"| padding: {1 - mask.float().mean():.0%} of the batch")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
shown = np.ma.masked_where(~mask.numpy(), padded[..., 0].numpy())
im = ax1.imshow(shown, aspect="auto", cmap="coolwarm", vmin=-2, vmax=2, interpolation="nearest")
ax1.set_facecolor("0.85")
ax1.set(title="padded[..., 0]: values (grey = padding)", xlabel="time step t", ylabel="sequence b")
fig.colorbar(im, ax=ax1, label="value (unitless)")
ax2.imshow(mask.numpy(), aspect="auto", cmap="Greys_r", interpolation="nearest")
ax2.set(title="mask (white = real step, black = padding)", xlabel="time step t", ylabel="sequence b")
for ax in (ax1, ax2):
    ax.grid(False)
plt.tight_layout()
plt.show()

# %% [markdown]
# #### Recurrent networks and `pack_padded_sequence`
#
# An RNN reads a padded batch step by step; without help, a short sequence's final state comes
# *after* a run of padding zeros. `pack_padded_sequence(padded, lengths, batch_first=True,
# enforce_sorted=False)` tells the RNN the true lengths: it stops each sequence at its own end
# and skips the padding entirely. (Chapter 10 covers RNNs; here we only check the data side.)
# The measurement: the final state of a sequence run alone, inside a packed batch, and inside a
# plain padded batch.

# %%
gru = nn.GRU(input_size=1, hidden_size=16, batch_first=True)
with torch.no_grad():
    short = int(lengths.argmin())
    _, h_alone = gru(padded[short:short + 1, :lengths[short]])  # no padding at all
    _, h_packed = gru(pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False))
    _, h_padded = gru(padded)
print(f"sequence {short} (length {lengths[short]}): |packed - alone| = "
      f"{(h_packed[0, short] - h_alone[0, 0]).abs().max():.1e}, |padded - alone| = "
      f"{(h_padded[0, short] - h_alone[0, 0]).abs().max():.2f}")

# %% [markdown]
# Packed equals alone to rounding error; padded does not. A small GRU classifier of slow versus
# fast waves, trained on packed batches, shows the whole path from variable-length data to a model.

# %% tags=["autograde-skip"]
class WaveClassifier(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.gru, self.head = nn.GRU(1, hidden, batch_first=True), nn.Linear(hidden, 2)

    def forward(self, padded, lengths):  # (B, T_max, 1), (B,)
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_last = self.gru(packed)  # (1, B, hidden): each sequence's own final state
        return self.head(h_last[0])  # (B, 2)


torch.manual_seed(0)
wave_train, wave_val = random_split(waves, [480, 120], generator=torch.Generator().manual_seed(0))
clf = WaveClassifier().to(device)
optimizer = torch.optim.Adam(clf.parameters(), lr=1e-2)
train_loader = DataLoader(wave_train, batch_size=32, shuffle=True, collate_fn=pad_collate)
for epoch in range(4):
    for padded, lengths, mask, labels in train_loader:
        optimizer.zero_grad()
        F.cross_entropy(clf(padded.to(device), lengths), labels.to(device)).backward()
        optimizer.step()
with torch.no_grad():
    padded, lengths, mask, labels = pad_collate([wave_val[i] for i in range(len(wave_val))])
    wave_acc = (clf(padded.to(device), lengths).argmax(1).cpu() == labels).float().mean().item()
print(f"validation accuracy after 4 epochs: {wave_acc:.1%}")

# %% [markdown]
# ### 5.3.9 Train / validation / test splits
#
# Three disjoint parts: **train** fits the weights, **validation** chooses everything else
# (learning rate, epochs, architecture), **test** is looked at once, at the end. Ways to split:
#
# - `random_split(dataset, [0.7, 0.15, 0.15], generator=...)` — fractions or counts;
# - `Subset(dataset, indices)` with indices you choose — the most flexible;
# - **stratified**: each class keeps its proportion in every part, which matters for small or
#   imbalanced data (a rare class may otherwise be missing from the validation set);
# - **temporal** (or *grouped*): when samples are not independent — windows of one series,
#   several images of one patient — split by time (or by group), never at random.

# %%
parts_random = random_split(digits_ds, [0.7, 0.15, 0.15], generator=torch.Generator().manual_seed(0))
print("random_split sizes:", [len(p) for p in parts_random])
overlap = set(parts_random[0].indices) & set(parts_random[2].indices)
print("train/test overlap:", len(overlap), "| a Subset maps back to rows:", parts_random[2].indices[:5])

# %% [markdown]
# **Why temporal for time series?** Neighbouring windows of a series overlap in 51 of 52 weeks.
# Split windows at random and almost every validation window has its twin, shifted by one week,
# in the training set: a model that merely *memorises* looks like a forecaster. We measure it
# with the purest memoriser there is: predict the target of the nearest training window.

# %%
def nearest_window_mae(train_idx: torch.Tensor, val_idx: torch.Tensor) -> float:
    """MAE (ppm) on val windows of predicting the target of the closest training input window."""
    nearest = torch.cdist(X_win[val_idx], X_win[train_idx]).argmin(dim=1)  # (N_val,)
    return float((Y_win[train_idx][nearest] - Y_win[val_idx]).abs().mean() * sigma)


all_windows = WindowDataset(co2_scaled, W, H)
X_win, Y_win = next(iter(DataLoader(all_windows, batch_size=len(all_windows))))  # (N, W), (N, H)
N_win = len(all_windows)
cut, cut_val = int(0.7 * N_win), int(0.85 * N_win)
perm = torch.randperm(N_win, generator=torch.Generator().manual_seed(0))
split_mae = {"random": nearest_window_mae(perm[:cut], perm[cut:cut_val]),
             "temporal": nearest_window_mae(torch.arange(cut - W - H), torch.arange(cut, cut_val))}
print({name: f"{mae:.2f} ppm" for name, mae in split_mae.items()})

# %% [markdown]
# (For the temporal split we also drop the last $W + H$ training windows, a *gap*, so that no
# training target overlaps a validation input.) The random split reports an error several
# times smaller — for a model that has learned nothing but a lookup table. Only the temporal
# split measures what a forecaster is for: the future.

# %% [markdown]
# ### Exercise 5.2 — Stratified train/validation/test split (★★, 3 points)
#
# Write `stratified_split(labels, fractions=(0.7, 0.15, 0.15), seed=0)` returning three int64
# tensors `(train_idx, val_idx, test_idx)` of row indices such that
#
# - the three are disjoint and together contain every index `0 … N-1` exactly once;
# - every class $c$ with $n_c$ members puts about `fractions[k]` $\cdot\, n_c$ of them in part
#   $k$ (the tests allow ±2 for rounding), so class proportions match across parts;
# - the result depends only on `seed` (same seed, same split; another seed, another split) and
#   the indices within each part are in random order.
#
# `labels` is an int64 tensor or NumPy array of shape `(N,)`. You may use scikit-learn's
# `train_test_split(..., stratify=...)` twice, or split each class yourself.
#
# The tests use imbalanced labels (a plain random split fails them), other fractions, and a
# class with only a handful of members.
#
# *Hint (per class):* for each class, permute its indices with a seeded generator, cut at
# `round(f_train * n_c)` and `round((f_train + f_val) * n_c)`, then concatenate the pieces of
# all classes and shuffle each part once more.

# %% nbgrader={"grade": false, "grade_id": "ex05_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
def stratified_split(labels, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """Return (train_idx, val_idx, test_idx), int64 tensors, with class proportions preserved."""
    ### BEGIN SOLUTION
    labels = torch.as_tensor(labels)
    gen = torch.Generator().manual_seed(seed)
    pieces = ([], [], [])
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n1 = round(fractions[0] * len(members))
        n2 = round((fractions[0] + fractions[1]) * len(members))
        for piece, part in zip(pieces, (members[:n1], members[n1:n2], members[n2:])):
            piece.append(part)
    parts = []
    for piece in pieces:
        joined = torch.cat(piece).to(torch.int64)
        parts.append(joined[torch.randperm(len(joined), generator=gen)])
    return tuple(parts)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_2_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_stratified(labels, fractions, seed, what):
    labels = torch.as_tensor(labels)
    parts = stratified_split(labels.numpy() if what.endswith("(numpy)") else labels, fractions, seed)
    checks.check_equal(len(parts), 3, f"number of parts returned ({what})")
    for k, p in enumerate(parts):
        checks.check_tensor(p, f"part {k} ({what})", shape=(None,), dtype=torch.int64)
    everything = torch.cat(parts)
    checks.check_equal(torch.sort(everything).values, torch.arange(len(labels)),
                       f"all indices of the three parts, sorted ({what})",
                       hint="disjoint parts that together cover every row once")
    for c in torch.unique(labels).tolist():
        n_c = int((labels == c).sum())
        for k, (p, f) in enumerate(zip(parts, fractions)):
            got = int((labels[p] == c).sum())
            checks.check(abs(got - f * n_c) <= 2, f"class {c} in part {k} ({what})",
                         f"about {f * n_c:.1f} of its {n_c} members", got,
                         "split every class separately (stratify)")
    return parts


gen = torch.Generator().manual_seed(0)
labels3 = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 1000, replacement=True, generator=gen)
tr, va, te = _check_stratified(labels3, (0.7, 0.15, 0.15), 0, "1000 imbalanced labels")
checks.check(abs(len(tr) - 700) <= 3 and abs(len(va) - 150) <= 3, "sizes of train and val",
             "about 700 and 150", (len(tr), len(va)))
### BEGIN HIDDEN TESTS
again = stratified_split(labels3, (0.7, 0.15, 0.15), 0)
for k in range(3):
    checks.check_equal(again[k], (tr, va, te)[k], f"part {k} for the same seed")
other = stratified_split(labels3, (0.7, 0.15, 0.15), 1)
checks.check(not torch.equal(other[1], va), "a different seed must give a different split")
checks.check(not torch.equal(torch.sort(tr).values, tr), "indices within a part should be shuffled")
gen = torch.Generator().manual_seed(1)
labels5 = torch.multinomial(torch.tensor([0.45, 0.25, 0.15, 0.1, 0.05]), 1500, replacement=True,
                            generator=gen)
_check_stratified(labels5, (0.8, 0.1, 0.1), 3, "five classes, 80/10/10")
_check_stratified(labels5, (0.6, 0.2, 0.2), 4, "five classes, 60/20/20 (numpy)")
rare = torch.cat([torch.zeros(200, dtype=torch.int64), torch.full((5,), 4)])
_check_stratified(rare[torch.randperm(205, generator=gen)], (0.7, 0.15, 0.15), 2, "a class of 5")
_check_stratified(y_digits, (0.7, 0.15, 0.15), 0, "the digits")
### END HIDDEN TESTS

# %% [markdown]
# Split the imbalanced example both ways and compare the class proportions per part: the
# stratified parts agree to within a rounding, the random ones wander.

# %%
gen = torch.Generator().manual_seed(0)
labels3 = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 300, replacement=True, generator=gen)
splits = {"random": random_split(range(300), [0.7, 0.15, 0.15],
                                 generator=torch.Generator().manual_seed(2)),
          "stratified": stratified_split(labels3, seed=2)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, (name, split) in zip(axes, splits.items()):
    for k, (part, idx) in enumerate(zip(["train", "val", "test"], split)):
        share = torch.bincount(labels3[torch.as_tensor(list(idx))], minlength=3) / len(idx)
        ax.bar(np.arange(3) + 0.27 * (k - 1), share, width=0.27, label=part)
    ax.set(title=f"{name} split of 300 imbalanced labels", xlabel="class", xticks=range(3))
axes[0].set_ylabel("share of the part")
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Stratifying keeps the imbalance *the same* in every part; it does not remove it. If the rare
# class matters, a `WeightedRandomSampler` can rebalance what the model sees during training:
# each sample is drawn with probability proportional to its weight, here $1/n_c$ for its class.
# Pass it as `DataLoader(dataset, batch_size=..., sampler=sampler)`, in place of
# `shuffle=True`. (Evaluate on the untouched validation set, which keeps the real proportions.)

# %%
class_counts = torch.bincount(labels3, minlength=3)  # (3,)
weights = 1.0 / class_counts[labels3].double()  # (N,): rare classes weigh more
sampler = WeightedRandomSampler(weights, num_samples=len(labels3), replacement=True,
                                generator=torch.Generator().manual_seed(0))
drawn = labels3[torch.tensor(list(sampler))]
print("class shares in the data:   ", (class_counts / len(labels3)).numpy().round(2))
print("class shares the model sees:", (torch.bincount(drawn, minlength=3) / len(drawn)).numpy().round(2))

# %% [markdown]
# ### 5.3.10 Efficient data loading
#
# **Data larger than memory.** A memory-mapped `.npy` file is opened, not read: the operating
# system loads the pages that a slice touches, when it touches them. A dataset over a memory map
# costs almost no RAM however large the file.

# %%
big = np.random.default_rng(0).normal(size=(20_000, 64)).astype(np.float32)  # 5 MB; or 500 GB
np.save(WORKDIR / "features.npy", big)
del big


class MemmapRows(Dataset):
    """Rows of a .npy file, read from disk on demand: item (64,) float32."""

    def __init__(self, path: Path):
        self.data = np.load(path, mmap_mode="r")  # nothing is read yet

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.data[i]))  # copy this row only


rows_ds = MemmapRows(WORKDIR / "features.npy")
print(type(rows_ds.data).__name__, rows_ds.data.shape, "| row 12345 mean:", float(rows_ds[12345].mean()))

# %% [markdown]
# **Workers.** With `num_workers=k`, `k` worker processes each build whole batches (calling
# `__getitem__` and `collate_fn`) while the main process trains; each worker keeps up to
# `prefetch_factor` batches ready. This hides time spent *waiting* — reading files, decoding —
# and spreads CPU-heavy transforms over cores. Workers cost a start-up (a new process each,
# every epoch unless `persistent_workers=True`), and each gets its own seed for `torch`,
# `random` and NumPy, so random augmentations differ between workers.
#
# We measure it with a dataset whose samples take 5 ms to "read" (a sleep standing in for a
# slow disk or network). On Linux (up to Python 3.13), workers are *forked* from the notebook's
# process, so classes defined in the notebook work; on macOS and Windows workers are *spawned*
# and need the dataset class in an importable `.py` file — use `num_workers=0` in notebooks
# there. `torch.multiprocessing.get_start_method()` tells you which one you have.

# %% tags=["autograde-skip"]
class SlowReads(Dataset):
    """Like reading 100 small files: every item waits 5 ms before returning (8,) float32."""

    def __len__(self) -> int:
        return 100

    def __getitem__(self, i: int):
        time.sleep(0.005)
        return torch.full((8,), float(i))


def epoch_seconds(num_workers: int) -> list[float]:
    """Seconds of two epochs; persistent workers start in the first and stay for the second."""
    loader = DataLoader(SlowReads(), batch_size=10, num_workers=num_workers,
                        persistent_workers=num_workers > 0)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        for _ in loader:
            pass
        seconds.append(time.perf_counter() - start)
    return seconds


worker_times = {k: epoch_seconds(k) for k in (0, 1, 2)}
for k, (first, second) in worker_times.items():
    print(f"num_workers={k}: first epoch {first:.2f} s, second epoch {second:.2f} s")
print(f"pure waiting per epoch: {100 * 0.005:.2f} s | steady-state speed-up with 2 workers: "
      f"{worker_times[0][1] / worker_times[2][1]:.1f}x")

# %% [markdown]
# Look at the second epochs, when the workers are already running. One worker waits exactly
# as long as the main process did: no gain. Two workers wait *at the same time*, and the epoch
# takes about half as long. The first epochs add the cost of starting the processes — paid at
# every epoch unless `persistent_workers=True`, and enough to erase the gain when epochs are
# short. Waiting needs no CPU, so for I/O-bound loading even more workers than cores can help;
# CPU-bound transforms stop scaling at the number of cores. Measure on your own data.
#
# **Pinned memory.** Copies from the CPU to a CUDA GPU go through page-locked ("pinned") host
# memory. `pin_memory=True` makes the loader put batches there directly, and
# `x.to(device, non_blocking=True)` can then overlap the copy with computation. On a CPU-only
# machine there is nothing to gain (and PyTorch warns), so tie it to the device:

# %% tags=["autograde-skip"]
if device.type == "cuda":
    host = torch.randn(64, 3, 224, 224)  # ~38 MB: one batch of images
    for name, batch in {"pageable": host, "pinned": host.pin_memory()}.items():
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(20):
            batch.to(device, non_blocking=True)
        torch.cuda.synchronize()
        print(f"{name}: {(time.perf_counter() - start) / 20 * 1e3:.2f} ms per copy")
else:
    print("No CUDA device here: pin_memory would only add work. Loader setting:",
          dict(pin_memory=device.type == "cuda"))

# %% [markdown]
# If the GPU waits for data: more workers (up to the number of cores), `pin_memory` with
# `non_blocking` copies, pre-compute deterministic transforms, store data in formats that are
# cheap to read (memory-mapped arrays instead of thousands of tiny files), and measure —
# the profiler of chapter 14 shows whether the loader or the model is the bottleneck.

# %% [markdown]
# ### Exercise 5.7 — A complete pipeline (★★★★★, 6 points)
#
# Put it all together on a file. The cell below writes the digits to `digits.csv`: a header
# `label,p00,p01,…,p63` and one row per image with its grey levels 0–16.
#
# **(a)** `DigitsCSV(csv_path, transform=None)` reads the whole file once with pandas,
# **finding the columns by name** (`label`, `p00` … `p63` — do not rely on their order), and
# stores `self.images`, float32 `(N, 1, 8, 8)` in $[0, 1]$ (grey level / 16), and
# `self.labels`, int64 `(N,)`. Item `i` is `(image, label)` with the transform, if any, applied
# to the `(1, 8, 8)` image.
#
# **(b)** `build_pipeline(csv_path, stats_path, batch_size=64, num_workers=0, seed=0)` returns a
# dict of three `DataLoader`s, `{"train": …, "val": …, "test": …}`:
#
# 1. a stratified 70/15/15 split of the rows (your `stratified_split` or scikit-learn), seeded;
# 2. the pixel mean and standard deviation (two scalars, population std) of the **training
#    rows only**, saved with `torch.save({"mean": tensor, "std": tensor}, stats_path)`;
# 3. training images get augmentation, then normalization:
#    `v2.Compose([v2.RandomCrop(8, padding=1), v2.Normalize([mean], [std])])` —
#    `RandomCrop` with one pixel of zero padding is torchvision's version of your `RandomShift`;
#    validation and test images get the normalization only;
# 4. each loader's `dataset` is a `Subset` of a `DigitsCSV` (with the right transform) whose
#    `indices` are that part's rows; `batch_size` and `num_workers` as given; only the
#    training loader shuffles (with a generator seeded by `seed`);
#    `pin_memory=torch.cuda.is_available()`.
#
# Also write `load_eval_transform(stats_path)`: read the statistics back (`torch.load`) and
# return the evaluation transform — what a deployed model would use on new images.
#
# The tests check the columns are read by name, the statistics against the training rows (on a
# file built so that any leakage from validation or test rows shows), the exact values of
# validation batches, that training samples are augmented and validation samples are not, and
# that the loaders work with worker processes.
#
# *Hints:* `frame[[f"p{k:02d}" for k in range(64)]].to_numpy()`, then `torch.tensor(...)`
# (pandas 3 hands out read-only arrays, which `torch.from_numpy` warns about);
# `Subset(DigitsCSV(path, transform), indices)`; `images.std(correction=0)`.

# %%
pixel_columns = [f"p{k:02d}" for k in range(64)]
digits_frame = pd.DataFrame((X_digits.flatten(1) * 16).round().to(torch.int64).numpy(),
                            columns=pixel_columns)
digits_frame.insert(0, "label", y_digits.numpy())
CSV_PATH = WORKDIR / "digits.csv"
digits_frame.to_csv(CSV_PATH, index=False)
print(CSV_PATH.read_text()[:120], "...")

# %% nbgrader={"grade": false, "grade_id": "ex05_7_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DigitsCSV(Dataset):
    """Digits from a CSV (label, p00..p63 in 0-16): items ((1, 8, 8) float32 in [0, 1], int64)."""

    def __init__(self, csv_path, transform=None):
        self.transform = transform
        ### BEGIN SOLUTION
        frame = pd.read_csv(csv_path)
        pixels = frame[[f"p{k:02d}" for k in range(64)]].to_numpy()  # (N, 64) ints 0-16
        self.images = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
        self.labels = torch.tensor(frame["label"].to_numpy(), dtype=torch.int64)
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.labels)
        ### END SOLUTION

    def __getitem__(self, i: int):
        ### BEGIN SOLUTION
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_7_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
csv_ds = DigitsCSV(CSV_PATH)
checks.check_equal(len(csv_ds), 1797, "len(DigitsCSV(digits.csv))")
checks.check_tensor(csv_ds.images, "csv_ds.images", shape=(1797, 1, 8, 8), dtype=torch.float32)
checks.check_tensor(csv_ds.labels, "csv_ds.labels", shape=(1797,), dtype=torch.int64)
from sklearn.datasets import load_digits as _load_digits  # the original source, independently

_sk = _load_digits()
checks.check_close(csv_ds.images, torch.tensor(_sk.images, dtype=torch.float32).unsqueeze(1) / 16,
                   "csv_ds.images", hint="grey level / 16, reshaped to (N, 1, 8, 8)")
checks.check_equal(csv_ds.labels, torch.tensor(_sk.target, dtype=torch.int64), "csv_ds.labels")
image, label = csv_ds[10]
checks.check_tensor(image, "csv_ds[10][0]", shape=(1, 8, 8), dtype=torch.float32)
checks.check_equal(label, torch.tensor(int(_sk.target[10])), "csv_ds[10][1]")
flipped = DigitsCSV(CSV_PATH, transform=lambda img: 1 - img)
checks.check_close(flipped[10][0], 1 - csv_ds.images[10], "item 10 with transform 1 - img")
### BEGIN HIDDEN TESTS
with tempfile.TemporaryDirectory() as tmp:
    frame = pd.DataFrame(np.arange(3 * 64).reshape(3, 64) % 17, columns=pixel_columns)
    frame["label"] = [4, 0, 9]  # label is the LAST column here
    frame = frame[pixel_columns[::-1] + ["label"]]  # and the pixels are in reverse order
    frame.to_csv(Path(tmp) / "odd.csv", index=False)
    odd = DigitsCSV(Path(tmp) / "odd.csv")
    expected = torch.tensor(np.arange(3 * 64).reshape(3, 64) % 17, dtype=torch.float32) / 16
    checks.check_close(odd.images, expected.reshape(3, 1, 8, 8), "images of a CSV with the columns "
                       "in another order", hint="select the columns by name")
    checks.check_equal(odd.labels, torch.tensor([4, 0, 9]), "labels of a CSV with label last")
    checks.check_equal(len(odd), 3, "len of a 3-row CSV")
    checks.check_equal(len(list(odd)), 3, "items yielded by iterating a 3-row dataset")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex05_7_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def build_pipeline(csv_path, stats_path, batch_size: int = 64, num_workers: int = 0,
                   seed: int = 0) -> dict[str, DataLoader]:
    """Stratified split, training-only statistics saved to stats_path, augmented train loader."""
    ### BEGIN SOLUTION
    train_ds = DigitsCSV(csv_path)  # no transform yet: the statistics need raw pixels
    parts = stratified_split(train_ds.labels, (0.7, 0.15, 0.15), seed)
    train_images = train_ds.images[parts[0]]  # (N_train, 1, 8, 8)
    stats = {"mean": train_images.mean(), "std": train_images.std(correction=0)}
    torch.save(stats, stats_path)
    normalize = v2.Normalize([float(stats["mean"])], [float(stats["std"])])
    train_ds.transform = v2.Compose([v2.RandomCrop(8, padding=1), normalize])
    eval_ds = DigitsCSV(csv_path, transform=normalize)
    datasets = {"train": Subset(train_ds, parts[0].tolist()),
                "val": Subset(eval_ds, parts[1].tolist()),
                "test": Subset(eval_ds, parts[2].tolist())}
    return {name: DataLoader(ds, batch_size=batch_size, shuffle=(name == "train"),
                             generator=torch.Generator().manual_seed(seed),
                             num_workers=num_workers, pin_memory=torch.cuda.is_available())
            for name, ds in datasets.items()}
    ### END SOLUTION


def load_eval_transform(stats_path):
    """The evaluation transform rebuilt from the saved statistics."""
    ### BEGIN SOLUTION
    stats = torch.load(stats_path)
    return v2.Normalize([float(stats["mean"])], [float(stats["std"])])
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05_7_test_b", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from sklearn.datasets import load_digits as _load_digits  # the original source, independently

_sk = _load_digits()
workers = 1 if torch.multiprocessing.get_start_method() == "fork" else 0
with tempfile.TemporaryDirectory() as tmp:
    stats_file = Path(tmp) / "stats.pt"
    loaders = build_pipeline(CSV_PATH, stats_file, batch_size=32, num_workers=workers, seed=0)
    checks.check_type(loaders, dict, "build_pipeline(...)")
    checks.check_equal(sorted(loaders), ["test", "train", "val"], "keys of the pipeline")
    parts = {}
    for name, loader in loaders.items():
        checks.check_type(loader, DataLoader, f"loaders[{name!r}]")
        checks.check_type(loader.dataset, Subset, f"loaders[{name!r}].dataset")
        checks.check_equal(loader.batch_size, 32, f"loaders[{name!r}].batch_size")
        checks.check_equal(loader.num_workers, workers, f"loaders[{name!r}].num_workers")
        parts[name] = torch.as_tensor(list(loader.dataset.indices))
    checks.check_equal(torch.sort(torch.cat(list(parts.values()))).values, torch.arange(1797),
                       "all rows of the three parts", hint="disjoint parts covering every row")
    labels_all = torch.tensor(_sk.target)
    for name, frac in [("train", 0.7), ("val", 0.15), ("test", 0.15)]:
        counts = torch.bincount(labels_all[parts[name]], minlength=10)
        want = frac * torch.bincount(labels_all, minlength=10)
        checks.check(((counts - want).abs() <= 2).all(), f"class counts of {name} (stratified)",
                     want.round().tolist(), counts.tolist())
    stats = torch.load(stats_file)
    train_pixels = torch.tensor(_sk.images, dtype=torch.float64)[parts["train"]] / 16
    checks.check_close(stats["mean"], train_pixels.mean(), "saved mean", rtol=1e-5,
                       hint="the mean of the TRAINING pixels only")
    checks.check_close(stats["std"], train_pixels.std(correction=0), "saved std", rtol=1e-5,
                       hint="population std of the training pixels only")
    val_images, val_labels = next(iter(loaders["val"]))
    raw = torch.tensor(_sk.images, dtype=torch.float32)[parts["val"][:32]].unsqueeze(1) / 16
    checks.check_close(val_images, (raw - stats["mean"]) / stats["std"], "the first validation batch",
                       rtol=1e-4, atol=1e-5, hint="validation: normalization only, in order")
    checks.check_equal(val_labels, labels_all[parts["val"][:32]], "labels of the first val batch")
    x0 = loaders["train"].dataset[0][0]
    checks.check(any(not torch.equal(x0, loaders["train"].dataset[0][0]) for _ in range(10)),
                 "training samples must be augmented (random at every access)")
    v0 = loaders["val"].dataset[0][0]
    checks.check_equal(loaders["val"].dataset[0][0], v0, "a validation sample read twice",
                       hint="no augmentation for validation and test")
    eval_tf = load_eval_transform(stats_file)
    checks.check_close(eval_tf(raw[0]), (raw[0] - stats["mean"]) / stats["std"],
                       "load_eval_transform(stats_path)(image)", rtol=1e-4, atol=1e-5)
### BEGIN HIDDEN TESTS
    from torch.utils.data import RandomSampler, SequentialSampler

    checks.check_type(loaders["train"].sampler, RandomSampler, "the train loader's sampler",
                      hint="shuffle=True for training only")
    for name in ["val", "test"]:
        checks.check_type(loaders[name].sampler, SequentialSampler, f"the {name} loader's sampler")
    test_images = torch.cat([xb for xb, _ in loaders["test"]])
    raw_test = torch.tensor(_sk.images, dtype=torch.float32)[parts["test"]].unsqueeze(1) / 16
    checks.check_close(test_images, (raw_test - stats["mean"]) / stats["std"], "every test image",
                       rtol=1e-4, atol=1e-5, hint="no augmentation for the test set")
    train_labels = torch.cat([yb for _, yb in loaders["train"]])
    checks.check_equal(torch.sort(train_labels).values, torch.sort(labels_all[parts["train"]]).values,
                       "labels seen in one training epoch")
    again = build_pipeline(CSV_PATH, Path(tmp) / "again.pt", batch_size=32, seed=0)
    checks.check_equal(torch.as_tensor(list(again["val"].dataset.indices)), parts["val"],
                       "validation rows for the same seed")
    # A file where rows differ strongly, so statistics that saw val/test rows are visibly off.
    rng = np.random.default_rng(0)
    labels_h = np.repeat(np.arange(10), 40)
    level = rng.permutation(np.arange(400)) % 17
    frame = pd.DataFrame(np.repeat(level[:, None], 64, axis=1), columns=pixel_columns)
    frame.insert(0, "label", labels_h)
    frame.to_csv(Path(tmp) / "levels.csv", index=False)
    lv = build_pipeline(Path(tmp) / "levels.csv", Path(tmp) / "lv.pt", batch_size=16, seed=5)
    lv_stats = torch.load(Path(tmp) / "lv.pt")
    lv_rows = torch.as_tensor(list(lv["train"].dataset.indices))
    lv_train = torch.tensor(level, dtype=torch.float64)[lv_rows] / 16
    checks.check_close(lv_stats["mean"], lv_train.mean(), "mean of the training rows only", rtol=1e-5)
    checks.check_close(lv_stats["std"], lv_train.std(correction=0), "std of the training rows only",
                       rtol=1e-5)
    checks.check(abs(len(lv["test"].dataset) - 60) <= 2, "test rows of a 400-row file",
                 "about 60", len(lv["test"].dataset))
### END HIDDEN TESTS

# %% [markdown]
# Train a small model through your pipeline, with two worker processes where the platform
# forks them (Linux), and evaluate it with the transform loaded back from disk — as a deployed
# model would.

# %% tags=["autograde-skip"]
WORKERS = 2 if torch.multiprocessing.get_start_method() == "fork" else 0
STATS_PATH = WORKDIR / "digits_stats.pt"
pipeline = build_pipeline(CSV_PATH, STATS_PATH, batch_size=64, num_workers=WORKERS)
print({name: len(loader.dataset) for name, loader in pipeline.items()}, "| workers:", WORKERS)
torch.manual_seed(0)
pipe_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
pipe_model.to(device)
fit(pipe_model, pipeline["train"], nn.CrossEntropyLoss(),
    torch.optim.Adam(pipe_model.parameters(), 3e-3), epochs=5, device=device, progress=False)
deployed = TransformedDataset(Subset(DigitsCSV(CSV_PATH), pipeline["test"].dataset.indices),
                              load_eval_transform(STATS_PATH))
test_metrics = evaluate(pipe_model, DataLoader(deployed, batch_size=256), nn.CrossEntropyLoss(),
                        device, {"acc": helpers.train.accuracy})
print(f"test accuracy with the reloaded statistics: {test_metrics['acc']:.1%}")

# %% [markdown]
# ## Concept check (4 points)
#
# Answer in the variables below. The first three are numbers — work them out on paper, then
# check with code if you like; the last three are letters.
#
# 1. `q1_batches`: how many batches does
#    `DataLoader(TensorDataset(torch.zeros(1000, 3)), batch_size=64, drop_last=True)` yield?
# 2. `q2_windows`: how many samples has `WindowDataset` for a series of $T = 520$ weeks with
#    `window=52, horizon=13, stride=4`?
# 3. `q3_padding`: a batch of three sequences of lengths 7, 3 and 5 is padded as in Exercise
#    5.6; how many entries of its mask are `False`?
# 4. `q4_stats`: to standardize the **test** set you use the mean and std of
#    (a) the test set, (b) the training and test sets together, (c) the training set,
#    (d) each test sample separately.
# 5. `q5_split`: to measure a model that forecasts next month's CO₂, the honest split is
#    (a) `random_split` of the windows, (b) earlier years for training, later years for testing,
#    (c) stratified by month of the year.
# 6. `q6_pin`: `pin_memory=True` speeds up
#    (a) training on a CPU-only machine, (b) copies of batches from host memory to a CUDA GPU,
#    (c) reading files from disk.

# %% nbgrader={"grade": false, "grade_id": "cc05_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_batches = ...  # int
q2_windows = ...  # int
q3_padding = ...  # int
q4_stats = ...    # "a", "b", "c" or "d"
q5_split = ...    # "a", "b" or "c"
q6_pin = ...      # "a", "b" or "c"
### BEGIN SOLUTION
q1_batches = 15
q2_windows = 114
q3_padding = 6
q4_stats = "c"
q5_split = "b"
q6_pin = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc05_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
for name, value in [("q1_batches", q1_batches), ("q2_windows", q2_windows), ("q3_padding", q3_padding)]:
    checks.check_type(value, int, name)
for name, value, options in [("q4_stats", q4_stats, "abcd"), ("q5_split", q5_split, "abc"),
                             ("q6_pin", q6_pin, "abc")]:
    checks.check_type(value, str, name)
    checks.check(len(value) == 1 and value in options, f"{name} must be one of {list(options)}",
                 list(options), value)
### BEGIN HIDDEN TESTS
checks.check_equal(q1_batches, len(DataLoader(TensorDataset(torch.zeros(1000, 3)), batch_size=64,
                                              drop_last=True)), "q1_batches")
checks.check_equal(q2_windows, sum(1 for s in range(0, 520, 4) if s + 52 + 13 <= 520), "q2_windows")
ones = pad_sequence([torch.ones(T) for T in (7, 3, 5)], batch_first=True)
checks.check_equal(q3_padding, int((ones == 0).sum()), "q3_padding")
checks.check_equal(q4_stats, "c", "q4_stats")  # training statistics only: no leakage
checks.check_equal(q5_split, "b", "q5_split")  # overlapping windows make a random split optimistic
checks.check_equal(q6_pin, "b", "q6_pin")  # page-locked memory only matters for host-to-GPU copies
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - A `Dataset` says what sample `i` is; a `DataLoader` decides order (sampler), grouping
#   (`batch_size`), assembly (`collate_fn`) and who does the work (`num_workers`). Keep
#   `__getitem__` cheap, side-effect free, and raising `IndexError` past the end.
# - Read small files once, large ones lazily or memory-mapped; repair gaps (interpolate in
#   time) *before* cutting windows, and count what you invented.
# - A window dataset has $\lfloor (T - W - H)/S \rfloor + 1$ samples; test the first and the
#   last window — that is where off-by-one errors live.
# - Random transforms in `__getitem__` give new augmentations every epoch; they buy robustness
#   to exactly the variations they simulate. Never augment validation or test data.
# - Normalization statistics come from the training set only, are saved with the model and
#   applied unchanged to everything else. Unscaled features force tiny learning rates.
# - Variable-length batches need padding **and** lengths/masks; every reduction over time must
#   use them (`masked_mean`, `pack_padded_sequence`).
# - Split so that the test resembles deployment: stratify small or imbalanced classes; split
#   series by time (with a gap), because overlapping windows make random splits lie.
# - Workers hide waiting and spread CPU work; `pin_memory` helps only host-to-GPU copies.
#   Measure before tuning.
