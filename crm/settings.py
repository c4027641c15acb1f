"""Settings, read from the environment.

The embedded default needs no server: SQLite in WAL mode and Celery on kombu's
filesystem transport, both under DATA_DIR. DATABASE_URL and CELERY_BROKER_URL
switch to PostgreSQL and Redis.
"""

import datetime
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
DATA_DIR = Path(os.environ.get("CRM_DATA_DIR", BASE_DIR / "data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (export SECRET_KEY=... or DEBUG=1)")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # nosec B105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_filters",
    "import_export",
    "django_celery_beat",
    "django_celery_results",
    "axes",
    "crm.apps.CrmConfig",
    "segments.apps.SegmentsConfig",
    "loyalty.apps.LoyaltyConfig",
    "campaigns.apps.CampaignsConfig",
    "ninja",  # its Swagger UI files, served from here (no CDN)
    "api.apps.ApiConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "crm.replica.ReplicaPinMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "crm.middleware.DefaultLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "crm.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns locked-out logins into a lockout page.
    "axes.middleware.AxesMiddleware",
    "api.middleware.ApiCallMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: five failures for one user name from one address lock it for an hour.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 1  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/crm/locked_out.html"
# Scripts only from this site; the admin's inline style attributes stay allowed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
    "object-src 'none'"
)

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

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

SQLITE_PATH = DATA_DIR / "db.sqlite3"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
        }
    }
# Behind a connection pooler in transaction pooling (PgBouncer): each transaction
# may run on another server connection, so nothing may outlive one. No named
# (server-side) cursors for .iterator(), no prepared statements, and no startup
# options (PgBouncer 1.18 refuses them): the pooler sets jit=off on its server
# connections instead (scripts/pgbouncer's connect_query).
DATABASE_TRANSACTION_POOLING = env_bool("DATABASE_TRANSACTION_POOLING", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_TRANSACTION_POOLING:
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env_bool("PG_JIT", False):
    # PostgreSQL's JIT compiles any statement its planner costs above 100,000, which
    # here means a batch of a thousand ids or an admin count: 0.4–1 s of compiling
    # for a query that runs in 50 ms. The set-based recompute gains under 1% from it.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web process and a worker write at once: WAL lets readers go on, and
    # IMMEDIATE makes a writer wait for the lock instead of failing midway.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
        }
    )
    # A file, not memory, so that a live worker started by the tests can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}

