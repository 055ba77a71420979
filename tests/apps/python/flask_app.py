"""A small Flask app for the framework test (tests/it/frameworks.rs)."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/hello/<name>")
def hello(name):
    return f"hello {name}"


@app.route("/json", methods=["POST"])
def echo_json():
    data = request.get_json()
    return jsonify(received=data, method=request.method)


application = app
