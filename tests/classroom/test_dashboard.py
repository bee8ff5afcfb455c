"""The roster: its numbers, sorting and filtering with htmx, and a query count that ignores roster size."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from classroom.models import Alert, DailyPerformance, Enrollment, Student, StudentSyncState
from tests import factories
from tests.conftest import login


def _history(student, minutes_and_mastery, *, checked_in=True):
    today = timezone.localdate()
    for offset, (minutes, mastery) in enumerate(reversed(minutes_and_mastery)):
        factories.DailyPerformanceFactory(
            student=student,
            date=today - timedelta(days=offset),
            study_minutes=minutes,
            mastery=mastery,
            checked_in=checked_in,
        )


def test_roster_row_shows_the_students_numbers(client, school):
    # Eight days: the oldest falls outside the 7-day window; two check-ins are missed.
    _history(
        school.student,
        [(99, 0.40), (10, 0.50), (20, 0.52), (30, 0.55), (5, 0.56), (5, 0.58), (10, 0.6), (20, 0.62)],
    )
    for day in DailyPerformance.objects.filter(student=school.student).order_by("-date")[1:3]:
        day.checked_in = False
        day.save()
    factories.AssignmentFactory(student=school.student, due_at=timezone.now() + timedelta(days=2))
    factories.StudentSyncStateFactory(student=school.student)
    login(client, school.teacher)
    html = client.get(f"/classes/{school.school_class.pk}/").content.decode()
    row = html[html.index(school.student.full_name) :].split("</tr>")[0]
    assert '<td class="num">100</td>' in row  # 10+20+30+5+5+10+20 minutes
    assert "62%" in row
    assert "+22 pts" in row  # 0.40 → 0.62 over 28 days
    assert "<polyline" in row
    assert '<td class="num">2</td>' in row  # missed check-ins this week


def test_student_without_data_is_marked_not_hidden(client, school):
    login(client, school.teacher)
    html = client.get(f"/classes/{school.school_class.pk}/").content.decode()
    row = html[html.index(school.student.full_name) :].split("</tr>")[0]
    assert "no data" in row
    assert "not enough data" in row
    assert "never" in row


def _class_of(school, names):
    students = []
    for name in names:
        students.append(
            factories.EnrollmentFactory(school_class=school.school_class, student__first_name=name).student
        )
    return students


def test_sort_by_minutes_and_filter_at_risk_return_only_the_roster_for_htmx(client, school):
    low, high = _class_of(school, ["Lowminutes", "Highminutes"])
    _history(low, [(5, 0.5)])
    _history(high, [(90, 0.5)])
    factories.AlertFactory(student=low)
    login(client, school.teacher)
    response = client.get("/dashboard/?sort=-minutes", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.startswith('<div id="roster"')
    assert "<html" not in html
    assert html.index("Highminutes") < html.index("Lowminutes")
    assert "HX-Request" in response["Vary"]
    at_risk = client.get("/dashboard/?status=at_risk", HTTP_HX_REQUEST="true").content.decode()
    assert "Lowminutes" in at_risk
    assert "Highminutes" not in at_risk
    assert "1 student" in at_risk


def test_search_and_missing_data_filters(client, school):
    quiet, busy = _class_of(school, ["Quietone", "Busyone"])
    _history(busy, [(30, 0.5)] * 7)
    login(client, school.teacher)
    found = client.get("/dashboard/?q=quiet").content.decode()
    assert "Quietone" in found
    assert "Busyone" not in found
    missing = client.get("/dashboard/?status=missing_data").content.decode()
    assert "Quietone" in missing
    assert "Busyone" not in missing


def test_unknown_sort_and_filter_values_fall_back_to_defaults(client, school):
    login(client, school.teacher)
    response = client.get("/dashboard/?sort=drop_table&status=nope&page=-3")
    assert response.status_code == 200
    assert school.student.full_name in response.content.decode()


def test_roster_paginates(client, school, settings):
    settings.ROSTER_PAGE_SIZE = 2
    _class_of(school, ["Aa", "Bb", "Cc"])
    login(client, school.teacher)
    html = client.get("/dashboard/?sort=name").content.decode()
    assert "Page 1 of 2" in html
    assert "page=2" in html


def test_widgets_show_the_numbers_that_triggered_each_alert(client, school):
    factories.AlertFactory(student=school.student, summary="2 overdue, oldest 5 days late")
    factories.AlertFactory(
        student=school.student,
        kind=Alert.Kind.LOW_CONFIDENCE_STREAK,
        summary="3 check-ins in a row at confidence ≤ 2/5",
    )
    login(client, school.teacher)
    html = client.get("/dashboard/").content.decode()
    assert "2 overdue, oldest 5 days late" in html
    assert "3 check-ins in a row at confidence ≤ 2/5" in html
    assert f'href="/students/{school.student.pk}/"' in html
    assert "No study-plan drafts are about to expire." in html


def _roster_of(school, size):
    org = school.organisation
    students = Student.objects.bulk_create(
        [
            Student(organisation=org, first_name=f"S{i}", last_name="Bulk", platform_id=f"bulk-{size}-{i}")
            for i in range(size)
        ]
    )
    Enrollment.objects.bulk_create(
        [
            Enrollment(student=s, school_class=school.school_class, enrolled_on=timezone.localdate())
            for s in students
        ]
    )
    today, now = timezone.localdate(), timezone.now()
    DailyPerformance.objects.bulk_create(
        [
            DailyPerformance(
                student=s,
                date=today - timedelta(days=d),
                study_minutes=20,
                mastery=0.5 + d / 100,
                confidence=3,
                synced_at=now,
            )
            for s in students
            for d in range(10)
        ]
    )
    StudentSyncState.objects.bulk_create([StudentSyncState(student=s, last_synced_at=now) for s in students])
    kinds = list(Alert.Kind)
    Alert.objects.bulk_create(
        [
            Alert(
                organisation=org,
                student=s,
                kind=kinds[i % 4],
                summary="numbers",
                opened_at=now,
                last_evaluated_at=now,
            )
            for i, s in enumerate(students[::3])
        ]
    )


@pytest.mark.parametrize("size", [30, 300])
@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/?status=at_risk&sort=-trend", "class"])
def test_query_count_does_not_grow_with_the_roster(client, school, django_assert_max_num_queries, size, url):
    _roster_of(school, size)
    login(client, school.teacher)
    # The class page adds the class, its teachers, its last sync run and that run's failures.
    bound = 16 if url == "class" else 14
    url = f"/classes/{school.school_class.pk}/" if url == "class" else url
    with django_assert_max_num_queries(bound):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count('class="at-risk"') > 0


def test_student_page_query_count_is_fixed(client, school, django_assert_max_num_queries):
    factories.StudentSyncStateFactory(student=school.student)
    _history(school.student, [(30, 0.5)] * 50)
    for _ in range(5):
        factories.AssignmentFactory(student=school.student)
        factories.AlertFactory(student=school.student, state=Alert.State.RESOLVED)
    login(client, school.teacher)
    with django_assert_max_num_queries(14):
        response = client.get(f"/students/{school.student.pk}/")
    assert response.status_code == 200
    assert '<span class="stat">50</span> days with data' in response.content.decode()


def test_student_page_explains_the_numbers_behind_an_alert(client, school):
    factories.AlertFactory(
        student=school.student,
        kind=Alert.Kind.STALLED_MASTERY,
        summary="mastery 61% → 58% in 14 days (-2 pts)",
        metrics={"mastery_from": 0.608, "mastery_to": 0.585, "gain": -0.023, "window_days": 14},
    )
    login(client, school.teacher)
    html = client.get(f"/students/{school.student.pk}/").content.decode()
    assert "mastery 61% → 58% in 14 days (-2 pts)" in html
    assert "<dt>Mastery at start of window</dt><dd>61%</dd>" in html
    assert "<dt>Change</dt><dd>-2.3 pts</dd>" in html


def test_sort_and_page_links_keep_the_class_filter(client, school, settings):
    settings.ROSTER_PAGE_SIZE = 1
    second = factories.TeacherAssignmentFactory(
        teacher=school.teacher, school_class__organisation=school.organisation
    )
    factories.EnrollmentFactory(school_class=second.school_class)
    factories.EnrollmentFactory(school_class=second.school_class)
    login(client, school.teacher)
    pk = second.school_class.pk
    html = client.get(f"/dashboard/?class={pk}").content.decode()
    links = [part.split('"')[0] for part in html.split('href="/dashboard/?')[1:]]
    assert links, "the roster has sort and page links"
    for link in links:
        assert f"class={pk}" in link.replace("&amp;", "&").split("&"), link
    assert "2 students" in html


def test_history_restore_gets_the_whole_page_not_the_fragment(client, school):
    login(client, school.teacher)
    response = client.get(
        "/dashboard/?sort=name", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" in html
    assert "Classroom health" in html
    assert "HX-History-Restore-Request" in response["Vary"]


def test_htmx_acknowledge_leaves_no_stale_message_for_the_next_page(client, school):
    alert = factories.AlertFactory(student=school.student)
    login(client, school.teacher)
    client.post(f"/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true")
    assert "Acknowledged:" not in client.get("/dashboard/").content.decode()
