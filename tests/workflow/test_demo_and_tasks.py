"""The demo school has a student in every case the workflow handles, and the hourly refresh keeps
them without duplicating anything."""

from __future__ import annotations

from classroom.demo import demo_school_seed
from workflow import catalog
from workflow.models import AcuteRegressionAlert, Cluster, Recommendation
from workflow.tasks import refresh_recommendations


def test_the_demo_has_every_case_and_the_refresh_is_idempotent(db):
    demo_school_seed(class_size=8)
    recs = Recommendation.objects.filter(school_class__platform_id="alg1-p2").select_related("student")
    by_student = {r.student.platform_id: r for r in recs}
    assert by_student["alg1-p2-0003"].object_type == catalog.ObjectType.COMPOSITE  # a clean bundle
    assert by_student["alg1-p2-0001"].bundle is None  # a non-bundle object, routed
    assert by_student["alg1-p2-0004"].do_not_decide_yet  # no data at all
    assert by_student["alg1-p2-0005"].qa_exclusion == catalog.QA_003  # went quiet
    acute = AcuteRegressionAlert.objects.get(student=by_student["alg1-p2-0002"].student)
    assert acute.state == "open"
    clean = Cluster.objects.get(school_class__platform_id="alg1-p2", bundle__object_type="COMPOSITE")
    assert clean.members.count() == 2
    alerts, clusters = AcuteRegressionAlert.objects.count(), Cluster.objects.count()
    assert refresh_recommendations() == Recommendation.objects.count()
    assert (AcuteRegressionAlert.objects.count(), Cluster.objects.count()) == (alerts, clusters)


def test_every_draft_save_and_a_teachers_refresh_are_recorded_with_the_teacher(school):
    from audit.models import ActivityEvent
    from workflow import services

    services.draft_save(
        teacher=school.teacher, school_class=school.school_class, step="TAW_01", state={"a": 1}
    )
    services.draft_save(
        teacher=school.teacher, school_class=school.school_class, step="TAW_01", state={"a": 2}
    )
    saved = ActivityEvent.objects.filter(verb="workflow.draft_saved", actor=school.teacher)
    assert saved.count() == 2 and saved.first().details["workflow_step"] == "TAW_01"
    services.recommendations_refresh(school_class=school.school_class, by=school.teacher)
    refreshed = ActivityEvent.objects.get(verb="workflow.recommendations_refreshed")
    assert (refreshed.actor, refreshed.actor_name) == (school.teacher, school.teacher.username)
