"""Assemble design documents from the files under ``couch/`` (layout: docs/decisions.md).

The JavaScript lives in ``.js`` files so it can be read, linted and reviewed as code; this
module turns a couch directory into the JSON documents CouchDB stores, and gives each one a
content hash (``carecouch.version``) that provisioning compares to decide whether to upgrade.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import COUCH_DIR_VARIABLE, default_couch_dir
from .couch import Doc
from .errors import CarecouchError
from .records import RECORD_TYPES_FILE, RegistryError, parse_registry

MAIN_DDOC = "carecouch"
MAIN_DDOC_ID = f"_design/{MAIN_DDOC}"
# The replication filter a device pulls its working set through (filters/device.js).
DEVICE_FILTER_NAME = "device"
DEVICE_FILTER = f"{MAIN_DDOC}/{DEVICE_FILTER_NAME}"
BUILTIN_REDUCERS = frozenset({"_count", "_sum", "_stats"})
# Keys that are not content: CouchDB's own, and the version stamp we add.
_NOT_CONTENT = frozenset({"_id", "_rev", "carecouch"})


class DesignDocError(CarecouchError):
    """The couch directory is missing, or holds a file the assembler does not understand."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(doc: Mapping[str, Any]) -> str:
    """sha256 of the document's canonical JSON without ``_id``, ``_rev`` and ``carecouch``.

    Computed from the body, not read from the stamp, so a design document edited by hand on
    the server no longer counts as current.
    """
    body = {k: v for k, v in doc.items() if k not in _NOT_CONTENT}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def stamped_version(doc: Mapping[str, Any] | None) -> str | None:
    """The ``carecouch.version`` a stored design document claims, if any."""
    meta = doc.get("carecouch") if doc else None
    version = meta.get("version") if isinstance(meta, Mapping) else None
    return version if isinstance(version, str) else None


def is_managed(doc: Mapping[str, Any]) -> bool:
    """True for design documents carecouch installed (they carry the version stamp)."""
    return stamped_version(doc) is not None


def assemble(couch_dir: Path | None = None) -> dict[str, Doc]:
    """Every design document under ``couch_dir``, keyed by ``_design/<name>``, version-stamped."""
    couch_dir = Path(couch_dir) if couch_dir is not None else default_couch_dir()
    design_root = couch_dir / "design_docs"
    if not design_root.is_dir():
        raise DesignDocError(f"no design documents at {design_root} (set {COUCH_DIR_VARIABLE} "
                             "to the couch/ directory)")
    bodies: dict[str, Doc] = {}
    for ddoc_dir in sorted(p for p in design_root.iterdir() if _visible(p)):
        if not ddoc_dir.is_dir():
            raise DesignDocError(f"{ddoc_dir}: expected a directory per design document")
        bodies[ddoc_dir.name] = _assemble_dir(ddoc_dir)
    validate_dir = couch_dir / "validate_functions"
    record_types = validate_dir / RECORD_TYPES_FILE
    if (validate_dir / "validate_doc_update.js").is_file():
        main = bodies.setdefault(MAIN_DDOC, {"language": "javascript"})
        main["validate_doc_update"] = _read(validate_dir / "validate_doc_update.js")
        for path in _js_files(validate_dir):
            if path.name != "validate_doc_update.js" or path.parent != validate_dir:
                parts = path.relative_to(validate_dir).with_suffix("").parts
                _put(main, ("lib", "validate", *parts), _read(path), path)
    if not bodies:
        raise DesignDocError(f"no design documents in {design_root}")
    if record_types.is_file():
        module = _record_types_module(record_types)
        main = bodies.setdefault(MAIN_DDOC, {"language": "javascript"})
        _check_derivations(record_types, main)
        _put(main, ("lib", "record_types"), module, record_types)
        _put(main, ("views", "lib", "record_types"), module, record_types)
    return {f"_design/{name}": stamp(name, body) for name, body in bodies.items()}