# A streaming replica for reads that may be a few seconds stale (crm/replica.py).
REPLICA_DATABASE_URL = os.environ.get("REPLICA_DATABASE_URL", "")
REPLICA_MAX_LAG_SECONDS = env_int("REPLICA_MAX_LAG_SECONDS", 10)  # further behind, the primary answers
REPLICA_CHECK_SECONDS = env_int("REPLICA_CHECK_SECONDS", 2)  # how often a process asks the replica its lag
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", REPLICA_MAX_LAG_SECONDS)  # reads after a write stay on the primary
if REPLICA_DATABASE_URL:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("REPLICA_DATABASE_URL needs DATABASE_URL to be a PostgreSQL primary")
    DATABASES["replica"] = dj_database_url.parse(REPLICA_DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)
    # A replica that does not answer costs one request at most this long per REPLICA_CHECK_SECONDS.
    DATABASES["replica"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), "connect_timeout": env_int("REPLICA_CONNECT_TIMEOUT", 2)}
    DATABASES["replica"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS", False)
    # Tests: the replica replicates the primary's test database (same name), it makes none of its own.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["crm.replica.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("CRM_LANGUAGE", "zh-hans")  # the default for everyone; users may switch
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "crm" / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# whitenoise serves the admin's static files with or without DEBUG, straight
# from the apps, so that no collectstatic step is needed to get going.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

# Uploads: big import files go to disk, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The shop's API (api/): largest body (a batch of 1,000 orders with their lines is about 1 MB),
# how often each server process adds its call counts to the database, webhook retries.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 5 * 1024 * 1024)
API_USAGE_FLUSH_SECONDS = env_int("API_USAGE_FLUSH_SECONDS", 5)
API_WEBHOOK_TIMEOUT = env_int("API_WEBHOOK_TIMEOUT", 5)
API_WEBHOOK_MAX_ATTEMPTS = env_int("API_WEBHOOK_MAX_ATTEMPTS", 15)

# How long records of routine work are kept (crm.housekeeping, every night at 04:40): the runs of
# one order's or one import's recompute and settle, the answers kept for an Idempotency-Key,
# delivered or abandoned webhooks, and the bad rows of a finished import (which quote personal
# data). Nightly and full runs, tier history, the ledgers and the imports' counts are kept.
RETENTION_RUN_DAYS = env_int("RETENTION_RUN_DAYS", 90)
RETENTION_IDEMPOTENCY_DAYS = env_int("RETENTION_IDEMPOTENCY_DAYS", 7)
RETENTION_WEBHOOK_DAYS = env_int("RETENTION_WEBHOOK_DAYS", 90)
RETENTION_IMPORT_ERRORS_DAYS = env_int("RETENTION_IMPORT_ERRORS_DAYS", 90)
RETENTION_API_USAGE_DAYS = env_int("RETENTION_API_USAGE_DAYS", 400)  # the API's hourly call counts

# The earliest business date an import accepts (orders, events, registrations): a brand's
# member programme can be older than the default. Birthdays go back to 1900 whatever this says.
CRM_EARLIEST_DATE = datetime.date.fromisoformat(os.environ.get("CRM_EARLIEST_DATE", "2000-01-01"))
CRM_IMPORT_MAX_UPLOAD_BYTES = env_int("CRM_IMPORT_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
# Files above this many bytes are imported by a Celery worker with a progress bar;
# ~10k order rows are about 600 KB.
CRM_IMPORT_BACKGROUND_BYTES = env_int("CRM_IMPORT_BACKGROUND_BYTES", 600 * 1024)
CRM_IMPORT_RUN_INLINE = env_bool("CRM_IMPORT_RUN_INLINE", False)
# An admin list of a table with more rows than this sorts only by the columns an index serves
# (crm.admin_base.BigTableAdmin): past it, a click on another column's header read the whole table.
ADMIN_SORT_ANY_UP_TO = env_int("ADMIN_SORT_ANY_UP_TO", 200_000)
# Memory for each sort and hash of a recompute on PostgreSQL (SET LOCAL work_mem in its
# transaction): at the server's default 4 MB a nightly run's joins of 150k members spilled to disk.
SEGMENTS_RECOMPUTE_WORK_MEM_MB = env_int("SEGMENTS_RECOMPUTE_WORK_MEM_MB", 64)
# A circle's count before saving (the form's button) is estimated from a sample of about
# SEGMENTS_PREVIEW_SAMPLE_ROWS members once the base is larger than SEGMENTS_PREVIEW_EXACT_UP_TO
# (PostgreSQL; rules over the metrics only): a fixed cost instead of counting a million rows.
# Saving counts exactly.
SEGMENTS_PREVIEW_EXACT_UP_TO = env_int("SEGMENTS_PREVIEW_EXACT_UP_TO", 200_000)
SEGMENTS_PREVIEW_SAMPLE_ROWS = env_int("SEGMENTS_PREVIEW_SAMPLE_ROWS", 50_000)

# Celery: the embedded default is kombu's filesystem transport under DATA_DIR.
CELERY_DATA_DIR = DATA_DIR / "celery"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_DATA_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = "django-db"

# The cache carries import progress between the worker and the web process.
CACHE_URL = os.environ.get("CACHE_URL") or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": DATA_DIR / "cache"}
    }
CELERY_RESULT_EXTENDED = True
# Unset, Celery's Django fixup closes every database connection before and after
# each task: a new PostgreSQL backend per batch of a fan-out, its catalog caches
# cold (a third of the machine's CPU went to the kernel). crm/celery.py closes
# them by Django's rule instead (CONN_MAX_AGE, broken connections).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1_000_000)
CELERY_TIMEZONE = TIME_ZONE
# Workers lower their own OS priority to this niceness (0–19; 0 leaves it): on a machine
# shared with the web server, staff's pages take the CPU before sends and recomputes do.
CELERY_WORKER_NICE = env_int("CELERY_WORKER_NICE", 10)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# django-import-export: exports are neutralised by crm.exporting, which covers
# the whole OWASP set; the library's own flag strips a leading "=" only.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
# Exporting needs its own permission (crm.export_member, …), not just access.
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Production hardening, switched on with HTTPS=1 behind a TLS proxy.
if env_bool("HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)  # a working day
CSRF_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
AXES_VERBOSE = False

# Campaign channels: a backend per channel by dotted path (campaigns.backends).
# The default writes JSON lines to DATA_DIR/outbox/<channel>.jsonl; set
# CAMPAIGN_<CHANNEL>_BACKEND=campaigns.backends.HttpGatewayBackend (with
# GATEWAY_URL and GATEWAY_SECRET) or campaigns.backends.SmtpBackend for real sends.
CAMPAIGN_BACKENDS = {
    channel: {"BACKEND": os.environ.get(f"CAMPAIGN_{channel.upper()}_BACKEND", "campaigns.backends.FileBackend"), "OPTIONS": {}}
    for channel in ("sms", "wecom", "email", "push")
}
GATEWAY_URL = os.environ.get("GATEWAY_URL", "")
GATEWAY_SECRET = os.environ.get("GATEWAY_SECRET", "")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "crm@localhost")
# Deliveries per Celery task: one task carries a batch, never one member.
CAMPAIGN_BATCH = int(os.environ.get("CAMPAIGN_BATCH", "1000"))
