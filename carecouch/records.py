"""The record-type registry (``couch/validate_functions/record_types.json``), read by Python.

The validation functions read the same file as the CommonJS module ``lib/record_types``; the
rules themselves live only in ``couch/validate_functions/*.js``. Here the registry is loaded,
checked for consistency (so a broken registry is refused when design documents are assembled,
not discovered by a clinician's refused write), and offered to the CLI and the device: which
types exist, their class, who may write them, their fields.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import default_couch_dir
from .errors import CarecouchError

CLASSES = ("append-only", "mergeable", "exclusive")
FIELD_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object",
                         "datetime"})
# The record-type registry lives beside the rules that read it (docs/design.md, "Records").
RECORD_TYPES_FILE = "record_types.json"
DERIVE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


class RegistryError(CarecouchError):
    """The record-type registry is malformed or inconsistent."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool = False
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    derive: str | None = None  # the rule module that computes this field (envelope.js)


@dataclass(frozen=True)
class RecordType:
    name: str
    record_class: str
    title: str
    writers: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    initial_status: str | None = None
    transitions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    terminal: tuple[str, ...] = ()
    # Urgent for a field worker (pulled before the backlog): every record of the type (True),
    # or those matching a Mango selector over its fields (an escalating observation), or no.
    urgent: bool | Mapping[str, Any] = False

    def writable_with(self, roles: Iterable[str]) -> bool:
        return bool(set(self.writers) & set(roles))


@dataclass(frozen=True)
class Registry:
    version: int
    types: Mapping[str, RecordType]
    envelope: Mapping[str, str]
    bridge_role: str
    resolver_role: str
    metadata_field: str
    raw: Mapping[str, Any]
    signature_field: str = "signature"  # provenance (carecouch/provenance.py): not content

    def get(self, name: str) -> RecordType:
        try:
            return self.types[name]
        except KeyError:
            raise RegistryError(f"unknown record type {name!r} (known: "
                                f"{', '.join(sorted(self.types))})") from None

    def writable_with(self, roles: Iterable[str]) -> list[str]:
        """The record types a holder of ``roles`` may write."""
        roles = set(roles)
        return sorted(name for name, spec in self.types.items() if spec.writable_with(roles))


# The record rules' own patterns, for Python that checks a value before the rules see it (the
# bridge's inputs, the policy's pinned subjects, a new record's id). The JS is the source of
# truth; tests/test_record_patterns.py keeps each copy equal to it. Use with fullmatch.
# envelope.js SUBJECT: a patient id as a record's ``subject`` holds it.
SUBJECT_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# common.js ID_SUFFIX: the uuid part of a record id.
RECORD_ID_SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9-]{8,64}")
# common.js ID_OWNER: a CouchDB account name (a user, or a device session "<user>~<device>").
RECORD_OWNER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+~-]{0,199}")


def new_record_id(registry: Registry, record_type: str, owner: str) -> str:
    """A new record's id, made once where the record is made (a retried push can never
    create a duplicate): ``<type>:<owner>:<uuid>`` for an append-only type, whose id names the
    CouchDB account writing it (append_only.js refuses any other account's revision of it),
    ``<type>:<uuid>`` for the others."""
    spec = registry.get(record_type)
    suffix = str(uuid.uuid4())
    if spec.record_class != "append-only":
        return f"{record_type}:{suffix}"
    if not RECORD_OWNER_PATTERN.fullmatch(owner):
        raise RegistryError(f"{owner!r} cannot own a record: not a CouchDB account name "
                            "carecouch issues")
    return f"{record_type}:{owner}:{suffix}"


def parse_refusal(reason: str) -> tuple[str, str]:
    """A record rule's refusal, ``"<code>: <message>"`` (common.js refuse), as ``(code,
    message)``; ``("", reason)`` for a reason of another form (a server's own error). The one
    place that reads the form."""
    head, sep, message = reason.partition(": ")
    return (head, message) if sep and " " not in head else ("", reason)


def refusal_code(reason: str) -> str:
    """The stable code of a record rule's refusal (:func:`parse_refusal`); ``""`` if none."""
    return parse_refusal(reason)[0]


_ABSENT = object()


def stamp_changes(registry: Registry, doc: Mapping[str, Any], base: Mapping[str, Any] | None,
                  by: str, at: str) -> dict[str, Any] | None:
    """The ``changed`` stamps a new revision of a mergeable record must carry (mergeable.js):
    the base revision's stamps kept as they were, and ``{by, at}`` on every field whose value
    differs from the base (added, changed or removed; on a new record, every field). ``None``
    for a record that is not mergeable.

    Computed, never taken from the caller: the server refuses a stamp on an unchanged field
    and a change without one, so only a diff against the edited revision gets both right.
    """
    spec = registry.types.get(str(doc.get("type")))
    if spec is None or spec.record_class != "mergeable":
        return None
    meta = registry.metadata_field
    stamps = dict(base.get(meta) or {}) if base is not None else {}
    names = {name for source in (doc, base or {}) for name in source
             if not name.startswith("_") and name not in (meta, registry.signature_field)
             and name not in registry.envelope}
    for name in sorted(names):
        old = base.get(name, _ABSENT) if base is not None else _ABSENT
        if not same_json(doc.get(name, _ABSENT), old):
            stamps[name] = {"by": by, "at": at}
    return stamps


