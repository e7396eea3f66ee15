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
# # Chapter 11 — Attention and Transformers
#
# A recurrent network reads a sentence the way you would read it through a keyhole: one word at
# a time, remembering the past only through a small hidden state. Attention removes the keyhole.
# Every position looks at every other position directly and decides, from the content, what
# matters. Stack that idea with a few well-chosen ingredients and you get the Transformer, the
# architecture behind BERT, GPT, vision transformers and most of modern deep learning.
#
# **What you will learn**
# - why attention: what RNNs struggle with, measured;
# - scaled dot-product attention, its formula, and why it divides by $\sqrt{d_k}$;
# - self-attention and cross-attention, multi-head attention, positional encodings;
# - the full encoder–decoder architecture, pre-norm versus post-norm, and why it works;
# - masks: padding masks and causal masks, and how to *prove* that no position sees the future;
# - PyTorch's built-in modules (`F.scaled_dot_product_attention`, `nn.MultiheadAttention`,
#   `nn.TransformerEncoderLayer` …) and their mask conventions;
# - building it all from scratch, checked against PyTorch: attention, multi-head attention,
#   sinusoidal encodings, the pre-norm encoder block, a classifier, a character-level language
#   model, and attention maps read out of a trained sequence-to-sequence model.
#
# **Prerequisites:** chapters 3 (`nn.Module`), 4 (training loops) and 10 (recurrent networks:
# helpful for the motivation, not required). Softmax and cross-entropy.
#
# **Expected time:** 3–4 hours (1.5 hours of reading and demos, the rest exercises). The
# notebook runs top to bottom in under a minute on a laptop CPU: every model in it is tiny.
#
# Work through the cells in order. Exercises are marked **Exercise 11.k**: write your answer
# where it says `# YOUR CODE HERE`, then run the test cell below it. A failing test says what it
# expected, what it got, and gives a hint. Hidden tests run when your notebook is graded, so aim
# for code that is correct, not just green. The exercises build on each other, like the layers
# of a transformer: your attention of 11.1 powers the multi-head attention of 11.2, which powers
# the encoder of 11.4 and the language model of 11.5.

# %% [markdown]
# One setup cell: imports, and `helpers.setup()`, which seeds every random generator, picks the
# device (a GPU when there is one) and sets the plot style. The text corpus of section 11.5 is
# imported here too: Python's own reference manual, which ships with every Python installation.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pydoc_data.topics import topics  # the text of Python's reference manual, offline
from torch import nn

import helpers
from helpers import checks

device = helpers.setup(seed=0, threads=1)  # one CPU thread: fastest for the tiny models here
print(f"PyTorch {torch.__version__}, computing on: {device}")

# %% [markdown]
# ## 11.1 Introduction: beyond RNNs
#
# Chapter 10's recurrent networks read a sequence step by step, $h_t = f(h_{t-1}, x_t)$. That
# design has four costs:
#
# 1. **Sequential computation.** Step $t$ needs step $t-1$: a sequence of length $T$ takes $T$
#    dependent steps, however many cores you have.
# 2. **Long paths.** Information from $x_1$ reaches $y_T$ only by passing through $T-1$
#    updates of the hidden state; each one can blur or shrink it.
# 3. **A bottleneck.** Everything the network knows about the past must fit in one
#    fixed-size vector $h_t$.
# 4. **Vanishing gradients.** The gradient travels the same long path backwards; gating (LSTM,
#    GRU) helps but does not remove the path.
#
# **Attention** (Bahdanau, Cho and Bengio, 2014, for machine translation) lets an output look
# directly at every input and take what it needs. The **Transformer** (Vaswani et al., 2017,
# *Attention Is All You Need*) dropped recurrence altogether: attention, small per-position
# MLPs, residual connections and normalisation, nothing else.
#
# Let us measure point 2. Below, an untrained RNN and an untrained attention layer read the
# same random sequence of $T = 60$ vectors. For each input position $t$ we ask how strongly the
# **last** output depends on it: the size of the gradient $\lVert \partial y_T / \partial x_t
# \rVert$ (of the sum of $y_T$'s features).

# %%
T, d = 60, 32
x = torch.randn(1, T, d, requires_grad=True)  # (B, T, C)
rnn = nn.RNN(d, d, batch_first=True)
attention = nn.MultiheadAttention(d, num_heads=4, batch_first=True)
influence = {}
for name, layer in [("RNN", lambda s: rnn(s)[0]), ("attention", lambda s: attention(s, s, s)[0])]:
    y_last = layer(x)[0, -1]  # (C,): the last output
    (grad,) = torch.autograd.grad(y_last.sum(), x)  # (1, T, C)
    influence[name] = grad[0].norm(dim=-1)  # (T,): one number per input position
for name, g in influence.items():
    print(f"{name:9s}: |dy_T/dx_1| = {g[0]:.1e}, |dy_T/dx_T| = {g[-1]:.1e}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, g in influence.items():
    ax.semilogy(range(1, T + 1), g.detach(), marker="o", ms=3, label=name)
ax.set(title="How much the last output depends on each input (untrained layers)",
       xlabel="input position t", ylabel=r"$\|\partial y_T / \partial x_t\|$ (log scale)")
ax.legend()
plt.show()

# %% [markdown]
# The RNN's dependence on early inputs falls **exponentially** with distance: by position 1 it
# is many orders of magnitude below the last one, so learning long-range relations from such
# gradients is hopeless. The attention layer's curve is flat: every input is one step away
# from every output. (Training and gating improve the RNN; they do not shorten its path.)
#
# ## 11.2 The attention mechanism
#
# ### 11.2.1 Intuition: a soft dictionary lookup
#
# A Python `dict` maps a key to a value, and a lookup succeeds only on an exact match. Attention
# is the differentiable version. Each stored item has a **key** (what it is about) and a
# **value** (what it holds). A **query** (what we are looking for) is compared with every key;
# the similarities become weights that sum to 1 (a softmax); the answer is the weighted average
# of the values. Reading a text to answer "where is the cat?", you give high weight to
# "the cat sat on the mat" and almost none to "the dog played in the garden".

# %%
keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # (4, 2): four items
values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # (4, 1): what each item holds
query = torch.tensor([[0.9, 0.3]])  # (1, 2): much like key 0, a little like key 1
for sharpness in (1.0, 5.0, 50.0):
    weights = torch.softmax(sharpness * query @ keys.T, dim=-1)  # (1, 4), sums to 1
    answer = weights @ values  # (1, 1): weighted average of the values
    print(f"sharpness {sharpness:4.0f}: weights {weights[0].numpy().round(3)} "
          f"-> answer {answer.item():.2f}")

# %% [markdown]
# With mild similarities the answer blends all values; as the scores grow, the softmax
# approaches a hard arg-max and the lookup approaches a dictionary's (the value 10 of the
# nearest key). Remember this: **the size of the scores decides how sharp attention is**. It is
# the reason for the $\sqrt{d_k}$ below.
#
# ### 11.2.2 The formula
#
# Stack the $T_q$ queries in a matrix $Q \in \mathbb{R}^{T_q \times d_k}$, the $T_k$ keys in
# $K \in \mathbb{R}^{T_k \times d_k}$ and their values in $V \in \mathbb{R}^{T_k \times d_v}$.
#
# 1. **Scores:** $S = QK^\top / \sqrt{d_k}$, shape $(T_q, T_k)$; $S_{ij}$ says how relevant
#    key $j$ is to query $i$.
# 2. **Weights:** $A = \mathrm{softmax}(S)$ along each row (over the keys), so that every row
#    of $A$ is a probability distribution: $A_{ij} \ge 0$, $\sum_j A_{ij} = 1$.
# 3. **Output:** $AV$, shape $(T_q, d_v)$: row $i$ is the weighted average of the values that
#    query $i$ chose.
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$
#
# **Why divide by $\sqrt{d_k}$?** If the entries of a query $q$ and a key $k$ are independent
# with mean 0 and variance 1, then $q \cdot k = \sum_{m=1}^{d_k} q_m k_m$ is a sum of $d_k$
# terms of variance 1: its variance is $d_k$ and its standard deviation $\sqrt{d_k}$. With
# $d_k = 512$, typical scores are around $\pm 22.6$ (not $\pm 512$, as one sometimes reads).
# Scores that large push the softmax to a one-hot vector, and the softmax's gradient,
# $\partial A_i / \partial S_j = A_i(\delta_{ij} - A_j)$, vanishes when one $A_i$ is 1 and the
# rest are 0: attention stops learning. Dividing by $\sqrt{d_k}$ brings the scores' standard
# deviation back to 1 whatever $d_k$ is. Measured:

# %%
d_ks = [4, 16, 64, 256, 1024]
stats = {"raw std": [], "scaled std": [], "raw peak": [], "scaled peak": []}
for d_k in d_ks:
    q, k = torch.randn(256, 16, d_k), torch.randn(256, 16, d_k)  # 256 draws of 16 queries, 16 keys
    scores = q @ k.transpose(-2, -1)  # (256, 16, 16)
    for kind, s in [("raw", scores), ("scaled", scores / math.sqrt(d_k))]:
        stats[f"{kind} std"].append(s.std().item())
        stats[f"{kind} peak"].append(s.softmax(dim=-1).amax(dim=-1).mean().item())  # largest weight
for d_k, raw, scaled in zip(d_ks, stats["raw std"], stats["scaled std"]):
    print(f"d_k = {d_k:4d}: std of q.k = {raw:5.1f} (sqrt(d_k) = {math.sqrt(d_k):4.1f}), "
          f"after scaling {scaled:.2f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
left.loglog(d_ks, stats["raw std"], "o-", label=r"$q\cdot k$")
left.loglog(d_ks, stats["scaled std"], "s-", label=r"$q\cdot k / \sqrt{d_k}$")
left.loglog(d_ks, [math.sqrt(v) for v in d_ks], "k--", lw=1, label=r"$\sqrt{d_k}$")
left.set(title="Spread of the scores", xlabel="key dimension $d_k$", ylabel="standard deviation")
right.semilogx(d_ks, stats["raw peak"], "o-", label="without scaling")
right.semilogx(d_ks, stats["scaled peak"], "s-", label=r"with $1/\sqrt{d_k}$")
right.axhline(1 / 16, color="k", ls="--", lw=1, label="uniform over 16 keys")
right.set(title="How one-hot the attention gets", xlabel="key dimension $d_k$",
          ylabel="mean largest weight", ylim=(0, 1.05))
for ax in (left, right):
    ax.legend()
plt.show()

# %% [markdown]
# Without scaling, the scores grow like $\sqrt{d_k}$ (left) and the attention of each query
# collapses onto a single key (right, the largest weight heads for 1). With scaling, both stay
# put, whatever the width of the model. At initialisation, we want soft attention that can
# still learn where to look.
#
# ### 11.2.3 Self-attention and cross-attention
#
# Where do $Q$, $K$ and $V$ come from? From the data, through three learned linear maps:
# $Q = X_q W^Q$, $K = X_{kv} W^K$, $V = X_{kv} W^V$.
#
# - **Self-attention:** queries, keys and values all come from the **same** sequence
#   ($X_q = X_{kv} = X$). Every word of a sentence looks at every other word of the same
#   sentence; in "the animal didn't cross the street because it was too tired", a trained model
#   can resolve "it" by attending to "animal".
# - **Cross-attention:** the queries come from one sequence, the keys and values from
#   **another**. A translation decoder writing "Le chat est …" queries the encoded English
#   sentence "The cat is black" for what to write next.
#
# The output always has one row per **query**; the weights have one row per query and one
# column per key. PyTorch's `nn.MultiheadAttention` shows it (more about it in 11.4):

# %%
mha = nn.MultiheadAttention(embed_dim=16, num_heads=2, batch_first=True)
sentence = torch.randn(2, 5, 16)  # (B, T, C): 2 sequences of 5 tokens
encoded = torch.randn(2, 9, 16)  # (B, T_src, C): another sequence, 9 tokens long
out, w = mha(sentence, sentence, sentence)  # self-attention
print("self-attention:  output", tuple(out.shape), "| weights", tuple(w.shape))
out, w = mha(sentence, encoded, encoded)  # cross-attention: queries from `sentence`
print("cross-attention: output", tuple(out.shape), "| weights", tuple(w.shape))

# %% [markdown]
# ### 11.2.4 Multi-head attention
#
# One attention computes one weighted average per query: one notion of relevance. Multi-head
# attention runs $h$ attentions ("heads") in parallel, each in its own lower-dimensional
# subspace, and mixes their outputs:
#
# $$\mathrm{head}_i = \mathrm{Attention}(X_q W_i^Q,\; X_{kv} W_i^K,\; X_{kv} W_i^V), \qquad
# \mathrm{MultiHead} = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O.$$
#
# With $d_\text{model}$ features and $h$ heads, each head works with
# $d_k = d_v = d_\text{model}/h$ (the original Transformer: $d_\text{model} = 512$, $h = 8$,
# $d_k = 64$). In practice the $h$ matrices $W_i^Q$ are one $d_\text{model} \times
# d_\text{model}$ matrix whose output is cut into $h$ slices, so **more heads cost no extra
# parameters**: $4 d_\text{model}^2 + 4 d_\text{model}$ with biases, whatever $h$ is.

# %%
for n_heads in (1, 2, 8, 16):
    layer = nn.MultiheadAttention(512, n_heads)
    n_params = sum(p.numel() for p in layer.parameters())
    print(f"{n_heads:2d} heads of size {512 // n_heads:3d}: {n_params:,} parameters")
print(f"formula 4 d^2 + 4 d: {4 * 512**2 + 4 * 512:,}")

# %% [markdown]
# What do the heads buy? Each head has its own softmax, so one head can attend sharply to the
# previous token while another spreads over the whole sentence, and a third follows a specific
# relation. Heads of trained language models do specialise like that (some track neighbours,
# some match brackets or repeated words); labels such as "the syntax head" are after-the-fact
# interpretations, though, not something the architecture assigns. In exercise 11.6 you will
# look at the heads of a model you trained.
#
# ### 11.2.5 Positional encoding
#
# Look at the formula again: nothing in it knows where a token sits. Permute the input
# sequence, and self-attention returns the same outputs, permuted the same way (it is
# *permutation-equivariant*). "Dog bites man" and "man bites dog" are the same bag of vectors.

# %%
x = torch.randn(1, 6, 16)  # (B, T, C)
perm = torch.tensor([3, 0, 5, 1, 4, 2])  # a shuffle of the 6 positions
out, _ = mha(x, x, x)
out_shuffled, _ = mha(x[:, perm], x[:, perm], x[:, perm])
print("attention(shuffled x) == shuffled attention(x):",
      torch.allclose(out_shuffled, out[:, perm], atol=1e-6))

# %% [markdown]
# Order must therefore be put into the input. The Transformer adds to each token's embedding a
# vector that depends only on its position. The original choice is **sinusoidal**: for
# position $pos$ and feature pair $i = 0, 1, \dots, d_\text{model}/2 - 1$,
#
# $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_\text{model}}}\right), \qquad
# PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_\text{model}}}\right).$$
#
# Each pair of features is a clock hand turning at its own speed: the wavelengths grow
# geometrically from $2\pi$ (the fast hand, features 0–1) to $10000 \cdot 2\pi$ (the slow
# ones). Properties worth knowing:
#
# - values stay in $[-1, 1]$ and every position gets a distinct pattern;
# - moving $k$ positions turns every clock hand by a fixed angle, so $PE_{pos+k}$ is a
#   **linear function** (a rotation) of $PE_{pos}$, the same for every $pos$: relative
#   offsets are easy for a linear layer to read. As a consequence $PE_{p} \cdot PE_{q}$
#   depends only on $p - q$;
# - the formula is defined for any position, so nothing breaks on a sequence longer than the
#   training ones. Whether the model then *generalises* to those lengths is another matter: in
#   practice it often does not.
#
# The alternative is **learned** positional embeddings: a trainable table with one vector per
# position up to a maximum length (BERT, GPT-2). Newer models often use relative schemes such
# as rotary embeddings (RoPE, in LLaMA) or ALiBi, which put the position into the attention
# scores instead of the input. In exercise 11.3 you implement the sinusoidal version, plot it,
# and measure what a model can and cannot do without any positional information.

# %% [markdown]
# ## 11.3 The Transformer architecture
#
# ### 11.3.1 The complete architecture
#
# The original Transformer is an **encoder** that reads the input sequence and a **decoder**
# that writes the output sequence one token at a time. Both are stacks of $N$ identical blocks
# ($N = 6$ in the original), and every block has the same two kinds of sublayer, each wrapped
# in a residual connection and a layer normalisation:
#
# - **encoder block:** multi-head *self*-attention, then a position-wise feed-forward network
#   (two linear layers with a ReLU, applied to every position separately);
# - **decoder block:** *masked* multi-head self-attention (a position may not look at later
#   positions: it has not written them yet), then multi-head *cross*-attention to the
#   encoder's output, then the feed-forward network.
#
# The picture shows the version this chapter builds, with the normalisation *before* each
# sublayer (pre-norm, explained below the figure).

# %%
def draw_stack(ax, x, boxes, repeat, label_side=-1):
    """Draw boxes bottom-up at horizontal position x; `repeat` = (first, last) box of the N x block."""
    for i, (text, color) in enumerate(boxes):
        ax.add_patch(plt.Rectangle((x - 2.3, 1.1 * i), 4.6, 0.7, fc=color, ec="0.35"))
        ax.text(x, 1.1 * i + 0.35, text, ha="center", va="center", fontsize=8)
        if i:
            ax.annotate("", xy=(x, 1.1 * i), xytext=(x, 1.1 * i - 0.4),
                        arrowprops=dict(arrowstyle="->", color="0.35"))
    first, last = repeat
    ax.add_patch(plt.Rectangle((x - 2.45, 1.1 * first - 0.15), 4.9, 1.1 * (last - first) + 1.0,
                               fill=False, ls="--", ec="0.5"))
    ax.text(x + label_side * 2.6, 1.1 * (first + last) / 2 + 0.35, "N x", va="center",
            ha="right" if label_side < 0 else "left")


ATTN, FFN, EMB, NORM = "#f9d9b5", "#cde8c8", "#dfe8f5", "#eeeeee"
encoder_boxes = [("source tokens", "white"), ("embedding + positional encoding", EMB),
                 ("LayerNorm -> self-attention -> + residual", ATTN),
                 ("LayerNorm -> feed-forward -> + residual", FFN), ("final LayerNorm", NORM)]
decoder_boxes = [("target tokens, shifted right", "white"),
                 ("embedding + positional encoding", EMB),
                 ("LayerNorm -> masked self-attention -> + residual", ATTN),
                 ("LayerNorm -> cross-attention -> + residual", ATTN),
                 ("LayerNorm -> feed-forward -> + residual", FFN), ("final LayerNorm", NORM),
                 ("linear -> softmax: next-token probabilities", "white")]

# %% [markdown]
# The encoder's output (its "memory") feeds the keys and values of every decoder block's
# cross-attention; that is the long arrow.

# %%
fig, ax = plt.subplots(figsize=(10.5, 5.6))
draw_stack(ax, 2.6, encoder_boxes, repeat=(2, 3))
draw_stack(ax, 9.4, decoder_boxes, repeat=(2, 4), label_side=1)
ax.annotate("", xy=(7.1, 3.65), xytext=(4.9, 4.75),
            arrowprops=dict(arrowstyle="->", color="C3", lw=1.8))
ax.text(5.2, 3.95, "memory:\nkeys and\nvalues", color="C3", fontsize=8.5, ha="left", va="top")
ax.text(2.6, 5.75, "ENCODER", ha="center", weight="bold")
ax.text(9.4, 8.0, "DECODER", ha="center", weight="bold")
ax.set(xlim=(-0.6, 12.6), ylim=(-0.2, 8.3))
ax.set_title("The Transformer (pre-norm), one block of each kind")
ax.axis("off")
plt.show()

# %% [markdown]
# **Pre-norm or post-norm.** The 2017 paper normalises *after* adding the residual
# ("Add & Norm", post-norm); most models since GPT-2 normalise the *input* of each sublayer
# (pre-norm) and add one final LayerNorm at the top of the stack:
#
# $$\text{post-norm: } x \leftarrow \mathrm{LayerNorm}\big(x + \mathrm{Sublayer}(x)\big)
# \qquad\qquad \text{pre-norm: } x \leftarrow x + \mathrm{Sublayer}\big(\mathrm{LayerNorm}(x)\big)$$
#
# In pre-norm the residual stream $x$ is never rescaled on its way from the input to the
# output: the identity path is clean. One consequence you can check exactly: a pre-norm block
# whose sublayers output zero is the identity, so stacking more blocks starts out harmless,
# while a post-norm block still renormalises every token. (Xiong et al., 2020, analyse the
# gradients: post-norm needs a learning-rate warm-up to train stably, pre-norm much less so.)

# %%
x = torch.randn(2, 5, 16) * 3 + 1  # (B, T, C): activations that are not normalised
for norm_first in (False, True):
    block = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
    with torch.no_grad():  # silence both sublayers: their last linear maps now output zero
        for linear in (block.self_attn.out_proj, block.linear2):
            linear.weight.zero_()
            linear.bias.zero_()
    y = block(x)
    print(f"{'pre' if norm_first else 'post'}-norm block with silent sublayers: "
          f"max |y - x| = {(y - x).abs().max():.3f}, std of y = {y.std():.2f} (x: {x.std():.2f})")

# %% [markdown]
# **Counting parameters.** An encoder block has $4d^2 + 4d$ parameters in its attention,
# $2\,d\,d_\text{ff} + d_\text{ff} + d$ in its feed-forward network and $4d$ in its two
# LayerNorms. For the original sizes ($d = 512$, $d_\text{ff} = 2048$):

# %%
d_model, d_ff = 512, 2048
formula = (4 * d_model**2 + 4 * d_model) + (2 * d_model * d_ff + d_ff + d_model) + 4 * d_model
layer = nn.TransformerEncoderLayer(d_model, nhead=8, dim_feedforward=d_ff, batch_first=True)
print(f"formula: {formula:,} | PyTorch: {sum(p.numel() for p in layer.parameters()):,}")
print(f"the feed-forward network holds {(2 * d_model * d_ff + d_ff + d_model) / formula:.0%} "
      "of the block's parameters")

# %% [markdown]
# Two thirds of a block's parameters sit in the humble feed-forward network, not in the
# attention. Attention *routes* information between positions; the feed-forward network
# *processes* it at each position.
#
# ### 11.3.2 Why Transformers work so well
#
# 1. **Parallel computation.** A layer processes all $T$ positions at once with a few large
#    matrix products: no step waits for the previous one, which is exactly the work GPUs are
#    built for. Training on long sequences becomes practical.
# 2. **Short paths.** Any output is one attention step away from any input (the flat curve of
#    section 11.1), so long-range relations are as easy to learn as short ones.
# 3. **Scale.** The same simple block, stacked and widened, keeps improving with more data,
#    parameters and compute; that scaling is what produced today's large language models.
# 4. **Transfer.** Pre-train once on a huge corpus (BERT, GPT, T5), then fine-tune for a task
#    with little labelled data.
# 5. **Few built-in assumptions.** A CNN assumes locality, an RNN assumes step-by-step
#    processing; a Transformer learns which positions matter from the data. The flip side:
#    with little data those assumptions help, and Transformers tend to need more data.
#
# **The price: quadratic cost.** The score matrix has $T \times T$ entries per head, so time
# and memory grow with the square of the sequence length. Measured on this machine (the cell
# is skipped while grading):

# %% tags=["autograde-skip"]
lengths = [256, 512, 1024, 2048]
seconds = []
for T in lengths:
    q = torch.randn(1, 2, T, 32, device=device)  # (B, heads, T, d_k)
    runs = []
    for _ in range(6):  # the first run is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        F.scaled_dot_product_attention(q, q, q)
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - start)
    seconds.append(sorted(runs[1:])[2])  # the median of 5 timed runs
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(lengths, [s * 1e3 for s in seconds], "o-", label="measured")
ax.loglog(lengths, [seconds[-1] * 1e3 * (T / lengths[-1]) ** 2 for T in lengths], "k--", lw=1,
          label=r"$\propto T^2$")
ax.set(title="Attention time grows with the square of the length", xlabel="sequence length T",
       ylabel="time per call (ms)")
ax.set_xticks(lengths, [str(T) for T in lengths])
ax.minorticks_off()
ax.legend()
plt.show()

# %% [markdown]
# For long sequences, doubling the length roughly quadruples the time; for short ones fixed
# overheads flatten the curve (on a GPU, up to much longer lengths). Sparse, local-window and
# linear-attention variants (Longformer, Linformer, Performer …) reduce the arithmetic; fused
# kernels such as FlashAttention never store the $T \times T$ matrix, so the memory grows only
# linearly, while the arithmetic stays quadratic.
#
# ## 11.4 Implementation in PyTorch
#
# PyTorch has every piece built in. In this section we meet them, together with their
# conventions; in the exercises of section 11.5 you rebuild each piece from scratch and test
# yours against them.
#
# ### 11.4.1 Scaled dot-product attention
#
# `F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)` takes tensors of
# shape `(..., T, d_k)` (any leading batch and head dimensions) and returns the output only, not
# the weights: that lets it choose fused kernels that never store the $T \times T$ matrix
# (FlashAttention and memory-efficient attention on GPUs).

# %%
q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 5)
out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T_q, d_v)
print("output:", tuple(out.shape), "-- one row per query, the values' width")
causal_out = F.scaled_dot_product_attention(q, k[..., :6, :], v[..., :6, :], is_causal=True)
print("with is_causal=True (6 queries, 6 keys):", tuple(causal_out.shape))

