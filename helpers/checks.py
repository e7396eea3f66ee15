"""Assertions for exercise tests that teach when they fail.

Every failure raises :class:`CheckError` (an ``AssertionError``), whose message has the same
three parts::

    x2 has the wrong shape.
      expected: (4, 4)
      got:      (16,)
      hint:     reshape the arange: torch.arange(16).reshape(4, 4)

Use them in test cells instead of a bare ``assert``:

>>> import torch
>>> from helpers import checks
>>> checks.check_shape(torch.zeros(2, 3), (2, 3), "x")
>>> checks.check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), "y")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import torch

__all__ = [
    "CheckError",
    "fail",
    "check",
    "check_type",
    "check_tensor",
    "check_shape",
    "check_dtype",
    "check_close",
    "check_equal",
    "check_raises",
    "check_grad",
    "check_gradcheck",
    "check_module",
    "shares_memory",
]


class CheckError(AssertionError):
    """A failed check. The message says what was expected, what came, and a hint."""

    def __init__(self, what: str, expected: Any = None, got: Any = None, hint: str | None = None):
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        lines = [what]
        if expected is not None:
            lines.append(f"  expected: {_fmt(expected)}")
        if got is not None:
            lines.append(f"  got:      {_fmt(got)}")
        if hint:
            lines.append(f"  hint:     {hint}")
        super().__init__("\n".join(lines))


def _fmt(value: Any, limit: int = 300) -> str:
    """A short, one-screen description of a value for a failure message."""
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            body = np.array2string(
                value.detach().cpu().numpy(), threshold=20, edgeitems=3, precision=4
            )
        text = f"tensor of shape {tuple(value.shape)}, {value.dtype}, on {value.device}: {body}"
    elif isinstance(value, np.ndarray):
        body = np.array2string(value, threshold=20, edgeitems=3, precision=4)
        text = f"ndarray of shape {value.shape}, {value.dtype}: {body}"
    elif isinstance(value, torch.Size):
        text = str(tuple(value))
    else:
        text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when tensors ``a`` and ``b`` are backed by the same block of memory (a view)."""
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def fail(what: str, expected: Any = None, got: Any = None, hint: str | None = None) -> NoReturn:
    """Raise a :class:`CheckError` with the three-part message."""
    raise CheckError(what, expected, got, hint)


def check(condition: Any, what: str, expected: Any = None, got: Any = None,
          hint: str | None = None) -> None:
    """Fail with ``what`` (and the expected/got/hint lines) unless ``condition`` is truthy."""
    if not condition:
        fail(what, expected, got, hint)


