"""Pratt parser from tokens to the typed expression tree.

The parser checks types as it builds the tree: each call gets the argument
kinds its signature names, strings appear only as arguments, and
``on``/``ignoring`` only join two vectors. Evaluation can then fail only on a
one-to-one matching that finds duplicates or on a scalar argument out of range,
such as ``clamp`` bounds in the wrong order.
"""

from __future__ import annotations

import difflib
import keyword
import re
from typing import NoReturn, cast

from rules.expr._lexer import Token, tokenize
from rules.expr._signatures import (
    FUNCTION_NAMES,
    KPI_SIGNATURE_TEXT,
    SIGNATURES,
    Parameter,
    Signature,
)
from rules.expr._tree import (
    BinaryOperation,
    BinaryOperator,
    Call,
    DurationLiteral,
    Expr,
    Matcher,
    MatchOperator,
    NumberLiteral,
    Selector,
    StringLiteral,
    UnaryOperation,
    UnaryOperator,
    ValueType,
    VectorMatching,
    children,
)
from rules.expr.errors import ExpressionError

MAX_EXPRESSION_LENGTH = 4096
"""Maximum length of an expression text, in characters."""

MAX_NESTING_DEPTH = 64
"""Maximum depth of the expression tree and of nested parentheses."""

# Binding powers: a higher power binds tighter. Comparisons do not chain.
_BINARY_POWERS: dict[str, int] = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "^": 8,
}
_NOT_OPERAND_POWER = 3
_UNARY_OPERAND_POWER = 8
_COMPARISON_POWER = 4
_SET_OPERATORS = frozenset({"and", "or", "unless"})
_WORD_OPERATORS = frozenset({"and", "or", "unless", "not"})
_MATCH_OPERATORS = frozenset({"=", "!=", "=~", "!~"})
_MODIFIERS = frozenset({"on", "ignoring"})
_PYTHON_KEYWORDS = frozenset(keyword.kwlist) - _WORD_OPERATORS


def parse(text: str) -> Expr:
    """Parse a rule expression into a tree of frozen dataclasses.

    Parameters
    ----------
    text : str
        The expression, such as ``kpi("orders", region="eu") > 100``. At most
        ``MAX_EXPRESSION_LENGTH`` characters.

    Returns
    -------
    Expr
        The root node. It yields a scalar or a vector when evaluated.

    Raises
    ------
    ExpressionError
        If the text is empty, too long, nested too deeply, not valid syntax, or
        calls a function with the wrong arguments. ``offset`` points at the
        offending character.
    """
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"The expression is {len(text):,} characters long, more than the "
            f"maximum of {MAX_EXPRESSION_LENGTH:,}; split it into several rules.",
            MAX_EXPRESSION_LENGTH,
        )
    if not text.strip():
        raise ExpressionError(
            'The expression is empty; write one such as kpi("orders") > 100.', 0
        )

    parser = _Parser(text, tokenize(text))
    return parser.parse_all()


def result_type(expr: Expr) -> ValueType:
    """Return what evaluating ``expr`` produces: a scalar or a vector.

    A duration literal on its own counts as ``duration`` and a string literal
    as ``string``; ``parse`` never returns either of them as the root.
    """
    if isinstance(expr, NumberLiteral):
        return "scalar"
    if isinstance(expr, DurationLiteral):
        return "duration"
    if isinstance(expr, StringLiteral):
        return "string"
    if isinstance(expr, Selector):
        return "vector"
    if isinstance(expr, Call):
        if SIGNATURES[expr.function].returns == "vector":
            return "vector"
        return _as_number_type(result_type(expr.arguments[0]))
    if isinstance(expr, UnaryOperation):
        if expr.operator == "not":
            return "scalar"
        return _as_number_type(result_type(expr.operand))
    if expr.operator in _SET_OPERATORS:
        if "vector" in (result_type(expr.left), result_type(expr.right)):
            return "vector"
        return "scalar"
    if "vector" in (result_type(expr.left), result_type(expr.right)):
        return "vector"
    return "scalar"


