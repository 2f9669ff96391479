"""Settings come from the environment; every one has an embedded default.

DATABASE_URL unset -> SQLite in var/. REDIS_URL unset -> the embedded Redis on a
unix socket in var/ (started by `make run`, see inspect_site/embedded_redis.py).
"""

import hashlib
import os
from pathlib import Path

import dj_database_url

from inspect_site import keys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


# Off unless asked for: debug pages show settings to anyone, and the debug cursor that records every
# query cost ~10% of the event throughput of a busy Daphne.
DEBUG = env_bool("DEBUG", False)
# PRODUCTION=1: the keys must come from the environment, and `manage.py check --deploy` applies.
PRODUCTION = env_bool("PRODUCTION", False)
# Signs sessions, tickets and the front proxy's key. Unset, one is made on this machine and kept in var/.
SECRET_KEY = keys.secret_key(os.environ, VAR_DIR, PRODUCTION)
# Encrypt repo secrets at rest (Fernet keys, the first encrypts, all decrypt): independent of SECRET_KEY, so a
# database dump alone decrypts nothing. Unset, one is made on this machine and kept in var/.
SECRETS_ENCRYPTION_KEYS = keys.encryption_keys(os.environ, VAR_DIR, PRODUCTION)
# Web Push (notifications/, docs/phone.md): the key that signs push requests, and the contact push services see.
VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY = keys.vapid_keys(os.environ, VAR_DIR, PRODUCTION)
VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:admin@localhost")
# The push services the platform posts to (a host, or any host under it): a subscription names the address the
# worker will post to, so an address inside the network is refused. Plain http to loopback only with DEBUG.
WEB_PUSH_SERVICE_HOSTS = [h.strip().lower() for h in os.environ.get(
    "WEB_PUSH_SERVICE_HOSTS",
    "fcm.googleapis.com,push.services.mozilla.com,push.apple.com,notify.windows.com").split(",") if h.strip()]
WEB_PUSH_ALLOW_LOOPBACK_HTTP = DEBUG
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "inspect.localhost,localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_ROOT = os.environ.get("SITE_ROOT", "http://inspect.localhost:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "channels",
    "accounts",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "inspect_site",
    "sessions.apps.SessionsConfig",
    "sandboxes",
    "ide",
    "model_proxy",
    "extension",
    "dictation",
    "pulls",
    "notifications",
    "stats",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "inspect_site.urls"
ASGI_APPLICATION = "inspect_site.asgi.application"
WSGI_APPLICATION = None

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

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        # Kept open: every bridge event is a transaction, and opening a connection costs as much.
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 20, "transaction_mode": "IMMEDIATE",
        # WAL: readers never wait for the writer, and a commit is an append, not a rewrite.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
    # A file, not shared-cache memory: tests run workers and threads on their own connections.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# In the database, shared by every web process: allauth counts login attempts in the cache, and a
# per-process cache would let each Daphne count its own. Not in Redis: clearing it would flush the
# broker's and the channel layer's keys with it. `make migrate` creates the table (createcachetable).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}}

