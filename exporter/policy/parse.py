"""Turn one decoded ``ClusterPolicy``/``Policy`` object into a validated :class:`KyvernoPolicy`.

Supported: ``verifyImages`` rules with cosign attestors (``keys``, ``certificates``, ``keyless``), in both
the legacy (``image``/``key``) and the current (``imageReferences``/``attestors``) syntax, with ``type``
Cosign or SigstoreBundle and a signature ``repository``; ``match``/``exclude``, failure actions and
overrides, ``failurePolicy``, autogen. Anything else Kyverno knows is rejected with the reason, anything it
does not know is rejected as unknown: a policy must never be weaker than its author believes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from exporter.cosign.attestors import AttestorError, CertificateAttestor, KeylessAttestor
from exporter.cosign.discovery import parse_signature_repository
from exporter.cosign.formats.intoto import predicate_type_uri
from exporter.cosign.options import VerificationOptions
from exporter.policy.autogen import parse_controllers_annotation, with_autogen_rules
from exporter.policy.conditions import OPERATORS, Condition, ConditionBlock
from exporter.policy.expressions import Template, compile_template
from exporter.policy.fields import FieldError, Fields, is_empty
from exporter.policy.match import parse_kind_selector
from exporter.policy.model import (
    AUTOGEN_ANNOTATION,
    Action,
    ActionOverride,
    AttestationCheck,
    Attestor,
    AttestorEntry,
    CertificateEntry,
    FailurePolicy,
    ImageVerification,
    KeyEntry,
    KyvernoPolicy,
    LabelSelector,
    MatchBlock,
    Operation,
    PolicyKind,
    Rekor,
    ResourceFilter,
    Rule,
    SecretRef,
    SelectorOperator,
    SelectorRequirement,
    frozen_mapping,
)
from exporter.registry.reference import InvalidReferenceError, normalize_registry
from exporter.sigstore import IdentityPolicy
from exporter.sigstore.keys import KeyLoadError, TrustedKey, load_public_keys

K = TypeVar("K", bound=str)
API_VERSIONS = frozenset({"kyverno.io/v1", "kyverno.io/v2beta1"})
POLICY_KINDS: dict[str, PolicyKind] = {"ClusterPolicy": "ClusterPolicy", "Policy": "Policy"}
ACTIONS: dict[str, Action] = {"Audit": "Audit", "audit": "Audit", "Enforce": "Enforce", "enforce": "Enforce"}
FAILURE_POLICIES: dict[str, FailurePolicy] = {"Fail": "Fail", "Ignore": "Ignore"}
OPERATIONS: dict[str, Operation] = {
    "CREATE": "CREATE",
    "UPDATE": "UPDATE",
    "DELETE": "DELETE",
    "CONNECT": "CONNECT",
}
SELECTOR_OPERATORS: dict[str, SelectorOperator] = {
    "In": "In",
    "NotIn": "NotIn",
    "Exists": "Exists",
    "DoesNotExist": "DoesNotExist",
}
SIGNATURE_ALGORITHMS = {alg: alg for alg in ("sha224", "sha256", "sha384", "sha512")}
MAX_RULE_NAME = 63

_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)
_SECRET_KEY_REF = re.compile(r"k8s://(?P<namespace>[^/\s]+)/(?P<name>[^/\s]+)")

_NOT_ENFORCED = "trustwatch only enforces verifyImages rules; move this rule to a policy run by Kyverno"
_IN_KEYLESS = "is a field of an attestor entry; move it into attestors[].entries[].keyless"
# verifyImages types: Cosign looks in legacy tags and referrers; SigstoreBundle only in referrers.
VERIFICATION_TYPES = {"Cosign": False, "SigstoreBundle": True}

SPEC_UNSUPPORTED = {"applyRules": "only applyRules: All (the default) is supported"}
WEBHOOK_UNSUPPORTED = {
    "matchConditions": "webhook match conditions are not supported; express the scope with match/exclude",
}
_ONLY_GENERATE_MUTATE = "only affects generate and mutate rules, which trustwatch rejects; remove it"
# Fields accepted only with the value that asks for what trustwatch does anyway (Kyverno's default, or
# ``background: false``); any other value asks for something trustwatch does not do, so it is an error.
SPEC_FIXED: dict[str, tuple[bool, str]] = {
    "schemaValidation": (True, _ONLY_GENERATE_MUTATE),
    "useServerSideApply": (False, _ONLY_GENERATE_MUTATE),
    "generateExisting": (False, _ONLY_GENERATE_MUTATE),
    "generateExistingOnPolicyUpdate": (False, _ONLY_GENERATE_MUTATE),
    "mutateExistingOnPolicyUpdate": (False, _ONLY_GENERATE_MUTATE),
    "background": (
        False,
        "background scans of existing resources are not done by trustwatch, which verifies images at "
        "admission; set background: false (or remove it), or run the policy in Kyverno for background "
        "reports",
    ),
}
RULE_FIXED: dict[str, tuple[bool, str]] = {
    "skipBackgroundRequests": (
        True,
        "trustwatch receives no requests from a Kyverno background controller, so there is nothing to stop "
        "skipping; remove it",
    ),
}
RULE_UNSUPPORTED = {
    "validate": f"validate rules are not supported: {_NOT_ENFORCED}",
    "mutate": f"mutate rules are not supported: {_NOT_ENFORCED}",
    "generate": f"generate rules are not supported: {_NOT_ENFORCED}",
    "context": "context variables are not supported; remove the context entries",
    "preconditions": "preconditions are not supported; express the scope with match/exclude",
    "celPreconditions": "celPreconditions are not supported; express the scope with match/exclude",
    "imageExtractors": "custom imageExtractors are not supported; only Pod and Pod template images are "
    "checked",
    "reportProperties": "reportProperties are not supported; remove them",
}
_USER_INFO = "matching on the requesting user is not supported; remove it or match on resources only"
BLOCK_UNSUPPORTED = {"subjects": _USER_INFO, "roles": _USER_INFO, "clusterRoles": _USER_INFO}
VERIFY_UNSUPPORTED = {
    "roots": f"roots {_IN_KEYLESS}",
    "subject": f"subject {_IN_KEYLESS}",
    "issuer": f"issuer {_IN_KEYLESS}",
    "additionalExtensions": f"additionalExtensions {_IN_KEYLESS}",
    "imageRegistryCredentials": "per-rule registry credentials are not supported; configure registry "
    "credentials on trustwatch instead",
    "validate": "verifyImages validate (deny) conditions are not supported; remove them",
}
ENTRY_UNSUPPORTED = {
    "attestor": "nested attestor sets are not supported; flatten them into entries with a count",
    "repository": "a signature repository per attestor entry is not supported; set repository on the "
    "verifyImages entry",
}
ATTESTATION_ANNOTATIONS = (
    "annotations are checked on image signatures only (cosign reads them from the simple-signing payload, "
    "which attestations do not have); move them to the verifyImages attestors or remove them"
)
Annotations = tuple[tuple[str, str], ...]
CTLOG_UNSUPPORTED = {
    "url": "trustwatch never contacts a certificate transparency log: it checks a certificate's embedded "
    "SCT offline, against the log's public key (ctlog.pubkey or the trusted root); remove url",
}
ENTRY_KINDS = ("keys", "certificates", "keyless")
KEYS_UNSUPPORTED = {
    "kms": "KMS keys are not supported; put the public key in publicKeys or a Secret",
    "ctlog": "certificate transparency log settings only apply to keyless verification; remove ctlog",
}


def _check_fixed(fields: Fields, fixed: Mapping[str, tuple[bool, str]]) -> None:
    """Read the fields of ``fixed``: each may only hold the value trustwatch's behaviour matches."""
    for key, (accepted, reason) in fixed.items():
        if fields.boolean(key, accepted) != accepted:
            raise FieldError(fields.at(key), reason)


