"""Parsing Kyverno policies: the walkthrough policy, both verifyImages syntaxes, and every rejection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.policy import (
    Attestor,
    AttestorEntry,
    KeyEntry,
    KyvernoPolicy,
    PolicyLoadError,
    Rekor,
    SecretRef,
    load_policy_paths,
    parse_policies,
)
from tests.test_policy_builders import (
    CONTROLLER_KINDS,
    POLICY_DIR,
    PUBLIC_KEY,
    SECOND_KEY,
    load,
    load_error,
    policy,
    rule,
    verification,
    walkthrough_policy,
)


def key_entry(entry: AttestorEntry) -> KeyEntry:
    """``entry``, asserted to be a keys entry (not a certificates or keyless one)."""
    assert isinstance(entry, KeyEntry), f"expected a keys entry, got {entry!r}"
    return entry


def test_walkthrough_policy_parses_with_defaults_and_legacy_key_converted() -> None:
    walkthrough = walkthrough_policy()
    assert (walkthrough.kind, walkthrough.name, walkthrough.namespace) == (
        "ClusterPolicy",
        "check-image-signature",
        None,
    )
    assert walkthrough.validation_failure_action == "Audit"
    assert walkthrough.failure_policy == "Fail"
    assert [(o.action, o.namespaces, o.namespace_selector) for o in walkthrough.overrides] == [
        ("Enforce", ("prod",), None)
    ]
    assert walkthrough.report_name == "cpol-check-image-signature"
    assert (walkthrough.severity, walkthrough.category, walkthrough.scored) == (None, None, True)
    original = walkthrough.rules[0]
    assert original.name == "verify-image" and not original.is_autogen
    (check,) = original.verify_images
    assert check.image_references == ("*",)
    # legacy key -> attestors[0].entries[0].keys.publicKeys, so messages say .attestors[0].entries[0].keys
    assert check.attestors == (Attestor(count=None, entries=(KeyEntry(PUBLIC_KEY, None, "sha256", None),)),)
    assert (check.required, check.verify_digest, check.mutate_digest, check.failure_action) == (
        True,
        True,
        True,
        None,
    )


def test_walkthrough_policy_gets_kyverno_autogen_rules() -> None:
    rules = walkthrough_policy().rules
    assert [r.name for r in rules] == ["verify-image", "autogen-verify-image", "autogen-cronjob-verify-image"]
    assert [(r.is_autogen, r.autogen_of) for r in rules[1:]] == [(True, "verify-image")] * 2
    assert rules[1].match.any[0].kinds == CONTROLLER_KINDS
    assert rules[2].match.any[0].kinds == ("batch/v1/CronJob",)
    assert rules[1].verify_images == rules[0].verify_images == rules[2].verify_images


def test_current_syntax_every_field() -> None:
    (team,) = parse_policies((POLICY_DIR / "current-syntax.yaml").read_text())
    assert isinstance(team, KyvernoPolicy)
    assert (team.kind, team.namespace, team.report_name) == ("Policy", "team-a", "pol-team-images")
    assert (team.severity, team.category) == ("high", "Supply Chain")
    assert (team.validation_failure_action, team.failure_policy, team.webhook_timeout_seconds) == (
        "Enforce",
        "Ignore",
        15,
    )
    (check,) = team.rules[0].verify_images
    assert check.image_references == ("ghcr.io/acme/*",)
    assert check.skip_image_references == ("ghcr.io/acme/debug*",)
    assert (check.required, check.verify_digest, check.mutate_digest, check.use_cache) == (False,) * 4
    assert check.failure_action == "Audit"
    (attestor,) = check.attestors
    assert attestor.count == 1 and attestor.required_count == 1
    entries = [key_entry(e) for e in attestor.entries]
    assert entries[0].rekor == Rekor(pubkey=SECOND_KEY, ignore_tlog=True)
    # Two PEM blocks in one publicKeys expand to two entries (as Kyverno does), then the secret entry.
    assert [e.public_keys for e in entries] == [PUBLIC_KEY, SECOND_KEY, None]
    assert [e.signature_algorithm for e in entries] == ["sha512", "sha512", "sha256"]
    assert entries[2].secret == SecretRef(name="cosign-pub", namespace="team-a")
    assert team.rules[0].match.any[0].operations == ("CREATE", "UPDATE")
    assert [r.name for r in team.rules] == [
        "ghcr-signed",
        "autogen-ghcr-signed",
        "autogen-cronjob-ghcr-signed",
    ]


def test_attestor_count_defaults_to_all_entries() -> None:
    two_keys = verification(
        attestors=[{"entries": [{"keys": {"publicKeys": PUBLIC_KEY + "\n" + SECOND_KEY}}]}]
    )
    (attestor,) = load(policy(rule(verifyImages=[two_keys]))).rules[0].verify_images[0].attestors
    assert (attestor.count, attestor.required_count, len(attestor.entries)) == (None, 2, 2)


def test_legacy_image_with_current_attestors() -> None:
    mixed = verification(image="ghcr.io/*")
    del mixed["imageReferences"]
    (check,) = load(policy(rule(verifyImages=[mixed]))).rules[0].verify_images
    assert check.image_references == ("ghcr.io/*",)
    assert key_entry(check.attestors[0].entries[0]).public_keys == PUBLIC_KEY


def test_k8s_secret_key_reference_becomes_secret_entry() -> None:
    legacy = {"image": "ghcr.io/*", "key": "k8s://security/cosign-key"}
    entry = load(policy(rule(verifyImages=[legacy]))).rules[0].verify_images[0].attestors[0].entries[0]
    assert entry == KeyEntry(None, SecretRef("cosign-key", "security"), "sha256", None)


@pytest.mark.parametrize("spelling", ["Audit", "audit", "Enforce", "enforce"])
def test_failure_action_spellings_are_normalised(spelling: str) -> None:
    parsed = load(policy(validationFailureAction=spelling))
    assert parsed.validation_failure_action == spelling.capitalize()


def test_v2beta1_and_policy_namespace() -> None:
    parsed = load(policy(kind="Policy", namespace="team", api_version="kyverno.io/v2beta1"))
    assert (parsed.kind, parsed.namespace, parsed.display_name, parsed.report_name) == (
        "Policy",
        "team",
        "team/p",
        "pol-p",
    )


def test_cluster_policy_ignores_metadata_namespace() -> None:
    assert load(policy(namespace="whatever")).namespace is None


def test_scored_false_and_annotations_are_read_only() -> None:
    parsed = load(policy(annotations={"policies.kyverno.io/scored": "false"}))
    assert parsed.scored is False
    with pytest.raises(TypeError):
        parsed.annotations["x"] = "y"  # type: ignore[index]


def test_version_is_stable_and_tracks_content_only() -> None:
    document = policy()
    same = json.loads(json.dumps(document))
    same["metadata"].update(resourceVersion="42", uid="abc", generation=3)
    same["status"] = {"ready": True}
    assert load(document).version == load(same).version
    changed = policy(validationFailureAction="Enforce")
    assert load(changed).version != load(document).version
    assert load(document) == load(same) and hash(load(document)) == hash(load(same))


def test_multi_document_yaml_list_and_configmap() -> None:
    first, second = policy(name="a"), policy(name="b")
    text = (
        "---\n"
        + yaml.safe_dump(first)
        + "---\n# empty document follows\n---\n"
        + yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [second]})
    )
    assert [p.name for p in parse_policies(text)] == ["a", "b"]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "policies"},
        "data": {"a.yaml": yaml.safe_dump(first), "b.json": json.dumps(second), "README.txt": "not a policy"},
    }
    assert [p.name for p in parse_policies(yaml.safe_dump(config_map))] == ["a", "b"]


def test_empty_values_left_by_kubectl_are_accepted() -> None:
    document = policy(
        rule(validate={}, mutate={}, generate={"clone": {}, "cloneList": {}}, exclude={"resources": {}})
    )
    document["spec"]["rules"][0]["match"]["resources"] = {}
    parsed = load(document)
    assert parsed.rules[0].exclude is None


def test_webhook_configuration_wins_over_deprecated_fields() -> None:
    legacy = load(policy(failurePolicy="Ignore", webhookTimeoutSeconds=5))
    assert (legacy.failure_policy, legacy.webhook_timeout_seconds) == ("Ignore", 5)
    modern = load(
        policy(
            failurePolicy="Ignore",
            webhookTimeoutSeconds=5,
            webhookConfiguration={"failurePolicy": "Fail", "timeoutSeconds": 20},
        )
    )
    assert (modern.failure_policy, modern.webhook_timeout_seconds) == ("Fail", 20)
    partial = load(policy(failurePolicy="Ignore", webhookConfiguration={"timeoutSeconds": 7}))
    assert (partial.failure_policy, partial.webhook_timeout_seconds) == ("Ignore", 7)


def test_fields_without_effect_are_accepted_only_with_the_value_trustwatch_matches() -> None:
    parsed = load(
        policy(
            rule(skipBackgroundRequests=True),
            schemaValidation=True,
            useServerSideApply=False,
            generateExisting=False,
            generateExistingOnPolicyUpdate=False,
            mutateExistingOnPolicyUpdate=False,
            background=False,
            admission=False,
        )
    )
    assert parsed.admission is False
    for field, value in (
        ("schemaValidation", False),
        ("useServerSideApply", True),
        ("generateExisting", True),
        ("generateExistingOnPolicyUpdate", True),
        ("mutateExistingOnPolicyUpdate", True),
    ):
        document = policy()
        document["spec"][field] = value
        with pytest.raises(PolicyLoadError, match="only affects generate and mutate rules") as caught:
            load(document)
        assert caught.value.path == f"spec.{field}"
    with pytest.raises(PolicyLoadError, match="background scans of existing resources are not done"):
        load(policy(background=True))
    with pytest.raises(PolicyLoadError, match="nothing to stop skipping") as caught:
        load(policy(rule(skipBackgroundRequests=False)))
    assert caught.value.path == "spec.rules[0].skipBackgroundRequests"


# --- rejections: every unsupported field names its path ------------------------------------------------

NO_IDENTITY = {"keyless": {"rekor": {"ignoreTlog": True}}}
KEYLESS = {"keyless": {"subject": "me@example.com", "issuer": "https://accounts.google.com"}}
UNSUPPORTED_VERIFY_FIELDS: dict[str, Any] = {
    "imageRegistryCredentials": {"secrets": ["regcred"]},
    "validate": {"deny": {"conditions": {"any": [{"key": "a", "operator": "Equals", "value": "b"}]}}},
}
LEGACY_KEYLESS_FIELDS = {
    "roots": "-----BEGIN CERTIFICATE-----",
    "subject": "me@example.com",
    "issuer": "https://token.actions.githubusercontent.com",
    "additionalExtensions": {"githubWorkflowTrigger": "push"},
}


def _entry_policy(entry: dict[str, Any]) -> dict[str, Any]:
    return policy(rule(verifyImages=[verification(attestors=[{"entries": [entry]}])]))


def _assert_names(error: PolicyLoadError, path: str, *words: str) -> None:
    message = str(error)
    assert error.path == path
    assert path in message
    assert "test.yaml" in message and "ClusterPolicy p" in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("field", sorted(UNSUPPORTED_VERIFY_FIELDS))
def test_unsupported_verify_images_field(field: str) -> None:
    error = load_error(policy(rule(verifyImages=[verification(**{field: UNSUPPORTED_VERIFY_FIELDS[field]})])))
    _assert_names(error, f"spec.rules[0].verifyImages[0].{field}", "rule check", "not supported")


@pytest.mark.parametrize("field", sorted(LEGACY_KEYLESS_FIELDS))
def test_legacy_keyless_fields(field: str) -> None:
    legacy = {"image": "*", "key": PUBLIC_KEY, field: LEGACY_KEYLESS_FIELDS[field]}
    error = load_error(policy(rule(verifyImages=[legacy])))
    _assert_names(error, f"spec.rules[0].verifyImages[0].{field}", "keyless")


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"certificates": {"cert": "-----BEGIN CERTIFICATE-----"}}, "entries[0].certificates"),
        (NO_IDENTITY, "entries[0].keyless"),
        ({"keyless": {"subjectRegExp": "(unclosed"}}, "entries[0].keyless"),
        ({"keyless": {"subject": "a", "roots": "-----BEGIN CERTIFICATE-----"}}, "entries[0].keyless"),
        (
            {"keyless": {"subject": "a", "additionalExtensions": {"a": 1}}},
            "entries[0].keyless.additionalExtensions.a",
        ),
        (
            {"keyless": {"subject": "a", "additionalExtensions": {"noSuchExtension": "x"}}},
            "entries[0].keyless",
        ),
        (
            {"keyless": {**KEYLESS["keyless"], "rekor": {"url": "rekor.sigstore.dev"}}},
            "entries[0].keyless.rekor.url",
        ),
        (
            {"keyless": {**KEYLESS["keyless"], "ctlog": {"url": "https://ctfe.sigstore.dev"}}},
            "entries[0].keyless.ctlog.url",
        ),
        ({"keyless": {**KEYLESS["keyless"], "rekor": {"pubkey": "x"}}}, "entries[0].keyless.rekor.pubkey"),
        ({"keyless": {**KEYLESS["keyless"], "bogus": 1}}, "entries[0].keyless.bogus"),
        ({"certificates": {"certChain": "x"}}, "entries[0].certificates"),
        ({"certificates": {}}, "entries[0].certificates"),
        ({"keys": {"publicKeys": PUBLIC_KEY}, **KEYLESS}, "entries[0]"),
        ({"attestor": {"entries": [{"keys": {"publicKeys": PUBLIC_KEY}}]}}, "entries[0].attestor"),
        ({"keys": {"publicKeys": PUBLIC_KEY}, "repository": "x/y"}, "entries[0].repository"),
        ({"keys": {"publicKeys": PUBLIC_KEY}, "annotations": {"a": 1}}, "entries[0].annotations.a"),
        ({"keys": {"kms": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}}, "entries[0].keys.kms"),
        ({"keys": {"publicKeys": PUBLIC_KEY, "ctlog": {"ignoreSCT": True}}}, "entries[0].keys.ctlog"),
        (
            {"keys": {"publicKeys": PUBLIC_KEY, "rekor": {"ignoreTlog": True, "bogus": 1}}},
            "entries[0].keys.rekor.bogus",
        ),
        (
            {"keys": {"publicKeys": PUBLIC_KEY, "rekor": {"url": "file:///rekor"}}},
            "entries[0].keys.rekor.url",
        ),
        ({"keys": {"publicKeys": "awskms:///arn:aws:kms:key"}}, "entries[0].keys.publicKeys"),
        ({"keys": {"publicKeys": "not a key"}}, "entries[0].keys.publicKeys"),
        (
            {"keys": {"publicKeys": PUBLIC_KEY + "\n-----BEGIN CERTIFICATE-----\nx"}},
            "entries[0].keys.publicKeys",
        ),
        ({"keys": {"publicKeys": PUBLIC_KEY, "secret": {"name": "a", "namespace": "b"}}}, "entries[0].keys"),
        ({"keys": {"secret": {"name": "a"}}}, "entries[0].keys.secret.namespace"),
        ({"keys": {}}, "entries[0].keys.publicKeys"),
        ({}, "entries[0].keys"),
        (
            {"keys": {"publicKeys": PUBLIC_KEY, "signatureAlgorithm": "md5"}},
            "entries[0].keys.signatureAlgorithm",
        ),
    ],
)
def test_attestor_entry_rejections(entry: dict[str, Any], path: str) -> None:
    error = load_error(_entry_policy(entry))
    _assert_names(error, f"spec.rules[0].verifyImages[0].attestors[0].{path}")


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("type", "Notary", "type"),
        ("type", "sigstoreBundle", "type"),
        ("repository", "registry.example/signatures:v1", "repository"),
        ("repository", "registry.example/signatures@sha256:" + "a" * 64, "repository"),
        ("failureAction", "Warn", "failureAction"),
        ("verifyDigest", "yes", "verifyDigest"),
        ("imageReferences", [], "imageReferences"),
        ("attestors", [], "attestors"),
        (
            "attestors",
            [{"count": 2, "entries": [{"keys": {"publicKeys": PUBLIC_KEY}}]}],
            "attestors[0].count",
        ),
        (
            "attestors",
            [{"count": 0, "entries": [{"keys": {"publicKeys": PUBLIC_KEY}}]}],
            "attestors[0].count",
        ),
        ("image", "ghcr.io/*", "image"),
        ("key", PUBLIC_KEY, "key"),
        ("bogus", 1, "bogus"),
    ],
)
def test_verification_rejections(field: str, value: Any, path: str) -> None:
    error = load_error(policy(rule(verifyImages=[verification(**{field: value})])))
    _assert_names(error, f"spec.rules[0].verifyImages[0].{path}", "rule check")


@pytest.mark.parametrize(
    ("fields", "path", "word"),
    [
        ({"validate": {"pattern": {"metadata": {"labels": {"a": "?*"}}}}}, "validate", "verifyImages"),
        ({"mutate": {"patchStrategicMerge": {"a": 1}}}, "mutate", "verifyImages"),
        ({"generate": {"kind": "ConfigMap", "name": "x"}}, "generate", "verifyImages"),
        ({"context": [{"name": "x", "variable": {"value": 1}}]}, "context", "context"),
        (
            {"preconditions": {"all": [{"key": "a", "operator": "Equals", "value": "b"}]}},
            "preconditions",
            "match",
        ),
        ({"celPreconditions": [{"name": "x", "expression": "true"}]}, "celPreconditions", "match"),
        ({"imageExtractors": {"Task": [{"path": "/spec/image"}]}}, "imageExtractors", "Pod"),
        ({"reportProperties": {"a": "b"}}, "reportProperties", "not supported"),
        ({"verifyImages": []}, "verifyImages", "required"),
        ({"match": None}, "match", "required"),
        ({"name": "autogen-mine"}, "name", "reserved"),
        ({"name": "x" * 64}, "name", "63"),
        ({"unknownField": True}, "unknownField", "unknown field"),
    ],
)
def test_rule_rejections(fields: dict[str, Any], path: str, word: str) -> None:
    error = load_error(policy(rule(**fields)))
    assert error.path == f"spec.rules[0].{path}"
    assert word in str(error) and f"spec.rules[0].{path}" in str(error)


def test_validate_only_rule_is_rejected_naming_the_rule() -> None:
    validate_only = {"name": "require-labels", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}
    validate_only["validate"] = {"pattern": {"metadata": {"labels": {"team": "?*"}}}}
    error = load_error(policy(validate_only))
    assert error.rule == "require-labels" and error.path == "spec.rules[0].validate"


@pytest.mark.parametrize(
    ("match", "path"),
    [
        (
            {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "a"}]}]},
            "any[0].subjects",
        ),
        ({"any": [{"resources": {"kinds": ["Pod"]}}], "roles": ["admin"]}, "roles"),
        ({"all": [{"clusterRoles": ["admin"], "resources": {"kinds": ["Pod"]}}]}, "all[0].clusterRoles"),
        ({"any": [{"resources": {"names": ["x"]}}]}, "any[0].resources.kinds"),
        (
            {"any": [{"resources": {"kinds": ["Pod"], "operations": ["PATCH"]}}]},
            "any[0].resources.operations[0]",
        ),
        ({"any": [{"resources": {"kinds": ["Pod"], "name": "a", "names": ["b"]}}]}, "any[0].resources.name"),
        ({"any": [{"resources": {"kinds": ["a/b/c/d/e"]}}]}, "any[0].resources.kinds[0]"),
        ({"any": [{"resources": {"kinds": ["Pod"], "foo": 1}}]}, "any[0].resources.foo"),
        ({"any": [{"resources": {"kinds": ["Pod"]}}], "all": [{"resources": {"kinds": ["Pod"]}}]}, ""),
        ({}, ""),
        ({"any": [{}]}, "any[0].resources"),
        (
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                        }
                    }
                ]
            },
            "any[0].resources.selector.matchExpressions[0].values",
        ),
        (
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "namespaceSelector": {
                                "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                            },
                        }
                    }
                ]
            },
            "any[0].resources.namespaceSelector.matchExpressions[0].values",
        ),
        (
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "selector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
                        }
                    }
                ]
            },
            "any[0].resources.selector.matchExpressions[0].operator",
        ),
    ],
)
def test_match_rejections(match: dict[str, Any], path: str) -> None:
    error = load_error(policy(rule(match=match)))
    expected = "spec.rules[0].match" + (f".{path}" if path else "")
    assert error.path == expected and expected in str(error)


def test_exclude_rejections() -> None:
    error = load_error(policy(rule(exclude={"any": [{"resources": {"namespaces": ["a"]}}], "roles": ["x"]})))
    assert error.path == "spec.rules[0].exclude.roles"
    error = load_error(policy(rule(exclude={"any": [{"resources": {"namespaces": []}}]})))
    assert error.path == "spec.rules[0].exclude.any[0].resources" and "selects nothing" in str(error)


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"validationFailureAction": "Warn"}, "spec.validationFailureAction"),
        ({"failurePolicy": "Retry"}, "spec.failurePolicy"),
        ({"background": "no"}, "spec.background"),
        ({"applyRules": "One"}, "spec.applyRules"),
        (
            {"webhookConfiguration": {"matchConditions": [{"name": "a", "expression": "true"}]}},
            "spec.webhookConfiguration.matchConditions",
        ),
        ({"webhookConfiguration": {"failurePolicy": "Open"}}, "spec.webhookConfiguration.failurePolicy"),
        (
            {"validationFailureActionOverrides": [{"action": "Enforce"}]},
            "spec.validationFailureActionOverrides[0]",
        ),
        (
            {"validationFailureActionOverrides": [{"namespaces": ["a"]}]},
            "spec.validationFailureActionOverrides[0].action",
        ),
        ({"webhookTimeoutSeconds": 0}, "spec.webhookTimeoutSeconds"),
        ({"mystery": 1}, "spec.mystery"),
        ({"rules": []}, "spec.rules"),
    ],
)
def test_spec_rejections(spec: dict[str, Any], path: str) -> None:
    document = policy(**spec)
    if "rules" in spec:
        document["spec"]["rules"] = spec["rules"]
    error = load_error(document)
    assert error.path == path and path in str(error)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(apiVersion="kyverno.io/v1alpha1"), "apiVersion"),
        (lambda d: d["metadata"].pop("name"), "metadata.name"),
        (lambda d: d.pop("spec"), "spec"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(kind="Policy"), "metadata.namespace"),
        (
            lambda d: d["metadata"].update(
                annotations={"pod-policies.kyverno.io/autogen-controllers": "Deployment, Job"}
            ),
            "metadata.annotations[pod-policies.kyverno.io/autogen-controllers]",
        ),
        (
            lambda d: d["metadata"].update(annotations={"pod-policies.kyverno.io/autogen-controllers": ""}),
            "metadata.annotations[pod-policies.kyverno.io/autogen-controllers]",
        ),
    ],
)
def test_document_rejections(mutate: Any, path: str) -> None:
    document = policy()
    mutate(document)
    error = load_error(document)
    assert error.path == path and path in str(error)


def test_duplicate_rule_names_are_rejected() -> None:
    error = load_error(policy(rule("a"), rule("a")))
    assert error.path == "spec.rules[1].name" and "duplicate" in str(error)


def test_non_policy_kind_and_non_mapping_documents_are_rejected() -> None:
    with pytest.raises(PolicyLoadError, match=r"src, document 2: kind 'Deployment' is not a Kyverno"):
        parse_policies(yaml.safe_dump(policy()) + "---\nkind: Deployment\n", "src")
    with pytest.raises(PolicyLoadError, match="document 1: expected a Kubernetes object"):
        parse_policies("- a\n- b\n", "src")


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(PolicyLoadError, match=r"bad.yaml: invalid YAML/JSON at line 2, column 8"):
        parse_policies("kind: ClusterPolicy\nspec: a: b\n", "bad.yaml")


def test_duplicate_yaml_keys_are_rejected_not_overwritten() -> None:
    text = yaml.safe_dump(policy()).replace("spec:\n", "spec:\n  validationFailureAction: Enforce\n", 1)
    text += "  validationFailureAction: Audit\n"
    with pytest.raises(PolicyLoadError, match="duplicate key 'validationFailureAction'"):
        parse_policies(text)


def test_yaml_aliases_are_rejected() -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(PolicyLoadError, match=r"line 2, column 8: YAML aliases \(\*name\)"):
        parse_policies(bomb, "bomb.yaml")


def test_duplicate_policies_are_rejected_within_and_across_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="duplicate ClusterPolicy p"):
        parse_policies(yaml.safe_dump(policy()) + "---\n" + yaml.safe_dump(policy()))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(policy()))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(policy()))
    with pytest.raises(PolicyLoadError, match=r"b.yaml: duplicate ClusterPolicy p: also defined in .*a.yaml"):
        load_policy_paths([tmp_path])
    # same name, different kinds/namespaces: distinct policies
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(policy(kind="Policy", namespace="x")))
    assert len(load_policy_paths([tmp_path])) == 2


def test_directory_loading_follows_configmap_layout(tmp_path: Path) -> None:
    data = tmp_path / "..2026_11_26_14_00_00.1"
    data.mkdir()
    (data / "policy.yaml").write_text((POLICY_DIR / "check-image-signature.yaml").read_text())
    (data / "notes.md").write_text("ignored: not a policy suffix")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    (tmp_path / "notes.md").symlink_to("..data/notes.md")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.json").write_text(json.dumps(policy(name="other")))
    assert [p.name for p in load_policy_paths([tmp_path])] == ["check-image-signature", "other"]


def test_missing_path_and_oversized_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no such file or directory"):
        load_policy_paths([tmp_path / "missing.yaml"])
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    with pytest.raises(PolicyLoadError, match="larger than"):
        load_policy_paths([big])
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyLoadError, match="not UTF-8"):
        load_policy_paths([binary])


def test_error_message_names_source_document_policy_rule_and_path() -> None:
    document = policy(
        rule("verify", verifyImages=[verification(attestors=[{"entries": [NO_IDENTITY]}])]), name="strict"
    )
    text = yaml.safe_dump(policy(name="fine")) + "---\n" + yaml.safe_dump(document)
    with pytest.raises(PolicyLoadError) as caught:
        parse_policies(text, "policies/strict.yaml")
    assert str(caught.value).startswith(
        "policies/strict.yaml, document 2, ClusterPolicy strict, rule verify: "
        "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless: "
        "an identity needs subject/subjectRegExp"
    )
