"""The baseline the field warns about: Flask, one ONNX Runtime session, one model call per request.

Not a straw man: ONNX Runtime gets the same settings as our onnxruntime engine and the request
format is the same v2 JSON, so the only differences are the ones a naive deployment has: Flask's
threaded development server, JSON via the standard library, no batching.
Run: `python -m workbench.serving.naive_flask MODEL.onnx PORT [HOST]`.
"""

import sys
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request

from workbench.engines.onnxruntime_engine import onnxruntime_engine
from workbench.serving.protocol import DATATYPE_OF, DATATYPES


def create_app(model_path: str) -> Flask:
    engine = onnxruntime_engine(Path(model_path))
    app = Flask("flask-naive")

    @app.get("/v2/health/ready")
    def ready():
        return jsonify({"ready": True})

    @app.post("/v2/models/<name>/infer")
    def infer(name):
        body = request.get_json()
        feeds = {t["name"]: np.asarray(t["data"], dtype=DATATYPES[t["datatype"]]).reshape(t["shape"])
                 for t in body["inputs"]}
        outputs = engine(feeds)
        return jsonify({"model_name": name, "outputs": [
            {"name": n, "datatype": DATATYPE_OF[str(o.dtype)], "shape": list(o.shape), "data": o.ravel().tolist()}
            for n, o in zip(engine.output_names, outputs)]})

    return app


if __name__ == "__main__":
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    create_app(sys.argv[1]).run(host=host, port=int(sys.argv[2]), threaded=True)
