"""A server bench did not start (--url): where it is, and whether it has the model, checked before a
run folder exists. Over REST the v2 metadata route; over gRPC (--protocol grpc with --url host:port,
the form perf_analyzer's -u takes) ModelMetadata, through tritonclient's own gRPC client."""

from urllib.parse import quote

from workbench.errors import WorkbenchError
from workbench.load.grpc_client import GrpcEndpoint


def model_url(url: str, name: str, *rest: str) -> str:
    """A model's v2 URL, its name quoted (a file "my model.onnx" is the model "my model")."""
    return "/".join([url, "v2", "models", quote(name, safe=""), *rest])


def grpc_endpoint(url: str) -> GrpcEndpoint:
    """--url for --protocol grpc: host:port or grpc://host:port ([::1]:8001 for IPv6)."""
    address = url.removeprefix("grpc://").rstrip("/")
    host, colon, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if "://" in address or "/" in address or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkbenchError(f"--protocol grpc takes --url host:port, the server's gRPC port (e.g. localhost:8001; "
                             f"got {url!r})")
    return GrpcEndpoint(host, int(port))


def check_remote_model(url: str, name: str, protocol: str = "rest") -> None:
    """The server at --url answers and has the model; else one line that names the models it has
    (or says how to list them)."""
    if protocol == "grpc":
        return _check_grpc_model(url, name)
    from urllib.error import HTTPError
    from urllib.request import urlopen

    try:
        with urlopen(model_url(url, name), timeout=30):
            return
    except HTTPError as exc:
        if exc.code != 404:  # no metadata route, say: the check request decides
            return
        raise WorkbenchError(f"the server at {url} has no model '{name}' ({_models_there(url, exc.read())}); "
                             "pass --model with one of its models, or serve this one there") from None
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"the check request to {url} failed ({type(exc).__name__}: {exc}); is a server for "
                             f"'{name}' running there?") from None


def _check_grpc_model(url: str, name: str) -> None:
    from tritonclient.grpc import InferenceServerClient, InferenceServerException

    client = InferenceServerClient(grpc_endpoint(url).target)
    try:
        client.get_model_metadata(name, client_timeout=30)
    except InferenceServerException as exc:
        status = str(exc.status())
        if status.endswith("NOT_FOUND"):
            raise WorkbenchError(f"the server at {url} has no model '{name}' ({_grpc_models_there(client)}); "
                                 "pass --model with one of its models, or serve this one there") from None
        if not status.endswith("UNIMPLEMENTED"):  # without the metadata RPC the check request decides
            said = " ".join(str(exc.message()).split())[:300]
            raise WorkbenchError(f"the gRPC check request to {url} failed ({status}: {said}); is a gRPC server "
                                 f"for '{name}' running there (its gRPC port, not its HTTP one)?") from None
    finally:
        client.close()


def _grpc_models_there(client) -> str:
    from tritonclient.grpc import InferenceServerException

    try:
        names = sorted({m.name for m in client.get_model_repository_index(client_timeout=10).models})
    except InferenceServerException:
        return "it does not list its models over gRPC; ask whoever started it which names it serves"
    return f"it has: {', '.join(names)}" if names else "its repository index lists no model"


def _models_there(url: str, not_found: bytes) -> str:
    """What the server says it has: its repository index (Triton's extension), else its 404's words."""
    import json
    from urllib.request import Request, urlopen

    try:
        request = Request(f"{url}/v2/repository/index", data=b"{}", headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=10) as response:
            names = sorted({str(m["name"]) for m in json.loads(response.read())})
        return f"it has: {', '.join(names)}" if names else "its repository index lists no model"
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:
        said = json.loads(not_found).get("error")
    except (ValueError, AttributeError):
        said = None
    if said:
        return "it says: " + " ".join(str(said).split())[:300]
    return (f"it does not list its models; POST {url}/v2/repository/index did not answer, so ask whoever "
            "started it which names it serves")
