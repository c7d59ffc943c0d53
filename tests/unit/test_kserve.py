"""deploy/kserve.yaml, validated against KServe's published InferenceService schema (the CRD's
openAPIV3Schema, tests/fixtures/kserve) with unknown fields refused, as a strict API server would."""

import copy
import gzip
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import VALID_BUNDLE_MANIFEST
from workbench.bundle import kserve

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "kserve" / "inferenceservice-v1beta1.schema.json.gz"


def _strict(node):
    """Every object that lists its properties takes no others (Kubernetes would prune or refuse them)."""
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@pytest.fixture(scope="module")
def validator():
    schema = _strict(json.loads(gzip.decompress(SCHEMA_FILE.read_bytes())))
    return jsonschema.Draft4Validator(schema)


def _manifest(**over):
    return {**copy.deepcopy(VALID_BUNDLE_MANIFEST), "name": "squeezenet1.1-host", **over}


def test_the_manifest_round_trips_and_validates(validator):
    service = kserve.inference_service(_manifest())
    loaded = yaml.safe_load(kserve.kserve_yaml(_manifest()))
    assert loaded == service
    validator.validate(loaded)  # raises with the path of the first field KServe's schema refuses
    assert loaded["apiVersion"] == "serving.kserve.io/v1beta1" and loaded["kind"] == "InferenceService"
    assert loaded["metadata"]["name"] == "squeezenet1-1-host"  # a DNS label: no '.'


def test_ports_probes_resources_and_scraping():
    predictor = kserve.inference_service(_manifest())["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["image"] == "squeezenet1.1-host:1"
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http1", 8080), ("h2c", 8081)]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    # 768 MiB base + twice the 30 bytes of lib/ and model/, rounded up to a MiB
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "769Mi"}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert predictor["annotations"]["prometheus.io/path"] == "/metrics"
    assert predictor["minReplicas"] == 1 and predictor["maxReplicas"] > 1 and predictor["scaleMetric"] == "cpu"


def test_a_gpu_bundle_asks_for_a_gpu(validator):
    service = kserve.inference_service(_manifest(device="cuda"))
    assert service["spec"]["predictor"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    validator.validate(yaml.safe_load(kserve.to_yaml(service)))


def test_the_validation_is_not_vacuous(validator):
    service = kserve.inference_service(_manifest())
    service["spec"]["predictor"]["containers"][0]["port"] = 8080  # a typo of "ports"
    with pytest.raises(jsonschema.ValidationError, match="port"):
        validator.validate(service)
    service = kserve.inference_service(_manifest())
    service["spec"]["predictor"]["scaleMetric"] = "latency"
    with pytest.raises(jsonschema.ValidationError, match="latency"):
        validator.validate(service)


@pytest.mark.parametrize("bundle, name", [("mlp-host", "mlp-host"), ("3net_X.host", "m-3net-x-host"),
                                          ("a" * 60, "a" * 45)])
def test_service_names_are_dns_labels(bundle, name):
    assert kserve.service_name(bundle) == name


def test_yaml_quotes_what_yaml_would_misread():
    text = kserve.to_yaml({"on": "yes", "n": "0123", "true": True, "list": [{"a": 1, "b": {"c": []}}], "e": {}})
    assert yaml.safe_load(text) == {"on": "yes", "n": "0123", "true": True, "list": [{"a": 1, "b": {"c": []}}],
                                    "e": {}}
