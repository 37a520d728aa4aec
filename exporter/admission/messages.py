"""Messages in Kyverno's words, so users, runbooks and log searches written for Kyverno keep working.

* the denial: ``policy <Kind>/<namespace>/<name> for resource violation:`` followed by a YAML map of
  policy -> rule -> message (``violations`` when several policies failed, ``error`` when only errors);
* warnings: ``policy <policy>.<rule>: <message>`` (kubectl prints them as ``Warning: ...``);
* rule messages: ``image verified``, ``failed to verify image <image>: <attestor path>: <reason>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

IMAGE_VERIFIED = "image verified"

# Keys that YAML reads back as the same plain string; anything else is quoted (JSON strings are valid YAML).
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def verification_failed(image: str, reason: str) -> str:
    """Rule message for an image that failed (or could not finish) verification."""
    return f"failed to verify image {image}: {reason}"


def missing_digest(image: str) -> str:
    """Rule message of /validate for an image a ``verifyDigest`` rule requires to be pinned."""
    return f"missing digest for {image}"


def resource_label(kind: str, namespace: str, name: str) -> str:
    """``Kind/namespace/name`` as Kyverno names the resource (namespace empty for cluster scope)."""
    return f"{kind}/{namespace}/{name}"


def _key(text: str) -> str:
    return text if _PLAIN_KEY.match(text) else json.dumps(text)


def blocked_message(resource: str, failures: Mapping[str, Mapping[str, str]], has_violations: bool) -> str:
    """The denial message: header line, blank line, then policy -> rule -> message as block YAML.

    Messages are literal blocks (``|``) so multi-line reasons stay readable, exactly as Kyverno prints.
    The leading blank lines make kubectl start the report on its own line, as Kyverno's does.
    """
    action = "violation" if has_violations else "error"
    if len(failures) > 1:
        action += "s"
    lines = [f"\n\npolicy {resource} for resource {action}:", ""]
    for policy in sorted(failures):
        lines.append(f"{_key(policy)}:")
        for rule in sorted(failures[policy]):
            lines.append(f"  {_key(rule)}: |")
            lines.extend(f"    {line}" if line else "" for line in failures[policy][rule].splitlines())
    return "\n".join(lines) + "\n"


def warning(policy: str, rule: str, message: str) -> str:
    """One admission warning for a rule that failed in Audit mode (or errored and was let through)."""
    return f"policy {policy}.{rule}: {message}"
