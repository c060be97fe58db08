# A small Flask app for test_frameworks.py: routes, a form POST, JSON both ways, a 404 page and a streamed view.
# Knows nothing of gcorn.
from flask import Flask, Response, jsonify, request, send_file, stream_with_context

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/hello/<name>")
def hello(name):
    return "Hello, %s! (script_root=%r)" % (name, request.script_root)


@app.route("/form", methods=["POST"])
def form():
    return "name=%s;count=%d" % (request.form["name"], len(request.form.getlist("item")))


@app.route("/json", methods=["POST"])
def echo_json():
    data = request.get_json()
    return jsonify(received=data, method=request.method, scheme=request.scheme, url=request.url)


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    return jsonify(filename=f.filename, size=len(f.read()))


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield "line %d\n" % i
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.errorhandler(404)
def not_found(e):
    return "custom 404: %s" % request.path, 404


@app.route("/boom")
def boom():
    raise RuntimeError("flask view failed")


@app.route("/file")
def file():
    return send_file(request.args["path"], mimetype="application/octet-stream")
