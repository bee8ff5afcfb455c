"""Recurring jobs, declared in code and installed by `python manage.py install_schedules`."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RecurringJob:
    name: str
    func: str
    cron: str
    description: str


RECURRING_JOBS: tuple[RecurringJob, ...] = (
    RecurringJob("heartbeat", "tutor.tasks.heartbeat", "* * * * *", "worker liveness for /healthz"),
    RecurringJob(
        "recompute-alerts",
        "classroom.tasks.recompute_all_alerts",
        "17 * * * *",
        "re-evaluate risk alerts over the mirrors, hourly",
    ),
    RecurringJob(
        "sync-platform-nightly",
        "classroom.tasks.sync_all_classes",
        settings.SYNC_NIGHTLY_CRON,
        "queue a platform sync of every active class",
    ),
    RecurringJob(
        "audit-notify",
        "audit.tasks.notify",
        settings.AUDIT_NOTIFY_CRON,
        "email and Slack for high-severity failures and approvals pending too long, once each",
    ),
    RecurringJob(
        "plan-drafts-expiry",
        "plans.tasks.expire_drafts",
        settings.PLAN_EXPIRY_CRON,
        "close study-plan drafts past their expiry; keep the expiring-drafts alerts in step",
    ),
    RecurringJob(
        "workflow-recommendations",
        "workflow.tasks.refresh_recommendations",
        "23 * * * *",
        "recompute the activation workflow's recommendations, clusters and acute alerts, hourly",
    ),
    RecurringJob(
        "proactive-dispatch",
        "tutor.tasks.run_due_tasks",
        "* * * * *",
        "the backstop of the dispatcher process (run_due_tasks): due scheduled tasks, each sent once",
    ),
    RecurringJob(
        "audit-retention",
        "audit.tasks.redact_expired",
        settings.AUDIT_RETENTION_CRON,
        "blank the personal details of events older than AUDIT_RETENTION_DAYS",
    ),
    RecurringJob(
        "audit-checkpoint",
        "audit.tasks.checkpoint",
        settings.AUDIT_CHECKPOINT_CRON,
        "sign each organisation's audit chain head and send it to its email and Slack channels",
    ),
    RecurringJob(
        "live-events-retention",
        "classroom.tasks.expire_live_events",
        "41 * * * *",
        "delete raw live-session events past LIVE_SIGNAL_RETENTION_HOURS, hourly",
    ),
    RecurringJob(
        "orchestrator-prepare",
        "tutor.tasks.prepare_daily_plans",
        settings.ORCHESTRATOR_PREPARE_CRON,
        "make each active learner's plan for today once ORCHESTRATOR_PREPARE_AT has come in their zone",
    ),
)
