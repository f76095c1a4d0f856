"""The restricted evaluator refuses escapes before any code runs, and still runs ordinary models."""

from __future__ import annotations

import pytest

from bpmn.script_engine import RestrictedEnvironment, UnsafeCodeError, check_code

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass

ESCAPES = [
    "import os",
    "from os import system",
    "__import__('os')",
    "().__class__.__base__.__subclasses__()",
    "x = [c for c in ().__class__.__mro__]",
    "g = (i for i in [1]); f = g.gi_frame.f_back",
    "'{0.__class__}'.format(1)",
    "'{x.__init__}'.format_map({'x': 1})",
    "eval('1')",
    "exec('x = 1')",
    "open('/etc/passwd').read()",
    "getattr(1, '__class__')",
    "globals()['x'] = 1",
    "type(1)",
    "def f(_x): return _x",
    "class A: pass",
    "vars()",
    "compile('1', 'a', 'eval')",
    "breakpoint()",
    "(lambda: 1).__code__",
    "try:\n  1/0\nexcept Exception as e:\n  t = e.__traceback__.tb_frame",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_escapes_are_refused_before_running(source: str) -> None:
    with pytest.raises(UnsafeCodeError):
        check_code(source)


def test_ordinary_scripts_run_and_keep_only_data() -> None:
    env = RestrictedEnvironment()
    data = {"items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}]}
    env.execute(
        "def line(i):\n    return i['price'] * i['qty']\n"
        "total = sum(line(i) for i in items)\nlabel = f'total {total:>5}'\nbig = max(1, total) > 10",
        data,
    )
    assert data["total"] == 11
    assert data["label"] == "total    11"
    assert data["big"] is True
    assert "line" not in data  # functions a script defines are not process data
    assert "__builtins__" not in data
    assert env.evaluate("sqrt(total) > 3", data) is True


def test_data_cannot_replace_the_builtins() -> None:
    env = RestrictedEnvironment()
    data = {"x": 1}
    env.execute("y = len([x])", data)
    assert data["y"] == 1
    with pytest.raises(NameError):
        env.evaluate("hasattr(x, 'y')", {"x": 1})
    with pytest.raises(NameError):
        env.evaluate("hasattr(x, 'y')", {"x": 1, "__builtins__": {"hasattr": hasattr}})
