"""Caseload ids and manifests: what IT types, and the errors that point at the bad line."""

from __future__ import annotations

from pathlib import Path

import pytest

from carecouch.ids import InvalidCaseloadId, check_caseload_id
from carecouch.manifest import CaseloadSpec, ManifestError, load_manifest, parse_csv, parse_yaml


@pytest.mark.parametrize("good", ["a", "0", "north-district-2", "a" * 48, "mobile-clinic",
                                  "a-b"])
def test_valid_ids(good: str) -> None:
    assert check_caseload_id(good) == good


@pytest.mark.parametrize(("bad", "problem"), [
    ("", "empty"),
    ("a" * 49, "49 characters long"),
    ("North District", "characters ' ', 'D', 'N' not allowed"),
    ("north_1", "character '_' not allowed"),
    ("-north", "must start and end with a letter or digit"),
    ("north-", "must start and end with a letter or digit"),
    ("caseload:x", "character ':' not allowed"),
])
def test_invalid_ids_say_what_is_wrong(bad: str, problem: str) -> None:
    with pytest.raises(InvalidCaseloadId) as info:
        check_caseload_id(bad)
    assert str(info.value) == (f"bad caseload id {bad!r}: {problem}; use 1-48 lowercase "
                               "letters, digits and '-', starting and ending with a letter "
                               "or digit")


def test_yaml_manifest() -> None:
    text = ("caseloads:\n"
            "  - id: north-1\n"
            "    name: North One\n"
            "    team: district-nursing\n"
            "  - id: south-1\n"
            "  - east-1\n")
    assert parse_yaml(text, "m.yaml") == [
        CaseloadSpec("north-1", "North One", "district-nursing", 2),
        CaseloadSpec("south-1", "south-1", None, 5),
        CaseloadSpec("east-1", "east-1", None, 6),
    ]


def test_yaml_scalars_are_read_as_written() -> None:
    # YAML 1.1 would make `no` a boolean and `012` the number 10.
    specs = parse_yaml("- {id: 012, name: Norway, team: no}\n- id: '7'\n  team: ''\n", "m")
    assert specs == [CaseloadSpec("012", "Norway", "no", 1), CaseloadSpec("7", "7", None, 2)]


def test_yaml_duplicate_is_reported_on_its_line() -> None:
    with pytest.raises(ManifestError) as info:
        parse_yaml("- id: a\n- id: b\n- id: a\n", "m.yaml")
    assert str(info.value) == "m.yaml:3: caseload id 'a' is listed twice (first on line 1)"


@pytest.mark.parametrize(("text", "message"), [
    ("caseloads:\n  - id: ok-1\n  - id: North District\n    team: x\n",
     "m.yaml:3: bad caseload id 'North District': characters ' ', 'D', 'N' not allowed;"),
    ("caseloads:\n  - name: No Id\n", "m.yaml:2: missing caseload id"),
    ("caseloads:\n  - id: a\n    nmae: typo\n", "m.yaml:3: unknown field 'nmae'"),
    ("caseloads:\n  - id: a\n    name: [x]\n", "m.yaml:3: expected a single value"),
    ("caseloads:\n  - id: a\n   - id: b\n", "m.yaml:3: not valid YAML"),
    ("people:\n  - id: a\n", "m.yaml:1: expected one top-level key, 'caseloads'"),
    ("caseloads: a\n", "m.yaml:1: 'caseloads' must be a list"),
    ("", "m.yaml: lists no caseloads"),
    ("caseloads: []\n", "m.yaml: lists no caseloads"),
])
def test_yaml_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_yaml(text, "m.yaml")
    assert str(info.value).startswith(message)


def test_csv_manifest() -> None:
    text = ("# caseloads of the north\n"
            "id,name,team\n"
            "north-1,North One,district-nursing\n"
            "\n"
            "north-2,\"North Two, annex\",\n"
            "north-3\n")
    assert parse_csv(text, "m.csv") == [
        CaseloadSpec("north-1", "North One", "district-nursing", 3),
        CaseloadSpec("north-2", "North Two, annex", None, 5),
        CaseloadSpec("north-3", "north-3", None, 6),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("id,name\nok-1,A\nok-2,B\nNorth District,C\n",
     "caseloads.csv:4: bad caseload id 'North District':"),
    ("name,team\nA,B\n", "caseloads.csv:1: the header must name the columns id, name, team"),
    ("id,name\na,A,extra\n", "caseloads.csv:2: 3 columns, the header has 2"),
    ("id,name\na,A\nb,B\na,C\n", "caseloads.csv:4: caseload id 'a' is listed twice"),
    ("id\n", "caseloads.csv: lists no caseloads"),
    ("", "caseloads.csv: no header row"),
])
def test_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_csv(text, "caseloads.csv")
    assert str(info.value).startswith(message)


def test_manifest_format_follows_the_extension(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("id\na\n")
    with pytest.raises(ManifestError, match="a manifest is a .yaml, .yml or .csv file"):
        load_manifest(tmp_path / "m.txt")
    (tmp_path / "m.csv").write_text("\ufeffid,team\na,t\n", encoding="utf-8")  # Excel's BOM
    assert load_manifest(tmp_path / "m.csv") == [CaseloadSpec("a", "a", "t", 2)]


def test_shipped_example_manifest_is_valid() -> None:
    specs = load_manifest(Path(__file__).parent.parent / "examples" / "caseloads.yaml")
    assert len(specs) >= 5
    assert {"district-nursing", "mobile-clinic", "community-mental-health"} <= {
        s.team for s in specs}
