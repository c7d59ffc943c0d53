"""What REST's request decoding costs per request (docs/BENCHMARKS.md, #33 item 5): mlp's binary
request through decode_infer (every header parsed and checked) and through RequestDecoder with the
header remembered, best of 5 x 20,000 calls, three times.

    .venv/bin/python scripts/decode_cost.py
"""

import timeit

from workbench import models
from workbench.serving.protocol import RequestDecoder, decode_infer, encode_binary_request, tensor_metas

model = models.load(models.resolve("mlp"))
inputs = models.spec_dicts(models.input_specs(model))
specs = tensor_metas(inputs, inputs)
outputs = tensor_metas(models.spec_dicts(models.output_specs(model)), inputs)
body, headers = encode_binary_request(models.sample_inputs(model, 1))
length = int(headers["Inference-Header-Content-Length"])
decoder = RequestDecoder(specs, outputs)
for _ in range(3):
    full = min(timeit.repeat(lambda: decode_infer(body, length, specs, outputs), number=20000, repeat=5)) / 20000
    remembered = min(timeit.repeat(lambda: decoder(body, length), number=20000, repeat=5)) / 20000
    print(f"decode_infer {full * 1e6:.2f} us, RequestDecoder (header remembered) {remembered * 1e6:.2f} us")
