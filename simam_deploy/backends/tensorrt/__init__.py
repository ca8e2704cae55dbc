"""Everything TensorRT, in one home: runtime probing, the plugin library, the engine builder, the runner.

``import simam_deploy.backends.tensorrt`` needs no TensorRT: the modules import it only when a function
asks for it (``import_runtime``). The runner (which needs torch with CUDA) is imported lazily.
"""

from __future__ import annotations

from typing import Any

from simam_deploy.backends import ENGINE_SUFFIXES, Backend, Capabilities
from simam_deploy.backends.tensorrt.builder import (
    PRECISIONS,
    BuildOptions,
    BuildReport,
    build_engine,
    count_simam_layers,
    parse_dims,
    parse_shapes,
)
from simam_deploy.backends.tensorrt.plugin import (
    PLUGIN_ENV,
    PLUGIN_LIBRARY_NAME,
    PLUGIN_NAME,
    PLUGIN_VERSION,
    PluginLibrary,
    find_plugin_library,
    load_plugin_library,
    parse_plugin_info,
    register_plugin,
)
from simam_deploy.backends.tensorrt.runtime import (
    RUNTIME_CHOICES,
    RUNTIMES,
    Runtime,
    import_runtime,
    rtx_parser_link,
)

BACKEND = Backend(
    name="tensorrt",
    label="TensorRT",
    capabilities=Capabilities(
        precisions=PRECISIONS,
        devices=("cuda",),
        dynamic_shapes=True,  # within the engine's optimization profile
        custom_op="the SimAM plugin (libsimam_trt_plugin.so, IPluginV3 / IPluginV2DynamicExt)",
    ),
    suffixes=ENGINE_SUFFIXES,
    runner="simam_deploy.backends.tensorrt.runner:TensorRTRunner",
    library="simam_deploy.backends.tensorrt.plugin:find_plugin_library",
    probe="simam_deploy.backends.tensorrt.probe:engine_probe",
)

__all__ = [
    "BACKEND",
    "PLUGIN_ENV",
    "PLUGIN_LIBRARY_NAME",
    "PLUGIN_NAME",
    "PLUGIN_VERSION",
    "PRECISIONS",
    "RUNTIMES",
    "RUNTIME_CHOICES",
    "BuildOptions",
    "BuildReport",
    "PluginLibrary",
    "Runtime",
    "TensorRTRunner",
    "build_engine",
    "count_simam_layers",
    "find_plugin_library",
    "import_runtime",
    "load_plugin_library",
    "parse_dims",
    "parse_plugin_info",
    "parse_shapes",
    "register_plugin",
    "rtx_parser_link",
]


def __getattr__(name: str) -> Any:
    if name == "TensorRTRunner":
        from simam_deploy.backends.tensorrt.runner import TensorRTRunner

        return TensorRTRunner
    raise AttributeError(name)
