"""Serving TLS: generated pair trusted via its CA bundle, rotation picked up, bad files rejected."""

from __future__ import annotations

import asyncio
import os
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.admission.tls import ServingCertificate, TLSConfig, TLSError, generate_self_signed
from exporter.listen import start_site
from exporter.metrics import ServiceMetrics


def expiry(metrics: ServiceMetrics) -> float | None:
    return metrics.registry.get_sample_value("trustwatch_serving_certificate_expiry_timestamp_seconds")


async def fetch_peer_cert(port: int, ca_file: Path) -> bytes:
    """The certificate the server presents, after verifying it against ``ca_file`` (hostname 127.0.0.1)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        ssl_object = writer.get_extra_info("ssl_object")
        return bytes(ssl_object.getpeercert(binary_form=True))
    finally:
        writer.close()


async def ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_generated_pair_serves_https_trusted_by_its_ca(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    cert = ServingCertificate.open(TLSConfig(generate_dir=tmp_path), metrics)
    assert cert.ca_file == tmp_path / "ca.crt"
    assert oct(os.stat(tmp_path / "tls.key").st_mode & 0o777) == "0o600"
    assert (expiry(metrics) or 0) > 0
    app = web.Application()
    app.router.add_get("/", ok)
    runner, port = await start_site(app, "127.0.0.1", 0, ssl_context=cert.context)
    try:
        first = await fetch_peer_cert(port, cert.ca_file)
        # Rotate: a new pair from a new CA lands in the same files; the live context follows.
        rotated = generate_self_signed(tmp_path / "next", ("localhost",))
        for name in ("tls.crt", "tls.key"):
            (tmp_path / name).write_bytes((tmp_path / "next" / name).read_bytes())
            os.utime(tmp_path / name, (1, 1))  # a distinct mtime even within one clock tick
        assert cert.reload_if_changed() is True
        assert cert.reload_if_changed() is False
        second = await fetch_peer_cert(port, rotated.ca_file)
        assert first != second
    finally:
        await runner.cleanup()


def test_a_broken_rotation_keeps_the_current_certificate(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    pair = generate_self_signed(tmp_path, ("localhost",))
    cert = ServingCertificate.open(TLSConfig(cert_file=pair.cert_file, key_file=pair.key_file), metrics)
    before = expiry(metrics)
    pair.key_file.write_text("not a key")
    assert cert.reload_if_changed() is False
    assert expiry(metrics) == before


def test_unusable_configuration_says_what_to_fix(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    with pytest.raises(TLSError, match="both a TLS certificate and its key"):
        ServingCertificate.open(TLSConfig(cert_file=tmp_path / "c"), metrics)
    with pytest.raises(TLSError, match="cannot load TLS certificate"):
        ServingCertificate.open(TLSConfig(cert_file=tmp_path / "c", key_file=tmp_path / "k"), metrics)
    with pytest.raises(TLSError, match="no TLS certificate given"):
        ServingCertificate.open(TLSConfig(), metrics)


async def handshake(port: int, ca_file: Path, adjust: Callable[[ssl.SSLContext], None]) -> str | None:
    """The cipher negotiated by a client configured by ``adjust``, or None when the server refuses it."""
    context = ssl.create_default_context(cafile=str(ca_file))
    adjust(context)
    try:
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
    except (ssl.SSLError, ConnectionError):
        return None
    cipher = writer.get_extra_info("ssl_object").cipher()
    writer.close()
    return str(cipher[0])


def tls12_only(ciphers: str) -> Callable[[ssl.SSLContext], None]:
    def adjust(context: ssl.SSLContext) -> None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)

    return adjust


def tls11(context: ssl.SSLContext) -> None:
    with warnings.catch_warnings():  # TLSv1_1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")


async def test_only_tls12_and_later_with_aead_suites(tmp_path: Path) -> None:
    cert = ServingCertificate.open(TLSConfig(generate_dir=tmp_path), ServiceMetrics(CollectorRegistry()))
    assert cert.ca_file is not None
    app = web.Application()
    app.router.add_get("/", ok)
    runner, port = await start_site(app, "127.0.0.1", 0, ssl_context=cert.context)
    try:
        assert await handshake(port, cert.ca_file, lambda _context: None) in (
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_128_GCM_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
        )
        assert (
            await handshake(port, cert.ca_file, tls12_only("ECDHE+AESGCM")) == "ECDHE-ECDSA-AES256-GCM-SHA384"
        )
        assert (
            await handshake(port, cert.ca_file, tls12_only("ECDHE+CHACHA20"))
            == "ECDHE-ECDSA-CHACHA20-POLY1305"
        )
        for legacy in ("ECDHE+AES+SHA1", "ECDHE+AES+SHA256:!AESGCM", "ECDHE+AES+SHA384:!AESGCM"):
            assert await handshake(port, cert.ca_file, tls12_only(legacy)) is None, legacy
        assert await handshake(port, cert.ca_file, tls11) is None
    finally:
        await runner.cleanup()
