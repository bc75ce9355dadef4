r"""The expression grammar of user-declared signals: text in, a checked syntax tree out.

A signal can be declared as an expression over the request's columns::

    [signals.hit_limit]
    expr = "finish_reason == 'length' or output_tokens >= max_tokens"

This module reads such text into a small syntax tree. It is hand-written and
allows only what the grammar below names: nothing of the text is ever pasted
into SQL (``forensics.signals.user`` compiles the tree, binding every literal as
a parameter and quoting every column name). A mistake raises ``ExpressionError``
naming the position (1 = the first character) and what was expected there.

Grammar, loosest binding first::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | test
    test       := sum [ compare sum
                      | "is" ["not"] "null"
                      | ["not"] "in" "[" literal ("," literal)* [","] "]"
                      | ["not"] "between" sum "and" sum ]
    compare    := "==" | "!=" | "<" | "<=" | ">" | ">="
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := "-" unary | atom
    atom       := number | 'text' | "text" | true | false | null
                | name | function "(" expr ("," expr)* ")" | "(" expr ")"
    function   := "len" | "lower" | "contains"

A name is a column: letters, digits, ``_`` and ``.`` (``http.status_code``), or
any text between backticks (`` `latency (ms)` ``). Keywords (``and``, ``or``,
``not``, ``in``, ``is``, ``null``, ``between``, ``true``, ``false``) are read in
any letter case. Numbers are decimal (``30000``, ``0.5``, ``1e3``); text is
quoted with ``'`` or ``"`` (a backslash escapes the quote, ``\``, ``\n`` and
``\t``). Comparisons do not chain (``a < b < c`` is refused: write ``a < b and
b < c``), and ``== null`` is refused in favour of ``is null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal as TypingLiteral

from forensics.errors import ExpressionError

__all__ = [
    "COMPARISONS",
    "FUNCTIONS",
    "KEYWORDS",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_NODES",
    "Between",
    "Binary",
    "Call",
    "Compare",
    "Expr",
    "InList",
    "IsNull",
    "Literal",
    "Name",
    "Node",
    "Unary",
    "names",
    "parse_expression",
    "render",
]

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "between", "true", "false"})
"""Words of the grammar (any letter case); a column with such a name is written in backticks."""

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
"""Comparison operators."""

FUNCTIONS: dict[str, int] = {"len": 1, "lower": 1, "contains": 2}
"""The functions and how many arguments each takes."""

MAX_CHARS = 1000
"""Longest expression read."""

MAX_DEPTH = 48
"""Deepest nesting of parentheses, ``not``, minus signs and calls."""

MAX_NODES = 200
"""Most operators, names and values in one expression."""

Value = float | str | bool | None


@dataclass(frozen=True)
class Node:
    """Where a part of the expression is: its first character (1-based) and its end."""

    pos: int
    """1-based position of its first character."""
    end: int
    """0-based index just after its last character (``text[pos - 1 : end]`` is its source)."""


@dataclass(frozen=True)
class Name(Node):
    """A column."""

    name: str
    """The column's name as written (without backticks)."""


@dataclass(frozen=True)
class Literal(Node):
    """A number, a text, true, false or null."""

    value: Value
    """The value: a finite float, a str, a bool or None."""


@dataclass(frozen=True)
class Unary(Node):
    """``not x`` or ``-x``."""

    op: TypingLiteral["not", "-"]
    """The operator."""
    operand: Expr
    """What it applies to."""


@dataclass(frozen=True)
class Binary(Node):
    """``and``, ``or`` or arithmetic."""

    op: TypingLiteral["and", "or", "+", "-", "*", "/", "%"]
    """The operator."""
    left: Expr
    """Left side."""
    right: Expr
    """Right side."""
    op_pos: int
    """1-based position of the operator."""


