"""ImageValidatingPolicy loading: every field parsed, every CEL expression compiled at load, and bad input
rejected with the policy, the field path and (for CEL) the column."""

from __future__ import annotations

import copy
import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.cosign import CertificateAttestor, KeyAttestor, KeylessAttestor
from exporter.ivp.model import ImageValidatingPolicy
from exporter.policy.loader import PolicyLoadError, parse_policies
from exporter.policy.model import KyvernoPolicy, LabelSelector, SelectorRequirement
from tests.support.registry import generate_signing_key, public_pem

REPO_ROOT = Path(__file__).resolve().parent.parent
PEM = public_pem(generate_signing_key())


def _self_signed_certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CERTIFICATE = _self_signed_certificate()


def ivp(**spec: Any) -> dict[str, Any]:
    """A minimal valid ImageValidatingPolicy with ``spec`` fields replaced or added."""
    document: dict[str, Any] = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "check"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "attestors": [{"name": "key", "cosign": {"key": {"data": PEM}}}],
            "validations": [
                {"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)"}
            ],
        },
    }
    document["spec"].update(spec)
    return document


def load(*documents: dict[str, Any]) -> list[KyvernoPolicy | ImageValidatingPolicy]:
    return parse_policies(yaml.safe_dump_all(documents), "policies.yaml")


def load_one(document: dict[str, Any]) -> ImageValidatingPolicy:
    [policy] = load(document)
    assert isinstance(policy, ImageValidatingPolicy)
    return policy


def load_error(document: dict[str, Any]) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as caught:
        load(document)
    return caught.value


def test_minimal_policy_has_kyvernos_defaults() -> None:
    policy = load_one(ivp())
    assert policy.kind == "ImageValidatingPolicy" and policy.namespace is None
    assert policy.validation_actions == frozenset({"Deny"})
    assert policy.failure_policy == "Fail"
    assert (policy.mutate_digest, policy.verify_digest, policy.required) == (True, True, True)
    assert policy.admission is True
    assert policy.autogen_controllers == frozenset(
        {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "ReplicationController", "CronJob"}
    )
    assert policy.report_name == "ivpol-check" and policy.report_source == "KyvernoImageValidatingPolicy"
    assert [attestor.name for attestor in policy.attestors] == ["key"]
    [spec] = policy.attestors[0].options.attestors
    assert isinstance(spec, KeyAttestor) and spec.hash_algorithm == "sha256"
    assert policy.attestors[0].options.ignore_tlog is None


@pytest.mark.parametrize(
    "api_version", ["policies.kyverno.io/v1", "policies.kyverno.io/v1beta1", "policies.kyverno.io/v1alpha1"]
)
def test_every_served_api_version_loads(api_version: str) -> None:
    document = ivp()
    document["apiVersion"] = api_version
    assert load_one(document).name == "check"


