"""The pure helpers that FEEL expressions translated by bpmn/feel.py call at run time.

FEEL's operators and built-in functions differ from Python's in ways a model relies on: null
propagates instead of raising, `=` between different types is null rather than false, `and`/`or`
use three-valued logic, lists are indexed from 1, and division by zero is null. Each helper here
implements one of those rules over plain JSON-like values (None, bool, int, float, str, list, dict);
a value of the wrong type gives None, as a failing FEEL function does.

Numbers: FEEL computes in decimal (128-bit), Python data holds ints and floats. Integer arithmetic
stays exact in Python ints; as soon as a float or a division is involved, the operands are taken at
their shortest decimal spelling and the operation runs in decimal, so `0.1 + 0.2 = 0.3` holds as it
does in FEEL. Results that are whole numbers come back as ints (FEEL has a single number type).

Standard library only (plus bpmn/bounded.py, itself stdlib-only): the script sandbox's child process
imports the restricted evaluator, and with it these helpers, without site-packages. Loops here are not
seen by the step budget, so every helper is linear in the size of its arguments.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bpmn import bounded

# decimal128, FEEL's number type; a private context, so the process-wide one is never touched
_DECIMAL = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN, Emax=6144, Emin=-6143)
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_SCALE = 6176  # decimal128's exponent range bounds the scale a rounding function may ask for


class FeelUndefined(LookupError):
    """A path inside `is defined(...)` named a context entry that does not exist."""


class _NoItem:
    """Stands in for the element while a filter is first evaluated without one (see feel_select)."""

    def __repr__(self) -> str:
        return "<no item>"


NO_ITEM = _NoItem()


@dataclass(frozen=True)
class FeelRange:
    """An interval on the right of `in`; only feel_in looks inside it."""

    low: Any
    high: Any
    low_closed: bool
    high_closed: bool


# --------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    # bool is an int in Python but a separate type in FEEL
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_decimal(value: int | float) -> Decimal:
    # repr is the shortest text that reads back as the same float: 0.1 becomes Decimal("0.1"),
    # not the binary expansion 0.1000000000000000055511151231257827...
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _from_decimal(value: Decimal) -> int | float | None:
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return int(value)
    result = float(value)
    return result if math.isfinite(result) else None


def _normal(value: float) -> int | float | None:
    """A float result as FEEL sees it: no infinities or NaN, whole numbers as ints."""
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _decimal_op(op: Callable[[Decimal, Decimal], Decimal], left: int | float, right: int | float) -> Any:
    if any(isinstance(value, float) and not math.isfinite(value) for value in (left, right)):
        return None
    try:
        return _from_decimal(op(_to_decimal(left), _to_decimal(right)))
    except (decimal.DecimalException, OverflowError):
        return None


def _whole(value: Any) -> int | None:
    """An index, scale or length argument: FEEL takes the integer part of a number."""
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return int(value)


# --------------------------------------------------------------------------- arithmetic


def feel_add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_is_number(left) and _is_number(right)):
        return None
    if isinstance(left, int) and isinstance(right, int):
        return left + right
    return _decimal_op(_DECIMAL.add, left, right)


def feel_sub(left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        return None
    if isinstance(left, int) and isinstance(right, int):
        return left - right
    return _decimal_op(_DECIMAL.subtract, left, right)


def feel_mul(left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        return None
    if isinstance(left, int) and isinstance(right, int):
        return bounded.guarded_mul(left, right)  # refuses products beyond the model-code limits
    return _decimal_op(_DECIMAL.multiply, left, right)


def feel_div(left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)) or right == 0:
        return None
    if isinstance(left, int) and isinstance(right, int) and left % right == 0:
        return left // right
    return _decimal_op(_DECIMAL.divide, left, right)


def feel_pow(base: Any, exponent: Any) -> Any:
    if not (_is_number(base) and _is_number(exponent)):
        return None
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        return bounded.guarded_pow(base, exponent)
    try:
        result = math.pow(base, exponent)
    except (OverflowError, ValueError, ZeroDivisionError):
        return None
    return _normal(result)


def feel_neg(value: Any) -> Any:
    return -value if _is_number(value) else None


# --------------------------------------------------------------------------- comparison


def feel_eq(left: Any, right: Any) -> bool | None:
    """FEEL `=`: null equals only null; values of different types are not comparable (null)."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right if isinstance(left, bool) and isinstance(right, bool) else None
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(feel_eq(a, b) is True for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(feel_eq(left[key], right[key]) is True for key in left)
    return None


def feel_ne(left: Any, right: Any) -> bool | None:
    equal = feel_eq(left, right)
    return None if equal is None else not equal


def _ordered(left: Any, right: Any) -> bool:
    return (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))


