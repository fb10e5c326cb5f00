"""The cost of checking a record on the device with the server's own rules, per record.

Saves 1,000 observations on a device store twice, alternately, in the same run: once through
``Device.edit`` (stamp, derive NEWS2, run the caseload's validate_doc_update in QuickJS, save)
and once straight into the store (``LocalDatabase.put``: stamp and save, what the device did
before it checked). Both pay the same encryption and SQLite write; the difference is the check.
No server is needed: the store holds the shipped rules, as before a first sync.

    .venv/bin/python benchmarks/device_check.py [--records 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mobile_stub.credentials import StaticCredentials
from mobile_stub.crypto import KdfParams
from mobile_stub.device import Device
from mobile_stub.store import DeviceStore

DB = "caseload_bench"
VITALS: dict[str, Any] = {"subject": "patient-0042", "respiration_rate": 18, "spo2": 96,
                          "spo2_scale": 1, "on_oxygen": False, "systolic_bp": 128,
                          "pulse": 84, "consciousness": "A", "temperature": 37.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = DeviceStore.create(Path(tmp) / "store.sqlite", "benchmark store passphrase",
                                   kdf=KdfParams.new(memory_kib=8 * 1024, iterations=1))
        store.add_database(DB, "http://127.0.0.1:9")
        store.save_clock_offset(-420)
        device = Device(store, StaticCredentials("nurse.bench", "x"))
        local = store.database(DB)
        device.new_record(DB, "observation", VITALS)  # warm-up: compile the rules once
        checked: list[float] = []
        unchecked: list[float] = []
        for i in range(args.records):
            for kind in (("checked", "unchecked") if i % 2 else ("unchecked", "checked")):
                started = time.perf_counter()
                if kind == "checked":
                    device.new_record(DB, "observation", VITALS)
                    checked.append(time.perf_counter() - started)
                else:
                    doc = device.stamp(DB, {"_id": f"observation:nurse.bench:{i:08d}-aaaa",
                                            "type": "observation", **VITALS, "news2": 0})
                    local.put(doc)
                    unchecked.append(time.perf_counter() - started)
        store.close()
    median_checked = statistics.median(checked) * 1000
    median_unchecked = statistics.median(unchecked) * 1000
    print(f"records saved each way: {args.records} (alternating, same store, same run)")
    print(f"  saved without the check (stamp + encrypt + SQLite): median "
          f"{median_unchecked:.3f} ms, p95 {_p95(unchecked):.3f} ms")
    print(f"  saved with the check (+ NEWS2 derived + validate_doc_update in QuickJS): median "
          f"{median_checked:.3f} ms, p95 {_p95(checked):.3f} ms")
    print(f"  the check costs {median_checked - median_unchecked:.3f} ms a record "
          f"(x{median_checked / median_unchecked:.2f})")


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)] * 1000


if __name__ == "__main__":
    main()
