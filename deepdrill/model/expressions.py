"""Formulas students type: a small grammar, read without eval, compared by meaning.

A formula answer (``s_i - y_i``, ``s*(1 - s)``, ``sqrt(6/(n_in + n_out))``) is text in
the question's named symbols. :func:`parse` reads it with a recursive-descent parser
into a tree of tuples (numbers, the question's symbols, + - * / ^, parentheses, and
the functions exp, log, sqrt, sigmoid, tanh, max), refusing anything else with a
message that says where and what was expected. Nothing a student writes reaches
``eval`` or ``sympify``: the tree is built here and turned into sympy objects by
:func:`to_sympy`.

:func:`equivalent` decides whether two formulas mean the same: evaluated at random
points (a disagreement anywhere proves them different), then confirmed by sympy under
a time limit, its verdicts cached (a class types the same few forms again and again).
Hostile text (deep nesting, 10^9999, towers of powers, names of Python internals) is
refused by the grammar's limits or the size caps, within a bounded time.

>>> equivalent(parse("s_i - y_i", ("s_i", "y_i")), parse("-(y_i - s_i)", ("s_i", "y_i")))
True
>>> parse("s_i - q", ("s_i", "y_i"))
Traceback (most recent call last):
...
deepdrill.model.expressions.FormulaError: unknown name 'q' at character 7; use s_i, y_i (and exp, log, sqrt, sigmoid, tanh, max)
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

MAX_LENGTH = 300  # characters of a formula
MAX_DEPTH = 25  # nesting of parentheses and operators
MAX_TOKENS = 150
MAX_EXPONENT = 100  # of a power whose exponent is a number
MAX_CONSTANT = 1e100  # of a number the formula computes from numbers alone
MAX_DIGITS = 20  # of a number as written
POINTS = 12  # random points a comparison evaluates
MIN_POINTS = 6  # where both formulas must be defined
SYMPY_SECONDS = 2.0
FUNCTIONS = {"exp": 1, "log": 1, "ln": 1, "sqrt": 1, "sigmoid": 1, "tanh": 1, "max": None}

Tree = tuple  # ("num", Fraction) | ("sym", name) | (op, *children) | ("call", f, *args)

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?|([A-Za-z][A-Za-z0-9]*"
                    r"(?:_\{?[A-Za-z0-9]+\}?)?)|(\*\*|[-+*/^(),]))")


class FormulaError(ValueError):
    """Text that is not a formula of the question's symbols (the message says why)."""


