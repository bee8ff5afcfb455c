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
