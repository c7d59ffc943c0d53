"""The only package that imports tvm: import ONNX, tune with MetaSchedule, build, export."""
