"""The parsed, validated form of Kyverno ``ClusterPolicy``/``Policy`` objects restricted to ``verifyImages``.

Everything here is immutable (frozen dataclasses, tuples) so a loaded policy set can be shared by concurrent
admission requests and swapped atomically on reload. Only what trustwatch enforces is represented: the loader
rejects every other field instead of dropping it (see ``docs/policies.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from exporter.cosign.options import VerificationOptions
from exporter.policy.conditions import ConditionBlock
from exporter.policy.images import normalize_image
from exporter.policy.wildcard import wildcard_match

Action = Literal["Audit", "Enforce"]
FailurePolicy = Literal["Fail", "Ignore"]
PolicyKind = Literal["ClusterPolicy", "Policy"]
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]

SEVERITY_ANNOTATION = "policies.kyverno.io/severity"
CATEGORY_ANNOTATION = "policies.kyverno.io/category"
SCORED_ANNOTATION = "policies.kyverno.io/scored"
AUTOGEN_ANNOTATION = "pod-policies.kyverno.io/autogen-controllers"

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Rekor:
    """``keys.rekor``: transparency-log settings of a key attestor.

    ``pubkey`` is None when not given; how the log is checked is the verifier's decision (see
    docs/policies.md). ``url`` names the trusted root's log whose entries count (never contacted: entries
    are checked offline).
    """

    pubkey: str | None
    ignore_tlog: bool
    url: str | None = None


@dataclass(frozen=True)
class SecretRef:
    """A Kubernetes Secret holding the public key (``keys.secret``, or a ``k8s://ns/name`` key reference)."""

    name: str
    namespace: str


@dataclass(frozen=True)
class KeyEntry:
    """One attestor entry verified with a public key: exactly one of ``public_keys`` and ``secret`` is set.

    ``public_keys`` holds exactly ONE PEM ``PUBLIC KEY`` block: like Kyverno, the loader expands a block of
    several keys into one entry per key, so entry indexes in messages match Kyverno's. ``annotations``
    must be in each signature's simple-signing payload (see :class:`exporter.cosign.VerificationOptions`).
    """

    public_keys: str | None
    secret: SecretRef | None
    signature_algorithm: str
    rekor: Rekor | None
    annotations: tuple[tuple[str, str], ...] = ()


CertificateKind = Literal["certificates", "keyless"]


@dataclass(frozen=True)
class CertificateEntry:
    """One attestor entry verified by a signing certificate: Kyverno ``certificates`` (the user's own PKI:
    ``cert``/``certChain``) or ``keyless`` (a Fulcio certificate whose identity matches).

    ``options`` are ready for the signature pipeline: the attestor with its identities, roots, and the
    entry's ``rekor``/``ctlog`` settings. ``trusted_root`` is None there: the verifier supplies the root
    trustwatch runs with (``--trusted-root``, else the shipped public-good root).
    """

    kind: CertificateKind
    options: VerificationOptions


AttestorEntry = KeyEntry | CertificateEntry


@dataclass(frozen=True)
class Attestor:
    """``attestors[]``: a set of entries of which ``required_count`` must verify (Kyverno's AttestorSet)."""

    count: int | None
    entries: tuple[AttestorEntry, ...]

    @property
    def required_count(self) -> int:
        """``count`` when given, else every entry (Kyverno's default)."""
        return self.count if self.count is not None else len(self.entries)


@dataclass(frozen=True)
class AttestationCheck:
    """``verifyImages[].attestations[]``: in-toto statements of ``predicate_type`` (cosign short names already
    expanded to URIs) that ``attestors`` must have signed about the image digest, and whose predicates must
    all satisfy ``conditions``."""

    predicate_type: str
    attestors: tuple[Attestor, ...]
    conditions: tuple[ConditionBlock, ...]


@dataclass(frozen=True)
class ImageVerification:
    """One ``verifyImages[]`` entry, legacy ``image``/``key`` syntax already converted to the current one.

    ``failure_action`` is the entry's own ``failureAction`` (None when absent); use
    :func:`exporter.policy.action.effective_action` for the action that applies. ``repository`` is where
    signatures are looked for instead of the image's repository (Kyverno ``repository``).
    ``referrers_only``: only Sigstore bundles and signatures attached as OCI referrers count
    (``type: SigstoreBundle`` or ``cosignOCI11: true``); otherwise legacy ``.sig``/``.att`` tags and
    referrers are both searched.
    """

    image_references: tuple[str, ...]
    skip_image_references: tuple[str, ...]
    attestors: tuple[Attestor, ...]
    required: bool
    verify_digest: bool
    mutate_digest: bool
    failure_action: Action | None
    use_cache: bool = True
    repository: str | None = None
    referrers_only: bool = False
    attestations: tuple[AttestationCheck, ...] = ()

    def applies_to(self, image: str) -> bool:
        """Whether this entry verifies ``image`` (as written in the Pod spec).

        Like Kyverno, patterns are matched with wildcards against the normalised reference
        (``nginx`` -> ``docker.io/library/nginx:latest``, ``user/app:1`` -> ``docker.io/user/app:1``;
        a digest replaces the tag), and ``skipImageReferences`` wins over ``imageReferences``.
        Raises ValueError for an image that is not a valid reference.
        """
        return self.applies_to_reference(normalize_image(image))

    def applies_to_reference(self, reference: str) -> bool:
        """:meth:`applies_to` for an already normalised reference."""
        if any(wildcard_match(pattern, reference) for pattern in self.skip_image_references):
            return False
        return any(wildcard_match(pattern, reference) for pattern in self.image_references)


@dataclass(frozen=True)
class SelectorRequirement:
    """One ``matchExpressions`` entry; ``values`` is empty for Exists/DoesNotExist."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...]


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; an empty one matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()


@dataclass(frozen=True)
class ResourceFilter:
    """``match``/``exclude`` ``resources`` block: every given attribute must match (AND), any value of a
    list attribute may (OR). Empty tuples / None mean "not constrained". The legacy singular ``name`` is
    folded into ``names``."""

    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    operations: tuple[Operation, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MatchBlock:
    """``match``/``exclude``: ``any`` (one filter suffices) or ``all`` (every filter must match).

    The legacy form with ``resources`` directly under ``match``/``exclude`` is stored as ``all`` with one
    filter, which Kyverno evaluates identically. At most one of ``any``/``all`` is non-empty.
    """

    any: tuple[ResourceFilter, ...] = ()
    all: tuple[ResourceFilter, ...] = ()

    @property
    def filters(self) -> tuple[ResourceFilter, ...]:
        """Every filter of the block, whichever list it is in."""
        return self.any + self.all


@dataclass(frozen=True)
class Rule:
    """A ``verifyImages`` rule. Autogen rules (``autogen-<rule>``, ``autogen-cronjob-<rule>``) are ordinary
    rules with ``is_autogen`` set and ``autogen_of`` naming the Pod rule they were generated from."""

    name: str
    match: MatchBlock
    exclude: MatchBlock | None
    verify_images: tuple[ImageVerification, ...]
    is_autogen: bool = False
    autogen_of: str | None = None


@dataclass(frozen=True)
class ActionOverride:
    """``validationFailureActionOverrides[]``: ``action`` applies in namespaces matching any of
    ``namespaces`` (wildcards) and, when given, ``namespace_selector``; with no namespaces the selector
    alone decides."""

    action: Action
    namespaces: tuple[str, ...]
    namespace_selector: LabelSelector | None


class PolicyIdentity:
    """What every policy kind shares, for caches, messages and reports. Subclasses are frozen dataclasses
    with ``eq=False``: equality and hashing use (kind, namespace, name, version), so policies can key caches.
    ``version`` is a content hash of the policy (metadata that changes without the policy changing, such as
    ``resourceVersion``, excluded): the cache key for "this version of the policy"."""

    kind: str
    name: str
    namespace: str | None
    annotations: Mapping[str, str]
    version: str

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyIdentity):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[str, str | None, str, str]:
        return (self.kind, self.namespace, self.name, self.version)

    @property
    def key(self) -> tuple[str, str | None, str]:
        """(kind, namespace, name): unique within a policy set."""
        return (self.kind, self.namespace, self.name)

    @property
    def display_name(self) -> str:
        """How messages name the policy: ``name``, or ``namespace/name`` for a namespaced kind."""
        return self.name if self.namespace is None else f"{self.namespace}/{self.name}"

    @property
    def severity(self) -> str | None:
        """``policies.kyverno.io/severity``, or None."""
        return self.annotations.get(SEVERITY_ANNOTATION) or None

    @property
    def category(self) -> str | None:
        """``policies.kyverno.io/category``, or None."""
        return self.annotations.get(CATEGORY_ANNOTATION) or None

    @property
    def scored(self) -> bool:
        """False only when ``policies.kyverno.io/scored`` is ``"false"`` (failures then report as warn)."""
        return self.annotations.get(SCORED_ANNOTATION) != "false"


@dataclass(frozen=True, eq=False)
class KyvernoPolicy(PolicyIdentity):
    """A validated ``ClusterPolicy``/``Policy`` whose ``rules`` already include the autogen rules."""

    kind: PolicyKind
    name: str
    namespace: str | None
    annotations: Mapping[str, str]
    validation_failure_action: Action
    overrides: tuple[ActionOverride, ...]
    failure_policy: FailurePolicy
    rules: tuple[Rule, ...]
    version: str
    admission: bool = True
    webhook_timeout_seconds: int | None = None
    emit_warning: bool = False
    source: str = field(default="<string>", compare=False)

    @property
    def report_name(self) -> str:
        """The PolicyReport name Kyverno uses for this policy's results: ``cpol-<name>`` / ``pol-<name>``."""
        return f"cpol-{self.name}" if self.kind == "ClusterPolicy" else f"pol-{self.name}"


def frozen_mapping(values: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of ``values`` (shared empty mapping for None)."""
    return MappingProxyType(dict(values)) if values else _EMPTY
