"""Tests of the expression tokenizer, parser and error rendering."""

from __future__ import annotations

import pytest

from rules.expr import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    BinaryOperation,
    Call,
    DurationLiteral,
    ExpressionError,
    Matcher,
    NumberLiteral,
    Selector,
    UnaryOperation,
    VectorMatching,
    parse,
    result_type,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("1_000_000", 1_000_000.0),
        ("1e400", float("inf")),
    ],
    ids=[
        "integer",
        "decimal",
        "leading-dot",
        "exponent",
        "negative-exponent",
        "separators",
        "overflow-to-inf",
    ],
)
def test_parse_number_literals(text: str, value: float) -> None:
    node = parse(text)

    assert node == NumberLiteral(value=value, offset=0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("500ms", 0.5),
    ],
    ids=["seconds", "minutes", "combined", "days", "weeks", "milliseconds"],
)
def test_parse_duration_literals(text: str, seconds: float) -> None:
    node = parse(text)

    assert node == DurationLiteral(seconds=seconds, text=text, offset=0)
    assert result_type(node) == "duration"


@pytest.mark.parametrize(
    ("text", "kpi"),
    [
        ('kpi("orders")', "orders"),
        ("kpi('orders')", "orders"),
        ('kpi("a\\"b")', 'a"b'),
        ("kpi('it\\'s')", "it's"),
        ('kpi("tab\\there")', "tab\there"),
        ('kpi("\\x41\\u00e9")', "A\u00e9"),
        ("kpi(`raw\\d`)", "raw\\d"),
    ],
    ids=[
        "double-quotes",
        "single-quotes",
        "escaped-double",
        "escaped-single",
        "tab-escape",
        "hex-escapes",
        "backtick-raw",
    ],
)
def test_parse_string_escapes(text: str, kpi: str) -> None:
    node = parse(text)

    assert isinstance(node, Selector)
    assert node.kpi == kpi


def test_parse_selector_matchers() -> None:
    node = parse(
        'kpi("orders", region="eu", channel!="web", plan=~"pro|team", x!~"a.*")'
    )

    assert isinstance(node, Selector)
    assert node.kpi == "orders"
    assert node.matchers == (
        Matcher(name="region", operator="=", value="eu"),
        Matcher(name="channel", operator="!=", value="web"),
        Matcher(name="plan", operator="=~", value="pro|team"),
        Matcher(name="x", operator="!~", value="a.*"),
    )


@pytest.mark.parametrize(
    ("labels", "matcher", "expected"),
    [
        ((("region", "eu"),), Matcher(name="region", operator="=", value="eu"), True),
        ((), Matcher(name="region", operator="!=", value="eu"), True),
        ((), Matcher(name="region", operator="=", value=""), True),
        (
            (("region", "eu-west"),),
            Matcher(name="region", operator="=~", value="eu"),
            False,
        ),
        (
            (("region", "eu"),),
            Matcher(name="region", operator="!~", value="eu|us"),
            False,
        ),
    ],
    ids=[
        "equal",
        "missing-not-equal",
        "missing-is-empty",
        "regex-anchored",
        "negative-regex",
    ],
)
def test_matcher_matches_labels(
    labels: tuple[tuple[str, str], ...], matcher: Matcher, expected: bool
) -> None:
    assert matcher.matches(labels) is expected


def test_parse_precedence_of_arithmetic() -> None:
    node = parse("1 + 2 * 3 ^ 2")

    assert isinstance(node, BinaryOperation)
    assert node.operator == "+"
    assert isinstance(node.right, BinaryOperation)
    assert node.right.operator == "*"
    assert isinstance(node.right.right, BinaryOperation)
    assert node.right.right.operator == "^"


def test_parse_power_is_right_associative() -> None:
    node = parse("2 ^ 3 ^ 2")

    assert isinstance(node, BinaryOperation)
    assert node.left == NumberLiteral(value=2.0, offset=0)
    assert isinstance(node.right, BinaryOperation)
    assert node.right.operator == "^"


def test_parse_unary_minus_binds_looser_than_power() -> None:
    node = parse("-2 ^ 2")

    assert isinstance(node, UnaryOperation)
    assert node.operator == "-"
    assert isinstance(node.operand, BinaryOperation)


