"""X.509 certificates for mutual TLS between custodians and their clients.

Each nation runs its own certificate authority: a self-signed CA certificate
(RFC 5280 section 4.2.1.9, ``cA=TRUE``, ``pathLenConstraint=0``) that signs its
custodian service's server certificate and the client certificates that service
accepts. Keys are ECDSA P-256 with SHA-256 signatures (RFC 5480, RFC 5758), which
every TLS 1.3 stack accepts (RFC 8446 section 4.2.3, ``ecdsa_secp256r1_sha256``).

This module is, with :mod:`._primitives`, the only one importing ``cryptography``;
everything else handles certificates and keys as PEM bytes. Private keys are
unencrypted PKCS#8 PEM, to be written with mode ``0600`` by the caller.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "CertificateInfo",
    "IssuedCertificate",
    "certificate_info",
    "check_certifies_key",
    "check_issued_by",
    "issue_certificate",
    "issue_from_csr",
    "new_certificate_authority",
    "new_key_and_csr",
    "spiffe_id_of",
]

#: Validity of a nation CA (days).
CA_VALIDITY_DAYS = 3650
#: Validity of a server or client certificate (days).
LEAF_VALIDITY_DAYS = 397
#: Tolerated clock skew: ``notBefore`` is back-dated by this much (seconds).
BACKDATE_S = 300


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, both PEM (PKCS#8 for the key)."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertificateInfo:
    """Public facts about one certificate (for listings and checks)."""

    subject: str
    issuer: str
    serial: int
    not_before: str
    not_after: str
    is_ca: bool
    sha256_fingerprint: str


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(f"{what} is not a PEM X.509 certificate") from exc


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError("CA key is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("CA key is not an ECDSA key")
    return key


def new_certificate_authority(
    nation: str, *, valid_days: int = CA_VALIDITY_DAYS
) -> IssuedCertificate:
    """Create a nation's self-signed root CA (RFC 5280 section 4.2.1.9).

    Parameters
    ----------
    nation
        ISO 3166-1 alpha-3 code; the subject is ``CN=<nation> custodian CA``.
    valid_days
        Validity period in days from now.

    Returns
    -------
    IssuedCertificate
        The CA certificate and its P-256 private key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{nation} custodian CA", f"Sovereign Orchestrator {nation}")
    now = datetime.now(UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=BACKDATE_S))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCertificate(
        cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)
    )


def issue_certificate(
    ca: IssuedCertificate,
    common_name: str,
    *,
    server: bool,
    hosts: tuple[str, ...] = (),
    valid_days: int = LEAF_VALIDITY_DAYS,
    spiffe_id: str | None = None,
) -> IssuedCertificate:
    """Issue a TLS server or client certificate signed by ``ca`` (RFC 5280).

    Parameters
    ----------
    ca
        The issuing CA's certificate and key.
    common_name
        Subject common name (``AUS custodian``, ``orchestrator``, ``site:local``).
    server
        ``True`` for ``serverAuth`` (with ``hosts`` as subjectAltName, which is what
        TLS clients match, RFC 6125), ``False`` for ``clientAuth``.
    hosts
        DNS names or IP addresses for the subjectAltName of a server certificate.
    valid_days
        Validity period in days from now.
    spiffe_id
        A ``spiffe://`` URI naming the holder's party and role, put in the
        subjectAltName (the SPIFFE X.509-SVID convention).

    Returns
    -------
    IssuedCertificate
        The leaf certificate and its fresh P-256 private key.

    Raises
    ------
    ConfigError
        If the CA certificate or key cannot be parsed, or a server has no host.
    """
    ca_cert = _load_cert(ca.cert_pem, "CA certificate")
    ca_key = _load_key(ca.key_pem)
    if server and not hosts:
        raise ConfigError("a server certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _issue(ca_cert, ca_key, key.public_key(), common_name, server=server,
                      hosts=hosts, valid_days=valid_days, spiffe_id=spiffe_id)
    return IssuedCertificate(cert_pem, _key_pem(key))