def test_every_field_is_parsed() -> None:
    document = ivp(
        failurePolicy="Ignore",
        validationActions=["Audit", "Warn"],
        matchConditions=[{"name": "notSystem", "expression": "object.metadata.namespace != 'kube-system'"}],
        variables=[{"name": "count", "expression": "size(images.containers)"}],
        validationConfigurations={"mutateDigest": False, "verifyDigest": False, "required": False},
        matchImageReferences=[{"glob": "ghcr.io/*"}, {"expression": "image.registry == 'quay.io'"}],
        images=[{"name": "custom", "expression": "[object.spec.image]"}],
        webhookConfiguration={"timeoutSeconds": 15},
        evaluation={"admission": {"enabled": False}, "background": {"enabled": False}},
        autogen={"podControllers": {"controllers": ["deployments", "CronJob"]}},
    )
    document["metadata"]["annotations"] = {"policies.kyverno.io/severity": "high"}
    spec = document["spec"]
    spec["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"env": "prod"}}
    spec["matchConstraints"]["objectSelector"] = {
        "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]
    }
    spec["matchConstraints"]["excludeResourceRules"] = [
        {
            "apiGroups": [""],
            "apiVersions": ["*"],
            "operations": ["*"],
            "resources": ["pods/ephemeralcontainers"],
        }
    ]
    spec["attestors"][0]["cosign"]["key"]["hashAlgorithm"] = "sha512"
    spec["attestors"][0]["cosign"]["ctlog"] = {"url": "https://rekor.example", "insecureIgnoreTlog": True}
    spec["validations"][0]["message"] = "unsigned"
    spec["validations"][0]["messageExpression"] = "'unsigned: ' + string(variables.count)"
    policy = load_one(document)
    assert policy.failure_policy == "Ignore"
    assert policy.validation_actions == frozenset({"Audit", "Warn"}) and policy.warns and not policy.denies
    assert [c.name for c in policy.match_conditions] == ["notSystem"]
    assert [v.name for v in policy.variables] == ["count"]
    assert (policy.mutate_digest, policy.verify_digest, policy.required) == (False, False, False)
    assert policy.match_image_references[0].glob == "ghcr.io/*"
    assert policy.match_image_references[1].expression is not None
    assert [e.name for e in policy.image_extractors] == ["custom"]
    assert policy.webhook_timeout_seconds == 15
    assert policy.admission is False
    assert policy.autogen_controllers == frozenset({"Deployment", "CronJob"})
    assert policy.severity == "high"
    constraints = policy.match_constraints
    assert constraints.namespace_selector == LabelSelector((("env", "prod"),))
    assert constraints.object_selector == LabelSelector(
        (), (SelectorRequirement("skip", "DoesNotExist", ()),)
    )
    assert constraints.exclude_resource_rules[0].resources == ("pods/ephemeralcontainers",)
    options = policy.attestors[0].options
    [spec] = options.attestors
    assert isinstance(spec, KeyAttestor) and spec.hash_algorithm == "sha512"
    assert options.ignore_tlog is True
    assert policy.validations[0].message == "unsigned"
    assert policy.validations[0].message_expression is not None


def test_namespaced_kind_needs_and_keeps_its_namespace() -> None:
    document = ivp()
    document["kind"] = "NamespacedImageValidatingPolicy"
    error = load_error(document)
    assert "metadata.namespace: is required" in str(error)
    document["metadata"]["namespace"] = "team-a"
    policy = load_one(document)
    assert (policy.namespace, policy.display_name, policy.report_name) == (
        "team-a",
        "team-a/check",
        "nivpol-check",
    )


def test_cluster_policies_and_image_validating_policies_load_from_one_source() -> None:
    cluster_policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "check"},
        "spec": {
            "rules": [
                {
                    "name": "verify",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": ["*"],
                            "attestors": [{"entries": [{"keys": {"publicKeys": PEM}}]}],
                        }
                    ],
                }
            ]
        },
    }
    policies = load(cluster_policy, ivp())
    assert [type(policy).__name__ for policy in policies] == ["KyvernoPolicy", "ImageValidatingPolicy"]


def test_loading_only_cluster_policies_does_not_import_the_cel_engine() -> None:
    script = (
        "import sys\n"
        "from exporter.policy.loader import parse_policies\n"
        "from exporter.admission.engine import AdmissionEngine\n"
        "text = open('exporter/defaults/policies/check-image-signature.yaml').read()\n"
        "assert parse_policies(text)\n"
        "assert 'cel_expr_python' not in sys.modules, 'CEL engine imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("field", "expression", "column", "problem"),
    [
        ("validations[0].expression", "images.containers.all(i, ", 26, "Syntax error"),
        ("validations[0].expression", "size(images.containers) + 'a' == 1", 25, "no matching overload"),
        (
            "validations[0].expression",
            "'not a bool'",
            None,
            "must evaluate to a bool, but its type is STRING",
        ),
        ("validations[0].expression", "undefinedThing == 1", 1, "undeclared reference to 'undefinedThing'"),
        ("validations[0].messageExpression", "1 + 1", None, "must evaluate to a string"),
    ],
)
def test_cel_errors_name_policy_field_and_column(
    field: str, expression: str, column: int | None, problem: str
) -> None:
    document = ivp()
    key = field.rsplit(".", maxsplit=1)[-1]
    document["spec"]["validations"][0][key] = expression
    error = load_error(document)
    assert error.policy == "ImageValidatingPolicy check"
    assert error.path == f"spec.{field}"
    assert problem in error.problem
    if column is not None:
        assert f"column {column}:" in error.problem
    assert str(error).startswith("policies.yaml, document 1, ImageValidatingPolicy check: spec.")