def test_parse_set_operators_bind_looser_than_comparisons() -> None:
    node = parse('kpi("a") > 1 and kpi("b") < 2 or not kpi("c") == 3 unless kpi("d")')

    assert isinstance(node, BinaryOperation)
    assert node.operator == "or"
    assert isinstance(node.left, BinaryOperation)
    assert node.left.operator == "and"
    assert isinstance(node.right, BinaryOperation)
    assert node.right.operator == "unless"
    assert isinstance(node.right.left, UnaryOperation)
    assert node.right.left.operator == "not"


@pytest.mark.parametrize(
    ("text", "matching"),
    [
        (
            'kpi("a") / on(region) kpi("b")',
            VectorMatching(kind="on", labels=("region",)),
        ),
        (
            'kpi("a") / ignoring(channel, plan) kpi("b")',
            VectorMatching(kind="ignoring", labels=("channel", "plan")),
        ),
        ('kpi("a") and on() kpi("b")', VectorMatching(kind="on", labels=())),
    ],
    ids=["on", "ignoring-two", "on-empty"],
)
def test_parse_vector_matching_modifiers(text: str, matching: VectorMatching) -> None:
    node = parse(text)

    assert isinstance(node, BinaryOperation)
    assert node.matching == matching


def test_parse_keyword_arguments_in_signature_order() -> None:
    text = 'quantile_over(window=1h, selector=kpi("x"), q=0.9)'
    node = parse(text)

    assert isinstance(node, Call)
    assert node.function == "quantile_over"
    assert isinstance(node.arguments[0], Selector)
    assert node.arguments[1] == NumberLiteral(value=0.9, offset=text.index("0.9"))
    assert isinstance(node.arguments[2], DurationLiteral)


def test_parse_default_argument_of_round() -> None:
    node = parse('round(kpi("x"))')

    assert isinstance(node, Call)
    assert node.arguments[1].value == 0.0  # type: ignore[union-attr]


def test_parse_allows_whitespace_and_newlines() -> None:
    text = '\n  avg_over(\n    kpi("x"),\n    1h\n  ) > 3\n'
    node = parse(text)

    assert isinstance(node, BinaryOperation)
    assert node.offset == text.index(">")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2", "scalar"),
        ('kpi("x")', "vector"),
        ('abs(kpi("x"))', "vector"),
        ("abs(-1)", "scalar"),
        ('not kpi("x")', "scalar"),
        ('1 and kpi("x")', "vector"),
        ('progress("kr")', "vector"),
        ("5m * 2", "scalar"),
    ],
    ids=[
        "arithmetic",
        "selector",
        "abs-vector",
        "abs-scalar",
        "not-vector",
        "set-mixed",
        "key-result",
        "duration-arithmetic",
    ],
)
def test_result_type_of_expressions(text: str, expected: str) -> None:
    assert result_type(parse(text)) == expected