# %% [markdown]
# ### 11.4.2 Multi-head attention
#
# `nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)` holds the projections of all
# heads in two places: `in_proj_weight`, of shape `(3 d, d)`, is $W^Q$, $W^K$ and $W^V$
# stacked (in that order, each in `nn.Linear`'s `(out, in)` layout), with `in_proj_bias` of
# shape `(3 d,)`; `out_proj` is the `nn.Linear` of $W^O$. Two traps:
#
# - **`batch_first` defaults to `False`**: without it the module expects `(T, B, C)`, and a
#   `(B, T, C)` tensor is silently read with the batch and time axes swapped. Always pass
#   `batch_first=True`.
# - It returns the weights **averaged over the heads** unless you pass
#   `average_attn_weights=False`, and it skips computing them with `need_weights=False`.

# %%
mha = nn.MultiheadAttention(embed_dim=16, num_heads=4, batch_first=True)
for name, p in mha.named_parameters():
    print(f"{name:18s} {tuple(p.shape)}")
x = torch.randn(3, 7, 16)  # (B, T, C)
_, w_avg = mha(x, x, x)
_, w_heads = mha(x, x, x, average_attn_weights=False)
print("weights:", tuple(w_avg.shape), "averaged |", tuple(w_heads.shape), "per head")

# %% [markdown]
# ### 11.4.3 Positional encodings
#
# PyTorch has no sinusoidal-encoding module: every codebase writes its own (you will, in
# exercise 11.3). It is a fixed table, so it belongs in a **buffer**
# (`self.register_buffer("table", ...)`): saved in the `state_dict` and moved by `.to(device)`
# with the model, but not trained. Learned positional embeddings are simply an `nn.Embedding`
# indexed by position:

# %%
max_len, d_model = 16, 8
learned_positions = nn.Embedding(max_len, d_model)  # one trainable vector per position
tokens = torch.randn(2, 5, d_model)  # (B, T, C): 5 token embeddings
with_positions = tokens + learned_positions(torch.arange(5))  # (T, C) broadcasts over B
print(tuple(with_positions.shape), "| trainable:", learned_positions.weight.requires_grad)

# %% [markdown]
# ### 11.4.4 The position-wise feed-forward network
#
# $\mathrm{FFN}(x) = W_2\,\mathrm{ReLU}(W_1 x + b_1) + b_2$ with an inner width $d_\text{ff}$,
# usually $4\,d_\text{model}$. "Position-wise" means the same two layers are applied to every
# position separately: `nn.Linear` acts on the last dimension of a `(B, T, C)` tensor, so
# nothing mixes positions. Mixing is attention's job.

# %%
ffn = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))
x = torch.randn(2, 7, 16)  # (B, T, C)
whole = ffn(x)  # all positions at once
one_position = ffn(x[:, 3])  # position 3 alone, (B, C)
print("position 3 computed alone gives the same:", torch.allclose(whole[:, 3], one_position))

# %% [markdown]
# ### 11.4.5 The encoder block
#
# `nn.TransformerEncoderLayer` is one encoder block. Its submodules have names worth knowing
# (the tests of exercise 11.4 copy your weights into them): `self_attn` (an
# `nn.MultiheadAttention`), `linear1` and `linear2` (the feed-forward network), `norm1` and
# `norm2`, and dropouts. With `norm_first=True` it computes the pre-norm block
# $x \leftarrow x + \mathrm{SelfAttn}(\mathrm{LN}_1(x))$, then
# $x \leftarrow x + \mathrm{FFN}(\mathrm{LN}_2(x))$; without it, the post-norm block of the
# 2017 paper (and the default dropout is 0.1). `nn.TransformerEncoder(layer, num_layers)`
# stacks deep copies of a layer (each copy has its own weights).

# %%
block = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, dropout=0.0,
                                   batch_first=True, norm_first=True)
print(block)
stack = nn.TransformerEncoder(block, num_layers=3, norm=nn.LayerNorm(16),
                              enable_nested_tensor=False)
print("3 layers, independent weights:", stack.layers[0].linear1.weight is not
      stack.layers[1].linear1.weight, "| output", tuple(stack(torch.randn(2, 7, 16)).shape))

# %% [markdown]
# (`enable_nested_tensor=False` silences a warning: the nested-tensor speed-up does not apply
# to pre-norm layers.)
#
# ### 11.4.6 Masks, and PyTorch's two conventions
#
# A mask says which (query, key) pairs may interact. Masked scores are set to $-\infty$ before
# the softmax, so their weights are exactly 0. Masks come in two kinds:
#
# - a **padding mask** hides the padding tokens that make sequences of different lengths fit
#   in one `(B, T)` tensor; it has one entry per key, shape `(B, T)`;
# - a **causal mask** stops position $t$ from looking at positions after $t$, shape `(T, T)`.
#   Language models and decoders need it: during training they see the whole target sequence
#   at once, and without the mask predicting the next token would be as easy as copying it.
#
# Careful: **boolean masks mean opposite things in different PyTorch functions.**
#
# | function | `True` in a boolean mask means |
# |---|---|
# | `F.scaled_dot_product_attention(attn_mask=...)` | this pair **takes part** in attention |
# | `nn.MultiheadAttention(attn_mask=..., key_padding_mask=...)` | this pair is **masked out** |
# | `nn.TransformerEncoder/Decoder` (`mask`, `src_key_padding_mask`, …) | **masked out** |
#
# Float masks are the same everywhere: they are **added** to the scores (0 to keep, $-\infty$
# to block). This chapter's own functions follow `F.scaled_dot_product_attention`:
# `True` = may attend. Whenever you pass one of our masks to an `nn` module, negate it with `~`.

