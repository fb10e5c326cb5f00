"""The access policy: who gets which clinical roles, caseloads, record types and device filter.

IT keeps the policy in one YAML file (format: docs/bridge.md, "The policy file"; example:
``examples/policy.yaml``). :func:`load_policy` checks it completely against the record-type
registry, naming the line of any mistake; :meth:`Policy.evaluate` says what one user of the
identity provider gets, and why, from the caseloads the registry holds (caseloads can be
granted by team). The bridge turns the result into CouchDB roles; ``carecouch policy explain``
prints it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .ids import (
    CLINICAL_PREFIX,
    RESOLVER_ROLE,
    WRITES_PREFIX,
    WRITES_RESTRICTED_ROLE,
    caseload_db,
    check_caseload_id,
    check_user_id,
    member_role,
)
from .policy_file import PolicyError, Reader, format_duration, line_of
from .records import Registry, load_registry

MINUTE, HOUR, DAY = 60, 3600, 86400
RULE_KEYS = ("name", "users", "groups", "clinical_roles", "caseloads", "teams", "record_types",
             "resolver", "filter", "credential_lifetime", "offline_grace")
FILTER_KEYS = ("types", "time_window", "pinned_subjects")
TOP_KEYS = ("version", "defaults", "admins", "break_glass", "rules")
DEFAULT_KEYS = ("credential_lifetime", "offline_grace", "lease_lifetime", "filter")
__all__ = ["Filter", "Grant", "Policy", "PolicyError", "Rule", "load_policy", "parse_policy"]


@dataclass(frozen=True)
class Filter:
    """What a device holds of a caseload: record types (None: all), how far back append-only
    records go (seconds; None: all time), and patients pinned whatever their records' age."""

    types: tuple[str, ...] | None = None
    time_window: int | None = None
    pinned_subjects: tuple[str, ...] = ()

    def union(self, other: Filter) -> Filter:
        """The least restrictive of two: a filter only minimises, so granting a caseload twice
        must never hide what either grant shows."""
        types = (None if self.types is None or other.types is None
                 else tuple(sorted(set(self.types) | set(other.types))))
        window = (None if self.time_window is None or other.time_window is None
                  else max(self.time_window, other.time_window))
        pinned = tuple(sorted(set(self.pinned_subjects) | set(other.pinned_subjects)))
        return Filter(types, window, pinned)

    def as_json(self) -> dict[str, Any]:
        return {"types": list(self.types) if self.types is not None else None,
                "time_window_seconds": self.time_window,
                "pinned_subjects": list(self.pinned_subjects)}


@dataclass(frozen=True)
class Who:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def matches(self, user: str, groups: Iterable[str]) -> bool:
        return user in self.users or bool(self.groups & set(groups))


@dataclass(frozen=True)
class Rule:
    name: str
    line: int
    who: Who
    clinical_roles: tuple[str, ...]
    caseloads: tuple[str, ...]
    teams: tuple[str, ...]
    record_types: tuple[str, ...] | None
    resolver: bool
    filter: Filter | None
    credential_lifetime: int | None
    offline_grace: int | None


@dataclass(frozen=True)
class CaseloadGrant:
    id: str
    db: str
    filter: Filter
    reasons: tuple[str, ...]


@dataclass
class Grant:
    """What the policy gives one user, and why (``reasons``, ``notes``)."""

    user: str
    groups: tuple[str, ...]
    rules: tuple[str, ...] = ()
    clinical_roles: tuple[str, ...] = ()
    resolver: bool = False
    caseloads: dict[str, CaseloadGrant] = field(default_factory=dict)
    record_types: tuple[str, ...] = ()
    narrowed: bool = False  # the types are fewer than the roles admit
    credential_lifetime: int = 8 * HOUR
    offline_grace: int = 3 * DAY
    lease_lifetime: int = 30 * MINUTE
    break_glass: bool = False
    break_glass_lifetime: int = HOUR
    admin: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.rules)

    def couch_roles(self, extra_caseloads: Iterable[str] = ()) -> list[str]:
        """The CouchDB roles of a device session holding this grant."""
        roles = [member_role(c) for c in sorted({*self.caseloads, *extra_caseloads})]
        roles += [CLINICAL_PREFIX + r for r in self.clinical_roles]
        if self.resolver:
            roles.append(RESOLVER_ROLE)
        if self.narrowed:
            roles.append(WRITES_RESTRICTED_ROLE)
            roles += [WRITES_PREFIX + t for t in self.record_types]
        return roles

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user, "groups": list(self.groups), "rules": list(self.rules),
            "clinical_roles": list(self.clinical_roles), "resolver": self.resolver,
            "caseloads": [{"id": c.id, "db": c.db, "filter": c.filter.as_json(),
                           "reasons": list(c.reasons)} for c in self.caseloads.values()],
            "record_types": list(self.record_types), "record_types_narrowed": self.narrowed,
            "credential_lifetime_seconds": self.credential_lifetime,
            "offline_grace_seconds": self.offline_grace,
            "lease_lifetime_seconds": self.lease_lifetime,
            "break_glass": self.break_glass,
            "break_glass_lifetime_seconds": self.break_glass_lifetime,
            "admin": self.admin, "roles": self.couch_roles(), "notes": list(self.notes)}