def test_parse_accepts_maximum_nesting() -> None:
    depth = MAX_NESTING_DEPTH - 1
    node = parse("(" * depth + "1" + ")" * depth)

    assert node == NumberLiteral(value=1.0, offset=depth)


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("", "The expression is empty", 0),
        ("   ", "The expression is empty", 0),
        (
            "1 +",
            "Expected a number, a duration, a string or a call but found the "
            "end of the expression",
            3,
        ),
        (
            "1 2",
            "Expected an operator or the end of the expression but found number '2'",
            2,
        ),
        ('kpi("x") = 1', r"Write '==' to compare two values", 9),
        ("(1 + 2", r"Expected '\)' to close the '\(' at offset 0", 6),
        ("()", r"Empty parentheses '\(\)' are not an expression", 0),
        ("1 < 2 < 3", "Comparisons do not chain", 6),
        ("1.5h", "Invalid number or duration '1.5h'", 0),
        ("1h30", "Invalid number or duration '1h30'", 0),
        ("5x", "Invalid number or duration '5x'", 0),
        ("1__0", "Invalid number or duration '1__0'", 0),
        ("0x10", "Invalid number or duration '0x10'", 0),
        ("30m1h", "give each unit once, from the largest to the smallest", 0),
        ('kpi("orders)', 'Unterminated string; close it with "', 4),
        ('kpi("a\nb")', "Unterminated string at the end of the line", 4),
        (r'kpi("a\d")', r"Invalid escape '\\d' in a string", 6),
        (r'kpi("\x4")', r"takes exactly 2 hexadecimal digits", 5),
        ("1 $ 2", r"Unexpected character '\$'", 2),
        ("1 ** 2", r"Power is written '\^'", 2),
        ("4 // 2", "Floor division", 2),
        ("1 && 2", "Write 'and' instead of '&&'", 2),
        ("1 || 2", "Write 'or' instead of '||'", 2),
        ("!1", "Write 'not' instead of '!'", 0),
        ('orders{region="eu"}', "Braces are not supported", 6),
        ('kpi("a"){region="eu"}', "Braces are not supported", 8),
        ('kpi("a")[5m]', r"Subscripts and lists with '\['", 8),
        ("orders > 1", r'To select a KPI, write kpi\("orders"\)', 0),
        ('1 > "a"', "A string cannot be an operand of '>'", 4),
        ('"a"', "The expression is only a string", 0),
        ("1 + not 2", r"Put 'not \.\.\.' in parentheses", 4),
        ("and 1", "Expected a value before 'and'", 0),
        (
            "rate",
            r"Function 'rate' must be called with arguments: "
            r"rate\(selector, window\)",
            0,
        ),
        ("kpi", r"Function 'kpi' must be called with arguments", 0),
        ("on(region)", r"on\(\.\.\.\) must follow a binary operator", 0),
        (
            "1 / on(region) 2",
            r"on\(\.\.\.\) applies only when both sides of '/' are "
            "vectors",
            2,
        ),
        ('kpi("a") + ignoring(x) 1', r"ignoring\(\.\.\.\) applies only", 9),
        (
            'avg_ovr(kpi("x"), 1h)',
            r"Unknown function 'avg_ovr'; did you mean "
            r"'avg_over'\? It is called as avg_over\(selector, window\)\.",
            0,
        ),
        ('kpy("x")', r"did you mean 'kpi'\? It is called as kpi\(name, ", 0),
        ("zzz(1)", "Unknown function 'zzz'; the functions are kpi, abs, absent", 0),
        (
            'delta(kpi("x"))',
            r"Function 'delta' takes 2 arguments but 1 was given; it "
            r"is called as delta\(selector, window\)\.",
            0,
        ),
        ('last(kpi("x"), 1h)', r"Function 'last' takes 1 argument but 2 were given", 0),
        (
            "round()",
            r"takes 1 to 2 arguments but 0 were given; it is called as "
            r"round\(value, ndigits=0\)",
            0,
        ),
        (
            'round(kpi("x"), digits=2)',
            r"Unknown argument 'digits' of round; did "
            "you mean 'ndigits'",
            16,
        ),
        ('round(kpi("x"), value=2)', "Argument 'value' of round is given twice", 16),
        ('round(value=kpi("x"), 2)', "A positional argument follows a keyword", 22),
        ('avg_over(kpi("x"), 0s)', "must be longer than 0s", 19),
        (
            'avg_over(kpi("x"), 5)',
            "Argument 'window' of avg_over must be a duration literal",
            19,
        ),
        (
            'avg_over(kpi("x") * 2, 5m)',
            "Argument 'selector' of avg_over must be a KPI selector",
            18,
        ),
        ("avg_over(1, 5m)", "Argument 'selector' of avg_over must be a KPI", 9),
        (
            'clamp(kpi("x"), 0, kpi("y"))',
            "Argument 'hi' of clamp must be a number that does not depend on series",
            19,
        ),
        ("absent(1)", "Argument 'vector' of absent must be a vector expression", 7),
        ("progress(kr)", "Unknown name 'kr'", 9),
        (
            'progress("")',
            "Argument 'key_result' of progress must be a quoted string",
            9,
        ),
        ('abs("x")', "Argument 'value' of abs must be a number", 4),
        (
            'round(kpi("x"), ndigits!="a")',
            r"Label matchers such as ndigits!=\.\.\. are "
            "only allowed in kpi",
            23,
        ),
        ("kpi(1)", "kpi\\(\\) takes the KPI name as one quoted string", 4),
        ('kpi("a", "b")', r"kpi\(\) takes the KPI name", 4),
        ('kpi(region="eu")', r"kpi\(\) takes the KPI name", 0),
        ('kpi("")', "The KPI name is empty", 4),
        (
            'kpi("x", region=eu)',
            r'needs a quoted string value, such as region="eu"',
            16,
        ),
        (
            'kpi("x", region=~"eu(")',
            r"Invalid regular expression 'eu\(' in the "
            "matcher region=~",
            17,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_parse_rejects_invalid_text(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        parse(text)

    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        (
            "__import__('os')",
            "Names starting with '__' such as '__import__' are not allowed",
            0,
        ),
        ("().__class__", r"Attribute access with '\.' is not supported", 2),
        ('kpi("a").labels', r"Attribute access with '\.'", 8),
        ("[x for x in y]", r"Subscripts and lists with '\['", 0),
        ("lambda: 1", "':' is not supported", 6),
        ("lambda x", "'lambda' is a Python keyword", 0),
        ("import os", "'import' is a Python keyword", 0),
        ("True", "'True' is a Python keyword", 0),
        ("eval('1')", "Unknown function 'eval'", 0),
        ("exec('1')", "Unknown function 'exec'", 0),
        ("x if 1 else 2", "Unknown name 'x'", 0),
        ("{'a': 1}", "Braces are not supported", 0),
        ("f'{1}'", "Unknown name 'f'", 0),
        ("1; 2", "';' is not supported", 1),
        ('kpi("a") @ 100', "'@' is not supported", 9),
        ("1 # comment", "Comments with '#' are not supported", 2),
    ],
    ids=[
        "dunder-call",
        "dunder-attribute",
        "attribute",
        "comprehension",
        "lambda",
        "lambda-name",
        "import",
        "python-constant",
        "eval",
        "exec",
        "conditional",
        "dict",
        "f-string",
        "semicolon",
        "at-modifier",
        "comment",
    ],
)
def test_parse_rejects_python_syntax(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        parse(text)

    assert caught.value.offset == offset


def test_parse_rejects_too_long_text() -> None:
    text = "1+" * (MAX_EXPRESSION_LENGTH // 2) + "1"

    with pytest.raises(
        ExpressionError, match="4,097 characters long, more than the maximum of 4,096"
    ) as caught:
        parse(text)

    assert caught.value.offset == MAX_EXPRESSION_LENGTH


@pytest.mark.parametrize(
    "text",
    [
        "(" * 2000 + "1" + ")" * 2000,
        "-" * 3000 + "1",
        "not " * 1000 + "1",
        "2^" * 1000 + "2",
        "abs(" * 800 + "1" + ")" * 800,
        "+".join(["1"] * 200),
    ],
    ids=["parentheses", "unary-minus", "not", "power-chain", "calls", "long-sum"],
)
def test_parse_rejects_deep_nesting(text: str) -> None:
    with pytest.raises(ExpressionError, match="nested more than 64 levels deep"):
        parse(text)


def test_parse_ignoring_is_a_label_name_in_matchers() -> None:
    node = parse('kpi("x", on="a", class="b", not="c")')

    assert isinstance(node, Selector)
    assert [matcher.name for matcher in node.matchers] == ["on", "class", "not"]


def test_expression_error_format_single_line() -> None:
    text = 'kpi("orders") > > 1'
    with pytest.raises(ExpressionError) as caught:
        parse(text)

    rendered = caught.value.format(
        text, path="rules/growth.yaml", line=14, column_offset=12
    )

    assert rendered.splitlines() == [
        "rules/growth.yaml:14:29: Expected a number, a duration, a string or a call "
        "but found operator '>'.",
        'kpi("orders") > > 1',
        "                ^",
    ]


def test_expression_error_format_multiline_block() -> None:
    text = 'avg_over(kpi("x"),\n\t1h) +* 2'
    error = ExpressionError("Bad operator.", text.index("*"))

    rendered = error.format(text, line=4, column_offset=6)

    assert rendered.splitlines() == ["5:13: Bad operator.", "\t1h) +* 2", "\t     ^"]


def test_expression_error_format_without_location() -> None:
    error = ExpressionError("Unexpected end.", 3)

    assert error.format("1 +") == "1:4: Unexpected end.\n1 +\n   ^"


def test_expression_error_keeps_fields() -> None:
    error = ExpressionError("Broken.", 7)

    assert error.message == "Broken."
    assert error.offset == 7
    assert str(error) == "Broken."
    assert repr(error) == "ExpressionError('Broken.', 7)"
