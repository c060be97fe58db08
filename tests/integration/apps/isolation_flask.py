# Flask request-local state under the async worker: each request keeps its own `request` and `g` across a
# cooperative sleep while other requests run.
import time

from flask import Flask, g, jsonify, request

import overlap

flask_app = Flask(__name__)
app = overlap.track(flask_app)  # GET /_overlap: how many requests ran at once


@flask_app.route("/iso")
def iso():
    g.value = request.args["v"]
    time.sleep(0.2)
    return jsonify(arg=request.args["v"], g=g.value)