def parse(text: Any, symbols: Sequence[str]) -> Tree:
    """The formula's tree, or FormulaError saying where and what was expected."""
    if not isinstance(text, str):
        raise FormulaError("expected a formula written as text, in quotes")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is longer than {MAX_LENGTH} characters")
    tokens = _tokens(text)
    if not tokens:
        raise FormulaError("the formula is empty")
    parser = _Parser(tokens, tuple(symbols), text)
    tree = parser.expression(0)
    if parser.peek() is not None:
        raise parser.error("an operator or the end of the formula")
    return tree


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, position) of each token: num, name or op."""
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            where = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(f"unexpected character {text[where]!r} at character {where + 1}")
        start = m.start(1) if m.group(1) else m.start(3) if m.group(3) else m.start(4)
        if m.group(1):
            digits = m.group(1).replace(".", "").lstrip("0")
            exponent = int(m.group(2) or 0) if len(m.group(2) or "") < 6 else 10 ** 6
            if len(digits) > MAX_DIGITS or abs(exponent) > MAX_EXPONENT:
                raise FormulaError(f"the number at character {start + 1} is too long or too "
                                   f"large for a formula")
            out.append(("num", m.group(0).strip(), start))
        elif m.group(3):
            out.append(("name", m.group(3).replace("{", "").replace("}", ""), start))
        else:
            out.append(("op", "^" if m.group(4) == "**" else m.group(4), start))
        if len(out) > MAX_TOKENS:
            raise FormulaError(f"the formula has more than {MAX_TOKENS} parts")
        pos = m.end()
    return out


class _Parser:
    """Precedence climbing: + - below * / and implicit products, below unary minus,
    below ^ (right associative)."""

    def __init__(self, tokens: list, symbols: tuple[str, ...], text: str):
        self.tokens, self.i, self.symbols, self.text = tokens, 0, symbols, text

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, expected: str) -> FormulaError:
        tok = self.peek()
        if tok is None:
            return FormulaError(f"the formula ends too early; expected {expected}")
        return FormulaError(f"unexpected {tok[1]!r} at character {tok[2] + 1}; expected "
                            f"{expected}")

    def _deeper(self, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise FormulaError(f"the formula nests more than {MAX_DEPTH} levels deep")
        return depth + 1

    def expression(self, depth: int) -> Tree:
        depth = self._deeper(depth)
        tree = self.product(depth)
        while (tok := self.peek()) is not None and tok[1] in "+-" and tok[0] == "op":
            self.take()
            tree = _fold("add" if tok[1] == "+" else "sub", tree, self.product(depth))
        return tree

    def product(self, depth: int) -> Tree:
        tree = self.unary(depth)
        while (tok := self.peek()) is not None:
            if tok[0] == "op" and tok[1] in "*/":
                self.take()
                tree = _fold("mul" if tok[1] == "*" else "div", tree, self.unary(depth))
            elif tok[0] in ("num", "name") or tok[1] == "(":  # 2s_i, s(1 - s)
                tree = _fold("mul", tree, self.unary(depth))
            else:
                break
        return tree

    def unary(self, depth: int) -> Tree:
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in "+-":
            self.take()
            inner = self.unary(self._deeper(depth))
            return inner if tok[1] == "+" else _fold("neg", inner)
        return self.power(depth)

    def power(self, depth: int) -> Tree:
        base = self.atom(depth)
        tok = self.peek()
        if tok is not None and tok[1] == "^":
            self.take()
            return _fold("pow", base, self.unary(self._deeper(depth)))
        return base

    def atom(self, depth: int) -> Tree:
        tok = self.peek()
        if tok is None:
            raise self.error("a number, a symbol or '('")
        kind, value, pos = tok
        if kind == "num":
            self.take()
            return ("num", Fraction(value))
        if kind == "op" and value == "(":
            self.take()
            inner = self.expression(depth)
            self._close()
            return inner
        if kind == "name":
            self.take()
            if value in FUNCTIONS and value not in self.symbols:
                return self.call(value, depth)
            if value not in self.symbols:
                names = ", ".join(self.symbols) or "no symbols"
                raise FormulaError(f"unknown name {value!r} at character {pos + 1}; use "
                                   f"{names} (and exp, log, sqrt, sigmoid, tanh, max)")
            return ("sym", value)
        raise self.error("a number, a symbol or '('")

    def call(self, name: str, depth: int) -> Tree:
        tok = self.peek()
        if tok is None or tok[1] != "(":
            raise self.error(f"'(' after {name}")
        self.take()
        args = [self.expression(depth)]
        while (tok := self.peek()) is not None and tok[1] == ",":
            self.take()
            args.append(self.expression(depth))
        self._close()
        arity = FUNCTIONS[name]
        if (arity is not None and len(args) != arity) or (arity is None and len(args) < 2):
            raise FormulaError(f"{name} takes {arity or 'two or more'} argument(s), "
                               f"not {len(args)}")
        return _fold("call", "log" if name == "ln" else name, *args)

    def _close(self) -> None:
        tok = self.peek()
        if tok is None or tok[1] != ")":
            raise self.error("')'")
        self.take()


def _fold(op: str, *children: Any) -> Tree:
    """A node; computed at once when every child is a number, within MAX_CONSTANT."""
    tree = (op, *children)
    if all(isinstance(c, tuple) and c[0] == "num" for c in children if not isinstance(c, str)):
        if op == "pow" and abs(children[1][1]) > MAX_EXPONENT:
            raise FormulaError(f"an exponent of {float(children[1][1]):g} is too large")
        try:
            value = evaluate(tree, {})
        except (ArithmeticError, ValueError):
            return tree  # 1/0 and the like: left as is, and never equal to anything
        if abs(value) > MAX_CONSTANT:
            raise FormulaError("the formula computes a number too large to be an answer")
    elif op == "pow" and children[1][0] == "num" and abs(children[1][1]) > MAX_EXPONENT:
        raise FormulaError(f"an exponent of {float(children[1][1]):g} is too large")
    return tree


# -- meaning ----------------------------------------------------------------------

def evaluate(tree: Tree, point: dict[str, float]) -> float:
    """The formula's value at a point (floats; ArithmeticError or ValueError off its domain)."""
    op = tree[0]
    if op == "num":
        return float(tree[1])
    if op == "sym":
        return point[tree[1]]
    if op == "call":
        args = [evaluate(a, point) for a in tree[2:]]
        return _CALLS[tree[1]](*args)
    a = evaluate(tree[1], point)
    if op == "neg":
        return -a
    b = evaluate(tree[2], point)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    if a < 0 and b != int(b):
        raise ValueError("a negative number to a fractional power")
    return math.pow(a, b)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x > -700 else 0.0


