"""The one scoping rule: who reaches which class, student and alert.

A teacher reaches the active classes they are assigned to and the students actively enrolled
in them; org admins and compliance staff reach their whole organisation; learners reach no
console page. Anything outside answers 404, so nobody learns what exists elsewhere.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from classroom.models import Alert, Enrollment, LiveSession, SchoolClass, Student, SyncRun, User

_ORG_WIDE = (User.Role.ORG_ADMIN, User.Role.COMPLIANCE)


def classes_for(user: User) -> QuerySet[SchoolClass]:
    classes = SchoolClass.objects.filter(is_active=True)
    if user.is_superuser:
        return classes
    if user.organisation_id is None or user.role == User.Role.LEARNER:
        return classes.none()
    classes = classes.filter(organisation_id=user.organisation_id)
    if user.role in _ORG_WIDE:
        return classes
    return classes.filter(teacher_assignments__teacher=user)


def students_for(user: User) -> QuerySet[Student]:
    return Student.objects.filter(
        pk__in=Enrollment.objects.filter(
            school_class__in=classes_for(user), status=Enrollment.Status.ACTIVE
        ).values("student_id")
    )


def can_act_for(user: User, student: Student) -> bool:
    """Whether `user` may act for this student (plans, schedules, the tutor's tools): their
    teachers and org admins; compliance staff and learners only read."""
    return user.can_act_on_alerts and students_for(user).filter(pk=student.pk).exists()


def alerts_for(user: User) -> QuerySet[Alert]:
    return Alert.objects.filter(student__in=students_for(user))


def sync_runs_for(user: User) -> QuerySet[SyncRun]:
    """Runs of the user's classes and students; organisation-wide runs for org-wide roles."""
    reach = Q(school_class__in=classes_for(user)) | Q(student__in=students_for(user))
    if user.is_superuser:
        return SyncRun.objects.all()
    if user.role in _ORG_WIDE:
        reach |= Q(scope=SyncRun.Scope.ORGANISATION, organisation_id=user.organisation_id)
    return SyncRun.objects.filter(reach)


def get_class_for_user(user: User, pk: int) -> SchoolClass:
    return get_object_or_404(classes_for(user), pk=pk)


def get_student_for_user(user: User, pk: int) -> Student:
    return get_object_or_404(students_for(user), pk=pk)


def get_alert_for_user(user: User, pk: int) -> Alert:
    return get_object_or_404(alerts_for(user).select_related("student"), pk=pk)


def get_sync_run_for_user(user: User, pk: int) -> SyncRun:
    return get_object_or_404(sync_runs_for(user).select_related("school_class", "student"), pk=pk)


def get_live_session_for_user(user: User, pk: int) -> LiveSession:
    """A live session of a class the user sees (its teachers, org-wide roles); 404 otherwise."""
    sessions = LiveSession.objects.filter(school_class__in=classes_for(user))
    return get_object_or_404(sessions.select_related("school_class", "organisation"), pk=pk)
