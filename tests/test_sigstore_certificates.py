"""Certificate chains at a signing time, with the path cache: a cached path is reused only while every
certificate on it is valid at the new signing time."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.sigstore.certificates import clear_chain_cache, verify_private_chain
from exporter.sigstore.facts import VerificationFailure


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    years: tuple[int, int],
    *,
    ca: bool,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(years[0], 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(years[1], 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("signer@example.com")]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def test_cached_path_is_rechecked_for_validity_at_another_time() -> None:
    root_key, intermediate_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _issue("root", root_key, None, (2020, 2040), ca=True)
    intermediate = _issue("intermediate", intermediate_key, ("root", root_key), (2021, 2022), ca=True)
    leaf = _issue("leaf", leaf_key, ("intermediate", intermediate_key), (2021, 2040), ca=False)
    clear_chain_cache()
    first = verify_private_chain(leaf, (intermediate,), (root,), (), datetime(2021, 6, 1, tzinfo=UTC))
    again = verify_private_chain(leaf, (intermediate,), (root,), (), datetime(2021, 7, 1, tzinfo=UTC))
    assert isinstance(first, tuple) and again is first  # the cached path
    later = verify_private_chain(leaf, (intermediate,), (root,), (), datetime(2023, 6, 1, tzinfo=UTC))
    assert isinstance(later, VerificationFailure) and later.check == "certificate-chain"


def test_a_leaf_whose_usage_excludes_code_signing_is_refused() -> None:
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _issue("root", root_key, None, (2020, 2040), ca=True)
    at = datetime(2022, 1, 1, tzinfo=UTC)
    signer = _issue("leaf", leaf_key, ("root", root_key), (2021, 2040), ca=False)
    assert isinstance(verify_private_chain(signer, (), (root,), (), at), tuple)
    server = _issue(
        "leaf", leaf_key, ("root", root_key), (2021, 2040), ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    result = verify_private_chain(server, (), (root,), (), at)
    assert isinstance(result, VerificationFailure) and "code signing" in result.reason
    ca_leaf = _issue("leaf", leaf_key, ("root", root_key), (2021, 2040), ca=True)
    result = verify_private_chain(ca_leaf, (), (root,), (), at)
    assert isinstance(result, VerificationFailure) and "digital signatures" in result.reason
