"""Domain errors of the market-data app."""


class IngestError(Exception):
    """Input that cannot be ingested; the message names the file and, where known, the row and column.

    Rendered as `sp.csv: row 17, column "close": 'abc' is not a number`.
    """

    def __init__(self, problem, *, file=None, row=None, column=None):
        self.problem = problem
        self.file = file
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self):
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f'column "{self.column}"')
        parts = [self.file] if self.file else []
        if where:
            parts.append(", ".join(where))
        return ": ".join([*parts, self.problem])
