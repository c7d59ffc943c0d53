"""One bench run: its id and folder, the model under test, and the records it writes."""

import shlex
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from workbench import fingerprint, models, records
from workbench.bench.config import BenchConfig
from workbench.bench.inputs import Inputs
from workbench.console import warn
from workbench.dims import check_dims
from workbench.targets import TargetProfile


class BenchRun:
    def __init__(self, config: BenchConfig, profile: TargetProfile, display):
        from workbench.paths import project_root

        self.profile, self.display = profile, display
        self.source = models.resolve(config.model)
        self.model = models.load(self.source)
        self.inputs_spec = models.spec_dicts(models.input_specs(self.model))
        self.outputs_spec = models.spec_dicts(models.output_specs(self.model))
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_id = f"run-{stamp}-{self.source.name}-{profile.name}"
        self.run_dir = (config.reports_dir or project_root() / "reports") / self.run_id
        self.records: list[dict] = []
        self.build_dir: Path | None = None
        self.batch_sizes = models.batch_sizes(self.model, config.batch_sizes, profile.batch_sizes)
        # --dims in the model's order: `b=2:a=1` is the build of `a=1:b=2`, its records named alike
        self.config = config = replace(config, dims=check_dims(models.input_specs(self.model), config.dims))
        self.model_sha256 = self.source.sha256()
        self.inputs = Inputs(self.source, self.model, [s["name"] for s in self.outputs_spec], config)
        self.common = {"run_id": self.run_id, "model": {"name": self.source.name, "path": str(self.source.path),
                                                        "sha256": self.model_sha256},
                       "target": profile.name, "command": shlex.join(["workbench", *sys.argv[1:]]),
                       "provenance": fingerprint.provenance()}

    def save(self, engine: str, scenario: dict, settings: dict, correctness: dict | None, result: dict | None,
             status: str = "ok", note: str | None = None) -> dict:
        if self.inputs.sizes:  # a --dims combination: part of what the scenario measured, and of its file name
            scenario = {**scenario, "dims": dict(self.inputs.sizes)}
        record = {**self.common, "engine": engine, "scenario": scenario, "settings": settings,
                  "correctness": correctness, "result": result, "status": status, "note": note}
        records.write_record(self.run_dir, record)
        self.records.append(record)
        if result and result.get("generator_cpu", 0) > records.GENERATOR_SATURATED:
            warn(f"{engine}: the load generator used {result['generator_cpu']:.0%} of a core; "
                 "it may be the bottleneck, so this throughput is a lower bound")
        return record
