"""workbench: tune, compile, benchmark and serve ONNX models with Apache TVM."""

__version__ = "0.1.0"
