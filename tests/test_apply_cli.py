"""`trustwatch apply` against a real docker-registry: decisions, exit codes, the PolicyReport it prints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from tests.support.admission import DATA, walkthrough_policy_text, workload
from tests.support.oci_push import attach_referrer
from tests.support.registry import (
    RegistryServer,
    SignatureLayerSpec,
    generate_signing_key,
    public_pem,
    registry_available,
)
from tests.support.sigstore_box import GITHUB_ISSUER, Identity, SigstoreBox

needs_registry = pytest.mark.skipif(not registry_available(), reason="needs /usr/bin/docker-registry")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Path]]:
    if not registry_available():
        pytest.skip("needs /usr/bin/docker-registry")
    tmp = tmp_path_factory.mktemp("apply")
    key = generate_signing_key()
    registry = RegistryServer(tmp / "registry").start()
    signed = registry.push_image("user/test", "signed", b"signed")
    registry.sign("user/test", signed, key)
    registry.push_image("user/test", "unsigned", b"unsigned")
    policy = tmp / "policy.yaml"
    policy.write_text(walkthrough_policy_text(public_pem(key)))
    try:
        yield registry, policy
    finally:
        registry.stop()


def write_resources(path: Path, *objects: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump_all(objects))
    return path


@pytest.mark.registry
@needs_registry
def test_apply_prints_decisions_and_fails_on_enforce_denials(
    setup: tuple[RegistryServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, policy = setup
    image = f"{registry.host}/user/test"
    resources = write_resources(
        tmp_path / "resources.yaml",
        workload("Deployment", "unsigned", "prod", f"{image}:unsigned"),
        workload("Deployment", "signed", "prod", f"{image}:signed"),
        workload("Deployment", "unsigned", "dev", f"{image}:unsigned"),
    )
    args = [
        "apply",
        "--policy",
        str(policy),
        "--resource",
        str(resources),
        "--insecure-registry",
        registry.host,
    ]
    assert main([*args, "--policy-report"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Applying 3 policy rule(s) to 3 resource(s)...")
    assert (
        "DENIED Deployment/prod/unsigned\n\npolicy Deployment/prod/unsigned for resource violation:\n\n"
        "check-image-signature:\n  autogen-verify-image: |\n"
        f"    failed to verify image {image}:unsigned: .attestors[0].entries[0].keys: no matching signatures"
    ) in out
    assert "ADMITTED Deployment/prod/signed\n  pinned /spec/template/spec/containers/0/image -> " in out
    assert (
        "ADMITTED Deployment/dev/unsigned\n  warning: policy check-image-signature.autogen-verify-image"
        in out
    )
    assert "pass: 1, fail: 2, warn: 0, error: 0, skip: 0" in out
    report_list = yaml.safe_load(out.split("\n---\n", 1)[1])
    summaries = {item["metadata"]["namespace"]: item["summary"] for item in report_list["items"]}
    assert summaries["dev"]["fail"] == 1
    assert summaries["prod"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}

    only_audit = write_resources(tmp_path / "dev.yaml", workload("Pod", "p", "dev", f"{image}:unsigned"))
    assert (
        main(
            [
                "apply",
                "--policy",
                str(policy),
                "--resource",
                str(only_audit),
                "--insecure-registry",
                registry.host,
            ]
        )
        == 0
    )


@pytest.mark.registry
@needs_registry
def test_namespace_labels_steer_namespace_selectors(
    setup: tuple[RegistryServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, policy = setup
    selector_policy = tmp_path / "policy.yaml"
    selector_policy.write_text(
        policy.read_text().replace(
            "namespaces: [prod]", "namespaceSelector:\n      matchLabels: {tier: critical}"
        )
    )
    labels = tmp_path / "labels.yaml"
    labels.write_text("payments: {tier: critical}\n")
    resources = write_resources(
        tmp_path / "r.yaml", workload("Pod", "p", "payments", f"{registry.host}/user/test:unsigned")
    )
    args = [
        "apply",
        "--policy",
        str(selector_policy),
        "--resource",
        str(resources),
        "--insecure-registry",
        registry.host,
    ]
    assert main([*args, "--namespace-labels", str(labels)]) == 1
    assert "no matching signatures" in capsys.readouterr().out
    # a namespace not described has no labels but its name: the override does not apply (Audit)
    labels.write_text("elsewhere: {tier: critical}\n")
    assert main([*args, "--namespace-labels", str(labels)]) == 0
    assert main(args) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("a: [", "is not valid YAML"),
        ("just a string\n", "is not a Kubernetes object"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "has no metadata.name"),
    ],
)
def test_bad_resources_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(walkthrough_policy_text(public_pem(generate_signing_key())))
    resources = tmp_path / "r.yaml"
    resources.write_text(content)
    assert main(["apply", "--policy", str(policy), "--resource", str(resources)]) == 2
    assert problem in capsys.readouterr().err


def test_bad_policy_and_labels_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x}\nspec: {rules: []}\n"
    )
    resources = write_resources(tmp_path / "r.yaml", workload("Pod", "p", "dev", "nginx"))
    assert main(["apply", "--policy", str(policy), "--resource", str(resources)]) == 2
    assert "trustwatch apply: error:" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(walkthrough_policy_text(public_pem(generate_signing_key())))
    labels = tmp_path / "labels.yaml"
    labels.write_text("- not a mapping\n")
    assert (
        main(
            ["apply", "--policy", str(good), "--resource", str(resources), "--namespace-labels", str(labels)]
        )
        == 2
    )
    assert "must map each namespace name" in capsys.readouterr().err
    assert main(["apply", "--policy", str(tmp_path / "missing.yaml"), "--resource", str(resources)]) == 2


@pytest.mark.registry
@needs_registry
def test_apply_evaluates_image_validating_policies_beside_cluster_policies(
    setup: tuple[RegistryServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One policy directory holding both kinds: each decides as in serve, with its own report."""
    registry, policy = setup
    pem = yaml.safe_load(policy.read_text())["spec"]["rules"][0]["verifyImages"][0]["key"]
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "cluster-policy.yaml").write_text(policy.read_text())
    ivp_text = (DATA / "walkthrough-ivp.yaml").read_text()
    (policies / "image-policies.yaml").write_text(
        ivp_text.replace("__KEY_PEM__", textwrap.indent(pem.strip(), " " * 10))
    )
    image = f"{registry.host}/user/test"
    resources = write_resources(
        tmp_path / "resources.yaml",
        workload("Deployment", "unsigned", "prod", f"{image}:unsigned"),
        workload("Pod", "unsigned", "dev", f"{image}:unsigned"),
    )
    args = ["apply", "--policy", str(policies), "--resource", str(resources)]
    assert main([*args, "--insecure-registry", registry.host, "--policy-report"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Applying 5 policy rule(s) to 2 resource(s)...")
    assert "check-image-signature-enforce:\n  autogen-check-image-signature-enforce: |\n" in out
    assert f"    image signature verification failed for {image}:unsigned" in out
    assert "warning: policy check-image-signature-audit.check-image-signature-audit: image signature" in out
    report_list = yaml.safe_load(out.split("\n---\n", 1)[1])
    by_name = {
        (item["metadata"]["namespace"], item["metadata"]["name"]): item for item in report_list["items"]
    }
    dev_ivp = by_name[("dev", "ivpol-check-image-signature-audit")]
    assert dev_ivp["results"][0]["source"] == "KyvernoImageValidatingPolicy"
    assert dev_ivp["summary"]["fail"] == 1
    assert by_name[("dev", "cpol-check-image-signature")]["summary"]["fail"] == 1


@pytest.mark.registry
@needs_registry
def test_apply_verifies_keyless_attestors_under_the_trusted_root_given(
    setup: tuple[RegistryServer, Path],
    sigstore_box: SigstoreBox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry, _ = setup
    signer = Identity("release@example.com", GITHUB_ISSUER)
    digest = registry.push_image("user/keyless", "v1", b"keyless")
    bundle = sigstore_box.image_bundle(digest, signer)
    layer = SignatureLayerSpec(bundle.json, {}, bundle.media_type)
    attach_referrer(registry, "user/keyless", digest, bundle.media_type, [layer])
    root = sigstore_box.write_trusted_root(tmp_path / "trusted_root.json")
    keyless = (
        "      - keyless:\n          subject: '*@example.com'\n          issuer: " + GITHUB_ISSUER + "\n"
    )
    policy = tmp_path / "keyless.yaml"
    policy.write_text(
        walkthrough_policy_text("").split("    - image: '*'")[0]
        + "    - imageReferences: ['*']\n      attestors:\n      - entries:\n"
        + textwrap.indent(keyless, "  ")
    )
    resources = write_resources(
        tmp_path / "pod.yaml", workload("Pod", "app", "prod", f"{registry.host}/user/keyless:v1")
    )
    args = [
        "apply",
        "--policy",
        str(policy),
        "--resource",
        str(resources),
        "--insecure-registry",
        registry.host,
    ]
    assert main([*args, "--trusted-root", str(root)]) == 0
    assert "ADMITTED Pod/prod/app" in capsys.readouterr().out
    # the shipped public-good root does not know this Fulcio: Enforce in prod denies
    assert main(args) == 1
    assert ".attestors[0].entries[0].keyless: no matching signatures" in capsys.readouterr().out
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert main([*args, "--trusted-root", str(broken)]) == 2
    assert "broken.json" in capsys.readouterr().err


def test_a_registry_error_names_its_cause_on_stderr(tmp_path: Path) -> None:
    """The denial says the registry could not be read and points at the log; run as a command, apply's
    log is stderr, and it names the image and the error."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(walkthrough_policy_text(public_pem(generate_signing_key())))
    with socket.socket() as closed:  # bound, never listening: connections to it are refused at once
        closed.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{closed.getsockname()[1]}"
        resources = write_resources(
            tmp_path / "r.yaml", workload("Deployment", "app", "prod", f"{host}/user/test:1")
        )
        command = ["apply", "--policy", str(policy), "--resource", str(resources)]
        command += ["--insecure-registry", host]
        done = subprocess.run(
            [sys.executable, "-m", "exporter", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
    assert done.returncode == 1, done.stderr
    assert "could not be reached" in done.stdout and "details in trustwatch's log" in done.stdout
    (line,) = [line for line in done.stderr.splitlines() if "cannot resolve the image's digest" in line]
    assert f"image='{host}/user/test:1'" in line
    assert "error=" in line and f"http://{host}/v2/user/test/manifests/1: " in line
