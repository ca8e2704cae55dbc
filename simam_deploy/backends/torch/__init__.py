"""PyTorch backend: the reference runner (``runner``)."""
