"""Config files: loading `configs/<name>.py` (or any path), `--set section.field=value`
overrides, and the `config.json` a run writes beside its checkpoints.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections

from input_pipeline.shards.tfrecord import write_atomically


def _config_dir() -> Path:
    """`configs/` beside the package in a source checkout (an editable install, PYTHONPATH), else
    the copy installed inside the package as `bert_jax.configs` (a wheel; see setup.py)."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "configs"
    return checkout if (checkout / "cpu_demo.py").is_file() else package / "configs"


CONFIG_DIR = _config_dir()


def config_names() -> list[str]:
    """The configs that ship with bert-jax, by name (`configs/*.py` but the package's __init__)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Loads `configs/<name>.py` (or any path to a config file) and applies `key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.py"
    if not path.is_file():
        available = config_names()
        raise FileNotFoundError(f"config {name_or_path!r} not found (looked for {path}); "
                                f"available in {CONFIG_DIR}: {available}.")
    spec = importlib.util.spec_from_file_location(f"bert_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} must define get_config() returning an ml_collections.ConfigDict.")
    config = module.get_config()
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str] | tuple[str, ...]) -> None:
    """Applies `section.field=value` strings; values are Python literals, or strings otherwise."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like section.field=value.")
        *parents, leaf = key.strip().split(".")
        node = config
        for part in parents:
            if part not in node:
                raise ValueError(f"override {item!r}: the config has no section {part!r}.")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"override {item!r}: the config has no field {key!r}; fields of this "
                           f"section: {sorted(node.keys())}.")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if old is not None and isinstance(old, (bool, int, float, str)) and type(value) is not type(old):
            raise ValueError(f"override {item!r}: {key} is a {type(old).__name__}, got {value!r}.")
        node[leaf] = value


def to_json(config: ml_collections.ConfigDict | Mapping[str, Any]) -> str:
    return json.dumps(config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config,
                      indent=2, sort_keys=True)


def save_config(config: ml_collections.ConfigDict | Mapping[str, Any], path: str | os.PathLike) -> None:
    """Writes the config (or its `to_dict()`) as JSON, atomically."""
    write_atomically(path, [(to_json(config) + "\n").encode()])

