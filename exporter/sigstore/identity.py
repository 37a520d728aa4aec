"""Who a certificate says signed: its SANs, OIDC issuer and Fulcio extensions, and matching them against an
``IdentityPolicy`` with cosign's semantics (exact strings, or Go regular expressions that match anywhere
unless anchored).
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import MappingProxyType

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from exporter.sigstore.facts import CertificateIdentity, VerificationFailure
from exporter.sigstore.policy import IdentityPolicy

_FULCIO = "1.3.6.1.4.1.57264.1"
ISSUER_V1 = f"{_FULCIO}.1"
ISSUER_V2 = f"{_FULCIO}.8"
OTHERNAME_SAN = f"{_FULCIO}.7"

# Fulcio's extensions by the names cosign and Kyverno use (``additionalExtensions``, ``--certificate-*``
# flags). 1.1-1.6 hold raw strings; 1.8 onwards hold DER UTF8Strings (Fulcio's docs/oid-info.md).
EXTENSION_OIDS: dict[str, str] = {
    "issuer": ISSUER_V2,
    "githubWorkflowTrigger": f"{_FULCIO}.2",
    "githubWorkflowSha": f"{_FULCIO}.3",
    "githubWorkflowName": f"{_FULCIO}.4",
    "githubWorkflowRepository": f"{_FULCIO}.5",
    "githubWorkflowRef": f"{_FULCIO}.6",
    "buildSignerURI": f"{_FULCIO}.9",
    "buildSignerDigest": f"{_FULCIO}.10",
    "runnerEnvironment": f"{_FULCIO}.11",
    "sourceRepositoryURI": f"{_FULCIO}.12",
    "sourceRepositoryDigest": f"{_FULCIO}.13",
    "sourceRepositoryRef": f"{_FULCIO}.14",
    "sourceRepositoryIdentifier": f"{_FULCIO}.15",
    "sourceRepositoryOwnerURI": f"{_FULCIO}.16",
    "sourceRepositoryOwnerIdentifier": f"{_FULCIO}.17",
    "buildConfigURI": f"{_FULCIO}.18",
    "buildConfigDigest": f"{_FULCIO}.19",
    "buildTrigger": f"{_FULCIO}.20",
    "runInvocationURI": f"{_FULCIO}.21",
    "sourceRepositoryVisibilityAtSigning": f"{_FULCIO}.22",
    "deploymentEnvironment": f"{_FULCIO}.23",
}
_RAW_STRING_OIDS = frozenset(f"{_FULCIO}.{n}" for n in range(1, 7))
# Deprecated GitHub extension -> the provider-generic successor carrying the same value (Fulcio's mapping:
# event_name -> Build Trigger, sha -> Source Repository Digest, ref -> Source Repository Ref). The workflow
# repository's successor is a URL (``https://github.com/owner/repo``): its path is the old value.
_SUCCESSORS = {
    "githubWorkflowTrigger": "buildTrigger",
    "githubWorkflowSha": "sourceRepositoryDigest",
    "githubWorkflowRef": "sourceRepositoryRef",
    "githubWorkflowRepository": "sourceRepositoryURI",
}
_NAMES_BY_OID = {oid: name for name, oid in EXTENSION_OIDS.items()} | {ISSUER_V1: "issuer (v1)"}


class IdentityPolicyError(ValueError):
    """An identity policy that can never match (an invalid regular expression); says which field."""


def _der_utf8_string(data: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0C), or None when ``data`` is not exactly one."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) != offset + length:
        return None
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _extension_text(oid: str, value: bytes) -> str | None:
    if oid in _RAW_STRING_OIDS:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return _der_utf8_string(value)


def _subject_alternative_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for name in extension.value:
        if isinstance(name, x509.RFC822Name | x509.UniformResourceIdentifier | x509.DNSName):
            names.append(name.value)
        elif isinstance(name, x509.IPAddress):
            names.append(str(name.value))
        elif isinstance(name, x509.OtherName) and name.type_id.dotted_string == OTHERNAME_SAN:
            text = _der_utf8_string(name.value)
            if text is not None:
                names.append(text)
    return tuple(names)


def certificate_identity(certificate: x509.Certificate) -> CertificateIdentity:
    """Read the identity facts of a signing certificate (no trust decision)."""
    by_oid: dict[str, str] = {}
    for extension in certificate.extensions:
        oid = extension.oid.dotted_string
        if oid in _NAMES_BY_OID and isinstance(extension.value, x509.UnrecognizedExtension):
            text = _extension_text(oid, extension.value.value)
            if text is not None:
                by_oid[oid] = text
    extensions = {_NAMES_BY_OID[oid]: text for oid, text in by_oid.items()}
    issuer = extensions.get("issuer", extensions.get("issuer (v1)"))
    if issuer is not None:
        extensions["issuer"] = issuer
    extensions.pop("issuer (v1)", None)
    for old, new in _SUCCESSORS.items():
        if old not in extensions and new in extensions:
            successor = extensions[new]
            extensions[old] = (
                re.sub(r"^[a-z]+://[^/]+/", "", successor) if old == "githubWorkflowRepository" else successor
            )
    sans = _subject_alternative_names(certificate)
    return CertificateIdentity(
        subject=sans[0] if sans else "",
        subject_alternative_names=sans,
        issuer=issuer,
        extensions=MappingProxyType(extensions),
    )


def _go_pattern(pattern: str) -> str:
    """Rewrite a Go (RE2) pattern for Python's ``re`` where the two differ on the same syntax: outside
    multi-line mode Go's ``$`` matches only at the very end (Python's also before a final newline), and
    Go spells end-of-text ``\\z``. Constructs RE2 lacks (look-around, back-references) are refused."""
    if re.search(r"\(\?(?:=|!|<=|<!)", pattern) or re.search(r"(?<!\\)(?:\\\\)*\\[1-9]", pattern):
        raise re.error("look-around and back-references are not RE2 syntax")
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            pair = pattern[index : index + 2]
            out.append(r"\Z" if pair == r"\z" and not in_class else pair)
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "^":
                out.append("[^")
                index += 2
                if pattern[index : index + 1] == "]":
                    out.append("]")
                    index += 1
                continue
            if pattern[index + 1 : index + 2] == "]":
                out.append("[]")
                index += 2
                continue
        elif char == "$" and not multiline:
            out.append(r"\Z")
            index += 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_go_regexp(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` with Go ``regexp`` semantics (ASCII ``\\w\\d\\s\\b``, ``$`` at the very end);
    raises ``IdentityPolicyError`` for a pattern Go would reject."""
    try:
        return re.compile(_go_pattern(pattern), re.ASCII)
    except re.error as exc:
        raise IdentityPolicyError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def validate_identity_policy(policy: IdentityPolicy) -> None:
    """Raise ``IdentityPolicyError`` when a regexp of ``policy`` does not compile (call at policy load)."""
    for label, pattern in (("subjectRegExp", policy.subject_regexp), ("issuerRegExp", policy.issuer_regexp)):
        if pattern is not None:
            try:
                compile_go_regexp(pattern)
            except IdentityPolicyError as exc:
                raise IdentityPolicyError(f"{label}: {exc}") from None
    for name in policy.extensions:
        if name not in EXTENSION_OIDS and not re.fullmatch(r"[0-9]+(\.[0-9]+)+", name):
            raise IdentityPolicyError(
                f"extension {name!r} is neither a Fulcio extension name ({', '.join(EXTENSION_OIDS)}) "
                "nor a dotted OID"
            )


