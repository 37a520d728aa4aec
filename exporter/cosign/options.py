"""How to verify, beyond who may sign: trust material, log/SCT requirements, where signatures live, N of M."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.cosign.attestors import AttestorError, AttestorSpec
from exporter.cosign.formats.fields import FormatError
from exporter.cosign.formats.legacy import load_certificates
from exporter.sigstore import TrustedRoot
from exporter.sigstore.keys import TrustedKey


@dataclass(frozen=True)
class VerificationOptions:
    """Options shared by every attestor of one verification.

    ``attestors``: who may sign; ``threshold`` of them (distinct attestors, Kyverno's ``count``) must have
    signed. ``trusted_root``: Fulcio CAs, Rekor and CT log keys, TSAs (default: the shipped public-good root,
    see :func:`exporter.sigstore.public_good_root`). ``rekor_keys``, ``ct_log_keys`` and ``tsa_chains`` come
    from a policy's ``rekor.pubkey``, ``ctlog.pubkey`` and ``ctlog.tsaCertChain`` and replace the root's
    material of the same kind (see :class:`exporter.sigstore.TrustPolicy`). ``rekor_url`` (Kyverno
    ``rekor.url``, ImageValidatingPolicy ``ctlog.url``) keeps only the root's log at that URL.

    ``ignore_tlog``: ``None`` keeps the per-format default — a Rekor entry or an RFC 3161 timestamp is
    required for keyless and certificate signatures and for key-signed bundles (cosign 3 always logs them),
    optional for legacy key-signed ``.sig``/``.att`` layers (checked when present and a Rekor key is given);
    ``True`` never requires one (Kyverno ``rekor.ignoreTlog``, ``--insecure-ignore-tlog``); ``False``
    requires one for every format. ``ignore_sct`` skips the certificate's embedded SCT check (Kyverno
    ``ctlog.ignoreSCT``, ``--insecure-ignore-sct``).

    ``signature_repository`` looks for signatures and attestations in another repository (Kyverno
    ``repository``, cosign's ``COSIGN_REPOSITORY``): ``registry/path`` without tag or digest.
    ``signature_tag_prefix`` comes before cosign's legacy ``sha256-<hex>.sig``/``.att`` tags (Kyverno
    ``source.tagPrefix``, cosign ``--attachment-tag-prefix``).

    ``annotations`` (Kyverno ``annotations``, cosign ``verify -a key=value``): every pair must be present
    and equal in a signature's simple-signing payload ``optional`` section, or that signature does not
    count. A Sigstore bundle signature has no such payload, so it never carries them. Attestations are not
    checked against them (as cosign).
    """

    attestors: tuple[AttestorSpec, ...]
    threshold: int = 1
    trusted_root: TrustedRoot | None = None
    rekor_keys: tuple[TrustedKey, ...] = ()
    rekor_url: str | None = None
    ct_log_keys: tuple[TrustedKey, ...] = ()
    tsa_chains: tuple[str, ...] = ()
    ignore_tlog: bool | None = None
    ignore_sct: bool = False
    signature_repository: str | None = None
    signature_tag_prefix: str = ""
    annotations: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.attestors:
            raise AttestorError("at least one attestor (key, certificate or keyless identity) is required")
        names = [attestor.name for attestor in self.attestors]
        if len(set(names)) != len(names):
            raise AttestorError(f"attestor names must be distinct, got {', '.join(names)}")
        for index, chain in enumerate(self.tsa_chains):
            try:
                load_certificates(chain, f"TSA certificate chain {index + 1}")
            except FormatError as exc:
                raise AttestorError(str(exc)) from None
        if not 1 <= self.threshold <= len(self.attestors):
            raise AttestorError(
                f"threshold (count) {self.threshold} must be between 1 and the number of attestors "
                f"({len(self.attestors)})"
            )
