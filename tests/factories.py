"""One factory per model. Build related rows through these, not by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from audit.models import ActivityEvent
from audit.services import record
from classroom import models
from tutor.models import WorkerHeartbeat

PASSWORD = "correct-horse-battery"


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Organisation
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"School {n}")
    slug = factory.Sequence(lambda n: f"school-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    organisation = factory.SubFactory(OrganisationFactory)
    role = models.User.Role.TEACHER
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805 - factory-boy's hook signature
        if create:
            obj.save()


class SchoolClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.SchoolClass

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Class {n}")
    subject = "Mathematics"
    platform_id = factory.Sequence(lambda n: f"class-{n}")


class StudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Student

    organisation = factory.SubFactory(OrganisationFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    platform_id = factory.Sequence(lambda n: f"stu-{n}")


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Enrollment

    school_class = factory.SubFactory(SchoolClassFactory)
    student = factory.SubFactory(
        StudentFactory, organisation=factory.SelfAttribute("..school_class.organisation")
    )
    enrolled_on = factory.LazyFunction(lambda: timezone.localdate() - timedelta(days=90))


class TeacherAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TeacherAssignment

    school_class = factory.SubFactory(SchoolClassFactory)
    teacher = factory.SubFactory(
        UserFactory, organisation=factory.SelfAttribute("..school_class.organisation")
    )


class DailyPerformanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.DailyPerformance

    student = factory.SubFactory(StudentFactory)
    date = factory.LazyFunction(timezone.localdate)
    study_minutes = 30
    mastery = 0.5
    confidence = 4
    checked_in = True
    synced_at = factory.LazyFunction(timezone.now)


class StudyPlanProgressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.StudyPlanProgress

    student = factory.SubFactory(StudentFactory)
    platform_id = factory.Sequence(lambda n: f"ms-{n}")
    title = "Milestone"
    due_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=5))
    synced_at = factory.LazyFunction(timezone.now)


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Assignment

    student = factory.SubFactory(StudentFactory)
    platform_id = factory.Sequence(lambda n: f"asg-{n}")
    title = factory.Sequence(lambda n: f"Assignment {n}")
    due_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=3))
    submitted_at = None
    synced_at = factory.LazyFunction(timezone.now)


class DispatchLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.DispatchLog

    student = factory.SubFactory(StudentFactory)
    kind = "nudge"
    idempotency_key = factory.Sequence(lambda n: f"key-{n}")
    payload = factory.LazyFunction(lambda: {"message": "Time for your review session"})
    attempted_at = factory.LazyFunction(timezone.now)


class StudentSyncStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.StudentSyncState

    student = factory.SubFactory(StudentFactory)
    last_synced_at = factory.LazyFunction(timezone.now)
    last_attempted_at = factory.LazyFunction(timezone.now)
    last_status = models.StudentSyncState.Status.OK


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Alert

    student = factory.SubFactory(StudentFactory)
    organisation = factory.SelfAttribute("student.organisation")
    kind = models.Alert.Kind.OVERDUE_ASSIGNMENTS
    summary = "2 overdue, oldest 5 days late"
    metrics = factory.LazyFunction(lambda: {"overdue_count": 2, "oldest_days_overdue": 5})
    severity = 25
    opened_at = factory.LazyFunction(timezone.now)
    last_evaluated_at = factory.LazyFunction(timezone.now)


class ActivityEventFactory(factory.django.DjangoModelFactory):
    """Events are chained, so even test events go through the one write path, `record`."""

    class Meta:
        model = ActivityEvent

    actor_name = "system:test"
    verb = "test.happened"
    source = ActivityEvent.Source.SYSTEM

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> ActivityEvent:
        return record(**kwargs)


class WorkerHeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkerHeartbeat
        django_get_or_create = ["cluster"]

    cluster = "proactive-tutor"
    beat_at = factory.LazyFunction(timezone.now)


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.SyncRun

    school_class = factory.SubFactory(SchoolClassFactory)
    organisation = factory.SelfAttribute("school_class.organisation")
    scope = models.SyncRun.Scope.CLASS
    trigger = models.SyncRun.Trigger.BUTTON
    queued_at = factory.LazyFunction(timezone.now)


class SyncRunStudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.SyncRunStudent

    run = factory.SubFactory(SyncRunFactory)
    student = factory.SubFactory(StudentFactory, organisation=factory.SelfAttribute("..run.organisation"))
    status = models.SyncRunStudent.Status.OK