def check_type(value: Any, types: type | tuple[type, ...], name: str,
               hint: str | None = None) -> None:
    """Check that ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        if value is Ellipsis:
            hint = hint or f"replace the `...` placeholder of {name} with your answer"
        fail(f"{name} has the wrong type.", names, type(value).__name__, hint)


def check_tensor(value: Any, name: str, shape: Sequence[int | None] | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 hint: str | None = None) -> None:
    """Check that ``value`` is a tensor, and optionally its shape, dtype and device type."""
    check_type(value, torch.Tensor, name, hint)
    if shape is not None:
        check_shape(value, shape, name, hint)
    if dtype is not None:
        check_dtype(value, dtype, name, hint)
    if device is not None:
        want = torch.device(device).type
        check(value.device.type == want, f"{name} is on the wrong device.", want,
              value.device.type, hint or f"move it with {name}.to(device)")


def check_shape(value: Any, shape: Sequence[int | None], name: str,
                hint: str | None = None) -> None:
    """Check ``value.shape`` against ``shape``; ``None`` in ``shape`` matches any size."""
    if not hasattr(value, "shape"):
        fail(f"{name} has no shape: it is not a tensor or array.", "a tensor",
             type(value).__name__, hint)
    got = tuple(value.shape)
    want = tuple(shape)
    ok = len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got, strict=True))
    if not ok:
        shown = "(" + ", ".join("*" if w is None else str(w) for w in want) + \
            ("," if len(want) == 1 else "") + ")"
        fail(f"{name} has the wrong shape.", shown, got, hint)


def check_dtype(value: Any, dtype: torch.dtype | np.dtype, name: str,
                hint: str | None = None) -> None:
    """Check the dtype of a tensor or array."""
    got = getattr(value, "dtype", None)
    if got != dtype:
        fail(f"{name} has the wrong dtype.", dtype, got,
             hint or f"convert with {name}.to({dtype}) or create it with dtype={dtype}")


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def check_close(actual: Any, expected: Any, name: str, rtol: float = 1e-5, atol: float = 1e-8,
                hint: str | None = None) -> None:
    """Check that ``actual`` equals ``expected`` elementwise within tolerances.

    Works for tensors, arrays and numbers. Shapes must agree exactly (no broadcasting), so a
    (N, 1) answer to an (N,) question fails with a shape message rather than passing by accident.
    The failure reports the largest difference and where it is.
    """
    if actual is None or actual is Ellipsis:
        fail(f"{name} has no value yet.", "a tensor or number", actual,
             hint or f"compute {name} in the solution cell")
    try:
        a = _as_tensor(actual)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{name} is not numeric.", "a tensor, array or number", type(actual).__name__, hint)
    e = _as_tensor(expected)
    if tuple(a.shape) != tuple(e.shape):
        fail(f"{name} has the wrong shape.", tuple(e.shape), tuple(a.shape), hint)
    if a.numel() == 0:
        return
    a64 = a.to(torch.complex128) if a.is_complex() else a.to(torch.float64)
    e64 = e.to(torch.complex128) if e.is_complex() else e.to(torch.float64)
    nan_a, nan_e = torch.isnan(a64), torch.isnan(e64)
    if not torch.equal(nan_a, nan_e):
        where = tuple(int(i) for i in torch.nonzero(nan_a != nan_e)[0])
        fail(f"{name} has NaN where the reference does not (or the other way round), "
             f"first at index {where}.", e[where] if where else e, a[where] if where else a,
             hint or "look for 0/0, log of a non-positive number or sqrt of a negative one")
    if torch.allclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True):
        return
    diff = (a64 - e64).abs().nan_to_num(0.0)
    flat = int(torch.argmax(diff))
    where = tuple(int(i) for i in np.unravel_index(flat, tuple(a.shape))) if a.dim() else ()
    fail(
        f"{name} is not close enough to the reference (rtol={rtol}, atol={atol}): largest "
        f"difference {float(diff.max()):.3g} at index {where}.",
        f"{_fmt(e[where] if where else e)} there (whole reference: {_fmt(e, 120)})",
        f"{_fmt(a[where] if where else a)} there",
        hint,
    )


_TRUSTED_EQ = ("builtins", "numpy", "torch")


def _eq_module(value: Any) -> str:
    """The top-level module of the class that defines ``value``'s ``__eq__``."""
    owner = next((k for k in type(value).__mro__ if "__eq__" in vars(k)), object)
    return (owner.__module__ or "").split(".")[0]


