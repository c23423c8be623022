"""C2SP tlog-tiles: tile paths, hash tiles and entry bundles (pure).

A tiled log serves its Merkle tree as *tiles* of up to 256 consecutive hashes at
tree heights 0, 8, 16, ... and its entries as *entry bundles* of up to 256
length-prefixed leaves (c2sp.org/tlog-tiles):

* ``tile/<L>/<N>[.p/<W>]``: hash ``i`` (0 <= i < 256) of tile ``N`` at level ``L``
  is ``MTH(D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L])``, i.e. the root
  of a complete subtree of ``256**L`` leaves; a full tile is 256 hashes (8,192
  bytes), the rightmost tile of a level is partial with width
  ``floor(size / 256**L) mod 256``;
* ``tile/entries/<N>[.p/<W>]``: leaves ``N*256 .. N*256 + W - 1``, each prefixed
  by its length as a big-endian uint16 (so a leaf is at most 65,535 bytes);
* ``<N>`` is written in zero-padded 3-digit path elements, all but the last
  prefixed by ``x`` (1234067 -> ``x001/x234/067``).

Everything here is pure: :func:`hash_tile` and :func:`entry_bundle` build the
bytes from a :class:`~orchestrator.tlog.merkle.MerkleTree` and leaves the
caller supplies; :func:`parse_tile_path` and :func:`parse_entry_bundle` check
what a client or server reads.

References
----------
.. [1] C2SP tlog-tiles, https://c2sp.org/tlog-tiles
.. [2] RFC 6962, section 2.1 (Merkle Tree Hash).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from orchestrator.tlog.merkle import HASH_SIZE, MerkleTree

__all__ = [
    "MAX_LEAF_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "encode_index",
    "entry_bundle",
    "hash_tile",
    "parse_entry_bundle",
    "parse_tile_path",
    "tile_width",
]

#: Tile height in tree levels: every tile spans 2**8 = 256 hashes.
TILE_HEIGHT = 8
#: Hashes (or entries) in a full tile (or bundle).
TILE_WIDTH = 1 << TILE_HEIGHT
#: Largest leaf an entry bundle can carry (its length is a uint16).
MAX_LEAF_BYTES = 0xFFFF
#: Highest level the spec allows.
MAX_LEVEL = 63

_ELEMENT = re.compile(r"^(x\d{3}/)*\d{3}$")


@dataclass(frozen=True)
class TilePath:
    """A parsed tile request.

    Attributes
    ----------
    level
        0..63 for hash tiles; ``-1`` for an entry bundle.
    index
        The tile's index ``N`` within its level.
    width
        Number of hashes (or entries): 256 for a full tile, else 1..255.
    """

    level: int
    index: int
    width: int

    @property
    def partial(self) -> bool:
        """Whether this is a partial tile (``.p/<W>``)."""
        return self.width < TILE_WIDTH

    @property
    def entries(self) -> bool:
        """Whether this is an entry bundle."""
        return self.level < 0

    def path(self) -> str:
        """The path below the log prefix, e.g. ``tile/0/x001/234.p/7``."""
        head = "tile/entries" if self.entries else f"tile/{self.level}"
        tail = f".p/{self.width}" if self.partial else ""
        return f"{head}/{encode_index(self.index)}{tail}"

    def end_index(self) -> int:
        """One past the last leaf this tile's hashes (or entries) span."""
        span: int = 1 << (TILE_HEIGHT * max(self.level, 0))
        return (self.index * TILE_WIDTH + self.width) * span


