"""The run configs that ship with bert-jax: one Python file per config with a `get_config()`
returning an `ml_collections.ConfigDict` (`bert_jax.config.files.load_config`). Installed as the
package `bert_jax.configs` (see setup.py), so `--config NAME` works from a wheel as from a checkout.
"""
