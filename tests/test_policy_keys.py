"""Keys are parsed when the policy loads: a key that cannot be used stops the policy with the field named,
instead of loading silently and then denying every image (signed ones too) as a violation."""

from __future__ import annotations

import re

import pytest

from exporter.policy.loader import PolicyLoadError
from tests.support.admission import walkthrough_policy
from tests.support.registry import generate_signing_key, public_pem

KEY_FIELD = "spec.rules[0].verifyImages[0].key"  # the walkthrough policy uses the legacy field


def one_character_short(pem: str) -> str:
    """The walkthrough article's mistake: a base64 character lost in the middle of the key."""
    lines = pem.strip().splitlines()
    lines[1] = lines[1][:10] + lines[1][11:]
    return "\n".join(lines)


def test_a_truncated_key_is_a_load_error_naming_the_field_and_the_likely_cause() -> None:
    with pytest.raises(PolicyLoadError) as failed:
        walkthrough_policy(one_character_short(public_pem(generate_signing_key())))
    message = str(failed.value)
    assert KEY_FIELD in message
    assert re.search(r"base64 body is \d+ characters, not a multiple of 4: the key looks truncated", message)


@pytest.mark.parametrize(
    "placeholder",
    [
        "-----BEGIN PUBLIC KEY-----\n<paste your cosign.pub here>\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0...\n-----END PUBLIC KEY-----",
    ],
)
def test_a_placeholder_key_is_a_load_error_saying_so(placeholder: str) -> None:
    with pytest.raises(PolicyLoadError, match="looks like a placeholder, not a key") as failed:
        walkthrough_policy(placeholder)
    assert KEY_FIELD in str(failed.value)


def test_a_well_formed_key_of_an_unsupported_kind_is_a_load_error() -> None:
    with pytest.raises(PolicyLoadError, match="RSA key of 1024 bits is too weak"):
        walkthrough_policy(public_pem(generate_signing_key("rsa-1024")))
