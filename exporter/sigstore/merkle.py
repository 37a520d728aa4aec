"""Transparency-log inclusion: RFC 6962 / RFC 9162 audit paths and the signed checkpoints (C2SP signed notes)
that commit a log to a tree root.

A verified inclusion proof plus a checkpoint signed by the log's key shows the entry is *in* the log's
append-only tree, not merely promised (a SET) by whoever holds the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from exporter.sigstore.keys import TrustedKey, signature_is_valid
from exporter.sigstore.material import InclusionProof

MAX_PROOF_HASHES = 64
MAX_CHECKPOINT_CHARS = 16 * 1024
_SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line of a signed note


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, proof: tuple[bytes, ...]
) -> bytes | None:
    """The tree root that ``proof`` implies for ``leaf`` at ``index`` (RFC 9162 2.1.3.2), None when the proof
    has the wrong shape for that position and size."""
    if not 0 <= index < tree_size or len(proof) > MAX_PROOF_HASHES or any(len(p) != 32 for p in proof):
        return None
    position, last = index, tree_size - 1
    root = leaf
    for sibling in proof:
        if last == 0:
            return None
        if position & 1 or position == last:
            root = _node(sibling, root)
            while not position & 1 and position != 0:
                position >>= 1
                last >>= 1
        else:
            root = _node(root, sibling)
        position >>= 1
        last >>= 1
    return root if last == 0 else None


def verify_checkpoint(
    checkpoint: str, key: TrustedKey, key_hint: bytes, tree_size: int, root: bytes
) -> str | None:
    """None when ``checkpoint`` (a signed note) is signed by ``key`` and commits to ``tree_size``/``root``;
    otherwise why not. ``key_hint`` is the first four bytes of the log's key id."""
    if len(checkpoint) > MAX_CHECKPOINT_CHARS:
        return "checkpoint is too large"
    text, separator, signatures = checkpoint.partition("\n\n")
    if not separator:
        return "checkpoint is not a signed note (no blank line before its signatures)"
    body = text + "\n"
    lines = text.split("\n")
    if len(lines) < 3:
        return "checkpoint lacks origin, tree size or root hash"
    try:
        size = int(lines[1])
        committed_root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        return "checkpoint tree size or root hash is malformed"
    if size != tree_size or committed_root != root:
        return f"checkpoint (tree size {size}) does not commit to the proof's root (tree size {tree_size})"
    for line in signatures.split("\n"):
        if not line.startswith(_SIGNATURE_PREFIX):
            continue
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if name and blob[:4] == key_hint and signature_is_valid(key, body.encode("utf-8"), blob[4:]):
            return None
    return f"checkpoint is not signed by the log's key {key.name}"


def verify_audit_path(entry: bytes, proof: InclusionProof) -> str | None:
    """None when the audit path leads from ``entry`` at ``proof.log_index`` to ``proof.root_hash``."""
    computed = root_from_inclusion_proof(proof.log_index, proof.tree_size, leaf_hash(entry), proof.hashes)
    if computed is None:
        return (
            f"inclusion proof has the wrong shape for entry {proof.log_index} of a tree of {proof.tree_size}"
        )
    if computed != proof.root_hash:
        return "inclusion proof does not lead to the proof's root hash"
    return None


def verify_inclusion(entry: bytes, proof: InclusionProof, key: TrustedKey, key_hint: bytes) -> str | None:
    """None when ``entry`` is at ``proof.log_index`` of the tree with ``proof.root_hash``, and a checkpoint
    signed by ``key`` commits to that root; otherwise the reason."""
    problem = verify_audit_path(entry, proof)
    if problem is not None:
        return problem
    if proof.checkpoint is None:
        return "inclusion proof has no signed checkpoint"
    return verify_checkpoint(proof.checkpoint, key, key_hint, proof.tree_size, proof.root_hash)
