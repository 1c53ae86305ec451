"""Domain errors of the journal: each names the field (or file row) it is about."""
from django.core.exceptions import ValidationError


class JournalError(ValidationError):
    """Input the journal refuses: `field` says which input, `message` what is wrong with it.

    JournalError(field, message) is one problem; JournalError([(field, message), ...]) several found
    at once (independent inputs are all checked before the journal refuses). `problems` lists them all,
    `field` and `problem` are the first. A ValidationError with a message dict, so the API's one error
    handler answers 422 naming each field and forms can put each message next to its field.
    """

    def __init__(self, field, message=None):
        problems = [(field, message)] if message is not None else list(field)
        if not problems:
            raise ValueError("a JournalError needs at least one problem")
        self.problems = problems
        self.field, self.problem = problems[0]
        by_field = {}
        for name, text in problems:
            by_field.setdefault(name, []).append(text)
        super().__init__(by_field)

    def __str__(self):
        return "; ".join(f"{field}: {problem}" for field, problem in self.problems)


class Problems:
    """The problems of one input found so far, so that every independent one is reported at once.

    `value = problems.attempt(parse, text, "field")` keeps a JournalError and gives None instead;
    `problems.add(field, message)` adds one; `problems.raise_any()` raises them together.
    """

    def __init__(self):
        self.items = []

    def add(self, field, message):
        self.items.append((field, message))

    def attempt(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except JournalError as exc:
            self.items.extend(exc.problems)
            return None

    def about(self, *fields):
        """Whether any problem names one of `fields`."""
        return any(name in fields for name, _ in self.items)

    def __bool__(self):
        return bool(self.items)

    def raise_any(self):
        if self.items:
            raise JournalError(self.items)


class ImportRejected(Exception):
    """A trade file refused as a whole (nothing written): `errors` lists each problem as
    "row N: column: reason", at most `limit` of them; `more` counts those left out."""

    def __init__(self, errors, *, file=None, more=0):
        self.errors = list(errors)
        self.file = file
        self.more = more
        head = f"{file}: " if file else ""
        others = len(self.errors) - 1 + more
        tail = f" (and {others} more)" if others > 0 else ""
        super().__init__(f"{head}{self.errors[0] if self.errors else 'rejected'}{tail}")

    @property
    def lines(self):
        """The problems as shown: each listed one, then "and N more" when some were left out."""
        return [*self.errors, *([f"and {self.more} more"] if self.more else [])]
