"""Tests of :mod:`orchestrator.tabular` (in-memory CSV decoding)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from orchestrator.errors import DataError
from orchestrator.tabular import describe, parse_csv

SONAR = Path(__file__).resolve().parents[2] / "data" / "sonar" / "sonar.csv"


@pytest.fixture(scope="module")
def sonar_bytes() -> bytes:
    return SONAR.read_bytes()


def test_sonar_shape_classes_counts(sonar_bytes: bytes) -> None:
    table = parse_csv(sonar_bytes, source="sonar.csv")
    assert table.features.shape == (208, 60)
    assert table.features.dtype == np.float32
    assert table.labels.dtype == np.int64
    assert table.labels.shape == (208,)
    assert table.classes == ("M", "R")
    assert table.feature_names == tuple(f"c{i}" for i in range(60))
    assert np.bincount(table.labels).tolist() == [111, 97]
    assert float(table.features.min()) >= 0.0
    assert float(table.features.max()) <= 1.0
    assert table.features[0, 0] == np.float32(0.02)


def test_describe_sonar(sonar_bytes: bytes) -> None:
    table = parse_csv(sonar_bytes)
    info = describe(table, label_column=-1, has_header=None)
    assert info["rows"] == 208
    assert info["features"] == 60
    assert info["classes"] == ["M", "R"]
    assert info["class_counts"] == {"M": 111, "R": 97}
    assert info["label_column"] == -1
    assert len(info["feature_names"]) == 60
    json.dumps(info)  # JSON-able


def test_header_detected_and_label_by_name() -> None:
    data = b"a,label,b\n1,x,2\n3,y,4\n5,x,6\n"
    table = parse_csv(data, label_column="label")
    assert table.feature_names == ("a", "b")
    assert table.classes == ("x", "y")
    assert table.labels.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(table.features, [[1, 2], [3, 4], [5, 6]])
    auto = parse_csv(data, label_column=1)
    assert auto.feature_names == ("a", "b")
    assert auto.n_rows == 3


def test_no_header_detected_and_label_first() -> None:
    table = parse_csv(b"b,1.5,2\na,3,4e-1\r\n", label_column=0)
    assert table.feature_names == ("c1", "c2")
    assert table.classes == ("a", "b")
    assert table.labels.tolist() == [1, 0]
    np.testing.assert_allclose(table.features, [[1.5, 2], [3, 0.4]])


def test_explicit_header_flag_and_blank_lines_and_bom() -> None:
    data = "\ufeff1,2,x\n\n3,4,y\n5,6,x\n".encode()
    table = parse_csv(data, has_header=True)
    assert table.feature_names == ("1", "2")
    assert table.n_rows == 2
    table = parse_csv(data, has_header=False)
    assert table.n_rows == 3
    assert table.feature_names == ("c0", "c1")


def _error(data: bytes, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        parse_csv(data, source="t.csv", **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    assert info.value.diagnostics().startswith("t.csv: ")
    return info.value


def test_not_a_number_names_row_and_column() -> None:
    err = _error(b"a,b,label\n1,2,x\n3,abc,y\n")
    assert err.field == "row 3, column 2"
    assert "not a number: 'abc'" in err.diagnostics()
    assert "row 3, column 2" in err.diagnostics()


def test_not_a_number_with_label_first_counts_file_columns() -> None:
    err = _error(b"x,1,2\ny,3,zz\n", label_column=0)
    assert err.field == "row 2, column 3"


def test_not_a_number_in_a_later_chunk() -> None:
    rows = [b"1,2,x", b"3,4,y"] * 20000 + [b"5,6,x", b"7,oops,y"]
    err = _error(b"\n".join(rows) + b"\n")
    assert err.field == f"row {len(rows)}, column 2"


@pytest.mark.parametrize("text", [b"nan", b"inf", b"-inf", b"1e300", b""])
def test_non_finite_or_empty_feature(text: bytes) -> None:
    err = _error(b"1,2,x\n3," + text + b",y\n")
    assert err.field == "row 2, column 2"


def test_wrong_field_count_names_row_and_counts() -> None:
    err = _error(b"1,2,x\n3,4,y\n5,y\n")
    assert err.field == "row 3"
    assert "expected 3 fields, found 2" in err.diagnostics()


def test_row_number_counts_file_lines_after_blank_lines() -> None:
    err = _error(b"1,2,x\n\n\n3,4,5,y\n")
    assert err.field == "row 4"


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_file(data: bytes) -> None:
    assert "empty" in _error(data).diagnostics()


def test_header_only() -> None:
    assert "no data rows" in _error(b"a,b,label\n").diagnostics()


def test_single_class() -> None:
    err = _error(b"1,2,x\n3,4,x\n")
    assert "one class" in err.diagnostics()
    assert "column 3" in err.diagnostics()


def test_empty_label() -> None:
    err = _error(b"1,2,x\n3,4, \n")
    assert err.field == "row 2, column 3"
    assert "empty label" in err.diagnostics()


def test_label_name_missing_or_without_header() -> None:
    assert "no column named" in _error(b"a,b,c\n1,2,x\n", label_column="z").message
    err = _error(b"1,2,x\n3,4,y\n", label_column="c", has_header=False)
    assert "no header" in err.message


def test_label_index_out_of_range() -> None:
    assert "out of range" in _error(b"1,2,x\n3,4,y\n", label_column=3).message
    assert "out of range" in _error(b"1,2,x\n3,4,y\n", label_column=-4).message


def test_invalid_utf8() -> None:
    err = _error(b"1,2,x\n3,4,\xff\n")
    assert "UTF-8" in err.message


@settings(max_examples=60, deadline=None)
@given(
    matrix=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.integers(1, 8)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    data=st.data(),
    header=st.booleans(),
)
def test_round_trip(matrix: np.ndarray, data: st.DataObject, header: bool) -> None:
    n_rows, n_features = matrix.shape
    alphabet = st.text("ABCxyz_-", min_size=1, max_size=4)
    names = data.draw(st.lists(alphabet, min_size=2, max_size=4, unique=True))
    labels = data.draw(st.lists(st.sampled_from(names), min_size=n_rows,
                                max_size=n_rows))
    labels[0] = names[0]  # at least two classes present
    if n_rows == 1:
        matrix = np.vstack([matrix, matrix])
        labels.append(names[1])
        n_rows = 2
    elif len(set(labels)) < 2:
        labels[1] = names[1]
    position = data.draw(st.integers(0, n_features))
    lines = []
    if header:
        cols = [f"f{i}" for i in range(n_features)]
        cols.insert(position, "label")
        lines.append(",".join(cols))
    for row, label in zip(matrix, labels, strict=True):
        fields = [repr(float(v)) for v in row]
        fields.insert(position, label)
        lines.append(",".join(fields))
    table = parse_csv("\n".join(lines).encode(), label_column=position)
    np.testing.assert_array_equal(table.features, matrix)
    assert table.classes == tuple(sorted(set(labels)))
    assert [table.classes[i] for i in table.labels] == labels
    if header:
        assert table.feature_names == tuple(f"f{i}" for i in range(n_features))


@pytest.mark.parametrize("wrap", [bytearray, lambda b: memoryview(bytearray(b))])
def test_mutable_buffers_parse_in_place_like_bytes(sonar_bytes: bytes,
                                                   wrap: Any) -> None:
    """The enclave parses its decrypted buffer in place, then wipes it: same table,
    same diagnostics as for ``bytes``."""
    expected = parse_csv(sonar_bytes)
    buffer = wrap(sonar_bytes)
    table = parse_csv(buffer)
    assert np.array_equal(table.features, expected.features)
    assert np.array_equal(table.labels, expected.labels)
    assert table.classes == expected.classes
    buffer[:] = bytes(len(buffer))  # the caller's wipe leaves the table intact
    assert np.array_equal(table.features, expected.features)
    for bad in (b"a,b\n1,x\n2,y\n3,\xff\n", b"1,2,x\n3,abc,y\n"):
        with pytest.raises(DataError) as want:
            parse_csv(bad)
        with pytest.raises(DataError) as got:
            parse_csv(wrap(bad))
        assert got.value.diagnostics() == want.value.diagnostics()
