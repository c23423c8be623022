"""Decode a labelled numeric CSV held in memory into a :class:`Table`.

Datasets are sealed at rest and only ever decrypted into memory, so this module never
touches the file system: it works on ``bytes`` already in memory (inside an enclave, or
in the CLI just before sealing, to validate and describe a CSV).

The expected layout is the one of the UCI sonar file (Gorman, R. P., and Sejnowski,
T. J. (1988). Analysis of Hidden Units in a Layered Network Trained to Classify Sonar
Targets. Neural Networks 1, 75-89): one row per example, every column a finite number
except one label column holding a class name, with or without a header line.

Rows are parsed with the standard :mod:`csv` module over a streaming UTF-8 text view
and converted to ``float32`` in chunks, so memory stays proportional to the output
array and time linear in the input size.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.errors import DataError


@dataclass(frozen=True)
class Table:
    """A labelled numeric table decoded in memory from a sealed CSV.

    Attributes
    ----------
    features
        ``float32`` array of shape ``(n_rows, n_features)``.
    labels
        ``int64`` array of shape ``(n_rows,)``; values index ``classes``.
    classes
        Class names in index order (sorted by their text), e.g. ``["M", "R"]``.
    feature_names
        ``n_features`` column names (``"c0"``, ``"c1"``, ... for a header-less CSV).
    """

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.features.shape[1])


__all__ = ["Table", "describe", "parse_csv"]

_CHUNK_ROWS = 16384
"""Rows converted to ``float32`` at a time (bounds the Python-object overhead)."""


def _is_number(text: str) -> bool:
    """Return whether ``text`` parses as a finite float."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


