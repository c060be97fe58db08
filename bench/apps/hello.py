# Hello-world WSGI app for bench/run: the smallest possible app, so the benchmark
# measures the server's own per-request cost (parsing, WSGI call, response, socket handling).
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
