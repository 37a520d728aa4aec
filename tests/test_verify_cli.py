"""`trustwatch verify`: exit codes, text and JSON output, arguments, and a start-up without kubernetes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.cli import main
from tests.support.oci_push import attach_referrer, push_att, push_referrer, push_referrers_index
from tests.support.registry import (
    HangingServer,
    RegistryServer,
    SignatureLayerSpec,
    generate_signing_key,
    needs_registry,
    public_pem,
)
from tests.support.sigstore_box import GITHUB_ISSUER, GitHubWorkflow, Identity, SigstoreBox

pytestmark = needs_registry

REPO_ROOT = Path(__file__).resolve().parents[1]
SIGNER = generate_signing_key()
# A generous guard so a hang fails the test instead of stalling the suite; not a timing assertion.
HANG_GUARD = 60


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    # Bearer-token auth guarded by a user, so the CLI exercises the whole login flow.
    with RegistryServer(
        tmp_path_factory.mktemp("cli-registry"), token_auth=True, users={"ci": "pass"}
    ) as server:
        digest = server.push_image("cli/signed", "v1")
        server.sign("cli/signed", digest, SIGNER)
        server.push_image("cli/unsigned", "v1")
        yield server


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli-files")
    paths = {
        "key": folder / "release.pub",
        "other": folder / "other.pub",
        "config": folder / "config.json",
        "garbage": folder / "garbage.pub",
    }
    paths["key"].write_text(public_pem(SIGNER))
    paths["other"].write_text(public_pem(generate_signing_key("ed25519")))
    paths["config"].write_text(json.dumps({"auths": {registry.host: {"username": "ci", "password": "pass"}}}))
    paths["garbage"].write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    return {name: str(path) for name, path in paths.items()}


def _cli(registry: RegistryServer, files: dict[str, str], *args: str) -> list[str]:
    return [
        "verify",
        "--insecure-registry",
        registry.host,
        "--registry-config",
        files["config"],
        *args,
    ]


def test_verified_image_exits_0_and_names_digest_and_key(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_cli(registry, files, "--key", files["key"], f"{registry.host}/cli/signed:v1"))
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"VERIFIED {registry.host}/cli/signed:v1")
    assert "digest: sha256:" in out
    assert f"signed by: {files['key']}" in out


def test_json_output_carries_the_same_facts(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image = f"{registry.host}/cli/signed:v1"
    assert main(_cli(registry, files, "--output", "json", "--key", files["key"], image)) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "verified"
    assert document["image"] == image
    assert document["matchedKeys"] == [files["key"]]
    assert document["digest"].startswith("sha256:")
    (signature,) = document["signatures"]
    assert (signature["format"], signature["place"], signature["key"]) == (
        "simple-signing",
        "sig-tag",
        files["key"],
    )
    assert signature["repository"] == f"{registry.host}/cli/signed"
    assert main(_cli(registry, files, "--output", "json", "--key", files["other"], image)) == 1
    invalid = json.loads(capsys.readouterr().out)
    assert invalid["status"] == "invalid"
    assert "does not verify with any trusted key" in invalid["reasons"][0]


def test_unsigned_and_invalid_exit_1(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli(registry, files, "--key", files["key"], f"{registry.host}/cli/unsigned:v1")) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    assert main(_cli(registry, files, "--key", files["other"], f"{registry.host}/cli/signed:v1")) == 1
    out = capsys.readouterr().out
    assert "no valid signature by a trusted signer" in out
    two = ["--key", files["key"], "--key", files["other"], "--count", "2"]
    assert main(_cli(registry, files, *two, f"{registry.host}/cli/signed:v1")) == 1
    assert "only 1 of the required 2 attestors signed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "{key}", "team/App:1"], "invalid image reference 'team/App:1'"),
        (["--key", "/nonexistent/key.pub", "{image}"], "cannot read key file /nonexistent/key.pub"),
        (["--key", "{garbage}", "{image}"], "not a PEM public key"),
        (["--key", "{key}", "--count", "3", "{image}"], "threshold (count) 3 must be between 1"),
        (["--key", "{key}", "--require-tlog", "--insecure-ignore-tlog", "{image}"], "contradict each other"),
        (["{image}"], "give --key, --cert/--cert-chain, or a keyless identity"),
        (["--certificate-identity", "me@example.com", "{image}"], "needs --certificate-oidc-issuer"),
        (["--key", "{key}", "--certificate-identity", "a", "{image}"], "give one or the other"),
        (["--key", "{key}", "--trusted-root", "{garbage}", "{image}"], "garbage.pub"),
        (["--key", "{key}", "--signature-repository", "r.test/sigs:v1", "{image}"], "--signature-repository"),
        (
            [
                "--certificate-identity",
                "a",
                "--certificate-oidc-issuer",
                "b",
                "--certificate-identity-regexp",
                "(",
                "{image}",
            ],
            "certificate-identity-regexp",
        ),
        (["--key", "{key}", "--timeout", "0", "{image}"], "--timeout must be positive"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_error(
    registry: RegistryServer,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    values = {**files, "image": f"{registry.host}/cli/signed:v1"}
    assert main(_cli(registry, files, *(arg.format(**values) for arg in args))) == 2
    assert message in capsys.readouterr().err


def test_missing_credentials_and_unknown_image_exit_2(
    registry: RegistryServer, files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    image = f"{registry.host}/cli/signed:v1"
    args = [
        "verify",
        "--insecure-registry",
        registry.host,
        "--registry-config",
        str(empty),
        "--key",
        files["key"],
    ]
    assert main([*args, image]) == 2
    assert "answered HTTP 401; the repository may be private" in capsys.readouterr().out
    assert main(_cli(registry, files, "--key", files["key"], f"{registry.host}/cli/absent:v1")) == 2
    assert "not found (404)" in capsys.readouterr().out


def _run_process(*args: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\n"
        "from exporter.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = any(m.split('.')[0] in ('kubernetes', 'cel_expr_python') for m in sys.modules)\n"
        "print('KUBERNETES_IMPORTED' if loaded else 'CLEAN', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=HANG_GUARD,
        check=False,
    )


def test_whole_process_verifies_without_importing_kubernetes(
    registry: RegistryServer, files: dict[str, str]
) -> None:
    result = _run_process(*_cli(registry, files, "--key", files["key"], f"{registry.host}/cli/signed:v1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip().endswith("CLEAN")


def test_verify_module_alone_does_not_import_kubernetes() -> None:
    script = (
        "import sys, argparse\n"
        "import exporter.commands.verify as verify\n"
        "parser = argparse.ArgumentParser(); verify.register(parser.add_subparsers())\n"
        "args = parser.parse_args(['verify', '--key', '/nonexistent', 'nginx'])\n"
        "assert verify.run(args) == 2\n"
        "assert not any(m.split('.')[0] == 'kubernetes' for m in sys.modules), 'kubernetes imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


async def test_a_hanging_registry_ends_in_an_error_inside_the_timeout(tmp_path: Path) -> None:
    key = tmp_path / "key.pub"
    key.write_text(public_pem(SIGNER))
    image = "x/y:v1"
    async with HangingServer() as server:
        # A subprocess, so this event loop keeps serving the hanging server meanwhile.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exporter",
            "verify",
            "--insecure-registry",
            server.host,
            "--timeout",
            "1",
            "--key",
            str(key),
            f"{server.host}/{image}",
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(HANG_GUARD):
            out, _ = await process.communicate()
    assert process.returncode == 2
    assert out.decode().startswith(f"ERROR {server.host}/{image}:")
    assert server.connections >= 1


def test_json_output_reports_argument_errors_too(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli(registry, files, "--output", "json", "--key", files["key"], "team/Case")) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["status"] == "error"
    assert "invalid image reference 'team/Case'" in document["error"]
    assert "invalid image reference" in captured.err


VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
REKOR_CASE = VECTORS / "ci-key-cosign2-rekor"


@pytest.mark.skipif(not REKOR_CASE.exists(), reason=f"cosign interop vectors not found at {VECTORS}")
def test_rekor_flags_with_a_real_cosign_bundle(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    payload = (REKOR_CASE / "payload.json").read_bytes()
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    annotations = json.loads((REKOR_CASE / "annotations.json").read_text())["annotations"]
    registry.push_signature_layers("cli/rekor", digest, [SignatureLayerSpec(payload, annotations)])
    image = f"{registry.host}/cli/rekor@{digest}"
    key, rekor = str(REKOR_CASE / "key.pub"), str(REKOR_CASE / "rekor.pub")
    assert main(_cli(registry, files, "--key", key, "--rekor-key", rekor, "--require-tlog", image)) == 0
    out = capsys.readouterr().out
    assert "VERIFIED" in out
    assert f"simple-signing in sig-tag ({registry.host}/cli/rekor), signed by {key}, logged at index" in out
    assert "(tlog)" in out
    # The image's own key is no Rekor key: the bundle's log is then unknown and the tlog requirement fails.
    assert main(_cli(registry, files, "--key", key, "--rekor-key", key, "--require-tlog", image)) == 1
    assert "which is not trusted" in capsys.readouterr().out


def test_signature_algorithm_and_reference_flags(
    registry: RegistryServer, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    digest = registry.push_image("cli/sha512", "v1")
    registry.sign("cli/sha512", digest, SIGNER, hash_name="sha512", docker_reference="elsewhere.test/copy")
    image = f"{registry.host}/cli/sha512:v1"
    assert main(_cli(registry, files, "--key", files["key"], image)) == 1
    assert main(_cli(registry, files, "--key", files["key"], "--signature-algorithm", "sha512", image)) == 0
    strict = ["--key", files["key"], "--signature-algorithm", "sha512", "--require-reference", image]
    capsys.readouterr()
    assert main(_cli(registry, files, *strict)) == 1
    assert "'elsewhere.test/copy', not" in capsys.readouterr().out


def test_registry_credentials_default_to_docker_config(
    registry: RegistryServer,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "config.json").write_text(Path(files["config"]).read_text())
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    args = [
        "verify",
        "--insecure-registry",
        registry.host,
        "--key",
        files["key"],
        f"{registry.host}/cli/signed:v1",
    ]
    assert main(args) == 0
    assert "VERIFIED" in capsys.readouterr().out


def test_a_truncated_key_file_is_an_error_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = public_pem(generate_signing_key()).strip().splitlines()
    lines[1] = lines[1][:-1]
    key_file = tmp_path / "cosign.pub"
    key_file.write_text("\n".join(lines) + "\n")
    assert main(["verify", "127.0.0.1:1/app:v1", "--key", str(key_file)]) == 2
    error = capsys.readouterr().err
    assert str(key_file) in error and "the key looks truncated" in error


def test_a_cosign3_key_signed_bundle_on_a_referrer_verifies(
    registry: RegistryServer,
    files: dict[str, str],
    sigstore_box: SigstoreBox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """cosign 3's ``sign --key``: a DSSE bundle as a referrer (tag fallback), logged in Rekor."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = registry.push_image("cli/cosign3", "v1")
    signed = sigstore_box.image_bundle(digest, key)
    attach_referrer(
        registry,
        "cli/cosign3",
        digest,
        signed.media_type,
        [SignatureLayerSpec(signed.json, {}, signed.media_type)],
    )
    key_file, rekor_file = tmp_path / "cosign.pub", tmp_path / "rekor.pub"
    key_file.write_text(public_pem(key))
    rekor_file.write_text(sigstore_box.rekor_public_pem)
    image = f"{registry.host}/cli/cosign3:v1"
    args = ("--output", "json", "--key", str(key_file), "--rekor-key", str(rekor_file), image)
    assert main(_cli(registry, files, *args)) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert (signature["format"], signature["place"], signature["bundleVersion"]) == (
        "bundle-dsse",
        "referrers-tag",
        "0.3",
    )
    assert signature["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert signed.log_entry is not None
    assert (signature["logIndex"], signature["timeSource"]) == (signed.log_entry.log_index, "tlog")
    # Without that log's key the entry is from an unknown log (the shipped root trusts Sigstore's only).
    assert main(_cli(registry, files, "--key", str(key_file), image)) == 1
    assert "which is not trusted" in capsys.readouterr().out


# --- keyless, certificates, signature repository, attestations (a Sigstore of our own) ---------------

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
KEYLESS = Identity(WORKFLOW, GITHUB_ISSUER, github=GitHubWorkflow(repository="acme/app", trigger="push"))
SLSA_V1 = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def box_root(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(sigstore_box.write_trusted_root(tmp_path_factory.mktemp("cli-box") / "trusted_root.json"))


@pytest.fixture(scope="module")
def keyless_images(registry: RegistryServer, sigstore_box: SigstoreBox) -> dict[str, str]:
    """cli/keyless-sig: a legacy keyless .sig; cli/keyless-bundle: cosign 3's bundle on a referrer, and
    an SLSA v1 attestation bundle beside it; cli/elsewhere: signed in cli/signatures (another repository);
    cli/attested: a legacy .att SLSA v0.2 attestation."""
    images = {}
    digest = registry.push_image("cli/keyless-sig", "v1")
    legacy = sigstore_box.legacy_signature(digest, f"{registry.host}/cli/keyless-sig", KEYLESS)
    registry.push_signature_layers("cli/keyless-sig", digest, [legacy.layer])
    images["sig"] = f"{registry.host}/cli/keyless-sig:v1"
    digest = registry.push_image("cli/keyless-bundle", "v1")
    signed = sigstore_box.image_bundle(digest, KEYLESS, log="rekor-v2", timestamp=True)
    attested = sigstore_box.image_bundle(digest, KEYLESS, predicate_type=SLSA_V1, predicate={"builder": "ci"})
    referrers = [
        push_referrer(
            registry,
            "cli/keyless-bundle",
            digest,
            bundle.media_type,
            [SignatureLayerSpec(bundle.json, {}, bundle.media_type)],
        )
        for bundle in (signed, attested)
    ]
    push_referrers_index(registry, "cli/keyless-bundle", digest, referrers)
    images["bundle"] = f"{registry.host}/cli/keyless-bundle:v1"
    digest = registry.push_image("cli/elsewhere", "v1")
    elsewhere = sigstore_box.legacy_signature(digest, f"{registry.host}/cli/elsewhere", KEYLESS)
    registry.push_signature_layers("cli/signatures", digest, [elsewhere.layer])
    images["elsewhere"] = f"{registry.host}/cli/elsewhere:v1"
    digest = registry.push_image("cli/attested", "v1")
    statement = sigstore_box.legacy_attestation(digest, f"{registry.host}/cli/attested", KEYLESS)
    push_att(registry, "cli/attested", digest, [statement.layer])
    images["attested"] = f"{registry.host}/cli/attested:v1"
    return images


def _keyless(box_root: str, *extra: str) -> list[str]:
    return ["--trusted-root", box_root, "--certificate-oidc-issuer", GITHUB_ISSUER, *extra]


def test_keyless_legacy_sig_verifies_with_its_identity_log_index_and_time(
    registry: RegistryServer,
    files: dict[str, str],
    box_root: str,
    keyless_images: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = keyless_images["sig"]
    args = _keyless(box_root, "--certificate-identity", WORKFLOW, "--output", "json", image)
    assert main(_cli(registry, files, *args)) == 0
    document = json.loads(capsys.readouterr().out)
    (signature,) = document["signatures"]
    assert (signature["format"], signature["place"], signature["timeSource"]) == (
        "simple-signing",
        "sig-tag",
        "tlog",
    )
    assert signature["identity"]["subject"] == WORKFLOW
    assert signature["identity"]["issuer"] == GITHUB_ISSUER
    assert isinstance(signature["logIndex"], int)
    assert signature["integratedTime"] == signature["signingTime"]
    text_args = _keyless(box_root, "--certificate-identity", WORKFLOW, image)
    assert main(_cli(registry, files, *text_args)) == 0
    out = capsys.readouterr().out
    assert f"as {WORKFLOW} from {GITHUB_ISSUER}, logged at index {signature['logIndex']}" in out
    # another identity, or the shipped public-good root (which does not know this Fulcio), is a no
    wrong = _keyless(box_root, "--certificate-identity", "https://github.com/acme/other", image)
    assert main(_cli(registry, files, *wrong)) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    public_good = ["--certificate-oidc-issuer", GITHUB_ISSUER, "--certificate-identity", WORKFLOW, image]
    assert main(_cli(registry, files, *public_good)) == 1
    capsys.readouterr()


def test_keyless_bundle_on_a_referrer_with_regexp_and_github_workflow_flags(
    registry: RegistryServer,
    files: dict[str, str],
    box_root: str,
    keyless_images: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = keyless_images["bundle"]
    regexp = ["--certificate-identity-regexp", "^https://github.com/acme/"]
    github = ["--certificate-github-workflow-repository", "acme/app", "--certificate-github-workflow-trigger"]
    args = _keyless(box_root, *regexp, *github, "push", "--output", "json", image)
    assert main(_cli(registry, files, *args)) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert (signature["format"], signature["place"], signature["timeSource"]) == (
        "bundle-dsse",
        "referrers-tag",
        "timestamp-authority",
    )
    assert signature["identity"]["extensions"]["githubWorkflowRepository"] == "acme/app"
    assert main(_cli(registry, files, *_keyless(box_root, *regexp, *github, "release", image))) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out


def test_cert_chain_and_signature_repository(  # noqa: PLR0917
    registry: RegistryServer,
    files: dict[str, str],
    sigstore_box: SigstoreBox,
    box_root: str,
    keyless_images: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_text(sigstore_box.chain_pem)
    rogue = tmp_path / "rogue.pem"
    rogue.write_text(SigstoreBox("cli rogue", now=sigstore_box.now).chain_pem)
    image = keyless_images["sig"]
    assert main(_cli(registry, files, "--trusted-root", box_root, "--cert-chain", str(chain), image)) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert main(_cli(registry, files, "--trusted-root", box_root, "--cert-chain", str(rogue), image)) == 1
    capsys.readouterr()
    elsewhere = keyless_images["elsewhere"]
    who = _keyless(box_root, "--certificate-identity", WORKFLOW)
    assert main(_cli(registry, files, *who, elsewhere)) == 1
    assert "unsigned" in capsys.readouterr().out
    repository = ["--signature-repository", f"{registry.host}/cli/signatures"]
    assert main(_cli(registry, files, *who, *repository, elsewhere)) == 0
    assert f"sig-tag ({registry.host}/cli/signatures)" in capsys.readouterr().out
    monkeypatch.setenv("COSIGN_REPOSITORY", f"{registry.host}/cli/signatures")
    assert main(_cli(registry, files, *who, elsewhere)) == 0
    capsys.readouterr()


def _attestation_cli(registry: RegistryServer, files: dict[str, str], *args: str) -> list[str]:
    return ["verify-attestation", *_cli(registry, files, *args)[1:]]


@pytest.mark.parametrize("kind", ["slsaprovenance1", SLSA_V1])
def test_verify_attestation_prints_verified_statements_as_json_lines(  # noqa: PLR0917
    registry: RegistryServer,
    files: dict[str, str],
    box_root: str,
    keyless_images: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    image = keyless_images["bundle"]
    who = _keyless(box_root, "--certificate-identity", WORKFLOW)
    assert main(_attestation_cli(registry, files, "--type", kind, *who, image)) == 0
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    statement = json.loads(line)
    assert statement["predicateType"] == SLSA_V1
    assert statement["predicate"] == {"builder": "ci"}
    assert "referrers-tag" in captured.err
    assert main(_attestation_cli(registry, files, "--type", "cyclonedx", *who, image)) == 1
    assert "no https://cyclonedx.org/bom attestation found" in capsys.readouterr().err


def test_verify_attestation_reads_legacy_att_and_checks_the_identity(
    registry: RegistryServer,
    files: dict[str, str],
    box_root: str,
    keyless_images: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = keyless_images["attested"]
    who = _keyless(box_root, "--certificate-identity", WORKFLOW)
    assert main(_attestation_cli(registry, files, "--type", "slsaprovenance", *who, image)) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["predicateType"] == "https://slsa.dev/provenance/v0.2"
    other = _keyless(box_root, "--certificate-identity", "someone@example.com")
    assert main(_attestation_cli(registry, files, "--type", "slsaprovenance", *other, image)) == 1
    assert "NOT VERIFIED" in capsys.readouterr().err
    assert main(_attestation_cli(registry, files, "--type", "slsaprovenance", image)) == 2


def test_verify_attestation_process_does_not_import_kubernetes(
    registry: RegistryServer, files: dict[str, str], box_root: str, keyless_images: dict[str, str]
) -> None:
    who = _keyless(box_root, "--certificate-identity", WORKFLOW)
    args = _attestation_cli(registry, files, "--type", "slsaprovenance", *who, keyless_images["attested"])
    result = _run_process(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip().endswith("CLEAN")


def test_annotations_flag_requires_each_pair_in_the_signed_payload(
    registry: RegistryServer,
    files: dict[str, str],
    sigstore_box: SigstoreBox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = registry.push_image("cli/annotated", "v1")
    signer = ec.generate_private_key(ec.SECP256R1())
    signed = sigstore_box.legacy_signature(
        digest, f"{registry.host}/cli/annotated", signer, optional={"env": "prod", "url": "a=b"}
    )
    registry.push_signature_layers("cli/annotated", digest, [signed.layer])
    key = Path(files["key"]).with_name("annotated.pub")
    key.write_text(public_pem(signer))
    image = f"{registry.host}/cli/annotated:v1"
    assert main(_cli(registry, files, "--key", str(key), "-a", "env=prod", "-a", "url=a=b", image)) == 0
    assert capsys.readouterr().out.startswith("VERIFIED")
    assert main(_cli(registry, files, "--key", str(key), "--annotations", "env=dev", image)) == 1
    assert "missing or incorrect annotation env=dev" in capsys.readouterr().out
    assert main(_cli(registry, files, "--key", str(key), "-a", "env", image)) == 2
    assert "--annotations: expected KEY=VALUE, got 'env'" in capsys.readouterr().err