# Redis: the channel layer and the Celery broker.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
# Daphne processes under `make run` (`manage.py run_web`), each on its own unix socket behind the front
# proxy. One process uses at most one core (its event loop and database thread share the GIL); the
# channel layer and the database carry everything between processes (docs/architecture.md).
WEB_PROCESSES = max(1, int(os.environ.get("WEB_PROCESSES", "2")))
# The workspace hosts (docs/threat-model.md): session 12's VS Code, desktop and previews are served at
# s-12.<WORKSPACE_HOST> on the platform's port, never on the platform's own origin. They must be the same
# site as the platform's pages (the same registrable domain), or browsers that block third-party cookies
# deny the frames storage and VS Code cannot start. Browsers resolve any *.localhost name to loopback, so
# the default serves the platform at inspect.localhost and session 12 at s-12.inspect.localhost; a
# deployment serves e.g. inspect.example.com with WORKSPACE_HOST=workspace.example.com and a wildcard DNS
# name (and certificate) for *.workspace.example.com pointing at the front proxy.
WORKSPACE_HOST = os.environ.get("WORKSPACE_HOST", "inspect.localhost").strip(".").lower()
# HTTPS=1 for a deployment behind TLS (the front proxy or a load balancer before it sets X-Forwarded-Proto).
# The platform's cookies are then Secure and named with the __Host- prefix, which no other host can set: a
# preview's script on a workspace host (the same site) cannot plant a session or CSRF cookie for the platform.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME, CSRF_COOKIE_NAME = "__Host-sessionid", "__Host-csrftoken"
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Browsers then refuse plain http for the site and its workspace hosts (subdomains) for a year.
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True  # only says the site may be listed: listing it takes its owner's own submission
    SECURE_SSL_REDIRECT = True
    # Sandboxes reach the control plane at a plain-http address of their own (SANDBOX_CONTROL_PLANE_URL): their
    # one Django route is not redirected (the model proxy, the branch hand-off and the sockets are ASGI apps).
    SECURE_REDIRECT_EXEMPT = [r"^sessions/api/"]
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CHANNEL_REDIS_HOST = REDIS_URL
else:
    CELERY_BROKER_URL = f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
    CHANNEL_REDIS_HOST = f"unix://{EMBEDDED_REDIS_SOCKET}"

# Pub/sub: a group message is published once and each process hands it to its own sockets in the
# group, where the list-based layer queued a copy per socket and popped each with a round trip
# (50 viewers of a session: 50 pops per event). Nothing is kept for a socket that is not there;
# session events are stored first and clients resume from the log; a prompt sent to a bridge that
# was away is sent again at its hello.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "inspect_site.channel_layer.ReconnectingChannelLayer",
        "CONFIG": {"hosts": [{"address": CHANNEL_REDIS_HOST}]},
    }
}

CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "rebuild-due-images": {"task": "sandboxes.tasks.rebuild_due_images", "schedule": 60.0},
    "reap-sandboxes": {"task": "sandboxes.tasks.reap_sandboxes", "schedule": 30.0},
    "fill-warm-pools": {"task": "sandboxes.tasks.fill_warm_pools", "schedule": 30.0},
    "collect-images": {"task": "sandboxes.tasks.collect_images", "schedule": 600.0},
    "release-idle-sandboxes": {"task": "sessions.tasks.release_idle_sandboxes", "schedule": 60.0},
}
# A session's sandbox is terminated after this long idle (its work is in a snapshot by then).
SESSION_IDLE_TIMEOUT_SECONDS = int(os.environ.get("SESSION_IDLE_TIMEOUT_SECONDS", "600"))
# Then the repo keeps one warm sandbox this long for a follow-up to restore into (0: none).
SESSION_FOLLOW_UP_WARM_SECONDS = int(os.environ.get("SESSION_FOLLOW_UP_WARM_SECONDS", "3600"))

# Sandboxes
SANDBOX_BACKEND = os.environ.get("SANDBOX_BACKEND", "local")


def default_sandbox_root() -> Path:
    """var/sandboxes, unless sandboxes (run as an unprivileged uid under root) could not reach it,
    as in a checkout under /root: then a folder of this checkout's own under /var/lib."""
    root = VAR_DIR / "sandboxes"
    if os.geteuid() != 0 or all(p.stat().st_mode & 0o001 for p in VAR_DIR.parents if p.exists()):
        return root
    checkout = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:10]
    return Path("/var/lib/inspect") / checkout / "sandboxes"


