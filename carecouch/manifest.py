"""Caseload manifests: the YAML or CSV file IT keeps of the caseloads a server should have.

Errors name the file and line (``caseloads.csv:7: bad caseload id ...``) so the person who
edits the file can go straight to it. The format is described in docs/provisioning.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import CarecouchError
from .ids import InvalidCaseloadId, check_caseload_id

FIELDS = ("id", "name", "team")
MAX_NAME_LENGTH = 200


class ManifestError(CarecouchError):
    """A manifest that cannot be used; ``str`` is ``<file>:<line>: <problem>``."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class CaseloadSpec:
    """One caseload as a manifest (or the command line) wants it."""

    id: str
    name: str
    team: str | None
    line: int | None = None


def load_manifest(path: Path, *, source: str | None = None) -> list[CaseloadSpec]:
    """Read a ``.yaml``/``.yml`` or ``.csv`` manifest."""
    source = source or str(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise ManifestError(source, None, "a manifest is a .yaml, .yml or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(source, None, f"not UTF-8 text ({exc.reason})") from exc
    return parse_csv(text, source) if suffix == ".csv" else parse_yaml(text, source)


def make_spec(source: str, line: int | None, values: dict[str, str | None],
              lines: dict[str, int] | None = None) -> CaseloadSpec:
    """Check one entry's fields; an absent name defaults to the id.

    ``lines`` gives the line of each field when it differs from the entry's (YAML).
    """
    lines = lines or {}
    try:
        caseload_id = check_caseload_id(values.get("id"))
    except InvalidCaseloadId as exc:
        if values.get("id") is None:
            raise ManifestError(source, line, "missing caseload id") from exc
        raise ManifestError(source, lines.get("id", line), str(exc)) from exc
    name = (values.get("name") or "").strip() or caseload_id
    if len(name) > MAX_NAME_LENGTH:
        raise ManifestError(source, lines.get("name", line),
                            f"name longer than {MAX_NAME_LENGTH} characters")
    team = (values.get("team") or "").strip() or None
    return CaseloadSpec(caseload_id, name, team, line)


def _no_duplicates(source: str, specs: list[CaseloadSpec]) -> list[CaseloadSpec]:
    seen: dict[str, int | None] = {}
    for spec in specs:
        if spec.id in seen:
            raise ManifestError(source, spec.line, f"caseload id {spec.id!r} is listed twice "
                                f"(first on line {seen[spec.id]})")
        seen[spec.id] = spec.line
    if not specs:
        raise ManifestError(source, None, "lists no caseloads")
    return specs


# -- CSV ----------------------------------------------------------------------------------

def parse_csv(text: str, source: str) -> list[CaseloadSpec]:
    """A header row naming the columns (``id`` required; ``name``, ``team`` optional).

    Blank lines and lines starting with ``#`` are skipped.
    """
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    specs: list[CaseloadSpec] = []
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if header is None:
                header = _csv_header(source, line, cells)
                continue
            if len(cells) > len(header):
                raise ManifestError(source, line, f"{len(cells)} columns, the header has "
                                    f"{len(header)}")
            values: dict[str, str | None] = dict(zip(header, cells, strict=False))
            specs.append(make_spec(source, line, values))
    except csv.Error as exc:
        raise ManifestError(source, reader.line_num, f"bad CSV ({exc})") from exc
    if header is None:
        raise ManifestError(source, None, "no header row (expected e.g. 'id,name,team')")
    return _no_duplicates(source, specs)


def _csv_header(source: str, line: int, cells: list[str]) -> list[str]:
    names = [c.lower() for c in cells]
    unknown = [c for c in names if c not in FIELDS]
    if unknown or "id" not in names or len(set(names)) != len(names):
        raise ManifestError(source, line, f"the header must name the columns {', '.join(FIELDS)}"
                            f" (id required), got {','.join(cells)!r}")
    return names


# -- YAML ---------------------------------------------------------------------------------

def parse_yaml(text: str, source: str) -> list[CaseloadSpec]:
    """``caseloads:`` followed by a list of mappings with ``id``, ``name``, ``team``.

    Scalars are read as written (``team: no`` is the text "no", ``id: 012`` is "012"):
    YAML's implicit booleans and octals would silently change an id or a name.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ManifestError(source, line, f"not valid YAML ({exc.problem or exc})") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(source, None, f"not valid YAML ({exc})") from exc
    if root is None:
        raise ManifestError(source, None, "lists no caseloads")
    items = _yaml_list(source, root)
    specs = [make_spec(source, _line(node), *_yaml_entry(source, node)) for node in items]
    return _no_duplicates(source, specs)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_list(source: str, root: yaml.Node) -> list[yaml.Node]:
    if isinstance(root, yaml.MappingNode):
        keys = {_scalar(source, k): v for k, v in root.value}
        if set(keys) != {"caseloads"}:
            raise ManifestError(source, _line(root), "expected one top-level key, 'caseloads'")
        root = keys["caseloads"]
    if not isinstance(root, yaml.SequenceNode):
        raise ManifestError(source, _line(root), "'caseloads' must be a list of caseloads")
    return list(root.value)


def _yaml_entry(source: str,
                node: yaml.Node) -> tuple[dict[str, str | None], dict[str, int]]:
    if isinstance(node, yaml.ScalarNode):
        # A bare id is shorthand for {id: ...}.
        return {"id": _scalar(source, node)}, {}
    if not isinstance(node, yaml.MappingNode):
        raise ManifestError(source, _line(node), "each caseload is a mapping with id, name, team")
    values: dict[str, str | None] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = _scalar(source, key_node)
        if key not in FIELDS:
            raise ManifestError(source, _line(key_node),
                                f"unknown field {key!r} (expected {', '.join(FIELDS)})")
        if key in values:
            raise ManifestError(source, _line(key_node), f"field {key!r} given twice")
        values[key] = _scalar(source, value_node)
        lines[key] = _line(key_node)
    if values.get("id") is None:
        raise ManifestError(source, _line(node), "missing caseload id")
    return values, lines


def _scalar(source: str, node: yaml.Node) -> str | None:
    if not isinstance(node, yaml.ScalarNode):
        raise ManifestError(source, _line(node), "expected a single value")
    if node.tag == "tag:yaml.org,2002:null" and node.style is None:
        return None
    return str(node.value)
