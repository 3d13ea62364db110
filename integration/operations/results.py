"""The result of an operator action: a level for the admin message and the text."""
from dataclasses import dataclass, field

SUCCESS, WARNING, ERROR = "success", "warning", "error"


@dataclass
class Result:
    """One store's (or binding's) outcome: a level for the admin message and the text."""

    subject: str
    level: str
    text: str
    data: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.level != ERROR

    @property
    def message(self):
        return f"{self.subject}: {self.text}"


def plural(n, word, words=None):
    return f"{n} {word if n == 1 else (words or word + 's')}"


@dataclass
class Outcome:
    """What an operation did: `changed` rows, `left_alone` rows not in a state it applies to."""

    verb: str
    changed: int = 0
    left_alone: int = 0
    stores: list = field(default_factory=list)
    noun: str = "sync"
    note: str = ""

    def message(self):
        text = f"{self.verb}: {plural(self.changed, self.noun)}"
        if self.stores:
            text += f" in {plural(len(self.stores), 'store')}"
        text += "."
        if self.left_alone:
            text += f" {plural(self.left_alone, self.noun)} left alone ({self.why_left_alone})."
        if self.note:
            text += f" {self.note}"
        return text

    why_left_alone = "not failed, held or pending"


def duration(seconds):
    """'45 s', '12 min', '5.0 h', '3.2 days'."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
