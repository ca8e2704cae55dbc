"""ONNX graph tools for SimAM: the node contract, fusing subgraphs into SimAM nodes, unfusing them."""

from simam_deploy.graph.contract import DOMAIN, OP_TYPE, SimamAttributes

__all__ = ["DOMAIN", "OP_TYPE", "SimamAttributes"]
