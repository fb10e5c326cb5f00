"""NEWS2 is derived from the vitals, never typed: news2.js against the Royal College of
Physicians' NEWS2 chart (2017), every band boundary, and the rule that refuses a score that
disagrees with its vitals (``schema.derived_mismatch``) on the server and on the device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carecouch.errors import CouchForbidden
from carecouch.rules import shipped_rules
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, observation, read, refusal

ZERO: dict[str, Any] = {"respiration_rate": 18, "spo2": 96, "spo2_scale": 1, "on_oxygen": False,
                        "systolic_bp": 128, "pulse": 84, "consciousness": "A",
                        "temperature": 37.2}


def score(**vitals: Any) -> dict[str, Any]:
    result: dict[str, Any] = shipped_rules().call("lib/validate/news2", "score",
                                                  {**ZERO, **vitals})
    return result


# (parameter, value, points): both sides of every boundary the chart prints.
BANDS = [
    *[("respiration_rate", v, p) for v, p in
      [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)]],
    *[("spo2", v, p) for v, p in
      [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]],
    *[("systolic_bp", v, p) for v, p in
      [(30, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0),
       (220, 3), (300, 3)]],
    *[("pulse", v, p) for v, p in
      [(20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
       (130, 2), (131, 3), (250, 3)]],
    *[("temperature", v, p) for v, p in
      [(25.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1),
       (39.0, 1), (39.1, 2), (45.0, 2), (38.04, 0)]],
    *[("consciousness", v, p) for v, p in [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)]],
]


@pytest.mark.parametrize(("name", "value", "points"), BANDS,
                         ids=[f"{n}={v}" for n, v, _ in BANDS])
def test_every_band_boundary_of_the_chart(name: str, value: Any, points: int) -> None:
    result = score(**{name: value})
    assert result["parameters"][name] == points
    assert result["score"] == points


# SpO2 scale 2 (hypercapnic respiratory failure): 88-92 % scores 0, and on oxygen high
# saturations score again; on air 93 % and above scores 0.
SCALE_2 = [(83, False, 3), (84, False, 2), (85, False, 2), (86, False, 1), (87, False, 1),
           (88, False, 0), (92, False, 0), (93, False, 0), (100, False, 0),
           (92, True, 0), (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2),
           (97, True, 3), (100, True, 3), (83, True, 3), (88, True, 0)]


@pytest.mark.parametrize(("spo2", "oxygen", "points"), SCALE_2,
                         ids=[f"{s}{'-o2' if o else '-air'}" for s, o, _ in SCALE_2])
def test_spo2_scale_2(spo2: int, oxygen: bool, points: int) -> None:
    result = score(spo2=spo2, spo2_scale=2, on_oxygen=oxygen)
    assert result["parameters"]["spo2"] == points
    assert result["parameters"]["on_oxygen"] == (2 if oxygen else 0)


def test_oxygen_scores_two_on_either_scale() -> None:
    assert score(on_oxygen=True)["score"] == 2
    assert score(on_oxygen=True, spo2_scale=2, spo2=90)["score"] == 2


@pytest.mark.parametrize(("vitals", "total", "response"), [
    ({}, 0, "low"),
    ({"respiration_rate": 22, "pulse": 95, "temperature": 38.5}, 4, "low"),
    ({"consciousness": "C"}, 3, "low-medium"),          # a 3 in one parameter
    ({"respiration_rate": 22, "pulse": 115, "temperature": 38.5}, 5, "medium"),
    ({"respiration_rate": 22, "pulse": 115, "spo2": 94, "temperature": 38.5}, 6, "medium"),
    ({"respiration_rate": 25, "pulse": 115, "spo2": 94, "temperature": 38.5}, 7, "high"),
    ({"respiration_rate": 8, "spo2": 91, "on_oxygen": True, "systolic_bp": 90, "pulse": 40,
      "consciousness": "U", "temperature": 35.0}, 20, "high"),   # the chart's maximum
])
def test_aggregate_and_clinical_response(vitals: dict[str, Any], total: int,
                                         response: str) -> None:
    result = score(**vitals)
    assert (result["score"], result["response"]) == (total, response)


def test_the_rules_refuse_a_score_that_disagrees_with_the_vitals(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    # The test data once recorded NEWS2 = 1 for vitals that score 0.
    with pytest.raises(CouchForbidden) as info:
        write(db, observation(nurse.user, nurse.device, news2=1), None)
    assert refusal(info.value) == "schema.derived_mismatch"
    assert "news2 must be 0" in info.value.reason
    septic = observation(nurse.user, nurse.device, respiration_rate=25, pulse=115, spo2=94,
                         temperature=38.5)
    assert septic["news2"] == 7
    write(db, septic, None)
    assert read(caseload.db, septic["_id"])["news2"] == 7
