"""The orchestrator's side of the HTEX channel to site-started sites.

See :mod:`orchestrator.net.channel` for the scheme. Under the orchestrator's
directory::

    parsl/channel/server.key(_secret), client.key(_secret)
                                 its interchange's server key pair and its
                                 executor's client key pair (made once)
    parsl/<site>/certificates/   what one site's interchange runs with: both
                                 pairs and the site's public ``site.key``

The site's public key comes from its card (or, in the embedded default, from the
site's directory as the composition root hands it over); the orchestrator's
server public key goes to the site in the orchestrator's card.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.errors import NotFound
from orchestrator.net.channel import new_key_pair, public_key, write_public

__all__ = ["channel_certificates", "install_site_channel", "server_public"]

_PAIRS = ("server.key", "server.key_secret", "client.key", "client.key_secret")


def _base(root: Path) -> Path:
    base = root / "parsl" / "channel"
    new_key_pair(base, "server")
    new_key_pair(base, "client")
    return base


def server_public(root: Path) -> str:
    """The interchange's server public key (Z85), made on first use."""
    return public_key(_base(root), "server")


def install_site_channel(root: Path, site: str, site_public: str) -> Path:
    """Accept ``site``'s pools (Z85 public key ``site_public``) on that site's
    interchange; return its certificate directory.

    Raises
    ------
    ConfigError
        If ``site_public`` is not a Z85 public key.
    """
    certs = root / "parsl" / site / "certificates"
    write_public(certs, "site", site_public)
    return certs


def channel_certificates(root: Path, site: str) -> Path:
    """The certificate directory ``site``'s interchange runs with (``0700``).

    Raises
    ------
    NotFound
        If the site's public key was never installed (a site-started site is
        registered from its card, which carries it).
    """
    base = _base(root)
    certs = root / "parsl" / site / "certificates"
    if not (certs / "site.key").is_file():
        raise NotFound(f"no CurveZMQ key of site {site!r} (register the site from "
                       "its card)", source=str(certs))
    for name in _PAIRS:
        if not (certs / name).is_file() or (
                (certs / name).read_bytes() != (base / name).read_bytes()):
            shutil.copyfile(base / name, certs / name)
            (certs / name).chmod(0o600)
    certs.chmod(0o700)
    return certs
