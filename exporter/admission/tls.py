"""Serving TLS for the webhook: operator-provided cert/key files reloaded on change, or a generated pair.

The API server only talks HTTPS to webhooks. In a cluster, cert-manager (or the Helm chart) mounts a
Secret whose files rotate in place, so the files are polled and re-loaded into the live SSLContext: new
handshakes use the new certificate, no restart needed. Without files (local runs, tests), a private CA and
a serving certificate for the given names are generated at start; the CA bundle is written out so a
client (or the webhook configuration's ``caBundle``) can trust it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.metrics import ServiceMetrics

log = logging.getLogger(__name__)

GENERATED_VALIDITY = datetime.timedelta(days=365)
# What the API server (Go crypto/tls) and current clients negotiate; no CBC, RC4, 3DES, RSA key exchange.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TLSError(ValueError):
    """The certificate or key cannot be used; the message names the file and what to fix."""


@dataclass(frozen=True)
class TLSConfig:
    """Either ``cert_file`` + ``key_file``, or ``generate_dir`` (+ ``dns_names``) for a generated pair."""

    cert_file: Path | None = None
    key_file: Path | None = None
    generate_dir: Path | None = None
    dns_names: tuple[str, ...] = ("localhost",)
    reload_interval: float = 10.0


@dataclass(frozen=True)
class GeneratedPair:
    """Files written by :func:`generate_self_signed`."""

    cert_file: Path
    key_file: Path
    ca_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_alt_names(dns_names: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in (*dns_names, "127.0.0.1", "::1"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def _write_private(path: Path, data: bytes) -> None:
    """Key material is written owner-readable only, atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def generate_self_signed(directory: Path, dns_names: tuple[str, ...]) -> GeneratedPair:
    """A fresh CA and a serving certificate signed by it (ECDSA P-256) written into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("trustwatch webhook CA"))
        .issuer_name(_name("trustwatch webhook CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + GENERATED_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0] if dns_names else "localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + GENERATED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(dns_names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pair = GeneratedPair(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    _write_private(
        pair.key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    pair.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    log.info(
        "generated a self-signed webhook certificate",
        extra={"ca_bundle": str(pair.ca_file), "dns_names": list(dns_names)},
    )
    return pair


def certificate_expiry(cert_file: Path) -> float:
    """Unix time at which the first certificate in ``cert_file`` expires."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSError(f"{cert_file}: not a readable PEM certificate ({exc})") from exc
    return cert.not_valid_after_utc.timestamp()


class ServingCertificate:
    """An SSLContext for the webhook whose certificate follows the files on disk.

    Build it with :meth:`open`; run :meth:`watch` as a task to pick up rotated files. A rotation that
    fails to load keeps the previous certificate in place (and logs why), so a half-written Secret update
    never takes the webhook down.
    """

    def __init__(
        self, cert_file: Path, key_file: Path, metrics: ServiceMetrics, ca_file: Path | None
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.ca_file = ca_file
        self._metrics = metrics
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        # TLS 1.2 suites: forward-secret key exchange with AEAD ciphers only (TLS 1.3's are all AEAD).
        self.context.set_ciphers(TLS12_CIPHERS)
        self.context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        self._stamp: tuple[float, float] | None = None
        self._load()

    @classmethod
    def open(cls, config: TLSConfig, metrics: ServiceMetrics) -> ServingCertificate:
        """Use the configured files, or generate a pair when only ``generate_dir`` is set."""
        if config.cert_file is not None and config.key_file is not None:
            return cls(config.cert_file, config.key_file, metrics, None)
        if config.cert_file is not None or config.key_file is not None:
            raise TLSError("give both a TLS certificate and its key, or neither to generate a pair")
        if config.generate_dir is None:
            raise TLSError("no TLS certificate given and no directory to generate one into")
        pair = generate_self_signed(config.generate_dir, config.dns_names)
        return cls(pair.cert_file, pair.key_file, metrics, pair.ca_file)

    def _file_stamp(self) -> tuple[float, float]:
        return (self.cert_file.stat().st_mtime, self.key_file.stat().st_mtime)

    def _load(self) -> None:
        try:
            stamp = self._file_stamp()
            # Prove the pair loads on a scratch context first: a failed load can leave a context half-updated.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                f"cannot load TLS certificate {self.cert_file} with key {self.key_file}: {exc}; "
                "check that both are PEM and belong together"
            ) from exc
        self._stamp = stamp
        self._metrics.certificate_expiry.set(certificate_expiry(self.cert_file))

    def reload_if_changed(self) -> bool:
        """Re-load when either file changed; True when a new certificate is now served."""
        try:
            stamp = self._file_stamp()
        except OSError as exc:
            log.warning("cannot stat TLS files; keeping the current certificate", extra={"error": str(exc)})
            return False
        if stamp == self._stamp:
            return False
        try:
            self._load()
        except TLSError as exc:
            log.warning(
                "TLS files changed but do not load; keeping the current certificate",
                extra={"error": str(exc)},
            )
            return False
        log.info("reloaded the webhook's TLS certificate", extra={"cert_file": str(self.cert_file)})
        return True

    async def watch(self, interval: float) -> None:
        """Poll the files every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
