"""The session report after a live class: the page's figures, chart and anomalies as the ticks
have them, the CSV of the ticks and of the anomalies, an audit event for each export and for
every start, end and anomaly, a fixed number of queries however long the session, no participant
or student named, and the live page's scoping."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from statistics import fmean

import pytest
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.live import reports
from classroom.live.models import LiveAnomaly, LiveTick
from classroom.live.reports import csv_chunks
from classroom.live.services import session_end
from classroom.platform.live_class import Phase
from tests import factories
from tests.classroom.live_fixtures import START
from tests.conftest import login

END = START + timedelta(seconds=300)
WARMED_UP = START + timedelta(seconds=60)


@pytest.fixture
def ended(replay):
    """Five minutes of a class: calm, a third leaving at 150 s (a mass exit), the rest falling
    quiet (a gradual decline, a warning then critical); ended by its teacher at 300 s."""
    played = replay(Phase(150), Phase(30, leave=10), Phase(120, activity=0.05))
    played.run()
    return session_end(session=played.session, by=played.session.started_by, now=END)


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _clock(at) -> str:
    return f"{timezone.localtime(at):%H:%M:%S}"


def test_the_report_shows_the_session_and_figures_computed_from_its_ticks(client, live_school, ended):
    login(client, live_school.teacher)
    page = client.get(f"/live/{ended.pk}/report/").content.decode()
    ticks = list(LiveTick.objects.filter(session=ended))
    # The figures leave out the first minute, while the class joins, and any empty tick.
    measured = [t for t in ticks if t.category != "empty" and t.at >= WARMED_UP]
    assert len(ticks) == 60
    assert "Linear equations" in page and live_school.school_class.name in page
    assert live_school.teacher.display_name in page
    assert "5 min 00 s" in page  # the duration
    assert f'<span class="stat">{round(fmean(t.score for t in measured), 1)}</span> mean score' in page
    lowest = min(measured, key=lambda t: t.score)
    highest = max(measured, key=lambda t: t.score)
    assert f'<span class="stat">{lowest.score}</span> lowest, at {_clock(lowest.at)}' in page
    assert f'<span class="stat">{highest.score}</span> highest, at {_clock(highest.at)}' in page
    for category, label in (
        ("high", "High"),
        ("moderate", "Moderate"),
        ("low", "Low"),
        ("critical", "Critical"),
    ):
        count = sum(t.category == category for t in ticks)
        row = (
            f'<td class="level-{category}">{label}</td><td class="num">{round(count * 5 / 60, 1)}</td>'
            f'<td class="num">{round(100 * count / len(ticks))} %</td>'
        )
        assert row in page


def test_the_report_counts_and_lists_the_anomalies_and_marks_them_on_the_chart(client, live_school, ended):
    login(client, live_school.teacher)
    page = client.get(f"/live/{ended.pk}/report/").content.decode()
    anomalies = list(LiveAnomaly.objects.filter(session=ended).order_by("at"))
    assert [(a.type, a.severity) for a in anomalies] == [
        ("MASS_EXIT", "WARNING"),
        ("GRADUAL_DECLINE", "WARNING"),
        ("GRADUAL_DECLINE", "CRITICAL"),
    ]
    mass_exit, decline, _ = anomalies
    assert '<td>Mass exit</td><td class="num">1</td><td class="num">0</td><td class="num">1</td>' in page
    assert (
        '<td>Gradual decline</td><td class="num">1</td><td class="num">1</td><td class="num">2</td>' in page
    )
    assert '<td>Sudden drop</td><td class="num">0</td><td class="num">0</td><td class="num">0</td>' in page
    assert '<tr><th>All</th><td class="num">2</td><td class="num">1</td><td class="num">3</td></tr>' in page
    assert f'{_clock(mass_exit.at)} <span class="muted">+2:35</span>' in page
    assert "10 of 30 participants left" in page
    assert "left 10; present before 30; share 0.333; window seconds 30" in page  # the evidence
    assert f"<td>{_clock(mass_exit.cleared_at)}</td>" in page
    assert decline.cleared_at is None and "<td>not cleared</td>" in page
    assert page.count('<circle class="mark warning"') == 2
    assert page.count('<circle class="mark critical"') == 1
    assert 'class="critical" x1="0"' in page and "<polyline" in page


def test_the_report_of_a_live_session_is_the_report_so_far(client, live_school, replay):
    played = replay(Phase(60))
    played.run()
    login(client, live_school.teacher)
    page = client.get(f"/live/{played.session.pk}/report/").content.decode()
    assert "This session is still live: the report so far" in page
    assert "still live" in page
    assert "No anomalies: engagement did not drop." in page


def test_a_session_nobody_joined_reports_no_score(client, live_school, replay):
    played = replay(Phase(10), participants=0)
    played.run()
    login(client, live_school.teacher)
    page = client.get(f"/live/{played.session.pk}/report/").content.decode()
    assert "No engagement was measured" in page
    assert (
        '<td class="level-empty">Nobody present</td><td class="num">0.2</td><td class="num">100 %</td>'
        in page
    )


def test_a_long_session_is_drawn_in_buckets_of_ticks(client, live_school, ended, monkeypatch):
    monkeypatch.setattr(reports, "CHART_POINTS", 20)
    login(client, live_school.teacher)
    page = client.get(f"/live/{ended.pk}/report/").content.decode()
    line = page.split('<polyline class="line" points="')[1].split('"')[0]
    assert len(line.split()) == 20  # 60 ticks, three to a point
    first_three = list(LiveTick.objects.filter(session=ended).order_by("at")[:3])
    y = 160 - round(fmean(t.score for t in first_three), 1) / 100 * 160
    assert line.split()[0] == f"{(first_three[1].at - START).total_seconds() / 300 * 600:.1f},{round(y, 1)}"


def test_the_live_page_links_the_report_prominently_once_ended(client, live_school, replay):
    played = replay(Phase(30))
    played.run()
    login(client, live_school.teacher)
    url = f"/live/{played.session.pk}/report/"
    assert f'<a href="{url}">Report so far</a>' in client.get(f"/live/{played.session.pk}/").content.decode()
    session_end(session=played.session, by=live_school.teacher, now=START + timedelta(seconds=30))
    page = client.get(f"/live/{played.session.pk}/").content.decode()
    assert f'<a class="button" href="{url}">Read the session report</a>' in page


def test_the_class_page_lists_its_latest_sessions_with_their_reports(client, live_school, ended):
    """An ended session is reached from its class: its date, topic, alerts and report."""
    login(client, live_school.teacher)
    page = client.get(f"/classes/{live_school.school_class.pk}/").content.decode()
    alerts = LiveAnomaly.objects.filter(session=ended).count()
    assert alerts > 1
    assert f"Linear equations · {alerts} alerts · " in page
    assert f'<a href="/live/{ended.pk}/report/">Report</a>' in page
    assert "Start a live session" in page and "Live now" not in page
    client.post(f"/classes/{live_school.school_class.pk}/live/", {"topic": "Ratios"})
    page = client.get(f"/classes/{live_school.school_class.pk}/").content.decode()
    assert "<strong>Live now:</strong> Ratios" in page and "Ratios · live now · " in page
    assert page.index("Ratios · live now") < page.index("Linear equations · ")


def test_the_csv_has_a_row_per_tick(client, live_school, ended):
    login(client, live_school.teacher)
    response = client.get(f"/live/{ended.pk}/report.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="live-session-{ended.pk}-ticks.csv"'
    header, *rows = _csv(response)
    assert header == [
        "time",
        "elapsed_seconds",
        "score",
        "category",
        "present",
        "chat_per_min",
        "active_users",
        "poll_participation",
        "reactions_per_min",
    ]
    ticks = list(LiveTick.objects.filter(session=ended).order_by("at"))
    assert len(rows) == len(ticks)
    first, last = ticks[0], ticks[-1]
    assert rows[0][:5] == ["2026-12-04T10:00:05Z", "5", str(first.score), first.category, str(first.present)]
    assert rows[-1][:2] == ["2026-12-04T10:05:00Z", "300"]
    assert rows[-1][5:] == [
        str(last.signals["chat_per_min"]),
        str(last.signals["active_users"]),
        "" if last.signals["poll_participation"] is None else str(last.signals["poll_participation"]),
        str(last.signals["reactions_per_min"]),
    ]


def test_the_anomalies_are_a_csv_of_their_own(client, live_school, ended):
    login(client, live_school.teacher)
    response = client.get(f"/live/{ended.pk}/report.csv?part=anomalies")
    assert response["Content-Disposition"] == f'attachment; filename="live-session-{ended.pk}-anomalies.csv"'
    header, *rows = _csv(response)
    assert header == ["time", "elapsed_seconds", "type", "severity", "description", "cleared_at", "evidence"]
    anomalies = list(LiveAnomaly.objects.filter(session=ended).order_by("at", "pk"))
    assert [row[2] for row in rows] == [a.type for a in anomalies]
    exit_row = next(row for row in rows if row[2] == "MASS_EXIT")
    assert exit_row[:2] == ["2026-12-04T10:02:35Z", "155"]
    assert exit_row[5] == "2026-12-04T10:04:35Z"  # cleared
    assert json.loads(exit_row[6]) == {"left": 10, "present_before": 30, "share": 0.333, "window_seconds": 30}
    assert rows[-1][5] == ""  # the decline, still open at the end
    assert client.get(f"/live/{ended.pk}/report.csv?part=students").status_code == 400


def test_a_text_cell_a_spreadsheet_would_run_is_neutralised():
    lines = "".join(csv_chunks(["description", "score"], [("=HYPERLINK(1)", -3.5), ("+1", None)]))
    assert list(csv.reader(io.StringIO(lines))) == [
        ["description", "score"],
        ["'=HYPERLINK(1)", "-3.5"],
        ["'+1", ""],
    ]


def test_every_export_is_an_audit_event_with_its_actor(client, live_school, ended):
    login(client, live_school.teacher)
    b"".join(client.get(f"/live/{ended.pk}/report.csv").streaming_content)
    b"".join(client.get(f"/live/{ended.pk}/report.csv?part=anomalies").streaming_content)
    compliance = factories.UserFactory(role="compliance", organisation=live_school.organisation)
    login(client, compliance)
    assert client.get(f"/live/{ended.pk}/report.csv").status_code == 200
    client.get(f"/live/{ended.pk}/report.csv?part=nonsense")
    exports = list(ActivityEvent.objects.filter(verb="live.report_exported").order_by("seq"))
    assert [(e.actor_id, e.details["part"]) for e in exports] == [
        (live_school.teacher.pk, "ticks"),
        (live_school.teacher.pk, "anomalies"),
        (compliance.pk, "ticks"),
    ]
    assert {(e.target_id, e.class_id) for e in exports} == {(str(ended.pk), live_school.school_class.pk)}


def test_every_start_end_and_anomaly_of_the_session_is_an_audit_event(live_school, ended):
    events = ActivityEvent.objects.filter(target_id=str(ended.pk), verb__startswith="live.")
    started, finished = events.get(verb="live.session_started"), events.get(verb="live.session_ended")
    assert started.actor_id == finished.actor_id == live_school.teacher.pk
    assert finished.details["anomalies"] == LiveAnomaly.objects.filter(session=ended).count()
    detected = [e.details["anomaly_id"] for e in events.filter(verb="live.anomaly_detected")]
    assert sorted(detected) == sorted(LiveAnomaly.objects.filter(session=ended).values_list("pk", flat=True))
    assert detected


def test_the_report_and_csv_name_no_participant_or_student(client, live_school, ended):
    login(client, live_school.teacher)
    student = live_school.student
    outputs = [
        client.get(f"/live/{ended.pk}/report/").content.decode(),
        b"".join(client.get(f"/live/{ended.pk}/report.csv").streaming_content).decode(),
        b"".join(client.get(f"/live/{ended.pk}/report.csv?part=anomalies").streaming_content).decode(),
    ]
    for output in outputs:
        assert "p0-0" not in output  # the platform's participant ids: p0-000 to p0-029
        assert f"{student.first_name} {student.last_name}" not in output
        assert student.platform_id not in output


def test_the_page_and_csv_take_a_fixed_number_of_queries(
    client, live_school, replay, django_assert_max_num_queries
):
    """Six for the page (the login's two, the session, who started it, the ticks, the anomalies);
    eleven for an export (the login's two, the session, the audit append's three, the rows, and
    inside a test's transaction four savepoints)."""
    short = replay(Phase(30, leave=10))
    short.run()
    session_end(session=short.session, by=live_school.teacher, now=START + timedelta(seconds=30))
    long = replay(Phase(900), Phase(60, leave=12), Phase(240, activity=0.1))
    long.run()
    assert LiveTick.objects.filter(session=long.session).count() == 240
    assert long.session.anomalies.count() > short.session.anomalies.count()
    login(client, live_school.teacher)
    counts = []
    for session in (short.session, long.session):
        with django_assert_max_num_queries(6) as page:
            assert client.get(f"/live/{session.pk}/report/").status_code == 200
        with django_assert_max_num_queries(11) as ticks:
            b"".join(client.get(f"/live/{session.pk}/report.csv").streaming_content)
        with django_assert_max_num_queries(11) as anomalies:
            b"".join(client.get(f"/live/{session.pk}/report.csv?part=anomalies").streaming_content)
        counts.append((len(page), len(ticks), len(anomalies)))
    assert counts[0] == counts[1]


def test_another_school_and_a_colleague_get_404_and_a_learner_no_console(client, live_school, ended):
    for user in (live_school.outsider, live_school.colleague):
        login(client, user)
        for path in ("report/", "report.csv", "report.csv?part=anomalies"):
            assert client.get(f"/live/{ended.pk}/{path}").status_code == 404
    learner = factories.UserFactory(role="learner", organisation=live_school.organisation)
    login(client, learner)
    assert client.get(f"/live/{ended.pk}/report/").status_code == 403
    assert client.get(f"/live/{ended.pk}/report.csv").status_code == 403
    assert not ActivityEvent.objects.filter(verb="live.report_exported").exists()


def test_an_org_wide_reviewer_reads_the_report(client, live_school, ended):
    compliance = factories.UserFactory(role="compliance", organisation=live_school.organisation)
    login(client, compliance)
    page = client.get(f"/live/{ended.pk}/report/")
    assert page.status_code == 200
    assert "Download the scores (CSV)" in page.content.decode()
