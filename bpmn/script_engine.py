"""A restricted Python evaluator for the code inside uploaded models.

Scripts, gateway conditions, timer and parameter expressions come from whoever uploaded the model.
SpiffWorkflow's default environment runs them with `eval`/`exec` and full builtins. Here every
snippet is parsed first and refused unless it stays within an AST allow-list: no imports, no
names or attributes that start with an underscore (the road to `__subclasses__`, `__globals__`,
frames), no frame/code/generator internals, no `format` (which reads attributes by name), and
only pure builtins. Compiled code is cached by source text: the same model runs many times.
"""

from __future__ import annotations

import ast
import builtins
import math
from collections.abc import Callable
from functools import lru_cache
from types import CodeType
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

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


def check_code(source: str, mode: str = "exec") -> ast.Module | ast.Expression:
    """Parse `source` and refuse anything outside the allow-list. Raises SyntaxError or UnsafeCodeError."""
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
    return tree


@lru_cache(maxsize=4096)
def compile_checked(source: str, mode: str) -> CodeType:
    tree = check_code(source, mode)
    code: CodeType = compile(tree, SCRIPT_FILENAME, mode)
    return code


def _fresh_globals(external_context: dict[str, Any] | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"__builtins__": SAFE_BUILTINS}
    scope.update(SAFE_FUNCTIONS)
    if external_context:
        scope.update(external_context)
    return scope


class RestrictedEnvironment(TaskDataEnvironment):
    """TaskDataEnvironment with the allow-list applied before any code runs."""

    def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
        code = compile_checked(expression.strip(), "eval")
        scope = _fresh_globals(external_context)
        scope.update(context)
        scope["__builtins__"] = SAFE_BUILTINS  # process data must never replace the builtins
        return eval(code, scope)

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        code = compile_checked(script, "exec")
        self.check_for_overwrite(context, external_context or {})
        scope = _fresh_globals(external_context)
        scope.update(context)
        scope["__builtins__"] = SAFE_BUILTINS
        exec(code, scope)
        # Keep data, drop what only lived for the script: helpers, functions it defined, builtins.
        helpers = set(SAFE_FUNCTIONS) | set(external_context or {}) | {"__builtins__"}
        context.clear()
        context.update({key: value for key, value in scope.items() if key not in helpers and not callable(value)})
        return True


class RestrictedScriptEngine(PythonScriptEngine):
    def __init__(self) -> None:
        super().__init__(environment=RestrictedEnvironment())

    def validate(self, expression: str) -> None:
        check_code(expression, "exec")
