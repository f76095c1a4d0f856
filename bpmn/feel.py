"""FEEL expressions (Camunda 8's `=...` attributes): a documented subset, translated to restricted Python.

A Camunda 8 model writes its expressions in FEEL: `source="=order.total * 1.2"`, a condition
`=amount > 1000 and approved`. `to_python` translates the FEEL text (without its leading `=`) into a
Python expression that the restricted evaluator (bpmn/restricted.py) runs; the operators and functions
become calls of the helpers in bpmn/feel_runtime.py, which carry FEEL's semantics (null instead of
errors, three-valued logic, 1-based lists). Anything outside the subset is refused with a FeelError
that names the construct and its position (0-based, in the text after the `=`).

Supported FEEL:

- Literals: numbers (`1`, `-2.5`, `.5`; no exponent), strings in double quotes with the escapes
  `\\"` `\\\\` `\\n` `\\r` `\\t` `\\'` `\\uXXXX` (surrogate pairs combine) and `\\UXXXXXX`; `true`, `false`,
  `null`; lists `[1, x, "a"]`; contexts `{a: 1, "b c": 2}` (keys are names or strings). Comments
  `// ...` and `/* ... */`.
- Variables: names of letters, digits and `_`, not starting with a digit or `_`, not a Python keyword
  (`class`, `from`, `import`, ...), not one the evaluator reserves (`type`, `object`, ...), not starting
  with `feel_`. Such names still work as path keys (`order.class`) and inside filters.
- Paths `a.b.c`: a missing entry or a null base gives null; a path on a list maps over its elements.
- Index `list[1]` (1-based; `list[-1]` is the last; out of range is null) and filter
  `list[item > 10]`, `orders[amount > 100 and status = "open"]`: inside the brackets `item` is the
  element and, when the element is a context, its entries are names too. A bracket holding a number
  literal is an index, one holding a comparison/`and`/`or`/`not(...)`/boolean function is a filter;
  anything else is evaluated once without an element and is an index if it gives a number
  (`list[i]`), a filter otherwise (as in feel-scala).
- Arithmetic `+ - * / **` and unary minus (binds tighter than `**`: `-2 ** 2` is 4; `**` is
  left-associative); `+` also joins two strings; null or a wrong type gives null; division by zero
  is null. Numbers are computed in decimal (`0.1 + 0.2 = 0.3` is true).
- Comparison `= != < <= > >=` (not chained): `x = null` is true when x is null; `=` between different
  types and `<` with null or between different types are null. `x between a and b`.
  `x in [1, 2, 3]` / `x in list` (membership, or equality with a non-list), `x in (1, 2, 3)`
  (several tests, any true), intervals `x in [1..5]`, `(1..5)`, `]1..5[`, `[1..5)`, and `x in 1..5`
  (inclusive).
- `and`, `or` with three-valued logic (`null and false` is false, `null and true` is null; the right
  side is evaluated only when it can change the result); `not(x)`.
- `if c then a else b` (the else branch unless c is true); `for x in list return e`,
  `for x in a, y in b return e`, `for i in 1..n return e`; `some x in list satisfies c`,
  `every x in list satisfies c`.
- Functions, called with positional arguments: `not`, `is defined` (false for an unknown variable or a
  missing context entry), `get or else`; strings: `string length`, `upper case`, `lower case`,
  `substring(s, start[, length])` (1-based, negative start counts from the end), `substring before`,
  `substring after`, `contains`, `starts with`, `ends with`, `string join(list[, delimiter])`,
  `string(x)`, `number(s)`; lists: `count`, `sum`, `min`, `max`, `mean`, `all`, `any` (a list or the
  items as arguments), `list contains`, `append(list, items...)`, `concatenate(lists...)`,
  `distinct values`, `reverse`, `flatten`, `index of`, `sublist(list, start[, length])`, `is empty`;
  numbers: `abs`, `floor(n[, scale])`, `ceiling(n[, scale])`, `decimal(n, scale)` (half even),
  `round up`, `round down`, `round half up`, `round half down` (each `(n, scale)`), `modulo`, `sqrt`,
  `odd`, `even`.

Refused (FeelError): temporal values (`@"2024-01-01"`, `date(...)`, `time(...)`, `date and time(...)`,
`duration(...)`), `now()` and `today()` (not deterministic inside a workflow: pass the time as a
variable), function definitions, `instance of`, unary tests (`< 5`, `x in > 5`, `?`), ranges anywhere
but after `in` and in iterations, named arguments, functions called through a path (`a.b(...)`),
unknown functions, names with spaces or in backticks, single-quoted strings, chained comparisons;
texts over 10,000 characters or nested more than 100 levels deep.

Deviations from FEEL: an unknown variable outside a filter is an error (NameError when the expression
runs), not null, except inside `is defined(...)`; inside a filter it is null. A variable that is
undefined but has the name of a function the evaluator offers (`len`, `sum`, ...) reads as that
function. Context entries cannot refer to earlier entries of the same context. The right side of `in`
is an arithmetic expression, so `x in a and b` means `(x in a) and b`; `x in 1..5` and
`x in (1..2, 3)` are accepted although FEEL wants brackets around a range. `for`/`some`/`every` over
null iterate over nothing, over a single value once; `partial` is not available. Values are Python
ints and floats, so literals and data keep about 17 significant digits (FEEL: 34); arithmetic runs
in decimal on their shortest spelling, and whole results are ints (`1.5 * 2` is 3, `decimal(1.5, 2)`
is 1.5). Numbers too large for the evaluator's limits (`10 ** 10000000`) stop the evaluation with
ResourceLimitError instead of giving null. `string(x)` of lists and contexts is approximate.
"""

