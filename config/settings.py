"""Baeum settings, read from the environment.

Nothing here needs to be set for the embedded mode: SQLite under ``var/``, Celery tasks
run eagerly in-process, and development keys generated once into ``var/dev-keys.json``.
Production sets ``BAEUM_PRODUCTION=1``, which makes every secret mandatory.
"""

import base64
import contextlib
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


PRODUCTION = env_bool("BAEUM_PRODUCTION")
DEBUG = env_bool("DJANGO_DEBUG", default=False)
# A checkout keeps its data under var/ beside manage.py; an installed Baeum (a wheel) under
# var/ in the directory it runs from, unless BAEUM_DATA_DIR says where.
_DEFAULT_DATA_DIR = (BASE_DIR if (BASE_DIR / "manage.py").exists() else Path.cwd()) / "var"
DATA_DIR = Path(os.environ.get("BAEUM_DATA_DIR", _DEFAULT_DATA_DIR))


def _dev_keys() -> dict:
    """Load (or create once) the development keys, so restarts can still decrypt."""
    path = DATA_DIR / "dev-keys.json"
    if path.exists():
        return json.loads(path.read_text())
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    keys = {
        "secret_key": secrets.token_urlsafe(50),
        "encryption_keys": "dev1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "hmac_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys))
    os.chmod(tmp, 0o600)
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)  # first writer wins when two processes start together
    tmp.unlink(missing_ok=True)
    return json.loads(path.read_text())


def _secret(env_name: str, dev_name: str) -> str:
    value = os.environ.get(env_name)
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{env_name} must be set when BAEUM_PRODUCTION=1.")
    return _dev_keys()[dev_name]


SECRET_KEY = _secret("DJANGO_SECRET_KEY", "secret_key")

# "kid:base64key,kid2:base64key" — the first key encrypts, every listed key decrypts.
BAEUM_ENCRYPTION_KEYS = _secret("BAEUM_ENCRYPTION_KEYS", "encryption_keys")
# Key of the HMAC-SHA-256 blind index used to match RRNs against registries.
BAEUM_HMAC_KEY = _secret("BAEUM_HMAC_KEY", "hmac_key")

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
# A refused CSRF check is JSON under /api/, Django's page elsewhere.
CSRF_FAILURE_VIEW = "api.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_standardized_errors",
    "drf_spectacular_sidecar",
    "axes",
    "core",
    "benefits",
    "eligibility",
    "payments",
    "api",
    "staff",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language everywhere, English when none is sent (the API's clients and tests);
    # the staff pages then default to Korean unless the user chose (staff.middleware).
    "django.middleware.locale.LocaleMiddleware",
    "staff.middleware.StaffLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a lockout on the admin and staff sign-in pages into core.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "staff.context_processors.staff_menus",
            ],
        },
    },
]

# Database: PostgreSQL via DATABASE_URL in production; embedded SQLite otherwise.
# Persistent connections matter: reconnecting per request costs 6-8x throughput.
CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 600)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# SQLite serves concurrent writers only with these, however the file is named (a default
# path, SQLITE_PATH or a sqlite:/// DATABASE_URL): writers queue on BEGIN IMMEDIATE
# instead of failing with "database is locked" when a read transaction upgrades to a write.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA foreign_keys=ON;"
        "PRAGMA busy_timeout=20000;"
    ),
}
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True
        )
    }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(DATA_DIR / "baeum.sqlite3")),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
        }
    }
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    for _name, _value in SQLITE_OPTIONS.items():
        _db_options.setdefault(_name, _value)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # JIT compiling costs ~0.3 s a statement, more than the set-based queries it would
    # speed up here (batch building, screening chunks); OLTP work gains nothing from it.
    # Hash aggregates over a round's 100,000 rows (the pre-release audit, screening facts)
    # spill to disk at PostgreSQL's default of 4 MB.
    _db_options.setdefault(
        "options", f"-c jit=off -c work_mem={os.environ.get('BAEUM_PG_WORK_MEM', '32MB')}"
    )
    # Behind PgBouncer in transaction mode a cursor must not outlive its transaction, as
    # QuerySet.iterator()'s server-side cursors do outside one (README: a city-wide round).
    if env_bool("DB_DISABLE_SERVER_SIDE_CURSORS"):
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: login throttles and lockouts live here, so every web process must share it.
# Redis in production (BAEUM_CACHE_URL); the embedded mode runs one process, and the
# process's own memory is enough.
BAEUM_CACHE_URL = os.environ.get("BAEUM_CACHE_URL", "")
if BAEUM_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BAEUM_CACHE_URL,
            "KEY_PREFIX": os.environ.get("BAEUM_CACHE_KEY_PREFIX", "baeum"),
            # A Redis that does not answer fails the request instead of hanging it.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
