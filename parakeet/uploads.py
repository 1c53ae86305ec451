"""Uploaded files (a trade CSV, a price file), checked before anything parses them.

Django already refuses a request body above DATA_UPLOAD_MAX_MEMORY_SIZE and spools a file above
FILE_UPLOAD_MAX_MEMORY_SIZE to disk; `read_csv_upload` adds the per-upload checks an import needs:
a size limit naming the file, an allowed extension, text that is UTF-8 (a byte-order mark is fine, Excel
writes one), no NUL bytes (a binary file renamed .csv) and a row limit. It returns the decoded text for
`csv` (never eval, pickle or a spreadsheet engine), so a bad file is a clear UploadError, not a 500.
"""
import csv
import io

from django.conf import settings

CSV_EXTENSIONS = (".csv", ".txt")
MAX_ROWS = 200_000
# A CSV field larger than this is not a trade note: refuse it instead of holding it (csv's default is 128 KiB).
MAX_FIELD_CHARS = 10_000


class UploadError(ValueError):
    """An upload that cannot be imported: `name` is the file, `problem` what is wrong; str() says both."""

    def __init__(self, name, problem):
        self.name, self.problem = name, problem
        super().__init__(f"{name}: {problem}")


def read_upload_bytes(upload, *, max_bytes=None, extensions=CSV_EXTENSIONS):
    """The bytes of an uploaded file, never more than the limit read; raises UploadError.

    Checks the extension and the size (the one the client claimed, then what was actually read).
    max_bytes: default settings.UPLOAD_MAX_BYTES.
    """
    name = getattr(upload, "name", None) or "upload"
    limit = settings.UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
    if not name.lower().endswith(tuple(extensions)):
        raise UploadError(name, f"expected a {' or '.join(extensions)} file")
    if upload.size is not None and upload.size > limit:
        raise UploadError(name, f"{upload.size:,} bytes is over the limit of {limit:,} bytes")
    raw = upload.read(limit + 1)  # never more than the limit, whatever size the client claimed
    if len(raw) > limit:
        raise UploadError(name, f"over the limit of {limit:,} bytes")
    return raw


def decode_text(raw, name="upload"):
    """The UTF-8 text of a file's bytes (a byte-order mark is dropped); raises UploadError naming the
    row of the first byte that is not UTF-8, or a NUL byte (a binary file renamed .csv)."""
    if b"\x00" in raw:
        raise UploadError(name, "not a text file (it holds NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UploadError(name, f"row {line} is not UTF-8 text (byte {exc.start + 1}); save the file as "
                          "CSV UTF-8") from None


def read_csv_upload(upload, *, max_bytes=None, max_rows=MAX_ROWS, extensions=CSV_EXTENSIONS):
    """(header, rows) of an uploaded CSV file, rows as lists of strings; raises UploadError.

    upload: a Django UploadedFile (request.FILES[...]). max_bytes: default settings.UPLOAD_MAX_BYTES.
    Row numbers in errors count the header as row 1, as a spreadsheet shows them.
    """
    name = getattr(upload, "name", None) or "upload"
    text = decode_text(read_upload_bytes(upload, max_bytes=max_bytes, extensions=extensions), name)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            if len(rows) >= max_rows + 1:
                raise UploadError(name, f"more than {max_rows:,} rows")
            if any(len(field) > MAX_FIELD_CHARS for field in row):
                raise UploadError(name, f"row {len(rows) + 1} has a field over {MAX_FIELD_CHARS:,} characters")
            rows.append(row)
    except csv.Error as exc:  # e.g. a field over csv's own 128 KiB limit, or a NUL
        raise UploadError(name, f"row {len(rows) + 1}: {exc}") from None
    if not rows:
        raise UploadError(name, "the file is empty")
    return rows[0], rows[1:]