def _disguised(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` (or an item of it) is of another type than expected and brings an
    ``__eq__`` of its own: an object equal to everything must not pass an equality check."""
    if type(actual) is not type(expected) and _eq_module(actual) not in _TRUSTED_EQ:
        return True
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return any(_disguised(a, e) for a, e in zip(actual, expected, strict=False))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return any(_disguised(actual[k], expected[k]) for k in expected if k in actual)
    return False


def check_equal(actual: Any, expected: Any, name: str, hint: str | None = None) -> None:
    """Check exact equality: ``torch.equal`` for tensors, ``==`` for everything else."""
    if isinstance(expected, torch.Tensor):
        check_type(actual, torch.Tensor, name, hint)
        if tuple(actual.shape) != tuple(expected.shape):
            fail(f"{name} has the wrong shape.", tuple(expected.shape), tuple(actual.shape), hint)
        if actual.dtype != expected.dtype:
            fail(f"{name} has the wrong dtype.", expected.dtype, actual.dtype, hint)
        if not torch.equal(actual.detach().cpu(), expected.detach().cpu()):
            fail(f"{name} has the right shape but wrong values.", expected, actual, hint)
        return
    if _disguised(actual, expected):
        fail(f"{name} has the wrong type.", type(expected).__name__, type(actual).__name__, hint)
    same = actual == expected
    if isinstance(same, (torch.Tensor, np.ndarray)):
        same = bool(np.all(np.asarray(same)))
    if not same:
        fail(f"{name} is not what was expected.", expected, actual, hint)


def check_choice(answer: Any, options: Sequence[str], name: str, hint: str | None = None) -> str:
    """Check that a multiple-choice ``answer`` is one of the letters ``options`` (e.g. ``"ABC"``),
    as a string; case and surrounding spaces do not matter. Return the letter, upper-cased: whether
    it is the right one is for the test to check afterwards."""
    check_type(answer, str, name, hint or f"one of {', '.join(options)}, as a string")
    letter = answer.strip().upper()
    if letter not in list(options):  # a string of letters: "AB" is not a letter of "ABC"
        fail(f"{name} must be one of {', '.join(options)}.", f"one of {list(options)}", answer,
             hint)
    return letter


def check_raises(fn: Callable[[], Any], exception: type[BaseException] | tuple, what: str,
                 hint: str | None = None) -> BaseException:
    """Check that calling ``fn()`` raises ``exception``; return the exception raised."""
    try:
        fn()
    except exception as err:
        return err
    except Exception as err:  # noqa: BLE001 -- reported, not swallowed
        names = exception.__name__ if isinstance(exception, type) else str(exception)
        fail(f"{what} raised the wrong exception.", names,
             f"{type(err).__name__}: {err}", hint)
    names = exception.__name__ if isinstance(exception, type) else str(exception)
    fail(f"{what} did not raise.", names, "no exception", hint)


def check_grad(tensor: torch.Tensor, expected: Any, name: str, rtol: float = 1e-5,
               atol: float = 1e-8, hint: str | None = None) -> None:
    """Check that ``tensor.grad`` exists and is close to ``expected``."""
    check_type(tensor, torch.Tensor, name, hint)
    if tensor.grad is None:
        fail(f"{name}.grad is None: no gradient reached it.", "a gradient tensor", None,
             hint or f"did you call backward()? Does {name} have requires_grad=True, "
                     "and is it a leaf tensor?")
    check_close(tensor.grad, expected, f"{name}.grad", rtol, atol, hint)


def check_gradcheck(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...], name: str,
                    eps: float = 1e-6, atol: float = 1e-5, hint: str | None = None) -> None:
    """Compare the analytic gradient of ``fn`` with finite differences (float64 inputs)."""
    for i, t in enumerate(inputs):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
            fail(f"input {i} of the gradient check of {name} is not float64.", torch.float64,
                 t.dtype, "finite differences need double precision: use .double()")
    try:
        ok = torch.autograd.gradcheck(fn, inputs, eps=eps, atol=atol, raise_exception=True)
    except Exception as err:  # noqa: BLE001 -- gradcheck explains the mismatch itself
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fail(f"the gradient of {name} does not match finite differences.",
             "analytic == numerical", first, hint)
    check(ok, f"the gradient of {name} does not match finite differences.", hint=hint)


def check_module(module: Any, name: str, n_params: int | None = None,
                 example_input: torch.Tensor | tuple | None = None,
                 output_shape: Sequence[int | None] | None = None,
                 hint: str | None = None) -> Any:
    """Check an ``nn.Module``: its trainable-parameter count and, given an input, output shape.

    Returns the module's output for ``example_input`` (or ``None``).
    """
    check_type(module, torch.nn.Module, name, hint)
    if n_params is not None:
        got = sum(p.numel() for p in module.parameters() if p.requires_grad)
        check(got == n_params, f"{name} has the wrong number of trainable parameters.",
              n_params, got, hint)
    if example_input is None:
        return None
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        out = module(*args)
    except Exception as err:  # noqa: BLE001 -- turned into a teaching message
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        fail(f"{name} raised when called on input(s) of shape {shapes}.", "an output",
             f"{type(err).__name__}: {err}", hint)
    if output_shape is not None:
        check_shape(out, output_shape, f"the output of {name}", hint)
    return out
