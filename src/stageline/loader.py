"""Loading pipelines from a Python file, a `module:attribute`, or a YAML/JSON config."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stageline.domain.config import PipelineConfig
from stageline.domain.graph import GraphError
from stageline.sdk.pipeline import Pipeline


class LoadError(Exception):
    """FILE does not define pipelines we can load; the message says why."""


def load(target: str) -> list[Pipeline]:
    """Every pipeline defined by `target`."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json"):
        return load_config_file(path)
    if path.suffix == ".py" or path.exists():
        module = _import_file(path)
        return _pipelines_in(vars(module), target)
    if ":" in target:
        module_name, _, attr = target.partition(":")
        module = _import_module(module_name)
        value = getattr(module, attr, None)
        if value is None:
            raise LoadError(f"{module_name} has no attribute {attr!r}")
        return _pipelines_in({attr: value}, target)
    raise LoadError(f"{target}: no such file (expected a .py, .yaml or .json file, "
                    "or module:attribute)")


def load_config_file(path: Path) -> list[Pipeline]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise LoadError(f"{path}: {exc.strerror or exc}") from exc
    import yaml  # here, not at start-up: every CLI command imports this module

    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise LoadError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    docs = data.get("pipelines", [data]) if isinstance(data, dict) else data
    if not isinstance(docs, list) or not docs:
        raise LoadError(f"{path}: expected a pipeline config or a 'pipelines' list")
    return [Pipeline.from_config(parse_config(doc, str(path))) for doc in docs]


def parse_config(doc: Any, origin: str) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(doc)
    except GraphError as exc:
        raise LoadError(f"{origin}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LoadError(f"{origin}: {where}: {first['msg']}") from exc


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    name = f"stageline_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except GraphError as exc:
        raise LoadError(f"{path}: {exc}") from exc
    except Exception as exc:
        raise LoadError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LoadError(f"cannot import {name}: {exc}") from exc


def _pipelines_in(namespace: dict[str, Any], origin: str) -> list[Pipeline]:
    found = [v for v in namespace.values() if isinstance(v, Pipeline)]
    if not found:
        raise LoadError(f"{origin}: defines no stageline.Pipeline")
    names = [p.name for p in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise LoadError(f"{origin}: pipeline names defined twice: {sorted(duplicates)}")
    return found