SANDBOX_ROOT = Path(os.environ.get("SANDBOX_ROOT") or default_sandbox_root())
# OpenCode and the bridge's packages for sandboxes (`manage.py install_sandbox_tools`); empty = default.
SANDBOX_TOOLS_DIR = os.environ.get("SANDBOX_TOOLS_DIR", "")
# Every sandbox runs the bridge (and OpenCode); off only where a test exercises sandboxes alone.
SANDBOX_START_BRIDGE = env_bool("SANDBOX_START_BRIDGE", True)
# VS Code (code-server) and the desktop (Xvfb, x11vnc, websockify, Chromium) in every sandbox, run by the bridge.
SANDBOX_WORKSPACE_SERVICES = env_bool("SANDBOX_WORKSPACE_SERVICES", True)
# How long the front proxy (nginx) keeps an answer about who may reach a service and where it is
# (ide/front.py): a removed member or an ended sandbox is refused within this long on its direct path.
FRONT_ROUTE_CACHE_SECONDS = int(os.environ.get("FRONT_ROUTE_CACHE_SECONDS", "3"))
# When the platform runs as root, sandbox processes run as this unprivileged host uid.
SANDBOX_HOST_UID = int(os.environ.get("SANDBOX_HOST_UID", "100000"))
# As root, image builds run as SANDBOX_HOST_UID and each sandbox as a uid of its own above it, one of this many.
SANDBOX_UID_COUNT = int(os.environ.get("SANDBOX_UID_COUNT", "10000"))
# Host paths a local sandbox sees read-only besides its programs and libraries (/usr, /etc, ...), comma-separated.
SANDBOX_EXTRA_HOST_PATHS = [p for p in os.environ.get("SANDBOX_EXTRA_HOST_PATHS", "").split(",") if p.strip()]
SANDBOX_MEMORY_LIMIT_BYTES = int(os.environ.get("SANDBOX_MEMORY_LIMIT_BYTES", str(16 * 1024**3)))
SANDBOX_PROCESS_LIMIT = int(os.environ.get("SANDBOX_PROCESS_LIMIT", "4096"))
# Where a sandbox's bridge and OpenCode reach the control plane (WebSocket, model proxy).
# Where sandboxes reach the control plane: by default the port `make run` serves on (a local sandbox's network
# forwards that one port of the host's loopback to it, sandboxes/backends/local_network.py).
SANDBOX_CONTROL_PLANE_URL = os.environ.get("SANDBOX_CONTROL_PLANE_URL") or \
    f"http://127.0.0.1:{os.environ.get('WEB_PORT') or '8000'}"
SANDBOX_HEARTBEAT_TIMEOUT_SECONDS = int(os.environ.get("SANDBOX_HEARTBEAT_TIMEOUT_SECONDS", "120"))
# A sandbox silent that long whose processes still run is kept (its bridge may be reconnecting after the control
# plane was down) for this long, then saved (a snapshot) and reaped.
SANDBOX_SILENT_GRACE_SECONDS = int(os.environ.get("SANDBOX_SILENT_GRACE_SECONDS", "600"))
# A snapshot still running this long after it began is taken to have died with its worker, and the sandbox goes
# back to work. Keep it well above the longest snapshot (a local one of a large workspace takes seconds).
SANDBOX_SNAPSHOT_TIMEOUT_SECONDS = int(os.environ.get("SANDBOX_SNAPSHOT_TIMEOUT_SECONDS", "900"))
# A worker starting a sandbox or saving its work says so every quarter of this; one silent this long (killed) is
# taken to have died, and the reaper ends its start or sends the sandbox back to work.
SANDBOX_WORKER_SILENCE_SECONDS = int(os.environ.get("SANDBOX_WORKER_SILENCE_SECONDS", "60"))
# When make run stops: save the local sandboxes' work and stop them (the default), or leave them running.
KEEP_SANDBOXES_ON_STOP = env_bool("KEEP_SANDBOXES_ON_STOP", False)
# How many sessions holding a sandbox one person may start and keep at once (0: no limit).
MAX_SANDBOXES_PER_USER = int(os.environ.get("MAX_SANDBOXES_PER_USER", "5"))
SANDBOX_START_TIMEOUT_SECONDS = int(os.environ.get("SANDBOX_START_TIMEOUT_SECONDS", "300"))
IMAGE_BUILD_TIMEOUT_SECONDS = int(os.environ.get("IMAGE_BUILD_TIMEOUT_SECONDS", "3600"))
# With late acks, Redis hands a task to another worker once it has been unacknowledged this long: a task that
# ran longer would run twice. No task may outlive it (the hard limit kills one first); the longest is a build.
CELERY_TASK_TIME_LIMIT = IMAGE_BUILD_TIMEOUT_SECONDS + 900
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 900}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
SITE_ID = 1
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
# Sign-up is closed (docs/accounts.md): the first account is made with `manage.py createsuperuser`, others by
# an admin's invitation, or by anyone whose (verified) address is at one of SIGNUP_EMAIL_DOMAINS.
SIGNUP_EMAIL_DOMAINS = [d.strip().lower().lstrip("@") for d in os.environ.get("SIGNUP_EMAIL_DOMAINS", "").split(",")
                        if d.strip()]
