"""The FEEL subset: translated by bpmn/feel.py, run end to end by the restricted evaluator with the
helpers of bpmn/feel_runtime.py, and refused with a precise FeelError outside the subset."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest

from bpmn import bounded, feel_runtime
from bpmn.feel import MAX_DEPTH, MAX_LENGTH, FeelError, to_python
from bpmn.feel_runtime import FEEL_FUNCTIONS
from bpmn.restricted import AST_LOCK, check_code
from bpmn.script_engine import RestrictedEnvironment

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass

CONTEXT: dict[str, Any] = {
    "x": 3,
    "i": 2,
    "n": None,
    "s": "foobar",
    "flag": True,
    "threshold": 10,
    "größe": 7,
    "l": [1, 5, 12, 20],
    "order": {
        "total": 100,
        "customer": {"name": "Ada"},
        "note": None,
        "class": "A",
        "items": [
            {"name": "pen", "price": 2, "qty": 10, "type": "office"},
            {"name": "saw", "price": 25, "qty": 1, "type": "tool", "discount": 5},
            {"name": "drill", "price": 80, "qty": 2, "type": "tool"},
        ],
    },
    "groups": [{"name": "a", "members": [{"age": 20}]}, {"name": "b", "members": [{"age": 40}, {"age": 25}]}],
}


def evaluate(source: str, context: dict[str, Any] | None = None) -> Any:
    scope = dict(CONTEXT if context is None else context)
    return RestrictedEnvironment().evaluate(to_python(source), scope, external_context=FEEL_FUNCTIONS)


def same(actual: Any, expected: Any) -> bool:
    """Equal, with true/false/null compared by identity: `1 == True` must not pass for a FEEL boolean."""
    if expected is None or isinstance(expected, bool) or actual is None or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same(actual[key], expected[key]) for key in expected)
        )
    return type(actual) is type(expected) or (isinstance(actual, int | float) and isinstance(expected, int | float))


CASES: list[tuple[str, Any]] = [
    # literals
    ("1", 1),
    ("-2.5", -2.5),
    (".5", 0.5),
    (r'"say \"hi\"\\"', 'say "hi"\\'),
    (r'"a\tb\nc"', "a\tb\nc"),
    (r'"\u0041\uD83D\uDE00"', "A\U0001f600"),
    ("true", True),
    ("null", None),
    ('[1, x, "a"]', [1, 3, "a"]),
    ('{a: 1, "b c": x, class: 2}', {"a": 1, "b c": 3, "class": 2}),
    ("1 + /* two */ 2 // and a comment", 3),
    # paths
    ("order.customer.name", "Ada"),
    ("order.missing.name", None),
    ("n.a", None),
    ("order.items.price", [2, 25, 80]),
    ("order.class", "A"),
    ("größe + 1", 8),
    # index and filter
    ("l[1]", 1),
    ("l[-1]", 20),
    ("l[5]", None),
    ("l[0]", None),
    ("l[i]", 5),
    ("l[count(l)]", 20),
    ("l[item > 4]", [5, 12, 20]),
    ("l[item > threshold]", [12, 20]),
    ("l[true]", [1, 5, 12, 20]),
    ("order.items[price > 10].name", ["saw", "drill"]),
    ('order.items[item.price < 50 and name != "pen"].name', ["saw"]),
    ('order.items[type = "tool"][1].name', "saw"),
    ("order.items[is defined(item.discount)].name", ["saw"]),
    ("order.items[missing = null].name", ["pen", "saw", "drill"]),
    ("groups[count(members[age > 30]) > 0].name", ["b"]),
    ("groups[some m in members satisfies m.age < item.members[1].age].name", ["b"]),
    # arithmetic
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("2 ** 3 ** 2", 64),
    ("-2 ** 2", 4),
    ("-x", -3),
    ("- -x", 3),
    ("-true", None),
    ("7 - 10", -3),
    ("10 / 4", 2.5),
    ("10 / 2", 5),
    ("2 ** -1", 0.5),
    ("1 / 0", None),
    ("x + null", None),
    ('"a" + "b"', "ab"),
    ('"a" + 1', None),
    ("0.1 + 0.2", 0.3),
    ("order.total * 1.2", 120),
    # comparison
    ("0.1 + 0.2 = 0.3", True),
    ("x = 3", True),
    ("x != 3", False),
    ('"a" < "b"', True),
    ("x = null", False),
    ("n = null", True),
    ("n != null", False),
    ("n < 1", None),
    ('1 = "1"', None),
    ("true < false", None),
    ("[1, 2] = [1, 2]", True),
    ("{a: 1} = {a: 1.0}", True),
    ("x between 1 and 3", True),
    ("x between 4 and 5", False),
    ("x in [1, 2, 3]", True),
    ("x in l", False),
    ("x in 1..5", True),
    ("x in [1..3)", False),
    ("x in ]1..3]", True),
    ("x in (1, 3, 5)", True),
    ("x in (1..2, 3)", True),
    ('"b" in ["a".."c"]', True),
    ("n in [1..5]", None),
    ("null in [1, null]", True),
    # boolean logic
    ("true and false", False),
    ("null and false", False),
    ("null and true", None),
    ("null or true", True),
    ("null or false", None),
    ("not(true)", False),
    ("not(null)", None),
    ("is defined(missing) and missing > 1", False),
    ("x > 1 or missing", True),
    ('flag and contains(s, "oo")', True),
    # if
    ('if x > 2 then "big" else "small"', "big"),
    ("if null then 1 else 2", 2),
    ("if n > 1 then 1 else 2", 2),
    # iterations
    ("some v in l satisfies v > 15", True),
    ("every v in l satisfies v > 0", True),
    ("every v in l satisfies v > 1", False),
    ("some v in [] satisfies v", False),
    ("some v in [null, true] satisfies v", True),
    ("every v in [true, null] satisfies v", None),
    ("for v in l return v * 2", [2, 10, 24, 40]),
    ("for a in [1, 2], b in [10, 20] return a + b", [11, 21, 12, 22]),
    ("for k in 1..3 return k * k", [1, 4, 9]),
    ("for k in 3..1 return k", [3, 2, 1]),
    # string functions
    ('string length("abc")', 3),
    ('string   length("ab")', 2),
    ("upper case(s)", "FOOBAR"),
    ('lower case("AbC")', "abc"),
    ('substring("foobar", 3)', "obar"),
    ('substring("foobar", 3, 3)', "oba"),
    ('substring("foobar", -2, 1)', "a"),
    ('substring before("foobar", "bar")', "foo"),
    ('substring after("foobar", "ob")', "ar"),
    ('contains(s, "oba")', True),
    ('starts with(s, "foo")', True),
    ('ends with(s, "foo")', False),
    ('string join(["a", null, "b"], "-")', "a-b"),
    ("string(1.5)", "1.5"),
    ("string(10 / 2)", "5"),
    ("string(true)", "true"),
    ('number("1.50")', 1.5),
    ('number("one")', None),
    # list functions
    ("count(l)", 4),
    ("sum(l)", 38),
    ("sum([])", None),
    ("sum(1, 2, 3)", 6),
    ("sum([0.1, 0.2])", 0.3),
    ("min(l)", 1),
    ('max("a", "b")', "b"),
    ("mean(l)", 9.5),
    ("all([true, null])", None),
    ("any([false, true])", True),
    ("list contains(l, 12)", True),
    ("append([1], 2, 3)", [1, 2, 3]),
    ("concatenate([1], [2, 3])", [1, 2, 3]),
    ('distinct values([1, 1.0, "1", 2, [1], [1]])', [1, "1", 2, [1]]),
    ("reverse([1, 2])", [2, 1]),
    ("flatten([[1, [2]], 3])", [1, 2, 3]),
    ("index of([1, 2, 1], 1)", [1, 3]),
    ("sublist([1, 2, 3], 2)", [2, 3]),
    ("sublist([1, 2, 3], -2, 1)", [2]),
    ("is empty([])", True),
    # numeric functions
    ("abs(-3)", 3),
    ("floor(-1.5)", -2),
    ("ceiling(1.2)", 2),
    ("floor(1.567, 2)", 1.56),
    ("decimal(1.125, 2)", 1.12),
    ("decimal(1 / 3, 2)", 0.33),
    ("round half up(1.125, 2)", 1.13),
    ("round half down(1.125, 2)", 1.12),
    ("round up(1.121, 2)", 1.13),
    ("round down(-1.129, 2)", -1.12),
    ("modulo(-7, 3)", 2),
    ("modulo(10.5, 3)", 1.5),
    ("sqrt(16)", 4),
    ("odd(5)", True),
    ("even(5)", False),
    # definedness
    ("is defined(x)", True),
    ("is defined(n)", True),
    ("is defined(missing)", False),
    ("is defined(order.note)", True),
    ("is defined(order.missing)", False),
    ('get or else(n, "default")', "default"),
]


@pytest.mark.parametrize(("source", "expected"), CASES, ids=[source for source, _ in CASES])
def test_feel_evaluates_as_in_camunda(source: str, expected: Any) -> None:
    result = evaluate(source)
    assert same(result, expected), f"{source!r} -> {to_python(source)!r} gave {result!r}"


REJECTED: list[tuple[str, str, int | None]] = [
    ('@"2024-01-01"', "temporal literals", 0),
    ('date("2024-01-01")', "temporal values ('date(...)')", 0),
    ('x + date and time("2024-01-01T10:00:00")', "temporal values ('date and time(...)')", 4),
    ('duration("P1D")', "temporal values ('duration(...)')", 0),
    ("now()", "'now()' is not deterministic inside a workflow; pass the time as a variable", 0),
    ("today() + 1", "'today()' is not deterministic", 0),
    ("function(v) v + 1", "function definitions are not supported", 0),
    ("x instance of number", "'instance of' is not supported", 2),
    ("< 5", "unary tests", 0),
    ("x in < 5", "unary tests", 5),
    ("?", "'?' (the input value of a unary test)", 0),
    ("1..5", "ranges are only supported after 'in'", 1),
    ("l[1..2]", "ranges are only supported after 'in'", 3),
    ("foo(1)", "unknown or unsupported function 'foo' (supported: abs, all,", 0),
    ("sort(l)", "unknown or unsupported function 'sort'", 0),
    ('substring(string: "abc", start position: 2)', "named arguments are not supported", 10),
    ("first name", "unexpected name 'name' after 'first' (names with spaces are not supported)", 6),
    ("`first name`", "names in backticks are not supported", 0),
    ("'a'", "strings are written in double quotes", 0),
    ("class", "'class' is a Python keyword", 0),
    ("type = 1", "'type' is reserved by the expression evaluator", 0),
    ("_secret", "names starting with '_' are not supported", 0),
    ("feel_get", "reserved for the FEEL helpers", 0),
    ("\ufb01le", "is not supported as a variable name", 0),
    ("for class in l return 1", "'class' is a Python keyword", 4),
    ("a.b(1)", "calling a function through a path ('.b(...)')", 2),
    ("x == 1", "'==' is not FEEL; equality is '='", 2),
    ("a && b", "use 'and'", 2),
    ("1 < x < 3", "comparisons cannot be chained", 6),
    ('"abc', "unterminated string", 0),
    (r'"\q"', r"unknown escape sequence '\\q'", 1),
    (r'"\uD800"', "unpaired surrogate", 1),
    ("1e3", "FEEL numbers have no exponent", 0),
    ("(1 + 2", "expected ')' to close the '(' at position 0, found the end of the expression", 6),
    ("[1, 2", "expected ',' or ']'", 5),
    ("{a 1}", "expected ':' after the context key 'a'", 3),
    ("{a: 1, a: 2}", "duplicate context key 'a'", 7),
    ("", "empty expression", 0),
    ("=x", "without its leading '='", 0),
    ("if x then 1", "expected 'else'", 11),
    ('string length("a", "b")', "'string length' takes 1 argument(s), 2 given", 0),
    ("for v in l v", "expected 'return'", 11),
    ("some v in l", "expected 'satisfies'", 11),
    ("x +", "expression ends where a value is expected", 3),
    ("x $ y", "unexpected character '$'", 2),
    ("/* open", "unterminated comment", 0),
    ("1" * 101, "number literal longer than 100 digits", 0),
    ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels", None),
    (" + ".join(["1"] * (MAX_DEPTH + 1)), f"nested more than {MAX_DEPTH} levels", None),
    ("-" * 5000 + "1", f"nested more than {MAX_DEPTH} levels", None),
    ("1 + " * (MAX_LENGTH // 4) + "1", f"longer than {MAX_LENGTH} characters", None),
]


@pytest.mark.parametrize(("source", "fragment", "position"), REJECTED, ids=[s[:40] for s, _, _ in REJECTED])
def test_outside_the_subset_is_refused_precisely(source: str, fragment: str, position: int | None) -> None:
    with pytest.raises(FeelError) as caught:
        to_python(source)
    assert fragment in str(caught.value)
    if position is not None:
        assert caught.value.position == position
        assert str(caught.value).endswith(f"at position {position}")


def test_translations_pass_the_evaluators_checks_and_call_only_the_helpers() -> None:
    for source, _ in CASES:
        code = to_python(source)
        check_code(code, "eval")
        names = {node.id for node in ast.walk(ast.parse(code, mode="eval")) if isinstance(node, ast.Name)}
        helpers = {name for name in names if name.startswith("feel_") and not name.startswith("feel_item")}
        assert helpers <= FEEL_FUNCTIONS.keys(), source


def test_translation_is_deterministic_and_cached() -> None:
    source = 'orders[amount > 100 and status = "open"].id'
    first = to_python(source)
    to_python.cache_clear()
    assert to_python(source) == first


def test_an_unknown_variable_is_a_name_error_outside_filters() -> None:
    with pytest.raises(NameError):
        evaluate("missing + 1")


def test_runtime_limits_still_apply() -> None:
    with pytest.raises(bounded.ResourceLimitError):
        evaluate("10 ** 10000000")
    with pytest.raises(bounded.ResourceLimitError):
        evaluate("for k in 1..100000000 return k")


def test_runtime_imports_only_the_standard_library() -> None:
    # the script sandbox's child imports it without site-packages
    with AST_LOCK:  # the engine may be compiling a condition in another thread (bpmn/restricted.py)
        tree = ast.parse(Path(feel_runtime.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    roots = {name.split(".")[0] for name in imported}
    assert roots - {"__future__", "bpmn"} <= sys.stdlib_module_names
    assert {name for name in imported if name.startswith("bpmn")} == {"bpmn"}  # only bpmn.bounded, stdlib-only