# %%
T = 4
may_attend = torch.tril(torch.ones(T, T, dtype=torch.bool))  # True on and below the diagonal
float_mask = nn.Transformer.generate_square_subsequent_mask(T)  # PyTorch's causal float mask
print(float_mask)
q, k, v = torch.randn(3, T, 8), torch.randn(3, T, 8), torch.randn(3, T, 8)
out_bool = F.scaled_dot_product_attention(q, k, v, attn_mask=may_attend)
out_float = F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask)
out_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
print("bool mask == float mask == is_causal:", torch.allclose(out_bool, out_float, atol=1e-6)
      and torch.allclose(out_bool, out_causal, atol=1e-6))

# %% [markdown]
# ### 11.4.7 Proving that no position sees the future
#
# "The causal mask is lower-triangular" is a claim about the mask. What we really want is a
# claim about the **outputs**: output $t$ must not depend on inputs after $t$. Gradients
# measure dependence, so compute the full Jacobian $\partial\,\mathrm{out}_t / \partial x_s$ of a
# masked self-attention layer and look at its size for every pair $(t, s)$:

# %%
T, d = 10, 16
attention = nn.MultiheadAttention(d, num_heads=2, batch_first=True)
blocked = ~torch.tril(torch.ones(T, T, dtype=torch.bool))  # nn convention: True = masked out


def causal_layer(x):  # (T, C) -> (T, C)
    return attention(x[None], x[None], x[None], attn_mask=blocked)[0][0]


jacobian = torch.autograd.functional.jacobian(causal_layer, torch.randn(T, d))  # (T, C, T, C)
dependence = jacobian.norm(dim=(1, 3))  # (T, T): how much output t depends on input s
print("largest dependence on a future input:", dependence.triu(diagonal=1).max().item())

# %%
fig, ax = plt.subplots(figsize=(5, 4.2))
helpers.plot.heatmap(dependence, ax=ax, title="Causal self-attention: who depends on whom",
                     xlabel="input position s", ylabel="output position t",
                     cbar_label=r"$\|\partial\, out_t / \partial x_s\|$")
plt.show()

# %% [markdown]
# Everything above the diagonal is exactly zero: the output at $t$ has no gradient with respect
# to, and therefore no dependence on, any later input. This is how the tests of exercises 11.1
# and 11.5 check your masks: they change the future and verify that the past does not notice.
#
# ### 11.4.8 A Transformer classifier
#
# A sequence classifier is an encoder stack with a head: embed each token, add positional
# encodings, run the blocks, normalise, **pool** the $T$ outputs into one vector (the mean over
# the real, non-padding tokens, or the output of a special first token as in BERT), and apply
# a linear layer. A token does not have to be a word: the vision transformer (ViT) cuts an
# image into patches and treats each patch as a token. In exercise 11.4 your classifier reads
# the handwritten digits of scikit-learn as sequences of **8 tokens: the 8 rows of the image**,
# each a vector of 8 grey levels.

# %%
images, labels = helpers.data.digits()  # (N, 1, 8, 8) in [0, 1], (N,)
rows = images[:, 0]  # (N, T=8, C=8): a sequence of 8 row-tokens per image
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, i in zip(axes, [0, 1, 2, 3]):
    ax.imshow(rows[i], cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks(range(8), [f"token {t}" for t in range(8)], fontsize=7)
    ax.set_xticks([])
    ax.set_title(f"label {labels[i].item()}: (T, C) = {tuple(rows[i].shape)}", fontsize=9)
    ax.grid(False)
fig.suptitle("A digit as a sequence: each row of 8 pixels is one token", fontsize=11)
plt.show()

# %% [markdown]
# ### 11.4.9 Sequence to sequence: a Transformer that sorts
#
# Time for the full encoder–decoder, built from PyTorch's modules. The task is synthetic but
# honest: the input is a string of 8 random digits, the output the same digits **sorted**.
# There are $10^8$ possible inputs, so a model that gets fresh strings right has learned to sort,
# not memorised. It is a good attention task: to write the $i$-th smallest digit, the decoder
# has to find it somewhere in the input, wherever it is.
#
# **Teacher forcing.** The decoder predicts token $i$ from the input and the target tokens
# before $i$. In training we feed it the true target shifted right by one, starting with a
# begin-of-sequence token `BOS`, and a causal mask stops position $i$ from peeking at target
# token $i$ itself; all 8 predictions are then trained in one parallel pass:
#
# | decoder input | `BOS` | 0 | 1 | 1 | 3 | … |
# |---|---|---|---|---|---|---|
# | **target** | **0** | **1** | **1** | **3** | **5** | … |

# %%
DIGITS, LENGTH, BOS = 10, 8, 10  # tokens 0-9 are digits; token 10 starts every output


def sorting_batch(n, generator=None):
    """n random digit strings (n, LENGTH) and their sorted versions (n, LENGTH), int64, on the CPU."""
    src = torch.randint(0, DIGITS, (n, LENGTH), generator=generator)
    return src, src.sort(dim=1).values


def shift_right(tgt):
    """Teacher forcing: BOS followed by all but the last target token. (B, T) -> (B, T)."""
    return torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)


src, tgt = sorting_batch(2, torch.Generator().manual_seed(0))
print("source:", src[0].tolist(), "\ntarget:", tgt[0].tolist(), "\ndecoder input:",
      shift_right(tgt)[0].tolist())

# %% [markdown]
# The model: one shared embedding for the 11 tokens, learned positional embeddings, a one-block
# encoder and a one-block decoder (pre-norm, 2 heads, $d_\text{model} = 32$), and a linear layer
# to 10 digit logits. About 22,000 parameters.

# %%
class DigitSorter(nn.Module):
    """Encoder-decoder Transformer: src (B, T) and decoder input (B, T) -> logits (B, T, DIGITS)."""

    def __init__(self, d_model=32, n_heads=2, d_ff=64, n_layers=1):
        super().__init__()
        self.embed = nn.Embedding(DIGITS + 1, d_model)  # digits and BOS
        self.pos = nn.Embedding(LENGTH, d_model)  # learned positions
        enc = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True,
                                         norm_first=True)
        dec = nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True,
                                         norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, n_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, n_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, DIGITS)

    def forward(self, src, tgt_in):
        positions = self.pos(torch.arange(src.shape[1], device=src.device))  # (T, C)
        memory = self.encoder(self.embed(src) + positions)  # (B, T_src, C)
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=src.device)
        h = self.decoder(self.embed(tgt_in) + positions[:T], memory, tgt_mask=causal,
                         tgt_is_causal=True)  # (B, T, C)
        return self.head(h)  # (B, T, DIGITS)

# %% [markdown]
# Training: fresh random strings in every batch (an endless data set), AdamW, and a one-cycle
# learning-rate schedule (warm up, then anneal) over 250 steps of 64 strings.

# %%
helpers.seed_everything(0)
sorter = DigitSorter().to(device)
sort_steps = 250
optimizer = torch.optim.AdamW(sorter.parameters(), lr=5e-3)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=sort_steps,
                                               pct_start=0.2)