def same_json(a: Any, b: Any) -> bool:
    """Equality as the rules' ``deepEqual`` sees JSON values: ``1 == 1.0`` but ``1 != true``
    (Python's ``==`` says ``True == 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b)


def default_registry_path() -> Path:
    return default_couch_dir() / "validate_functions" / RECORD_TYPES_FILE


def load_registry(path: Path | None = None) -> Registry:
    path = path or default_registry_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"cannot read the record-type registry {path}: "
                            f"{exc.strerror}") from exc
    except ValueError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return parse_registry(raw)
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc}") from exc


def parse_registry(raw: Any) -> Registry:
    """Check the registry's consistency and return it typed; raise RegistryError if not."""
    if not isinstance(raw, dict):
        raise RegistryError("the registry must be a JSON object")
    envelope = _mapping(raw, "envelope")
    for name, kind in envelope.items():
        if kind not in FIELD_TYPES:
            raise RegistryError(f"envelope field {name}: unknown type {kind!r}")
    roles = _mapping(raw, "roles")
    metadata_field = raw.get("mergeable_metadata_field")
    if not isinstance(metadata_field, str) or not metadata_field:
        raise RegistryError("mergeable_metadata_field must name the stamps field")
    exclusive_fields = _mapping(raw, "exclusive_fields")
    signature_field = raw.get("signature_field", "signature")
    if not isinstance(signature_field, str) or not signature_field:
        raise RegistryError("signature_field must name the provenance field")
    reserved = set(envelope) | set(exclusive_fields) | {metadata_field, signature_field}
    types = {name: _record_type(name, spec, reserved)
             for name, spec in _mapping(raw, "types").items()}
    if not types:
        raise RegistryError("no record types")
    version = raw.get("version")
    if not isinstance(version, int):
        raise RegistryError("version must be an integer")
    return Registry(version=version, types=types, envelope=dict(envelope),
                    bridge_role=str(roles.get("bridge", "")),
                    resolver_role=str(roles.get("resolver", "")),
                    metadata_field=metadata_field, raw=raw, signature_field=signature_field)


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise RegistryError(f"{key} must be an object")
    return value


def _record_type(name: str, spec: Any, reserved: set[str]) -> RecordType:
    where = f"type {name}"
    if not isinstance(spec, dict):
        raise RegistryError(f"{where}: must be an object")
    record_class = spec.get("class")
    if record_class not in CLASSES:
        raise RegistryError(f"{where}: class must be one of {', '.join(CLASSES)}")
    writers = spec.get("writers")
    if (not isinstance(writers, list) or not writers
            or not all(isinstance(w, str) and ":" in w for w in writers)):
        raise RegistryError(f"{where}: writers must list roles such as clinical:nurse")
    fields = {}
    for field_name, field_spec in _mapping(spec, "fields").items():
        if field_name in reserved or field_name.startswith("_"):
            raise RegistryError(f"{where}: field {field_name} is reserved")
        fields[field_name] = _field(f"{where} field {field_name}", field_name, field_spec)
    urgent = spec.get("urgent", False)
    if not isinstance(urgent, (bool, dict)) or (isinstance(urgent, dict) and (
            not urgent or not set(urgent) <= set(fields))):
        raise RegistryError(f"{where}: urgent must be true, false, or a selector over the "
                            "type's own fields")
    record_type = RecordType(name=name, record_class=record_class,
                             title=str(spec.get("title", name)), writers=tuple(writers),
                             fields=fields, urgent=urgent)
    if record_class != "exclusive":
        return record_type
    return _with_states(record_type, spec, where)


def _field(where: str, name: str, spec: Any) -> FieldSpec:
    if not isinstance(spec, dict) or spec.get("type") not in FIELD_TYPES:
        raise RegistryError(f"{where}: type must be one of {', '.join(sorted(FIELD_TYPES))}")
    enum = spec.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise RegistryError(f"{where}: enum must be a non-empty list")
    derive = spec.get("derive")
    if derive is not None and not (isinstance(derive, str) and DERIVE_PATTERN.fullmatch(derive)):
        raise RegistryError(f"{where}: derive must name a rule module (e.g. \"news2\")")
    return FieldSpec(name=name, type=spec["type"], required=bool(spec.get("required")),
                     enum=tuple(enum) if enum else None, min=spec.get("min"),
                     max=spec.get("max"), derive=derive)


def _with_states(record_type: RecordType, spec: Mapping[str, Any], where: str) -> RecordType:
    status = record_type.fields.get("status")
    if status is None or not status.required or not status.enum:
        raise RegistryError(f"{where}: an exclusive type needs a required status with an enum")
    states = set(status.enum)
    initial = spec.get("initial_status")
    transitions = spec.get("transitions")
    terminal = spec.get("terminal")
    if initial not in states:
        raise RegistryError(f"{where}: initial_status must be one of the status values")
    if not isinstance(transitions, dict) or not isinstance(terminal, list) or not terminal:
        raise RegistryError(f"{where}: transitions (object) and terminal (list) are required")
    reachable = {initial}
    for source, targets in transitions.items():
        if source not in states or not isinstance(targets, list) or not set(targets) <= states:
            raise RegistryError(f"{where}: transitions use a status that is not declared")
        if source in terminal:
            raise RegistryError(f"{where}: terminal status {source} cannot have transitions")
        reachable |= set(targets)
    if not set(terminal) <= states:
        raise RegistryError(f"{where}: terminal lists a status that is not declared")
    if states - reachable:
        raise RegistryError(f"{where}: status {sorted(states - reachable)} can never be "
                            "reached")
    return RecordType(name=record_type.name, record_class=record_type.record_class,
                      title=record_type.title, writers=record_type.writers,
                      fields=record_type.fields, urgent=record_type.urgent,
                      initial_status=initial,
                      transitions={k: tuple(v) for k, v in transitions.items()},
                      terminal=tuple(terminal))