def feel_lt(left: Any, right: Any) -> bool | None:
    return bool(left < right) if _ordered(left, right) else None


def feel_le(left: Any, right: Any) -> bool | None:
    return bool(left <= right) if _ordered(left, right) else None


def feel_gt(left: Any, right: Any) -> bool | None:
    return bool(left > right) if _ordered(left, right) else None


def feel_ge(left: Any, right: Any) -> bool | None:
    return bool(left >= right) if _ordered(left, right) else None


def feel_between(value: Any, low: Any, high: Any) -> bool | None:
    return feel_and(feel_ge(value, low), lambda: feel_le(value, high))


def feel_range(low: Any, high: Any, low_closed: bool, high_closed: bool) -> FeelRange:
    return FeelRange(low, high, low_closed, high_closed)


def _in_range(value: Any, interval: FeelRange) -> bool | None:
    above = (feel_ge if interval.low_closed else feel_gt)(value, interval.low)
    below = (feel_le if interval.high_closed else feel_lt)(value, interval.high)
    return feel_and(above, lambda: below)


def feel_in(value: Any, *tests: Any) -> bool | None:
    """`value in (t1, t2, ...)`: an interval test, membership in a list, or equality; any one true
    suffices. Null only when nothing matched and an interval could not be compared."""
    unknown = False
    for test in tests:
        if isinstance(test, FeelRange):
            result = _in_range(value, test)
            if result is None:
                unknown = True
        elif feel_eq(value, test) is True:
            result = True
        else:
            result = isinstance(test, list) and any(feel_eq(value, element) is True for element in test)
        if result is True:
            return True
    return None if unknown else False


# --------------------------------------------------------------------------- logic


def feel_and(left: Any, right: Callable[[], Any]) -> bool | None:
    """Three-valued `and`; the right side is a thunk so `is defined(x) and x > 1` never reads x."""
    if left is False:
        return False
    value = right()
    if value is False:
        return False
    return True if left is True and value is True else None


def feel_or(left: Any, right: Callable[[], Any]) -> bool | None:
    if left is True:
        return True
    value = right()
    if value is True:
        return True
    return False if left is False and value is False else None


def feel_not(value: Any) -> bool | None:
    return not value if isinstance(value, bool) else None


def feel_some(conditions: Iterable[Any]) -> bool | None:
    unknown = False
    for condition in conditions:
        if condition is True:
            return True
        if condition is not False:
            unknown = True
    return None if unknown else False


def feel_every(conditions: Iterable[Any]) -> bool | None:
    unknown = False
    for condition in conditions:
        if condition is False:
            return False
        if condition is not True:
            unknown = True
    return None if unknown else True


# --------------------------------------------------------------------------- names, paths, filters


def feel_get(base: Any, key: str) -> Any:
    """`base.key`: a missing entry or a null base is null; on a list, the path maps over its elements."""
    if isinstance(base, dict):
        return base.get(key)
    if isinstance(base, list):
        return [feel_get(element, key) for element in base]
    return None


