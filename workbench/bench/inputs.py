"""The seeded inputs every engine is fed, and the check of its outputs against ONNX Runtime's."""

import numpy as np

from workbench import models, reference


class Inputs:
    def __init__(self, source: models.ModelSource, model, output_names: list[str], config):
        self.source, self.model, self.output_names = source, model, output_names
        self.seed, self.rtol, self.atol = config.seed, config.rtol, config.atol
        self._samples: dict[tuple, dict[str, np.ndarray]] = {}
        self._expected: dict[tuple, list[np.ndarray]] = {}
        self.sizes: dict[str, int] = {}  # the --dims combination being measured (bench/run.py sets it)
        self._reference = None
        # A served request carries one row, or the model's fixed batch when its inputs fix one
        # (a fixed-batch-4 model cannot take a request of one row).
        self.request_rows = models.fixed_batch(model) or 1

    def sample(self, batch: int, seed_offset: int = 0) -> dict[str, np.ndarray]:
        key = (batch, seed_offset, tuple(self.sizes.items()))
        if key not in self._samples:
            self._samples[key] = models.sample_inputs(self.model, batch, self.seed + seed_offset, self.sizes)
        return self._samples[key]

    def check(self, outputs: list[np.ndarray], batch: int) -> dict:
        """Outputs for `sample(batch)` against ONNX Runtime's, which are computed once per batch size."""
        key = (batch, tuple(self.sizes.items()))
        if key not in self._expected:
            self._reference = self._reference or reference.session(self.source.path)
            self._expected[key] = reference.run(self.source.path, self.sample(batch), self._reference)
        results = reference.compare(self.output_names, outputs, self._expected[key], self.rtol, self.atol)
        return {"passed": all(r.passed for r in results), "rtol": self.rtol, "atol": self.atol,
                "outputs": [r.as_dict() for r in results]}

    def check_batches(self, outputs_by_batch: dict) -> dict:
        """Every batch size's check, passed only when all pass."""
        checks = {b: self.check(outputs, b) for b, outputs in outputs_by_batch.items()}
        return {"passed": all(c["passed"] for c in checks.values()),
                "per_batch": {str(b): c for b, c in checks.items()}}
