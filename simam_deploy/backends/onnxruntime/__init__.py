"""ONNX Runtime backend: the runner (``runner``) and our custom-op library (``library``)."""