from __future__ import annotations

import ast
import keyword
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeGuard

from bpmn.restricted import _FORBIDDEN_NAMES, UnsafeCodeError, check_code

MAX_LENGTH = 10_000  # characters of FEEL text
MAX_DEPTH = 100  # levels of nesting; a translation deeper than Python's 200 nested brackets is refused too
MAX_NUMBER_DIGITS = 100  # a longer literal is a mistake, and big ints cost time to print and parse


class FeelError(ValueError):
    """The FEEL text is outside the supported subset or malformed. `position` is the 0-based index in
    the text after the `=` (None when the error concerns the whole expression)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} at position {position}")
        self.position = position


# --------------------------------------------------------------------------- functions

# FEEL name -> (runtime helper, fewest arguments, most arguments or None for any number)
_FUNCTIONS: dict[str, tuple[str, int, int | None]] = {
    "not": ("feel_not", 1, 1),
    "is defined": ("feel_is_defined", 1, 1),
    "get or else": ("feel_get_or_else", 2, 2),
    "string length": ("feel_string_length", 1, 1),
    "upper case": ("feel_upper_case", 1, 1),
    "lower case": ("feel_lower_case", 1, 1),
    "substring": ("feel_substring", 2, 3),
    "substring before": ("feel_substring_before", 2, 2),
    "substring after": ("feel_substring_after", 2, 2),
    "contains": ("feel_contains", 2, 2),
    "starts with": ("feel_starts_with", 2, 2),
    "ends with": ("feel_ends_with", 2, 2),
    "string join": ("feel_string_join", 1, 2),
    "string": ("feel_string", 1, 1),
    "number": ("feel_number", 1, 1),
    "count": ("feel_count", 1, 1),
    "sum": ("feel_sum", 1, None),
    "min": ("feel_min", 1, None),
    "max": ("feel_max", 1, None),
    "mean": ("feel_mean", 1, None),
    "all": ("feel_all", 1, None),
    "any": ("feel_any", 1, None),
    "list contains": ("feel_list_contains", 2, 2),
    "append": ("feel_append", 1, None),
    "concatenate": ("feel_concatenate", 0, None),
    "distinct values": ("feel_distinct_values", 1, 1),
    "reverse": ("feel_reverse", 1, 1),
    "flatten": ("feel_flatten", 1, 1),
    "index of": ("feel_index_of", 2, 2),
    "sublist": ("feel_sublist", 2, 3),
    "is empty": ("feel_is_empty", 1, 1),
    "abs": ("feel_abs", 1, 1),
    "floor": ("feel_floor", 1, 2),
    "ceiling": ("feel_ceiling", 1, 2),
    "decimal": ("feel_decimal", 2, 2),
    "round up": ("feel_round_up", 2, 2),
    "round down": ("feel_round_down", 2, 2),
    "round half up": ("feel_round_half_up", 2, 2),
    "round half down": ("feel_round_half_down", 2, 2),
    "modulo": ("feel_modulo", 2, 2),
    "sqrt": ("feel_sqrt", 1, 1),
    "odd": ("feel_odd", 1, 1),
    "even": ("feel_even", 1, 1),
}

# Results that are always booleans (or null): a filter holding one of these is a filter, not an index.
_BOOLEAN_FUNCTIONS = frozenset(
    {"not", "is defined", "contains", "starts with", "ends with", "list contains", "all", "any", "is empty"}
    | {"odd", "even"}
)

_TEMPORAL_FUNCTIONS = frozenset(
    {"date", "time", "date and time", "duration", "years and months duration", "day of week", "day of year"}
    | {"week of year", "month of year", "last day of month"}
)
_CLOCK_FUNCTIONS = frozenset({"now", "today"})

# Multi-word names are one token only when followed by `(`, so `a and b` stays three tokens. Known
# unsupported ones are listed too, so that their error names the function rather than a stray word.
_MULTI_WORD = sorted(
    {name for name in [*_FUNCTIONS, *_TEMPORAL_FUNCTIONS] if " " in name}
    | {"get value", "get entries", "context put", "context merge", "insert before", "string format"},
    key=len,
    reverse=True,
)
_MULTI_WORD_PATTERN = re.compile(
    "|".join(r"\s+".join(re.escape(word) for word in name.split()) for name in _MULTI_WORD) + r"(?!\w)(?=\s*\()"
)

# --------------------------------------------------------------------------- tokens


_Value = int | float | str | bool | None


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "string", "name", "op" or "end"
    text: str  # the name or operator; a literal's source text
    value: _Value
    pos: int


# two-character operators first, so that `..` is not read as two dots
_OPERATOR = re.compile(r"\*\*|\.\.|!=|<=|>=|[-+*/=<>()\[\]{},:.?]")
_NOT_FEEL = {
    "==": "'==' is not FEEL; equality is '='",
    "&&": "'&&' is not FEEL; use 'and'",
    "||": "'||' is not FEEL; use 'or'",
    "!": "'!' is not FEEL; use not(...)",
    "%": "'%' is not FEEL; use modulo(a, b)",
    "'": "strings are written in double quotes",
    "`": "names in backticks are not supported",
    "@": "temporal literals ('@\"...\"') are not supported",
}
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t"}
_VALUE_END = frozenset({")", "]", "}"})


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_digit(char: str) -> bool:
    # ASCII only: str.isdigit() also accepts '²' and other scripts' digits
    return char != "" and char in "0123456789"


def _is_name_start(char: str) -> bool:
    return char.isalpha() or char == "_"


def _is_name_part(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Tokenizer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def tokens(self) -> list[_Token]:
        result: list[_Token] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.source):
                result.append(_Token("end", "", None, self.pos))
                return result
            previous = result[-1] if result else None
            result.append(self._token(previous))

    def _skip_space(self) -> None:
        source = self.source
        while self.pos < len(source):
            if source[self.pos].isspace():
                self.pos += 1
            elif source.startswith("//", self.pos):
                end = source.find("\n", self.pos)
                self.pos = len(source) if end < 0 else end + 1
            elif source.startswith("/*", self.pos):
                end = source.find("*/", self.pos + 2)
                if end < 0:
                    raise FeelError("unterminated comment '/*'", self.pos)
                self.pos = end + 2
            else:
                return

    def _token(self, previous: _Token | None) -> _Token:
        source, start = self.source, self.pos
        char = source[start]
        follows_value = previous is not None and (
            previous.kind in ("number", "string", "name") or previous.text in _VALUE_END
        )
        if _is_digit(char) or (
            char == "." and _is_digit(source[start + 1 : start + 2]) and not follows_value and _not_after_dot(previous)
        ):
            return self._number()
        if char == '"':
            return self._string()
        if _is_name_start(char):
            match = _MULTI_WORD_PATTERN.match(source, start)
            if match is not None:
                self.pos = match.end()
                return _Token("name", " ".join(match.group().split()), None, start)
            end = start + 1
            while end < len(source) and _is_name_part(source[end]):
                end += 1
            self.pos = end
            return _Token("name", source[start:end], None, start)
        for text, message in _NOT_FEEL.items():
            if source.startswith(text, start) and not (text == "!" and source.startswith("!=", start)):
                raise FeelError(message, start)
        operator = _OPERATOR.match(source, start)
        if operator is not None:
            self.pos = operator.end()
            return _Token("op", operator.group(), None, start)
        raise FeelError(f"unexpected character {char!r}", start)

    def _number(self) -> _Token:
        source, start = self.source, self.pos
        end = start
        while _is_digit(source[end : end + 1]):
            end += 1
        # a '.' belongs to the number only with digits after it: `1..5` is a range
        if source[end : end + 1] == "." and _is_digit(source[end + 1 : end + 2]):
            end += 1
            while _is_digit(source[end : end + 1]):
                end += 1
        text = source[start:end]
        if end < len(source) and _is_name_part(source[end]):
            word_end = end
            while word_end < len(source) and _is_name_part(source[word_end]):
                word_end += 1
            shown = source[start:word_end]
            raise FeelError(f"invalid number {shown!r} (FEEL numbers have no exponent, names no leading digit)", start)
        if len(text) > MAX_NUMBER_DIGITS:
            raise FeelError(f"number literal longer than {MAX_NUMBER_DIGITS} digits", start)
        self.pos = end
        value: int | float = float(text) if "." in text else int(text)
        return _Token("number", text, value, start)

    def _string(self) -> _Token:
        source, start = self.source, self.pos
        chars: list[str] = []
        index = start + 1
        while True:
            if index >= len(source):
                raise FeelError("unterminated string", start)
            char = source[index]
            if char == '"':
                break
            if char != "\\":
                chars.append(char)
                index += 1
                continue
            escape = source[index + 1 : index + 2]
            if escape in _SIMPLE_ESCAPES:
                chars.append(_SIMPLE_ESCAPES[escape])
                index += 2
            elif escape in ("u", "U"):
                code, index = self._code_point(index, escape)
                chars.append(chr(code))
            else:
                shown = "\\" + escape if escape else "\\"
                raise FeelError(f"unknown escape sequence {shown!r} in string", index)
        self.pos = index + 1
        value = "".join(chars)
        return _Token("string", source[start : index + 1], value, start)

    def _code_point(self, index: int, escape: str) -> tuple[int, int]:
        """`\\uXXXX` (a UTF-16 unit; a surrogate pair makes one character) or `\\UXXXXXX`."""
        size = 4 if escape == "u" else 6
        digits = self.source[index + 2 : index + 2 + size]
        if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise FeelError(f"'\\{escape}' needs {size} hexadecimal digits", index)
        code = int(digits, 16)
        after = index + 2 + size
        if escape == "u" and 0xD800 <= code <= 0xDBFF and self.source.startswith("\\u", after):
            low_digits = self.source[after + 2 : after + 6]
            if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
                low = int(low_digits, 16)
                if 0xDC00 <= low <= 0xDFFF:
                    return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), after + 6
        if 0xD800 <= code <= 0xDFFF:
            # a lone surrogate is not text: process data holding one could not be stored as JSON
            raise FeelError("unpaired surrogate in '\\u' escape", index)
        if code > 0x10FFFF:
            raise FeelError("'\\U' escape beyond U+10FFFF", index)
        return code, after


def _not_after_dot(previous: _Token | None) -> bool:
    # `a..5`, `1...5`: the '.' after a '.' or '..' starts another operator, not `.5`
    return previous is None or previous.text not in (".", "..")


# --------------------------------------------------------------------------- syntax tree


@dataclass
class _Node:
    pos: int
    depth: int = field(init=False, repr=False)

    def children(self) -> Iterator[_Node]:
        return iter(())

    def __post_init__(self) -> None:
        # Computed bottom-up as nodes are built: a long chain `a + b + c + ...` is nested, too.
        self.depth = 1 + max((child.depth for child in self.children()), default=0)
        if self.depth > MAX_DEPTH:
            raise FeelError(f"expression nested more than {MAX_DEPTH} levels deep", self.pos)


@dataclass
class _Literal(_Node):
    value: _Value


@dataclass
class _Name(_Node):
    name: str


@dataclass
class _Path(_Node):
    base: _Node
    key: str

    def children(self) -> Iterator[_Node]:
        yield self.base


@dataclass
class _Filter(_Node):
    base: _Node
    condition: _Node

    def children(self) -> Iterator[_Node]:
        yield self.base
        yield self.condition


@dataclass
class _List(_Node):
    items: list[_Node]

    def children(self) -> Iterator[_Node]:
        yield from self.items


@dataclass
class _Context(_Node):
    entries: list[tuple[str, _Node]]

    def children(self) -> Iterator[_Node]:
        yield from (value for _, value in self.entries)


@dataclass
class _Negation(_Node):
    operand: _Node

    def children(self) -> Iterator[_Node]:
        yield self.operand


@dataclass
class _Binary(_Node):
    operator: str  # + - * / ** = != < <= > >= and or
    left: _Node
    right: _Node

    def children(self) -> Iterator[_Node]:
        yield self.left
        yield self.right


@dataclass
class _Between(_Node):
    value: _Node
    low: _Node
    high: _Node

    def children(self) -> Iterator[_Node]:
        yield from (self.value, self.low, self.high)


@dataclass
class _Interval(_Node):
    low: _Node
    high: _Node
    low_closed: bool
    high_closed: bool

    def children(self) -> Iterator[_Node]:
        yield from (self.low, self.high)


@dataclass
class _In(_Node):
    value: _Node
    tests: list[_Node]

    def children(self) -> Iterator[_Node]:
        yield self.value
        yield from self.tests


@dataclass
class _If(_Node):
    condition: _Node
    then: _Node
    otherwise: _Node

    def children(self) -> Iterator[_Node]:
        yield from (self.condition, self.then, self.otherwise)


@dataclass
class _Iteration(_Node):
    """`for ... return`, `some ... satisfies`, `every ... satisfies`; a source may be an _Interval."""

    kind: str  # "for", "some" or "every"
    sources: list[tuple[str, int, _Node]]  # (name, its position, source)
    body: _Node

    def children(self) -> Iterator[_Node]:
        yield from (source for _, _, source in self.sources)
        yield self.body


@dataclass
class _Call(_Node):
    name: str
    args: list[_Node]

    def children(self) -> Iterator[_Node]:
        yield from self.args


# --------------------------------------------------------------------------- parser

# Binding powers, loosest first, as in feel-scala: or < and < comparisons < + - < * / < **.
_OR, _AND, _COMPARE, _ADD, _MULTIPLY, _POWER = 10, 20, 30, 40, 50, 60
_ARITHMETIC = _COMPARE + 5  # parse an operand of a comparison: arithmetic, no comparison
_INFIX_OPERATORS = {"=": _COMPARE, "!=": _COMPARE, "<": _COMPARE, "<=": _COMPARE, ">": _COMPARE, ">=": _COMPARE}
_INFIX_OPERATORS |= {"+": _ADD, "-": _ADD, "*": _MULTIPLY, "/": _MULTIPLY, "**": _POWER}
_INFIX_WORDS = {"or": _OR, "and": _AND, "between": _COMPARE, "in": _COMPARE, "instance": _COMPARE}
_KEYWORDS = frozenset({"and", "or", "then", "else", "return", "satisfies", "in", "between"})
_OPENERS, _CLOSERS = frozenset({"(", "[", "{"}), frozenset({")", "]", "}"})
_UNARY_TESTS = frozenset({"<", "<=", ">", ">="})


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    if token.kind == "name":
        return f"name '{token.text}'" if token.text not in _KEYWORDS else f"'{token.text}'"
    if token.kind == "number":
        return f"number {token.text}"
    if token.kind == "string":
        shown = token.text if len(token.text) <= 30 else token.text[:27] + '..."'
        return f"string {shown}"
    if token.text == "..":
        return "'..' (ranges are only supported after 'in' and in 'for', 'some' and 'every')"
    return f"'{token.text}'"


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.nesting = 0

    # ---- token helpers

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def ahead(self, offset: int) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, text: str, kind: str = "op") -> bool:
        return self.peek.kind == kind and self.peek.text == text

    def accept(self, text: str, kind: str = "op") -> bool:
        if self.at(text, kind):
            self.advance()
            return True
        return False

    def expect(self, text: str, what: str, kind: str = "op") -> _Token:
        if not self.at(text, kind):
            raise FeelError(f"expected '{text}' {what}, found {_describe(self.peek)}", self.peek.pos)
        return self.advance()

    # ---- entry

    def parse(self) -> _Node:
        if self.peek.kind == "end":
            raise FeelError("empty expression", 0)
        if self.at("=") and self.peek.pos == 0:
            raise FeelError("unexpected '=': pass the FEEL text without its leading '='", 0)
        node = self.expression(0)
        if self.peek.kind != "end":
            raise self._unexpected()
        return node

    def _unexpected(self) -> FeelError:
        token, previous = self.peek, self.tokens[self.index - 1]
        if token.kind == "name" and previous.kind == "name" and token.text not in _KEYWORDS:
            message = f"unexpected name '{token.text}' after '{previous.text}' (names with spaces are not supported)"
            return FeelError(message, token.pos)
        return FeelError(f"unexpected {_describe(token)}", token.pos)

    # ---- expressions (Pratt)

    def expression(self, min_power: int) -> _Node:
        self.nesting += 1
        try:
            if self.nesting > MAX_DEPTH:
                raise FeelError(f"expression nested more than {MAX_DEPTH} levels deep", self.peek.pos)
            left = self.prefix()
            while True:
                token = self.peek
                power = self._infix_power(token)
                if power is None or power <= min_power:
                    return left
                left = self.infix(self.advance(), power, left)
        finally:
            self.nesting -= 1

    @staticmethod
    def _infix_power(token: _Token) -> int | None:
        if token.kind == "op":
            return _INFIX_OPERATORS.get(token.text)
        if token.kind == "name":
            return _INFIX_WORDS.get(token.text)
        return None

    def infix(self, token: _Token, power: int, left: _Node) -> _Node:
        node: _Node
        if power != _COMPARE:
            right = self.expression(power)  # left-associative, `**` too (as in feel-scala)
            return _Binary(token.pos, operator=token.text, left=left, right=right)
        if token.text == "instance":
            raise FeelError("'instance of' is not supported", token.pos)
        if token.text == "between":
            low = self.expression(_ARITHMETIC)
            self.expect("and", "between the bounds of 'between'", kind="name")
            high = self.expression(_ARITHMETIC)
            node = _Between(token.pos, value=left, low=low, high=high)
        elif token.text == "in":
            node = _In(token.pos, value=left, tests=self.in_tests())
        else:
            node = _Binary(token.pos, operator=token.text, left=left, right=self.expression(_ARITHMETIC))
        following = self.peek
        if self._infix_power(following) == _COMPARE:
            raise FeelError(f"comparisons cannot be chained ({_describe(following)}); use 'and'", following.pos)
        return node

    def prefix(self) -> _Node:
        token = self.advance()
        if token.kind in ("number", "string"):
            return self.postfix(_Literal(token.pos, value=token.value))
        if token.kind == "name":
            return self.word(token)
        if token.kind == "end":
            raise FeelError("expression ends where a value is expected", token.pos)
        text = token.text
        if text == "(":
            inner = self.expression(0)
            self.expect(")", f"to close the '(' at position {token.pos}")
            return self.postfix(inner)
        if text == "[":
            return self.postfix(_List(token.pos, items=self.sequence("]", token)))
        if text == "{":
            return self.postfix(self.context(token))
        if text == "-":
            operand = self.expression(_POWER)  # binds tighter than `**`, as in feel-scala: -2 ** 2 = 4
            if isinstance(operand, _Literal) and _is_number(operand.value):
                return _Literal(token.pos, value=-operand.value)
            return _Negation(token.pos, operand=operand)
        if text in _UNARY_TESTS:
            raise FeelError(
                f"unary tests such as '{text} 5' are not supported; write a comparison 'x {text} 5'", token.pos
            )
        if text == "?":
            raise FeelError("'?' (the input value of a unary test) is not supported", token.pos)
        raise FeelError(f"expected a value, found {_describe(token)}", token.pos)

    def word(self, token: _Token) -> _Node:
        name = token.text
        if name in ("true", "false", "null"):
            return self.postfix(_Literal(token.pos, value={"true": True, "false": False, "null": None}[name]))
        if name == "if":
            condition = self.expression(0)
            self.expect("then", "after the condition of 'if'", kind="name")
            then = self.expression(0)
            self.expect("else", "after the 'then' branch of 'if'", kind="name")
            return _If(token.pos, condition=condition, then=then, otherwise=self.expression(0))
        if name == "for":
            sources = self.iteration_sources()
            self.expect("return", "after the lists of 'for'", kind="name")
            return _Iteration(token.pos, kind="for", sources=sources, body=self.expression(0))
        if name in ("some", "every") and self.peek.kind == "name" and self.ahead(1).text == "in":
            sources = self.iteration_sources()
            self.expect("satisfies", f"after the lists of '{name}'", kind="name")
            return _Iteration(token.pos, kind=name, sources=sources, body=self.expression(0))
        if name == "function":
            raise FeelError("function definitions are not supported", token.pos)
        if self.at("("):
            return self.postfix(self.call(token))
        if name in _KEYWORDS:
            raise FeelError(f"expected a value, found '{name}'", token.pos)
        return self.postfix(_Name(token.pos, name=name))

    def iteration_sources(self) -> list[tuple[str, int, _Node]]:
        sources = []
        while True:
            variable = self.advance()
            if variable.kind != "name" or variable.text in _KEYWORDS:
                raise FeelError(
                    f"expected the name of an iteration variable, found {_describe(variable)}", variable.pos
                )
            self.expect("in", f"after '{variable.text}'", kind="name")
            start = self.expression(_ARITHMETIC)
            source = start
            if self.at(".."):
                dots = self.advance()
                source = _Interval(dots.pos, start, self.expression(_ARITHMETIC), True, True)
            sources.append((variable.text, variable.pos, source))
            if not self.accept(","):
                return sources

    def call(self, token: _Token) -> _Node:
        opening = self.advance()
        args: list[_Node] = []
        if not self.accept(")"):
            while True:
                self._refuse_named_argument()
                args.append(self.expression(0))
                if self.accept(")"):
                    break
                self.expect(",", f"or ')' in the arguments of '{token.text}' (opened at position {opening.pos})")
        return _Call(token.pos, name=token.text, args=args)

    def _refuse_named_argument(self) -> None:
        offset = 0
        while self.ahead(offset).kind == "name":
            offset += 1
        if offset and self.ahead(offset).text == ":" and self.ahead(offset).kind == "op":
            raise FeelError("named arguments are not supported; pass the arguments by position", self.peek.pos)

    def sequence(self, closer: str, opening: _Token) -> list[_Node]:
        items: list[_Node] = []
        if self.accept(closer):
            return items
        while True:
            items.append(self.expression(0))
            if self.accept(closer):
                return items
            self.expect(",", f"or '{closer}' in the list opened at position {opening.pos}")

    def context(self, opening: _Token) -> _Node:
        entries: list[tuple[str, _Node]] = []
        seen: set[str] = set()
        if not self.accept("}"):
            while True:
                key_token = self.advance()
                if key_token.kind == "name":
                    key = key_token.text
                elif key_token.kind == "string":
                    key = str(key_token.value)
                else:
                    raise FeelError(
                        f"expected a context key (a name or a string), found {_describe(key_token)}", key_token.pos
                    )
                if key in seen:
                    raise FeelError(f"duplicate context key '{key}'", key_token.pos)
                seen.add(key)
                self.expect(":", f"after the context key '{key}'")
                entries.append((key, self.expression(0)))
                if self.accept("}"):
                    break
                self.expect(",", f"or '}}' in the context opened at position {opening.pos}")
        return _Context(opening.pos, entries=entries)

    def postfix(self, node: _Node) -> _Node:
        while True:
            if self.at("."):
                dot = self.advance()
                key = self.advance()
                if key.kind != "name":
                    raise FeelError(f"expected a name after '.', found {_describe(key)}", key.pos)
                if self.at("("):
                    raise FeelError(f"calling a function through a path ('.{key.text}(...)') is not supported", key.pos)
                if key.text.startswith("_"):
                    # harmless as a lookup (a path reads context entries only), but nothing in process
                    # data starts so, and a model reaching for `__self__` is refused at deploy
                    raise FeelError(f"a path entry may not start with '_': '.{key.text}'", key.pos)
                node = _Path(dot.pos, base=node, key=key.text)
            elif self.at("[") and not self._closes_interval():
                opening = self.advance()
                condition = self.expression(0)
                self.expect("]", f"to close the '[' at position {opening.pos}")
                node = _Filter(opening.pos, base=node, condition=condition)
            else:
                return node

    def _closes_interval(self) -> bool:
        # `]1..5[`: a '[' with nothing to filter by after it ends an interval, it opens no filter
        following = self.ahead(1)
        return (
            following.kind == "end"
            or (following.kind == "op" and following.text in (")", "]", "}", ","))
            or (following.kind == "name" and following.text in _KEYWORDS)
        )

    # ---- the right side of `in`

    def in_tests(self) -> list[_Node]:
        if self.at("(") and not self._interval_ahead():
            opening = self.advance()
            tests = [self.in_test()]
            while self.accept(","):
                tests.append(self.in_test())
            self.expect(")", f"to close the '(' at position {opening.pos}")
            return tests
        return [self.in_test()]

    def in_test(self) -> _Node:
        token = self.peek
        if token.kind == "op" and token.text in ("(", "[", "]") and self._interval_ahead():
            return self.interval()
        if token.kind == "op" and (token.text in _UNARY_TESTS or token.text in ("=", "!=", "?")):
            raise FeelError(f"unary tests such as 'in {token.text} 5' are not supported; write a comparison", token.pos)
        value = self.expression(_ARITHMETIC)
        if self.at(".."):
            dots = self.advance()
            return _Interval(dots.pos, value, self.expression(_ARITHMETIC), True, True)
        return value

    def _interval_ahead(self) -> bool:
        """Does the bracket at the current token open an interval (`[1..5]`, `]1..5[`) rather than a
        list or a parenthesized expression? Looks ahead for `..` inside it, without parsing twice."""
        level, dots = 0, False
        for token in self.tokens[self.index + 1 :]:
            if token.kind == "end":
                return dots  # `[1..5[` ends with an opener
            if token.kind != "op":
                continue
            if token.text == ".." and level == 0:
                dots = True
            elif token.text in _OPENERS:
                level += 1
            elif token.text in _CLOSERS:
                if level == 0:
                    return dots
                level -= 1
            elif token.text == "," and level == 0:
                return False  # `(1..2, 3)`: several tests, the first a bare range
        return dots

    def interval(self) -> _Node:
        opening = self.advance()
        low = self.expression(_ARITHMETIC)
        self.expect("..", "in the interval")
        high = self.expression(_ARITHMETIC)
        closing = self.advance()
        if closing.kind != "op" or closing.text not in (")", "]", "["):
            raise FeelError(f"expected ']', ')' or '[' to close the interval, found {_describe(closing)}", closing.pos)
        return _Interval(
            opening.pos, low=low, high=high, low_closed=opening.text == "[", high_closed=closing.text == "]"
        )


# --------------------------------------------------------------------------- translation


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _call(function: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=_load(function), args=list(args), keywords=[])


def _lambda(body: ast.expr, *params: str) -> ast.Lambda:
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(param) for param in params], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    return ast.Lambda(args=arguments, body=body)


def _variable_problem(name: str) -> str | None:
    """Why `name` cannot be a Python variable in the restricted evaluator, or None if it can."""
    if name.startswith("_"):
        return f"names starting with '_' are not supported ('{name}')"
    if name.startswith("feel_"):
        return f"names starting with 'feel_' are reserved for the FEEL helpers ('{name}')"
    if keyword.iskeyword(name):
        return f"'{name}' is a Python keyword and cannot be used as a variable name"
    if name in _FORBIDDEN_NAMES:
        return f"'{name}' is reserved by the expression evaluator and cannot be used as a variable name"
    if not name.isidentifier() or unicodedata.normalize("NFKC", name) != name:
        return f"'{name}' is not supported as a variable name"
    return None


_COMPARISON_HELPERS = {
    "=": "feel_eq",
    "!=": "feel_ne",
    "<": "feel_lt",
    "<=": "feel_le",
    ">": "feel_gt",
    ">=": "feel_ge",
}
_ARITHMETIC_HELPERS = {"+": "feel_add", "-": "feel_sub", "*": "feel_mul", "/": "feel_div", "**": "feel_pow"}


@dataclass
class _Filtering:
    param: str  # the lambda parameter that holds the element


@dataclass
class _Binding:
    names: frozenset[str]  # iteration variables of for/some/every


class _Translator:
    def __init__(self) -> None:
        self.scopes: list[_Filtering | _Binding] = []

    def expr(self, node: _Node) -> ast.expr:
        method = getattr(self, "visit_" + type(node).__name__.lstrip("_").lower())
        result: ast.expr = method(node)
        return result

    def visit_literal(self, node: _Literal) -> ast.expr:
        return ast.Constant(node.value)

    def visit_name(self, node: _Name, defined: bool = False) -> ast.expr:
        items: list[ast.expr] = []
        for scope in reversed(self.scopes):
            if isinstance(scope, _Binding) and node.name in scope.names:
                break
            if isinstance(scope, _Filtering):
                items.append(_load(scope.param))
        problem = _variable_problem(node.name)
        if not items:
            if problem is not None:
                raise FeelError(problem, node.pos)
            return _load(node.name)
        # Inside a filter the name may be an entry of the element: look there first, innermost filter
        # first; the variable outside, if Python can name it at all, comes last.
        outside: ast.expr = ast.Constant(None) if problem is not None else _load(node.name)
        helper = "feel_defined_name" if defined else "feel_name"
        return _call(helper, ast.Constant(node.name), _lambda(outside), *items)

    def visit_path(self, node: _Path) -> ast.expr:
        return _call("feel_get", self.expr(node.base), ast.Constant(node.key))

    def _defined(self, node: _Node) -> ast.expr:
        """The argument of `is defined`: missing names and entries raise, so they can be told apart from null."""
        if isinstance(node, _Path):
            return _call("feel_defined_get", self._defined(node.base), ast.Constant(node.key))
        if isinstance(node, _Name):
            return self.visit_name(node, defined=True)
        return self.expr(node)

    def visit_filter(self, node: _Filter) -> ast.expr:
        base = self.expr(node.base)
        condition = node.condition
        if isinstance(condition, _Literal) and _is_number(condition.value):
            return _call("feel_index", base, ast.Constant(condition.value))
        param = f"feel_item{sum(isinstance(scope, _Filtering) for scope in self.scopes) + 1}"
        self.scopes.append(_Filtering(param))
        try:
            predicate = _lambda(self.expr(condition), param)
        finally:
            self.scopes.pop()
        return _call("feel_filter" if _is_boolean(condition) else "feel_select", base, predicate)

    def visit_list(self, node: _List) -> ast.expr:
        return ast.List([self.expr(item) for item in node.items], ast.Load())

    def visit_context(self, node: _Context) -> ast.expr:
        keys: list[ast.expr | None] = [ast.Constant(key) for key, _ in node.entries]
        return ast.Dict(keys, [self.expr(value) for _, value in node.entries])

    def visit_negation(self, node: _Negation) -> ast.expr:
        return _call("feel_neg", self.expr(node.operand))

    def visit_binary(self, node: _Binary) -> ast.expr:
        left, right = self.expr(node.left), self.expr(node.right)
        if node.operator in ("and", "or"):
            return _call(f"feel_{node.operator}", left, _lambda(right))
        helper = _COMPARISON_HELPERS.get(node.operator) or _ARITHMETIC_HELPERS[node.operator]
        return _call(helper, left, right)

    def visit_between(self, node: _Between) -> ast.expr:
        return _call("feel_between", self.expr(node.value), self.expr(node.low), self.expr(node.high))

    def visit_in(self, node: _In) -> ast.expr:
        tests: list[ast.expr] = []
        for test in node.tests:
            if isinstance(test, _Interval):
                bounds = (self.expr(test.low), self.expr(test.high))
                tests.append(
                    _call("feel_range", *bounds, ast.Constant(test.low_closed), ast.Constant(test.high_closed))
                )
            else:
                tests.append(self.expr(test))
        return _call("feel_in", self.expr(node.value), *tests)

    def visit_interval(self, node: _Interval) -> ast.expr:
        raise FeelError("ranges are only supported after 'in' and in 'for', 'some' and 'every'", node.pos)

    def visit_if(self, node: _If) -> ast.expr:
        test = ast.Compare(self.expr(node.condition), [ast.Is()], [ast.Constant(True)])
        return ast.IfExp(test, self.expr(node.then), self.expr(node.otherwise))

    def visit_iteration(self, node: _Iteration) -> ast.expr:
        generators: list[ast.comprehension] = []
        depth = len(self.scopes)
        try:
            for name, pos, source in node.sources:
                problem = _variable_problem(name)
                if problem is not None:
                    raise FeelError(problem, pos)
                if isinstance(source, _Interval):
                    values = _call("feel_range_list", self.expr(source.low), self.expr(source.high))
                else:
                    values = _call("feel_list", self.expr(source))
                generators.append(ast.comprehension(ast.Name(name, ast.Store()), values, [], 0))
                # later sources see the earlier variables, as in a nested Python comprehension
                self.scopes.append(_Binding(frozenset({name})))
            body = self.expr(node.body)
        finally:
            del self.scopes[depth:]
        if node.kind == "for":
            return ast.ListComp(body, generators)
        return _call(f"feel_{node.kind}", ast.GeneratorExp(body, generators))

    def visit_call(self, node: _Call) -> ast.expr:
        name = node.name
        if name in _CLOCK_FUNCTIONS:
            raise FeelError(f"'{name}()' is not deterministic inside a workflow; pass the time as a variable", node.pos)
        if name in _TEMPORAL_FUNCTIONS:
            raise FeelError(f"temporal values ('{name}(...)') are not supported", node.pos)
        if name not in _FUNCTIONS:
            supported = ", ".join(sorted(_FUNCTIONS))
            raise FeelError(f"unknown or unsupported function '{name}' (supported: {supported})", node.pos)
        helper, fewest, most = _FUNCTIONS[name]
        count = len(node.args)
        if count < fewest or (most is not None and count > most):
            expected = str(fewest) if fewest == most else f"{fewest} to {most}" if most else f"at least {fewest}"
            raise FeelError(f"'{name}' takes {expected} argument(s), {count} given", node.pos)
        if name == "is defined":
            return _call(helper, _lambda(self._defined(node.args[0])))
        return _call(helper, *(self.expr(arg) for arg in node.args))


def _is_boolean(node: _Node) -> bool:
    """Is the bracket's content a condition, whatever the element? Then it is a filter, never an index."""
    if isinstance(node, _Binary):
        return node.operator in _COMPARISON_HELPERS or node.operator in ("and", "or")
    if isinstance(node, _Between | _In):
        return True
    if isinstance(node, _Literal):
        return isinstance(node.value, bool)
    if isinstance(node, _Iteration):
        return node.kind != "for"
    if isinstance(node, _Call):
        return node.name in _BOOLEAN_FUNCTIONS
    return False


@lru_cache(maxsize=4096)
def to_python(source: str) -> str:
    """Translate FEEL text (without its leading `=`) into a Python expression for the restricted
    evaluator; the expression calls the helpers of bpmn.feel_runtime.FEEL_FUNCTIONS. Raises FeelError."""
    if len(source) > MAX_LENGTH:
        raise FeelError(f"expression longer than {MAX_LENGTH} characters")
    tree = _Parser(_Tokenizer(source).tokens()).parse()
    body = _Translator().expr(tree)
    code = ast.unparse(ast.fix_missing_locations(ast.Expression(body)))
    try:
        check_code(code, "eval")
    except (SyntaxError, RecursionError) as error:  # Python's own nesting limits, below ours
        raise FeelError("expression nested too deeply") from error
    except UnsafeCodeError as error:  # a translation bug: never hand such code on
        raise FeelError(f"translation refused by the evaluator: {error}") from error
    return code
