"""Settings for Proactive Tutor, read from the environment.

Every value has a default that makes `make demo` work with nothing set; production sets
SECRET_KEY, DEBUG=0, ALLOWED_HOSTS and DATABASE_URL (see README, "Configuration").
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from tutor.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
_DEV_SECRET = "dev-only-insecure-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "guardian",
    "auditlog",
    "django_q",
    # Before audit: its sign-in receivers read what axes has just counted on the request.
    "axes",
    "audit",
    "classroom",
    "plans",
    "workflow",
    "tutor",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but for security: every error under /api/ becomes the API's JSON, whoever made it.
    "tutor.middleware.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Bad input (a NUL, a value longer than any field takes) refused before a view sees it.
    "tutor.middleware.InputGuardMiddleware",
    "tutor.middleware.SecurityHeadersMiddleware",
    "csp.middleware.CSPMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Turns a sign-in refused for too many failures into the lock-out page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tutor.urls"
WSGI_APPLICATION = "tutor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file by default so the demo needs nothing installed; PostgreSQL (psycopg 3) in CI and production.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; a busy timeout instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "classroom.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Sign-in throttling (django-axes, counted in the database so that every web process shares the
# counts): an account is locked after AXES_FAILURE_LIMIT failed sign-ins within the cool-off, from
# whatever addresses, and so is an address after as many failures, for whatever accounts. A lock
# lasts AXES_COOLOFF_MINUTES after the latest try (a try while locked starts it again); an admin
# lifts it sooner in Admin → Axes → Access attempts or with `manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A successful sign-in clears the account's count only (classroom.sign_in.SignInHandler): axes'
# AXES_RESET_ON_SUCCESS also clears the address's, so someone signing into their own account
# between guesses at other people's passwords would never reach the limit.
AXES_RESET_ON_SUCCESS = False
AXES_HANDLER = "classroom.sign_in.SignInHandler"
AXES_CLIENT_IP_CALLABLE = "classroom.sign_in.client_address"
AXES_LOCKOUT_CALLABLE = "classroom.sign_in.locked_out"
# Sign-ins are in the audit log with their addresses, under its retention; not in a second log without one.
AXES_DISABLE_ACCESS_LOG = True
# How many proxies in front each append the address they received from to X-Forwarded-For. 0 trusts
# no such header: any client can send one, and would then choose the address it is counted under.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# A bearer token for the JSON API stops working this many days after it is made (`create_api_token --days N`).
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 90)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Production hardening: all of it follows DEBUG=0, so `check --deploy` is clean with real values set.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Pages load only their own scripts, styles and images (htmx is served from /static/); nothing may
# frame them or post forms elsewhere. django-csp sends the header.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Browser features no page of the console uses (tutor.middleware.SecurityHeadersMiddleware).
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "midi=(), magnetometer=(), gyroscope=(), accelerometer=(), display-capture=(), interest-cohort=()"
)

# django-q2 on the ORM broker: no extra server. retry must exceed timeout or tasks run twice.
Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "proactive-tutor"),
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 300),
    "retry": env_int("Q_RETRY", 360),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3),
    "catch_up": False,
    "save_limit": 500,
    "sync": env_bool("Q_SYNC", False),
}

AUDITLOG_STORE_JSON_CHANGES = True
# Field-history entries carry the correlation id of the request or job that made them.
AUDITLOG_CID_GETTER = "audit.context.current_correlation_id"

# Audit log. Who sees which events, and the names of students and classes, come from the classroom
# app through this object (audit imports no other app; see audit.directory).
AUDIT_DIRECTORY = "classroom.audit_directory.ClassroomDirectory"
# Events older than this lose their personal details (`manage.py redact_audit`, nightly); 0 keeps them.
# PostgreSQL enforces it too, with the value `migrate` last installed: run migrate after changing it.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 730)
AUDIT_PAGE_SIZE = env_int("AUDIT_PAGE_SIZE", 50)
# Take the request's correlation id from an X-Correlation-ID header (only behind a proxy that sets it).
AUDIT_TRUST_CORRELATION_HEADER = env_bool("AUDIT_TRUST_CORRELATION_HEADER", False)
# Approval queues the notifier watches: dotted callables returning audit.notify.PendingApproval items.
AUDIT_APPROVAL_SOURCES: list[str] = [
    "plans.selectors.pending_approvals",
    "tutor.proactive.selectors.pending_approvals",
]
# An approval waiting longer than this is notified (once) to the organisation's channels.
AUDIT_APPROVAL_NOTIFY_HOURS = env_int("AUDIT_APPROVAL_NOTIFY_HOURS", 24)
AUDIT_NOTIFY_CRON = env_str("AUDIT_NOTIFY_CRON", "*/10 * * * *")
AUDIT_RETENTION_CRON = env_str("AUDIT_RETENTION_CRON", "45 3 * * *")
# The key of the activity log's hash chain (HMAC-SHA256). It lives outside the database, so whoever
# can write the tables cannot re-hash them. Rotate by setting a new key and id and moving the old
# pair into AUDIT_CHAIN_RETIRED_KEYS (`id:secret,id:secret`), which older events keep verifying with.
_DEV_CHAIN_KEY = "dev-only-insecure-audit-chain-key-set-AUDIT_CHAIN_KEY-in-production"
AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY", _DEV_CHAIN_KEY if DEBUG else "")
if not AUDIT_CHAIN_KEY or (not DEBUG and AUDIT_CHAIN_KEY == _DEV_CHAIN_KEY):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("AUDIT_CHAIN_KEY must be set when DEBUG=0")
AUDIT_CHAIN_KEY_ID = env_str("AUDIT_CHAIN_KEY_ID", "dev" if AUDIT_CHAIN_KEY == _DEV_CHAIN_KEY else "1")
AUDIT_CHAIN_RETIRED_KEYS = env_list("AUDIT_CHAIN_RETIRED_KEYS", [])
# Daily: each organisation's chain head, signed, to its notification channels (audit.checkpoints).
AUDIT_CHECKPOINT_CRON = env_str("AUDIT_CHECKPOINT_CRON", "55 3 * * *")
# Base URL of the console in links sent by email and Slack.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

# Study plans. A draft is open this long; an organisation's PlanPolicy (admin) overrides the bounds
# and what counts as high impact (a second approver then publishes).
PLAN_DRAFT_TTL_DAYS = env_int("PLAN_DRAFT_TTL_DAYS", 7)
PLAN_MIN_WEEKLY_MINUTES = env_int("PLAN_MIN_WEEKLY_MINUTES", 30)
PLAN_MAX_WEEKLY_MINUTES = env_int("PLAN_MAX_WEEKLY_MINUTES", 600)
PLAN_HIGH_IMPACT_PACING_SHARE = env_float("PLAN_HIGH_IMPACT_PACING_SHARE", 0.25)
# Reads a teacher's plain-text plan edit (the LLM gateway, with the rule-based parser as its
# fallback); plans asks through this dotted path because it never imports tutor.
PLAN_TEXT_INTERPRETER = "tutor.chat.plan_text.interpret"
PLAN_EXPIRY_CRON = env_str("PLAN_EXPIRY_CRON", "5 * * * *")

# The proactive engine. The dispatcher claims this many due tasks per transaction; a run left
# claimed longer than this (its worker died) is taken again; these kinds wait for a teacher's
# approval; this many dismissals of a type in a row suppress it for the learner.
PROACTIVE_BATCH = env_int("PROACTIVE_BATCH", 200)
# Model calls in flight at once while a batch's messages are composed (the platform sends of a
# batch go PLATFORM_CONCURRENCY at a time).
PROACTIVE_CONCURRENCY = env_int("PROACTIVE_CONCURRENCY", 4)
# The dispatcher process (`manage.py run_due_tasks`) wakes at the next due time, and at least this
# often to see schedules created or moved meanwhile.
PROACTIVE_POLL_SECONDS = env_float("PROACTIVE_POLL_SECONDS", 5.0)
PROACTIVE_RECLAIM_MINUTES = env_int("PROACTIVE_RECLAIM_MINUTES", 10)
PROACTIVE_APPROVAL_KINDS = env_list("PROACTIVE_APPROVAL_KINDS", ["assignment"])
PROACTIVE_DISMISSALS_TO_SUPPRESS = env_int("PROACTIVE_DISMISSALS_TO_SUPPRESS", 3)
# A one-off whose send fails is retried (1, 2, 4 ... minutes apart, at most an hour) until this
# many hours after its due time; then it is marked not delivered and a high-severity failure opens.
PROACTIVE_ONE_OFF_DEADLINE_HOURS = env_int("PROACTIVE_ONE_OFF_DEADLINE_HOURS", 24)

# The learner orchestrator (tutor.orchestrator, /api/orchestrator/...). day.run answers within
# this many seconds whatever its agents do; each agent call waits at most the per-call timeout,
# and both are cut to what is left of the budget.
ORCHESTRATOR_DAY_RUN_BUDGET = env_float("ORCHESTRATOR_DAY_RUN_BUDGET", 12.0)
ORCHESTRATOR_AGENT_TIMEOUT = env_float("ORCHESTRATOR_AGENT_TIMEOUT", 15.0)
# A remote agent's 5xx is retried after 1, 2 and 4 s (this base, doubling); a 429 after its Retry-After.
ORCHESTRATOR_AGENT_BACKOFF_BASE = env_float("ORCHESTRATOR_AGENT_BACKOFF_BASE", 1.0)
ORCHESTRATOR_AGENT_MAX_ATTEMPTS = env_int("ORCHESTRATOR_AGENT_MAX_ATTEMPTS", 4)
# The four agents: each built in (over our own data) unless a URL here makes it a remote HTTP
# agent speaking the agent contract, called with ORCHESTRATOR_AGENT_TOKEN as its bearer token.
ORCHESTRATOR_AGENT_URLS = {
    name: env_str(f"ORCHESTRATOR_{name.upper()}_URL", "") for name in ("clo", "alex", "ta", "socratic")
}
ORCHESTRATOR_AGENT_TOKEN = env_str("ORCHESTRATOR_AGENT_TOKEN", "demo-agents-token")
# How long each agent's answer stays fresh (minutes): a fresh answer is a cache hit, a stale one
# is revalidated with If-None-Match.
ORCHESTRATOR_FRESHNESS_MINUTES = {
    "clo": env_int("ORCHESTRATOR_CLO_FRESH_MINUTES", 24 * 60),
    "alex": env_int("ORCHESTRATOR_ALEX_FRESH_MINUTES", 12 * 60),
    "ta": env_int("ORCHESTRATOR_TA_FRESH_MINUTES", 60),
    "socratic": env_int("ORCHESTRATOR_SOCRATIC_FRESH_MINUTES", 6 * 60),
}
# Per-learner token buckets: day.run (it asks four agents and maybe a model) and the other
# endpoints, as requests per minute with the burst a bucket holds.
ORCHESTRATOR_RATE_LIMITS = {
    "day.run": (env_int("ORCHESTRATOR_DAY_RUN_PER_MINUTE", 6), env_int("ORCHESTRATOR_DAY_RUN_BURST", 3)),
    "default": (env_int("ORCHESTRATOR_PER_MINUTE", 120), env_int("ORCHESTRATOR_BURST", 30)),
}
# The daily job prepares each active learner's next plan at this local time ("HH:MM") in their zone.
ORCHESTRATOR_PREPARE_AT = env_str("ORCHESTRATOR_PREPARE_AT", "06:00")
ORCHESTRATOR_PREPARE_CRON = env_str("ORCHESTRATOR_PREPARE_CRON", "*/15 * * * *")
# Shared rate-limit buckets when several machines serve the API; empty keeps them in the database.
REDIS_URL = env_str("REDIS_URL", "")

# Live sessions (classroom.live): the conductor ticks each live session every LIVE_TICK_SECONDS,
# scoring its last LIVE_WINDOW_SECONDS of events; raw events are deleted after the retention.
LIVE_TICK_SECONDS = env_float("LIVE_TICK_SECONDS", 5.0)
LIVE_WINDOW_SECONDS = env_int("LIVE_WINDOW_SECONDS", 60)
LIVE_SIGNAL_RETENTION_HOURS = env_int("LIVE_SIGNAL_RETENTION_HOURS", 24)
# A signal batch: at most this many events and bytes (413 beyond).
LIVE_MAX_BATCH_EVENTS = env_int("LIVE_MAX_BATCH_EVENTS", 1000)
LIVE_MAX_BATCH_BYTES = env_int("LIVE_MAX_BATCH_BYTES", 512 * 1024)
# A conductor's hold on a session lasts this long unless renewed (then another may take it).
LIVE_LEASE_SECONDS = env_int("LIVE_LEASE_SECONDS", 15)
LIVE_CONDUCTOR_MAX_SESSIONS = env_int("LIVE_CONDUCTOR_MAX_SESSIONS", 500)
# The live page's stream: how often it looks for a new tick, and how long one stream lasts before
# the browser reconnects (and gets the whole panel again).
LIVE_STREAM_POLL_SECONDS = env_float("LIVE_STREAM_POLL_SECONDS", 1.0)
LIVE_STREAM_SECONDS = env_int("LIVE_STREAM_SECONDS", 300)
# A leave the platform marks as a lost connection counts as an exit only if the participant is
# not back within this many seconds (a Wi-Fi blip or a deploy is not a mass exit).
LIVE_DISCONNECT_GRACE_SECONDS = env_int("LIVE_DISCONNECT_GRACE_SECONDS", 30)
# The engagement score (0-100): weighted parts, each 0-1. The normalisers are the per-participant
# rates that count as full engagement (a class of 30 chatting 6 messages a minute is full chat);
# polls count while one had a vote in the last `poll_recent_seconds`, else their weight is shared
# by the others; active users are those who did anything in the last `active_window_seconds`.
# Each organisation may override any of these (Organisation.live_settings).
LIVE_SCORE = {
    "weights": {"chat": 0.30, "polls": 0.25, "active_users": 0.25, "reactions": 0.10, "leaves": 0.10},
    "normalisers": {
        "chat_per_participant_min": 0.2,
        "reactions_per_participant_min": 0.1,
        "leave_share_full_penalty": 0.2,
    },
    "poll_recent_seconds": 180,
    "active_window_seconds": 180,
    # A new poll counts once its first vote is this old (until then, the one before it).
    "poll_settle_seconds": 45,
    # Score categories, from the top: at or above each floor.
    "categories": {"high": 70, "moderate": 50, "low": 30},
}
# The anomaly rules (classroom.live.detect): what each needs to fire, and the critical level.
LIVE_ANOMALY = {
    # An anomaly stays open this long at least, and then (but for an exit) until the score is
    # this margin above its type's level; its type is not raised again while it is open.
    "cooldown_seconds": 120,
    "clear_margin": 10,
    "warm_up_seconds": 60,
    "sudden_drop_points": 25,
    "sudden_drop_critical_points": 40,
    "sudden_drop_to_below": 60,
    "sudden_drop_recent_seconds": 30,
    "sudden_drop_recent_share": 0.4,
    "sudden_drop_recent_ticks": 2,
    "sudden_drop_baseline_seconds": 120,
    "decline_window_seconds": 180,
    "decline_points_per_min": 5,
    "decline_points": 15,
    "decline_critical_points": 30,
    "decline_end_below": 65,
    "mass_exit_window_seconds": 30,
    "mass_exit_share": 0.25,
    "mass_exit_critical_share": 0.5,
    "mass_exit_min_participants": 4,
    "low_score": 30,
    "low_critical_score": 15,
    "low_for_seconds": 30,
}

# Email: printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("EMAIL_HOST", "")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 15)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Proactive Tutor <noreply@localhost>")

# Risk alert thresholds; an organisation overrides any of them (Organisation.alert_thresholds).
ALERT_THRESHOLDS = {
    # overdue assignments: this many unsubmitted past their due time, counting only those overdue this long
    "overdue_min_count": 1,
    "overdue_grace_hours": 24,
    # stalled mastery: gain over the window below this, with at least this many measured days in it
    "stalled_window_days": 14,
    "stalled_min_gain": 0.02,
    "stalled_min_points": 5,
    # low-confidence streak: this many consecutive recorded days at or below the confidence level (1-5)
    "low_confidence_level": 2,
    "low_confidence_streak_days": 3,
    # expiring drafts: drafts that expire within this many hours
    "draft_expiry_warning_hours": 48,
}
# A student whose mirror is older than this shows as stale on the roster.
MIRROR_FRESHNESS_HOURS = env_int("MIRROR_FRESHNESS_HOURS", 36)
# The worker is reported stale by /healthz when its last heartbeat is older than this.
WORKER_HEARTBEAT_STALE_SECONDS = env_int("WORKER_HEARTBEAT_STALE_SECONDS", 180)
ROSTER_PAGE_SIZE = env_int("ROSTER_PAGE_SIZE", 50)

# The learning platform (the project's simulator on loopback by default: `manage.py platform_sim`).
PLATFORM_BASE_URL = env_str("PLATFORM_BASE_URL", "http://127.0.0.1:8765")
PLATFORM_TOKEN = env_str("PLATFORM_TOKEN", "demo-platform-token")
PLATFORM_CONCURRENCY = env_int("PLATFORM_CONCURRENCY", 8)
PLATFORM_TIMEOUT = env_float("PLATFORM_TIMEOUT", 15.0)
# Attempts per call, the first included; waits between them double from the base (1 s, 2 s, 4 s) with jitter.
PLATFORM_MAX_ATTEMPTS = env_int("PLATFORM_MAX_ATTEMPTS", 4)
PLATFORM_BACKOFF_BASE = env_float("PLATFORM_BACKOFF_BASE", 1.0)
# A 429 asking to wait longer than this fails the call instead of holding a worker.
PLATFORM_MAX_RETRY_AFTER = env_int("PLATFORM_MAX_RETRY_AFTER", 60)
# A sync stops after this many students fail in a row with nothing succeeding (an outage).
PLATFORM_CIRCUIT_BREAKER = env_int("PLATFORM_CIRCUIT_BREAKER", 10)
SYNC_NIGHTLY_CRON = env_str("SYNC_NIGHTLY_CRON", "30 2 * * *")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # One line per platform request is noise; failures reach the SyncRun and the audit log.
    "loggers": {"httpx": {"level": "WARNING"}},
}
# axes' warnings (each failed sign-in, each lock-out) stay; its step-by-step notes are noise.
LOGGING["loggers"]["axes"] = {"level": "WARNING"}

# LLM gateway (tutor.llm). Without a key the tutor answers with its rule-based fallback, labelled as such.
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
# Another endpoint for the Messages API (a proxy; the tests' fake server); empty means Anthropic's.
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
# The model every call asks; the audit event records it.
LLM_MODEL = env_str("LLM_MODEL", "claude-sonnet-4-6")
# Seconds per HTTP attempt; a whole call can take (LLM_MAX_RETRIES + 1) times this plus back-off.
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 20.0)
# Retries the SDK makes itself on timeouts, 408/409/429, 5xx and 529 before we fall back.
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2)
# Upper bound on the tokens of one answer. (No temperature: API version 2026-10-21, which the anthropic
# 2.x SDK sends, answers 400 to temperature/top_p/top_k at any value, and the SDK no longer takes them.)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 1024)
# Hosts whose links may stay in a model's reply (subdomains included); other links are redacted.
LLM_URL_ALLOW_LIST = env_list("LLM_URL_ALLOW_LIST", [])
# One line per model request is noise; every call has its audit event.
LOGGING["loggers"]["httpx2"] = {"level": "WARNING"}
