"""Reads for the dashboard, class and student pages, each in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.access import alerts_for, classes_for, students_for
from classroom.inputs import SEARCH, check_text, parse_id
from classroom.models import (
    Alert,
    Assignment,
    DailyPerformance,
    Enrollment,
    SchoolClass,
    Student,
    StudyPlanProgress,
    SyncRun,
    SyncRunStudent,
    User,
)

TREND_DAYS = 28
WEEK_DAYS = 7
ACTIVE_STATES = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)
WIDGET_KINDS = (
    Alert.Kind.OVERDUE_ASSIGNMENTS,
    Alert.Kind.STALLED_MASTERY,
    Alert.Kind.LOW_CONFIDENCE_STREAK,
    Alert.Kind.EXPIRING_DRAFT,
)
WIDGET_ITEMS = 6

SORTS = {
    "name": ("last_name", "first_name"),
    "minutes": ("minutes_7d",),
    "mastery": ("mastery_now",),
    "trend": ("mastery_change",),
    "deadline": ("next_due_at",),
    "checkins": ("missed_checkins",),
    "sync": ("last_synced_at",),
    "alerts": ("open_alerts",),
}
FILTERS = {
    "all": "All students",
    "at_risk": "With open alerts",
    "missing_data": "Missing data this week",
    "stale": "Not synced recently",
}


@dataclass(frozen=True)
class RosterQuery:
    sort: str = "alerts"
    descending: bool = True
    status: str = "all"
    search: str = ""
    class_id: int | None = None
    page: int = 1

    @classmethod
    def from_params(cls, params: Any, *, class_id: int | None = None) -> RosterQuery:
        """Parse the roster's query string; unknown values fall back to the defaults."""
        raw_sort = params.get("sort", "-alerts")
        descending = raw_sort.startswith("-")
        sort = raw_sort.lstrip("-")
        if sort not in SORTS:
            sort, descending = "alerts", True
        status = params.get("status", "all")
        if status not in FILTERS:
            status = "all"
        if class_id is None:
            class_id = parse_id(params.get("class", ""), field="class")
        page = params.get("page", "1")
        return cls(
            sort=sort,
            descending=descending,
            status=status,
            search=check_text(params.get("q", "").strip(), field="q", limit=SEARCH),
            class_id=class_id,
            page=int(page) if page.isdigit() and int(page) > 0 else 1,
        )

    def sort_param(self, column: str) -> str:
        """The sort value a column header links to: toggles direction on the current column."""
        if column == self.sort:
            return column if self.descending else f"-{column}"
        return f"-{column}" if column in ("alerts", "checkins", "minutes") else column


@dataclass
class RosterRow:
    student: Student
    minutes_7d: int
    missed_checkins: int
    mastery_pct: int | None
    trend_points: int | None
    next_due_at: datetime | None
    upcoming_count: int
    last_synced_at: datetime | None
    is_stale: bool
    has_week_data: bool
    open_alerts: int
    sparkline: str = ""
    classes: list[str] = field(default_factory=list)
    alert_kinds: list[str] = field(default_factory=list)

    @property
    def trend_class(self) -> str:
        if self.trend_points is None or self.trend_points == 0:
            return "flat"
        return "up" if self.trend_points > 0 else "down"


@dataclass
class Roster:
    query: RosterQuery
    page: Page
    rows: list[RosterRow]
    total: int


def _roster_queryset(user: User, query: RosterQuery, now: datetime, today: date) -> QuerySet[Student]:
    week_start = today - timedelta(days=WEEK_DAYS - 1)
    trend_start = today - timedelta(days=TREND_DAYS - 1)
    perf = DailyPerformance.objects.filter(student=OuterRef("pk"))
    week = perf.filter(date__gte=week_start, date__lte=today)
    measured = perf.filter(date__gte=trend_start, date__lte=today, mastery__isnull=False)
    open_assignments = Assignment.objects.filter(student=OuterRef("pk"), submitted_at__isnull=True)
    soon = now + timedelta(days=7)

    def _count(qs: QuerySet, *, field_name: str = "pk") -> Coalesce:
        counted = qs.values("student").annotate(n=Count(field_name)).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))

    students = students_for(user)
    if query.class_id is not None:
        students = students.filter(
            enrollments__school_class_id=query.class_id, enrollments__status=Enrollment.Status.ACTIVE
        )
    students = students.annotate(
        minutes_7d=Coalesce(
            Subquery(
                week.values("student").annotate(s=Sum("study_minutes")).values("s"),
                output_field=IntegerField(),
            ),
            Value(0),
        ),
        week_days=_count(week),
        checkins_7d=_count(week.filter(checked_in=True)),
        mastery_now=Subquery(measured.order_by("-date").values("mastery")[:1]),
        mastery_then=Subquery(measured.order_by("date").values("mastery")[:1]),
        next_due_at=Subquery(
            open_assignments.filter(due_at__gte=now).order_by("due_at").values("due_at")[:1]
        ),
        upcoming_assignments=_count(open_assignments.filter(due_at__gte=now, due_at__lte=soon)),
        upcoming_milestones=_count(
            StudyPlanProgress.objects.filter(
                student=OuterRef("pk"), completed_on__isnull=True, due_on__gte=today, due_on__lte=soon.date()
            )
        ),
        open_alerts=_count(Alert.objects.filter(student=OuterRef("pk"), state__in=ACTIVE_STATES)),
        last_synced_at=F("sync_state__last_synced_at"),
    ).annotate(
        mastery_change=F("mastery_now") - F("mastery_then"),
        missed_checkins=Value(WEEK_DAYS) - F("checkins_7d"),
    )
    stale_before = now - timedelta(hours=settings.MIRROR_FRESHNESS_HOURS)
    if query.status == "at_risk":
        students = students.filter(open_alerts__gt=0)
    elif query.status == "missing_data":
        students = students.filter(week_days__lt=WEEK_DAYS)
    elif query.status == "stale":
        students = students.filter(Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=stale_before))
    if query.search:
        students = students.filter(
            Q(first_name__icontains=query.search)
            | Q(last_name__icontains=query.search)
            | Q(platform_id__iexact=query.search)
        )
    ordering = []
    for name in SORTS[query.sort]:
        expression = F(name)
        ordering.append(
            expression.desc(nulls_last=True) if query.descending else expression.asc(nulls_last=True)
        )
    return students.order_by(*ordering, "last_name", "first_name", "pk")


