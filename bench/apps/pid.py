# bench/run's hup scenario: answers the worker's PID, so a client can tell when a new worker (one
# started by the HUP) served it.
import os


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