sort_losses = []
for step in range(sort_steps):
    src, tgt = (t.to(device) for t in sorting_batch(64))
    logits = sorter(src, shift_right(tgt))  # (B, T, DIGITS)
    loss = F.cross_entropy(logits.reshape(-1, DIGITS), tgt.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    sort_losses.append(loss.item())
sorter.eval()
print(f"{sum(p.numel() for p in sorter.parameters()):,} parameters, final training loss "
      f"{sort_losses[-1]:.4f}")

# %% [markdown]
# **Generation.** At test time there is no target to feed: the decoder writes its own. Start
# from `BOS`, predict the first digit, append the most likely one (*greedy* decoding), feed the
# longer sequence back in, and repeat 8 times.

# %%
@torch.no_grad()
def sort_greedy(model, src):
    """Greedy decoding: (B, T) digit strings -> (B, T) predicted sorted strings."""
    out = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
    for _ in range(src.shape[1]):
        next_digit = model(src, out)[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        out = torch.cat([out, next_digit], dim=1)
    return out[:, 1:]  # drop BOS


test_generator = torch.Generator().manual_seed(1234)
sort_src_test, sort_tgt_test = (t.to(device) for t in sorting_batch(1000, test_generator))
predicted = sort_greedy(sorter, sort_src_test)
sort_exact = (predicted == sort_tgt_test).all(dim=1).float().mean().item()
sort_per_digit = (predicted == sort_tgt_test).float().mean().item()
print(f"1000 unseen strings: {sort_exact:.1%} sorted exactly right, "
      f"{sort_per_digit:.2%} of the digits right")
for i in range(3):
    print(sort_src_test[i].tolist(), "->", predicted[i].tolist())

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.semilogy(range(1, sort_steps + 1), sort_losses)
ax.set(title="Learning to sort 8 digits", xlabel="training step (64 strings each)",
       ylabel="cross-entropy (nats, log scale)")
plt.show()

# %% [markdown]
# In a few seconds of CPU time the model sorts about 99 % of unseen strings exactly (the target
# for this design: at least 90 %). It saw 16,000 random strings in training, a tiny fraction of
# the $10^8$ possible ones. How does it find the digit to write next? It must *attend* to it;
# exercise 11.6 opens the model and checks.

# %% [markdown]
# ## 11.5 Exercises
#
# Six exercises take you from the attention formula to models you train. They build on each
# other: 11.2 calls your function of 11.1, 11.4 uses 11.2 and 11.3, 11.5 uses 11.4. If a later
# test fails in a surprising way, re-run the tests of the earlier exercises first.
#
# ### Exercise 11.1 — Attention from scratch (★★, 3 points)
#
# **(a)** Write `scaled_dot_product_attention(q, k, v, mask=None)` returning
# `(output, weights)`:
#
# - `q`: `(..., T_q, d_k)`, `k`: `(..., T_k, d_k)`, `v`: `(..., T_k, d_v)`, floating point,
#   with any number of identical leading (batch, head) dimensions;
# - `mask`: `None`, or a **boolean** tensor broadcastable to `(..., T_q, T_k)` where `True`
#   means "query $i$ may attend to key $j$" (the convention of `F.scaled_dot_product_attention`).
#   Every query is allowed at least one key;
# - returns `output` `(..., T_q, d_v)` and `weights` `(..., T_q, T_k)`, the softmax
#   probabilities (masked entries exactly 0), in the dtype of the inputs. Do not modify the
#   inputs.
#
# **(b)** Write the two masks of section 11.4.6, in the same `True` = may-attend convention:
#
# - `causal_mask(T)`: a `(T, T)` boolean tensor, `True` where key $j \le$ query $i$;
# - `padding_mask(lengths, T)`: from an int64 tensor `lengths` of shape `(B,)`, a `(B, T)`
#   boolean tensor, `True` at the real tokens `t < lengths[b]`, on the device of `lengths`.
#   To use it as an attention mask, give it a query axis: `padding_mask(...)[:, None, :]` has
#   shape `(B, 1, T_k)`.
#
# The tests compare with `F.scaled_dot_product_attention` and a loop-based softmax, on 3-D and
# 4-D inputs, with and without masks, in float32 and float64 (with a gradient check), and they
# check that with your causal mask no output changes when **future** keys and values change.
#
# *Hints:* `k.transpose(-2, -1)` swaps the last two dimensions whatever comes before them;
# `scores.masked_fill(~mask, float("-inf"))` blocks the pairs where `mask` is False;
# `torch.softmax(..., dim=-1)` normalises over the keys; `torch.tril`, and
# `torch.arange(T, device=...) < lengths[:, None]` for the padding mask.

# %% nbgrader={"grade": false, "grade_id": "ex11_1_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v, with an optional boolean mask (True = may attend).

    q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v), mask broadcastable to
    (..., T_q, T_k) or None -> (output (..., T_q, d_v), weights (..., T_q, T_k)).
    """
    ### BEGIN SOLUTION
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
    return weights @ v, weights
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_1_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
q_before = q.clone()
out, weights = scaled_dot_product_attention(q, k, v)
checks.check_tensor(out, "output", shape=(2, 4, 3), dtype=torch.float32)
checks.check_tensor(weights, "weights", shape=(2, 4, 6), dtype=torch.float32,
                    hint="one row per query, one column per key: (B, T_q, T_k)")
checks.check_close(weights.sum(dim=-1), torch.ones(2, 4), "weights.sum(dim=-1)",
                   hint="the softmax runs over the keys, the last dimension")
ref_weights = torch.tensor([[[math.exp(sum(q[b, i, m] * k[b, j, m] for m in range(8)) / math.sqrt(8))
                              for j in range(6)] for i in range(4)] for b in range(2)])
ref_weights = ref_weights / ref_weights.sum(dim=-1, keepdim=True)
checks.check_close(weights, ref_weights, "weights", rtol=1e-4, atol=1e-6,
                   hint="scores = q @ k^T / sqrt(d_k), with d_k = q.shape[-1]")
checks.check_close(out, F.scaled_dot_product_attention(q, k, v), "output", atol=1e-5,
                   hint="output = weights @ v")
checks.check_equal(q, q_before, "q after the call", hint="do not modify the inputs")
### BEGIN HIDDEN TESTS
# 4-D (B, heads, T, d) inputs, d_v != d_k, T_q != T_k
q4, k4, v4 = torch.randn(3, 2, 5, 16), torch.randn(3, 2, 7, 16), torch.randn(3, 2, 7, 4)
out4, w4 = scaled_dot_product_attention(q4, k4, v4)
checks.check_close(out4, F.scaled_dot_product_attention(q4, k4, v4), "4-D output", atol=1e-5)
checks.check_close(w4, torch.softmax(torch.einsum("bhid,bhjd->bhij", q4, k4) / 4.0, dim=-1),
                   "4-D weights", atol=1e-6)
# a random mask of shape (B, heads, T_q, T_k), every query allowed at least one key
mask = torch.rand(3, 2, 5, 7) > 0.5
mask[..., 0] = True
out_m, w_m = scaled_dot_product_attention(q4, k4, v4, mask)
checks.check_close(out_m, F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask),
                   "output with a mask", atol=1e-5, hint="True means MAY attend: block where ~mask")
checks.check_equal(w_m[~mask], torch.zeros(int((~mask).sum())), "weights of masked pairs")
# a (T_q, T_k) mask broadcast over the batch and heads
small = torch.rand(5, 7) > 0.3
small[:, 2] = True
checks.check_close(scaled_dot_product_attention(q4, k4, v4, small)[0],
                   F.scaled_dot_product_attention(q4, k4, v4, attn_mask=small), "broadcast mask",
                   atol=1e-5)
# large d_k: the scaling matters
qb, kb, vb = torch.randn(2, 6, 512), torch.randn(2, 6, 512), torch.randn(2, 6, 512)
checks.check_close(scaled_dot_product_attention(qb, kb, vb)[1],
                   torch.softmax(qb @ kb.transpose(1, 2) / math.sqrt(512), dim=-1),
                   "weights with d_k = 512", atol=1e-5, hint="divide by sqrt(d_k)")
# float64 kept, gradients right
qd, kd, vd = (torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
od, wd = scaled_dot_product_attention(qd, kd, vd)
checks.check_dtype(od, torch.float64, "output for float64 inputs")
checks.check_dtype(wd, torch.float64, "weights for float64 inputs")
checks.check_gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c)[0], (qd, kd, vd),
                       "scaled_dot_product_attention")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex11_1_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def causal_mask(T):
    """(T, T) bool: True where key j <= query i (may attend)."""
    ### BEGIN SOLUTION
    return torch.tril(torch.ones(T, T, dtype=torch.bool))
    ### END SOLUTION


def padding_mask(lengths, T):
    """lengths (B,) int64 -> (B, T) bool: True at real tokens t < lengths[b]."""
    ### BEGIN SOLUTION
    return torch.arange(T, device=lengths.device) < lengths[:, None]  # (1, T) < (B, 1)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_1_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(causal_mask(3), torch.tensor([[True, False, False], [True, True, False],
                                                 [True, True, True]]), "causal_mask(3)",
                   hint="query i (row) may see keys j <= i (columns): lower triangle, diagonal included")
checks.check_equal(padding_mask(torch.tensor([3, 1]), 4),
                   torch.tensor([[True, True, True, False], [True, False, False, False]]),
                   "padding_mask(lengths=[3, 1], T=4)", hint="True at positions t < length")
# no position sees the future: change the future keys and values, the past must not move
T = 6
q, k, v = torch.randn(2, T, 8), torch.randn(2, T, 8), torch.randn(2, T, 5)
out, _ = scaled_dot_product_attention(q, k, v, causal_mask(T))
for t in range(T - 1):
    k2, v2 = k.clone(), v.clone()
    k2[:, t + 1:] += 5 * torch.randn(2, T - t - 1, 8)
    v2[:, t + 1:] += 5 * torch.randn(2, T - t - 1, 5)
    out2, _ = scaled_dot_product_attention(q, k2, v2, causal_mask(T))
    checks.check_close(out2[:, : t + 1], out[:, : t + 1], f"outputs 0..{t} after changing the "
                       f"keys and values after position {t}", atol=1e-5,
                       hint="a position may only see keys at or before it")
### BEGIN HIDDEN TESTS
for T in (1, 5, 9):
    ref = torch.tensor([[j <= i for j in range(T)] for i in range(T)])
    checks.check_equal(causal_mask(T), ref, f"causal_mask({T})")
lengths = torch.tensor([5, 0, 2, 7])
ref = torch.tensor([[t < n for t in range(7)] for n in lengths.tolist()])
checks.check_equal(padding_mask(lengths, 7), ref, "padding_mask(lengths=[5, 0, 2, 7], T=7)")
checks.check_equal(causal_mask(7), torch.ones(7, 7).tril().bool(), "causal_mask(7)")
checks.check_close(scaled_dot_product_attention(q, k, v, causal_mask(6))[0],
                   F.scaled_dot_product_attention(q, k, v, is_causal=True), "causal output",
                   atol=1e-5)
# gradients: output t has no gradient w.r.t. keys/values after t
qg, kg, vg = (torch.randn(1, 5, 4, requires_grad=True) for _ in range(3))
outg, _ = scaled_dot_product_attention(qg, kg, vg, causal_mask(5))
grad_k, grad_v = torch.autograd.grad(outg[0, 2].sum(), (kg, vg))
checks.check_equal(grad_k[0, 3:], torch.zeros(2, 4), "d out_2 / d k_(3, 4)")
checks.check_equal(grad_v[0, 3:], torch.zeros(2, 4), "d out_2 / d v_(3, 4)")
# padded keys and values are invisible to the real queries
lengths = torch.tensor([4, 2, 6])
pm = padding_mask(lengths, 6)[:, None, :]  # (B, 1, T_k)
q, k, v = torch.randn(3, 6, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 5)
out, w = scaled_dot_product_attention(q, k, v, pm)
k2, v2 = k.clone(), v.clone()
for b, n in enumerate(lengths.tolist()):
    k2[b, n:] = 100.0
    v2[b, n:] = -100.0
out2, _ = scaled_dot_product_attention(q, k2, v2, pm)
checks.check_close(out2, out, "outputs after changing the padded keys and values", atol=1e-5)
checks.check_close(w.sum(dim=-1), torch.ones(3, 6), "weights with a padding mask, row sums")
### END HIDDEN TESTS

# %% [markdown]
# Let us look at attention weights, the picture the seed of this exercise asks for: random
# queries and keys, then the same with your causal mask, then with a padding mask (a sequence of
# 5 real tokens padded to 8). Each row is one query's probability distribution over the keys.

# %%
gen = torch.Generator().manual_seed(3)
q, k, v = (torch.randn(1, 8, 16, generator=gen) for _ in range(3))
panels = {"no mask": None, "causal mask": causal_mask(8),
          "padding mask, length 5": padding_mask(torch.tensor([5]), 8)[:, None, :]}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
for ax, (title, mask) in zip(axes, panels.items()):
    _, w = scaled_dot_product_attention(q, k, v, mask)
    helpers.plot.heatmap(w[0], ax=ax, title=title, xlabel="key position j",
                         ylabel="query position i", cbar_label="weight")
fig.tight_layout()
plt.show()

# %% [markdown]
# Without a mask every query spreads its weight over all 8 keys. The causal mask leaves the
# upper triangle empty, so query 0 puts all its weight on key 0. The padding mask empties the
# last 3 columns for every query: padding tokens are never looked at (the padded *queries*
# still produce outputs, which the model simply ignores).

# %% [markdown]
# ### Exercise 11.2 — Multi-head attention (★★★, 3 points)
#
# Complete `MultiHeadAttention(d_model, n_heads)`, an `nn.Module` with
#
# - four `nn.Linear(d_model, d_model)` layers (with bias) named `W_q`, `W_k`, `W_v`, `W_o`
#   (the tests copy weights through these names);
# - a `ValueError` naming both numbers when `d_model` is not divisible by `n_heads`;
# - `forward(query, key, value, mask=None)` with `query` `(B, T_q, d_model)`, `key` and
#   `value` `(B, T_k, d_model)`, and a boolean `mask` (`True` = may attend) broadcastable to
#   `(B, n_heads, T_q, T_k)`, returning `(output, weights)`: `output` `(B, T_q, d_model)` and
#   the **per-head** `weights` `(B, n_heads, T_q, T_k)`.
#
# The recipe: project with `W_q`, `W_k`, `W_v`; split the last dimension into `n_heads` heads
# of size `d_head = d_model // n_heads` and move the head axis forward,
# `(B, T, d_model) -> (B, T, n_heads, d_head) -> (B, n_heads, T, d_head)`; run **your**
# `scaled_dot_product_attention` on all heads at once; undo the split,
# `(B, n_heads, T_q, d_head) -> (B, T_q, d_model)`; apply `W_o`.
#
# The tests copy your weights into `nn.MultiheadAttention(d_model, n_heads, batch_first=True)`
# and compare outputs and per-head weights for self- and cross-attention, with a causal mask
# and with a padding mask, for 1, 2, 4 and 8 heads; they also count your parameters
# ($4 d_\text{model}^2 + 4 d_\text{model}$, whatever the number of heads).
#
# *Hints:* `x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)` splits the heads; to merge
# them back, transpose first and then `reshape` (the transposed tensor is not contiguous, so
# `view` would refuse). Viewing `(B, T, d_model)` directly as `(B, n_heads, T, d_head)` runs
# without an error and mixes up positions and features: the most common bug here.

# %% nbgrader={"grade": false, "grade_id": "ex11_2_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MultiHeadAttention(nn.Module):
    """Multi-head attention with projections W_q, W_k, W_v, W_o (nn.Linear(d_model, d_model)).

    forward(query (B, T_q, d_model), key (B, T_k, d_model), value (B, T_k, d_model),
            mask bool broadcastable to (B, n_heads, T_q, T_k) or None, True = may attend)
    -> (output (B, T_q, d_model), weights (B, n_heads, T_q, T_k)).
    """

    def __init__(self, d_model, n_heads):
        super().__init__()
        ### BEGIN SOLUTION
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        ### END SOLUTION

    def forward(self, query, key, value, mask=None):
        ### BEGIN SOLUTION
        def split(x):  # (B, T, d_model) -> (B, n_heads, T, d_head)
            return x.view(x.shape[0], x.shape[1], self.n_heads, self.d_head).transpose(1, 2)

        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        heads, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, H, T_q, d_head)
        B, _, T_q, _ = heads.shape
        merged = heads.transpose(1, 2).reshape(B, T_q, self.d_model)  # (B, T_q, d_model)
        return self.W_o(merged), weights
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_2_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def torch_twin(mine, d_model, n_heads):
    """nn.MultiheadAttention carrying the weights of `mine` (W_q, W_k, W_v stacked in in_proj)."""
    twin = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=mine.W_q.weight.dtype)
    with torch.no_grad():
        twin.in_proj_weight.copy_(torch.cat([mine.W_q.weight, mine.W_k.weight, mine.W_v.weight]))
        twin.in_proj_bias.copy_(torch.cat([mine.W_q.bias, mine.W_k.bias, mine.W_v.bias]))
        twin.out_proj.weight.copy_(mine.W_o.weight)
        twin.out_proj.bias.copy_(mine.W_o.bias)
    return twin


torch.manual_seed(11)
mine = MultiHeadAttention(16, 4)
checks.check_module(mine, "MultiHeadAttention(16, 4)", n_params=4 * 16 * 16 + 4 * 16,
                    hint="four nn.Linear(d_model, d_model) layers with bias")
twin = torch_twin(mine, 16, 4)
x = torch.randn(3, 5, 16)
out, weights = mine(x, x, x)
ref_out, ref_weights = twin(x, x, x, average_attn_weights=False)
checks.check_tensor(out, "output", shape=(3, 5, 16))
checks.check_tensor(weights, "weights", shape=(3, 4, 5, 5), hint="per head: (B, n_heads, T_q, T_k)")
checks.check_close(weights, ref_weights, "per-head weights", atol=1e-5,
                   hint="split (B, T, d_model) -> (B, T, n_heads, d_head), then transpose(1, 2)")
checks.check_close(out, ref_out, "output (self-attention)", atol=1e-5,
                   hint="merge heads: transpose(1, 2) then reshape to (B, T, d_model); then W_o")
### BEGIN HIDDEN TESTS
for n_heads in (1, 2, 8):
    mine_h = MultiHeadAttention(32, n_heads)
    checks.check_module(mine_h, f"MultiHeadAttention(32, {n_heads})", n_params=4 * 32 * 32 + 4 * 32)
    twin_h = torch_twin(mine_h, 32, n_heads)
    xq, xkv = torch.randn(2, 4, 32), torch.randn(2, 9, 32)  # cross-attention: T_q != T_k
    xq_before = xq.clone()
    o, w = mine_h(xq, xkv, xkv)
    ro, rw = twin_h(xq, xkv, xkv, average_attn_weights=False)
    checks.check_close(o, ro, f"cross-attention output, {n_heads} heads", atol=1e-5)
    checks.check_close(w, rw, f"cross-attention weights, {n_heads} heads", atol=1e-5)
    checks.check_equal(xq, xq_before, "the query after the call")
# causal mask: ours says "may attend", nn's bool attn_mask says "masked out"
x = torch.randn(2, 6, 16)
allowed = torch.tril(torch.ones(6, 6, dtype=torch.bool))
o, w = mine(x, x, x, allowed)
ro, rw = twin(x, x, x, attn_mask=~allowed, average_attn_weights=False)
checks.check_close(o, ro, "output with a causal mask", atol=1e-5)
checks.check_close(w, rw, "weights with a causal mask", atol=1e-5)
# padding mask (B, 1, 1, T_k)
real = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
o, w = mine(x, x, x, real[:, None, None, :])
ro, rw = twin(x, x, x, key_padding_mask=~real, average_attn_weights=False)
checks.check_close(o, ro, "output with a padding mask", atol=1e-5)
# one head: plain attention on the projections
one = MultiHeadAttention(8, 1)
x = torch.randn(2, 5, 8)
ref = one.W_o(F.scaled_dot_product_attention(one.W_q(x), one.W_k(x), one.W_v(x)))
checks.check_close(one(x, x, x)[0], ref, "1 head == attention on the projections", atol=1e-5)
checks.check_raises(lambda: MultiHeadAttention(10, 3), ValueError, "MultiHeadAttention(10, 3)",
                    hint="raise ValueError when d_model % n_heads != 0")
# gradients reach every parameter, float64 works
mine64 = MultiHeadAttention(8, 2).double()
x64 = torch.randn(2, 3, 8, dtype=torch.float64)
mine64(x64, x64, x64)[0].sum().backward()
checks.check(all(p.grad is not None for p in mine64.parameters()),
             "every parameter of MultiHeadAttention should receive a gradient.")
checks.check_close(mine64(x64, x64, x64)[0], torch_twin(mine64, 8, 2)(x64, x64, x64)[0],
                   "float64 output")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 11.3 — Positional encoding analysis (★★★, 3 points)
#
# **(a)** Write `sinusoidal_encoding(T, d_model)`: the `(T, d_model)` float32 table of section
# 11.2.5, row $pos$ holding $\sin(pos / 10000^{2i/d_\text{model}})$ in column $2i$ and
# $\cos(pos / 10000^{2i/d_\text{model}})$ in column $2i+1$, for $pos = 0, \dots, T-1$. Raise a
# `ValueError` when `d_model` is odd (the sines and cosines come in pairs).
#
# **(b)** Write the module `PositionalEncoding(kind, max_len, d_model)` whose `forward(x)` adds
# positional information to `x` of shape `(B, T, d_model)` with `T <= max_len`:
#
# - `kind="none"`: return `x` unchanged, no parameters;
# - `kind="sinusoidal"`: add the first `T` rows of `sinusoidal_encoding(max_len, d_model)`,
#   stored as a **buffer** named `table` (not trained);
# - `kind="learned"`: add the first `T` rows of a trainable `nn.Parameter` named `table`, of
#   shape `(max_len, d_model)`, initialised with small random values (`0.1 * torch.randn`).
#
# **(c)** Run the experiment. The task below, *which came first?*, shows sequences of 12 tokens
# with filler digits 0–7 and exactly one `A` and one `B` somewhere; the label is 1 when `A`
# comes before `B`. Both classes contain exactly the same kinds of tokens: only the **order**
# tells them apart. `train_order_classifier(kind)` trains a small Transformer (PyTorch's
# encoder with your `PositionalEncoding`) for 120 steps and returns it; `order_accuracy(model)`
# measures its accuracy on 1000 fresh sequences. Store the three trained models in
# `pe_models = {"none": ..., "sinusoidal": ..., "learned": ...}` and their accuracies in
# `pe_results` (same keys, floats in [0, 1]). Then answer in `pe_answer` (a letter): why does
# the model **without** positional encoding score about 50 %?
#
# - (a) 120 steps are too few for it to learn this task;
# - (b) without positions, self-attention and the position-wise layers treat the sequence as a
#   set (permuting the input permutes the outputs), and the mean pooling then forgets the
#   order entirely: "A…B" and "B…A" with the same tokens get exactly the same prediction;
# - (c) a one-layer Transformer is too small for this task;
# - (d) its learning rate is too high.
#
# The tests compare (a) with a loop over `math.sin` and `math.cos`; check the buffer, the
# parameter and what `forward` adds for each kind; re-measure your models on other fresh
# sequences (sinusoidal and learned must reach at least 90 %, none at most 60 %); and check your
# answer by permuting inputs of your `"none"` model.
#
# *Hints:* the frequencies are `10000 ** (-torch.arange(0, d_model, 2) / d_model)`;
# `pe[:, 0::2]` and `pe[:, 1::2]` are the even and odd columns;
# `self.register_buffer("table", ...)`; `self.table[:T]` broadcasts over the batch.

# %% nbgrader={"grade": false, "grade_id": "ex11_3_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sinusoidal_encoding(T, d_model):
    """(T, d_model) float32: sin in even columns, cos in odd ones, wavelengths 2*pi to 10000*2*pi."""
    ### BEGIN SOLUTION
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    angle = position * frequency  # (T, d/2)
    table = torch.zeros(T, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_3_test_a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def reference_encoding(T, d_model):
    rows = []
    for pos in range(T):
        row = []
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            row += [math.sin(angle), math.cos(angle)]
        rows.append(row)
    return torch.tensor(rows)


pe = sinusoidal_encoding(5, 6)
checks.check_tensor(pe, "sinusoidal_encoding(5, 6)", shape=(5, 6), dtype=torch.float32)
checks.check_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]), "row 0 (position 0)",
                   hint="sin(0) = 0 in even columns, cos(0) = 1 in odd columns")
checks.check_close(pe, reference_encoding(5, 6), "sinusoidal_encoding(5, 6)", atol=1e-5,
                   hint="angle = pos / 10000 ** (2i / d_model) for the column pair (2i, 2i + 1)")
### BEGIN HIDDEN TESTS
checks.check_raises(lambda: sinusoidal_encoding(10, 7), ValueError, "sinusoidal_encoding(10, 7)",
                    hint="raise ValueError for an odd d_model")
for T, d in [(50, 16), (1, 2), (120, 64)]:
    checks.check_close(sinusoidal_encoding(T, d), reference_encoding(T, d),
                       f"sinusoidal_encoding({T}, {d})", atol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# What you computed, for 100 positions and $d_\text{model} = 64$ (left): the fast clocks on the
# left columns flip sign every few positions, the slow ones on the right barely move. On the
# right, the dot products $PE_p \cdot PE_q$ between all pairs of positions: every diagonal
# stripe has a single colour, because the similarity depends only on the offset $p - q$.

# %%
pe = sinusoidal_encoding(100, 64)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
helpers.plot.heatmap(pe, ax=left, title="Sinusoidal encoding", xlabel="feature (column)",
                     ylabel="position", cbar_label="value", cmap="RdBu_r", symmetric=True)
left.set_aspect("auto")
helpers.plot.heatmap(pe @ pe.T, ax=right, title=r"Similarity $PE_p \cdot PE_q$",
                     xlabel="position q", ylabel="position p", cbar_label="dot product")
plt.show()

# %% [markdown]
# And the promised rotation: one fixed linear map $M_k$ turns every $PE_{pos}$ into
# $PE_{pos+k}$. Fit it by least squares on positions 0–89 and check the fit:

# %%
for shift in (1, 5, 30):
    M = torch.linalg.lstsq(pe[: 100 - shift], pe[shift:]).solution  # PE[pos] @ M ~ PE[pos + shift]
    error = (pe[: 100 - shift] @ M - pe[shift:]).abs().max().item()
    print(f"shift {shift:2d}: largest error of the linear map {error:.1e}")

# %% nbgrader={"grade": false, "grade_id": "ex11_3_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PositionalEncoding(nn.Module):
    """Adds positions to x (B, T, d_model): kind "none", "sinusoidal" (buffer `table`) or
    "learned" (nn.Parameter `table` of shape (max_len, d_model))."""

    def __init__(self, kind, max_len, d_model):
        super().__init__()
        if kind not in ("none", "sinusoidal", "learned"):
            raise ValueError(f"kind must be 'none', 'sinusoidal' or 'learned', got {kind!r}")
        self.kind = kind
        ### BEGIN SOLUTION
        if kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_encoding(max_len, d_model))
        elif kind == "learned":
            self.table = nn.Parameter(0.1 * torch.randn(max_len, d_model))
        ### END SOLUTION

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        ### BEGIN SOLUTION
        if self.kind == "none":
            return x
        return x + self.table[: x.shape[1]]  # (T, d_model) broadcasts over the batch
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_3_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
x = torch.randn(2, 7, 16)
sinus = PositionalEncoding("sinusoidal", max_len=20, d_model=16)
checks.check_module(sinus, 'PositionalEncoding("sinusoidal", ...)', n_params=0,
                    hint="a fixed table is a buffer, not a parameter: register_buffer")
checks.check("table" in dict(sinus.named_buffers()), 'the "sinusoidal" table should be a buffer '
             "named `table`.", hint='self.register_buffer("table", sinusoidal_encoding(max_len, d_model))')
checks.check_close(sinus(x) - x, reference_encoding(7, 16).expand(2, 7, 16), 'what "sinusoidal" adds',
                   atol=1e-4, hint="add the first T rows of the table")
learned = PositionalEncoding("learned", max_len=20, d_model=16)
checks.check_module(learned, 'PositionalEncoding("learned", ...)', n_params=20 * 16,
                    hint="nn.Parameter of shape (max_len, d_model), named table")
checks.check_close(learned(x) - x, learned.table[:7].detach().expand(2, 7, 16),
                   'what "learned" adds', atol=1e-6)
none = PositionalEncoding("none", max_len=20, d_model=16)
checks.check_module(none, 'PositionalEncoding("none", ...)', n_params=0)
checks.check_equal(none(x), x, 'PositionalEncoding("none")(x)', hint="return x unchanged")
### BEGIN HIDDEN TESTS
checks.check(0.0 < learned.table.std().item() < 0.5, "the learned table should start small and "
             "random.", "0.1 * torch.randn(...)", learned.table.std().item())
learned(x).sum().backward()
checks.check_close(learned.table.grad[:7], torch.full((7, 16), 2.0), "gradient of the learned table",
                   hint="the first T rows receive a gradient (summed over the batch of 2)")
checks.check_equal(learned.table.grad[7:], torch.zeros(13, 16), "gradient of the unused rows")
checks.check("table" in sinus.state_dict(), "the sinusoidal table should be saved in state_dict.")
one = torch.randn(1, 1, 16)
checks.check_close(sinus(one) - one, reference_encoding(1, 16)[None], "T = 1", atol=1e-5)
checks.check_close(sinus(torch.zeros(3, 20, 16)), reference_encoding(20, 16).expand(3, 20, 16),
                   "T = max_len", atol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# The experiment. Here is the task, the model and its training loop (run them; the exercise
# continues below). `A` and `B` are tokens 8 and 9.

# %%
ORDER_T, A_TOKEN, B_TOKEN = 12, 8, 9


def order_batch(n, generator):
    """n sequences (n, ORDER_T) of fillers 0-7 with one A and one B; labels (n,): 1 if A is first."""
    x = torch.randint(0, 8, (n, ORDER_T), generator=generator)
    where = torch.rand(n, ORDER_T, generator=generator).argsort(dim=1)[:, :2]  # 2 distinct slots
    rows = torch.arange(n)
    x[rows, where[:, 0]] = A_TOKEN
    x[rows, where[:, 1]] = B_TOKEN
    return x, (where[:, 0] < where[:, 1]).long()


x, y = order_batch(2, torch.Generator().manual_seed(0))
print(x.tolist(), "labels", y.tolist())

# %%
class OrderClassifier(nn.Module):
    """Tokens (B, T) -> 2 logits: embedding, positions of `kind`, one pre-norm block, mean pool."""

    def __init__(self, kind, d_model=32):
        super().__init__()
        self.embed = nn.Embedding(10, d_model)
        self.positions = PositionalEncoding(kind, ORDER_T, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 2, 64, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2)

    def forward(self, x):  # (B, T) -> (B, 2)
        return self.head(self.encoder(self.positions(self.embed(x))).mean(dim=1))


def train_order_classifier(kind, steps=120):
    helpers.seed_everything(0)
    model = OrderClassifier(kind).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = (t.to(device) for t in order_batch(64, data))
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def order_accuracy(model, n=1000, seed=2):
    x, y = (t.to(device) for t in order_batch(n, torch.Generator().manual_seed(seed)))
    return (model(x).argmax(dim=1) == y).float().mean().item()

# %% nbgrader={"grade": false, "grade_id": "ex11_3_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
pe_models = {}  # kind -> trained OrderClassifier
pe_results = {}  # kind -> accuracy on fresh sequences
pe_answer = ...  # "a", "b", "c" or "d"
### BEGIN SOLUTION
for kind in ("none", "sinusoidal", "learned"):
    pe_models[kind] = train_order_classifier(kind)
    pe_results[kind] = order_accuracy(pe_models[kind])
pe_answer = "b"  # permutation-equivariant layers + mean pooling: the order is invisible
### END SOLUTION
for kind, accuracy in pe_results.items():
    print(f"{kind:10s}: {accuracy:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex11_3_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
kinds = ["learned", "none", "sinusoidal"]
checks.check_equal(sorted(pe_results), kinds, "the keys of pe_results")
checks.check_equal(sorted(pe_models), kinds, "the keys of pe_models")
checks.check_type(pe_answer, str, "pe_answer", hint='one letter, such as "a"')
fresh_x, fresh_y = (t.to(device) for t in order_batch(2000, torch.Generator().manual_seed(99)))
for kind in kinds:
    checks.check_type(pe_models[kind], OrderClassifier, f'pe_models["{kind}"]',
                      hint="store what train_order_classifier returns")
    with torch.no_grad():
        measured = (pe_models[kind].eval()(fresh_x).argmax(dim=1) == fresh_y).float().mean().item()
    checks.check(abs(pe_results[kind] - measured) < 0.05, f'pe_results["{kind}"] should be the '
                 "accuracy of that model.", f"about {measured:.3f}", pe_results[kind],
                 "store order_accuracy(model)")
    if kind != "none":
        checks.check(measured >= 0.9, f'the "{kind}" model should solve the task.', ">= 0.90",
                     measured, "check your PositionalEncoding for this kind")
### BEGIN HIDDEN TESTS
with torch.no_grad():
    none_model = pe_models["none"].eval()
    acc_none = (none_model(fresh_x).argmax(dim=1) == fresh_y).float().mean().item()
    checks.check(acc_none <= 0.6, 'the "none" model should be at chance level.', "<= 0.60",
                 acc_none, 'PositionalEncoding("none") must add nothing')
    shuffled = fresh_x[:, torch.randperm(ORDER_T)]
    invariant = torch.allclose(none_model(shuffled), none_model(fresh_x), atol=1e-4)
checks.check(invariant, 'the "none" model should not see the order.')
checks.check_equal(pe_answer.strip().lower(), "b" if invariant else "?", "pe_answer",
                   hint="shuffle the tokens of a sequence and compare the outputs of the none model")
### END HIDDEN TESTS

# %% [markdown]
# Notice the result: without positions the model is stuck at a coin flip, with either kind of
# positions it is essentially perfect. On this task the learned table does as well as the
# sinusoids: a learned table needs data for every position it will see, which 12 positions and
# 7,680 training sequences easily provide.
#
# ### Exercise 11.4 — Complete Transformer encoder (★★★★★, 5 points)
#
# Build a pre-norm Transformer encoder from your own parts, check it against PyTorch's, and
# train it as a classifier of handwritten digits read as sequences of 8 row-tokens
# (section 11.4.8).
#
# **(a)** Two modules:
#
# - `FeedForward(d_model, d_ff, dropout=0.0)`: `fc1 = nn.Linear(d_model, d_ff)`, ReLU, dropout,
#   `fc2 = nn.Linear(d_ff, d_model)`; `(B, T, d_model) -> (B, T, d_model)`;
# - `EncoderBlock(d_model, n_heads, d_ff, dropout=0.0)` with submodules `norm1`
#   (`nn.LayerNorm(d_model)`), `attn` (your `MultiHeadAttention`), `norm2`, `ffn` (your
#   `FeedForward`) and `dropout` (`nn.Dropout(dropout)`); `forward(x, mask=None)` computes the
#   pre-norm block, applying `self.dropout` to each sublayer's output before adding it:
#   $h = \mathrm{LN}_1(x)$, $x \leftarrow x + \mathrm{drop}(\mathrm{Attn}(h, h, h, \text{mask}))$,
#   $x \leftarrow x + \mathrm{drop}(\mathrm{FFN}(\mathrm{LN}_2(x)))$.
#
# **(b)** `TransformerClassifier(in_features, n_classes, d_model=32, n_heads=4, d_ff=64,
# n_layers=2, max_len=64, dropout=0.0)` with `embed = nn.Linear(in_features, d_model)` (each
# token is a vector of features), a buffer `pe` holding `sinusoidal_encoding(max_len, d_model)`,
# `blocks` (an `nn.ModuleList` of `n_layers` `EncoderBlock`s), a final `norm`
# (`nn.LayerNorm(d_model)`) and `head = nn.Linear(d_model, n_classes)`.
# `forward(x, pad_mask=None)` takes `x` `(B, T, in_features)` and an optional boolean
# `pad_mask` `(B, T)` (`True` at real tokens) and returns logits `(B, n_classes)`: embed, add
# the first `T` rows of `pe`, run the blocks (with the padding mask reshaped to
# `(B, 1, 1, T)`), normalise, take the **mean over the real tokens only**, apply the head.
#
# **(c)** Train `digit_model = TransformerClassifier(8, 10)` (the defaults) on `rows_train`,
# `labels_train` defined below: 10 epochs of mini-batches of 64, shuffled, AdamW with learning
# rate `3e-3`, cross-entropy. `helpers.train.fit` does the loop for you if you like. Leave the
# model in eval mode.
#
# The tests copy your weights into `nn.TransformerEncoderLayer(..., norm_first=True)` and
# compare the outputs (with and without a padding mask); count your parameters; check that
# padding tokens, whatever they contain, do not change the logits; that the order of the rows
# matters; that dropout is active in training mode only; and that `digit_model` reaches at
# least **90 %** accuracy on `rows_test` (the solution reaches about 96 %).
#
# *Hints:* for the masked mean, with `m = pad_mask[..., None].float()` of shape `(B, T, 1)`,
# the mean over real tokens is `(h * m).sum(1) / m.sum(1)`. For (c):
# `torch.utils.data.DataLoader(TensorDataset(rows_train, labels_train), batch_size=64,
# shuffle=True)`.

# %% nbgrader={"grade": false, "grade_id": "ex11_4_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class FeedForward(nn.Module):
    """Position-wise MLP: fc1 (d_model -> d_ff), ReLU, dropout, fc2 (d_ff -> d_model)."""

    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        ### BEGIN SOLUTION
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))
        ### END SOLUTION


class EncoderBlock(nn.Module):
    """Pre-norm block: x + drop(attn(norm1(x))), then x + drop(ffn(norm2(x)))."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x, mask=None):  # (B, T, d_model) -> (B, T, d_model)
        ### BEGIN SOLUTION
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, h, mask)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_4_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def torch_encoder_layer(block, d_model, n_heads, d_ff):
    """nn.TransformerEncoderLayer (pre-norm, ReLU, no dropout) with the weights of `block`."""
    ref = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True,
                                     norm_first=True)
    attn = block.attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([attn.W_q.weight, attn.W_k.weight, attn.W_v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([attn.W_q.bias, attn.W_k.bias, attn.W_v.bias]))
        for mine, theirs in [(attn.W_o, ref.self_attn.out_proj), (block.ffn.fc1, ref.linear1),
                             (block.ffn.fc2, ref.linear2), (block.norm1, ref.norm1),
                             (block.norm2, ref.norm2)]:
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
    return ref


torch.manual_seed(12)
block = EncoderBlock(16, 4, 32)
n_expected = (4 * 16 * 16 + 4 * 16) + (2 * 16 * 32 + 32 + 16) + 4 * 16
checks.check_module(block, "EncoderBlock(16, 4, 32)", n_params=n_expected,
                    hint="attention 4d^2+4d, feed-forward 2*d*d_ff+d_ff+d, two LayerNorms 4d")
with torch.no_grad():  # random LayerNorm weights, so that a swapped norm1/norm2 shows
    for norm in (block.norm1, block.norm2):
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
ref = torch_encoder_layer(block, 16, 4, 32)
x = torch.randn(3, 6, 16)
checks.check_close(block(x), ref(x), "EncoderBlock(x) against nn.TransformerEncoderLayer",
                   atol=1e-5, hint="pre-norm: x = x + attn(norm1(x)); x = x + ffn(norm2(x))")
### BEGIN HIDDEN TESTS
real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
checks.check_close(block(x, real[:, None, None, :]), ref(x, src_key_padding_mask=~real),
                   "EncoderBlock with a padding mask", atol=1e-5)
causal = torch.tril(torch.ones(6, 6, dtype=torch.bool))
checks.check_close(block(x, causal), ref(x, src_mask=~causal), "EncoderBlock with a causal mask",
                   atol=1e-5)
ffn = FeedForward(8, 20)
checks.check_module(ffn, "FeedForward(8, 20)", n_params=8 * 20 + 20 + 20 * 8 + 8)
xf = torch.randn(2, 3, 8)
checks.check_close(ffn(xf), ffn.fc2(torch.relu(ffn.fc1(xf))), "FeedForward(x)", atol=1e-6)
x_before = x.clone()
block(x)
checks.check_equal(x, x_before, "the input of EncoderBlock after the call")
noisy = EncoderBlock(16, 4, 32, dropout=0.5)
noisy.train()
checks.check(not torch.allclose(noisy(x), noisy(x)), "with dropout=0.5 in training mode, two "
             "calls should differ.", hint="apply self.dropout to both sublayer outputs")
noisy.eval()
checks.check_close(noisy(x), noisy(x), "EncoderBlock in eval mode (deterministic)")
quiet = EncoderBlock(16, 4, 32, dropout=0.5)
quiet.load_state_dict(block.state_dict())
quiet.eval()
checks.check_close(quiet(x), ref(x), "EncoderBlock(dropout=0.5) in eval mode", atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex11_4_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TransformerClassifier(nn.Module):
    """x (B, T, in_features), pad_mask (B, T) bool or None (True = real) -> logits (B, n_classes)."""

    def __init__(self, in_features, n_classes, d_model=32, n_heads=4, d_ff=64, n_layers=2,
                 max_len=64, dropout=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.embed = nn.Linear(in_features, d_model)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model))
        self.blocks = nn.ModuleList(
            [EncoderBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)
        ### END SOLUTION

    def forward(self, x, pad_mask=None):
        ### BEGIN SOLUTION
        h = self.embed(x) + self.pe[: x.shape[1]]  # (B, T, d_model)
        mask = None if pad_mask is None else pad_mask[:, None, None, :]  # (B, 1, 1, T_k)
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        if pad_mask is None:
            pooled = h.mean(dim=1)
        else:
            m = pad_mask[..., None].to(h.dtype)  # (B, T, 1)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1)  # mean over the real tokens
        return self.head(pooled)  # (B, n_classes)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_4_test_b", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(13)
clf = TransformerClassifier(8, 10).eval()
per_block = (4 * 32 * 32 + 4 * 32) + (2 * 32 * 64 + 64 + 32) + 4 * 32
checks.check_module(clf, "TransformerClassifier(8, 10)", n_params=(8 * 32 + 32) + 2 * per_block
                    + 2 * 32 + (32 * 10 + 10), example_input=torch.randn(5, 8, 8),
                    output_shape=(5, 10), hint="embed, 2 blocks, final norm, head; pe is a buffer")
checks.check_close(clf.pe, reference_encoding(64, 32), "the buffer pe", atol=1e-4)
x = torch.randn(2, 5, 8)
padded = torch.cat([x, 50 * torch.randn(2, 3, 8)], dim=1)  # 3 garbage tokens at the end
real = torch.tensor([[True] * 5 + [False] * 3] * 2)
with torch.no_grad():
    checks.check_close(clf(padded, real), clf(x), "logits of padded sequences", atol=1e-4,
                       hint="mask the padded keys in attention AND leave them out of the mean")
### BEGIN HIDDEN TESTS
with torch.no_grad():
    # variable lengths in one batch, each sequence alone as reference
    lengths = [3, 7, 1, 5]
    batch = torch.randn(4, 7, 8)
    mask = torch.tensor([[t < n for t in range(7)] for n in lengths])
    together = clf(batch, mask)
    alone = torch.cat([clf(batch[i:i + 1, :n]) for i, n in enumerate(lengths)])
    checks.check_close(together, alone, "a batch of sequences of lengths 3, 7, 1, 5", atol=1e-4)
    reversed_rows = clf(x.flip(1))
    checks.check(not torch.allclose(reversed_rows, clf(x), atol=1e-4),
                 "the classifier should depend on the order of the tokens.",
                 hint="add the first T rows of pe to the embedded tokens")
checks.check(dict(clf.named_parameters()).get("pe") is None, "pe should be a buffer, not a parameter.")
clf.train()
clf(torch.randn(2, 5, 8)).sum().backward()
checks.check(all(p.grad is not None for p in clf.parameters()), "every parameter should get a "
             "gradient: are all blocks in an nn.ModuleList and used in forward?")
checks.check_equal(len(TransformerClassifier(4, 3, n_layers=3).blocks), 3, "number of blocks")
### END HIDDEN TESTS

# %% [markdown]
# The digits, as sequences of 8 row-tokens of 8 grey levels, split 80/20 with a fixed seed:

# %%
split = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
rows_train, labels_train = rows[split[:1437]], labels[split[:1437]]  # (1437, 8, 8), (1437,)
rows_test, labels_test = rows[split[1437:]], labels[split[1437:]]  # (360, 8, 8), (360,)
print("train", tuple(rows_train.shape), "| test", tuple(rows_test.shape))

# %% nbgrader={"grade": false, "grade_id": "ex11_4_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
helpers.seed_everything(0)
digit_model = TransformerClassifier(8, 10).to(device)
### BEGIN SOLUTION
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(rows_train, labels_train),
                                     batch_size=64, shuffle=True)
optimizer = torch.optim.AdamW(digit_model.parameters(), lr=3e-3)
digit_history = helpers.train.fit(digit_model, loader, nn.CrossEntropyLoss(), optimizer, epochs=10)
digit_model.eval()
### END SOLUTION
with torch.no_grad():
    digit_accuracy = helpers.train.accuracy(digit_model(rows_test.to(device)), labels_test.to(device))
print(f"test accuracy: {digit_accuracy:.1%}")

# %% nbgrader={"grade": true, "grade_id": "ex11_4_test_c", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_type(digit_model, TransformerClassifier, "digit_model")
checks.check(not digit_model.training, "digit_model should be in eval mode.", hint="digit_model.eval()")
model_device = next(digit_model.parameters()).device
with torch.no_grad():
    logits = digit_model(rows_test.to(model_device))
checks.check_shape(logits, (360, 10), "digit_model(rows_test)")
correct = sum(int(p == t) for p, t in zip(logits.argmax(dim=1).tolist(), labels_test.tolist()))
checks.check(correct / 360 >= 0.90, "digit_model should classify at least 90 % of the test digits.",
             ">= 0.90", round(correct / 360, 4), "10 epochs, batches of 64, AdamW lr 3e-3")
### BEGIN HIDDEN TESTS
with torch.no_grad():
    train_logits = digit_model(rows_train.to(model_device))
train_acc = (train_logits.argmax(dim=1).cpu() == labels_train).float().mean().item()
checks.check(train_acc >= 0.9, "digit_model should fit its training digits.", ">= 0.90", train_acc)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 11.5 — A causal character language model (★★★★★, 5 points)
#
# A decoder-only Transformer, like GPT, is an encoder stack with a **causal mask**: every
# position predicts the *next* token from the tokens up to itself. One forward pass over a
# window of $T$ characters yields $T$ predictions, each trained with cross-entropy, and the mask
# makes sure none of them cheats.
#
# The text: Python's reference manual, as it ships with Python (`pydoc_data.topics`, the help
# texts you get from `help("assert")`). Every distinct character is a token; 90 % of the text is
# for training, the last 10 % for validation.

# %%
text = "\n".join(topics[name] for name in sorted(topics))
chars = sorted(set(text))  # the vocabulary: every distinct character
stoi = {c: i for i, c in enumerate(chars)}


def encode(s):
    """str -> (len(s),) int64 token ids."""
    return torch.tensor([stoi[c] for c in s], dtype=torch.long)


def decode(ids):
    """(T,) token ids -> str."""
    return "".join(chars[i] for i in ids.tolist())


ids = encode(text)
n_train = int(0.9 * len(ids))
train_ids, val_ids = ids[:n_train], ids[n_train:]
print(f"{len(text):,} characters, vocabulary of {len(chars)} | train {len(train_ids):,}, "
      f"validation {len(val_ids):,}")
print(text[2000:2300])

# %% [markdown]
# A batch is `B` random windows of `T` characters, `x`, and the same windows shifted one
# character to the right, `y`: `y[b, t]` is the character that follows `x[b, t]`.

# %%
def get_batch(source, batch_size, context, generator=None):
    """Random windows: x (B, T) and the next characters y (B, T), int64, on the CPU."""
    start = torch.randint(0, len(source) - context, (batch_size,), generator=generator)
    offsets = start[:, None] + torch.arange(context)  # (B, T)
    return source[offsets], source[offsets + 1]


x, y = get_batch(train_ids, 1, 24, torch.Generator().manual_seed(5))
print(repr(decode(x[0])), "\n", repr(decode(y[0])))

# %% [markdown]
# **Baselines.** A model is only as good as what it beats. Cross-entropy in nats per character
# on the validation text: guessing uniformly costs $\ln V$; a **unigram** model (character
# frequencies) does better; a **bigram** model (the probability of each character given the
# previous one, from counts, with add-one smoothing) better still. Your Transformer must beat
# the bigram: it has to use more than one character of context.

# %%
V = len(chars)
unigram = torch.bincount(train_ids, minlength=V).float() + 1  # add-one smoothing
unigram_loss = -(unigram / unigram.sum()).log()[val_ids].mean().item()
pair_counts = torch.zeros(V, V)  # [previous, next]
pair_counts.index_put_((train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1),
                       accumulate=True)
bigram = (pair_counts + 1) / (pair_counts + 1).sum(dim=1, keepdim=True)  # rows sum to 1
bigram_loss = -bigram.log()[val_ids[:-1], val_ids[1:]].mean().item()
print(f"uniform {math.log(V):.3f} | unigram {unigram_loss:.3f} | bigram {bigram_loss:.3f} "
      "nats per character (validation)")

# %% [markdown]
# **(a)** Write `CharTransformer(vocab_size, context, d_model, n_heads, d_ff, n_layers)`:
#
# - attributes `context` (the int), `tok_emb = nn.Embedding(vocab_size, d_model)`,
#   `pos_emb = nn.Embedding(context, d_model)` (learned positions), `blocks` (an
#   `nn.ModuleList` of `n_layers` of your `EncoderBlock`s, no dropout), `norm`
#   (`nn.LayerNorm(d_model)`), `head = nn.Linear(d_model, vocab_size)`, and a buffer `causal`
#   holding `causal_mask(context)`;
# - `forward(idx)`: `idx` int64 `(B, T)` with `T <= context` (raise a `ValueError` otherwise)
#   -> logits `(B, T, vocab_size)`; every block gets the causal mask cut to `(T, T)`.
#
# **(b)** Train `lm` (created for you) for 250 steps on batches from
# `get_batch(train_ids, 32, 32)`: cross-entropy between the logits, reshaped to
# `(B*T, vocab_size)`, and `y` reshaped to `(B*T,)`; AdamW with a one-cycle schedule
# (`torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=250,
# pct_start=0.1)`, stepped after every optimizer step). Append every step's loss (a float) to
# `lm_losses`, and leave `lm` in eval mode.
#
# **(c)** Sampling. Write `next_token_probs(logits, temperature=1.0, top_k=None)`: from logits
# `(B, V)` return probabilities `(B, V)`: `softmax(logits / temperature)`, where with `top_k` only
# the `top_k` largest logits of each row keep a chance (the others get probability 0). Do not
# modify `logits`. Then `generate(model, prompt, n_new, temperature=1.0, top_k=None,
# generator=None)`: from `prompt` `(B, T0)` append `n_new` tokens one by one, each drawn with
# `torch.multinomial(probs, 1, generator=generator)` from the probabilities at the **last**
# position, feeding the model at most its last `model.context` tokens; return `(B, T0 + n_new)`.
# Run the model without gradients (`torch.no_grad()`).
#
# The tests check shapes and the parameter count; that changing the characters **after**
# position $t$ leaves every logit up to $t$ unchanged (at initialisation and after training);
# that `lm`'s validation loss, which they measure themselves, is at least 0.1 nats below the
# bigram baseline (the solution beats it by about 0.3); and your sampling functions against
# reference formulas, including greedy decoding with `top_k=1`.
#
# *Hints:* `self.register_buffer("causal", causal_mask(context))`, then
# `self.causal[:T, :T]`; positions `torch.arange(T, device=idx.device)`. For top-k:
# `logits.topk(top_k, dim=-1).values[:, -1:]` is the k-th largest logit of each row, and
# `masked_fill` (not in place!) sets the smaller ones to `-inf`.

# %% nbgrader={"grade": false, "grade_id": "ex11_5_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
class CharTransformer(nn.Module):
    """Decoder-only Transformer: idx (B, T), T <= context -> next-token logits (B, T, vocab_size)."""

    def __init__(self, vocab_size, context, d_model, n_heads, d_ff, n_layers):
        super().__init__()
        self.context = context
        ### BEGIN SOLUTION
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([EncoderBlock(d_model, n_heads, d_ff) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.register_buffer("causal", causal_mask(context))
        ### END SOLUTION

    def forward(self, idx):
        ### BEGIN SOLUTION
        T = idx.shape[1]
        if T > self.context:
            raise ValueError(f"sequence length {T} exceeds the context of {self.context}")
        h = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            h = block(h, self.causal[:T, :T])
        return self.head(self.norm(h))  # (B, T, vocab_size)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_5_test_a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_causal(model, name, vocab, context, trials=3):
    """Change the tokens after position t: the logits at positions <= t must not move."""
    gen = torch.Generator().manual_seed(21)
    dev = next(model.parameters()).device
    for T in (context, context - 3):  # full windows and shorter ones
        idx = torch.randint(0, vocab, (3, T), generator=gen).to(dev)
        with torch.no_grad():
            base = model(idx)
            for t in torch.randint(0, T - 1, (trials,), generator=gen).tolist() + [0]:
                changed = idx.clone()
                changed[:, t + 1:] = torch.randint(0, vocab, (3, T - t - 1), generator=gen).to(dev)
                checks.check_close(model(changed)[:, : t + 1], base[:, : t + 1],
                                   f"{name}, T = {T}: logits 0..{t} after changing the tokens "
                                   f"after {t}", atol=1e-4, hint="give every block the causal "
                                   "mask cut to (T, T): position t may only see positions <= t")


torch.manual_seed(14)
tiny = CharTransformer(vocab_size=12, context=10, d_model=16, n_heads=2, d_ff=32, n_layers=2).eval()
per_block = (4 * 16 * 16 + 4 * 16) + (2 * 16 * 32 + 32 + 16) + 4 * 16
checks.check_module(tiny, "CharTransformer(12, 10, 16, 2, 32, 2)",
                    n_params=12 * 16 + 10 * 16 + 2 * per_block + 2 * 16 + (16 * 12 + 12),
                    example_input=torch.randint(0, 12, (4, 7)), output_shape=(4, 7, 12),
                    hint="tok_emb, pos_emb, blocks, norm, head (causal is a buffer)")
check_causal(tiny, "an untrained CharTransformer", vocab=12, context=10)
### BEGIN HIDDEN TESTS
checks.check_equal(tiny.causal, torch.ones(10, 10).tril().bool(), "the buffer causal")
checks.check_raises(lambda: tiny(torch.zeros(1, 11, dtype=torch.long)), ValueError,
                    "a sequence longer than the context", hint="raise ValueError when T > context")
checks.check_shape(tiny(torch.zeros(2, 1, dtype=torch.long)), (2, 1, 12), "logits for T = 1")
# the logits at t must depend on the tokens up to t (the model is not just a unigram)
with torch.no_grad():
    a = torch.randint(0, 12, (1, 10))
    b = a.clone()
    b[0, 2] = (a[0, 2] + 1) % 12
    checks.check(not torch.allclose(tiny(a)[0, 5], tiny(b)[0, 5]),
                 "the logits at position 5 should depend on the token at position 2.")
one_layer = CharTransformer(vocab_size=5, context=6, d_model=8, n_heads=1, d_ff=8, n_layers=1)
check_causal(one_layer.eval(), "CharTransformer with one head", vocab=5, context=6)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex11_5_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
helpers.seed_everything(0)
lm = CharTransformer(len(chars), context=32, d_model=64, n_heads=4, d_ff=128, n_layers=1).to(device)
lm_losses = []
### BEGIN SOLUTION
optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-2)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=250,
                                               pct_start=0.1)
for step in range(250):
    x, y = (t.to(device) for t in get_batch(train_ids, 32, 32))
    logits = lm(x)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    lm_losses.append(loss.item())
lm.eval()
### END SOLUTION
print(f"training loss: first step {lm_losses[0]:.2f}, last 20 steps {sum(lm_losses[-20:]) / 20:.2f}")

# %% nbgrader={"grade": true, "grade_id": "ex11_5_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def validation_loss(model, context=32, batch=256):
    """Mean next-character cross-entropy over consecutive validation windows."""
    n = (len(val_ids) - 1) // context
    inputs = val_ids[: n * context].view(n, context)
    targets = val_ids[1 : n * context + 1].view(n, context)
    dev = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            logits = model(inputs[i : i + batch].to(dev))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                     targets[i : i + batch].reshape(-1).to(dev), reduction="sum").item()
    return total / (n * context)


