"""What a verifier trusts (``TrustPolicy``) and which signer identity it accepts (``IdentityPolicy``).

Both are built once (from a ClusterPolicy attestor or CLI flags) and reused for every signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from cryptography import x509

from exporter.sigstore.keys import TrustedKey
from exporter.sigstore.trusted_root import TrustedRoot

_NO_EXTENSIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class TrustPolicy:
    """Trust material and which proofs are required.

    ``trusted_root`` supplies Fulcio CAs, Rekor and CT log keys and timestamp authorities. Explicit material
    from a policy *replaces* the root's of the same kind: ``rekor_keys`` (Kyverno ``rekor.pubkey``),
    ``ctlog_keys`` (``ctlog.pubkey``), ``tsa_chains`` (``tsaCertChain``: each chain leaf first, root
    last), and ``certificate_roots`` plus ``certificate_intermediates`` (Kyverno ``keyless.roots`` or
    ``certificates``: your own PKI instead of Fulcio).

    ``require_tlog`` (Kyverno ``rekor.ignoreTlog: false``, cosign without ``--insecure-ignore-tlog``): a
    verified Rekor entry for this signature must exist. Without one, the signing time must come from an
    RFC 3161 timestamp, or, when neither is required nor present, certificates must be valid *now*.
    ``require_sct`` (Kyverno ``ctlog.ignoreSCT: false``): a Fulcio certificate's embedded SCT must verify.
    ``rekor_url`` (Kyverno ``rekor.url``, ImageValidatingPolicy ``ctlog.url``): only entries of the trusted
    root's logs whose ``baseUrl`` is this URL count (compared by :func:`log_url`); with ``rekor_keys`` the
    keys are the log and the URL only names it.
    """

    trusted_root: TrustedRoot
    require_tlog: bool = True
    require_sct: bool = True
    rekor_keys: tuple[TrustedKey, ...] = ()
    ctlog_keys: tuple[TrustedKey, ...] = ()
    tsa_chains: tuple[tuple[x509.Certificate, ...], ...] = ()
    certificate_roots: tuple[x509.Certificate, ...] = ()
    certificate_intermediates: tuple[x509.Certificate, ...] = ()
    rekor_url: str | None = None


def log_url(url: str) -> str:
    """A log URL as compared with a trusted root's ``baseUrl``: scheme, host and path, no trailing slash."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class IdentityPolicy:
    """One acceptable signer identity of a certificate; every given field must match.

    ``subject`` is compared with every Subject Alternative Name (email, URI, DNS name, Fulcio's OtherName
    username); ``issuer`` with Fulcio's OIDC issuer extension (new ``1.3.6.1.4.1.57264.1.8`` or old ``.1.1``).
    Exact fields compare whole strings; ``*_regexp`` fields use Go ``regexp.MatchString`` semantics as cosign
    and Kyverno do: a match anywhere in the value unless the pattern is anchored (``^…$``).
    ``extensions`` maps a Fulcio extension, by cosign/Kyverno name (``githubWorkflowRepository``,
    ``sourceRepositoryURI``…, see ``exporter.sigstore.identity.EXTENSION_OIDS``) or dotted OID, to the exact
    value required; the GitHub workflow names read the deprecated OID and fall back to its successor.

    ``wildcards``: Kyverno's ``keyless`` attestors match ``subject``, ``issuer`` and ``additionalExtensions``
    values as wildcard patterns (``*`` any run of characters, ``?`` one character: ``*@example.com``,
    ``https://github.com/org/repo/.github/workflows/release.yml@refs/tags/*``); cosign's
    ``--certificate-identity`` and ``--certificate-oidc-issuer`` are exact. Policies set it, the CLI does not.
    """

    subject: str | None = None
    subject_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    extensions: Mapping[str, str] = field(default_factory=lambda: _NO_EXTENSIONS)
    wildcards: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    def describe(self) -> str:
        """How failure messages name this identity: ``subject=… issuer=…``."""
        parts = [
            f"{label}={value}"
            for label, value in (
                ("subject", self.subject),
                ("subjectRegExp", self.subject_regexp),
                ("issuer", self.issuer),
                ("issuerRegExp", self.issuer_regexp),
                *sorted(self.extensions.items()),
            )
            if value is not None
        ]
        return " ".join(parts) or "any identity"