def feel_defined_get(base: Any, key: str) -> Any:
    """`base.key` inside `is defined(...)`: a missing entry raises, so the path counts as undefined."""
    if isinstance(base, dict) and key in base:
        return base[key]
    if isinstance(base, list):
        return [feel_get(element, key) for element in base]
    raise FeelUndefined(key)


def _lookup(key: str, items: tuple[Any, ...]) -> tuple[bool, Any]:
    for item in items:
        if item is NO_ITEM:
            continue
        if key == "item":
            return True, item
        if isinstance(item, dict) and key in item:
            return True, item[key]
    return False, None


def feel_name(key: str, outer: Callable[[], Any], *items: Any) -> Any:
    """A name inside a filter: `item`, then the element's own entries (innermost filter first), then
    the variable of that name outside; an unknown name there is null, as in FEEL."""
    found, value = _lookup(key, items)
    if found:
        return value
    try:
        return outer()
    except NameError:
        return None


def feel_defined_name(key: str, outer: Callable[[], Any], *items: Any) -> Any:
    """feel_name inside `is defined(...)`: an unknown name raises NameError, so it counts as undefined."""
    found, value = _lookup(key, items)
    return value if found else outer()


def feel_is_defined(thunk: Callable[[], Any]) -> bool:
    try:
        thunk()
    except (NameError, FeelUndefined):
        return False
    return True


def feel_index(values: Any, index: Any) -> Any:
    """`list[i]`: 1-based, negative from the end, out of range null."""
    position = _whole(index)
    if not isinstance(values, list) or position is None or position == 0 or abs(position) > len(values):
        return None
    return values[position - 1] if position > 0 else values[position]


def feel_filter(values: Any, predicate: Callable[[Any], Any]) -> Any:
    if not isinstance(values, list):
        return None
    return [value for value in values if predicate(value) is True]


def feel_select(values: Any, predicate: Callable[[Any], Any]) -> Any:
    """`list[e]` where e is neither a number literal nor a comparison: as feel-scala does, evaluate e
    once without an element; a number means an index, anything else a filter over the elements."""
    probe = predicate(NO_ITEM)
    if _is_number(probe):
        return feel_index(values, probe)
    return feel_filter(values, predicate)