_CALLS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "sigmoid": _sigmoid,
          "tanh": math.tanh, "max": max}


def names(tree: Tree) -> set[str]:
    if tree[0] == "sym":
        return {tree[1]}
    if tree[0] == "num":
        return set()
    return set().union(*(names(c) for c in tree[1:] if isinstance(c, tuple)))


def equivalent(a: Tree, b: Tree, domain: tuple[float, float] = (0.1, 0.9),
               seed: int = 0) -> bool:
    """Whether two formulas mean the same on ``domain`` (every symbol drawn in it)."""
    symbols = sorted(names(a) | names(b))
    rng = random.Random(seed)
    defined = 0
    for _ in range(POINTS):
        point = {s: rng.uniform(*domain) for s in symbols}
        try:
            x, y = evaluate(a, point), evaluate(b, point)
        except (ArithmeticError, ValueError):
            continue
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        defined += 1
        if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
            return False  # a counterexample settles it
    verdict = _sympy_equal(a, b)
    if verdict is not None:
        return verdict
    return defined >= MIN_POINTS


@functools.lru_cache(maxsize=4096)  # trees are tuples: a class's repeated forms hit it
def _sympy_equal(a: Tree, b: Tree) -> bool | None:
    """True when sympy simplifies the difference to 0 within the time limit; None when it
    does not (or cannot tell): then the numeric verdict stands."""
    try:
        with _time_limit(SYMPY_SECONDS):
            import sympy

            return True if sympy.simplify(to_sympy(a) - to_sympy(b)) == 0 else None
    except (_TimeUp, Exception):  # noqa: BLE001  (sympy gives up in many ways: no verdict)
        return None


def to_sympy(tree: Tree) -> Any:
    """The formula as a sympy expression (built from the tree: no text is sympified)."""
    import sympy

    op = tree[0]
    if op == "num":
        return sympy.Rational(tree[1].numerator, tree[1].denominator)
    if op == "sym":
        return sympy.Symbol(tree[1], positive=True)
    if op == "call":
        args = [to_sympy(a) for a in tree[2:]]
        if tree[1] == "sigmoid":
            return 1 / (1 + sympy.exp(-args[0]))
        return {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "tanh": sympy.tanh,
                "max": sympy.Max}[tree[1]](*args)
    a = to_sympy(tree[1])
    if op == "neg":
        return -a
    b = to_sympy(tree[2])
    return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
            "div": lambda: a / b, "pow": lambda: a ** b}[op]()


class _TimeUp(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM: the main thread on Unix; elsewhere
    the block raises _TimeUp at once and the numeric verdict stands)."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        raise _TimeUp
    def ring(signum: int, frame: Any) -> None:
        raise _TimeUp
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def latex(tree: Tree) -> str:
    """The formula typeset (through sympy's printer)."""
    import sympy

    return sympy.latex(to_sympy(tree))
