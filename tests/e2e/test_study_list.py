"""The study list over HTTP: newest first, age and sex, read status, facility filter,
names typed as the list shows them, and a fixed number of queries per page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from tests.e2e.test_web_pages import _store

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.domain.reading_entries import EntryChange
from telerad.synthetic import StudySpec, ct_series
from telerad.web.app import create_app
from telerad.workflow.model import Priority, ReadingStudy


@dataclass
class World:
    client: TestClient
    specs: dict[str, StudySpec]
    facilities: dict[str, int]
    tokens: dict[str, str]

    def rows(self, who: str | None = None, **params: str) -> list[str]:
        return _rows(self.page(who, **params).text)

    def page(self, who: str | None = None, **params: str) -> object:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.get("/", params=params, headers=headers)


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-study-uid="([^"]+)"', html)


def _cells(html: str, uid: str) -> list[str]:
    row = re.search(rf'<tr data-study-uid="{re.escape(uid)}">(.*?)</tr>', html, re.S)
    assert row, uid
    return [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    ]


@pytest.fixture
def world(platform: Platform) -> Iterator[World]:
    places = {"north": "North Clinic", "south": "South Hospital"}
    specs = {
        "old": StudySpec(
            patient_id="P1",
            patient_name="DOE^JANE^M",
            birth_date="19780110",
            sex="F",
            study_date="20250110",
            study_time="090000",
            accession="A1",
        ),
        "new": StudySpec(
            patient_id="P2",
            patient_name="SMITH^JOHN",
            birth_date="20250101",
            sex="M",
            study_date="20250412",
            study_time="070000",
            accession="A2",
        ),
        "newer": StudySpec(
            patient_id="P3",
            patient_name="ROE^RICHARD",
            birth_date="20250401",
            sex="O",
            study_date="20250412",
            study_time="183000",
            accession="A3",
        ),
        "undated": StudySpec(
            patient_id="P4", patient_name="POE^EDGAR", study_date="", accession="A4"
        ),
    }
    for key, place in (
        ("old", "north"),
        ("new", "south"),
        ("newer", "north"),
        ("undated", "south"),
    ):
        _store(platform, places[place], ct_series(specs[key], slices=1, rows=8, cols=8))
    north, south = (platform.index.facility_by_name(n).id for n in places.values())  # type: ignore[union-attr]
    auth = platform.auth
    users = {
        "admin": auth.create_user("admin", Role.NETWORK_ADMIN),
        "tech": auth.create_user("tech", Role.FACILITY_USER, north),
    }
    reed = auth.create_user("reed", Role.RADIOLOGIST, display_name="Dr. Alex Reed")
    now = datetime(2025, 4, 12, 19, tzinfo=UTC)
    store = platform.reading.store
    for key, values in (
        ("new", {"assigned_to": reed.id}),
        ("newer", {"state": "completed", "completed_by": reed.id}),
    ):
        spec = specs[key]
        fid = north if key == "newer" else south
        pk = store.add_entry(
            ReadingStudy(
                spec.study_uid, fid, "US", "CT", Priority.ROUTINE, now, now + timedelta(hours=1)
            )
        )
        store.save([EntryChange(pk, values=dict(values))])
    tokens = {name: auth.issue_token(user) for name, user in users.items()}
    with TestClient(create_app(platform)) as client:
        yield World(client, specs, {"north": north, "south": south}, tokens)


def test_newest_study_first(world: World) -> None:
    uid = {k: s.study_uid for k, s in world.specs.items()}
    assert world.rows("admin") == [uid["newer"], uid["new"], uid["old"], uid["undated"]]


def test_rows_show_age_sex_date_time_and_read_status(world: World) -> None:
    html = world.page("admin").text
    assert "<th>Age</th><th>Sex</th>" in html and "<th>Read status</th>" in html
    old = _cells(html, world.specs["old"].study_uid)
    assert old[:5] == ["DOE, JANE M", "47 y", "F", "P1", "2025-01-10 09:00"]
    assert old[-2:] == ["North Clinic", "not on worklist"]
    new = _cells(html, world.specs["new"].study_uid)
    assert new[1:3] == ["3 mo", "M"] and new[-1] == "assigned to Dr. Alex Reed"
    newer = _cells(html, world.specs["newer"].study_uid)
    assert newer[1:3] == ["11 d", "other"] and newer[-1] == "read by Dr. Alex Reed"


@pytest.mark.parametrize(
    "typed", ["Doe, Jane", "DOE, JANE M", "doe,jane", "Doe^Jane", "doe", "jane"]
)
def test_a_name_is_found_as_the_list_shows_it_or_as_dicom_writes_it(
    world: World, typed: str
) -> None:
    assert world.rows("admin", patient_name=typed) == [world.specs["old"].study_uid]


def test_network_admins_filter_by_facility(world: World) -> None:
    html = world.page("admin").text
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', html)
    assert [name for _, name in options] == ["North Clinic", "South Hospital"]
    north = world.rows("admin", facility=str(world.facilities["north"]))
    assert north == [world.specs["newer"].study_uid, world.specs["old"].study_uid]
    picked = world.page("admin", facility=str(world.facilities["north"])).text
    assert f'<option value="{world.facilities["north"]}" selected>North Clinic' in picked
    # Paging keeps the filter.
    paged = world.page("admin", facility=str(world.facilities["south"]), size="1").text
    assert (
        f"facility={world.facilities['south']}" in re.search(r'rel="next" href="([^"]+)"', paged)[1]
    )


def test_a_facility_user_sees_no_filter_and_cannot_look_into_another_facility(world: World) -> None:
    html = world.page("tech").text
    assert 'name="facility"' not in html
    assert "<th>Facility</th>" not in html  # one facility: the column says nothing
    assert "<th>Facility</th>" in world.page("admin").text
    assert set(_rows(html)) == {world.specs["old"].study_uid, world.specs["newer"].study_uid}
    other = world.page("tech", facility=str(world.facilities["south"]))
    nowhere = world.page("tech", facility="99999")
    assert other.status_code == nowhere.status_code == 200
    assert _rows(other.text) == _rows(nowhere.text) == []
    assert world.page("tech", facility="south").status_code == 400


def test_a_page_costs_the_same_queries_whatever_its_length(
    platform: Platform, world: World
) -> None:
    def queries(size: str) -> int:
        seen: list[str] = []

        def count(*args: object) -> None:
            seen.append(str(args[2]))

        event.listen(platform.engine, "before_cursor_execute", count)
        try:
            assert len(world.rows("admin", size=size)) == int(size)
        finally:
            event.remove(platform.engine, "before_cursor_execute", count)
        return len(seen)

    world.rows("admin")  # the first request also loads the account
    assert queries("1") == queries("4")
