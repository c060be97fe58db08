# The example app of the Debian gcorn package (/etc/gcorn/apps-available/example.toml): the smallest WSGI
# app that shows which worker answered and that raw_env reached it. Knows nothing of gcorn.
import os


def application(environ, start_response):
    greeting = os.environ.get("GCORN_EXAMPLE_GREETING", "GCORN_EXAMPLE_GREETING is not set:")
    body = f"{greeting} from worker {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
