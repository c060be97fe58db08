# Hello world in Flask (Debian's python3-flask) for bench/run's two-core-flask scenario: what a
# small framework adds per request on top of the server.
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"
