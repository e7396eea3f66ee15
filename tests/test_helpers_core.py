"""Unit tests of helpers/__init__.py: setup, devices, seeding, grading mode."""

import random

import numpy as np
import pytest
import torch

import helpers


def test_setup_seeds_and_returns_a_device():
    device = helpers.setup(seed=3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    assert helpers.setup(seed=3) == device
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b, "the same seed must give the same numbers"
    assert isinstance(device, torch.device)


def test_setup_threads_and_bad_arguments():
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    blas_before = max((p["num_threads"] for p in threadpool_info()
                       if p["user_api"] == "blas"), default=1)
    try:
        helpers.setup(seed=0, threads=1)
        assert torch.get_num_threads() == 1
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and set(blas) == {1}, f"NumPy's BLAS pools still use {blas} threads"
    finally:
        torch.set_num_threads(before)
        threadpool_limits(blas_before, user_api="blas")
    with pytest.raises(ValueError, match="threads"):
        helpers.setup(threads=0)
    with pytest.raises(ValueError, match="seed"):
        helpers.setup(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        helpers.seed_everything(1.5)


def test_pick_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert helpers.pick_device().type == expected
    assert helpers.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert helpers.pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="prefer must be one of"):
        helpers.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            helpers.pick_device("cuda")


def test_grading_flag(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert helpers.grading() is False
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert helpers.grading() is True