@dataclass(frozen=True)
class Policy:
    source: str
    version: str  # sha256 of the file's bytes (first 16 hex digits)
    rules: tuple[Rule, ...]
    credential_lifetime: int
    offline_grace: int
    lease_lifetime: int
    filter: Filter
    admins: Who
    break_glass: Who
    break_glass_lifetime: int
    registry: Registry

    def caseload_scope(self, user: str, groups: Iterable[str]) -> tuple[set[str], set[str]]:
        """The caseload ids and teams the rules matching ``user`` name: :meth:`evaluate`
        needs the registry's records of those only."""
        groups = tuple(groups)
        ids: set[str] = set()
        teams: set[str] = set()
        for rule in self.rules:
            if rule.who.matches(user, groups):
                ids |= set(rule.caseloads)
                teams |= set(rule.teams)
        return ids, teams

    def evaluate(self, user: str, groups: Iterable[str],
                 caseloads: Mapping[str, Mapping[str, Any]]) -> Grant:
        """What ``user`` (in ``groups``) gets; ``caseloads`` are the registry's records by id
        (all of them, or at least those of :meth:`caseload_scope`)."""
        groups = tuple(sorted(set(groups)))
        grant = Grant(user=user, groups=groups,
                      credential_lifetime=self.credential_lifetime,
                      offline_grace=self.offline_grace, lease_lifetime=self.lease_lifetime,
                      break_glass=self.break_glass.matches(user, groups),
                      break_glass_lifetime=min(self.break_glass_lifetime,
                                               self.credential_lifetime),
                      admin=self.admins.matches(user, groups))
        matched = [rule for rule in self.rules if rule.who.matches(user, groups)]
        grant.rules = tuple(rule.name for rule in matched)
        roles: set[str] = set()
        types: set[str] = set()
        for rule in matched:
            roles |= set(rule.clinical_roles)
            grant.resolver = grant.resolver or rule.resolver
            types |= self._rule_types(rule)
            if rule.credential_lifetime is not None:
                grant.credential_lifetime = min(grant.credential_lifetime,
                                                rule.credential_lifetime)
            if rule.offline_grace is not None:
                grant.offline_grace = min(grant.offline_grace, rule.offline_grace)
            self._grant_caseloads(grant, rule, caseloads)
        grant.clinical_roles = tuple(sorted(roles))
        admitted = set(self.registry.writable_with(self._couch_roles(roles, grant.resolver)))
        grant.record_types = tuple(sorted(types & admitted))
        grant.narrowed = set(grant.record_types) != admitted
        grant.break_glass_lifetime = min(grant.break_glass_lifetime, grant.credential_lifetime)
        self._note_shared_roles(grant, matched)
        return grant

    def _note_shared_roles(self, grant: Grant, matched: list[Rule]) -> None:
        """Say so when rules that grant different roles or record types combine: a CouchDB
        user's roles hold in every database it opens, so each rule's roles reach the other
        rules' caseloads too. IT should see that before a user in two groups does."""
        shapes = {(rule.clinical_roles, rule.resolver, frozenset(self._rule_types(rule)))
                  for rule in matched if rule.clinical_roles or rule.resolver}
        if len(shapes) > 1 and len(grant.caseloads) > 1:
            names = ", ".join(repr(rule.name) for rule in matched)
            grant.notes.append(
                f"rules {names} grant different roles or record types; CouchDB roles belong "
                f"to the user, so all of them ({', '.join(grant.clinical_roles) or '-'}; "
                f"types {', '.join(grant.record_types) or '-'}) apply in every caseload "
                "granted")

    @staticmethod
    def _couch_roles(clinical: Iterable[str], resolver: bool) -> list[str]:
        return [CLINICAL_PREFIX + r for r in clinical] + ([RESOLVER_ROLE] if resolver else [])

    def _rule_types(self, rule: Rule) -> set[str]:
        admitted = set(self.registry.writable_with(
            self._couch_roles(rule.clinical_roles, rule.resolver)))
        return admitted if rule.record_types is None else admitted & set(rule.record_types)

    def _grant_caseloads(self, grant: Grant, rule: Rule,
                         caseloads: Mapping[str, Mapping[str, Any]]) -> None:
        wanted: dict[str, str] = {c: f"rule {rule.name!r} (line {rule.line}) lists it"
                                  for c in rule.caseloads}
        for caseload_id, found in sorted(caseloads.items()):
            team = found.get("team")
            if team in rule.teams and found.get("status") == "active":
                wanted.setdefault(caseload_id, f"rule {rule.name!r} (line {rule.line}): "
                                  f"team {team}")
        rule_filter = rule.filter or self.filter
        for caseload_id, reason in wanted.items():
            record = caseloads.get(caseload_id)
            if record is None or record.get("status") != "active":
                state = "does not exist" if record is None else f"is {record.get('status')}"
                grant.notes.append(f"caseload {caseload_id} {state}: not granted ({reason})")
                continue
            have = grant.caseloads.get(caseload_id)
            if have is None:
                grant.caseloads[caseload_id] = CaseloadGrant(
                    caseload_id, caseload_db(caseload_id), rule_filter, (reason,))
            else:
                grant.caseloads[caseload_id] = replace(
                    have, filter=have.filter.union(rule_filter),
                    reasons=(*have.reasons, reason))


