"""Bounds on what one piece of model code may cost when it runs inside a worker's process.

The AST allow-list (bpmn/restricted.py) keeps model code away from the interpreter's internals, but a
condition such as `9 ** 9 ** 9` or `'x' * 10 ** 10` is perfectly "safe" Python that would stall or
exhaust the engine worker for every instance it runs. Expressions run inside the workflow, so no
process limit can stop them; instead:

- the operators and methods that multiply sizes (`**`, `*`, `<<`, `range`, `str.replace`,
  `ljust`/`rjust`/`center`/`zfill`/`expandtabs`, `join`) are rewritten into guarded calls that
  refuse results beyond MAX_ITEMS elements or MAX_INT_BITS bits before computing them;
- loops are counted: a step budget (`line` events of model code, which include every loop
  iteration) stops code that runs too long, at the same step on every replay.

Standard library only: the sandbox child imports it without site-packages.
"""

from __future__ import annotations

import ast
import os
import re
import resource
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

MAX_ITEMS = 10_000_000  # characters, bytes or elements in one value
MAX_TOTAL_ITEMS = 50_000_000  # ... and in all the values one evaluation builds through the guards
MAX_INT_BITS = 1_000_000  # about 300,000 decimal digits
DEFAULT_STEPS = 1_000_000  # lines executed by one expression or in-process script
MAX_GROWTH_BYTES = 512 * 1024 * 1024  # memory one evaluation may add to the process
_RSS_EVERY = 32  # steps between two looks at the process's memory

_budget = threading.local()  # the running evaluation's accounts; none outside step_budget()

_SEQUENCES = (str, bytes, bytearray, list, tuple)
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_GUARDED_METHODS = frozenset({"replace", "expandtabs", "join", *_WIDTH_METHODS})


class ResourceLimitError(ArithmeticError):
    """Model code asked for more than one evaluation may use."""


def _too_big(what: str) -> ResourceLimitError:
    return ResourceLimitError(f"{what} exceeds the limits for model code")


def _charge(items: int) -> None:
    """Count what a guarded operation builds against the running evaluation (deterministic)."""
    spent = getattr(_budget, "items", None)
    if spent is None:
        return
    _budget.items = spent + items
    if _budget.items > MAX_TOTAL_ITEMS:
        raise _too_big("what the code built altogether")


def guarded_pow(base: Any, exponent: Any, modulo: Any = None) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and modulo is None and exponent > 0:
        bits = abs(base).bit_length() if abs(base) > 1 else 0
        if bits * exponent > MAX_INT_BITS:
            raise _too_big("the power")
    return pow(base, exponent) if modulo is None else pow(base, exponent, modulo)


def guarded_mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int):
        if len(left) * right > MAX_ITEMS:
            raise _too_big("the repeated sequence")
        _charge(len(left) * max(right, 0))
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise _too_big("the product")
    return left * right


def guarded_lshift(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right > MAX_INT_BITS:
        raise _too_big("the shift")
    return left << right


WIDTH = re.compile(r"\d{8,}")  # a field width or precision of 10,000,000 or more


def guarded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes) and WIDTH.search(left if isinstance(left, str) else left.decode("latin-1")):
        raise _too_big("a width in the %-format")
    return left % right


def guarded_bytes(*args: Any, **kwargs: Any) -> bytes:
    if args and isinstance(args[0], int):
        if args[0] > MAX_ITEMS:
            raise _too_big("the bytes")
        _charge(args[0])
    return bytes(*args, **kwargs)


def guarded_range(*args: int) -> range:
    span = range(*args)
    if len(span) > MAX_ITEMS:
        raise _too_big("the range")
    _charge(len(span))
    return span


def guarded_method(target: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    method = getattr(target, name)
    if isinstance(target, str | bytes):
        if name in _WIDTH_METHODS and args and isinstance(args[0], int) and args[0] > MAX_ITEMS:
            raise _too_big(f"the width given to {name}")
        if name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = target.count(old) if old else len(target) + 1
            if len(target) + count * max(len(new) - len(old), 0) > MAX_ITEMS:
                raise _too_big("the replaced text")
        if name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            tabs = target.count("\t") if isinstance(target, str) else target.count(b"\t")
            if isinstance(size, int) and tabs * size > MAX_ITEMS:
                raise _too_big("the expanded text")
        if name == "join" and args:
            parts = list(args[0])
            if sum(len(p) for p in parts if isinstance(p, str | bytes)) + len(target) * len(parts) > MAX_ITEMS:
                raise _too_big("the joined text")
            return method(parts)
    return method(*args, **kwargs)


GUARDS: dict[str, Any] = {
    "__amx_pow": guarded_pow,
    "__amx_mul": guarded_mul,
    "__amx_lshift": guarded_lshift,
    "__amx_mod": guarded_mod,
    "__amx_method": guarded_method,
}


class _Rewrite(ast.NodeTransformer):
    """Route the size-multiplying operations through the guards (names model code cannot spell)."""

    _OPERATORS = {ast.Pow: "__amx_pow", ast.Mult: "__amx_mul", ast.LShift: "__amx_lshift", ast.Mod: "__amx_mod"}

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = self._OPERATORS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        return ast.copy_location(call, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        guard = self._OPERATORS.get(type(node.op))
        if guard is None:
            return node
        # x *= n  →  x = guard(x, n); only plain names: a subscript target would be evaluated twice
        if not isinstance(node.target, ast.Name):
            return node
        value = ast.Call(
            func=ast.Name(guard, ast.Load()), args=[ast.Name(node.target.id, ast.Load()), node.value], keywords=[]
        )
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _GUARDED_METHODS:
            call = ast.Call(
                func=ast.Name("__amx_method", ast.Load()),
                args=[func.value, ast.Constant(func.attr), *node.args],
                keywords=node.keywords,
            )
            return ast.copy_location(call, node)
        return node


def rewrite(tree: ast.Module | ast.Expression) -> ast.Module | ast.Expression:
    rewritten = _Rewrite().visit(tree)
    assert isinstance(rewritten, ast.Module | ast.Expression)
    return ast.fix_missing_locations(rewritten)


def _rss() -> int:
    # os.open, not open(): inside Temporal's workflow sandbox the builtin is off limits
    try:
        descriptor = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            return int(os.read(descriptor, 128).split()[1]) * _PAGE
        finally:
            os.close(descriptor)
    except OSError:  # not Linux: peak resident size, a coarser but safe measure
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@contextmanager
def step_budget(filename: str, steps: int = DEFAULT_STEPS) -> Iterator[None]:
    """Stop model code (frames of `filename`) after `steps` executed lines, loop iterations included,
    or once it has built too much through the guards: both deterministic, so replays agree.

    A last resort looks at the process's memory every few steps: code that copies large process
    data in a loop (`[list(data) for i in range(10 ** 6)]`) builds nothing the guards see, and
    would otherwise take the worker down. That check depends on the machine, but only code that was
    about to exhaust it ever meets it.
    """
    remaining = steps
    baseline: int | None = None  # taken at the first look: most expressions end long before it
    _budget.items = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal remaining, baseline
        if event == "line":
            remaining -= 1
            if remaining < 0:
                raise ResourceLimitError(f"model code ran more than {steps} steps")
            if remaining % _RSS_EVERY == 0:
                if baseline is None:
                    baseline = _rss()
                elif _rss() - baseline > MAX_GROWTH_BYTES:
                    raise ResourceLimitError(f"model code used more than {MAX_GROWTH_BYTES // 2**20} MiB")
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == filename else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        yield
    finally:
        sys.settrace(previous)
        _budget.items = None
