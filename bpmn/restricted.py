"""The restricted Python evaluator's rules: what model code may contain, and the names it may use.

Scripts, gateway conditions, timer and parameter expressions come from whoever uploaded the model.
SpiffWorkflow's default environment runs them with `eval`/`exec` and full builtins. Here every
snippet is parsed first and refused unless it stays within an AST allow-list: no imports, no
names or attributes that start with an underscore (the road to `__subclasses__`, `__globals__`,
frames), no frame/code/generator internals, no `format` (which reads attributes by name), and
only pure builtins. Compiled code is cached by source text: the same model runs many times.

Standard library only, on purpose: the script sandbox's child process (workers/sandbox/child.py)
imports this module without site-packages, so the rules are the same on both sides of the boundary.
"""

from __future__ import annotations

import ast
import builtins
import math
import threading
from collections.abc import Callable
from functools import lru_cache
from types import CodeType
from typing import Any

from bpmn import bounded

SCRIPT_FILENAME = "<string>"  # Spiff looks for this frame name to report the failing line

_SAFE_BUILTIN_NAMES = [
    "abs",
    "all",
    "any",
    "ascii",
    "bool",
    "bytes",
    "chr",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "frozenset",
    "hash",
    "hex",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "oct",
    "ord",
    "pow",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "OverflowError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
]


def _no_print(*_args: object, **_kwargs: object) -> None:
    """Scripts may call print while debugging a model; output goes nowhere."""


SAFE_BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
SAFE_BUILTINS.update({"print": _no_print, "True": True, "False": False, "None": None})
SAFE_BUILTINS.update({"range": bounded.guarded_range, "pow": bounded.guarded_pow, "bytes": bounded.guarded_bytes})

# Pure helpers offered to every expression. Modules are never exposed as objects: a script that
# could reach a shared module could monkeypatch it for every other instance in the worker.
SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "isclose": math.isclose,
}

_FORBIDDEN_NAMES = frozenset(
    {
        "eval", "exec", "compile", "open", "globals", "locals", "vars", "dir", "getattr", "setattr",
        "delattr", "input", "breakpoint", "help", "memoryview", "type", "object", "super",
        "classmethod", "staticmethod", "property", "exit", "quit", "copyright", "credits", "license",
    }
)  # fmt: skip

_FORBIDDEN_ATTRIBUTES = frozenset({"format", "format_map", "mro"})
_FORBIDDEN_ATTRIBUTE_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")

_FORBIDDEN_NODES: tuple[type[ast.AST], ...] = (
    ast.Import,
    ast.ImportFrom,
    ast.Global,
    ast.Nonlocal,
    ast.AsyncFunctionDef,
    ast.Await,
    ast.AsyncFor,
    ast.AsyncWith,
    ast.ClassDef,
    ast.Yield,
    ast.YieldFrom,
)


class UnsafeCodeError(ValueError):
    """The code uses a construct that the restricted evaluator refuses."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


# CPython 3.11 keeps the AST converter's recursion counter in module state shared by all threads: two
# threads parsing at once (the API checking a deploy while a workflow compiles a condition) can fail
# one of them with "SystemError: AST constructor recursion depth mismatch" (fixed in 3.12, gh-106905).
AST_LOCK = threading.RLock()


def check_code(source: str, mode: str = "exec") -> ast.Module | ast.Expression:
    """Parse `source` and refuse anything outside the allow-list. Raises SyntaxError or UnsafeCodeError."""
    with AST_LOCK:
        tree = ast.parse(source, filename=SCRIPT_FILENAME, mode=mode)
    assert isinstance(tree, ast.Module | ast.Expression)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeCodeError(f"{type(node).__name__} is not allowed in model code", line)
        if isinstance(node, ast.Name) and (node.id.startswith("_") or node.id in _FORBIDDEN_NAMES):
            raise UnsafeCodeError(f"name '{node.id}' is not allowed in model code", line)
        if isinstance(node, ast.Attribute) and (
            node.attr in _FORBIDDEN_ATTRIBUTES or node.attr.startswith(_FORBIDDEN_ATTRIBUTE_PREFIXES)
        ):
            raise UnsafeCodeError(f"attribute '{node.attr}' is not allowed in model code", line)
        if isinstance(node, ast.FunctionDef | ast.Lambda):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.arg.startswith("_"):
                    raise UnsafeCodeError(f"argument '{arg.arg}' is not allowed in model code", line)
        if isinstance(node, ast.keyword) and node.arg is not None and node.arg.startswith("_"):
            raise UnsafeCodeError(f"keyword '{node.arg}' is not allowed in model code", line)
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            # A nested format spec can itself carry replacement fields; keep f-strings simple.
            for inner in ast.walk(node.format_spec):
                if isinstance(inner, ast.FormattedValue):
                    raise UnsafeCodeError("nested format specifications are not allowed", line)
                # f"{x:999999999}" pads in C, where no guard can look: refuse huge widths in the source
                if (
                    isinstance(inner, ast.Constant)
                    and isinstance(inner.value, str)
                    and bounded.WIDTH.search(inner.value)
                ):
                    raise UnsafeCodeError("format widths of 10,000,000 or more are not allowed", line)
    return tree


@lru_cache(maxsize=4096)
def compile_checked(source: str, mode: str) -> CodeType:
    """Check, then compile with the size guards of bpmn/bounded.py in place of `**`, `*`, `<<` and
    the text-growing methods (checked first: the guards' names are ones model code cannot spell)."""
    tree = bounded.rewrite(check_code(source, mode))
    with AST_LOCK:
        code: CodeType = compile(tree, SCRIPT_FILENAME, mode)
    return code


def _fresh_globals(external_context: dict[str, Any] | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"__builtins__": SAFE_BUILTINS}
    scope.update(SAFE_FUNCTIONS)
    scope.update(bounded.GUARDS)
    if external_context:
        scope.update(external_context)
    return scope


def run_script(script: str, data: dict[str, Any]) -> dict[str, Any]:
    """Run a checked script over `data`; return the data it leaves (its helpers and functions dropped)."""
    code = compile_checked(script, "exec")
    scope = _fresh_globals(None)
    scope.update(data)
    scope["__builtins__"] = SAFE_BUILTINS
    exec(code, scope)
    return {key: value for key, value in scope.items() if key not in _HELPERS and not callable(value)}


_HELPERS = frozenset({*SAFE_FUNCTIONS, *bounded.GUARDS, "__builtins__"})
