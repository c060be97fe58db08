# Production-like settings (DEBUG off), no database, no templates directory: only what the views need.
SECRET_KEY = "gcorn-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoproj.urls"
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets TZ process-wide; keep the worker's log timestamps in step with the master's
# Unhandled view errors go to stderr, which is gcorn's error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