def feel_list(value: Any) -> list[Any]:
    """What `for`/`some`/`every` iterate over: a list; null is empty, any other value a list of one."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def feel_range_list(start: Any, end: Any) -> list[int]:
    """`for i in a..b`: whole numbers from a to b inclusive, descending when b < a; else empty."""
    low, high = _whole(start), _whole(end)
    if low is None or high is None or low != start or high != end:
        return []
    step = 1 if low <= high else -1
    return list(bounded.guarded_range(low, high + step, step))


# --------------------------------------------------------------------------- string functions


def feel_string_length(value: Any) -> Any:
    return len(value) if isinstance(value, str) else None


def feel_upper_case(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else None


def feel_lower_case(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else None


def feel_substring(value: Any, start: Any, length: Any = NO_ITEM) -> Any:
    position = _whole(start)
    if not isinstance(value, str) or position is None:
        return None
    begin = position - 1 if position > 0 else len(value) + position
    begin = max(0, min(begin, len(value)))
    if length is NO_ITEM:
        return value[begin:]
    count = _whole(length)
    if count is None or count < 0:
        return None
    return value[begin : begin + count]


def feel_substring_before(value: Any, match: Any) -> Any:
    if not (isinstance(value, str) and isinstance(match, str)):
        return None
    index = value.find(match)
    return value[:index] if index > 0 else ""


def feel_substring_after(value: Any, match: Any) -> Any:
    if not (isinstance(value, str) and isinstance(match, str)):
        return None
    index = value.find(match)
    return value[index + len(match) :] if index >= 0 else ""


def feel_contains(value: Any, match: Any) -> Any:
    return match in value if isinstance(value, str) and isinstance(match, str) else None


def feel_starts_with(value: Any, match: Any) -> Any:
    return value.startswith(match) if isinstance(value, str) and isinstance(match, str) else None


def feel_ends_with(value: Any, match: Any) -> Any:
    return value.endswith(match) if isinstance(value, str) and isinstance(match, str) else None


def feel_string_join(values: Any, delimiter: Any = None) -> Any:
    if not isinstance(values, list) or not all(value is None or isinstance(value, str) for value in values):
        return None
    if delimiter is not None and not isinstance(delimiter, str):
        return None
    return (delimiter or "").join(value for value in values if value is not None)


def _text(value: Any, quoted: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        whole = _normal(value)
        if whole is None:
            return "null"
        return str(whole) if isinstance(whole, int) else f"{_to_decimal(whole):f}"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if quoted else value
    if isinstance(value, list):
        return "[" + ", ".join(_text(element, True) for element in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}:{_text(element, True)}" for key, element in value.items()) + "}"
    return str(value)


def feel_string(value: Any) -> Any:
    try:
        return _text(value, False)
    except ValueError:  # an int too long for Python's int-to-text limit
        return None


def feel_number(value: Any) -> Any:
    if not isinstance(value, str) or not _NUMBER_TEXT.fullmatch(value):
        return None
    try:
        return _from_decimal(_DECIMAL.create_decimal(value))
    except decimal.DecimalException:
        return None


# --------------------------------------------------------------------------- list functions


def _items(args: tuple[Any, ...]) -> list[Any]:
    # FEEL's list functions take either one list or the items themselves: sum([1, 2]) = sum(1, 2)
    if len(args) == 1 and isinstance(args[0], list):
        return args[0]
    return list(args)


def feel_count(values: Any) -> Any:
    return len(values) if isinstance(values, list) else None


def feel_sum(*args: Any) -> Any:
    values = _items(args)
    if not values or not all(_is_number(value) for value in values):
        return None
    total: Any = 0
    for value in values:
        total = feel_add(total, value)
    return total


def feel_mean(*args: Any) -> Any:
    values = _items(args)
    return feel_div(feel_sum(values), len(values)) if values else None


def _comparable(values: list[Any]) -> bool:
    return bool(values) and (
        all(_is_number(value) for value in values) or all(isinstance(value, str) for value in values)
    )


def feel_min(*args: Any) -> Any:
    values = _items(args)
    return min(values) if _comparable(values) else None


def feel_max(*args: Any) -> Any:
    values = _items(args)
    return max(values) if _comparable(values) else None


def feel_all(*args: Any) -> Any:
    values = _items(args)
    if any(value is False for value in values):
        return False
    return True if all(value is True for value in values) else None


def feel_any(*args: Any) -> Any:
    values = _items(args)
    if any(value is True for value in values):
        return True
    return False if all(value is False for value in values) else None


def feel_list_contains(values: Any, element: Any) -> Any:
    if not isinstance(values, list):
        return None
    return any(feel_eq(value, element) is True for value in values)


def feel_append(values: Any, *items: Any) -> Any:
    return [*values, *items] if isinstance(values, list) else None


def feel_concatenate(*lists: Any) -> Any:
    result: list[Any] = []
    for value in lists:
        if isinstance(value, list):
            result.extend(value)
        else:
            result.append(value)
    return result


def _key(value: Any) -> Any:
    """A hashable stand-in for a value, equal exactly when FEEL's `=` says true (1 and 1.0 alike)."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, list):
        return ("list", tuple(_key(element) for element in value))
    if isinstance(value, dict):
        return ("context", frozenset((key, _key(element)) for key, element in value.items()))
    if isinstance(value, str):
        return ("string", value)
    if _is_number(value):
        return ("number", value)
    return ("other", id(value))


