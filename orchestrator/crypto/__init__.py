"""Cryptographic recipes for the orchestrator.

This package is the only code that touches ``cryptography.hazmat`` (through
:mod:`._primitives`); everything else calls these recipes:

* :mod:`.keywrap` / :mod:`.aead` - DEKs, AES-256 key wrap with padding (RFC 5649),
  AES-256-GCM (NIST SP 800-38D), HKDF-SHA256 (RFC 5869).
* :mod:`.envelope` - streaming segmented AEAD for sealed objects.
* :mod:`.hpke` - HPKE (RFC 9180), X25519 and ML-KEM-768+X25519 hybrid.
* :mod:`.signing` - Ed25519 (RFC 8032) keys and signatures.
* :mod:`.fsutil` - atomic, durable file writes.

Every verification or decryption failure raises
:class:`~orchestrator.errors.IntegrityError`; bad parameters or sizes raise
:class:`~orchestrator.errors.ConfigError`.
"""

from orchestrator.crypto.aead import (
    aead_decrypt,
    aead_encrypt,
    commit_plaintext,
    hkdf_sha256,
)
from orchestrator.crypto.envelope import (
    DEFAULT_SEGMENT_SIZE,
    MAGIC,
    EnvelopeHeader,
    open_bytes,
    open_stream,
    open_to_memory,
    read_header,
    seal_bytes,
    seal_stream,
)
from orchestrator.crypto.fsutil import atomic_write_bytes
from orchestrator.crypto.hpke import HpkeSuite, RecipientKey, hpke_open, hpke_seal
from orchestrator.crypto.keywrap import (
    DEK_SIZE,
    combine_dek_shares,
    new_dek,
    split_dek,
    unwrap_dek,
    wrap_dek,
)
from orchestrator.crypto.signing import (
    SigningKey,
    key_id_of,
    load_private_key,
    save_private_key,
    verify_signature,
)

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "DEK_SIZE",
    "MAGIC",
    "EnvelopeHeader",
    "HpkeSuite",
    "RecipientKey",
    "SigningKey",
    "aead_decrypt",
    "aead_encrypt",
    "atomic_write_bytes",
    "combine_dek_shares",
    "commit_plaintext",
    "hkdf_sha256",
    "hpke_open",
    "hpke_seal",
    "key_id_of",
    "load_private_key",
    "new_dek",
    "open_bytes",
    "open_stream",
    "open_to_memory",
    "read_header",
    "save_private_key",
    "seal_bytes",
    "seal_stream",
    "split_dek",
    "unwrap_dek",
    "verify_signature",
    "wrap_dek",
]