@pytest.mark.parametrize(
    ("spec", "path", "problem"),
    [
        (
            {"matchConditions": [{"name": "c", "expression": "object.x +"}]},
            "spec.matchConditions[0].expression",
            "Syntax error",
        ),
        (
            {"variables": [{"name": "v", "expression": "1 + true"}]},
            "spec.variables[0].expression",
            "no matching overload",
        ),
        (
            {"images": [{"name": "x", "expression": "'one'"}]},
            "spec.images[0].expression",
            "must evaluate to a list of strings",
        ),
        (
            {"matchImageReferences": [{"expression": "image.registry"}]},
            "spec.matchImageReferences[0].expression",
            "must evaluate to a bool",
        ),
        (
            {"matchImageReferences": [{"glob": "*", "expression": "true"}]},
            "spec.matchImageReferences[0]",
            "exactly one of glob and expression",
        ),
        ({"validationActions": ["Deny", "Warn"]}, "spec.validationActions", "Deny and Warn together"),
        ({"validationActions": ["Enforce"]}, "spec.validationActions[0]", "unsupported value 'Enforce'"),
        ({"failurePolicy": "Maybe"}, "spec.failurePolicy", "allowed: Fail, Ignore"),
        (
            {"webhookConfiguration": {"timeoutSeconds": 31}},
            "spec.webhookConfiguration.timeoutSeconds",
            "at most 30",
        ),
        ({"evaluation": {"mode": "JSON"}}, "spec.evaluation.mode", "only mode Kubernetes"),
        (
            {"autogen": {"podControllers": {"controllers": ["widgets"]}}},
            "spec.autogen.podControllers.controllers[0]",
            "unknown controller 'widgets'",
        ),
        ({"credentials": {"allowInsecureRegistry": True}}, "spec.credentials", "registry settings"),
        ({"validations": []}, "spec.validations", "at least one CEL validation"),
        ({"matchConstraints": {"resourceRules": []}}, "spec.matchConstraints.resourceRules", "is required"),
        (
            {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["PATCH"],
                            "resources": ["pods"],
                        }
                    ]
                }
            },
            "spec.matchConstraints.resourceRules[0].operations[0]",
            "unsupported operation 'PATCH'",
        ),
        (
            {"variables": [{"name": "a-b", "expression": "1"}]},
            "spec.variables[0].name",
            "not a CEL identifier",
        ),
        (
            {"variables": [{"name": "a", "expression": "1"}, {"name": "a", "expression": "2"}]},
            "spec.variables[1].name",
            "duplicate name 'a'",
        ),
        ({"surprise": True}, "spec.surprise", "unknown field"),
    ],
)
def test_bad_fields_are_load_errors_at_their_path(spec: dict[str, Any], path: str, problem: str) -> None:
    error = load_error(ivp(**spec))
    assert error.path == path, str(error)
    assert problem in error.problem, str(error)


@pytest.mark.parametrize(
    ("cosign", "path", "problem"),
    [
        ({"keyless": {"identities": []}}, "spec.attestors[0].cosign.keyless", "needs an identity"),
        (
            {"keyless": {"identities": [{"subjectRegExp": "(unclosed"}]}},
            "spec.attestors[0].cosign.keyless",
            "(unclosed",
        ),
        ({"keyless": {"identities": [{"issuer": "i"}], "roots": "junk"}},
         "spec.attestors[0].cosign.keyless.roots", "PEM certificates"),
        ({"certificate": {"cert": {"value": "x"}}},
         "spec.attestors[0].cosign.certificate.cert", "PEM certificates"),
        ({"certificate": {}}, "spec.attestors[0].cosign.certificate", "needs a certificate, a chain or both"),
        ({"key": {"data": PEM}, "keyless": {"identities": [{"issuer": "i"}]}}, "spec.attestors[0].cosign",
         "exactly one of key, keyless and certificate"),
        ({"key": {"data": PEM}, "source": {"tagPrefix": "-v"}}, "spec.attestors[0].cosign.source.tagPrefix",
         "cannot start a tag"),
        ({"key": {"data": PEM}, "source": {"tagPrefix": "v" * 54}},
         "spec.attestors[0].cosign.source.tagPrefix", "at most 53"),
        ({"key": {"data": PEM}, "source": {"repository": "r.example/sigs:v1"}},
         "spec.attestors[0].cosign.source.repository", "without tag or digest"),
        ({"key": {"data": PEM}, "annotations": {"a": 1}},
         "spec.attestors[0].cosign.annotations.a", "expected a string value"),
        ({"key": {"data": PEM}, "tuf": {"mirror": "https://tuf"}}, "spec.attestors[0].cosign.tuf", "TUF"),
        ({"key": {"data": PEM}, "trustedRoot": "{}"}, "spec.attestors[0].cosign.trustedRoot", "trustedRoot"),
        ({"key": {"kms": "gcpkms://k"}}, "spec.attestors[0].cosign.key.kms", "KMS keys are not supported"),
        ({"key": {"hashAlgorithm": "sha256"}}, "spec.attestors[0].cosign.key.data", "is required"),
        ({"key": {"data": "not a key"}}, "spec.attestors[0].cosign.key.data", "PEM"),
        ({"key": {"data": PEM, "hashAlgorithm": "md5"}}, "spec.attestors[0].cosign.key.hashAlgorithm",
         "unsupported value 'md5'"),
    ],
)  # fmt: skip
def test_attestor_fields_that_cannot_work_are_named(cosign: dict[str, Any], path: str, problem: str) -> None:
    document = ivp()
    document["spec"]["attestors"][0]["cosign"] = cosign
    error = load_error(document)
    assert error.path == path, str(error)
    assert problem in error.problem, str(error)