@dataclass(frozen=True)
class Compare(Node):
    """``left OP right`` with OP one of ``COMPARISONS``."""

    op: str
    """The operator."""
    left: Expr
    """Left side."""
    right: Expr
    """Right side."""
    op_pos: int
    """1-based position of the operator."""


@dataclass(frozen=True)
class IsNull(Node):
    """``x is null`` / ``x is not null``."""

    operand: Expr
    """What is tested."""
    negated: bool
    """``is not null``."""


@dataclass(frozen=True)
class InList(Node):
    """``x in [a, b]`` / ``x not in [a, b]``."""

    operand: Expr
    """What is tested."""
    items: tuple[Literal, ...]
    """The values, literals all."""
    negated: bool
    """``not in``."""


@dataclass(frozen=True)
class Between(Node):
    """``x between low and high`` (both ends included), or ``not between``."""

    operand: Expr
    """What is tested."""
    low: Expr
    """Lower end."""
    high: Expr
    """Upper end."""
    negated: bool
    """``not between``."""


@dataclass(frozen=True)
class Call(Node):
    """``len(x)``, ``lower(x)``, ``contains(x, y)``."""

    function: str
    """One of ``FUNCTIONS`` (lower case)."""
    args: tuple[Expr, ...]
    """Its arguments."""


Expr = Name | Literal | Unary | Binary | Compare | IsNull | InList | Between | Call
"""Any node of the tree."""


# -- tokens ---------------------------------------------------------------------------

