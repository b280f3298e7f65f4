"""GET /api/v1/reports/rounds/{id}/ for staff: JSON, CSV by district, and the SVG chart."""

import csv
import io

import pytest
from lxml import etree

from benefits import reports
from benefits.models import Applicant, Round
from core.districts import SEOUL_DISTRICTS
from core.roles import Role
from tests.benefits.test_reports import MAPO, NOWON, SONGPA, application, round_in_every_state
from tests.conftest import client_for
from tests.factories import ApplicantFactory, RoundFactory

pytestmark = pytest.mark.django_db

CSV_HEADER = "district,district_name,applications,approved,selected,paid,paid_amount,approval_rate"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def paid_round():
    return round_in_every_state(districts=(SONGPA, NOWON, MAPO))


def _url(round_, suffix=""):
    return f"/api/v1/reports/rounds/{round_.pk}/{suffix}"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.CASEWORKER, 200),
        (Role.PROGRAM_MANAGER, 200),
        (Role.FINANCE, 200),
        (Role.AUDITOR, 200),
        (Role.CITIZEN, 403),
        (Role.PROVIDER, 403),
    ],
)
@pytest.mark.parametrize("suffix", ["", "?format=csv", "chart.svg"])
def test_staff_read_the_report_and_others_are_refused(staff, role, expected, suffix):
    round_ = RoundFactory()
    client = client_for(ApplicantFactory().user) if role == Role.CITIZEN else staff(role)
    response = client.get(_url(round_, suffix))
    assert response.status_code == expected
    if expected == 403:
        assert response.json()["errors"][0]["code"] == "permission_denied"


@pytest.mark.parametrize("suffix", ["", "?format=csv", "chart.svg"])
def test_anonymous_is_401_and_an_unknown_round_404(anon, staff, suffix):
    round_ = RoundFactory()
    assert anon.get(_url(round_, suffix)).status_code == 401
    response = staff(Role.AUDITOR).get(f"/api/v1/reports/rounds/{round_.pk + 1000}/{suffix}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_the_json_report_is_the_selectors_report(staff, paid_round):
    response = staff(Role.PROGRAM_MANAGER).get(_url(paid_round))
    assert response.status_code == 200
    body = response.json()
    expected = reports.round_report(round_=paid_round)
    assert body.pop("as_of").endswith("+09:00")
    expected.pop("as_of")
    assert body == expected
    assert len(body["districts"]) == 25
    assert body["applications"]["by_status"]["selected"] == 3


def test_the_csv_has_the_header_and_one_line_per_district(staff, paid_round):
    response = staff(Role.FINANCE).get(_url(paid_round, "?format=csv"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="round-{paid_round.pk}-districts.csv"'
    )
    text = response.content.decode("utf-8")
    assert text.splitlines()[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["district"] for r in rows] == list(SEOUL_DISTRICTS)
    assert [r["district_name"] for r in rows] == [d.name_ko for d in SEOUL_DISTRICTS.values()]
    districts = reports.round_report(round_=paid_round)["districts"]
    for row, district in zip(rows, districts, strict=True):
        assert int(row["applications"]) == district["applications"]
        assert int(row["paid_amount"]) == district["paid_amount"]
        rate = district["approval_rate"]
        assert row["approval_rate"] == ("" if rate is None else str(rate))


def test_json_may_be_asked_for_by_name(staff):
    response = staff(Role.CASEWORKER).get(_url(RoundFactory(), "?format=json"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("fmt", ["xlsx", "CSV", "pain001", "api"])
def test_an_unknown_format_is_a_400_naming_the_field(staff, fmt):
    response = staff(Role.AUDITOR).get(_url(RoundFactory(), f"?format={fmt}"))
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["attr"], error["code"]) == ("format", "invalid_choice")


def test_the_chart_is_svg_with_every_district_by_name(staff, paid_round):
    response = staff(Role.AUDITOR).get(_url(paid_round, "chart.svg"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    root = etree.fromstring(response.content)
    assert root.tag == f"{SVG}svg"
    texts = list(root.itertext())
    names = {d.name_ko for d in SEOUL_DISTRICTS.values()}
    assert {t.split(" ")[0] for t in texts if t.split(" ")[0] in names} == names
    # Each district's label carries its recipient rate; the legend names both series.
    districts = reports.round_report_districts(round_=paid_round)
    for row in districts:
        assert reports.chart_label(row) in texts
    assert {"신청", "선정 (지급 포함)"} <= set(texts)
    assert any(paid_round.name in t for t in texts)  # the title


def test_the_chart_draws_the_highest_rate_on_top(staff):
    round_ = RoundFactory(status=Round.Status.SELECTED)
    for district, selected, others in ((SONGPA, 3, 1), (NOWON, 1, 3), (MAPO, 2, 2)):
        for _ in range(selected):
            application(round_, "selected", district)
        for _ in range(others):
            application(round_, "rejected", district)
    root = etree.fromstring(staff(Role.AUDITOR).get(_url(round_, "chart.svg")).content)
    # The district labels on the y axis, top to bottom.
    axis = root.xpath("//*[local-name()='g'][contains(@class, 'axis y')]//*[local-name()='text']")
    top_down = [t.text for t in sorted(axis, key=lambda t: float(t.get("y")))]
    assert top_down[:3] == ["송파구 75.0%", "마포구 50.0%", "노원구 25.0%"]
    assert all(label.endswith("—") for label in top_down[3:])


def test_the_chart_is_self_contained_and_escapes_the_round_name(staff):
    round_ = RoundFactory(name='2027 "1차" <script>alert(1)</script> & 모집')
    response = staff(Role.AUDITOR).get(_url(round_, "chart.svg"))
    root = etree.fromstring(response.content)
    assert not root.xpath("//*[local-name()='script' or local-name()='foreignObject']")
    assert not root.xpath("//@*[local-name()='href']")
    assert b"@import" not in response.content
    assert b"url(" not in response.content
    assert b"<script" not in response.content
    assert any(round_.name in t for t in root.itertext())
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_the_report_endpoints_are_in_the_schema(anon):
    schema = anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    report = schema["paths"]["/api/v1/reports/rounds/{id}/"]["get"]
    content = report["responses"]["200"]["content"]
    assert content["application/json"]["schema"]["$ref"].endswith("/RoundReport")
    assert "text/csv" in content
    assert [p["name"] for p in report["parameters"] if p["in"] == "query"] == ["format"]
    chart = schema["paths"]["/api/v1/reports/rounds/{id}/chart.svg"]["get"]
    assert "image/svg+xml" in chart["responses"]["200"]["content"]
    components = schema["components"]["schemas"]
    assert set(components["ApplicationStatusCounts"]["properties"]) >= {"draft", "withdrawn"}
    assert set(components["ReportAmounts"]["properties"]) == {
        "budget",
        "committed",
        "paid",
        "failed",
        "lapsed",
        "recovered",
        "to_recover",
        "available",
    }


def test_no_personal_data_reaches_the_report(staff, paid_round):
    client = staff(Role.AUDITOR)
    body = b"".join(
        client.get(_url(paid_round, suffix)).content for suffix in ("", "?format=csv", "chart.svg")
    )
    for person in Applicant.objects.filter(applications__round=paid_round):
        for value in (person.rrn, person.account_number, person.legal_name, person.phone):
            assert value.encode() not in body
