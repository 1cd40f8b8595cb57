"""Exceptions of the rule expression language."""

from __future__ import annotations

from monitor.errors import KrwatchError


class ExpressionError(KrwatchError):
    """A rule expression is invalid or cannot be evaluated.

    Parameters
    ----------
    message : str
        Full sentence that states what is wrong and how to fix it.
    offset : int
        0-based index into the expression text of the character the error is
        about.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.offset!r})"

    def format(
        self,
        text: str,
        path: str | None = None,
        line: int | None = None,
        column_offset: int = 0,
    ) -> str:
        """Render the error as ``path:line:column: message``, the line and a caret.

        Parameters
        ----------
        text : str
            The expression text that the offset points into.
        path : str, optional
            File the expression was read from; left out when not given.
        line : int, optional
            1-based line in the file where the expression text starts. Without
            it, lines are counted from 1 within the text.
        column_offset : int, default 0
            Columns in the file before the expression text on each of its
            lines, such as the width of ``expr: `` or a block's indentation.

        Returns
        -------
        str
            Three lines: the location and message, the source line and a caret
            under the offending character.
        """
        offset = min(max(self.offset, 0), len(text))
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        if line_end == -1:
            line_end = len(text)
        line_index = text.count("\n", 0, offset)
        source_line = text[line_start:line_end]
        column = offset - line_start

        first_line = 1 if line is None else line
        location = f"{first_line + line_index}:{column + column_offset + 1}"
        if path is not None:
            location = f"{path}:{location}"
        # Tabs are kept in the caret line so the caret stays under the character.
        padding = "".join(
            "\t" if char == "\t" else " " for char in source_line[:column]
        )
        return f"{location}: {self.message}\n{source_line}\n{padding}^"


class EvaluationError(ExpressionError):
    """An expression failed while it was evaluated, for example on a matching.

    The offset points at the operator or function that failed.
    """
