# The WSGI entry point, as `django-admin startproject` writes it.
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoproj.settings")

import overlap  # noqa: E402  (the tests' concurrency counter, GET /_overlap)

application = overlap.track(get_wsgi_application())
