"""Instance metadata (DICOM JSON): the fast raw path agrees with pydicom's conversion."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from tests.support import sample_files

from telerad.adapters.dicomweb import dicomjson as dj


def reference(ds: Dataset, path: str) -> dict[str, Any]:
    """pydicom's own element conversion for every element (the slow path)."""
    out: dict[str, Any] = {}
    for elem in ds:
        if elem.tag.element == 0 or elem.tag == 0xFFFCFFFC:  # lengths, trailing padding
            continue
        tag = f"{int(elem.tag):08X}"
        if elem.VR == "SQ":
            items = [reference(item, f"{path}{tag}/{i}/") for i, item in enumerate(elem.value)]
            out[tag] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        converted = dj._element(elem, path)
        if elem.VR == "CS" and converted and "Value" in converted:
            # CS padding spaces are insignificant (PS3.5 6.2); the fast path drops them.
            converted["Value"] = [
                v.strip() if isinstance(v, str) else v for v in converted["Value"]
            ]
        out[tag] = converted
    return out


def differences(a: Any, b: Any, where: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f"{where}/{key} only on one side"
            else:
                yield from differences(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{where}[{i}]")
    elif a != b and not (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    ):
        yield f"{where}: {a!r} != {b!r}"


def test_fast_metadata_equals_pydicom_on_every_sample() -> None:
    compared = 0
    for path in sample_files():
        with open(path, "rb") as f:
            data = f.read()
        try:
            expected = reference(dcmread(io.BytesIO(data)), "p/")
        except Exception:
            continue  # samples pydicom itself cannot convert
        got = dj.dataset_json(dcmread(io.BytesIO(data)), "p/")
        assert list(differences(got, expected)) == [], path
        compared += 1
    assert compared > 100


def test_implicit_and_explicit_give_the_same_metadata() -> None:
    implicit = dcmread(get_testdata_file("MR_small_implicit.dcm"))
    explicit = dcmread(get_testdata_file("MR_small.dcm"))
    a = dj.dataset_json(implicit, "p/")
    b = dj.dataset_json(explicit, "p/")
    a.pop("7FE00010")
    b.pop("7FE00010")
    assert list(differences(a, b)) == []
