"""Comparing two versions' answers to the same calls, per command (replay, shadow).

For each command: calls compared, answers that were the same, answers that differ
(with a few examples), new errors (the reference answered, the candidate failed),
errors that went away, errors on both sides, and the mean latency of each side.
Answers are compared as plain data (``msgspec.to_builtins``), so a dataclass from an
inline plugin and the dict a worker sends back compare equal when their fields do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

__all__ = ["CommandComparison", "Comparison", "plain"]

#: examples of a difference kept per command
EXAMPLES: Final = 5


def plain(value: Any) -> Any:
    """``value`` as JSON-like data, for comparing (what cannot be converted, by its repr)."""
    try:
        return msgspec.to_builtins(value, str_keys=True, enc_hook=repr)
    except (TypeError, ValueError, OverflowError):
        return repr(value)


@dataclass(slots=True)
class CommandComparison:
    """One command's figures."""

    calls: int = 0
    same: int = 0
    differ: int = 0
    new_errors: int = 0
    fixed_errors: int = 0
    both_errors: int = 0
    skipped: int = 0
    reference_seconds: float = 0.0
    candidate_seconds: float = 0.0
    timed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference_seconds / self.timed if self.timed else None
        cand = self.candidate_seconds / self.timed if self.timed else None
        return {
            "calls": self.calls,
            "same": self.same,
            "differ": self.differ,
            "new_errors": self.new_errors,
            "fixed_errors": self.fixed_errors,
            "both_errors": self.both_errors,
            "skipped": self.skipped,
            "reference_mean_seconds": ref,
            "candidate_mean_seconds": cand,
            "latency_ratio": cand / ref if ref and cand is not None else None,
            "examples": list(self.examples),
        }


class Comparison:
    """Every command's :class:`CommandComparison`."""

    def __init__(self) -> None:
        self.commands: dict[str, CommandComparison] = {}

    def of(self, command: str) -> CommandComparison:
        c = self.commands.get(command)
        if c is None:
            c = self.commands[command] = CommandComparison()
        return c

    def add(
        self,
        command: str,
        params: dict[str, Any],
        reference: tuple[Any, dict[str, str] | None, float],
        candidate: tuple[Any, dict[str, str] | None, float],
    ) -> str:
        """Compare one call's two answers (result, error, seconds); returns the verdict:
        ``same``, ``differ``, ``new-error``, ``fixed-error`` or ``both-errors``."""
        c = self.of(command)
        c.calls += 1
        c.timed += 1
        c.reference_seconds += reference[2]
        c.candidate_seconds += candidate[2]
        ref_error, cand_error = reference[1], candidate[1]
        if ref_error is None and cand_error is None:
            if plain(reference[0]) == plain(candidate[0]):
                c.same += 1
                return "same"
            c.differ += 1
            verdict = "differ"
        elif ref_error is None:
            c.new_errors += 1
            verdict = "new-error"
        elif cand_error is None:
            c.fixed_errors += 1
            verdict = "fixed-error"
        else:
            c.both_errors += 1
            return "both-errors"
        if len(c.examples) < EXAMPLES:
            c.examples.append(
                {
                    "verdict": verdict,
                    "params": params,
                    "expected": ref_error if ref_error is not None else plain(reference[0]),
                    "got": cand_error if cand_error is not None else plain(candidate[0]),
                }
            )
        return verdict

    def skip(self, command: str) -> None:
        self.of(command).skipped += 1

    @property
    def differences(self) -> int:
        """Answers that differ plus new errors (what fails a replay)."""
        return sum(c.differ + c.new_errors for c in self.commands.values())

    def to_dict(self) -> dict[str, Any]:
        return {name: c.to_dict() for name, c in sorted(self.commands.items())}
