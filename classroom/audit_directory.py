"""The classroom's answers to the audit pages (audit.directory.Directory): the same scoping rule
as every other page, and names for the ids events carry."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from audit.directory import Option, Reach
from classroom.access import classes_for, students_for
from classroom.models import SchoolClass, Student, User


class ClassroomDirectory:
    def reach(self, user: User) -> Reach | None:
        if user.is_superuser:
            return Reach(user_id=user.pk, organisation_ids=None)
        if user.organisation_id is None or user.role == User.Role.LEARNER:
            return None
        if user.role in (User.Role.ORG_ADMIN, User.Role.COMPLIANCE):
            return Reach(user_id=user.pk, organisation_ids=(user.organisation_id,))
        return Reach(
            user_id=user.pk,
            organisation_ids=(user.organisation_id,),
            class_ids=tuple(classes_for(user).values_list("pk", flat=True)),
            student_ids=tuple(students_for(user).values_list("pk", flat=True)),
        )

    def classes(self, user: User) -> list[Option]:
        return [Option(pk, name) for pk, name in classes_for(user).order_by("name").values_list("pk", "name")]

    def find_students(self, user: User, text: str) -> QuerySet[Student]:
        where = Q()
        for word in text.split():
            where &= Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(platform_id=word)
        return students_for(user).filter(where).values("pk")

    def student(self, user: User, student_id: int) -> Option | None:
        found = students_for(user).filter(pk=student_id).first()
        return Option(found.pk, found.full_name) if found else None

    def labels(self, student_ids: set[int], class_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
        students = (
            {
                pk: f"{first} {last}"
                for pk, first, last in Student.objects.filter(pk__in=student_ids).values_list(
                    "pk", "first_name", "last_name"
                )
            }
            if student_ids
            else {}
        )
        classes = (
            dict(SchoolClass.objects.filter(pk__in=class_ids).values_list("pk", "name")) if class_ids else {}
        )
        return students, classes