def feel_distinct_values(values: Any) -> Any:
    if not isinstance(values, list):
        return None
    seen: set[Any] = set()
    result = []
    for value in values:
        key = _key(value)  # hashing keeps this linear where pairwise `=` would be quadratic
        if key not in seen:
            seen.add(key)
            result.append(value)
    return result


def feel_reverse(values: Any) -> Any:
    return values[::-1] if isinstance(values, list) else None


def feel_flatten(values: Any) -> Any:
    if not isinstance(values, list):
        return None
    result: list[Any] = []
    for value in values:
        if isinstance(value, list):
            result.extend(feel_flatten(value))
        else:
            result.append(value)
    return result


def feel_index_of(values: Any, match: Any) -> Any:
    if not isinstance(values, list):
        return None
    return [position for position, value in enumerate(values, 1) if feel_eq(value, match) is True]


def feel_sublist(values: Any, start: Any, length: Any = NO_ITEM) -> Any:
    position = _whole(start)
    if not isinstance(values, list) or position is None:
        return None
    begin = max(0, position - 1 if position > 0 else len(values) + position)
    if length is NO_ITEM:
        return values[begin:]
    count = _whole(length)
    if count is None or count < 0:
        return None
    return values[begin : begin + count]


def feel_is_empty(values: Any) -> Any:
    return len(values) == 0 if isinstance(values, list) else None


def feel_get_or_else(value: Any, default: Any) -> Any:
    return default if value is None else value


# --------------------------------------------------------------------------- numeric functions


def feel_abs(value: Any) -> Any:
    return abs(value) if _is_number(value) else None


def _round(value: Any, scale: Any, rounding: str) -> Any:
    digits = _whole(scale)
    if not _is_number(value) or digits is None or abs(digits) > _MAX_SCALE:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return _from_decimal(_to_decimal(value).quantize(Decimal(1).scaleb(-digits), rounding, _DECIMAL))
    except decimal.DecimalException:
        return None


def feel_decimal(value: Any, scale: Any) -> Any:
    return _round(value, scale, decimal.ROUND_HALF_EVEN)


def feel_floor(value: Any, scale: Any = 0) -> Any:
    return _round(value, scale, decimal.ROUND_FLOOR)


def feel_ceiling(value: Any, scale: Any = 0) -> Any:
    return _round(value, scale, decimal.ROUND_CEILING)


def feel_round_up(value: Any, scale: Any) -> Any:
    return _round(value, scale, decimal.ROUND_UP)


def feel_round_down(value: Any, scale: Any) -> Any:
    return _round(value, scale, decimal.ROUND_DOWN)


def feel_round_half_up(value: Any, scale: Any) -> Any:
    return _round(value, scale, decimal.ROUND_HALF_UP)


def feel_round_half_down(value: Any, scale: Any) -> Any:
    return _round(value, scale, decimal.ROUND_HALF_DOWN)


def feel_modulo(dividend: Any, divisor: Any) -> Any:
    """The remainder takes the divisor's sign (FEEL, like Python's %, floors the quotient)."""
    if not (_is_number(dividend) and _is_number(divisor)) or divisor == 0:
        return None
    if isinstance(dividend, int) and isinstance(divisor, int):
        return dividend % divisor

    def floored(a: Decimal, b: Decimal) -> Decimal:
        quotient = _DECIMAL.divide(a, b).to_integral_value(decimal.ROUND_FLOOR)
        return _DECIMAL.subtract(a, _DECIMAL.multiply(b, quotient))

    return _decimal_op(floored, dividend, divisor)


def feel_sqrt(value: Any) -> Any:
    if not _is_number(value) or value < 0:
        return None
    return _decimal_op(lambda a, _: _DECIMAL.sqrt(a), value, 0)


def feel_odd(value: Any) -> Any:
    return value % 2 == 1 if _is_number(value) else None


def feel_even(value: Any) -> Any:
    return value % 2 == 0 if _is_number(value) else None


FEEL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: function for name, function in globals().items() if name.startswith("feel_") and callable(function)
}