class _ViewReader(io.RawIOBase):
    """A read-only raw stream over a buffer, without copying it (``io.BytesIO``
    copies anything but ``bytes``: a second full copy of a decrypted dataset)."""

    def __init__(self, data: bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._view) - self._pos)
        out[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def _rows(data: bytes | bytearray | memoryview,
          source: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank CSV record of ``data``.

    ``line_number`` is the 1-based file line on which the record ends (a quoted field
    may span lines). Raises :class:`DataError` for invalid UTF-8 or CSV syntax.
    """
    raw: io.BytesIO | io.BufferedReader = (
        io.BytesIO(data) if isinstance(data, bytes)
        else io.BufferedReader(_ViewReader(data)))
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise DataError(f"not valid UTF-8 ({exc.reason})", source=source,
                            field=f"row {reader.line_num + 1}") from exc
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", source=source,
                            field=f"row {reader.line_num}") from exc
        if not row or all(not f.strip() for f in row):
            continue  # blank line
        yield reader.line_num, row


def _resolve_label(label_column: int | str, header: list[str] | None, n_fields: int,
                   source: str, line: int) -> int:
    """Return the 0-based index of the label column; raise :class:`DataError`."""
    if isinstance(label_column, str):
        if header is None:
            raise DataError(f"label column {label_column!r} is given by name but the "
                            "CSV has no header", source=source, field=f"row {line}")
        names = [h.strip() for h in header]
        if label_column not in names:
            raise DataError(f"no column named {label_column!r} in the header",
                            source=source, field=f"row {line}")
        return names.index(label_column)
    index = label_column + n_fields if label_column < 0 else label_column
    if not 0 <= index < n_fields or n_fields < 2:
        raise DataError(f"label column {label_column} is out of range for "
                        f"{n_fields} columns (need a label and at least one feature)",
                        source=source, field=f"row {line}")
    return index


def _convert(flat: list[str], lines: list[int], n_features: int, label_index: int,
             source: str) -> npt.NDArray[np.float32]:
    """Convert one chunk of feature strings to a ``(rows, n_features)`` float32 array.

    On failure, locate the first offending field and raise :class:`DataError` naming
    its file row and 1-based file column.
    """
    values: npt.NDArray[np.float64] | None
    try:
        values = np.fromiter(map(float, flat), dtype=np.float64, count=len(flat))
    except ValueError:
        values = None
    if values is not None:
        with np.errstate(over="ignore"):
            out = values.astype(np.float32)
        bad = ~np.isfinite(out)
        if not bad.any():
            return out.reshape(len(lines), n_features)
        first = int(np.flatnonzero(bad)[0])
    else:
        first = next(i for i, f in enumerate(flat) if not _is_number(f))
    row, feature = divmod(first, n_features)
    column = feature + 1 if feature < label_index else feature + 2
    text = flat[first]
    message = (f"not a number: {text!r}" if not _is_number(text)
               else f"not a finite float32 number: {text!r}")
    raise DataError(message, source=source, field=f"row {lines[row]}, column {column}")


def parse_csv(data: bytes | bytearray | memoryview, *, label_column: int | str = -1,
              has_header: bool | None = None, source: str = "<memory>") -> Table:
    """Parse a UTF-8 CSV of numeric features and one class label per row.

    Parameters
    ----------
    data
        The whole CSV file, UTF-8 (a leading byte-order mark is ignored). Blank lines
        are skipped. A ``bytearray`` or ``memoryview`` is read in place (not
        copied), so the caller can wipe it afterwards.
    label_column
        The label column: a 0-based index (negative counts from the end; the default
        ``-1`` is the last column) or, when the CSV has a header, the column's name.
    has_header
        Whether the first row is a header. ``None`` detects it: the first row is a
        header if any field outside the label column is not a finite number (or if
        ``label_column`` is a name).
    source
        Name of the file, used in error diagnostics only.

    Returns
    -------
    Table
        ``features``: ``float32`` array of shape ``(n_rows, n_features)`` (every
        column except the label, in file order); ``labels``: ``int64`` array of shape
        ``(n_rows,)`` indexing ``classes``; ``classes``: the distinct label strings
        (whitespace-stripped) sorted by text; ``feature_names``: the header's names, or
        ``"c0"``, ``"c1"``, ... by file column index when there is no header.

    Raises
    ------
    DataError
        With ``source`` and a ``field`` such as ``"row 17, column 3"`` (1-based file
        line and column) for: invalid UTF-8 or CSV syntax; an empty file or no data
        rows; a row whose field count differs from the first row's; a feature that is
        not a finite number (``float32`` range); an empty label; a label column out of
        range or not in the header; fewer than two classes.
    """
    rows = _rows(data, source)
    first = next(rows, None)
    if first is None:
        raise DataError("the CSV is empty", source=source)
    first_line, first_row = first
    n_fields = len(first_row)

    if isinstance(label_column, str) and has_header is None:
        has_header = True
    header: list[str] | None = None
    if has_header is None:
        index = _resolve_label(label_column, None, n_fields, source, first_line)
        has_header = not all(_is_number(f) for i, f in enumerate(first_row)
                             if i != index)
    if has_header:
        header = first_row
    label_index = _resolve_label(label_column, header, n_fields, source, first_line)
    n_features = n_fields - 1

    if header is not None:
        feature_names = tuple(h.strip() or f"c{i}" for i, h in enumerate(header)
                              if i != label_index)
        data_rows: Iterator[tuple[int, list[str]]] = rows
    else:
        feature_names = tuple(f"c{i}" for i in range(n_fields) if i != label_index)
        data_rows = _chain_first(first, rows)

    class_ids: dict[str, int] = {}
    label_ids: list[int] = []
    chunks: list[npt.NDArray[np.float32]] = []
    flat: list[str] = []
    lines: list[int] = []
    for line, row in data_rows:
        if len(row) != n_fields:
            raise DataError(f"expected {n_fields} fields, found {len(row)}",
                            source=source, field=f"row {line}")
        label = row[label_index].strip()
        if not label:
            raise DataError("empty label", source=source,
                            field=f"row {line}, column {label_index + 1}")
        label_ids.append(class_ids.setdefault(label, len(class_ids)))
        if label_index == n_features:
            flat.extend(row[:label_index])
        else:
            flat.extend(row[:label_index])
            flat.extend(row[label_index + 1:])
        lines.append(line)
        if len(lines) >= _CHUNK_ROWS:
            chunks.append(_convert(flat, lines, n_features, label_index, source))
            flat, lines = [], []
    if lines:
        chunks.append(_convert(flat, lines, n_features, label_index, source))
    if not chunks:
        raise DataError("the CSV has no data rows", source=source)
    if len(class_ids) < 2:
        only = next(iter(class_ids))
        raise DataError(f"only one class ({only!r}); need at least two",
                        source=source, field=f"column {label_index + 1}")

    classes = tuple(sorted(class_ids))
    remap = np.empty(len(class_ids), dtype=np.int64)
    for name, seen in class_ids.items():
        remap[seen] = classes.index(name)
    labels = remap[np.asarray(label_ids, dtype=np.int64)]
    features = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
    return Table(features=features, labels=labels, classes=classes,
                 feature_names=feature_names)


def _chain_first(first: tuple[int, list[str]],
                 rest: Iterator[tuple[int, list[str]]]
                 ) -> Iterator[tuple[int, list[str]]]:
    """Yield ``first`` then everything in ``rest``."""
    yield first
    yield from rest


def describe(table: Table, *, label_column: int | str,
             has_header: bool | None) -> dict[str, Any]:
    """Summarise a parsed table as a JSON-able dataset-manifest fragment.

    Parameters
    ----------
    table
        A table returned by :func:`parse_csv`.
    label_column
        The ``label_column`` argument it was parsed with (index or name).
    has_header
        The ``has_header`` argument it was parsed with (``None``: auto-detected).

    Returns
    -------
    dict
        ``rows`` and ``features`` (ints), ``feature_names`` (list of str),
        ``label_column`` (int or str, as given), ``has_header`` (bool or None, as
        given), ``classes`` (list of str in index order) and ``class_counts``
        (class name -> number of rows).
    """
    counts = np.bincount(table.labels, minlength=len(table.classes))
    return {
        "rows": table.n_rows,
        "features": table.n_features,
        "feature_names": list(table.feature_names),
        "label_column": label_column,
        "has_header": has_header,
        "classes": list(table.classes),
        "class_counts": {name: int(n) for name, n in zip(table.classes, counts,
                                                         strict=True)},
    }
