"""SpiffWorkflow's script engine, restricted: model code runs under the rules of bpmn/restricted.py.

Expressions (conditions, timers, parameters, output mappings, correlation keys) are evaluated here,
inside the workflow, deterministically. Script tasks are not: they run in the sandbox pool's child
processes (workers/sandbox/), unless a caller asks for inline scripts (in-memory reference runs, and
instances started before the sandbox existed, whose recorded histories ran them inline).
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

from bpmn import bounded
from bpmn.feel_runtime import FEEL_FUNCTIONS
from bpmn.restricted import (
    SAFE_BUILTINS,
    SAFE_FUNCTIONS,
    SCRIPT_FILENAME,
    UnsafeCodeError,
    _fresh_globals,
    check_code,
    compile_checked,
)

__all__ = [
    "SAFE_BUILTINS",
    "SAFE_FUNCTIONS",
    "SCRIPT_FILENAME",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "UnsafeCodeError",
    "check_code",
]


class RestrictedEnvironment(TaskDataEnvironment):
    """TaskDataEnvironment with the allow-list applied before any code runs."""

    def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
        code = compile_checked(expression.strip(), "eval")
        scope = _fresh_globals(external_context)
        scope.update(context)
        scope["__builtins__"] = SAFE_BUILTINS  # process data must never replace the builtins
        # Camunda 8's FEEL expressions arrive translated into calls of these (bpmn/feel.py); after the
        # data, so a variable cannot stand in for one. Only for them: the 71 entries cost other
        # expressions ~1.5 us each (a third of a simple condition's evaluation).
        if "feel_" in expression:
            scope.update(FEEL_FUNCTIONS)
        with bounded.step_budget(SCRIPT_FILENAME):
            return eval(code, scope)

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        code = compile_checked(script, "exec")
        self.check_for_overwrite(context, external_context or {})
        scope = _fresh_globals(external_context)
        scope.update(context)
        scope["__builtins__"] = SAFE_BUILTINS
        with bounded.step_budget(SCRIPT_FILENAME):
            exec(code, scope)
        # Keep data, drop what only lived for the script: helpers, functions it defined, builtins.
        helpers = set(SAFE_FUNCTIONS) | set(external_context or {}) | {"__builtins__"}
        context.clear()
        context.update({key: value for key, value in scope.items() if key not in helpers and not callable(value)})
        return True


class RestrictedScriptEngine(PythonScriptEngine):
    def __init__(self, *, inline_scripts: bool = True) -> None:
        super().__init__(environment=RestrictedEnvironment())
        # False: script tasks wait for the sandbox pool (bpmn/specs.py SandboxedScriptTask)
        self.inline_scripts = inline_scripts

    def validate(self, expression: str) -> None:
        check_code(expression, "exec")
