"""MMS-style `POST /predictions/<model>`: an image file in, the top-k classes with probabilities out.

Takes the image as a multipart form field (any field; `data` as in the MMS examples) or as the raw
body. Preprocessing comes from the model's stated recipe (resize, centre crop, scale, mean/std,
layout), so a bundle serves exactly what the model was trained on.
"""

import io
from email.parser import BytesParser
from email.policy import default as email_policy
from urllib.parse import parse_qs

import numpy as np
import orjson

from workbench.serving.protocol import RequestError

DEFAULT_TOP_K = 5


def _image_bytes(body: bytes, content_type: str) -> bytes:
    if not content_type.startswith("multipart/form-data"):
        return body
    message = BytesParser(policy=email_policy).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise RequestError(400, "malformed multipart body: no parts found (is the boundary right?)")
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if payload:
            return payload
    raise RequestError(400, "the multipart body has no file in it; send the image as field 'data'")


def preprocess(image_bytes: bytes, recipe: dict) -> np.ndarray:
    """Decode and prepare one image as a batch of one, in the model's layout."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(image_bytes))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise RequestError(400, "the body is not an image Pillow can read (send a JPEG or PNG file)") from None
    image = image.convert("RGB")
    scale = recipe["resize"] / min(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    crop = recipe["crop"]
    left, top = (image.width - crop) // 2, (image.height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    x = np.asarray(image, np.float32) * np.float32(recipe.get("scale", 1 / 255))
    x = (x - np.asarray(recipe["mean"], np.float32)) / np.asarray(recipe["std"], np.float32)
    if recipe.get("layout", "NCHW") == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def top_k(logits: np.ndarray, k: int, labels: list[str] | None) -> list[dict]:
    z = logits.astype(np.float64) - logits.max()
    probs = np.exp(z) / np.exp(z).sum()
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"index": int(i), "class": labels[i] if labels and i < len(labels) else str(int(i)),
             "probability": float(probs[i])} for i in order]


async def handle(app, model, method: str, scope, receive):
    if method != "POST":
        raise RequestError(405, "use POST with an image file")
    recipe = model.extra.get("preprocess")
    if not recipe:
        raise RequestError(400, f"model '{model.name}' is not an image model; use /v2/models/{model.name}/infer")
    query = parse_qs(scope.get("query_string", b"").decode())
    try:
        k = int(query.get("topk", [DEFAULT_TOP_K])[0])
    except ValueError:
        raise RequestError(400, "topk must be an integer") from None
    body = await app.read_body(scope, receive)
    if not body:
        raise RequestError(400, "empty body: send an image file (multipart field 'data' or the raw bytes)")
    content_type = next((v.decode("latin-1") for key, v in scope["headers"] if key == b"content-type"), "")
    x = preprocess(_image_bytes(body, content_type), recipe)
    outputs = await app.run_model(model, {model.inputs[0].name: x}, 1)
    predictions = top_k(outputs[0][0].ravel(), max(1, k), model.extra.get("labels"))
    return 200, orjson.dumps({"model_name": model.name, "predictions": predictions}), {}
