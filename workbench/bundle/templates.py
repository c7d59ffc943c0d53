"""The text files a bundle carries for whoever deploys it: requirements.txt, Dockerfile, README.md."""

import json

from workbench import __version__
from workbench.bundle.kserve import GRPC_PORT, HTTP_PORT

OPENVINO_REQUIREMENT = "openvino==2026.4.*"  # as pyproject.toml declares it
GRPC_NOTE = f"""
Add `--grpc-port {GRPC_PORT}` to `serve` (the Dockerfile does) for the same protocol over gRPC
(`inference.GRPCInferenceService`, as Triton's clients and KServe speak it, raw binary tensors).
"""


def requirements_txt(pins: list[str]) -> str:
    header = (f"# Serving this bundle needs exactly these (pinned by workbench {__version__} at export).\n"
              "# python -m venv venv && venv/bin/pip install -r requirements.txt\n")
    return header + "\n".join(pins) + "\n"


def dockerfile(name: str, python: str) -> str:
    # 0.0.0.0: inside a container (or a KServe pod) the server must accept connections from outside it
    argv = ["python", "-m", "workbench", "serve", "/bundle", "--host", "0.0.0.0", "--port", str(HTTP_PORT),
            "--grpc-port", str(GRPC_PORT)]
    return f"""# The bundle {name} as a container: docker build -t {name} .
#   docker run -p {HTTP_PORT}:{HTTP_PORT} -p {GRPC_PORT}:{GRPC_PORT} {name}
# HTTP: OIP v2 REST and /metrics on {HTTP_PORT}; gRPC: OIP v2 on {GRPC_PORT}; deploy/kserve.yaml runs it on KServe.
# The libraries are compiled for the CPU (or GPU) named in manifest.json "requires"; the server
# refuses to start on a machine without it. Python {python}: the requirements are pinned for it.
FROM python:{python}-slim
WORKDIR /bundle
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV PYTHONPATH=/bundle/runtime
EXPOSE {HTTP_PORT} {GRPC_PORT}
CMD {json.dumps(argv)}
"""


def _figures(card: dict) -> str:
    if not card.get("run_id"):
        return card["note"] + "\n"
    lines = [f"From bench run `{card['run_id']}` on {card['cpu_model']} (fingerprint {card['fingerprint_id']}):",
             f"`{card['command']}`", "", "| engine | scenario | batch / concurrency | throughput | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|"]
    for row in card["rows"]:
        if row["status"] != "ok":
            continue
        load = row["batch"] if row["scenario"] in ("latency", "offline") else row["concurrency"] or row["rate"]
        throughput = f"{row['throughput']:,.1f} {row['throughput_unit']}" if row["throughput"] is not None else ""
        p50 = f"{row['p50_ms']:.3f}" if row["p50_ms"] is not None else ""
        p99 = f"{row['p99_ms']:.3f}" if row["p99_ms"] is not None else ""
        scenario = f"{row['scenario']} {row['dims']}" if row.get("dims") else row["scenario"]  # "latency seq=128"
        lines.append(f"| {row['engine']} | {scenario} | {load} | {throughput} | {p50} | {p99} |")
    return "\n".join(lines) + "\n"


def _engines(manifest: dict, venv: str) -> str:
    """How to serve with each engine; requirements.txt carries openvino only when the bench found it
    the engine to deploy."""
    if (manifest.get("recommended") or {}).get("engine") == "openvino":
        openvino = "requirements.txt pins it"
    else:
        openvino = f"not in requirements.txt: `{venv}/bin/pip install '{OPENVINO_REQUIREMENT}'`"
    serve = f"PYTHONPATH=runtime {venv}/bin/python -m workbench serve . --port 8080 --engine"
    return f"""`--engine` picks the runtime: `tvm` runs the compiled libraries; `onnxruntime` and `openvino` run
the bundle's ONNX model (`model/`), with the same server and batching:

    {serve} tvm
    {serve} onnxruntime
    {serve} openvino

`--engine openvino` needs OpenVINO ({openvino}); it computes in float32, one thread per
physical core.
"""