# Or anyone who signs in with GitHub and is an active member of one of these GitHub organisations.
SIGNUP_GITHUB_ORGS = [o.strip().lower() for o in os.environ.get("SIGNUP_GITHUB_ORGS", "").split(",") if o.strip()]
# The GitHub that sign-in and the API calls go to: github.com, or a GitHub Enterprise Server's address.
GITHUB_URL = os.environ.get("GITHUB_URL", "https://github.com").rstrip("/")
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
# An address lets its owner in only once they have shown it is theirs.
ACCOUNT_EMAIL_VERIFICATION = "mandatory" if SIGNUP_EMAIL_DOMAINS else os.environ.get("ACCOUNT_EMAIL_VERIFICATION",
                                                                                      "none")
ACCOUNT_SIGNUP_FIELDS = ["email*" if SIGNUP_EMAIL_DOMAINS else "email", "username*", "password1*", "password2*"]
SOCIALACCOUNT_PROVIDERS = {
    "github": {
        # repo + read:user so the PR can later be opened as the user who asked; read:org to check
        # SIGNUP_GITHUB_ORGS membership.
        "SCOPE": ["read:user", "user:email", "repo", *(["read:org"] if SIGNUP_GITHUB_ORGS else [])],
        "APP": {
            "client_id": os.environ.get("GITHUB_CLIENT_ID", ""),
            "secret": os.environ.get("GITHUB_CLIENT_SECRET", ""),
        },
        **({"GITHUB_URL": GITHUB_URL} if GITHUB_URL not in ("https://github.com", "http://github.com") else {}),
    }
}
# Ask GitHub for the person's verified addresses even where sign-up needs no email: an invitation names one.
SOCIALACCOUNT_QUERY_EMAIL = True
# allauth keeps no token: pulls/ keeps GitHub's, encrypted (pulls/tokens.py).
SOCIALACCOUNT_STORE_TOKENS = False
# Where GitHub's webhooks are checked against (X-Hub-Signature-256); empty: /github/webhook refuses every delivery.
GITHUB_WEBHOOK_SECRET = os.environ.get("GITHUB_WEBHOOK_SECRET", "")
# Optional: pull requests of people without a GitHub connection are opened with this token, "for @person".
GITHUB_BOT_TOKEN = os.environ.get("GITHUB_BOT_TOKEN", "")
# The sessions' branches on the control plane, handed over by their sandboxes (pulls/branches.py).
GIT_BRANCHES_DIR = Path(os.environ.get("GIT_BRANCHES_DIR", VAR_DIR / "git" / "sessions"))
# The largest push a sandbox may hand over (pulls/handoff.py; git's receive.maxInputSize too).
GIT_HANDOFF_MAX_BYTES = int(os.environ.get("GIT_HANDOFF_MAX_BYTES", str(512 * 1024 * 1024)))
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# noVNC's client library and Chart.js (the stats page), from the npm registry (vendor/package.json; `make setup`
# installs them).
STATICFILES_DIRS = [BASE_DIR / "static", ("novnc", BASE_DIR / "vendor" / "node_modules" / "@novnc" / "novnc"),
                    ("chartjs", BASE_DIR / "vendor" / "node_modules" / "chart.js" / "dist")]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# Session artifacts (screenshots). No MEDIA_URL is served: members fetch them through sessions.views.artifact.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Daphne serves no static files itself; WhiteNoise does, straight from the apps' folders.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Model providers and the model proxy (model_providers/, model_proxy/, docs/model-proxy.md) -------------
