"""ROS 2 launch substitutions (`$(var ...)`, `$(env ...)`, `$(eval ...)`, ...) without a ROS install.

Follows the grammar of launch's frontend: `$(name arg arg ...)` with arguments separated by spaces, an argument
either a word (nested substitutions allowed) or a '...' / "..." quoted string that may hold spaces and nested
substitutions; a backslash escapes the next character. Outside substitutions, quotes are plain text.
`command_line` splits an attribute the way launch splits a node's `args` (shell rules on the text, substitution
results never split). `$(eval ...)` runs a small evaluator of the Python expressions launch files use instead of
Python's eval. Anything else is refused with a LaunchFileError.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

PACKAGE = "jepa_ros"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class LaunchFileError(ValueError):
    """The launch file uses something this reader does not support, or lacks a required argument."""


@dataclass(frozen=True)
class Substitution:
    """One `$(kind arg ...)`; each argument is a sequence of text and nested substitutions."""
    kind: str
    args: tuple[tuple["Piece", ...], ...]


Piece = Union[str, Substitution]


@dataclass
class Context:
    """What substitutions read: the launch arguments in scope, the package share folder, the environment."""
    values: dict[str, str]
    share_dir: Path
    environ: Mapping[str, str]


# ---------------------------------------------------------------------------------------------------- parsing
class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def error(self, message: str) -> LaunchFileError:
        return LaunchFileError(f"{message} at character {self.pos + 1} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_substitution(self) -> bool:
        return self.text.startswith("$(", self.pos)

    def char(self) -> str:
        """The next character; a backslash makes the one after it literal."""
        if self.peek() == "\\" and self.pos + 1 < len(self.text):
            self.pos += 2
        else:
            self.pos += 1
        return self.text[self.pos - 1]

    def template(self) -> list[Piece]:
        pieces: list[Piece] = []
        while self.pos < len(self.text):
            pieces.append(self.substitution(None) if self.at_substitution() else self.char())
        return _merge(pieces)

    def substitution(self, quote: str | None) -> Substitution:
        self.pos += 2
        match = _IDENTIFIER.match(self.text, self.pos)
        if not match:
            raise self.error("expected a substitution name after '$('")
        kind, self.pos = match.group(), match.end()
        args: list[tuple[Piece, ...]] = []
        while True:
            c = self.peek()
            if c == ")":
                self.pos += 1
                return Substitution(kind, tuple(args))
            if c != " ":
                raise self.error(f"unterminated $({kind} ...)" if not c else f"unexpected {c!r} in $({kind} ...)")
            while self.peek() == " ":
                self.pos += 1
            if self.peek() not in (")", ""):
                args.append(self.argument(quote))

    def argument(self, quote: str | None) -> tuple[Piece, ...]:
        if quote is None and self.peek() in ("'", '"'):
            return self.quoted(self.peek())
        forbidden = "()" + (quote if quote else "'\"")
        pieces: list[Piece] = []
        while self.peek() not in (" ", ")", ""):
            if self.at_substitution():
                pieces.append(self.substitution(quote))
            elif self.peek() in forbidden:
                raise self.error(f"unexpected {self.peek()!r} in a substitution argument (quote or escape it)")
            else:
                pieces.append(self.char())
        return tuple(_merge(pieces))

    def quoted(self, quote: str) -> tuple[Piece, ...]:
        self.pos += 1
        pieces: list[Piece] = []
        while self.peek() != quote:
            if not self.peek():
                raise self.error(f"unterminated {quote}-quoted argument")
            pieces.append(self.substitution(quote) if self.at_substitution() else self.char())
        self.pos += 1
        return tuple(_merge(pieces))


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join neighbouring text pieces."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str) and out and isinstance(out[-1], str):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def parse(text: str) -> list[Piece]:
    """Split an attribute value into text and substitutions; raises LaunchFileError on a syntax error."""
    return _Parser(text).template()


# ------------------------------------------------------------------------------------------------- evaluation
def resolve(pieces: list[Piece] | tuple[Piece, ...], context: Context) -> str:
    """The attribute value with every substitution performed."""
    return "".join(p if isinstance(p, str) else _perform(p, context) for p in pieces)


def _perform(sub: Substitution, context: Context) -> str:
    handler = _HANDLERS.get(sub.kind)
    if handler is None:
        raise LaunchFileError(f"$({sub.kind} ...) is not supported by this reader "
                              f"(supported: {', '.join(sorted(_HANDLERS))})")
    low, high = _ARITY[sub.kind]
    if not low <= len(sub.args) <= high:
        raise LaunchFileError(f"$({sub.kind} ...) takes {low}..{high} arguments, got {len(sub.args)}")
    return handler([resolve(arg, context) for arg in sub.args], context)


def _var(args: list[str], context: Context) -> str:
    name = args[0]
    if name in context.values:
        return context.values[name]
    if len(args) == 2:
        return args[1]
    raise LaunchFileError(f"$(var {name}): launch argument {name!r} is not declared (before this use) "
                          f"and was not given")


def _env(args: list[str], context: Context) -> str:
    value = context.environ.get(args[0], args[1] if len(args) == 2 else None)
    if value is None:
        raise LaunchFileError(f"$(env {args[0]}): environment variable {args[0]!r} does not exist "
                              f"(give a default: $(env {args[0]} DEFAULT), or use $(optenv ...))")
    return value


def _optenv(args: list[str], context: Context) -> str:
    return context.environ.get(args[0], args[1] if len(args) == 2 else "")


def _find_pkg_share(args: list[str], context: Context) -> str:
    if args[0] != PACKAGE:
        raise LaunchFileError(f"$(find-pkg-share {args[0]}): only {PACKAGE} is known without a ROS install")
    return str(context.share_dir)


def _eval(args: list[str], context: Context) -> str:
    if len(args) == 2 and [m.strip() for m in args[1].split(",")] != ["math"]:
        raise LaunchFileError(f"$(eval ...): only the math module is available in this reader, not {args[1]!r}")
    return str(evaluate_expression(args[0]))


_HANDLERS: dict[str, Callable[[list[str], Context], str]] = {
    "var": _var, "env": _env, "optenv": _optenv, "find-pkg-share": _find_pkg_share, "eval": _eval}
_ARITY = {"var": (1, 2), "env": (1, 2), "optenv": (1, 2), "find-pkg-share": (1, 1), "eval": (1, 2)}


# --------------------------------------------------------------------------------------------- command lines
def command_line(pieces: list[Piece], context: Context) -> list[str]:
    """Split like launch splits `<node args=...>`: shell rules (shlex) on the text between substitutions; a
    substitution's value is never split and joins the text it touches."""
    result: list[str] = []
    current: list[str] = []

    def close() -> None:
        if current:
            result.append("".join(current))
            current.clear()

    for piece in pieces:
        if not isinstance(piece, str):
            current.append(_perform(piece, context))
            continue
        try:
            tokens = shlex.split(piece)
        except ValueError as exc:
            raise LaunchFileError(f"{piece!r}: {exc}") from exc
        if not tokens:
            close()
            continue
        if piece[0].isspace():
            close()
        current.append(tokens[0])
        if len(tokens) > 1:
            close()
            result.extend(tokens[1:-1])
            current.append(tokens[-1])
        if piece[-1].isspace():
            close()
    close()
    return result


