"""Read Kyverno policies from YAML/JSON text, files and directories (including ConfigMap volume mounts).

Errors say where (file, document, policy, rule, field path) and what to do, and loading is all-or-nothing:
one bad document rejects the whole set, so the reloader can keep the last good one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from exporter.policy.fields import FieldError
from exporter.policy.model import KyvernoPolicy
from exporter.policy.parse import POLICY_KINDS, parse_policy

if TYPE_CHECKING:
    from exporter.ivp.model import ImageValidatingPolicy

    LoadedPolicy = KyvernoPolicy | ImageValidatingPolicy

# Kyverno's CEL image policy kinds, parsed by exporter.ivp.parse (imported only when one is loaded, so the
# CEL engine stays out of processes whose policies never need it).
IMAGE_POLICY_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")
LOADABLE_KINDS = (*POLICY_KINDS, *IMAGE_POLICY_KINDS)

POLICY_SUFFIXES = (".yaml", ".yml", ".json")
MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_POLICIES = 1000
# What malformed input (wrong types in unexpected places, mixed-type keys, absurd numbers or nesting) can
# raise from plain Python operations while a document is read; each becomes a PolicyLoadError.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError)


class PolicyLoadError(ValueError):
    """A policy source that cannot be used. The message names the source, the 1-based document number,
    the policy, the rule and the field path (each when known), then the problem and what to do."""

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        document: int | None = None,
        policy: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        where = [source]
        if document is not None:
            where.append(f"document {document}")
        if policy is not None:
            where.append(policy)
        if rule is not None:
            where.append(f"rule {rule}")
        location = ", ".join(where)
        super().__init__(f"{location}: {path}: {problem}" if path else f"{location}: {problem}")
        self.source = source
        self.document = document
        self.policy = policy
        self.rule = rule
        self.path = path
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML would silently keep the last one, hiding a field)
    and aliases (``*anchor``: Kubernetes objects never need them, and nested ones expand exponentially)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            problem = "YAML aliases (*name) are not supported in policies; write the value out"
            raise yaml.composer.ComposerError(None, None, problem, mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _policy_label(document: Mapping[str, Any]) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if name is None:
        return None
    namespaced = document.get("kind") in ("Policy", "NamespacedImageValidatingPolicy")
    qualified = f"{namespace}/{name}" if namespace and namespaced else str(name)
    return f"{document.get('kind')} {qualified}"


def _parse_one(document: Mapping[str, Any], source: str) -> LoadedPolicy:
    if document.get("kind") in IMAGE_POLICY_KINDS:
        from exporter.ivp.parse import parse_image_validating_policy  # noqa: PLC0415

        return parse_image_validating_policy(document, source)
    return parse_policy(document, source)


def _parse_document(document: Any, source: str, number: int) -> list[LoadedPolicy]:
    if not isinstance(document, Mapping):
        raise PolicyLoadError(
            "expected a Kubernetes object (a mapping), got " + type(document).__name__,
            source=source,
            document=number,
        )
    kind = document.get("kind")
    if kind == "List":
        items = document.get("items")
        if not isinstance(items, list):
            raise PolicyLoadError("a List needs an items list", source=source, document=number)
        return [policy for item in items for policy in _parse_document(item, source, number)]
    if kind == "ConfigMap":
        return _parse_config_map(document, source, number)
    if kind not in LOADABLE_KINDS:
        raise PolicyLoadError(
            f"kind {kind!r} is not a Kyverno ClusterPolicy, Policy, ImageValidatingPolicy or "
            "NamespacedImageValidatingPolicy; remove it from the policy sources",
            source=source,
            document=number,
        )
    try:
        return [_parse_one(document, source)]
    except FieldError as error:
        raise PolicyLoadError(
            error.problem,
            source=source,
            document=number,
            policy=_policy_label(document),
            rule=error.rule,
            path=error.path,
        ) from None


def _parse_config_map(document: Mapping[str, Any], source: str, number: int) -> list[LoadedPolicy]:
    data = document.get("data") or {}
    if not isinstance(data, Mapping):
        raise PolicyLoadError(
            "ConfigMap data must be a map of file names to text", source=source, document=number
        )
    policies: list[LoadedPolicy] = []
    for key in sorted(data):
        if str(key).endswith(POLICY_SUFFIXES):
            policies.extend(parse_policies(str(data[key]), f"{source} document {number} data[{key}]"))
    return policies


def _load_documents(text: str, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))  # a SafeLoader subclass
    except RecursionError:
        raise PolicyLoadError("nested too deeply to be a policy", source=source) from None
    except (ValueError, TypeError) as error:  # a 5 000-digit integer; an unhashable (complex) mapping key
        raise PolicyLoadError(f"invalid YAML/JSON: {str(error)[:200]}", source=source) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PolicyLoadError(f"invalid YAML/JSON{where}: {problem}", source=source) from None


def rule_count(policy: LoadedPolicy) -> int:
    """The rules a policy evaluates: a ClusterPolicy/Policy's (autogen included); an ImageValidatingPolicy
    is one rule."""
    return len(policy.rules) if isinstance(policy, KyvernoPolicy) else 1


def ensure_unique(policies: Iterable[LoadedPolicy]) -> None:
    """Raise :class:`PolicyLoadError` when two policies share (kind, namespace, name)."""
    seen: dict[tuple[str, str | None, str], LoadedPolicy] = {}
    for policy in policies:
        first = seen.setdefault(policy.key, policy)
        if first is not policy:
            raise PolicyLoadError(
                f"duplicate {policy.kind} {policy.display_name}: also defined in {first.source}; keep one",
                source=policy.source,
            )


def parse_policies(text: str, source: str = "<string>") -> list[LoadedPolicy]:
    """Every policy in ``text``: YAML with any number of documents (JSON is YAML too), ``kind: List``
    wrappers, and ConfigMaps whose ``*.yaml``/``*.yml``/``*.json`` data entries hold policies.
    Empty documents are skipped. Raises :class:`PolicyLoadError`."""
    if len(text) > MAX_SOURCE_BYTES:
        raise PolicyLoadError(f"larger than {MAX_SOURCE_BYTES} bytes; split it up", source=source)
    policies: list[LoadedPolicy] = []
    for number, document in enumerate(_load_documents(text, source), start=1):
        if document is not None:
            try:
                policies.extend(_parse_document(document, source, number))
            except PolicyLoadError:
                raise
            except MALFORMED as error:  # e.g. ConfigMap data keys of mixed types
                raise PolicyLoadError(
                    f"malformed document ({type(error).__name__}: {str(error)[:200]}); check the field types "
                    "against Kyverno's schema",
                    source=source,
                    document=number,
                ) from None
        if len(policies) > MAX_POLICIES:
            raise PolicyLoadError(f"more than {MAX_POLICIES} policies", source=source)
    ensure_unique(policies)
    return policies


def policy_files(paths: Sequence[Path]) -> list[Path]:
    """The files ``paths`` designate: files as given, directories searched recursively for
    ``*.yaml``/``*.yml``/``*.json`` while skipping hidden entries (a ConfigMap mount's ``..data`` and
    timestamped directories, whose files are reached through the visible symlinks). Sorted per directory."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            try:
                candidates = sorted(path.rglob("*"))
            except OSError as error:
                raise PolicyLoadError(f"cannot list: {error}", source=str(path)) from None
            files.extend(
                candidate
                for candidate in candidates
                if candidate.suffix in POLICY_SUFFIXES
                and candidate.is_file()
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise PolicyLoadError("no such file or directory; check the --policy path", source=str(path))
    return files


def read_policy_file(path: Path) -> str:
    """The text of one policy file, bounded in size. Raises :class:`PolicyLoadError`."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as error:
        raise PolicyLoadError(f"cannot read: {error.strerror}", source=str(path)) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise PolicyLoadError(f"larger than {MAX_SOURCE_BYTES} bytes; split it up", source=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyLoadError("not UTF-8 text", source=str(path)) from None


def load_policy_files(paths: Sequence[Path]) -> list[tuple[Path, list[LoadedPolicy]]]:
    """The policies of each file the given files and directories designate (see :func:`policy_files`),
    checked as one set: a (kind, namespace, name) defined twice is an error. Raises
    :class:`PolicyLoadError`."""
    by_file = [(file, parse_policies(read_policy_file(file), str(file))) for file in policy_files(paths)]
    policies = [policy for _file, found in by_file for policy in found]
    if len(policies) > MAX_POLICIES:
        raise PolicyLoadError(
            f"more than {MAX_POLICIES} policies in total", source=", ".join(map(str, paths))
        )
    ensure_unique(policies)
    return by_file


def load_policy_paths(paths: Sequence[Path]) -> list[LoadedPolicy]:
    """All policies of the given files and directories (see :func:`load_policy_files`)."""
    return [policy for _file, found in load_policy_files(paths) for policy in found]
