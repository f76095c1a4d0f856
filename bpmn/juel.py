"""Camunda 7's JUEL expressions (`${...}`, `#{...}`), for the subset that means the same as FEEL.

A whole-value expression is rewritten into FEEL and translated by bpmn/feel.py, so paths, comparisons,
boolean logic and arithmetic behave as they do in Camunda 8 models. Supported: names and dotted paths,
numbers, 'single' or "double" quoted strings, true/false/null, == != < <= > >= (and eq ne lt le gt ge),
&& || ! (and and or not), + - * / (and div), parentheses. Anything else (method calls, indexing, the
conditional operator, empty, mod, `#{}` inside text) is refused at deploy, naming the expression.
"""

from __future__ import annotations

import re

from bpmn import feel

WHOLE = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>\d+(?:\.\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/()])
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"eq": "=", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "and": "and", "or": "or",
             "div": "/"}  # fmt: skip
_SYMBOL_OPS = {"==": "=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "&&": "and", "||": "or",
               "+": "+", "-": "-", "*": "*", "/": "/"}  # fmt: skip
_LITERALS = {"true": "true", "false": "false", "null": "null"}
_REFUSED_WORDS = {"empty", "mod", "instanceof"}


class JuelError(ValueError):
    pass


def is_juel(text: str) -> bool:
    return "${" in text or "#{" in text


def to_python(text: str) -> str:
    """`${...}` as an expression for the restricted evaluator; raises JuelError outside the subset."""
    match = WHOLE.match(text)
    if match is None or is_juel(match.group(1)):
        raise JuelError("only a whole-value expression ${...} is supported, not one inside other text")
    try:
        return feel.to_python(to_feel(match.group(1)))
    except feel.FeelError as err:
        raise JuelError(str(err)) from None


def to_feel(source: str) -> str:
    tokens = _tokens(source)
    if not tokens:
        raise JuelError("the expression is empty")
    out, rest = _sequence(tokens, 0, closing=False)
    if rest != len(tokens):
        raise JuelError(f"unexpected {tokens[rest][1]!r}")
    return out


def _tokens(source: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise JuelError(f"{source[position:].strip()[:20]!r} is outside the supported subset")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def _sequence(tokens: list[tuple[str, str]], at: int, *, closing: bool) -> tuple[str, int]:
    parts: list[str] = []
    while at < len(tokens):
        kind, text = tokens[at]
        if kind == "op" and text == ")":
            if not closing:
                raise JuelError("unbalanced ')'")
            return " ".join(parts), at
        if (kind == "op" and text == "!") or (kind == "path" and text == "not"):
            operand, at = _primary(tokens, at + 1)
            parts.append(f"not({operand})")
            continue
        if kind == "op" and text == "(":
            inner, at = _sequence(tokens, at + 1, closing=True)
            parts.append(f"({inner})")
            at += 1
            continue
        parts.append(_single(kind, text))
        at += 1
    if closing:
        raise JuelError("unbalanced '('")
    return " ".join(parts), at


def _primary(tokens: list[tuple[str, str]], at: int) -> tuple[str, int]:
    """The operand of a `!`: a parenthesised group, a negated operand, a path or a literal."""
    if at >= len(tokens):
        raise JuelError("'!' needs an operand")
    kind, text = tokens[at]
    if kind == "op" and text == "(":
        inner, end = _sequence(tokens, at + 1, closing=True)
        return f"({inner})", end + 1
    if (kind == "op" and text == "!") or (kind == "path" and text == "not"):
        operand, end = _primary(tokens, at + 1)
        return f"not({operand})", end
    return _single(kind, text), at + 1


def _single(kind: str, text: str) -> str:
    if kind == "number":
        return text
    if kind == "string":
        body = text[1:-1].replace("\\'", "'").replace('\\"', '"')
        if '"' in body or "\\" in body:
            raise JuelError(f"string {text} has quotes or backslashes inside")
        return f'"{body}"'
    if kind == "path":
        head = text.split(".", 1)[0]
        if text in _WORD_OPS:
            return _WORD_OPS[text]
        if text in _LITERALS:
            return _LITERALS[text]
        if head in _REFUSED_WORDS or text in _REFUSED_WORDS:
            raise JuelError(f"'{head}' is outside the supported subset")
        return text
    if text in _SYMBOL_OPS:
        return _SYMBOL_OPS[text]
    raise JuelError(f"{text!r} is outside the supported subset")
