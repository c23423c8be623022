"""An officer imports its trust roots and certificates from others' cards.

The officer's side of :mod:`orchestrator.embedded.handover`: it pins the log's
verifier key and each witnessing nation's key in its ``trust.json`` (a log key
other than the pinned one only by an explicit re-pin, recorded), and keeps the
client certificates nations issued it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.crypto.x509 import check_certifies_key
from orchestrator.embedded.deployment import Deployment
from orchestrator.embedded.handover import PINS, read_certificate_pem
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import IntegrityError
from orchestrator.officer.trust import TrustConfig, replace_pinned_log
from orchestrator.protocol.cards import (
    pin_card_key,
    read_card,
    read_nation_card,
    unpin_card_key,
)
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteVerifier

__all__ = ["officer_install_cert", "officer_trust"]


def officer_trust(state: StateDir, code: str, log_card: Path,
                  nation_cards: list[Path], *, replace_log_key: bool = False
                  ) -> TrustConfig:
    """Nation ``code``'s officer pins the log's verifier key and each nation's
    witness key (from their cards) in its ``trust.json``. A log key other than
    the pinned one is refused unless ``replace_log_key``
    (:func:`orchestrator.officer.trust.replace_pinned_log`).

    Raises
    ------
    IntegrityError
        A bad card, or a key other than one pinned before.
    """
    officer = Deployment(state).officer(code)
    officer.key()  # initialised here (NotFound otherwise)
    log = read_card(log_card, expect="log")
    path = officer.root / "trust.json"
    trust = TrustConfig.load(path)
    vkey = str(log.extra["vkey"])
    if trust.log_vkey and trust.log_vkey != vkey:
        if not replace_log_key:
            raise IntegrityError(f"field vkey: the officer pinned log {trust.log_vkey}"
                                 f", this card is of {vkey}; a new log key is a new "
                                 "log: re-pin it by hand with --replace-log-key",
                                 source=str(log_card))
        replace_pinned_log(officer.root, trust.log_vkey, vkey, str(log_card))
        unpin_card_key(officer.root / PINS, "log")
    pin_card_key(officer.root / PINS, "log", log.public_key, str(log_card))
    trust.log_vkey = vkey
    for card_path in nation_cards:
        card, _ = read_nation_card(card_path)
        pin_card_key(officer.root / PINS, f"custodian:{card.code}",
                     card.custodian_public, str(card_path))
        trust.witnesses[card.code] = NoteVerifier(
            witness_key_name(card.code), card.custodian_public,
            ALG_COSIGNATURE_V1).vkey()
    trust.check(source=str(path))
    trust.save(path)
    return trust


def officer_install_cert(state: StateDir, code: str, nation: str, path: Path) -> Path:
    """Keep the client certificate ``nation`` issued nation ``code``'s officer.

    Raises
    ------
    IntegrityError
        If it is not for the officer's TLS key.
    """
    officer = Deployment(state).officer(code)
    pem = read_certificate_pem(path)
    check_certifies_key(pem, officer.tls_key.read_bytes())
    officer.keep_client_cert(pem, nation)
    return officer.client_cert(nation)