def roster(user: User, query: RosterQuery) -> Roster:
    """One page of the roster with its metrics, sparklines, classes and alert kinds: 5 queries."""
    now = timezone.now()
    today = timezone.localdate(now)
    paginator = Paginator(_roster_queryset(user, query, now, today), settings.ROSTER_PAGE_SIZE)
    page = paginator.get_page(query.page)
    stale_before = now - timedelta(hours=settings.MIRROR_FRESHNESS_HOURS)
    rows = [
        RosterRow(
            student=s,
            minutes_7d=s.minutes_7d,
            missed_checkins=s.missed_checkins,
            mastery_pct=None if s.mastery_now is None else round(s.mastery_now * 100),
            trend_points=None if s.mastery_change is None else round(s.mastery_change * 100),
            next_due_at=s.next_due_at,
            upcoming_count=s.upcoming_assignments + s.upcoming_milestones,
            last_synced_at=s.last_synced_at,
            is_stale=s.last_synced_at is None or s.last_synced_at < stale_before,
            has_week_data=s.week_days > 0,
            open_alerts=s.open_alerts,
        )
        for s in page.object_list
    ]
    _attach_page_details(rows, today)
    return Roster(query=query, page=page, rows=rows, total=paginator.count)


def _attach_page_details(rows: list[RosterRow], today: date) -> None:
    ids = [row.student.pk for row in rows]
    if not ids:
        return
    points: dict[int, list[tuple[date, float]]] = defaultdict(list)
    for student_id, day, mastery in DailyPerformance.objects.filter(
        student_id__in=ids,
        date__gte=today - timedelta(days=TREND_DAYS - 1),
        date__lte=today,
        mastery__isnull=False,
    ).values_list("student_id", "date", "mastery"):
        points[student_id].append((day, mastery))
    classes: dict[int, list[str]] = defaultdict(list)
    for student_id, name in (
        Enrollment.objects.filter(
            student_id__in=ids, status=Enrollment.Status.ACTIVE, school_class__is_active=True
        )
        .order_by("school_class__name")
        .values_list("student_id", "school_class__name")
    ):
        classes[student_id].append(name)
    kinds: dict[int, list[str]] = defaultdict(list)
    for student_id, kind in (
        Alert.objects.filter(student_id__in=ids, state__in=ACTIVE_STATES)
        .order_by("kind")
        .values_list("student_id", "kind")
    ):
        kinds[student_id].append(Alert.Kind(kind).label)
    for row in rows:
        pk = row.student.pk
        row.sparkline = sparkline_points(sorted(points[pk]), today=today, days=TREND_DAYS)
        row.classes = classes[pk]
        row.alert_kinds = kinds[pk]


def sparkline_points(
    series: list[tuple[date, float]], *, today: date, days: int, width: int = 100, height: int = 24
) -> str:
    """SVG polyline points for mastery over the last `days` days: x by date, y scaled to the
    series' own range (at least 10 points of mastery) so a small change is still visible."""
    if len(series) < 2:
        return ""
    start = today - timedelta(days=days - 1)
    step = width / max(days - 1, 1)
    values = [value for _, value in series]
    low, high = min(values), max(values)
    span = max(high - low, 0.1)
    low = max(0.0, min(low, 1.0 - span)) if high - low < span else low
    return " ".join(
        f"{(day - start).days * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for day, value in series
    )


@dataclass
class AlertWidget:
    kind: str
    label: str
    count: int
    items: list[Alert]


