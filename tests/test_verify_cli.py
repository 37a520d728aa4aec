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
from tests.support.oci_push import attach_referrer
from tests.support.registry import (
    HangingServer,
    RegistryServer,
    SignatureLayerSpec,
    generate_signing_key,
    needs_registry,
    public_pem,
)
from tests.support.sigstore_box import SigstoreBox

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
    assert "no valid signature by a trusted key" in out
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
        (["--key", "{key}", "--require-tlog", "{image}"], "needs a Rekor public key"),
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