def encode_index(index: int) -> str:
    """Encode a tile index in 3-digit path elements (``1234067`` ->
    ``x001/x234/067``).

    Raises
    ------
    ValueError
        If ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"tile index must be >= 0, not {index}")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _decode_index(text: str, source: str) -> int:
    if not _ELEMENT.match(text):
        raise ConfigError(f"tile index {text!r} is not in x000/000 form",
                          source=source)
    index = int(text.replace("x", "").replace("/", ""))
    if encode_index(index) != text:  # leading zero groups
        raise ConfigError(f"tile index {text!r} is not canonical", source=source)
    return index


def parse_tile_path(path: str) -> TilePath:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``.

    Raises
    ------
    ConfigError
        If the path is not canonical (leading zeroes, level above 63, width
        outside 1..255, ...): the server answers 400/404, a client refuses it.
    """
    source = path
    if not path.startswith("tile/"):
        raise ConfigError("not a tile path", source=source)
    rest = path[len("tile/"):]
    head, _, rest = rest.partition("/")
    width = TILE_WIDTH
    if ".p/" in rest:
        rest, _, w = rest.partition(".p/")
        if not re.fullmatch(r"[1-9]\d{0,2}", w) or int(w) >= TILE_WIDTH:
            raise ConfigError(f"partial width {w!r} is not 1..255", source=source)
        width = int(w)
    index = _decode_index(rest, source)
    if head == "entries":
        return TilePath(-1, index, width)
    if not re.fullmatch(r"0|[1-9]\d?", head) or int(head) > MAX_LEVEL:
        raise ConfigError(f"tile level {head!r} is not 0..63", source=source)
    return TilePath(int(head), index, width)


def tile_width(size: int, level: int, index: int) -> int:
    """Width of tile ``index`` at ``level`` in a tree of ``size`` leaves: 256 if
    full, 1..255 if it is the rightmost (partial) one, 0 if it does not exist."""
    full = size >> (TILE_HEIGHT * (level + 1))
    if index < full:
        return TILE_WIDTH
    if index == full:
        return (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
    return 0


def hash_tile(tree: MerkleTree, tile: TilePath) -> bytes:
    """The bytes of hash tile ``tile`` (``width`` x 32 bytes) from ``tree``.

    Raises
    ------
    ValueError
        If ``tile`` is an entry bundle, or its hashes are not all complete in
        ``tree`` (the tile does not exist at this size).
    """
    if tile.entries:
        raise ValueError("an entry bundle has no hashes")
    height = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    return b"".join(tree.subtree_root(height, first + i) for i in range(tile.width))


def entry_bundle(leaves: Sequence[bytes]) -> bytes:
    """Encode ``leaves`` (at most 256) as an entry bundle.

    Raises
    ------
    ValueError
        If there are more than 256 leaves or one exceeds 65,535 bytes.
    """
    if len(leaves) > TILE_WIDTH:
        raise ValueError(f"an entry bundle holds at most {TILE_WIDTH} entries")
    out = bytearray()
    for i, leaf in enumerate(leaves):
        if len(leaf) > MAX_LEAF_BYTES:
            raise ValueError(f"entry {i} is {len(leaf)} bytes, over {MAX_LEAF_BYTES}")
        out += len(leaf).to_bytes(2, "big") + leaf
    return bytes(out)


def parse_entry_bundle(data: bytes, width: int, *, source: str = "<bundle>"
                       ) -> list[bytes]:
    """Decode an entry bundle of exactly ``width`` entries.

    Raises
    ------
    ConfigError
        If the bundle is truncated, has trailing bytes or another entry count.
    """
    leaves: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ConfigError("entry bundle truncated in a length prefix",
                              source=source)
        n = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise ConfigError("entry bundle truncated in an entry", source=source)
        leaves.append(bytes(data[pos:pos + n]))
        pos += n
    if len(leaves) != width:
        raise ConfigError(f"entry bundle holds {len(leaves)} entries, expected "
                          f"{width}", source=source)
    return leaves


def split_hashes(data: bytes, width: int, *, source: str = "<tile>") -> list[bytes]:
    """Split a hash tile's bytes into ``width`` 32-byte hashes.

    Raises
    ------
    ConfigError
        If the length is not ``width * 32``.
    """
    if len(data) != width * HASH_SIZE:
        raise ConfigError(f"tile is {len(data)} bytes, expected {width * HASH_SIZE}",
                          source=source)
    return [bytes(data[i:i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]
