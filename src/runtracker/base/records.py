"""The base of runtracker's small value classes.

They are plain classes with `__slots__` and an explicit `__init__`, not dataclasses: `dataclasses` (with the
`inspect` it imports) and the code it generates for each class cost most of `import runtracker`, which every
pipeline pays at start-up (bench/process_costs.py measures it). This base gives them the rest of what a
dataclass would: they show and compare by their fields.
"""

from __future__ import annotations


class Record:
    __slots__: tuple[str, ...] = ()

    def fields(self) -> dict[str, object]:
        """The fields by name, in declaration order."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.fields().items())})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.fields() == other.fields()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]