def stamp(name: str, body: Mapping[str, Any]) -> Doc:
    """The storable document: ``_id``, the body, and ``carecouch.version``."""
    doc: Doc = {"_id": f"_design/{name}", **body}
    doc["carecouch"] = {"version": content_hash(doc)}
    return doc


def _assemble_dir(ddoc_dir: Path) -> Doc:
    body: Doc = {"language": "javascript"}
    for entry in sorted(p for p in ddoc_dir.iterdir() if _visible(p)):
        if entry.name == "views" and entry.is_dir():
            body["views"] = _views(entry)
        elif entry.name == "filters" and entry.is_dir():
            body["filters"] = {p.stem: _read(p) for p in _js_files(entry, recursive=False)}
        elif entry.name == "lib" and entry.is_dir():
            for path in _js_files(entry):
                _put(body, ("lib", *path.relative_to(entry).with_suffix("").parts),
                     _read(path), path)
        else:
            raise DesignDocError(f"{entry}: not part of the design-document layout "
                                 "(views/, filters/, lib/)")
    return body


def _views(views_dir: Path) -> Doc:
    views: Doc = {}
    for view_dir in sorted(p for p in views_dir.iterdir() if _visible(p)):
        map_file = view_dir / "map.js"
        if not map_file.is_file():
            raise DesignDocError(f"{view_dir}: a view needs a map.js")
        view: Doc = {"map": _read(map_file)}
        reduce_file = view_dir / "reduce.js"
        if reduce_file.is_file():
            code = _read(reduce_file)
            # A built-in reducer runs natively in CouchDB; a JavaScript one would be far slower.
            view["reduce"] = code.rstrip(";").strip() if _builtin(code) else code
        for extra in view_dir.iterdir():
            if _visible(extra) and extra.name not in ("map.js", "reduce.js"):
                raise DesignDocError(f"{extra}: a view holds only map.js and reduce.js")
        views[view_dir.name] = view
    return views


def _builtin(code: str) -> bool:
    return code.rstrip(";").strip() in BUILTIN_REDUCERS


def _record_types_module(path: Path) -> str:
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
        parse_registry(registry)  # a broken registry is refused here, not at a bedside
    except ValueError as exc:
        raise DesignDocError(f"{path}: not valid JSON ({exc})") from exc
    except RegistryError as exc:
        raise DesignDocError(f"{path}: {exc}") from exc
    # A CommonJS module, so validation functions and views can require() the same registry.
    return f"module.exports = {canonical_json(registry)};"


def _check_derivations(path: Path, main: Doc) -> None:
    """Every ``derive`` of the registry names a rule module that exists (envelope.js
    requires it for every record of the type: a missing one would refuse them all)."""
    registry = parse_registry(json.loads(path.read_text(encoding="utf-8")))
    modules = main.get("lib", {}).get("validate", {})
    for record_type in registry.types.values():
        for spec in record_type.fields.values():
            if spec.derive is not None and not isinstance(modules.get(spec.derive), str):
                raise DesignDocError(f"{path}: {record_type.name}.{spec.name} derives from "
                                     f"{spec.derive!r}, but validate_functions/ has no "
                                     f"{spec.derive}.js")


def _put(doc: Doc, path: tuple[str, ...], value: str, source: Path) -> None:
    node = doc
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise DesignDocError(f"{source}: module {'/'.join(path)} clashes with another file")
        node = child
    if path[-1] in node:
        raise DesignDocError(f"{source}: module {'/'.join(path)} clashes with another file")
    node[path[-1]] = value


def _js_files(root: Path, *, recursive: bool = True) -> list[Path]:
    found = root.rglob("*") if recursive else root.iterdir()
    files = []
    for path in sorted(found):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or path.is_dir():
            continue
        if path.suffix != ".js":
            if path.suffix == ".md" or path.name == RECORD_TYPES_FILE:
                continue  # notes beside the code; the registry is assembled on its own
            raise DesignDocError(f"{path}: only .js files belong here")
        files.append(path)
    return files


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix != ".md"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() + "\n"