def condition(text: str) -> bool:
    """launch's truthiness for `if`/`unless`: 'true' or '1' / 'false' or '0', any case, spaces stripped."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise LaunchFileError(f"{text!r} is not a condition: expected true, 1, false or 0 (any case)")


# ---------------------------------------------------------------------------------------------- $(eval ...)
_ALLOWED = ("literals, arithmetic, comparisons, and/or/not, `x if c else y`, math's functions and constants "
            "(bare or as math.NAME) and abs/min/max/round/len/str/int/float/bool")
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{name: value for name, value in vars(math).items()
       if callable(value) and not name.startswith("_") and name not in ("factorial", "comb", "perm")},
    "abs": abs, "min": min, "max": max, "round": round, "len": len, "str": str, "int": int, "float": float,
    "bool": bool}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf, "nan": math.nan}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
            ast.NotIn: lambda a, b: a not in b}
_MAX_SIZE = 100_000  # bound on big-integer bits and repeated sequences: no expression can exhaust memory or time


def evaluate_expression(expression: str) -> Any:
    """Evaluate the Python expression of a `$(eval ...)` with only the parts listed in `_ALLOWED`; anything
    else (other names, attributes, imports, comprehensions, lambdas, ...) raises LaunchFileError."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise LaunchFileError(f"$(eval {expression!r}): not a Python expression ({exc.msg})") from exc
    try:
        return _Evaluator(expression).visit(tree.body)
    except LaunchFileError:
        raise
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise LaunchFileError(f"$(eval {expression!r}): {type(exc).__name__}: {exc}") from exc


class _Evaluator(ast.NodeVisitor):
    def __init__(self, expression: str):
        self.expression = expression

    def generic_visit(self, node: ast.AST) -> Any:
        raise LaunchFileError(f"$(eval {self.expression!r}): {type(node).__name__} is not allowed in this "
                              f"reader's evaluator (allowed: {_ALLOWED})")

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.visit(e) for e in node.elts)

    def visit_List(self, node: ast.List) -> list:
        return [self.visit(e) for e in node.elts]

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if node.id in _FUNCTIONS:
            return _FUNCTIONS[node.id]
        raise LaunchFileError(f"$(eval {self.expression!r}): unknown name {node.id!r} (a string needs quotes: "
                              f"\"'$(var x)' == 'abc'\")")

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == "math":
            if node.attr in _CONSTANTS:
                return _CONSTANTS[node.attr]
            if node.attr in _FUNCTIONS and hasattr(math, node.attr):
                return _FUNCTIONS[node.attr]
        raise LaunchFileError(f"$(eval {self.expression!r}): attribute {ast.unparse(node)!r} is not allowed")

    def visit_Call(self, node: ast.Call) -> Any:
        if node.keywords:
            raise LaunchFileError(f"$(eval {self.expression!r}): keyword arguments are not allowed")
        function = self.visit(node.func)
        if not any(function is f for f in _FUNCTIONS.values()):
            raise LaunchFileError(f"$(eval {self.expression!r}): {ast.unparse(node.func)!r} is not callable")
        return function(*(self.visit(a) for a in node.args))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        value = self.visit(node.values[0])
        for operand in node.values[1:]:
            if (not value) if isinstance(node.op, ast.And) else value:
                return value
            value = self.visit(operand)
        return value

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        if type(node.op) not in _UNARY:
            return self.generic_visit(node)
        return _UNARY[type(node.op)](self.visit(node.operand))

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        if type(node.op) not in _BINARY:
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and \
                abs(right) * max(1, abs(left).bit_length()) > _MAX_SIZE and abs(left) > 1:
            raise LaunchFileError(f"$(eval {self.expression!r}): {left} ** {right} is too large")
        if isinstance(node.op, ast.Mult):
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and \
                        len(seq) * count > _MAX_SIZE:
                    raise LaunchFileError(f"$(eval {self.expression!r}): repeated sequence is too long")
        return _BINARY[type(node.op)](left, right)

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                return self.generic_visit(op)
            right = self.visit(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)
