"""Unit tests of helpers.checks: passing cases pass, failures teach (expected, got, hint)."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers import checks
from helpers.checks import CheckError


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, AssertionError)
    return str(info.value)


def test_check_error_is_an_assertion_with_three_parts():
    text = message(checks.fail, "x is wrong.", 1, 2, "try harder")
    assert text.splitlines() == ["x is wrong.", "  expected: 1", "  got:      2",
                                 "  hint:     try harder"]
    assert message(checks.check, False, "just this") == "just this"
    checks.check(True, "never shown")


def test_check_type_and_placeholder_hint():
    checks.check_type(3, int, "n")
    text = message(checks.check_type, ..., (int, float), "n")
    assert "int or float" in text and "ellipsis" in text and "placeholder" in text


def test_check_tensor_shape_dtype_device():
    t = torch.zeros(2, 3)
    checks.check_tensor(t, "t", shape=(2, None), dtype=torch.float32, device="cpu")
    assert "(2, 4)" in message(checks.check_shape, t, (2, 4), "t")
    assert "(2, *, 1)" in message(checks.check_shape, t, (2, None, 1), "t")
    assert "(5,)" in message(checks.check_shape, t, (5,), "t")
    assert "no shape" in message(checks.check_shape, [1, 2], (2,), "t")
    assert "torch.int64" in message(checks.check_dtype, t, torch.int64, "t")
    assert "wrong device" in message(checks.check_tensor, t, "t", device="meta")
    assert "wrong type" in message(checks.check_tensor, [1.0], "t")


def test_check_close_passes_and_reports_the_worst_element():
    checks.check_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]), "y")
    checks.check_close(3.0, 3.0, "scalar")
    checks.check_close(torch.zeros(0), torch.zeros(0), "empty")
    checks.check_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]), "n")
    text = message(checks.check_close, torch.tensor([1.0, 5.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]),
                   "y", hint="look again")
    assert "largest difference 3" in text and "(1,)" in text and "look again" in text
    assert "wrong shape" in message(checks.check_close, torch.zeros(3, 1), torch.zeros(3), "y")
    nan = torch.tensor([float("nan")])
    assert "NaN" in message(checks.check_close, nan, torch.tensor([1.0]), "y")
    assert "no value yet" in message(checks.check_close, None, torch.zeros(1), "y")
    assert "not numeric" in message(checks.check_close, "abc", torch.zeros(1), "y")
    assert "largest difference" in message(checks.check_close, 1.0, 2.0, "s")


def test_check_equal():
    checks.check_equal(torch.tensor([1, 2]), torch.tensor([1, 2]), "t")
    checks.check_equal((1, 2), (1, 2), "tuple")
    checks.check_equal(np.array([1, 2]), np.array([1, 2]), "array")
    one_two = torch.tensor([1, 2])
    assert "wrong values" in message(checks.check_equal, torch.tensor([1, 3]), one_two, "t")
    assert "wrong dtype" in message(checks.check_equal, torch.tensor([1.0]), torch.tensor([1]), "t")
    assert "wrong shape" in message(checks.check_equal, torch.tensor([1]), one_two, "t")
    assert "not what was expected" in message(checks.check_equal, {"a"}, {"b"}, "s")


def test_check_raises():
    err = checks.check_raises(lambda: 1 / 0, ZeroDivisionError, "1/0")
    assert isinstance(err, ZeroDivisionError)
    assert "did not raise" in message(checks.check_raises, lambda: None, ValueError, "f")
    wrong = (ValueError, TypeError)
    assert "wrong exception" in message(checks.check_raises, lambda: [][1], wrong, "f")


def test_check_grad_and_gradcheck():
    w = torch.tensor([2.0], requires_grad=True)
    (w * 3).sum().backward()
    checks.check_grad(w, torch.tensor([3.0]), "w")
    assert "no gradient reached it" in message(checks.check_grad, torch.ones(1, requires_grad=True),
                                               torch.ones(1), "v")
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    checks.check_gradcheck(torch.sin, (x,), "sin")
    assert "not float64" in message(checks.check_gradcheck, torch.sin,
                                    (torch.randn(3, requires_grad=True),), "sin")

    class WrongGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    assert "finite differences" in message(checks.check_gradcheck, WrongGrad.apply, (x,), "wrong")


def test_check_module():
    layer = nn.Linear(4, 2)
    out = checks.check_module(layer, "layer", n_params=10, example_input=torch.zeros(5, 4),
                              output_shape=(5, 2))
    assert out.shape == (5, 2)
    assert checks.check_module(layer, "layer") is None
    assert "trainable parameters" in message(checks.check_module, layer, "layer", n_params=8)
    assert "raised when called" in message(checks.check_module, layer, "layer",
                                           example_input=torch.zeros(5, 3))
    assert "wrong type" in message(checks.check_module, lambda t: t, "fn")


def test_shares_memory():
    x = torch.arange(6).reshape(2, 3)
    assert checks.shares_memory(x.t(), x) and not checks.shares_memory(x.clone(), x)
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        checks.shares_memory([1], x)


def test_long_values_are_shortened():
    text = message(checks.fail, "big", torch.arange(10_000), "x" * 1000)
    assert len(text) < 1000 and "..." in text


def test_check_equal_is_not_fooled_by_an_object_equal_to_everything():
    class Anything:
        def __eq__(self, other):
            return True

    assert "wrong type" in message(checks.check_equal, Anything(), 3, "n")
    assert "wrong type" in message(checks.check_equal, [1, Anything()], [1, 2], "pair")
    assert "wrong type" in message(checks.check_equal, {"a": Anything()}, {"a": 2}, "dict")
    checks.check_equal(np.int64(3), 3, "numpy integer")
    checks.check_equal(torch.Size([2, 3]), (2, 3), "a torch.Size")
    checks.check_equal(3.0, 3, "float and int")


def test_check_choice():
    assert checks.check_choice("B", "ABC", "answer") == "B"
    assert checks.check_choice(" c\n", "ABC", "answer") == "C"  # case and spaces do not matter
    assert "must be one of A, B, C" in message(checks.check_choice, "D", "ABC", "answer")
    assert "answer" in message(checks.check_choice, 2, "ABC", "answer")
    assert "must be one of" in message(checks.check_choice, "AB", "ABC", "answer")