def _equals(expected: str, value: str, wildcards: bool) -> bool:
    if not wildcards:
        return value == expected
    # Imported here: exporter.policy imports this package, so a module-level import would be circular.
    from exporter.policy.wildcard import wildcard_match  # noqa: PLC0415

    return wildcard_match(expected, value)


def _matches(value: str | None, exact: str | None, pattern: str | None, wildcards: bool) -> bool:
    if value is None:
        return exact is None and pattern is None
    if exact is not None and not _equals(exact, value, wildcards):
        return False
    return pattern is None or compile_go_regexp(pattern).search(value) is not None


def _extension_value(certificate: x509.Certificate, identity: CertificateIdentity, name: str) -> str | None:
    if name in identity.extensions:
        return identity.extensions[name]
    if name in EXTENSION_OIDS:
        return None
    try:
        extension = certificate.extensions.get_extension_for_oid(ObjectIdentifier(name))
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not isinstance(extension.value, x509.UnrecognizedExtension):
        return None
    raw = extension.value.value
    text = _der_utf8_string(raw)
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return text


def match_identity(
    certificate: x509.Certificate, identity: CertificateIdentity, policy: IdentityPolicy
) -> VerificationFailure | None:
    """None when the certificate's identity satisfies ``policy``; otherwise what differs."""
    subject_required = policy.subject is not None or policy.subject_regexp is not None
    subject_matches = not subject_required or any(
        _matches(name, policy.subject, policy.subject_regexp, policy.wildcards)
        for name in identity.subject_alternative_names
    )
    if not subject_matches or not _matches(
        identity.issuer, policy.issuer, policy.issuer_regexp, policy.wildcards
    ):
        # cosign's (and so Kyverno's) wording, with what was expected added.
        return VerificationFailure(
            "identity",
            "none of the expected identities matched what was in the certificate, got subjects "
            f"[{', '.join(identity.subject_alternative_names)}] with issuer {identity.issuer or ''}"
            f" (expected {policy.describe()})",
        )
    for name, expected in sorted(policy.extensions.items()):
        found_value = _extension_value(certificate, identity, name)
        if found_value is None or not _equals(expected, found_value, policy.wildcards):
            return VerificationFailure(
                "identity",
                f"certificate extension {name} is {found_value!r}, expected {expected!r} "
                f"({policy.describe()})",
            )
    return None