def _as_number_type(value_type: ValueType) -> ValueType:
    return "vector" if value_type == "vector" else "scalar"


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    return f"{token.kind} {token.text!r}"


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self._text = text
        self._tokens = tokens
        self._index = 0
        self._nesting = 0
        self._types: dict[int, ValueType] = {}
        self._depths: dict[int, int] = {}

    # Token access ------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        index = min(self._index + ahead, len(self._tokens) - 1)
        return self._tokens[index]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _at(self, text: str) -> bool:
        token = self._peek()
        return token.kind in ("operator", "punctuation") and token.text == text

    def _expect(self, text: str, context: str) -> Token:
        if not self._at(text):
            self._raise_unexpected(self._peek(), f"{text!r} {context}")
        return self._advance()

    def _raise_unexpected(self, token: Token, expected: str) -> NoReturn:
        message = f"Expected {expected} but found {_describe(token)}."
        if token.kind == "operator" and token.text == "=":
            message += " Write '==' to compare two values."
        raise ExpressionError(message, token.offset)

    # Node bookkeeping ----------------------------------------------------------

    def _register(self, node: Expr, value_type: ValueType) -> Expr:
        depth = 1 + max(
            (self._depths[id(child)] for child in children(node)), default=0
        )
        if depth > MAX_NESTING_DEPTH:
            self._raise_too_deep(node.offset)
        self._types[id(node)] = value_type
        self._depths[id(node)] = depth
        return node

    def _type(self, node: Expr) -> ValueType:
        return self._types[id(node)]

    def _raise_too_deep(self, offset: int) -> NoReturn:
        raise ExpressionError(
            f"The expression is nested more than {MAX_NESTING_DEPTH} levels "
            "deep (operators, calls and parentheses each count); split it into "
            "several rules.",
            offset,
        )

    # Grammar -------------------------------------------------------------------

    def parse_all(self) -> Expr:
        root = self._expression(0)
        token = self._peek()
        if token.kind != "end":
            self._raise_unexpected(token, "an operator or the end of the expression")
        if self._type(root) == "string":
            raise ExpressionError(
                "The expression is only a string; a rule expression must yield a "
                'number or a vector, such as kpi("orders") > 100.',
                root.offset,
            )
        return root

    def _expression(self, min_power: int) -> Expr:
        self._nesting += 1
        if self._nesting > MAX_NESTING_DEPTH:
            self._raise_too_deep(self._peek().offset)

        left = self._prefix(min_power)
        while True:
            token = self._peek()
            power = _BINARY_POWERS.get(token.text)
            if power is None or token.kind not in ("operator", "name"):
                break
            if power < min_power:
                break
            left = self._binary(left, self._advance(), power)

        self._nesting -= 1
        return left

    def _binary(self, left: Expr, operator: Token, power: int) -> Expr:
        matching = self._modifier()
        right_power = power if operator.text == "^" else power + 1
        right = self._expression(right_power)
        if power == _COMPARISON_POWER:
            following = self._peek()
            if _BINARY_POWERS.get(following.text) == _COMPARISON_POWER:
                raise ExpressionError(
                    f"Comparisons do not chain: {operator.text!r} is followed by "
                    f"{following.text!r}; join two comparisons with 'and', such as "
                    "a > 1 and a < 5.",
                    following.offset,
                )

        node = BinaryOperation(
            operator=cast(BinaryOperator, operator.text),
            left=left,
            right=right,
            matching=matching,
            offset=operator.offset,
        )
        return self._register(node, self._binary_type(node, operator))

    def _binary_type(self, node: BinaryOperation, operator: Token) -> ValueType:
        types = (self._type(node.left), self._type(node.right))
        for operand, operand_type in zip((node.left, node.right), types, strict=True):
            if operand_type == "string":
                raise ExpressionError(
                    f"A string cannot be an operand of {operator.text!r}; strings "
                    'are only arguments of functions, such as kpi("orders").',
                    operand.offset,
                )
        if node.matching is not None and types != ("vector", "vector"):
            raise ExpressionError(
                f"{node.matching.kind}(...) applies only when both sides of "
                f"{operator.text!r} are vectors; remove it or compare two KPI "
                "expressions.",
                operator.offset,
            )

        return "vector" if "vector" in types else "scalar"

    def _modifier(self) -> VectorMatching | None:
        token = self._peek()
        if not (token.kind == "name" and token.text in _MODIFIERS):
            return None
        if not (self._peek(1).kind == "punctuation" and self._peek(1).text == "("):
            return None

        self._advance()
        self._advance()
        labels: list[str] = []
        while not self._at(")"):
            label = self._peek()
            if label.kind != "name":
                self._raise_unexpected(label, f"a label name in {token.text}(...)")
            labels.append(self._advance().text)
            if not self._at(","):
                break
            self._advance()
        self._expect(")", f"to close {token.text}(...)")
        if token.text == "on":
            return VectorMatching(kind="on", labels=tuple(labels))
        return VectorMatching(kind="ignoring", labels=tuple(labels))

    def _prefix(self, min_power: int) -> Expr:
        token = self._peek()
        if token.kind == "number":
            self._advance()
            node: Expr = NumberLiteral(
                value=cast(float, token.value), offset=token.offset
            )
            return self._register(node, "scalar")

        if token.kind == "duration":
            self._advance()
            node = DurationLiteral(
                seconds=cast(float, token.value), text=token.text, offset=token.offset
            )
            return self._register(node, "duration")

        if token.kind == "string":
            self._advance()
            node = StringLiteral(value=cast(str, token.value), offset=token.offset)
            return self._register(node, "string")

        if self._at("("):
            return self._parenthesized()

        if token.kind == "operator" and token.text in ("-", "+"):
            self._advance()
            return self._unary(token, self._expression(_UNARY_OPERAND_POWER))

        if token.kind == "name" and token.text == "not":
            if min_power > _NOT_OPERAND_POWER:
                raise ExpressionError(
                    "Put 'not ...' in parentheses when it is the operand of an "
                    "arithmetic or comparison operator, such as 1 - (not x).",
                    token.offset,
                )
            self._advance()
            return self._unary(token, self._expression(_NOT_OPERAND_POWER))

        if token.kind == "name":
            return self._name(token)

        self._raise_unexpected(token, "a number, a duration, a string or a call")

    def _parenthesized(self) -> Expr:
        opening = self._advance()
        if self._at(")"):
            raise ExpressionError(
                "Empty parentheses '()' are not an expression; put a value "
                "inside them.",
                opening.offset,
            )
        inner = self._expression(0)
        self._expect(")", f"to close the '(' at offset {opening.offset}")
        return inner

    def _unary(self, operator: Token, operand: Expr) -> Expr:
        operand_type = self._type(operand)
        if operand_type == "string":
            raise ExpressionError(
                f"A string cannot be the operand of {operator.text!r}.",
                operand.offset,
            )
        node = UnaryOperation(
            operator=cast(UnaryOperator, operator.text),
            operand=operand,
            offset=operator.offset,
        )
        if operator.text == "not":
            return self._register(node, "scalar")
        return self._register(node, "vector" if operand_type == "vector" else "scalar")

    def _name(self, token: Token) -> Expr:
        name = token.text
        if name in _PYTHON_KEYWORDS:
            raise ExpressionError(
                f"{name!r} is a Python keyword and is not part of the expression "
                "language.",
                token.offset,
            )
        if name in _WORD_OPERATORS:
            raise ExpressionError(f"Expected a value before {name!r}.", token.offset)

        if name in _MODIFIERS:
            raise ExpressionError(
                f"{name}(...) must follow a binary operator between two vectors, "
                "such as a / on(region) b.",
                token.offset,
            )
        if self._peek(1).kind == "punctuation" and self._peek(1).text == "(":
            return self._call()

        if name in SIGNATURES:
            raise ExpressionError(
                f"Function {name!r} must be called with arguments: {SIGNATURES[name]}.",
                token.offset,
            )
        if name == "kpi":
            raise ExpressionError(
                f"Function 'kpi' must be called with arguments: {KPI_SIGNATURE_TEXT}.",
                token.offset,
            )
        raise ExpressionError(
            f"Unknown name {name!r}; bare names are not values. To select a KPI, "
            f'write kpi("{name}").',
            token.offset,
        )

    # Calls ---------------------------------------------------------------------

    def _call(self) -> Expr:
        name = self._advance()
        self._advance()
        positional: list[Expr] = []
        keywords: list[tuple[Token, Token, Expr]] = []
        while not self._at(")"):
            if self._at_keyword_argument():
                keywords.append(self._keyword_argument(name.text))
            else:
                if keywords:
                    raise ExpressionError(
                        f"A positional argument follows a keyword argument in the "
                        f"call of {name.text!r}; put positional arguments first.",
                        self._peek().offset,
                    )
                positional.append(self._expression(0))
            if not self._at(","):
                break
            self._advance()
        self._expect(")", f"or ',' in the call of {name.text!r}")

        if name.text == "kpi":
            return self._selector(name, positional, keywords)
        return self._function_call(name, positional, keywords)

    def _at_keyword_argument(self) -> bool:
        following = self._peek(1)
        return (
            self._peek().kind == "name"
            and following.kind == "operator"
            and following.text in _MATCH_OPERATORS
        )

    def _keyword_argument(self, function: str) -> tuple[Token, Token, Expr]:
        label = self._advance()
        operator = self._advance()
        if function == "kpi" and self._peek().kind != "string":
            raise ExpressionError(
                f"The label matcher {label.text}{operator.text} needs a quoted "
                f'string value, such as {label.text}{operator.text}"eu".',
                self._peek().offset,
            )
        return label, operator, self._expression(0)

    def _selector(
        self,
        name: Token,
        positional: list[Expr],
        keywords: list[tuple[Token, Token, Expr]],
    ) -> Expr:
        if len(positional) != 1 or not isinstance(positional[0], StringLiteral):
            offset = positional[0].offset if positional else name.offset
            raise ExpressionError(
                "kpi() takes the KPI name as one quoted string followed by label "
                f'matchers, such as kpi("orders", region="eu"); it is called as '
                f"{KPI_SIGNATURE_TEXT}.",
                offset,
            )
        kpi_name = positional[0].value
        if not kpi_name:
            raise ExpressionError(
                'The KPI name is empty; write it as kpi("orders").',
                positional[0].offset,
            )

        matchers = tuple(
            self._matcher(label, operator, value) for label, operator, value in keywords
        )
        node = Selector(kpi=kpi_name, matchers=matchers, offset=name.offset)
        return self._register(node, "vector")

    def _matcher(self, label: Token, operator: Token, value: Expr) -> Matcher:
        if not isinstance(value, StringLiteral):
            raise ExpressionError(
                f"The label matcher {label.text}{operator.text} needs a quoted "
                f'string value, such as {label.text}{operator.text}"eu".',
                value.offset,
            )
        match_operator = cast(MatchOperator, operator.text)
        pattern = None
        if match_operator in ("=~", "!~"):
            try:
                pattern = re.compile(value.value)
            except re.error as error:
                raise ExpressionError(
                    f"Invalid regular expression {value.value!r} in the matcher "
                    f"{label.text}{operator.text}: {error}; escape special "
                    'characters with a doubled backslash, such as "eu\\\\.west".',
                    value.offset,
                ) from error
        return Matcher(
            name=label.text, operator=match_operator, value=value.value, pattern=pattern
        )

    def _function_call(
        self,
        name: Token,
        positional: list[Expr],
        keywords: list[tuple[Token, Token, Expr]],
    ) -> Expr:
        signature = SIGNATURES.get(name.text)
        if signature is None:
            raise ExpressionError(_unknown_function_message(name.text), name.offset)

        if len(positional) > len(signature.parameters):
            self._raise_argument_count(signature, name, len(positional) + len(keywords))
        bound: dict[str, Expr] = {
            parameter.name: argument
            for parameter, argument in zip(
                signature.parameters, positional, strict=False
            )
        }
        for label, operator, value in keywords:
            self._bind_keyword(signature, bound, label, operator, value)

        arguments = []
        for parameter in signature.parameters:
            argument = bound.get(parameter.name)
            if argument is None:
                if parameter.default is None:
                    self._raise_argument_count(
                        signature, name, len(positional) + len(keywords)
                    )
                argument = self._register(
                    NumberLiteral(value=parameter.default, offset=name.offset),
                    "scalar",
                )
            self._check_argument(signature, parameter, argument)
            arguments.append(argument)

        node = Call(function=name.text, arguments=tuple(arguments), offset=name.offset)
        if signature.returns == "vector":
            return self._register(node, "vector")
        return self._register(node, _as_number_type(self._type(arguments[0])))

    def _bind_keyword(
        self,
        signature: Signature,
        bound: dict[str, Expr],
        label: Token,
        operator: Token,
        value: Expr,
    ) -> None:
        names = [parameter.name for parameter in signature.parameters]
        if operator.text != "=":
            raise ExpressionError(
                f"Label matchers such as {label.text}{operator.text}... are only "
                f"allowed in kpi(); {signature.name} is called as {signature}.",
                operator.offset,
            )
        if label.text not in names:
            close = difflib.get_close_matches(label.text, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ExpressionError(
                f"Unknown argument {label.text!r} of {signature.name}; {hint}"
                f"It is called as {signature}.",
                label.offset,
            )
        if label.text in bound:
            raise ExpressionError(
                f"Argument {label.text!r} of {signature.name} is given twice; it "
                f"is called as {signature}.",
                label.offset,
            )
        bound[label.text] = value

    def _raise_argument_count(
        self, signature: Signature, name: Token, given: int
    ) -> NoReturn:
        required = sum(
            1 for parameter in signature.parameters if parameter.default is None
        )
        total = len(signature.parameters)
        expected = f"{required}" if required == total else f"{required} to {total}"
        noun = "argument" if total == 1 else "arguments"
        raise ExpressionError(
            f"Function {signature.name!r} takes {expected} {noun} but {given} "
            f"{'was' if given == 1 else 'were'} given; it is called as {signature}.",
            name.offset,
        )

    def _check_argument(
        self, signature: Signature, parameter: Parameter, argument: Expr
    ) -> None:
        argument_type = self._type(argument)
        kind = parameter.kind
        if kind == "selector":
            valid = isinstance(argument, Selector)
        elif kind == "vector":
            valid = argument_type == "vector"
        elif kind == "number":
            valid = argument_type != "string"
        elif kind == "scalar":
            valid = argument_type in ("scalar", "duration")
        elif kind == "duration":
            valid = isinstance(argument, DurationLiteral)
        else:
            valid = isinstance(argument, StringLiteral) and bool(argument.value)
        if not valid:
            raise ExpressionError(
                f"Argument {parameter.name!r} of {signature.name} must be "
                f"{parameter.describe_kind()}; it is called as {signature}.",
                argument.offset,
            )
        if isinstance(argument, DurationLiteral) and argument.seconds <= 0:
            raise ExpressionError(
                f"The window of {signature.name} must be longer than 0s, such as 5m.",
                argument.offset,
            )


def _unknown_function_message(name: str) -> str:
    close = difflib.get_close_matches(name, FUNCTION_NAMES, n=1)
    if close:
        suggestion = close[0]
        signature = (
            KPI_SIGNATURE_TEXT if suggestion == "kpi" else str(SIGNATURES[suggestion])
        )
        return (
            f"Unknown function {name!r}; did you mean {suggestion!r}? It is called "
            f"as {signature}."
        )
    return f"Unknown function {name!r}; the functions are {', '.join(FUNCTION_NAMES)}."