def _issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
           public: ec.EllipticCurvePublicKey, common_name: str, *, server: bool,
           hosts: tuple[str, ...], valid_days: int, spiffe_id: str | None) -> bytes:
    now = datetime.now(UTC)
    eku = ExtendedKeyUsageOID
    usage = eku.SERVER_AUTH if server else eku.CLIENT_AUTH
    issuer_org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    organisation = str(issuer_org[0].value) if issuer_org else "Sovereign Orchestrator"
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organisation))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=BACKDATE_S))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if spiffe_id is not None:
        if not spiffe_id.startswith("spiffe://"):
            raise ConfigError(f"{spiffe_id!r} is not a spiffe:// URI")
        names.append(x509.UniformResourceIdentifier(spiffe_id))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def new_key_and_csr(common_name: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key and a certificate signing request for it (RFC 2986).

    The key never leaves the party that made it: only the CSR goes to the CA,
    which chooses the certificate's names (:func:`issue_from_csr`).

    Returns
    -------
    tuple
        ``(key_pem, csr_pem)``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                       common_name)]))
           .sign(key, hashes.SHA256()))
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def issue_from_csr(
    ca: IssuedCertificate,
    csr_pem: bytes,
    *,
    spiffe_id: str,
    server: bool = False,
    hosts: tuple[str, ...] = (),
    valid_days: int = LEAF_VALIDITY_DAYS,
) -> bytes:
    """Sign a party's CSR as ``ca``; the CA, not the request, sets the names.

    The certificate's subject is the CSR's common name; its subjectAltName is
    ``spiffe_id`` (the party and the role the CA grants) plus ``hosts`` for a
    server. The CSR's own signature must verify (proof of possession).

    Returns
    -------
    bytes
        The PEM certificate.

    Raises
    ------
    ConfigError
        If the CSR does not parse, has no common name, is not a P-256 key, or
        its signature does not verify.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ConfigError("not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise ConfigError("the CSR's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, ec.SECP256R1):
        raise ConfigError("the CSR's key must be ECDSA P-256")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConfigError("the CSR has no common name")
    if server and not hosts:
        raise ConfigError("a server certificate needs at least one host name")
    return _issue(_load_cert(ca.cert_pem, "CA certificate"), _load_key(ca.key_pem),
                  public, str(names[0].value), server=server, hosts=hosts,
                  valid_days=valid_days, spiffe_id=spiffe_id)


def spiffe_id_of(cert: bytes) -> str | None:
    """The ``spiffe://`` URI in a certificate's subjectAltName (PEM or DER), or
    ``None`` if it has none (or more than one, which SPIFFE forbids).

    Raises
    ------
    ConfigError
        If ``cert`` is not a certificate.
    """
    try:
        parsed = (x509.load_pem_x509_certificate(cert) if cert.startswith(b"-----")
                  else x509.load_der_x509_certificate(cert))
    except ValueError as exc:
        raise ConfigError("not an X.509 certificate") from exc
    try:
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = [u for u in san.value.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith("spiffe://")]
    return uris[0] if len(uris) == 1 else None


def certificate_info(cert_pem: bytes) -> CertificateInfo:
    """Parse one PEM certificate's public facts.

    Raises
    ------
    ConfigError
        If ``cert_pem`` is not a PEM X.509 certificate.
    """
    cert = _load_cert(cert_pem, "certificate")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        is_ca=is_ca,
        sha256_fingerprint=hashlib.sha256(der).hexdigest(),
    )


def check_issued_by(cert_pem: bytes, ca_pem: bytes) -> None:
    """Check that ``cert_pem`` is signed by the CA ``ca_pem`` (RFC 5280 6.1.3).

    Only the issuer name and signature are checked (a pre-flight for
    configuration); the TLS stack does the full path validation at connect time.

    Raises
    ------
    ConfigError
        If either input is not a certificate or ``ca_pem`` is not a CA.
    IntegrityError
        If ``cert_pem`` was not issued by that CA.
    """
    cert = _load_cert(cert_pem, "certificate")
    ca = _load_cert(ca_pem, "CA certificate")
    if not certificate_info(ca_pem).is_ca:
        raise ConfigError("CA certificate does not have basicConstraints cA=TRUE")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise IntegrityError(
            f"certificate {cert.subject.rfc4514_string()} was not issued by "
            f"{ca.subject.rfc4514_string()}"
        ) from exc


def check_certifies_key(cert_pem: bytes, key_pem: bytes) -> None:
    """Check that ``cert_pem`` certifies the public half of ``key_pem``.

    Raises
    ------
    ConfigError
        If either input is malformed.
    IntegrityError
        If the certificate is for another key.
    """
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cert = _load_cert(cert_pem, "certificate").public_key().public_bytes(der, spki)
    if cert != _load_key(key_pem).public_key().public_bytes(der, spki):
        raise IntegrityError("the certificate is for another key")
