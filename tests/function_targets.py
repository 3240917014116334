"""The targets ``functions/main.py`` defines, found the way functions-framework finds them.

A target is a module-level function registered by one of functions-framework's
decorators (``functions_framework.http``/``cloud_event`` or their ``aio`` forms) under
its own name: what ``functions-framework --target NAME`` and the Cloud Functions
runtime (``entry_point``) look up. Reading the module rather than its syntax keeps this
true however the targets are written (``def``, ``async def`` or a factory).
"""

from __future__ import annotations

import importlib.util
import types
import uuid
from pathlib import Path

from functions_framework import _function_registry

MAIN = Path(__file__).resolve().parents[1] / "functions" / "main.py"


def targets(source: Path = MAIN) -> dict[str, str]:
    """``{name: signature type}`` (``http``, ``cloudevent``, …) of every target in ``source``."""
    name = f"_vettra_targets_{uuid.uuid4().hex}"  # a fresh module: no earlier import answers
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None, source
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {}
    for attr, value in vars(module).items():
        if (
            isinstance(value, types.FunctionType)
            and value.__module__ == name  # defined here, not imported
            and value.__name__ == attr  # registered under the name the runtime looks up
            and attr in _function_registry.REGISTRY_MAP
        ):
            found[attr] = _function_registry.REGISTRY_MAP[attr]
    return found
