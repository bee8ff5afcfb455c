"""What the audit pages need to know about people, classes and students, without importing them.

`audit` sits below every other app, so it asks through this protocol; the classroom app implements
it (`settings.AUDIT_DIRECTORY`) with its one scoping rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Reach:
    """Which events a user may see.

    `organisation_ids` None means every organisation (operators). `class_ids` and `student_ids`
    None mean the whole organisation; otherwise only events about those classes and students
    (and the user's own actions).
    """

    user_id: int
    organisation_ids: tuple[int, ...] | None
    class_ids: tuple[int, ...] | None = None
    student_ids: tuple[int, ...] | None = None

    @property
    def whole_organisation(self) -> bool:
        return self.class_ids is None and self.student_ids is None

    def q(self) -> Q:
        where = Q() if self.organisation_ids is None else Q(organisation_id__in=self.organisation_ids)
        if not self.whole_organisation:
            where &= (
                Q(class_id__in=self.class_ids or ())
                | Q(student_id__in=self.student_ids or ())
                | Q(actor_id=self.user_id)
            )
        return where


@dataclass(frozen=True)
class Option:
    id: int
    label: str


class Directory(Protocol):
    def reach(self, user: Any) -> Reach | None:
        """None: the user has no audit pages (learners, users of no organisation)."""

    def classes(self, user: Any) -> list[Option]:
        """The classes the user may filter by."""

    def find_students(self, user: Any, text: str) -> QuerySet[Any]:
        """The ids (a `values("pk")` query) of the students within the user's reach whose name
        contains `text`; the log filters on it as a subquery, so any number of students match."""

    def student(self, user: Any, student_id: int) -> Option | None:
        """The student, if within the user's reach."""

    def labels(self, student_ids: set[int], class_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
        """Names for ids shown on a page: (students, classes), one query each."""


@cache
def directory() -> Directory:
    return import_string(settings.AUDIT_DIRECTORY)()