TokenKind = TypingLiteral["number", "text", "name", "word", "op", "end"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str
    """The token as written (for a name: its name; for a keyword: lower case)."""
    value: Value
    pos: int
    """1-based position."""
    end: int
    """0-based end."""


_SINGLE = set("()[],+-*/%")
_DIGITS = "0123456789"
_DIGITS_SET = set(_DIGITS)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "text":
        return f"the text {token.text}"
    return repr(token.text)


class _Tokens:
    """The tokens of one expression, read on demand."""

    def __init__(self, text: str, fail: _Fail) -> None:
        self.text = text
        self.fail = fail
        self.i = 0
        self.peeked: _Token | None = None

    def peek(self) -> _Token:
        if self.peeked is None:
            self.peeked = self._read()
        return self.peeked

    def take(self) -> _Token:
        token = self.peek()
        self.peeked = None
        return token

    def _read(self) -> _Token:
        text = self.text
        while self.i < len(text) and text[self.i].isspace():
            self.i += 1
        start = self.i
        if start >= len(text):
            return _Token("end", "", None, start + 1, start)
        ch = text[start]
        if ch in _DIGITS or (ch == "." and text[start + 1 : start + 2] in _DIGITS_SET):
            return self._number(start)
        if ch in "'\"":
            return self._text(start, ch)
        if ch == "`":
            close = text.find("`", start + 1)
            if close == -1:
                raise self.fail(start + 1, "a name opened with ` is never closed; close it with `")
            name = text[start + 1 : close]
            if not name:
                raise self.fail(start + 1, "`` holds no name; write the column's name between them")
            self.i = close + 1
            return _Token("name", name, None, start + 1, self.i)
        if ch.isalpha() or ch == "_":
            j = start + 1
            while j < len(text) and (text[j].isalnum() or text[j] in "_."):
                j += 1
            word = text[start:j]
            self.i = j
            if word.lower() in KEYWORDS:
                return _Token("word", word.lower(), None, start + 1, j)
            return _Token("name", word, None, start + 1, j)
        for op in COMPARISONS:
            if text.startswith(op, start):
                self.i = start + len(op)
                return _Token("op", op, None, start + 1, self.i)
        if ch in _SINGLE:
            self.i = start + 1
            return _Token("op", ch, None, start + 1, self.i)
        hints = {
            "=": "use == to compare",
            "&": "write and",
            "|": "write or",
            "!": "write not, or != to compare",
        }
        hint = hints.get(ch, "expected a column, a value, an operator or a parenthesis")
        raise self.fail(start + 1, f"{ch!r} is not part of the grammar: {hint}")

    def _number(self, start: int) -> _Token:
        text = self.text
        j = start
        while j < len(text) and text[j] in _DIGITS_SET:
            j += 1
        if j < len(text) and text[j] == ".":
            j += 1
            while j < len(text) and text[j] in _DIGITS_SET:
                j += 1
        if j < len(text) and text[j] in "eE":
            k = j + 1
            if k < len(text) and text[k] in "+-":
                k += 1
            if k < len(text) and text[k] in _DIGITS_SET:
                while k < len(text) and text[k] in _DIGITS_SET:
                    k += 1
                j = k
        if j < len(text) and (text[j].isalnum() or text[j] == "_"):
            raise self.fail(
                start + 1,
                f"{text[start : j + 1]!r} is neither a number nor a name; a name cannot start "
                "with a digit (write it in backticks)",
            )
        value = float(text[start:j])
        if not math.isfinite(value):
            raise self.fail(start + 1, f"{text[start:j]} is not a finite number")
        self.i = j
        return _Token("number", text[start:j], value, start + 1, j)

    def _text(self, start: int, quote: str) -> _Token:
        text = self.text
        out = []
        j = start + 1
        while j < len(text):
            ch = text[j]
            if ch == "\\" and j + 1 < len(text) and text[j + 1] in _ESCAPES:
                out.append(_ESCAPES[text[j + 1]])
                j += 2
                continue
            if ch == quote:
                self.i = j + 1
                return _Token("text", text[start : j + 1], "".join(out), start + 1, j + 1)
            out.append(ch)
            j += 1
        raise self.fail(
            start + 1, f"a text opened with {quote} is never closed; close it with {quote}"
        )


# -- the parser -----------------------------------------------------------------------


class _Fail:
    """Builds the ``ExpressionError`` for one expression."""

    def __init__(self, where: str, signal: str, text: str) -> None:
        self.where, self.signal, self.text = where, signal, text

    def __call__(self, position: int, problem: str, expected: str = "") -> ExpressionError:
        return ExpressionError.at(
            self.where, self.signal, self.text, position, problem, expected=expected
        )


_VALUE = "a value (a column, a number, a 'text', true, false, null, a function or '(')"


class _Parser:
    def __init__(self, text: str, fail: _Fail) -> None:
        self.tokens = _Tokens(text, fail)
        self.fail = fail
        self.depth = 0
        self.nodes = 0

    def parse(self) -> Expr:
        tree = self.or_()
        token = self.tokens.peek()
        if token.kind != "end":
            raise self.fail(
                token.pos,
                f"expected an operator (and, or, ==, +, ...) or the end, found {_describe(token)}",
                "an operator or the end",
            )
        return tree

    def count(self, pos: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(pos, f"the expression has more than {MAX_NODES} parts; split it")

    def deeper(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(pos, f"nested more than {MAX_DEPTH} deep; simplify the expression")

    def word(self, word: str) -> bool:
        token = self.tokens.peek()
        if token.kind == "word" and token.text == word:
            self.tokens.take()
            return True
        return False

    def op(self, *ops: str) -> _Token | None:
        token = self.tokens.peek()
        if token.kind == "op" and token.text in ops:
            return self.tokens.take()
        return None

    def or_(self) -> Expr:
        left = self.and_()
        while True:
            token = self.tokens.peek()
            if not self.word("or"):
                return left
            self.count(token.pos)
            right = self.and_()
            left = Binary(left.pos, right.end, "or", left, right, token.pos)

    def and_(self) -> Expr:
        left = self.not_()
        while True:
            token = self.tokens.peek()
            if not self.word("and"):
                return left
            self.count(token.pos)
            right = self.not_()
            left = Binary(left.pos, right.end, "and", left, right, token.pos)

    def not_(self) -> Expr:
        token = self.tokens.peek()
        if self.word("not"):
            self.count(token.pos)
            self.deeper(token.pos)
            operand = self.not_()
            self.depth -= 1
            return Unary(token.pos, operand.end, "not", operand)
        return self.test()

    def test(self) -> Expr:
        left = self.sum_()
        token = self.tokens.peek()
        compared = self.op(*COMPARISONS)
        if compared is not None:
            self.count(compared.pos)
            right = self.sum_()
            for side in (left, right):
                if isinstance(side, Literal) and side.value is None:
                    raise self.fail(
                        side.pos,
                        f"{compared.text} null is never true; write `x is null` or `x is not null`",
                        "is null",
                    )
            after = self.tokens.peek()
            if after.kind == "op" and after.text in COMPARISONS:
                raise self.fail(
                    after.pos,
                    f"comparisons do not chain; write `a {compared.text} b and b {after.text} c`",
                    "and",
                )
            return Compare(left.pos, right.end, compared.text, left, right, compared.pos)
        if self.word("is"):
            self.count(token.pos)
            negated = self.word("not")
            last = self.tokens.peek()
            if not self.word("null"):
                raise self.fail(
                    last.pos,
                    f"expected null after `is{' not' if negated else ''}`, found {_describe(last)}",
                    "null",
                )
            return IsNull(left.pos, last.end, left, negated)
        negated = False
        if token.kind == "word" and token.text == "not":
            self.tokens.take()
            negated = True
            after = self.tokens.peek()
            if not (after.kind == "word" and after.text in ("in", "between")):
                raise self.fail(
                    after.pos,
                    f"expected in or between after `not`, found {_describe(after)}",
                    "in or between",
                )
        if self.word("in"):
            self.count(token.pos)
            return self.in_list(left, negated)
        if self.word("between"):
            self.count(token.pos)
            low = self.sum_()
            word = self.tokens.peek()
            if not self.word("and"):
                raise self.fail(
                    word.pos,
                    f"expected and between the two ends of between, found {_describe(word)}",
                    "and",
                )
            high = self.sum_()
            return Between(left.pos, high.end, left, low, high, negated)
        return left

    def in_list(self, left: Expr, negated: bool) -> Expr:
        opening = self.tokens.peek()
        if self.op("[") is None:
            raise self.fail(
                opening.pos,
                f"expected [ to open the list of values after in, found {_describe(opening)}",
                "[",
            )
        items: list[Literal] = []
        while True:
            token = self.tokens.peek()
            if token.kind == "op" and token.text == "]" and items:
                self.tokens.take()
                return InList(left.pos, token.end, left, tuple(items), negated)
            item = self.literal()
            if item is None:
                raise self.fail(
                    token.pos,
                    f"expected a value of the list (a number or a 'text'), found {_describe(token)}",
                    "a number or a 'text'",
                )
            self.count(item.pos)
            items.append(item)
            sep = self.tokens.peek()
            if self.op(",") is not None:
                continue
            if sep.kind == "op" and sep.text == "]":
                continue
            raise self.fail(
                sep.pos, f"expected , or ] in the list, found {_describe(sep)}", ", or ]"
            )

    def literal(self) -> Literal | None:
        """A number or text (with an optional minus sign), or None if the next token is not."""
        token = self.tokens.peek()
        if token.kind == "op" and token.text == "-":
            self.tokens.take()
            number = self.tokens.peek()
            if number.kind != "number":
                raise self.fail(number.pos, f"expected a number after -, found {_describe(number)}")
            self.tokens.take()
            return Literal(token.pos, number.end, -float(number.value))  # type: ignore[arg-type]
        if token.kind in ("number", "text"):
            self.tokens.take()
            return Literal(token.pos, token.end, token.value)
        return None

    def sum_(self) -> Expr:
        left = self.product()
        while True:
            token = self.op("+", "-")
            if token is None:
                return left
            self.count(token.pos)
            right = self.product()
            left = Binary(left.pos, right.end, token.text, left, right, token.pos)  # type: ignore[arg-type]

    def product(self) -> Expr:
        left = self.unary()
        while True:
            token = self.op("*", "/", "%")
            if token is None:
                return left
            self.count(token.pos)
            right = self.unary()
            left = Binary(left.pos, right.end, token.text, left, right, token.pos)  # type: ignore[arg-type]

    def unary(self) -> Expr:
        token = self.tokens.peek()
        if self.op("-") is not None:
            self.count(token.pos)
            self.deeper(token.pos)
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and isinstance(operand.value, float):
                return Literal(token.pos, operand.end, -operand.value)
            return Unary(token.pos, operand.end, "-", operand)
        return self.atom()

    def atom(self) -> Expr:
        token = self.tokens.take()
        self.count(token.pos)
        if token.kind in ("number", "text"):
            return Literal(token.pos, token.end, token.value)
        if token.kind == "word" and token.text in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[token.text]
            return Literal(token.pos, token.end, value)
        if token.kind == "name":
            following = self.tokens.peek()
            if following.kind == "op" and following.text == "(":
                return self.call(token)
            return Name(token.pos, token.end, token.text)
        if token.kind == "op" and token.text == "(":
            self.deeper(token.pos)
            inner = self.or_()
            self.depth -= 1
            closing = self.tokens.take()
            if not (closing.kind == "op" and closing.text == ")"):
                raise self.fail(
                    closing.pos,
                    f"expected ) to close the ( at position {token.pos}, found {_describe(closing)}",
                    ")",
                )
            return inner
        raise self.fail(token.pos, f"expected {_VALUE}, found {_describe(token)}", _VALUE)

    def call(self, name: _Token) -> Expr:
        function = name.text.lower()
        if function not in FUNCTIONS:
            known = ", ".join(f"{f}()" for f in FUNCTIONS)
            raise self.fail(name.pos, f"{name.text}() is not a function; functions: {known}", known)
        opening = self.tokens.take()
        self.deeper(opening.pos)
        args: list[Expr] = []
        while True:
            args.append(self.or_())
            sep = self.tokens.take()
            if sep.kind == "op" and sep.text == ",":
                continue
            if sep.kind == "op" and sep.text == ")":
                break
            raise self.fail(
                sep.pos, f"expected , or ) in {function}(...), found {_describe(sep)}", ", or )"
            )
        self.depth -= 1
        wanted = FUNCTIONS[function]
        if len(args) != wanted:
            raise self.fail(
                name.pos,
                f"{function}() takes {wanted} argument{'s' if wanted > 1 else ''}, "
                f"{len(args)} given",
            )
        return Call(name.pos, sep.end, function, tuple(args))


def parse_expression(text: object, *, signal: str = "?", where: str = "mapping") -> Expr:
    """Read an expression into its syntax tree; ``ExpressionError`` naming the position if it cannot.

    Parameters
    ----------
    text
        The expression (anything but a str is refused).
    signal
        The signal's name, for messages.
    where
        Where it is declared (the mapping file), for messages.

    Examples
    --------
    >>> tree = parse_expression("finish_reason == 'length' or output_tokens >= max_tokens")
    >>> tree.op, render(tree.left)
    ('or', "finish_reason == 'length'")
    >>> parse_expression("latency_ms >", signal="slow")
    Traceback (most recent call last):
    ...
    forensics.errors.ExpressionError: mapping: [signals.slow] expr "latency_ms >": position 13: expected a value (a column, a number, a 'text', true, false, null, a function or '('), found the end
    """
    if not isinstance(text, str):
        raise ExpressionError(
            f'{where}: [signals.{signal}] expr must be text, e.g. expr = "latency_ms > 30000"',
            signal=signal,
            expression=str(text),
            position=1,
            expected="text",
        )
    fail = _Fail(where, signal, text)
    if not text.strip():
        raise fail(1, f"the expression is empty; expected {_VALUE}", _VALUE)
    if len(text) > MAX_CHARS:
        raise fail(MAX_CHARS + 1, f"the expression is longer than {MAX_CHARS} characters")
    return _Parser(text, fail).parse()


def names(tree: Expr) -> list[Name]:
    """The column names an expression reads, in order of appearance (each occurrence).

    Examples
    --------
    >>> [n.name for n in names(parse_expression("a > 1 or len(b) < a"))]
    ['a', 'b', 'a']
    """
    out: list[Name] = []

    def visit(node: Expr) -> None:
        if isinstance(node, Name):
            out.append(node)
        elif isinstance(node, Unary):
            visit(node.operand)
        elif isinstance(node, Binary | Compare):
            visit(node.left)
            visit(node.right)
        elif isinstance(node, IsNull | InList):
            visit(node.operand)
        elif isinstance(node, Between):
            visit(node.operand)
            visit(node.low)
            visit(node.high)
        elif isinstance(node, Call):
            for arg in node.args:
                visit(arg)

    visit(tree)
    return out


def _render_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) and abs(value) < 1e15 else repr(value)
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    )
    return f"'{escaped}'"


def _render_name(name: str) -> str:
    plain = (
        (name[:1].isalpha() or name[:1] == "_")
        and all(c.isalnum() or c in "_." for c in name)
        and name.lower() not in KEYWORDS
    )
    return name if plain else f"`{name}`"


def render(tree: Expr) -> str:
    """The expression written back in one canonical form, with the same meaning.

    Parentheses appear only where precedence needs them. Two declarations with the same meaning and layout render alike; ``parse_expression``
    of the rendering gives the same tree shape.

    Examples
    --------
    >>> render(parse_expression("a>1 AND (b=='x' or c is not null)"))
    "a > 1 and (b == 'x' or c is not null)"
    """
    if isinstance(tree, Name):
        return _render_name(tree.name)
    if isinstance(tree, Literal):
        return _render_value(tree.value)
    if isinstance(tree, Unary):
        inner = render(tree.operand)
        if not isinstance(tree.operand, Name | Literal | Call):
            inner = f"({inner})"
        return f"not {inner}" if tree.op == "not" else f"-{inner}"
    if isinstance(tree, Binary):
        return f"{_side(tree.left, tree)} {tree.op} {_side(tree.right, tree)}"
    if isinstance(tree, Compare):
        return f"{_side(tree.left, tree)} {tree.op} {_side(tree.right, tree)}"
    if isinstance(tree, IsNull):
        return f"{_side(tree.operand, tree)} is {'not ' if tree.negated else ''}null"
    if isinstance(tree, InList):
        items = ", ".join(_render_value(i.value) for i in tree.items)
        return f"{_side(tree.operand, tree)} {'not ' if tree.negated else ''}in [{items}]"
    if isinstance(tree, Between):
        word = "not between" if tree.negated else "between"
        low, high = (_side(x, tree) for x in (tree.low, tree.high))
        return f"{_side(tree.operand, tree)} {word} {low} and {high}"
    return f"{tree.function}({', '.join(render(a) for a in tree.args)})"


_LEVEL = {"or": 1, "and": 2, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


def _level(node: Expr) -> int:
    if isinstance(node, Binary):
        return _LEVEL[node.op]
    if isinstance(node, Unary):
        return 3 if node.op == "not" else 7
    if isinstance(node, Compare | IsNull | InList | Between):
        return 4
    return 8


def _side(child: Expr, parent: Expr) -> str:
    """A child rendered, in parentheses when it binds no tighter than its parent."""
    text = render(child)
    left_associative = (
        isinstance(child, Binary)
        and isinstance(parent, Binary)
        and child is parent.left
        and _level(child) == _level(parent)
    )
    if _level(child) <= _level(parent) and not left_associative:
        return f"({text})"
    return text