counts = torch.bincount(train_ids[:-1] * V + train_ids[1:], minlength=V * V).view(V, V).double() + 1
log_p = (counts / counts.sum(dim=1, keepdim=True)).log()  # (V, V): log p(next | previous)
reference_bigram = -log_p[val_ids[:-1], val_ids[1:]].mean().item()
checks.check_type(lm, CharTransformer, "lm")
checks.check(not lm.training, "lm should be in eval mode.", hint="lm.eval()")
checks.check_equal(len(lm_losses), 250, "len(lm_losses)", hint="one loss per training step")
lm_val = validation_loss(lm)
checks.check(lm_val <= reference_bigram - 0.1, "lm should beat the bigram baseline by 0.1 nats.",
             f"<= {reference_bigram - 0.1:.3f}", round(lm_val, 3),
             "targets are the NEXT characters (y); step the schedule after the optimizer")
### BEGIN HIDDEN TESTS
checks.check(sum(lm_losses[:10]) / 10 > sum(lm_losses[-10:]) / 10 + 1.0,
             "the training loss should fall by more than 1 nat.", got=(lm_losses[:3], lm_losses[-3:]))
check_causal(lm, "the trained lm", vocab=V, context=32)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex11_5_solution_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
def next_token_probs(logits, temperature=1.0, top_k=None):
    """logits (B, V) -> probabilities (B, V) of softmax(logits / temperature), top-k filtered."""
    ### BEGIN SOLUTION
    scaled = logits / temperature
    if top_k is not None:
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return torch.softmax(scaled, dim=-1)
    ### END SOLUTION


