"""Synthetic sonar-like returns: chirp echoes from cylinders and rocks, with noise.

A stand-in for the UCI sonar table (``data/sonar``) at any size, for benchmarks and
tests that need more rows than the 208 real ones. It is **not** a validated acoustic
model: the shapes below were chosen to be plausible and to carry class signal, and
no parameter was fitted to the real returns.

Physical picture (per row, all quantities dimensionless)
---------------------------------------------------------
A frequency-modulated chirp sweeps ``bands`` adjacent frequency bands; band ``k`` has
normalised centre frequency ``f_k = (k + 0.5) / bands`` in (0, 1). Each row is the
echo energy integrated in every band:

``E(f) = S(f) * G(r, f) * T(f) * speckle(f) + N(f)``

* ``S(f)``: the transmitted chirp's spectral envelope (a fixed taper, weaker at the
  band edges).
* ``G(r, f) = r**-2 * exp(-0.6 * f * r)``: two-way spherical spreading and
  frequency-dependent absorption at range ``r ~ U(0.6, 1.6)`` (relative units), so
  absolute level varies about sevenfold between rows and does not give the class
  away.
* ``T(f)``, target response:

  - **metal cylinder** (label ``M``, the mine stand-in): a specular term strongest
    at broadside (``cos(theta)**4`` for aspect ``theta ~ U(0, pi/2)``) plus three
    or four elastic resonances, Lorentzian peaks of half-width 0.015-0.04 at
    ``f_j = s * (0.16 + 0.21 j) * (1 + 0.2 * (1 - cos(theta)))``, where the size
    factor ``s ~ U(0.75, 1.25)`` makes the frequencies target-dependent and the
    aspect shifts them. Strong, smooth, structured.
  - **rock** (label ``R``): incoherent scattering from 12 random facets, i.e.
    ``|sum_i a_i exp(2 pi i f tau_i)|**2 / 12`` with Rayleigh amplitudes and random
    delays spanning ``~U(4, 12)`` cycles across the sweep, times a roughness slope
    ``(0.3 + f)**beta``, ``beta ~ U(0, 1.2)``, at 0.45 of the cylinder's level.
    Rough, broadband, lower coherent energy.

* ``speckle(f)``: multiplicative Gamma(shape 8, mean 1) fluctuation per band
  (both classes).
* ``N(f)``: additive ambient noise, exponential (chi-square, 2 degrees of freedom)
  per band, mean ``sigma * S(f)`` with ``sigma ~ U(0.03, 0.15)`` per row.

Each energy is mapped into [0, 1) by the fixed saturating per-band transfer
``x = 1 - exp(-E / E_ref(f))`` with ``E_ref(f) = S(f)`` (not min-max over the
file, which would need two passes and make a row depend on the others), then rounded
to 4 decimals, the precision of the UCI file. Labels are ``M`` with probability
``p_mine`` (default 111/208, the UCI proportion), else ``R``.

Output is deterministic for ``(rows, bands, seed, chunk_rows)``: chunk ``c`` draws
from ``numpy.random.default_rng(SeedSequence([seed, c]))``, so the stream can be
generated and written chunk by chunk in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["CHUNK_ROWS", "P_MINE", "generate", "row_bytes", "rows_for_bytes",
           "write_csv"]

CHUNK_ROWS = 10_000
"""Rows generated (and written) per chunk by default."""

P_MINE = 111 / 208
"""Default fraction of ``M`` rows, as in the UCI file (111 of 208)."""

_FACETS = 12
_RESONANCES = 4


def _check(rows: int, bands: int, seed: int, chunk_rows: int, p_mine: float) -> None:
    if rows < 0 or bands < 1 or seed < 0 or chunk_rows < 1:
        raise ValueError(f"need rows >= 0, bands >= 1, seed >= 0, chunk_rows >= 1; "
                         f"got {rows}, {bands}, {seed}, {chunk_rows}")
    if not 0.0 <= p_mine <= 1.0:
        raise ValueError(f"p_mine must be in [0, 1], not {p_mine}")


def _chunk(rng: np.random.Generator, n: int, bands: int, p_mine: float
           ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.str_]]:
    """One chunk of ``n`` rows: features ``(n, bands)`` float32, labels ``(n,)``."""
    f = (np.arange(bands, dtype=np.float64) + 0.5) / bands  # (B,)
    taper = 0.35 + 0.65 * np.sin(np.pi * (0.05 + 0.9 * f))  # chirp envelope S(f)
    mine = rng.random(n) < p_mine  # (n,)
    r = rng.uniform(0.6, 1.6, n)[:, None]
    gain = r ** -2.0 * np.exp(-0.6 * f[None, :] * r)  # (n, B)

    # Metal cylinder: specular (broadside) + elastic resonances.
    theta = rng.uniform(0.0, np.pi / 2, n)[:, None]
    size = rng.uniform(0.75, 1.25, n)[:, None]
    j = np.arange(_RESONANCES, dtype=np.float64)[None, :]
    centre = size * (0.16 + 0.21 * j) * (1.0 + 0.2 * (1.0 - np.cos(theta)))  # (n, K)
    width = rng.uniform(0.015, 0.04, (n, _RESONANCES))
    amp = rng.uniform(0.6, 1.0, (n, _RESONANCES)) / (1.0 + 0.5 * j)
    dist = f[None, None, :] - centre[:, :, None]  # (n, K, B)
    peaks = (amp[:, :, None] * width[:, :, None] ** 2
             / (dist ** 2 + width[:, :, None] ** 2)).sum(axis=1)
    specular = 0.8 * np.cos(theta) ** 4 * (0.6 + 0.4 * f[None, :])
    cylinder = specular + 1.6 * peaks

    # Rock: random-facet interference, rough and broadband, lower level.
    spread = rng.uniform(4.0, 12.0, n)[:, None]
    tau = rng.random((n, _FACETS)) * spread  # cycles across the sweep
    a = rng.rayleigh(1.0, (n, _FACETS))
    # sum_i a_i exp(2 pi i (tau_i f_k + phi_i)), f_k = (k + 0.5) / B, as a running
    # product over k (one complex multiply per band instead of a sin and a cos).
    start = a * np.exp(2j * np.pi * (tau * (0.5 / bands) + rng.random((n, _FACETS))))
    step = np.exp(2j * np.pi * tau / bands)  # (n, F)
    terms = np.empty((n, _FACETS, bands), dtype=np.complex128)
    terms[:, :, 0] = start
    terms[:, :, 1:] = step[:, :, None]
    echo = np.cumprod(terms, axis=2).sum(axis=1)  # (n, B)
    slope = (0.3 + f[None, :]) ** rng.uniform(0.0, 1.2, n)[:, None]
    rock = 0.45 * np.abs(echo) ** 2 / (2.0 * _FACETS) * slope

    target = np.where(mine[:, None], cylinder, rock)
    speckle = rng.gamma(8.0, 1.0 / 8.0, (n, bands))
    sigma = rng.uniform(0.03, 0.15, n)[:, None]
    noise = rng.exponential(1.0, (n, bands)) * sigma * taper[None, :]
    energy = taper[None, :] * gain * target * speckle + noise
    x = 1.0 - np.exp(-energy / taper[None, :])
    q = np.rint(x * 10_000.0)
    features = (q / 10_000.0).astype(np.float32)
    labels = np.where(mine, "M", "R")
    return features, labels


def generate(rows: int, bands: int = 60, seed: int = 0, *,
             chunk_rows: int = CHUNK_ROWS, p_mine: float = P_MINE
             ) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.str_]]]:
    """Yield synthetic sonar returns chunk by chunk (see the module docstring).

    Parameters
    ----------
    rows
        Total number of rows (>= 0).
    bands
        Frequency bands per row (>= 1; the UCI data has 60).
    seed
        Non-negative seed; the same arguments give the same stream.
    chunk_rows
        Rows per yielded chunk (the last may be shorter). Part of the seed: another
        chunk size gives other rows.
    p_mine
        Probability in [0, 1] that a row is a metal cylinder (``M``).

    Yields
    ------
    features : numpy.ndarray
        ``float32``, shape ``(chunk, bands)``, values in [0, 1] rounded to 4
        decimals (exactly what parsing the CSV of :func:`write_csv` gives back).
    labels : numpy.ndarray
        ``<U1``, shape ``(chunk,)``, ``"M"`` or ``"R"``.

    Raises
    ------
    ValueError
        For out-of-range arguments.
    """
    _check(rows, bands, seed, chunk_rows, p_mine)
    done = 0
    index = 0
    while done < rows:
        n = min(chunk_rows, rows - done)
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        yield _chunk(rng, n, bands, p_mine)
        done += n
        index += 1


def row_bytes(bands: int) -> int:
    """Bytes of one CSV row of :func:`write_csv`: ``7 * bands + 2``.

    Every feature is written as ``d.dddd,`` (7 bytes), then the label and ``\\n``.
    """
    return 7 * bands + 2


def rows_for_bytes(size_bytes: float, bands: int = 60) -> int:
    """Rows whose CSV is closest to ``size_bytes`` bytes (at least 2)."""
    return max(2, round(size_bytes / row_bytes(bands)))


def _encode(features: npt.NDArray[np.float32], labels: npt.NDArray[np.str_]) -> bytes:
    """Fixed-width CSV bytes of one chunk (vectorised; no per-field Python)."""
    n, bands = features.shape
    q = np.rint(features.astype(np.float64) * 10_000.0).astype(np.int32)
    out = np.empty((n, bands, 7), dtype=np.uint8)
    out[:, :, 0] = ord("0") + q // 10_000
    out[:, :, 1] = ord(".")
    frac = q % 10_000
    for i, div in enumerate((1000, 100, 10, 1)):
        out[:, :, 2 + i] = ord("0") + (frac // div) % 10
    out[:, :, 6] = ord(",")
    line = np.empty((n, 7 * bands + 2), dtype=np.uint8)
    line[:, :-2] = out.reshape(n, 7 * bands)
    line[:, -2] = np.where(labels == "M", ord("M"), ord("R"))
    line[:, -1] = ord("\n")
    return line.tobytes()


def write_csv(path: Path | str, rows: int, bands: int = 60, seed: int = 0, *,
              chunk_rows: int = CHUNK_ROWS, p_mine: float = P_MINE) -> int:
    """Write :func:`generate`'s rows as a header-less UCI-style CSV; return bytes.

    Each row is ``bands`` features with 4 decimals and the label (last column), e.g.
    ``0.0200,0.0371,...,R``; exactly :func:`row_bytes` bytes per row. Memory stays
    bounded by one chunk (about ``chunk_rows * bands * 60`` bytes of temporaries),
    whatever ``rows`` is. Parameters are those of :func:`generate`.

    Returns
    -------
    int
        Bytes written (``rows * row_bytes(bands)``).
    """
    written = 0
    with open(path, "wb") as fh:
        for features, labels in generate(rows, bands, seed, chunk_rows=chunk_rows,
                                         p_mine=p_mine):
            written += fh.write(_encode(features, labels))
    return written