def test_keyless_certificate_and_trust_settings_become_verification_options() -> None:
    document = ivp()
    document["spec"]["attestors"] = [
        {
            "name": "ci",
            "cosign": {
                "keyless": {
                    "identities": [
                        {
                            "issuer": "https://token.actions.githubusercontent.com",
                            "subjectRegExp": "^https://github.com/org/.*$",
                        }
                    ]
                },
                "ctlog": {"insecureIgnoreSCT": True, "rekorPubKey": PEM, "url": "https://rekor.example"},
                "source": {"repository": "registry.example/signatures"},
            },
        },
        {"name": "pki", "cosign": {"certificate": {"certChain": CERTIFICATE}}},
    ]
    document["spec"]["attestations"] = [
        {"name": "slsa", "intoto": {"type": "https://slsa.dev/provenance/v1"}},
        {"name": "sbom", "referrer": {"type": "https://cyclonedx.org/bom"}},
    ]
    policy = load_one(document)
    keyless, pki = policy.attestors
    [spec] = keyless.options.attestors
    assert isinstance(spec, KeylessAttestor) and keyless.kind == "keyless"
    [identity] = spec.identities
    assert identity.issuer == "https://token.actions.githubusercontent.com" and identity.wildcards
    assert identity.subject_regexp == "^https://github.com/org/.*$"
    assert keyless.options.ignore_sct and keyless.options.ignore_tlog is None and keyless.options.rekor_keys
    assert keyless.options.signature_repository == "registry.example/signatures"
    assert keyless.options.rekor_url == "https://rekor.example" and pki.options.rekor_url is None
    [certificate] = pki.options.attestors
    assert isinstance(certificate, CertificateAttestor) and certificate.chain == CERTIFICATE
    assert [(a.name, a.predicate_type, a.kind) for a in policy.attestations] == [
        ("slsa", "https://slsa.dev/provenance/v1", "intoto"),
        ("sbom", "https://cyclonedx.org/bom", "referrer"),
    ]


def test_attestations_need_exactly_one_type_holder() -> None:
    document = ivp(attestations=[{"name": "x", "intoto": {"type": "t"}, "referrer": {"type": "t"}}])
    assert load_error(document).path == "spec.attestations[0]"
    document = ivp(attestations=[{"name": "x", "intoto": {}}])
    assert load_error(document).path == "spec.attestations[0].intoto.type"


def test_notary_attestor_is_a_load_error_naming_the_field() -> None:
    document = ivp()
    document["spec"]["attestors"] = [{"name": "n", "notary": {"certs": {"value": "x"}}}]
    error = load_error(document)
    assert error.path == "spec.attestors[0].notary"
    assert "Notary" in error.problem


def test_duplicate_attestor_names_are_rejected() -> None:
    document = ivp()
    document["spec"]["attestors"].append(copy.deepcopy(document["spec"]["attestors"][0]))
    assert "duplicate attestor name 'key'" in str(load_error(document))


def test_same_name_in_both_kinds_is_allowed_but_not_twice_in_one() -> None:
    namespaced = ivp()
    namespaced["kind"] = "NamespacedImageValidatingPolicy"
    namespaced["metadata"]["namespace"] = "a"
    assert len(load(ivp(), namespaced)) == 2
    assert "duplicate ImageValidatingPolicy check" in str(load_error_many(ivp(), ivp()))


def load_error_many(*documents: dict[str, Any]) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as caught:
        load(*documents)
    return caught.value


def test_keys_are_parsed_at_load() -> None:
    document = ivp()
    truncated = PEM.replace(PEM.splitlines()[1], PEM.splitlines()[1][:20])
    document["spec"]["attestors"][0]["cosign"]["key"]["data"] = truncated
    error = load_error(document)
    assert error.path == "spec.attestors[0].cosign.key.data"
    document = ivp()
    document["spec"]["attestors"][0]["cosign"]["ctlog"] = {"rekorPubKey": truncated}
    assert load_error(document).path == "spec.attestors[0].cosign.ctlog.rekorPubKey"


def test_the_documented_side_by_side_policies_load() -> None:
    """docs/policies.md shows the walkthrough as ClusterPolicy and as ImageValidatingPolicy: both load."""
    text = (REPO_ROOT / "docs" / "policies.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]
    side_by_side = [block for block in blocks if "name: check-image-signature" in block]
    loaded = [policy for block in side_by_side for policy in parse_policies(block, "docs/policies.md")]
    assert {(policy.kind, policy.name) for policy in loaded} == {
        ("ClusterPolicy", "check-image-signature"),
        ("ImageValidatingPolicy", "check-image-signature-enforce"),
    }