def load_policy(path: Path, registry: Registry | None = None) -> Policy:
    """Read and check the policy file (the registry defaults to the project's)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(source, None, f"cannot read the policy file ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, None, f"not UTF-8 text ({exc.reason})") from exc
    return parse_policy(text, source, registry or load_registry(),
                        version=hashlib.sha256(data).hexdigest()[:16])


def parse_policy(text: str, source: str, registry: Registry, *, version: str = "") -> Policy:
    reader = Reader(source)
    root = reader.compose(text)
    top = reader.mapping(root, "the policy", TOP_KEYS, required=("version", "rules"))
    version_node = top["version"][1]
    if reader.text(version_node, "version") != "1":
        raise reader.fail(version_node, "version must be 1 (the only policy format so far)")
    parser = _Parser(reader, registry)
    defaults = reader.mapping(top["defaults"][1], "defaults", DEFAULT_KEYS) \
        if "defaults" in top else {}
    lifetime = parser.lifetime(defaults, "credential_lifetime", 8 * HOUR)
    offline = parser.lifetime(defaults, "offline_grace", 3 * DAY)
    lease = parser.lifetime(defaults, "lease_lifetime", 30 * MINUTE)
    base_filter = parser.filter(defaults["filter"][1], Filter()) if "filter" in defaults \
        else Filter()
    admins = parser.who(top["admins"][1], "admins") if "admins" in top else Who()
    glass, glass_lifetime = Who(), HOUR
    if "break_glass" in top:
        section = reader.mapping(top["break_glass"][1], "break_glass",
                                 ("users", "groups", "lifetime"))
        glass = parser.who_of(section)
        glass_lifetime = parser.lifetime(section, "lifetime", HOUR, high=DAY)
    rules_node = top["rules"][1]
    if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
        raise reader.fail(rules_node, "rules must be a non-empty list")
    rules: list[Rule] = []
    for node in rules_node.value:
        rule = parser.rule(node, base_filter)
        if any(r.name == rule.name for r in rules):
            raise reader.fail(node, f"rule name {rule.name!r} is used twice")
        rules.append(rule)
    return Policy(source=source, version=version or hashlib.sha256(
                      text.encode()).hexdigest()[:16],
                  rules=tuple(rules), credential_lifetime=lifetime, offline_grace=offline,
                  lease_lifetime=lease, filter=base_filter, admins=admins, break_glass=glass,
                  break_glass_lifetime=glass_lifetime, registry=registry)


class _Parser:
    def __init__(self, reader: Reader, registry: Registry) -> None:
        self.reader = reader
        self.registry = registry
        self.clinical = sorted({w.removeprefix(CLINICAL_PREFIX) for t in registry.types.values()
                                for w in t.writers if w.startswith(CLINICAL_PREFIX)})

    def lifetime(self, section: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str,
                 default: int, *, high: int = 90 * DAY) -> int:
        if key not in section:
            return default
        return self.reader.duration(section[key][1], key, low=1, high=high)

    def who(self, node: yaml.Node, what: str) -> Who:
        return self.who_of(self.reader.mapping(node, what, ("users", "groups")))

    def who_of(self, section: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> Who:
        users = self.reader.texts(section["users"][1], "users", check_user_id) \
            if "users" in section else ()
        groups = self.reader.texts(section["groups"][1], "groups") if "groups" in section else ()
        return Who(frozenset(users), frozenset(groups))

    def filter(self, node: yaml.Node, base: Filter) -> Filter:
        """A filter; what it does not say comes from ``base`` (the defaults' filter)."""
        section = self.reader.mapping(node, "filter", FILTER_KEYS)
        types = self.types(section["types"][1]) if "types" in section else base.types
        window = (self.reader.duration(section["time_window"][1], "time_window", low=HOUR,
                                       high=3650 * DAY)
                  if "time_window" in section else base.time_window)
        pinned = self.reader.texts(section["pinned_subjects"][1], "pinned_subjects",
                                   _subject) if "pinned_subjects" in section \
            else base.pinned_subjects
        return Filter(types, window, tuple(sorted(pinned)))

    def types(self, node: yaml.Node) -> tuple[str, ...]:
        def known(name: str) -> str:
            if name not in self.registry.types:
                raise ValueError(f"unknown record type {name!r} (known: "
                                 f"{', '.join(sorted(self.registry.types))})")
            return name
        return tuple(sorted(self.reader.texts(node, "record type", known)))

    def role(self, name: str) -> str:
        bare = name.removeprefix(CLINICAL_PREFIX)
        if bare not in self.clinical:
            raise ValueError(f"unknown clinical role {name!r} (the record-type registry knows "
                             f"{', '.join(self.clinical)})")
        return bare

    def rule(self, node: yaml.Node, base_filter: Filter) -> Rule:
        reader = self.reader
        section = reader.mapping(node, "a rule", RULE_KEYS, required=("name",))
        name = reader.text(section["name"][1], "name")
        who = self.who_of(section)
        if not who.users and not who.groups:
            raise reader.fail(node, f"rule {name!r} names no users and no groups")
        roles = tuple(sorted(reader.texts(section["clinical_roles"][1], "clinical_roles",
                                          self.role))) if "clinical_roles" in section else ()
        resolver = reader.flag(section["resolver"][1], "resolver") \
            if "resolver" in section else False
        caseloads = reader.texts(section["caseloads"][1], "caseloads", check_caseload_id) \
            if "caseloads" in section else ()
        teams = reader.texts(section["teams"][1], "teams") if "teams" in section else ()
        types = self.types(section["record_types"][1]) if "record_types" in section else None
        if types is not None:
            admitted = set(self.registry.writable_with(
                Policy._couch_roles(roles, resolver)))
            refused = [t for t in types if t not in admitted]
            if refused:
                raise reader.fail(section["record_types"][1],
                                  f"rule {name!r}: its roles cannot write {', '.join(refused)} "
                                  "(the record-type registry decides who writes what)")
        return Rule(
            name=name, line=line_of(node), who=who, clinical_roles=roles,
            caseloads=caseloads, teams=teams, record_types=types, resolver=resolver,
            filter=self.filter(section["filter"][1], base_filter) if "filter" in section
            else None,
            credential_lifetime=self.lifetime(section, "credential_lifetime", 0) or None,
            offline_grace=self.lifetime(section, "offline_grace", 0) or None)


def _subject(value: str) -> str:
    # The same form the record rules require of `subject` (envelope.js).
    if not (1 <= len(value) <= 64) or any(not (c.isascii() and (c.isalnum() or c in "._:-"))
                                          for c in value):
        raise ValueError(f"bad patient id {value!r}: use letters, digits and '.', '_', ':', '-'")
    return value


def describe_lifetime(seconds: int) -> str:
    return format_duration(seconds)
