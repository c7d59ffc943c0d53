"""`deploy/kserve.yaml`: the bundle as a KServe InferenceService (serving.kserve.io/v1beta1).

The predictor is a custom container, the image the bundle's Dockerfile builds, listening on 0.0.0.0
inside the pod: HTTP (OIP v2 REST, /metrics) and gRPC (OIP v2, h2c). KServe's Standard (raw
Deployment) mode serves both ports (Knative allows one per container) and scales the replicas with a
HorizontalPodAutoscaler on CPU. Written as plain YAML by `to_yaml` (no YAML library needed at export).
"""

import json
import re

HTTP_PORT = 8080
GRPC_PORT = 8081
BASE_MEMORY_MIB = 768  # Python, numpy, the engines' runtimes and the server, before the model's own bytes
MAX_NAME = 45  # KServe derives longer names (<name>-predictor-...) from it; DNS labels stop at 63
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # read as booleans or null unquoted


def service_name(bundle_name: str) -> str:
    """A DNS-1035 label (lowercase letters, digits, '-', starting with a letter) from the bundle's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", bundle_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}"
    return name[:MAX_NAME].rstrip("-")


def memory_request_mib(manifest: dict) -> int:
    """The runtime's base plus twice the libraries and model (loaded weights and their working copies)."""
    sizes = manifest.get("sizes") or {}
    model_bytes = sum(size for path, size in sizes.items() if path.startswith(("lib/", "model/")))
    return BASE_MEMORY_MIB + -(-2 * model_bytes // (1 << 20))


def _probe(path: str, period_s: int, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": HTTP_PORT}, "periodSeconds": period_s, "timeoutSeconds": 2,
            "failureThreshold": failures}


def _container(manifest: dict, image: str) -> dict:
    memory = memory_request_mib(manifest)
    requests = {"cpu": "2", "memory": f"{memory}Mi"}
    limits = {"memory": f"{2 * memory}Mi"}  # no CPU limit: throttling would show as tail latency
    if manifest.get("device") == "cuda":
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = "1"
    return {"name": "kserve-container", "image": image,
            "ports": [{"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"},
                      {"name": "h2c", "containerPort": GRPC_PORT, "protocol": "TCP"}],
            "resources": {"requests": requests, "limits": limits},
            # the engines load (and the libraries are checked) before the port opens: up to 5 minutes
            "startupProbe": _probe("/v2/health/live", 5, 60),
            "readinessProbe": _probe("/v2/health/ready", 5, 3),
            "livenessProbe": _probe("/v2/health/live", 10, 3)}


def inference_service(manifest: dict, min_replicas: int = 1, max_replicas: int = 4) -> dict:
    """The InferenceService for a bundle's manifest (its "sizes" set the memory request)."""
    name = manifest["name"]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": service_name(name),
                     "labels": {"app.kubernetes.io/name": service_name(name),
                                "app.kubernetes.io/version": str(manifest.get("version", "1"))},
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                     "serving.kserve.io/autoscalerClass": "hpa",
                                     "serving.kserve.io/enable-prometheus-scraping": "true"}},
        "spec": {"predictor": {
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "scaleMetric": "cpu", "scaleTarget": 70,
            "terminationGracePeriodSeconds": 40,  # the server finishes in-flight requests for up to 30 s
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                            "prometheus.io/path": "/metrics"},
            "containers": [_container(manifest, f"{name}:{manifest.get('version', '1')}")],
        }},
    }


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML11_WORDS else json.dumps(key)


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (strings always quoted, so nothing is misread)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return f"{pad}{{}}\n"
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{_key(key)}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{_key(key)}: {to_yaml(item).strip()}\n")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return f"{pad}[]\n"
        return "".join(f"{pad}- {to_yaml(item, indent + 2).lstrip()}" for item in value)
    return f"{pad}{_scalar(value)}\n"


def kserve_yaml(manifest: dict) -> str:
    name = manifest["name"]
    header = (f"# {name} on KServe: an InferenceService whose predictor runs this bundle's Docker image.\n"
              f"#   docker build -t {name}:{manifest.get('version', '1')} . and push it where the cluster pulls from;\n"
              "#   set `image` below to that name, then: kubectl apply -f deploy/kserve.yaml\n"
              f"# HTTP (OIP v2 REST, /metrics) on {HTTP_PORT}, gRPC (OIP v2, h2c) on {GRPC_PORT}; replicas scale\n"
              "# with the pods' CPU (HorizontalPodAutoscaler) between minReplicas and maxReplicas.\n")
    return header + to_yaml(inference_service(manifest))
