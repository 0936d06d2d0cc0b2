"""The ceiling: a plain Flask JSON endpoint, served by ``gunicorn -c python:backend.gunicorn_conf``.

Whatever the job API answers per second is compared with this, under the same server settings, in
the same run: it is what Flask and gunicorn cost on this machine before any work of ours.
"""
from flask import Flask

app = Flask(__name__)


@app.get("/ping")
def ping():
    return {"status": "ok"}