elif PRODUCTION:
    raise ImproperlyConfigured(
        "BAEUM_CACHE_URL must be set when BAEUM_PRODUCTION=1: login throttles and lockouts "
        "must be shared by every web process (e.g. redis://redis:6379/1)."
    )
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # django-axes warns that a per-process cache does not share lockouts; the embedded
    # mode is one process. Production refuses to start without a shared cache (above).
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]

# Authentication: lockouts, client addresses, token lifetimes.
# Axes checks every login that goes through django.contrib.auth.authenticate() (the API
# token login, the admin, the staff workbench) before the role backend does.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "core.auth.RoleBackend"]
# How many reverse proxies of ours stand in front of Django, each adding one
# X-Forwarded-For hop. 0: the client is REMOTE_ADDR and X-Forwarded-For is ignored
# (anyone can write it). N: the client is the N-th address from the right.
BAEUM_TRUSTED_PROXIES = env_int("BAEUM_TRUSTED_PROXIES", 0)
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env_int("BAEUM_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BAEUM_LOGIN_LOCKOUT_MINUTES", 15))
# Per username and client address together: a typo-prone user elsewhere is not locked
# out by an attacker, and an attacker's address is throttled anyway (BAEUM_AUTH_RATE).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.auth.client_ip"
AXES_USERNAME_CALLABLE = "core.auth.login_username"
AXES_LOCKOUT_CALLABLE = "core.auth.lockout_response"
AXES_ENABLE_ADMIN = False  # attempts live in the cache, not in Axes' tables
AXES_VERBOSE = False
# API tokens expire this long after the login that issued them (a login issues a new
# one and retires the old); citizens keep theirs for weeks, everyone else for a day's work.
BAEUM_STAFF_TOKEN_HOURS = env_int("BAEUM_STAFF_TOKEN_HOURS", 8)
BAEUM_CITIZEN_TOKEN_DAYS = env_int("BAEUM_CITIZEN_TOKEN_DAYS", 30)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule on the password: a new password revokes the user's API token.
    {"NAME": "core.auth.RevokeTokenOnPasswordChange"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOCALE_PATHS = [Path(__file__).resolve().parent / "locale"]
# The language of the staff pages for a user who has not chosen one (the language switch
# sets the cookie below, kept for a year).
BAEUM_STAFF_LANGUAGE = os.environ.get("BAEUM_STAFF_LANGUAGE", "ko")
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True

# Staff sign in at /staff/ with their own accounts; a session lasts a working day.
LOGIN_URL = "staff:login"
LOGIN_REDIRECT_URL = "staff:home"
BAEUM_STAFF_SESSION_SECONDS = env_int("BAEUM_STAFF_SESSION_SECONDS", 8 * 3600)
SESSION_COOKIE_AGE = BAEUM_STAFF_SESSION_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("BAEUM_SESSION_EXPIRE_AT_BROWSER_CLOSE")

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    # Uploaded documents live outside the web root and are never served by URL.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "documents"), "base_url": None},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_PERMISSIONS = 0o600
BAEUM_MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
# Uploads are parsed in a child process held to these bounds (benefits.documents); what
# does not parse within them is refused.
BAEUM_MAX_DOCUMENTS_PER_APPLICATION = env_int("BAEUM_MAX_DOCUMENTS_PER_APPLICATION", 20)
BAEUM_DOCUMENT_CHECK_SECONDS = env_int("BAEUM_DOCUMENT_CHECK_SECONDS", 10)
BAEUM_DOCUMENT_CHECK_MEMORY_MB = env_int("BAEUM_DOCUMENT_CHECK_MEMORY_MB", 1024)
BAEUM_DOCUMENT_MAX_PIXELS = env_int("BAEUM_DOCUMENT_MAX_PIXELS", 50_000_000)
# JSON request bodies: refused (413, 400) before parsing when larger or deeper than this.
BAEUM_JSON_MAX_BYTES = env_int("BAEUM_JSON_MAX_BYTES", 1024 * 1024)
BAEUM_JSON_MAX_DEPTH = env_int("BAEUM_JSON_MAX_DEPTH", 32)

# Security headers. Production is served over HTTPS behind our proxy, which sets
# X-Forwarded-Proto; /health/ answers the load balancer over plain HTTP.
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("BAEUM_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_HSTS_SECONDS = env_int("BAEUM_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BAEUM_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("BAEUM_HSTS_PRELOAD", True)

# Content-Security-Policy, on every response: scripts, styles, images and fonts come from
# Baeum itself, never inline (the staff pages, the admin and Swagger UI keep to it).
# BAEUM_CSP_REPORT_ONLY=1 sends it as Content-Security-Policy-Report-Only instead.
_CSP = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Swagger UI draws its icons from data: URLs.
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if env_bool("BAEUM_CSP_REPORT_ONLY"):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_standardized_errors.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": os.environ.get("BAEUM_AUTH_RATE", "30/min"),
    },
    # The client address of throttles (and, through core.auth.client_ip, of lockouts).
    "NUM_PROXIES": BAEUM_TRUSTED_PROXIES,
    # Size, nesting and characters checked before a view sees the data (api.parsers).
    # JSON in; the upload views take multipart/form-data instead.
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
DRF_STANDARDIZED_ERRORS = {
    # JSON, not Django's HTML debug page, for unhandled errors under /api/.
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    "EXCEPTION_HANDLER_CLASS": "api.errors.BaeumExceptionHandler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Baeum API",
    "DESCRIPTION": "Seoul lifelong-learning scholarship and voucher programs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc load their scripts from Baeum's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No validator badge: Swagger UI would send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProgramCodeEnum": "benefits.models.PROGRAM_CODE_CHOICES",
        "DocumentKindEnum": "benefits.models.DOCUMENT_KIND_CHOICES",
        "RegistryKindEnum": "eligibility.models.RegistryKind.choices",
        "RoundStatusEnum": "benefits.models.ROUND_STATUS_CHOICES",
        "BatchStatusEnum": "payments.models.BATCH_STATUS_CHOICES",
        "PaymentStatusEnum": "payments.models.PAYMENT_STATUS_CHOICES",
        "RecoveryStatusEnum": "payments.models.RECOVERY_STATUS_CHOICES",
        "BatchKindEnum": "payments.models.BATCH_KIND_CHOICES",
        "VoucherEntryKindEnum": "payments.models.VOUCHER_ENTRY_KIND_CHOICES",
        # A registry import's states, which a bank result import's share.
        "RegistryImportJobStatusEnum": "payments.models.RESULT_IMPORT_STATUS_CHOICES",
        "ValidationErrorEnum": (
            "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices"
        ),
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
        "ErrorCode401Enum": "drf_standardized_errors.openapi_serializers.ErrorCode401Enum.choices",
        "ErrorCode403Enum": "drf_standardized_errors.openapi_serializers.ErrorCode403Enum.choices",
        "ErrorCode404Enum": "drf_standardized_errors.openapi_serializers.ErrorCode404Enum.choices",
        "ErrorCode405Enum": "drf_standardized_errors.openapi_serializers.ErrorCode405Enum.choices",
        "ErrorCode406Enum": "drf_standardized_errors.openapi_serializers.ErrorCode406Enum.choices",
        "ErrorCode415Enum": "drf_standardized_errors.openapi_serializers.ErrorCode415Enum.choices",
        "ErrorCode429Enum": "drf_standardized_errors.openapi_serializers.ErrorCode429Enum.choices",
        "ErrorCode500Enum": "drf_standardized_errors.openapi_serializers.ErrorCode500Enum.choices",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
        # Every error status and code the server answers (api/schema.py).
        "api.schema.postprocess_error_responses",
    ],
}

