"""The result of an operator action: a level for the admin message and the text."""
from dataclasses import dataclass, field

SUCCESS, WARNING, ERROR = "success", "warning", "error"


@dataclass
class Result:
    """What one operator action did, for the admin's message: its level and its text.

    `subject` names what it was about (a store, a binding, an order; empty for an action on many
    rows, whose text says how many). Actions on many rows also say how many they `changed` and
    `left_alone`, and in which `stores`; `data` carries what the caller may show besides.
    """

    subject: str
    level: str
    text: str
    data: dict = field(default_factory=dict)
    changed: int = 0
    left_alone: int = 0
    stores: list = field(default_factory=list)

    @property
    def ok(self):
        return self.level != ERROR

    @property
    def message(self):
        return f"{self.subject}: {self.text}" if self.subject else self.text


def plural(n, word, words=None):
    return f"{n} {word if n == 1 else (words or word + 's')}"


def pending_go_out(waiting):
    if waiting == 1:
        return "its 1 pending sync goes out now."
    return f"its {waiting} pending syncs go out now."


def rows_changed(verb, *, changed=0, left_alone=0, stores=(), noun="sync", note="",
                 why_left_alone="not failed, held or pending"):
    """The `Result` of an action on many rows: `changed` rows, `left_alone` rows not in a state it
    applies to; a warning when nothing changed."""
    stores = list(stores)
    text = f"{verb}: {plural(changed, noun)}"
    if stores:
        text += f" in {plural(len(stores), 'store')}"
    text += "."
    if left_alone:
        text += f" {plural(left_alone, noun)} left alone ({why_left_alone})."
    if note:
        text += f" {note}"
    return Result("", SUCCESS if changed else WARNING, text, changed=changed, left_alone=left_alone, stores=stores)


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
