"""C2SP tlog-tiles paths, hash tiles and entry bundles."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from orchestrator.tlog.merkle import MerkleTree, leaf_hash, node_hash
from orchestrator.tlog.tiles import (
    TilePath,
    encode_index,
    entry_bundle,
    hash_tile,
    parse_entry_bundle,
    parse_tile_path,
    split_hashes,
    tile_width,
)


def test_index_encoding_follows_the_spec_example() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(999) == "999"
    assert encode_index(1000) == "x001/000"


@given(st.integers(min_value=0, max_value=10**12))
def test_index_round_trips(index: int) -> None:
    path = TilePath(0, index, 256).path()
    assert parse_tile_path(path) == TilePath(0, index, 256)


@pytest.mark.parametrize("path", [
    "tile/0/x001/234.p/7", "tile/entries/000", "tile/63/000.p/255", "tile/1/001",
])
def test_canonical_paths_parse_and_print_back(path: str) -> None:
    assert parse_tile_path(path).path() == path


@pytest.mark.parametrize("path", [
    "tile/00/000", "tile/64/000", "tile/0/0000", "tile/0/x000/001", "tile/0/1",
    "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/07", "tile/x/000",
    "tiles/0/000", "tile/0/001/002", "tile/entries/000.p/",
])
def test_non_canonical_paths_are_refused(path: str) -> None:
    with pytest.raises(ConfigError):
        parse_tile_path(path)


def test_widths_of_the_spec_example_tree_of_70000() -> None:
    size = 70_000
    assert tile_width(size, 0, 272) == 256 and tile_width(size, 0, 273) == 112
    assert tile_width(size, 0, 274) == 0
    assert tile_width(size, 1, 0) == 256 and tile_width(size, 1, 1) == 17
    assert tile_width(size, 2, 0) == 1
    assert tile_width(256, 0, 0) == 256 and tile_width(256, 1, 0) == 1


def test_hash_tiles_hold_the_subtree_roots() -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(70_000)]
    tree = MerkleTree(leaves)
    level0 = split_hashes(hash_tile(tree, TilePath(0, 3, 256)), 256)
    assert level0 == leaves[768:1024]
    partial = split_hashes(hash_tile(tree, TilePath(0, 273, 112)), 112)
    assert partial == leaves[273 * 256:]
    level1 = split_hashes(hash_tile(tree, TilePath(1, 1, 17)), 17)
    assert level1[0] == MerkleTree(leaves[65536:65536 + 256]).root()
    # Level 2 tile 0 width 1: MTH of the first 65,536 leaves.
    assert split_hashes(hash_tile(tree, TilePath(2, 0, 1)), 1)[0] == tree.root(65536)
    with pytest.raises(ValueError):
        hash_tile(tree, TilePath(1, 1, 18))  # hash 17 of level 1 is not complete


def test_a_level_one_hash_is_the_root_of_its_level_zero_tile() -> None:
    leaves = [leaf_hash(bytes([i % 256, i // 256])) for i in range(512)]
    tree = MerkleTree(leaves)
    (first,) = split_hashes(hash_tile(tree, TilePath(1, 0, 1)), 1)
    level = leaves[:256]
    while len(level) > 1:
        level = [node_hash(a, b) for a, b in zip(level[::2], level[1::2],
                                                 strict=True)]
    assert first == level[0]


@given(st.lists(st.binary(max_size=300), max_size=256))
def test_entry_bundles_round_trip(leaves: list[bytes]) -> None:
    assert parse_entry_bundle(entry_bundle(leaves), len(leaves)) == leaves


@pytest.mark.parametrize("data,width", [
    (b"\x00", 1), (b"\x00\x05abc", 1), (b"\x00\x01a\x00", 1), (b"\x00\x01a", 2),
])
def test_broken_entry_bundles_are_refused(data: bytes, width: int) -> None:
    with pytest.raises(ConfigError):
        parse_entry_bundle(data, width)


def test_bundle_limits() -> None:
    with pytest.raises(ValueError):
        entry_bundle([b"x"] * 257)
    with pytest.raises(ValueError):
        entry_bundle([b"x" * 65536])