def parse_selector(fields: Fields) -> LabelSelector:
    """A label selector (``matchLabels``/``matchExpressions``); shared with the CEL policy kinds."""
    labels = fields.string_map("matchLabels") or {}
    expressions: list[SelectorRequirement] = []
    for item in fields.objects("matchExpressions"):
        operator = item.choice("operator", SELECTOR_OPERATORS)
        if operator is None:
            raise FieldError(item.at("operator"), "is required")
        values = item.strings("values")
        if operator in ("In", "NotIn") and not values:
            raise FieldError(item.at("values"), f"operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise FieldError(item.at("values"), f"operator {operator} takes no values")
        expressions.append(SelectorRequirement(item.required_string("key"), operator, values))
        item.finish({})
    fields.finish({})
    return LabelSelector(tuple(sorted(labels.items())), tuple(expressions))


def optional_selector(fields: Fields, key: str) -> LabelSelector | None:
    """The selector at ``key``, or None when absent."""
    child = fields.child(key)
    return None if child is None else parse_selector(child)


def _resources(fields: Fields, *, kinds_required: bool) -> ResourceFilter:
    kinds = fields.strings("kinds")
    for index, kind in enumerate(kinds):
        if parse_kind_selector(kind) == ("", "", "", ""):
            raise FieldError(f"{fields.at('kinds')}[{index}]", f"invalid kind selector {kind!r}")
    if kinds_required and not kinds:
        raise FieldError(fields.at("kinds"), "is required in match: name the kinds the rule applies to")
    name, names = fields.string("name"), fields.strings("names")
    if name and names:
        raise FieldError(fields.at("name"), "use either name (deprecated) or names, not both")
    operations = fields.strings("operations")
    for index, operation in enumerate(operations):
        if operation not in OPERATIONS:
            raise FieldError(
                f"{fields.at('operations')}[{index}]",
                f"unsupported operation {operation!r}; allowed: {', '.join(OPERATIONS)}",
            )
    result = ResourceFilter(
        kinds=kinds,
        names=(name,) if name else names,
        namespaces=fields.strings("namespaces"),
        selector=optional_selector(fields, "selector"),
        namespace_selector=optional_selector(fields, "namespaceSelector"),
        operations=tuple(OPERATIONS[op] for op in operations),
        annotations=tuple(sorted((fields.string_map("annotations") or {}).items())),
    )
    fields.finish({})
    if result == ResourceFilter():
        raise FieldError(fields.path, "an empty resources filter selects nothing; give at least kinds")
    return result


def _filter_entry(fields: Fields, *, kinds_required: bool) -> ResourceFilter:
    resources = fields.child("resources")
    fields.finish(BLOCK_UNSUPPORTED)
    if resources is None:
        raise FieldError(fields.at("resources"), "is required")
    return _resources(resources, kinds_required=kinds_required)


def _match_block(fields: Fields, *, is_match: bool) -> MatchBlock:
    any_ = tuple(_filter_entry(item, kinds_required=is_match) for item in fields.objects("any"))
    all_ = tuple(_filter_entry(item, kinds_required=is_match) for item in fields.objects("all"))
    legacy = fields.child("resources")
    legacy_filter = None
    if legacy is not None and not is_empty(legacy.value):
        legacy_filter = _resources(legacy, kinds_required=is_match)
    fields.finish(BLOCK_UNSUPPORTED)
    given = [key for key, value in (("any", any_), ("all", all_), ("resources", legacy_filter)) if value]
    if len(given) > 1:
        raise FieldError(fields.path, f"use only one of any, all and resources (found {', '.join(given)})")
    if not given:
        raise FieldError(fields.path, "needs any, all or resources")
    return MatchBlock(any=any_, all=all_ if legacy_filter is None else (legacy_filter,))


def _rekor(fields: Fields | None) -> Rekor | None:
    if fields is None:
        return None
    rekor = Rekor(
        pubkey=fields.string("pubkey"),
        ignore_tlog=fields.boolean("ignoreTlog", False),
        url=rekor_url_at(fields),
    )
    fields.finish({})
    if rekor.pubkey:
        check_public_keys(rekor.pubkey, fields.at("pubkey"))
    return rekor


def rekor_url_at(fields: Fields) -> str | None:
    """``url`` of a Rekor setting: an absolute http(s) URL, the ``baseUrl`` of a log in the trusted root."""
    url = fields.string("url")
    parts = urlsplit(url) if url is not None else None
    if parts is not None and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise FieldError(
            fields.at("url"), f"expected an http(s) URL such as https://rekor.sigstore.dev, got {url!r}"
        )
    return url


def check_public_keys(pem_text: str, path: str) -> None:
    """Parse keys at load: a key that cannot be used must stop the policy, not deny every image later."""
    try:
        load_public_keys(pem_text)
    except KeyLoadError as exc:
        raise FieldError(path, str(exc).removeprefix("public keys: ").removeprefix("public key: ")) from None


def _public_key_entries(
    text: str, path: str, algorithm: str, rekor: Rekor | None, annotations: Annotations = ()
) -> list[KeyEntry]:
    """One entry per PEM block (Kyverno expands multi-key blocks), or a Secret for ``k8s://ns/name``."""
    stripped = text.strip()
    reference = _SECRET_KEY_REF.fullmatch(stripped)
    if reference:
        secret = SecretRef(name=reference["name"], namespace=reference["namespace"])
        return [KeyEntry(None, secret, algorithm, rekor, annotations)]
    if "://" in stripped and "-----BEGIN" not in stripped:
        raise FieldError(
            path, "key references other than k8s://<namespace>/<secret> (KMS, files) are not supported"
        )
    blocks = _PEM_BLOCK.findall(stripped)
    if not blocks or _PEM_BLOCK.sub("", stripped).strip():
        raise FieldError(
            path, "expected one or more PEM '-----BEGIN PUBLIC KEY-----' blocks and nothing else"
        )
    for block in blocks:
        check_public_keys(block, path)
    return [KeyEntry(block, None, algorithm, rekor, annotations) for block in blocks]


def _entry_annotations(fields: Fields, inherited: Annotations | None) -> Annotations:
    """An entry's ``annotations`` over the ``verifyImages`` entry's (``inherited``; None for attestation
    attestors, where annotations are a load error): the entry's value wins for a key both give."""
    own = fields.string_map("annotations")
    if inherited is None:
        if own:
            raise FieldError(fields.at("annotations"), ATTESTATION_ANNOTATIONS)
        return ()
    return tuple(sorted({**dict(inherited), **(own or {})}.items()))


def _entry(fields: Fields, inherited: Annotations | None) -> list[AttestorEntry]:
    """One ``entries[]`` item: exactly one of ``keys``, ``certificates`` and ``keyless``."""
    annotations = _entry_annotations(fields, inherited)
    given = [kind for kind in ENTRY_KINDS if fields.raw(kind) is not None]
    if len(given) > 1:
        raise FieldError(
            fields.path, f"give exactly one of keys, certificates and keyless (found {', '.join(given)})"
        )
    keys, certificates, keyless = (fields.child(kind) for kind in ENTRY_KINDS)
    fields.finish(ENTRY_UNSUPPORTED)
    if certificates is not None:
        return [_certificate_entry(certificates, annotations)]
    if keyless is not None:
        return [_keyless_entry(keyless, annotations)]
    if keys is None:
        raise FieldError(fields.at("keys"), "is required: give keys, certificates or keyless")
    return _key_entries(keys, annotations)


def _key_entries(keys: Fields, annotations: Annotations) -> list[AttestorEntry]:
    algorithm = keys.choice("signatureAlgorithm", SIGNATURE_ALGORITHMS, default="sha256")
    assert algorithm is not None
    rekor = _rekor(keys.child("rekor"))
    public_keys, secret_fields = keys.string("publicKeys"), keys.child("secret")
    keys.finish(KEYS_UNSUPPORTED)
    if public_keys is not None and secret_fields is not None:
        raise FieldError(keys.path, "give either publicKeys or secret, not both")
    if secret_fields is not None:
        secret = SecretRef(
            name=secret_fields.required_string("name"), namespace=secret_fields.required_string("namespace")
        )
        secret_fields.finish({})
        return [KeyEntry(None, secret, algorithm, rekor, annotations)]
    if public_keys is None:
        raise FieldError(keys.at("publicKeys"), "is required (or secret)")
    return list(_public_key_entries(public_keys, keys.at("publicKeys"), algorithm, rekor, annotations))


def public_keys_at(fields: Fields, key: str) -> tuple[TrustedKey, ...]:
    """The PEM public keys at ``key`` (none when absent), parsed now: a load error at the field otherwise.
    Shared with the ImageValidatingPolicy attestors."""
    pem = fields.string(key)
    if pem is None:
        return ()
    check_public_keys(pem, fields.at(key))
    return load_public_keys(pem)


def _signer_options(
    fields: Fields, build: Callable[[], CertificateAttestor | KeylessAttestor], annotations: Annotations
) -> VerificationOptions:
    """The attestor ``build`` makes, with the entry's ``rekor`` and ``ctlog`` settings (Kyverno's fields).

    ``rekor.pubkey``, ``ctlog.pubkey`` and ``ctlog.tsaCertChain`` replace the trusted root's Rekor logs, CT
    logs and timestamp authorities (a private deployment); ``rekor.url`` keeps the root's log at that URL;
    ``rekor.ignoreTlog`` drops the log-entry
    requirement, ``ctlog.ignoreSCT`` the SCT check.
    """
    rekor_keys: tuple[TrustedKey, ...] = ()
    rekor_url: str | None = None
    ct_log_keys: tuple[TrustedKey, ...] = ()
    tsa_chains: tuple[str, ...] = ()
    ignore_tlog: bool | None = None
    ignore_sct = False
    rekor = fields.child("rekor")
    if rekor is not None:
        rekor_keys = public_keys_at(rekor, "pubkey")
        rekor_url = rekor_url_at(rekor)
        ignore_tlog = True if rekor.boolean("ignoreTlog", False) else None
        rekor.finish({})
    ctlog = fields.child("ctlog")
    if ctlog is not None:
        ct_log_keys = public_keys_at(ctlog, "pubkey")
        ignore_sct = ctlog.boolean("ignoreSCT", False)
        chain = ctlog.string("tsaCertChain")
        tsa_chains = (chain,) if chain else ()
        ctlog.finish(CTLOG_UNSUPPORTED)
    try:
        attestor = build()
        fields.finish({})
        return VerificationOptions(
            attestors=(attestor,),
            rekor_keys=rekor_keys,
            rekor_url=rekor_url,
            ct_log_keys=ct_log_keys,
            tsa_chains=tsa_chains,
            ignore_tlog=ignore_tlog,
            ignore_sct=ignore_sct,
            annotations=annotations,
        )
    except AttestorError as exc:
        raise FieldError(fields.path, str(exc).removeprefix(f"{attestor_name(fields)}: ")) from None


def attestor_name(fields: Fields) -> str:
    """How outcomes name a policy's certificate attestor: its kind (the path is added by messages)."""
    return fields.path.rsplit(".", 1)[-1]


def _certificate_entry(fields: Fields, annotations: Annotations) -> CertificateEntry:
    """``certificates``: ``cert`` pins the signing certificate, ``certChain`` is what it must chain to."""
    cert, chain = fields.string("cert"), fields.string("certChain")
    options = _signer_options(
        fields,
        lambda: CertificateAttestor(name=attestor_name(fields), certificate=cert, chain=chain),
        annotations,
    )
    return CertificateEntry("certificates", options)


def _keyless_entry(fields: Fields, annotations: Annotations) -> CertificateEntry:
    """``keyless``: one identity from subject/subjectRegExp, issuer/issuerRegExp and additionalExtensions
    (Kyverno matches subject, issuer and extension values as wildcard patterns), under Fulcio's CAs or
    ``roots``."""
    identity = IdentityPolicy(
        subject=fields.string("subject"),
        subject_regexp=fields.string("subjectRegExp"),
        issuer=fields.string("issuer"),
        issuer_regexp=fields.string("issuerRegExp"),
        extensions=fields.string_map("additionalExtensions") or {},
        wildcards=True,
    )
    roots = fields.string("roots")
    options = _signer_options(
        fields,
        lambda: KeylessAttestor(name=attestor_name(fields), identities=(identity,), roots=roots),
        annotations,
    )
    return CertificateEntry("keyless", options)


def _attestor(fields: Fields, annotations: Annotations | None) -> Attestor:
    """``annotations``: the ``verifyImages`` entry's, which every entry must also meet (None: attestation
    attestors, which take none)."""
    count = fields.integer("count", minimum=1)
    entries = [
        key for entry in fields.objects("entries", required=True) for key in _entry(entry, annotations)
    ]
    fields.finish({})
    if not entries:
        raise FieldError(fields.at("entries"), "needs at least one entry")
    if count is not None and count > len(entries):
        raise FieldError(
            fields.at("count"), f"{count} exceeds the {len(entries)} entries: it can never be met"
        )
    return Attestor(count=count, entries=tuple(entries))


def _indexed(fields: Fields, key: str, items: tuple[str, ...]) -> list[str]:
    return [f"{fields.at(key)}[{index}]" for index in range(len(items))]


def _check_patterns(paths: list[str], patterns: tuple[str, ...]) -> None:
    """Refuse a pattern whose registry is not written canonically: images are matched in canonical form
    (``index.docker.io`` is ``docker.io``, hosts are lowercase, ``:443`` is dropped), so it could never
    match and the entry would silently verify nothing."""
    for path, pattern in zip(paths, patterns, strict=True):
        first, slash, rest = pattern.partition("/")
        if not slash or any(ch in first for ch in "*?"):
            continue
        names_registry = "." in first or ":" in first or first == "localhost" or first != first.lower()
        canonical = normalize_registry(first)
        if names_registry and canonical != first:
            raise FieldError(
                path,
                f"{pattern!r} never matches: images are matched in their canonical form, where this "
                f"registry is {canonical!r}; write {canonical + '/' + rest!r}",
            )


def _verification(fields: Fields) -> ImageVerification:
    verification_type = fields.string("type", default="Cosign") or "Cosign"
    if verification_type not in VERIFICATION_TYPES:
        raise FieldError(
            fields.at("type"),
            f"only Cosign and SigstoreBundle signatures are supported, not {verification_type}",
        )
    image, references = fields.string("image"), fields.strings("imageReferences")
    if image and references:
        raise FieldError(fields.at("image"), "use either image (legacy) or imageReferences, not both")
    annotations: Annotations = tuple(sorted((fields.string_map("annotations") or {}).items()))
    key, attestor_fields = fields.string("key"), fields.objects("attestors")
    if key and attestor_fields:
        raise FieldError(fields.at("key"), "use either key (legacy) or attestors, not both")
    oci11 = fields.boolean("cosignOCI11", False)
    referrers_only = VERIFICATION_TYPES[verification_type] or oci11
    if key:
        # Legacy form: Kyverno converts it to attestors[0].entries[0].keys.publicKeys.
        attestors: tuple[Attestor, ...] = (
            Attestor(
                count=None,
                entries=tuple(_public_key_entries(key, fields.at("key"), "sha256", None, annotations)),
            ),
        )
    else:
        attestors = tuple(_attestor(item, annotations) for item in attestor_fields)
    result = ImageVerification(
        image_references=(image,) if image else references,
        skip_image_references=fields.strings("skipImageReferences"),
        attestors=attestors,
        required=fields.boolean("required", True),
        verify_digest=fields.boolean("verifyDigest", True),
        mutate_digest=fields.boolean("mutateDigest", True),
        failure_action=fields.choice("failureAction", ACTIONS),
        use_cache=fields.boolean("useCache", True),
        repository=_repository(fields),
        referrers_only=referrers_only,
        attestations=tuple(_attestation(item) for item in fields.objects("attestations")),
    )
    fields.finish(VERIFY_UNSUPPORTED)
    references_at = [fields.at("image")] if image else _indexed(fields, "imageReferences", references)
    _check_patterns(references_at, result.image_references)
    skips = result.skip_image_references
    _check_patterns(_indexed(fields, "skipImageReferences", skips), skips)
    if not result.image_references:
        raise FieldError(fields.at("imageReferences"), "is required: list the images to verify ('*' for all)")
    if not result.attestors and not result.attestations:
        raise FieldError(
            fields.at("attestors"),
            "is required (or attestations): give the keys, certificates or keyless identities that sign",
        )
    return result


def _repository(fields: Fields) -> str | None:
    """``repository``: ``registry/path`` where the signatures are, without tag or digest."""
    repository = fields.string("repository")
    if repository is None:
        return None
    try:
        parse_signature_repository(repository)
    except InvalidReferenceError as exc:
        raise FieldError(fields.at("repository"), str(exc)) from None
    return repository


def _template(fields: Fields, key: str) -> Template:
    """A condition's ``key`` or ``value``: any JSON value, its ``{{ }}`` variables compiled now."""
    try:
        return compile_template(fields.raw(key))
    except ValueError as exc:
        raise FieldError(fields.at(key), str(exc)) from None


def _condition(fields: Fields) -> Condition:
    if fields.raw("key") is None:
        raise FieldError(fields.at("key"), "is required")
    operator = fields.choice("operator", OPERATORS)
    if operator is None:
        raise FieldError(fields.at("operator"), "is required")
    condition = Condition(
        key=_template(fields, "key"),
        operator=operator,
        value=_template(fields, "value"),
        message=fields.string("message") or "",
    )
    fields.finish({})
    return condition


def _condition_block(fields: Fields) -> ConditionBlock:
    any_given = fields.raw("any") is not None
    block = ConditionBlock(
        any=tuple(_condition(item) for item in fields.objects("any")) if any_given else None,
        all=tuple(_condition(item) for item in fields.objects("all")),
    )
    fields.finish({})
    if not block.any and not block.all:
        raise FieldError(fields.path, "needs any or all conditions")
    return block


def _attestation(fields: Fields) -> AttestationCheck:
    """``attestations[]``: ``type`` (or the deprecated ``predicateType``; cosign short names such as
    ``slsaprovenance1`` stand for their URIs), the ``attestors`` that must sign it, ``conditions``."""
    fields.string("name")  # a label for people; Kyverno does not use it either
    given, deprecated = fields.string("type"), fields.string("predicateType")
    if given and deprecated and predicate_type_uri(given) != predicate_type_uri(deprecated):
        raise FieldError(
            fields.at("predicateType"), "differs from type; predicateType is deprecated: remove it"
        )
    predicate_type = given or deprecated
    if predicate_type is None:
        raise FieldError(fields.at("type"), "is required: the predicate type of the attestation")
    attestors = tuple(_attestor(item, None) for item in fields.objects("attestors"))
    conditions = tuple(_condition_block(item) for item in fields.objects("conditions"))
    fields.finish({})
    if not attestors:
        raise FieldError(
            fields.at("attestors"),
            "is required: give the key(s) the attestation must be signed with (an attestation nobody "
            "verified proves nothing)",
        )
    return AttestationCheck(predicate_type_uri(predicate_type), attestors, conditions)


def _rule(fields: Fields) -> Rule:
    name = fields.required_string("name")
    try:
        if len(name) > MAX_RULE_NAME:
            raise FieldError(fields.at("name"), f"must be at most {MAX_RULE_NAME} characters")
        if name.startswith("autogen-"):
            raise FieldError(
                fields.at("name"), "the autogen- prefix is reserved for generated rules; rename it"
            )
        match = fields.child("match")
        exclude = fields.child("exclude")
        verifications = [_verification(item) for item in fields.objects("verifyImages")]
        rule = Rule(
            name=name,
            match=_match_block(match, is_match=True) if match else MatchBlock(),
            exclude=_match_block(exclude, is_match=False)
            if exclude and not is_empty(exclude.value)
            else None,
            verify_images=tuple(verifications),
        )
        _check_fixed(fields, RULE_FIXED)
        fields.finish(RULE_UNSUPPORTED)
        if match is None:
            raise FieldError(fields.at("match"), "is required")
        if not verifications:
            raise FieldError(fields.at("verifyImages"), f"is required: {_NOT_ENFORCED}")
    except FieldError as error:
        error.rule = name
        raise
    return rule


def _override(fields: Fields) -> ActionOverride:
    action = fields.choice("action", ACTIONS)
    if action is None:
        raise FieldError(fields.at("action"), "is required")
    override = ActionOverride(
        action=action,
        namespaces=fields.strings("namespaces"),
        namespace_selector=optional_selector(fields, "namespaceSelector"),
    )
    fields.finish({})
    if not override.namespaces and override.namespace_selector is None:
        raise FieldError(fields.path, "needs namespaces or namespaceSelector, else it never applies")
    return override


def _webhook_settings(spec: Fields) -> tuple[FailurePolicy, int | None]:
    """failurePolicy and timeout: ``spec.webhookConfiguration`` (Kyverno 1.13+) wins over the deprecated
    ``spec.failurePolicy``/``spec.webhookTimeoutSeconds``, as in Kyverno."""
    failure_policy = spec.choice("failurePolicy", FAILURE_POLICIES, default="Fail") or "Fail"
    timeout = spec.integer("webhookTimeoutSeconds", minimum=1)
    webhook = spec.child("webhookConfiguration")
    if webhook is not None:
        failure_policy = (
            webhook.choice("failurePolicy", FAILURE_POLICIES, default=failure_policy) or failure_policy
        )
        timeout = webhook.integer("timeoutSeconds", minimum=1) or timeout
        webhook.finish(WEBHOOK_UNSUPPORTED)
    return failure_policy, timeout


def content_version(document: Mapping[str, Any]) -> str:
    """Content hash over what defines the policy (not resourceVersion, status, managedFields ...)."""
    metadata = document.get("metadata") or {}
    identity = {key: metadata.get(key) for key in ("name", "namespace", "annotations", "labels")}
    canonical = {"apiVersion": document.get("apiVersion"), "kind": document.get("kind"), "metadata": identity}
    canonical["spec"] = document.get("spec")
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


def _with_autogen(rules: tuple[Rule, ...], annotations: Mapping[str, str]) -> tuple[Rule, ...]:
    try:
        controllers = parse_controllers_annotation(annotations.get(AUTOGEN_ANNOTATION))
    except ValueError as error:
        raise FieldError(f"metadata.annotations[{AUTOGEN_ANNOTATION}]", str(error)) from None
    expanded = with_autogen_rules(rules, controllers)
    seen: set[str] = set()
    for index, rule in enumerate(expanded):
        if rule.name in seen:
            where = f"spec.rules[{index}].name" if index < len(rules) else f"generated rule {rule.name}"
            raise FieldError(where, f"duplicate rule name {rule.name!r}; rule names must be unique")
        seen.add(rule.name)
    return expanded


@dataclass(frozen=True)
class Header(Generic[K]):
    """What every Kyverno policy kind shares: kind, name, namespace (namespaced kinds only), annotations
    and the ``spec`` still to be read."""

    kind: K
    name: str
    namespace: str | None
    annotations: Mapping[str, str]
    spec: Fields


def parse_header(
    document: Mapping[str, Any], kinds: Mapping[str, K], api_versions: frozenset[str], namespaced: str
) -> Header[K]:
    """``kind`` (one of ``kinds``), ``apiVersion`` (one of ``api_versions``), ``metadata`` and ``spec`` of a
    policy object; ``namespaced`` is the kind that needs ``metadata.namespace``. Raises
    :class:`FieldError`."""
    top = Fields(document, "")
    kind = top.choice("kind", kinds)
    if kind is None:
        raise FieldError("kind", "is required")
    api_version = top.required_string("apiVersion")
    if api_version not in api_versions:
        raise FieldError(
            "apiVersion", f"unsupported {api_version!r}; use {' or '.join(sorted(api_versions))}"
        )
    metadata = top.child("metadata")
    if metadata is None:
        raise FieldError("metadata", "is required")
    name = metadata.required_string("name")
    namespace = metadata.string("namespace") if kind == namespaced else None
    if kind == namespaced and namespace is None:
        raise FieldError("metadata.namespace", f"is required for a {kind} (it applies only there)")
    annotations = frozen_mapping(metadata.string_map("annotations"))
    spec = top.child("spec")
    top.raw("status")  # written by Kyverno; never input
    top.finish({})
    if spec is None:
        raise FieldError("spec", "is required")
    return Header(kind, name, namespace, annotations, spec)


def parse_policy(document: Mapping[str, Any], source: str = "<string>") -> KyvernoPolicy:
    """Validate one decoded ``ClusterPolicy``/``Policy`` object. Raises :class:`FieldError`."""
    header = parse_header(document, POLICY_KINDS, API_VERSIONS, "Policy")
    kind, name, namespace, annotations, spec = (
        header.kind, header.name, header.namespace, header.annotations, header.spec
    )  # fmt: skip
    rules = tuple(_rule(item) for item in spec.objects("rules", required=True))
    if not rules:
        raise FieldError("spec.rules", "needs at least one rule")
    if spec.string("applyRules", default="All") != "All":
        raise FieldError("spec.applyRules", SPEC_UNSUPPORTED["applyRules"])
    failure_policy, timeout = _webhook_settings(spec)
    policy = KyvernoPolicy(
        kind=kind,
        name=name,
        namespace=namespace,
        annotations=annotations,
        validation_failure_action=spec.choice("validationFailureAction", ACTIONS, default="Audit") or "Audit",
        overrides=tuple(_override(item) for item in spec.objects("validationFailureActionOverrides")),
        failure_policy=failure_policy,
        rules=_with_autogen(rules, annotations),
        version=content_version(document),
        admission=spec.boolean("admission", True),
        webhook_timeout_seconds=timeout,
        emit_warning=spec.boolean("emitWarning", False),
        source=source,
    )
    _check_fixed(spec, SPEC_FIXED)
    spec.finish(SPEC_UNSUPPORTED)
    return policy