# --- Celery, the task outbox, logging in every process, sealed uploads (issue 16) -------
# Celery: with no broker configured, tasks run eagerly in the calling process.
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
# The in-memory transport is never used while eager; it only spares kombu a warning.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
# A message is acknowledged once its task has run, not when a worker takes it: a worker
# killed mid-task leaves it unacknowledged, and Redis hands it out again after the
# visibility timeout; a child process lost under a live worker requeues it at once.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis gives an unacknowledged message to another worker after the visibility timeout,
# whether or not the first one still runs it. Longer than every countdown the tasks use
# (retries wait up to 10 minutes), so a waiting retry is never handed out twice; short
# enough that a message of a killed worker comes back within the half hour even without
# the outbox sweeper. Work that runs longer gets a second delivery, which its outbox lease
# turns into a no-op; the sweeper, not this timeout, is what takes over work whose worker
# died (after BAEUM_OUTBOX_LEASE). The socket timeouts make a publish to a broker that is
# gone fail in seconds instead of holding a web request.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 1800),
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
}
# One quick retry of a publish, then the caller moves on: the outbox keeps the work.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery keeps Django's logging (and its RRN-redacting filter) instead of its own root
# handler; core.logging also hooks Celery's logger signals for the task loggers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task modules outside the autodiscovered tasks.py files.
CELERY_IMPORTS = ["eligibility.screening_tasks"]
# Two queues. `default` holds what a citizen or a caseworker waits on (screening on submit,
# messages, the outbox sweep); `long` the round- and file-sized jobs, so that intake is never
# stuck behind a registry import. A worker started without -Q consumes both; production
# runs some workers on each (README, "Running in production"). The task outbox sends each
# entry to its task's queue (core.outbox).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("default"), Queue("long"))
BAEUM_LONG_TASKS = (
    "eligibility.screening_tasks.round_rescreen_task",
    "eligibility.screening_tasks.round_rescreen_chunk_task",
    "eligibility.screening_tasks.round_recheck_task",
    "eligibility.tasks.registry_import_run_task",
    "eligibility.tasks.registry_import_chunk_task",
    "eligibility.tasks.registry_import_finish_task",
    "payments.tasks.batch_build_task",
    "payments.tasks.bank_files_generate_task",
    "payments.tasks.bank_results_run_task",
    "payments.tasks.bank_results_chunk_task",
)
CELERY_TASK_ROUTES = {name: {"queue": "long"} for name in BAEUM_LONG_TASKS}
# A round's re-screen is cut into chunk tasks of this many applications under review (by
# id), which the workers on `long` share; each commits in transactions of
# BAEUM_RESCREEN_COMMIT applications, renewing its lease between them.
BAEUM_RESCREEN_CHUNK = env_int("BAEUM_RESCREEN_CHUNK", 10_000)
BAEUM_RESCREEN_COMMIT = env_int("BAEUM_RESCREEN_COMMIT", 5_000)
# A bank result file is applied in chunk tasks of this many lines, each committed on its
# own; each reads the stored file up to its chunk.
BAEUM_RESULTS_CHUNK = env_int("BAEUM_RESULTS_CHUNK", 50_000)
# A batch's build is cut into chunk tasks of this many payable applications (by id), each
# one transaction; the last chunk to commit marks the batch ready.
BAEUM_BUILD_CHUNK = env_int("BAEUM_BUILD_CHUNK", 5_000)
# A registry import is cut into chunk tasks of this many lines of its file, which the
# workers on `long` check and load side by side, each in one transaction.
BAEUM_IMPORT_CHUNK_LINES = env_int("BAEUM_IMPORT_CHUNK_LINES", 100_000)
# The task outbox: a run that renewed its lease longer ago than this is taken over; work
# sent but not started within REDISPATCH_AFTER is sent again (doubling each time); a task
# that failed (or lost its lease) this many times is given up and logged as an error.
BAEUM_OUTBOX_LEASE = timedelta(seconds=env_int("BAEUM_OUTBOX_LEASE_SECONDS", 300))
BAEUM_OUTBOX_REDISPATCH_AFTER = timedelta(seconds=env_int("BAEUM_OUTBOX_REDISPATCH_SECONDS", 300))
BAEUM_OUTBOX_MAX_FAILURES = env_int("BAEUM_OUTBOX_MAX_FAILURES", 8)
# Finished entries are kept this long for anyone looking at what ran, then swept away.
BAEUM_OUTBOX_KEEP_DONE = timedelta(days=env_int("BAEUM_OUTBOX_KEEP_DONE_DAYS", 7))
BAEUM_OUTBOX_SWEEP_SECONDS = env_int("BAEUM_OUTBOX_SWEEP_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "idempotency-keys-purge": {
        "task": "api.tasks.idempotency_keys_purge_task",
        "schedule": crontab(minute=17),
    },
    "vouchers-lapse": {
        "task": "payments.tasks.vouchers_lapse_task",
        "schedule": crontab(hour=0, minute=10),
    },
    "notifications-flush": {
        "task": "benefits.tasks.notifications_flush_task",
        "schedule": crontab(minute="*/5"),
    },
    "task-outbox-sweep": {
        "task": "core.tasks.outbox_sweep_task",
        "schedule": timedelta(seconds=BAEUM_OUTBOX_SWEEP_SECONDS),
        # A sweep that waited longer than its interval is replaced by the next one.
        "options": {"expires": BAEUM_OUTBOX_SWEEP_SECONDS},
    },
}
# Uploads too large for memory are encrypted as they arrive (core.uploads), never written
# to the temp directory in plaintext: registry files hold raw RRNs.
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "core.uploads.SealedTemporaryFileUploadHandler",
]
# --- end of the Celery and outbox block ----------------------------------------------------
# Where citizen notifications go: a class with send(notification).
BAEUM_NOTIFICATION_BACKEND = os.environ.get(
    "BAEUM_NOTIFICATION_BACKEND", "benefits.notifications.ConsoleBackend"
)

