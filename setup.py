"""Everything else is in pyproject.toml. This file exists for one mapping pyproject.toml cannot
express next to package discovery: the top-level `configs/` directory installed as the package
`bert_jax.configs`, so that a wheel (not only an editable install) carries the configs."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["bert_jax*", "input_pipeline*"]), "bert_jax.configs"],
      package_dir={"bert_jax.configs": "configs"})