# Sandboxes never get these keys: their OpenCode calls /model-proxy/<provider>/v1/... with the
# sandbox's token, and the proxy adds the key. Each provider is on when its key (or URL) is set.


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


MODEL_PROVIDERS = []
if os.environ.get("OPENAI_API_KEY"):
    MODEL_PROVIDERS.append({
        "name": "openai", "kind": "openai", "label": "OpenAI",
        "base_url": os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        "api_key": os.environ["OPENAI_API_KEY"],
        "models": env_list("OPENAI_MODELS", "gpt-5,gpt-5-mini"),
    })
if os.environ.get("ANTHROPIC_API_KEY"):
    MODEL_PROVIDERS.append({
        "name": "anthropic", "kind": "anthropic", "label": "Anthropic",
        "base_url": os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
        "api_key": os.environ["ANTHROPIC_API_KEY"],
        "models": env_list("ANTHROPIC_MODELS", "claude-sonnet-4-5,claude-haiku-4-5"),
    })
if os.environ.get("OPENAI_COMPATIBLE_BASE_URL"):  # e.g. a local Ollama: http://127.0.0.1:11434/v1
    MODEL_PROVIDERS.append({
        "name": os.environ.get("OPENAI_COMPATIBLE_NAME") or "local", "kind": "openai",
        "label": os.environ.get("OPENAI_COMPATIBLE_LABEL") or os.environ.get("OPENAI_COMPATIBLE_NAME") or "Local",
        "base_url": os.environ["OPENAI_COMPATIBLE_BASE_URL"],
        "api_key": os.environ.get("OPENAI_COMPATIBLE_API_KEY", ""),
        "models": env_list("OPENAI_COMPATIBLE_MODELS"),
    })
# "providerID/modelID"; empty: the first model of the first provider above.
DEFAULT_MODEL = os.environ.get("DEFAULT_MODEL", "")
MODEL_PROXY_MAX_BODY_BYTES = int(os.environ.get("MODEL_PROXY_MAX_BODY_BYTES", str(20 * 1024**2)))
# Tokens (input and output, as the providers report them) one session may spend on model calls; 0: no limit.
MODEL_TOKEN_BUDGET_PER_SESSION = int(os.environ.get("MODEL_TOKEN_BUDGET_PER_SESSION", str(20_000_000)))
# Longest silence allowed from a provider (before its first byte, or between two chunks).
MODEL_PROXY_READ_TIMEOUT_SECONDS = float(os.environ.get("MODEL_PROXY_READ_TIMEOUT_SECONDS", "600"))
# Dictation (dictation/, docs/voice.md): browsers without speech recognition record the prompt, and the control
# plane has it transcribed by "providerName/model" (an OpenAI-compatible provider above); empty: none.
TRANSCRIPTION_MODEL = os.environ.get("TRANSCRIPTION_MODEL", "").strip()
# The organisation's Chrome extension (docs/extension.md): its id, the one origin its API answers with CORS.
EXTENSION_ID = os.environ.get("EXTENSION_ID", "").strip()
# The largest recording accepted, the longest a browser records, and transcriptions a person may ask a minute.
DICTATION_MAX_AUDIO_BYTES = int(os.environ.get("DICTATION_MAX_AUDIO_BYTES", str(10 * 1024**2)))
DICTATION_MAX_SECONDS = int(os.environ.get("DICTATION_MAX_SECONDS", "120"))
DICTATION_PER_MINUTE = int(os.environ.get("DICTATION_PER_MINUTE", "10"))
# How long the provider may take to transcribe one recording.
DICTATION_TIMEOUT_SECONDS = float(os.environ.get("DICTATION_TIMEOUT_SECONDS", "60"))
# --- end of model providers ------------------------------------------------------------------------
