# Sleeping WSGI app for bench/run's async-sleep scenario: each request blocks for
# 50 ms in time.sleep(), which a cooperative (async/gevent) worker must turn into a
# yield, so N connections ideally give N / 0.05 requests per second.
import time

DELAY = 0.05
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    time.sleep(DELAY)
    start_response("200 OK", HEADERS)
    return [BODY]