def alert_widgets(user: User, *, class_id: int | None = None) -> list[AlertWidget]:
    """The four alert cards: a count and the most severe few of each kind (1 + 4 queries)."""
    alerts = alerts_for(user).filter(state__in=ACTIVE_STATES)
    if class_id is not None:
        alerts = alerts.filter(
            student__enrollments__school_class_id=class_id,
            student__enrollments__status=Enrollment.Status.ACTIVE,
        )
    counts = dict(alerts.values("kind").annotate(n=Count("pk")).values_list("kind", "n"))
    return [
        AlertWidget(
            kind=kind,
            label=Alert.Kind(kind).label,
            count=counts.get(kind, 0),
            items=list(
                alerts.filter(kind=kind)
                .select_related("student")
                .order_by("-severity", "-opened_at")[:WIDGET_ITEMS]
            )
            if counts.get(kind)
            else [],
        )
        for kind in WIDGET_KINDS
    ]


@dataclass
class ClassCard:
    school_class: SchoolClass
    students: int
    at_risk: int
    last_synced_at: datetime | None


def class_cards(user: User) -> list[ClassCard]:
    """The user's classes with their size, students at risk and oldest sync (one query)."""
    active = Q(enrollments__status=Enrollment.Status.ACTIVE)
    classes = (
        classes_for(user)
        .annotate(
            n_students=Count("enrollments", filter=active, distinct=True),
            n_at_risk=Count(
                "enrollments__student",
                filter=active & Q(enrollments__student__alerts__state__in=ACTIVE_STATES),
                distinct=True,
            ),
            last_synced_at=Subquery(
                Enrollment.objects.filter(school_class=OuterRef("pk"), status=Enrollment.Status.ACTIVE)
                .order_by(F("student__sync_state__last_synced_at").asc(nulls_first=True))
                .values("student__sync_state__last_synced_at")[:1]
            ),
        )
        .order_by("name")
    )
    return [ClassCard(c, c.n_students, c.n_at_risk, c.last_synced_at) for c in classes]


@dataclass
class StudentHistory:
    days: list[DailyPerformance]
    chart_mastery: str
    chart_minutes: list[tuple[float, float, float, float]]
    assignments: list[Assignment]
    milestones: list[StudyPlanProgress]
    alerts: list[Alert]
    events: list[ActivityEvent]
    classes: list[SchoolClass]
    last_synced_at: datetime | None
    totals: dict[str, Any]


HISTORY_DAYS = 56


def student_history(user: User, student: Student) -> StudentHistory:
    """Eight weeks of a student's mirrored history with alerts and activity (7 queries)."""
    today = timezone.localdate()
    start = today - timedelta(days=HISTORY_DAYS - 1)
    days = list(student.daily_performance.filter(date__gte=start, date__lte=today).order_by("date"))
    measured = [(d.date, d.mastery) for d in days if d.mastery is not None]
    max_minutes = max((d.study_minutes for d in days), default=0) or 1
    step = 560 / HISTORY_DAYS
    bars = [
        ((d.date - start).days * step, 60 * d.study_minutes / max_minutes, step * 0.8)
        for d in days
        if d.study_minutes
    ]
    week = [d for d in days if d.date > today - timedelta(days=WEEK_DAYS)]
    sync_state = getattr(student, "sync_state", None)
    return StudentHistory(
        days=list(reversed(days)),
        chart_mastery=sparkline_points(measured, today=today, days=HISTORY_DAYS, width=560, height=120),
        chart_minutes=[(round(x, 1), round(60 - h, 1), round(w, 1), round(h, 1)) for x, h, w in bars],
        assignments=list(student.assignments.order_by("-due_at")[:50]),
        milestones=list(student.plan_progress.order_by("due_on")),
        alerts=list(
            student.alerts.select_related("acknowledged_by", "resolved_by").order_by("-opened_at")[:50]
        ),
        events=list(ActivityEvent.objects.filter(student_id=student.pk).order_by("-occurred_at", "-id")[:50]),
        classes=list(classes_for(user).filter(enrollments__student=student, enrollments__status="active")),
        last_synced_at=sync_state.last_synced_at if sync_state else None,
        totals={
            "minutes_7d": sum(d.study_minutes for d in week),
            "checkins_7d": sum(1 for d in week if d.checked_in),
            "days_recorded": len(days),
            "mastery_now": measured[-1][1] if measured else None,
        },
    )


@dataclass
class ClassSyncStatus:
    latest: SyncRun | None
    failures: list[SyncRunStudent]


def class_sync_status(school_class: SchoolClass) -> ClassSyncStatus:
    """The class's latest sync run and, if students failed in it, who and why (2 queries)."""
    latest = SyncRun.objects.filter(school_class=school_class).order_by("-queued_at").first()
    failures = []
    if latest is not None and latest.failed:
        failures = list(
            SyncRunStudent.objects.filter(run=latest, status=SyncRunStudent.Status.FAILED)
            .select_related("student")
            .order_by("student__last_name")[:20]
        )
    return ClassSyncStatus(latest=latest, failures=failures)
