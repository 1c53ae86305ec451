"""Domain errors of the journal: each names the field (or file row) it is about."""
from django.core.exceptions import ValidationError


class JournalError(ValidationError):
    """Input the journal refuses: `field` says which input, `message` what is wrong with it.

    A ValidationError with a message dict, so the API's one error handler answers 422 naming the field
    and forms can put the message next to it.
    """

    def __init__(self, field, message):
        self.field = field
        self.problem = message
        super().__init__({field: [message]})

    def __str__(self):
        return f"{self.field}: {self.problem}"


class ImportRejected(Exception):
    """A trade file refused as a whole: `errors` lists each bad row as "row N: reason" (nothing written)."""

    def __init__(self, errors, *, file=None):
        self.errors = list(errors)
        self.file = file
        head = f"{file}: " if file else ""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{head}{self.errors[0] if self.errors else 'rejected'}{more}")
