"""Site-side attestation: software evidence signed by the site's identity key.

Without TEE hardware the best a site can say is "I, registered site X, vouch that
attempt A of job J runs code with measurement M and holds enclave key K, in
answer to nonce N". That is what :class:`SoftwareAttester` signs; custodians mark
every release it obtains ``tee_mode: none``.
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.protocol.release import SOFTWARE_EVIDENCE_FORMAT, Evidence
from orchestrator.timeutil import Clock, rfc3339, system_clock

#: Evidence lifetime in seconds (custodians refuse anything longer than 300 s).
EVIDENCE_LIFETIME_S = 120


class SoftwareAttester:
    """Produces site-signed evidence for enclave attempts at site ``site``."""

    def __init__(self, site: str, key: SigningKey, clock: Clock = system_clock) -> None:
        self.site = site
        self._key = key
        self._clock = clock

    def attest(
        self,
        *,
        job_id: str,
        attempt_id: str,
        code_measurement: str,
        enclave_public_key: bytes,
        hpke_suite: str,
        nonce: str,
    ) -> Evidence:
        """Return evidence binding these values, valid ``EVIDENCE_LIFETIME_S``."""
        now = self._clock()
        evidence = Evidence(
            format=SOFTWARE_EVIDENCE_FORMAT,
            tee_mode="none",
            site=self.site,
            job_id=job_id,
            attempt_id=attempt_id,
            code_measurement=code_measurement,
            enclave_public_key=b64e(enclave_public_key),
            hpke_suite=hpke_suite,
            nonce=nonce,
            issued_at=rfc3339(now),
            expires_at=rfc3339(now + timedelta(seconds=EVIDENCE_LIFETIME_S)),
            signer=self._key.key_id,
        )
        return evidence.with_signature(b64e(self._key.sign(evidence.signed_bytes())))