BAEUM_IDEMPOTENCY_TTL = timedelta(hours=env_int("BAEUM_IDEMPOTENCY_TTL_HOURS", 24))
# A request that started this long ago and never finished is taken to have died.
BAEUM_IDEMPOTENCY_STALE_AFTER = timedelta(minutes=5)
# Mounts bench/bare.py's baseline endpoint; only bench/intake.py sets it.
BAEUM_BENCH_ENDPOINTS = env_bool("BAEUM_BENCH_ENDPOINTS")
BAEUM_DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "baeum-demo")

# The city's paying account, written as the debtor of every pain.001 bank file.
BAEUM_DEBTOR_NAME = os.environ.get("BAEUM_DEBTOR_NAME", "서울특별시 평생교육국")
BAEUM_DEBTOR_BANK_CODE = os.environ.get("BAEUM_DEBTOR_BANK_CODE", "020")
BAEUM_DEBTOR_ACCOUNT = os.environ.get("BAEUM_DEBTOR_ACCOUNT", "1005000000001")
# The pre-release audit flags a payee whose bank account changed this recently.
BAEUM_ACCOUNT_CHANGE_WINDOW = timedelta(days=env_int("BAEUM_ACCOUNT_CHANGE_WINDOW_DAYS", 30))
# The batch page shows the audit as last read if younger than this, else reads it again; an
# approval from the page is refused if a payment was flagged since the reading shown.
BAEUM_AUDIT_MAX_AGE = timedelta(seconds=env_int("BAEUM_AUDIT_MAX_AGE_SECONDS", 600))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.logging.RedactPersonalDataFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("BAEUM_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # One line per task run is noise in the embedded mode; failures still show.
        "celery.app.trace": {"level": "WARNING"},
    },
}
