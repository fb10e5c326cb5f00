"""Code and docs cite the design by section (``docs/design.md, "Records"``); a renamed or
removed section must fail here rather than leave a reader chasing a heading that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("admin_cli", "bridge", "carecouch", "mobile_stub", "docs", "couch", "README.md")
# A citation may wrap across a comment line: `"Exclusive records: the lease\n# protocol"`.
CITATION = re.compile(r'(docs/[\w./-]+\.md), "([^"]+)"')
COMMENT_WRAP = re.compile(r"\s*\n\s*(?:#|\*|//)?\s*")


def cited_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        else:
            files.extend(p for p in path.rglob("*") if p.suffix in {".py", ".md", ".js"})
    return files


def headings(doc: Path) -> set[str]:
    return {
        line.lstrip("#").strip()
        for line in doc.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def test_every_design_citation_names_an_existing_section() -> None:
    broken: list[str] = []
    seen = 0
    for source in cited_files():
        for match in CITATION.finditer(source.read_text(encoding="utf-8")):
            doc, section = ROOT / match.group(1), COMMENT_WRAP.sub(" ", match.group(2))
            seen += 1
            # A citation may name a heading by its leading words ("Provenance" for
            # "Provenance: which device wrote a revision, provably").
            if not doc.is_file() or not any(h.startswith(section) for h in headings(doc)):
                broken.append(f"{source.relative_to(ROOT)}: {match.group(1)}, {section!r}")
    assert seen > 0, "no citations found: the pattern no longer matches how we cite"
    assert not broken, "\n".join(broken)
