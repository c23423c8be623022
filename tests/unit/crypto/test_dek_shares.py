"""n-of-n DEK shares: all shares rebuild the DEK; any proper subset does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.crypto import combine_dek_shares, split_dek
from orchestrator.errors import ConfigError


@given(
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=1, max_value=6),
    st.randoms(),
)
def test_all_shares_in_any_order_rebuild_the_dek(
    dek: bytes, n: int, rnd: object
) -> None:
    shares = split_dek(dek, n)
    assert len(shares) == n and all(len(s) == 32 for s in shares)
    rnd.shuffle(shares)  # type: ignore[attr-defined]
    assert combine_dek_shares(shares) == dek


@given(
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=2, max_value=6),
    st.data(),
)
def test_a_missing_share_does_not_rebuild_the_dek(
    dek: bytes, n: int, data: st.DataObject
) -> None:
    shares = split_dek(dek, n)
    drop = data.draw(st.integers(min_value=0, max_value=n - 1))
    assert combine_dek_shares(shares[:drop] + shares[drop + 1 :]) != dek


def test_single_owner_share_is_the_dek_itself() -> None:
    dek = bytes(range(32))
    assert split_dek(dek, 1) == [dek]


@pytest.mark.parametrize(("dek", "n"), [(b"short", 2), (bytes(32), 0)])
def test_bad_parameters(dek: bytes, n: int) -> None:
    with pytest.raises(ConfigError):
        split_dek(dek, n)
    with pytest.raises(ConfigError):
        combine_dek_shares([])