def generate(model, prompt, n_new, temperature=1.0, top_k=None, generator=None):
    """Append n_new sampled tokens to prompt (B, T0) -> (B, T0 + n_new)."""
    ### BEGIN SOLUTION
    out = prompt
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(out[:, -model.context:])[:, -1]  # (B, V): the last position
            probs = next_token_probs(logits, temperature, top_k)
            out = torch.cat([out, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return out
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_5_test_c", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 1.0]])
logits_before = logits.clone()
p = next_token_probs(logits)
checks.check_close(p, torch.softmax(logits, dim=-1), "next_token_probs(logits)", atol=1e-6)
expected_t = torch.tensor([[math.exp(v / 0.5) for v in row] for row in logits.tolist()])
checks.check_close(next_token_probs(logits, temperature=0.5), expected_t / expected_t.sum(1, keepdim=True),
                   "next_token_probs(logits, temperature=0.5)", atol=1e-6,
                   hint="divide the logits by the temperature before the softmax")
top2 = next_token_probs(logits, top_k=2)
e = math.exp
checks.check_close(top2, torch.tensor([[e(2) / (e(2) + e(1)), e(1) / (e(2) + e(1)), 0, 0],
                                       [0, 0, e(3) / (e(3) + e(1)), e(1) / (e(3) + e(1))]]),
                   "next_token_probs(logits, top_k=2)", atol=1e-6,
                   hint="keep the 2 largest logits of each row, renormalise over them")
checks.check_equal(logits, logits_before, "logits after next_token_probs", hint="no in-place edits")
out = generate(tiny, torch.zeros(2, 3, dtype=torch.long), n_new=4)
checks.check_tensor(out, "generate(tiny, prompt (2, 3), n_new=4)", shape=(2, 7), dtype=torch.long)
checks.check_equal(out[:, :3], torch.zeros(2, 3, dtype=torch.long), "the prompt part of the output")
### BEGIN HIDDEN TESTS
wide = torch.randn(3, 50)
for temperature, k in [(1.0, 5), (0.7, 1), (2.0, 50)]:
    z = wide / temperature
    kth = torch.sort(z, dim=1, descending=True).values[:, k - 1 : k]
    ref = torch.where(z >= kth, z.exp(), torch.zeros_like(z))
    checks.check_close(next_token_probs(wide, temperature, k), ref / ref.sum(1, keepdim=True),
                       f"next_token_probs(temperature={temperature}, top_k={k})", atol=1e-6)
# greedy decoding (top_k=1) equals an argmax loop, even beyond the context
prompt = torch.randint(0, 12, (2, 4))
greedy = generate(tiny, prompt, n_new=12, top_k=1)
manual = prompt
with torch.no_grad():
    for _ in range(12):
        manual = torch.cat([manual, tiny(manual[:, -10:])[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
checks.check_equal(greedy, manual, "greedy generation (top_k=1)",
                   hint="feed at most the last model.context tokens; sample at the last position")
# the generator makes sampling reproducible
g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
checks.check_equal(generate(tiny, prompt, 6, generator=g1), generate(tiny, prompt, 6, generator=g2),
                   "two generations with equally seeded generators")
checks.check(torch.is_grad_enabled(), "generate should not switch gradients off for good.")
### END HIDDEN TESTS

# %% [markdown]
# Let us hear the model. The same prompt, continued greedily (always the most likely
# character), then sampled at two temperatures with top-k filtering. Low temperature: safe and
# repetitive; high temperature: varied and sloppier. (A one-layer model trained for a few
# seconds writes pseudo-Python documentation; more layers, a longer context and minutes of
# training give real words and sentences.)

# %%
prompt = encode("The value of the expression ")[None].to(device)  # (1, T0)
sampler = torch.Generator(device=device).manual_seed(0)
for label, kwargs in [("greedy", dict(top_k=1)), ("T = 0.6, top-10", dict(temperature=0.6, top_k=10)),
                      ("T = 1.0, top-10", dict(temperature=1.0, top_k=10))]:
    sample = generate(lm, prompt, n_new=120, generator=sampler, **kwargs)[0]
    print(f"--- {label} ---\n{decode(sample.cpu())}\n")

# %% [markdown]
# ### Exercise 11.6 — Attention visualisation (★★★★★, 5 points)
#
# Open the sorting model of section 11.4.9 and look at where it attends. PyTorch's layers call
# their attention with `need_weights=False` (skipping the weights saves time), so the weights
# never leave the layer. Hooks get them out without touching the model's code: a **forward
# pre-hook** registered with `with_kwargs=True` receives the call's `(args, kwargs)` and may
# return modified ones, so it can switch `need_weights=True` and
# `average_attn_weights=False` on; a **forward hook** then receives the output
# `(attn_output, attn_weights)` and keeps the weights.
#
# **(a)** Write `attention_maps(model, src, tgt_in)` for a `DigitSorter` in eval mode: run
# `model(src, tgt_in)` once without gradients and return a dict with
#
# - `"encoder"`: the self-attention weights of every encoder layer (`layer.self_attn` for
#   `layer in model.encoder.layers`), stacked: `(n_layers, B, n_heads, T_src, T_src)`;
# - `"cross"`: the cross-attention weights of every decoder layer (`layer.multihead_attn` for
#   `layer in model.decoder.layers`): `(n_layers, B, n_heads, T_tgt, T_src)`.
#
# Remove every hook before returning, even if the forward pass raises (`try` / `finally`):
# a forgotten hook keeps forcing the weights, and collecting them, on every later call.
#
# **(b)** Write `pointing_accuracy(cross, src, tgt)`: `cross` `(B, T_tgt, T_src)` are
# cross-attention weights (averaged over heads), `src` `(B, T_src)` the input digits, `tgt`
# `(B, T_tgt)` the digits written. For every output position $i$ of every sequence, find the
# source position the weights point at most (the arg-max over the **source** axis) and check
# whether it holds the digit written at $i$. Return the fraction of hits, a float. Then store
# in `pointing` the pointing accuracy of the **last** decoder layer, averaged over its heads, on
# the first 500 test strings `sort_src_test[:500]` with their targets, fed with
# `shift_right(...)` as in training.
#
# The tests compare (a) with the weights recomputed by running the layers by hand, check that
# no hook is left behind and that the model's outputs did not change; compare (b) with a loop;
# and check the property the picture below suggests: the sorter's attention points at a copy of
# the digit it writes in at least 50 % of the cases, and at least twice as often as attention
# spread uniformly over the input would (the tests compute that chance level, about 21 %).
#
# *Hints:* `module.register_forward_pre_hook(fn, with_kwargs=True)` with
# `fn(module, args, kwargs)` returning `(args, kwargs)`; `module.register_forward_hook(fn)` with
# `fn(module, args, output)`; both return a handle with `.remove()`. For (b):
# `src.gather(1, cross.argmax(dim=-1))` picks the digit at the chosen position for every
# output position.

# %% nbgrader={"grade": false, "grade_id": "ex11_6_solution_a", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention_maps(model, src, tgt_in):
    """{"encoder": (L_enc, B, H, T_src, T_src), "cross": (L_dec, B, H, T_tgt, T_src)} per-head weights."""
    ### BEGIN SOLUTION
    maps = {"encoder": [], "cross": []}

    def want_weights(module, args, kwargs):  # pre-hook: ask for per-head weights
        kwargs["need_weights"] = True
        kwargs["average_attn_weights"] = False
        return args, kwargs

    def keeper(store):
        def keep(module, args, output):  # output = (attn_output, attn_weights)
            store.append(output[1].detach())
        return keep

    targets = [(layer.self_attn, "encoder") for layer in model.encoder.layers]
    targets += [(layer.multihead_attn, "cross") for layer in model.decoder.layers]
    handles = []
    try:
        for module, key in targets:
            handles.append(module.register_forward_pre_hook(want_weights, with_kwargs=True))
            handles.append(module.register_forward_hook(keeper(maps[key])))
        with torch.no_grad():
            model(src, tgt_in)
    finally:
        for handle in handles:
            handle.remove()
    return {key: torch.stack(weights) for key, weights in maps.items()}
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex11_6_test_a", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def reference_maps(model, src, tgt_in):
    """Recompute the attention weights by running the pre-norm layers by hand."""
    enc_maps, cross_maps = [], []
    with torch.no_grad():
        positions = model.pos(torch.arange(src.shape[1], device=src.device))
        h = model.embed(src) + positions
        for layer in model.encoder.layers:
            n = layer.norm1(h)
            out, w = layer.self_attn(n, n, n, average_attn_weights=False)
            enc_maps.append(w)
            h = h + out
            h = h + layer.linear2(torch.relu(layer.linear1(layer.norm2(h))))
        memory = model.encoder.norm(h)
        T = tgt_in.shape[1]
        blocked = torch.ones(T, T, dtype=torch.bool, device=src.device).triu(1)
        h = model.embed(tgt_in) + positions[:T]
        for layer in model.decoder.layers:
            n = layer.norm1(h)
            h = h + layer.self_attn(n, n, n, attn_mask=blocked)[0]
            out, w = layer.multihead_attn(layer.norm2(h), memory, memory, average_attn_weights=False)
            cross_maps.append(w)
            h = h + out
            h = h + layer.linear2(torch.relu(layer.linear1(layer.norm3(h))))
    return torch.stack(enc_maps), torch.stack(cross_maps)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


src8, tgt8 = sort_src_test[:8], sort_tgt_test[:8]
with torch.no_grad():
    logits_before = sorter(src8, shift_right(tgt8))
hooks_before = hook_count(sorter)
maps = attention_maps(sorter, src8, shift_right(tgt8))
checks.check_type(maps, dict, "attention_maps(...)")
checks.check_equal(sorted(maps), ["cross", "encoder"], "the keys of attention_maps(...)")
checks.check_tensor(maps["encoder"], 'maps["encoder"]', shape=(1, 8, 2, 8, 8),
                    hint="per head (average_attn_weights=False), stacked over layers")
checks.check_tensor(maps["cross"], 'maps["cross"]', shape=(1, 8, 2, 8, 8))
checks.check_equal(hook_count(sorter), hooks_before, "the number of hooks on the model afterwards",
                   hint="keep the handles and call handle.remove() in a finally block")
ref_enc, ref_cross = reference_maps(sorter, src8, shift_right(tgt8))
checks.check_close(maps["encoder"], ref_enc, 'maps["encoder"]', atol=1e-5,
                   hint="layer.self_attn of every layer of model.encoder.layers")
checks.check_close(maps["cross"], ref_cross, 'maps["cross"]', atol=1e-5,
                   hint="layer.multihead_attn (not self_attn) of model.decoder.layers")
### BEGIN HIDDEN TESTS
with torch.no_grad():
    checks.check_close(sorter(src8, shift_right(tgt8)), logits_before, "the sorter's outputs "
                       "after attention_maps", atol=1e-6)
short_src, short_tgt = sort_src_test[100:103], sort_tgt_test[100:103, :5]
maps = attention_maps(sorter, short_src, shift_right(short_tgt))
ref_enc, ref_cross = reference_maps(sorter, short_src, shift_right(short_tgt))
checks.check_close(maps["cross"], ref_cross, "cross-attention for 5 output tokens", atol=1e-5)
checks.check_close(maps["encoder"], ref_enc, "encoder attention, another batch", atol=1e-5)
checks.check(not maps["cross"].requires_grad, "the maps should not carry gradients.")
torch.manual_seed(15)
deep = DigitSorter(n_layers=2).to(device).eval()
maps = attention_maps(deep, src8, shift_right(tgt8))
ref_enc, ref_cross = reference_maps(deep, src8, shift_right(tgt8))
checks.check_tensor(maps["cross"], "cross maps of a 2-layer sorter", shape=(2, 8, 2, 8, 8))
checks.check_close(maps["cross"], ref_cross, "cross maps of a 2-layer sorter", atol=1e-5)
checks.check_close(maps["encoder"], ref_enc, "encoder maps of a 2-layer sorter", atol=1e-5)
checks.check_equal(hook_count(deep), 0, "hooks left on a 2-layer sorter")
### END HIDDEN TESTS

# %% [markdown]
# Here is what the sorter looks at, for one test string. Rows are the output steps (labelled by
# the digit written there), columns the input positions (labelled by the digit they hold).
# Top: the encoder's two self-attention heads; bottom: the decoder's two cross-attention heads.

# %%
example = sort_src_test[:1]
maps = attention_maps(sorter, example, shift_right(sort_tgt_test[:1]))
written = sort_tgt_test[0].tolist()
fig, axes = plt.subplots(2, 2, figsize=(10, 8.4))
for row, (key, ylabel, ytick) in enumerate([("encoder", "input position (query)", example[0].tolist()),
                                            ("cross", "output step: digit written", written)]):
    for head in range(2):
        ax = axes[row, head]
        helpers.plot.heatmap(maps[key][0, 0, head], ax=ax, title=f"{key} attention, head {head}",
                             xlabel="input position: digit held", ylabel=ylabel, cbar_label="weight")
        ax.set_xticks(range(8), [f"{i}: {d}" for i, d in enumerate(example[0].tolist())], fontsize=7)
        ax.set_yticks(range(8), [f"{i}: {d}" for i, d in enumerate(ytick)], fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# Look at the bottom row first. In most output steps the bright cells sit on input positions
# that **hold the digit being written**, wherever they are in the input; the two heads tend to
# divide the digits between them, and where a digit occurs several times the weight is shared
# among its copies. The encoder's maps (top) are harder to read: its job is to prepare the
# memory, not to point. Part (b) turns the impression of the bottom row into a number.

# %% nbgrader={"grade": false, "grade_id": "ex11_6_solution_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pointing_accuracy(cross, src, tgt):
    """Fraction of output positions whose most-attended input holds the digit written there."""
    ### BEGIN SOLUTION
    chosen = src.gather(1, cross.argmax(dim=-1))  # (B, T_tgt): digit at the attended position
    return (chosen == tgt).float().mean().item()
    ### END SOLUTION


pointing = ...  # pointing accuracy of the last decoder layer (head average) on 500 test strings
### BEGIN SOLUTION
maps = attention_maps(sorter, sort_src_test[:500], shift_right(sort_tgt_test[:500]))
pointing = pointing_accuracy(maps["cross"][-1].mean(dim=1), sort_src_test[:500], sort_tgt_test[:500])
### END SOLUTION
print(f"the cross-attention points at the digit being written in {pointing:.1%} of the cases")

# %% nbgrader={"grade": true, "grade_id": "ex11_6_test_b", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
cross = torch.tensor([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], [[0.3, 0.3, 0.4], [0.0, 0.1, 0.9]]])
src_toy = torch.tensor([[4, 2, 2], [7, 1, 3]])
tgt_toy = torch.tensor([[2, 2], [3, 1]])  # hits: position 1 holds 2 (yes), 0 holds 4 (no), ...
got = pointing_accuracy(cross, src_toy, tgt_toy)
checks.check_type(got, float, "pointing_accuracy(...)", hint="return a Python float: .item()")
checks.check_close(got, 0.5, "pointing_accuracy on a hand-made example",
                   hint="arg-max over the SOURCE axis (the last one), then compare digits")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(8)
w = torch.rand(6, 5, 7, generator=gen)
s = torch.randint(0, 4, (6, 7), generator=gen)
t = torch.randint(0, 4, (6, 5), generator=gen)
hits = [int(s[b, max(range(7), key=lambda j: w[b, i, j].item())] == t[b, i])
        for b in range(6) for i in range(5)]
checks.check_close(pointing_accuracy(w, s, t), sum(hits) / len(hits), "pointing_accuracy, random case")
# the property, recomputed independently of the student's functions
_, ref_cross = reference_maps(sorter, sort_src_test[:500], shift_right(sort_tgt_test[:500]))
src500, tgt500 = sort_src_test[:500].cpu(), sort_tgt_test[:500].cpu()
chosen = ref_cross[-1].mean(dim=1).argmax(dim=-1).cpu()  # (500, 8)
measured = sum(int(src500[b, chosen[b, i]] == tgt500[b, i]) for b in range(500) for i in range(8)) / 4000
chance = (src500[:, None, :] == tgt500[:, :, None]).float().mean().item()
checks.check_close(pointing, measured, "pointing", atol=1e-6,
                   hint="last decoder layer, mean over heads, sort_src_test[:500]")
checks.check(measured >= 0.5 and measured >= 2 * chance, "the sorter should point at the digit "
             "it writes.", f">= max(0.5, 2 x chance = {2 * chance:.2f})", measured)
### END HIDDEN TESTS

# %% [markdown]
# How often would attention hit the right digit by luck? If it were spread uniformly over the
# 8 inputs, the expected hit rate is the fraction of input positions holding the digit written:

# %%
uniform_hits = (sort_src_test[:500, None, :] == sort_tgt_test[:500, :, None]).float().mean().item()
print(f"uniform attention: {uniform_hits:.1%} | the sorter's cross-attention: {pointing:.1%}")

# %% [markdown]
# The sorter's attention points at a copy of the digit it is writing several times as often as
# uniform attention would: it does sort by *looking up* the next digit. Not always at the
# arg-max, though: where several inputs hold the same digit, or where one head does the
# looking and the other idles, the average is blurred. Attention maps are evidence about a
# model, not a full explanation of it.
#
# **An attention explorer.** Type your own 8-digit string and watch the sorter read it (this
# needs a live notebook; it is not built while grading). Try strings with repeated digits, or
# all digits equal.

# %% tags=["autograde-skip"]
if not helpers.grading():  # a widget needs a live kernel; it is never built while grading
    import ipywidgets as widgets

    def explore(digits="31415926", kind="cross", head="mean of heads"):
        if len(digits) != LENGTH or not digits.isdigit():
            print(f"type exactly {LENGTH} digits")
            return
        src = torch.tensor([[int(c) for c in digits]], device=device)
        out = sort_greedy(sorter, src)
        maps = attention_maps(sorter, src, shift_right(out))[kind][-1, 0]  # (H, T, T)
        weights = maps.mean(dim=0) if head == "mean of heads" else maps[int(head[-1])]
        fig, ax = plt.subplots(figsize=(5.5, 4.6))
        helpers.plot.heatmap(weights, ax=ax, title=f"{digits} -> {''.join(map(str, out[0].tolist()))}",
                             xlabel="input digit", cbar_label="weight",
                             ylabel="output digit" if kind == "cross" else "input digit (query)")
        ax.set_xticks(range(LENGTH), list(digits))
        ax.set_yticks(range(LENGTH), list(digits) if kind == "encoder" else out[0].tolist())
        plt.show()

    widgets.interact(explore, digits=widgets.Text(value="31415926", continuous_update=False),
                     kind=widgets.ToggleButtons(options=["cross", "encoder"]),
                     head=widgets.ToggleButtons(options=["mean of heads", "head 0", "head 1"]))

# %% [markdown]
# **The chapter's models, in numbers.** Each was trained in seconds on a CPU:

# %%
print(f"QUALITY: sorting 8 digits {sort_exact:.1%} exact match (target >= 90 %); digits "
      f"classifier {digit_accuracy:.1%} (>= 90 %); char LM {validation_loss(lm):.2f} nats vs "
      f"bigram {bigram_loss:.2f}")
print("order task:", ", ".join(f"{kind} {acc:.1%}" for kind, acc in pe_results.items()))
print(f"cross-attention pointing: {pointing:.1%}")

# %% [markdown]
# ## Concept check (6 points)
#
# Interview-style questions. Answer in the variables below; the tests compute the true answers
# with PyTorch, so you can check any of them by experiment, but decide first, then try.
#
# 1. `q1_shape`: the shape (a tuple) of the weights returned by
#    `nn.MultiheadAttention(64, 8, batch_first=True)` for a query of shape `(2, 5, 64)`, keys and
#    values of shape `(2, 7, 64)`, and `average_attn_weights=False`.
# 2. `q2_params`: the number of parameters of `nn.MultiheadAttention(64, 8)` (an int).
# 3. `q3_factor`: a sequence grows from 1,000 to 4,000 tokens. By what factor does the number of
#    attention scores per head and layer grow (an int)?
# 4. `q4_std`: queries and keys have independent standard-normal entries and $d_k = 256$.
#    About how large is the standard deviation of an **unscaled** score $q \cdot k$ (a float)?
# 5. `q5_true_means`: in a boolean `attn_mask` passed to `nn.MultiheadAttention`, does `True`
#    mean `"attend"` or `"block"`?
# 6. `q6_pairs`: with a causal mask on a sequence of 6 tokens, how many (query, key) pairs are
#    allowed to interact (an int)?

# %% nbgrader={"grade": false, "grade_id": "cc11_solution", "locked": false, "schema_version": 3, "solution": true, "task": false}
q1_shape = ...  # a tuple
q2_params = ...  # an int
q3_factor = ...  # an int
q4_std = ...  # a float
q5_true_means = ...  # "attend" or "block"
q6_pairs = ...  # an int
### BEGIN SOLUTION
q1_shape = (2, 8, 5, 7)  # (B, heads, T_q, T_k)
q2_params = 4 * 64 * 64 + 4 * 64  # 16,640, whatever the number of heads
q3_factor = 16  # T^2 scores: 4x longer, 16x more
q4_std = 16.0  # sqrt(d_k)
q5_true_means = "block"  # the opposite of F.scaled_dot_product_attention
q6_pairs = 21  # 6 + 5 + 4 + 3 + 2 + 1
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "cc11_test", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
checks.check_type(q1_shape, tuple, "q1_shape")
checks.check_type(q2_params, int, "q2_params")
checks.check_type(q3_factor, int, "q3_factor")
checks.check_type(q4_std, (int, float), "q4_std")
checks.check(q5_true_means in ("attend", "block"), 'q5_true_means must be "attend" or "block".',
             got=q5_true_means)
checks.check_type(q6_pairs, int, "q6_pairs")
### BEGIN HIDDEN TESTS
probe = nn.MultiheadAttention(64, 8, batch_first=True)
_, probe_w = probe(torch.randn(2, 5, 64), torch.randn(2, 7, 64), torch.randn(2, 7, 64),
                   average_attn_weights=False)
checks.check_equal(q1_shape, tuple(probe_w.shape), "q1_shape")
checks.check_equal(q2_params, sum(p.numel() for p in probe.parameters()), "q2_params")
checks.check_equal(q3_factor, torch.ones(4000, 4000).numel() // torch.ones(1000, 1000).numel(),
                   "q3_factor")
samples = (torch.randn(20000, 256) * torch.randn(20000, 256)).sum(dim=1)
checks.check(abs(q4_std - samples.std().item()) < 1.0, "q4_std is off.", "about sqrt(d_k)", q4_std)
tiny_mha = nn.MultiheadAttention(4, 1, batch_first=True)
probe_mask = torch.tensor([[False, True], [False, False]])  # True at (query 0, key 1)
_, w_mask = tiny_mha(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.randn(1, 2, 4),
                     attn_mask=probe_mask)
checks.check_equal(q5_true_means, "block" if w_mask[0, 0, 1].item() == 0 else "attend", "q5_true_means")
checks.check_equal(q6_pairs, int(torch.ones(6, 6).tril().sum()), "q6_pairs")
### END HIDDEN TESTS

# %% [markdown]
# ## Key takeaways
#
# - **Attention is a soft dictionary lookup:**
#   $\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$. Every query takes a weighted average of the
#   values, weighted by how well its key matches. Any output is one step from any input.
# - **Divide by $\sqrt{d_k}$:** unscaled scores have standard deviation $\sqrt{d_k}$, which
#   saturates the softmax and kills its gradient.
# - **Self-attention** reads one sequence; **cross-attention** takes queries from one sequence
#   and keys and values from another. The output has one row per query.
# - **Multi-head attention** splits $d_\text{model}$ into $h$ heads, each with its own softmax,
#   at no extra parameter cost ($4d^2 + 4d$).
# - Attention is **permutation-equivariant**: without positional encodings a Transformer sees a
#   bag of tokens (you measured 50 % on an order task). Sinusoidal tables are fixed buffers;
#   learned ones are an `nn.Embedding`.
# - **The block:** attention routes information between positions, the position-wise
#   feed-forward network (two thirds of the parameters) processes it; residual connections and
#   LayerNorm keep deep stacks trainable. **Pre-norm** ($x + f(\mathrm{LN}(x))$, plus a final
#   LayerNorm) is the modern default.
# - **Masks:** padding masks hide padding keys (and padding must be left out of pooling);
#   causal masks make language models and decoders honest. Test them by changing the future
#   and checking that the past does not move. Mind PyTorch's conventions:
#   `F.scaled_dot_product_attention` takes `True` = attend, `nn.MultiheadAttention` and the
#   `nn.Transformer*` modules take `True` = masked out. Always use `batch_first=True`.
# - **Three families:** encoder-only (BERT: classification, understanding), decoder-only (GPT:
#   generation), encoder–decoder (T5, BART, the sorter: sequence to sequence). Decoders train
#   with teacher forcing in parallel, then generate one token at a time (greedy, temperature,
#   top-k).
# - **Costs and limits:** time and memory grow with $T^2$; Transformers have few built-in
#   assumptions and so tend to need more data than CNNs or RNNs. Efficient attention (sparse,
#   local, linear, FlashAttention) attacks the cost.
# - **Training tips** that carry over to real models: AdamW, a warm-up then decay schedule,
#   dropout around 0.1 on larger data, label smoothing, gradient clipping for stability.
#
# Next, chapter 12: when training goes wrong, how to find out why.
