# Test apps that misbehave the ways the arbiter must survive: hang, sleep forever, die, segfault.
import ctypes
import os
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/spin":
        while True:
            pass
    if path == "/sleep-forever":
        time.sleep(3600)
    if path == "/kill9":
        os.kill(os.getpid(), 9)
    if path == "/segfault":
        ctypes.string_at(0)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
