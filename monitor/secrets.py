"""Secret values that never show in logs, errors, reprs or the API."""

from __future__ import annotations


class Secret:
    """A string read from an environment variable, masked everywhere.

    Call ``reveal()`` only where the value is sent to the system it is for.
    """

    __slots__ = ("_value", "variable")

    def __init__(self, value: str, variable: str = "") -> None:
        self._value = value
        self.variable = variable

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