def _kserve(tag: str) -> str:
    """How to deploy deploy/kserve.yaml, and how it scales."""
    return f"""## Deploy on KServe

`deploy/kserve.yaml` is a KServe `InferenceService` (serving.kserve.io/v1beta1) whose predictor runs
this bundle's Docker image:

    docker build -t REGISTRY/{tag} . && docker push REGISTRY/{tag}   # REGISTRY: where the cluster pulls from
    # set `image:` in deploy/kserve.yaml (now "{tag}") to REGISTRY/{tag}, then
    kubectl apply -f deploy/kserve.yaml && kubectl get inferenceservice

It runs in KServe's Standard (raw Deployment) mode, which serves both of the container's ports:
HTTP on 8080 (OIP v2 REST and `/metrics`, scraped by Prometheus through the pod annotations) and
gRPC on 8081 (OIP v2, `h2c`). The pod is ready when `/v2/health/ready` answers and restarted when
`/v2/health/live` stops answering; it asks for 2 CPUs and memory for the runtime plus twice the
libraries and model. **Scaling**: one server process per pod, so throughput grows by replicas: a
HorizontalPodAutoscaler adds pods (from `minReplicas` 1 up to `maxReplicas` 4; edit both) when the
pods' CPU passes 70% of their request, and KServe's service spreads requests over the ready ones.
Every node it lands on needs what `manifest.json` "requires" (pin the pods with a `nodeSelector`
on a CPU-feature or GPU label where the cluster's nodes differ).

"""


def _variants_text(manifest: dict) -> tuple[str, str, str]:
    """The key of the library whose sample request.json holds (the smallest), and with --dims their
    sizes and the rule that only the compiled shapes are served."""
    from workbench.dims import describe_dims
    from workbench.manifest import library_variants

    variants = library_variants(manifest)
    dims = describe_dims(manifest.get("dims") or {})
    served = "; ".join(", ".join(f"{name} {shape}" for name, shape in entry["shapes"].items())
                       for entry in manifest["libraries"].values() if "shapes" in entry)
    shapes = (f"Only the compiled shapes are served ({served}); a request of another "
              "shape is answered 400 naming them.\n" if dims else "")
    return min(variants, key=variants.get), dims, shapes


def readme(manifest: dict, card: dict) -> str:
    name, model = manifest["name"], manifest["model"]["name"]
    needs = manifest["requires"]
    python, venv = needs["python"], f"../{name}-venv"
    tag = f"{name}:{manifest.get('version', '1')}"  # the image the Dockerfile builds, as deploy/kserve.yaml names it
    smallest, dims, shapes = _variants_text(manifest)
    hardware = (f"an NVIDIA GPU ({needs['gpu_arch']})" if needs["device"] == "cuda"
                else f"an {needs['machine']} CPU with {', '.join(needs['cpu_flags']) or 'no special ISA'}")
    inputs = "\n".join(f"- `{s['name']}`: {s['dtype']} {s['shape']}" for s in manifest["inputs"])
    outputs = "\n".join(f"- `{s['name']}`: {s['dtype']} {s['shape']}" for s in manifest["outputs"])
    image = (f"\nImage in, top-5 classes out:\n\n    curl -s localhost:8080/predictions/{model} -F data=@kitten.jpg\n"
             if manifest.get("preprocess") else "")
    return f"""# {name}

`{model}` compiled with Apache TVM for target `{manifest['target']}`, batch sizes
{', '.join(map(str, manifest['batch_sizes']))}{dims}, exported by workbench on {manifest['created']}.
It runs on {hardware}; the server refuses other machines with a one-line reason.

## Run it

Python {python} (the requirements are pinned to the versions that exported it), from this folder:

    python{python} -m venv {venv} && {venv}/bin/pip install -r requirements.txt
    PYTHONPATH=runtime {venv}/bin/python -m workbench verify .       # checksums, target, outputs vs ONNX Runtime
    PYTHONPATH=runtime {venv}/bin/python -m workbench serve . --port 8080

or with Docker: `docker build -t {name} . && docker run -p 8080:8080 -p 8081:8081 {name}`. The virtual
environment goes beside this folder, not in it: verification refuses files the manifest does not
list (bytecode caches Python writes for runtime/ are checked against their source instead).

{_engines(manifest, venv)}
The server speaks the Open Inference Protocol v2 (KServe / Triton "v2"):

    curl -s localhost:8080/v2/health/ready
    curl -s localhost:8080/v2/models/{model}
    curl -s -X POST localhost:8080/v2/models/{model}/infer -H 'Content-Type: application/json' -d @request.json
    curl -s localhost:8080/metrics
    curl -s localhost:8080/v2/models/{model}/config                 # Triton's model config (perf_analyzer reads it)
{image}{GRPC_NOTE}
Inputs:
{inputs}

Outputs:
{outputs}

`request.json` holds the inputs of `{manifest['samples'][smallest]}`; the answer matches its outputs.
Requests are batched dynamically up to the largest compiled batch size; a request with more rows
than that is answered 400. A full queue is answered 503 with Retry-After.
{shapes}
{_kserve(tag)}## Performance card

{_figures(card)}
## Contents

`manifest.json` lists every file with its sha256 and size; loading refuses a bundle whose files do not
match. `lib/` holds one library per batch size (weights bound in as constants), `model/` the
source ONNX model, `samples/` seeded inputs with ONNX Runtime's outputs, `runtime/` the workbench
source that serves it, `request.json` an example request.
"""
