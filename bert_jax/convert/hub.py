"""Hugging Face Hub names as model sources, and exports pushed to the Hub.

`--from`, `--model` and `train.init_from` take a repo id (`google-bert/bert-base-uncased`, or
`NAME@REVISION`) where they take a directory. A path that exists always wins; a name that is none
is looked up in the local Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
`~/.cache/huggingface/hub`) with `huggingface_hub.snapshot_download`, and downloaded into it when
the network is allowed (`HF_HUB_OFFLINE` unset); otherwise the error names the cache it looked in.
The environment is read at each call, not when `huggingface_hub` was imported, so that a test or
a notebook that sets `HF_HUB_OFFLINE=1` never reaches the network.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from bert_jax.config.validation import looks_like_hub_repo_id
from input_pipeline import remote_files

logger = logging.getLogger(__name__)

# Weights in formats we do not read (TensorFlow, Flax, ONNX, Core ML, ...): not downloaded.
_NOT_READ = ["*.h5", "*.msgpack", "*.onnx", "onnx/*", "*.ot", "coreml/*", "openvino/*", "*.tflite", "*.mlmodel"]


def hub_cache_dir() -> Path:
    """The local Hugging Face cache, as `huggingface_hub` would choose it from the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether downloads are off: `HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE` true now (set after
    `huggingface_hub` was imported, its own flag would miss it)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model(source: str | os.PathLike) -> str:
    """`source` itself when it exists (a directory, a file, a Google checkpoint prefix, a
    `gs://` path) or cannot be a repo id; else the directory of the Hugging Face model it names,
    from the local cache or downloaded into it.

    Raises:
      FileNotFoundError: neither a path nor a model in the cache (offline), or not found on the
        Hub; the message names the cache directory.
    """
    source = os.fspath(source)
    if remote_files.exists_or_checkpoint_prefix(source) or not looks_like_hub_repo_id(source):
        return source
    repo_id, _, revision = source.partition("@")
    cache = hub_cache_dir()
    try:
        return snapshot_download(repo_id, revision=revision or None, cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    where = (f"{source} is not a path that exists, nor a Hugging Face model in the local cache {cache} "
             f"(models--{repo_id.replace('/', '--')}, revision {revision or 'main'})")
    if hub_offline():
        raise FileNotFoundError(f"{where}, and downloads are off (HF_HUB_OFFLINE): download it where the "
                                f"network allows (`hf download {repo_id}`, with HF_HUB_CACHE={cache}), or "
                                "give the model's directory.")
    logger.info("downloading %s from the Hugging Face Hub into %s", source, cache)
    try:
        return snapshot_download(repo_id, revision=revision or None, cache_dir=cache, ignore_patterns=_NOT_READ,
                                 library_name="bert-jax")
    except (HfHubHTTPError, OSError) as e:  # not on the Hub, gated, no network
        raise FileNotFoundError(f"{where}, and downloading it failed: {e}".rstrip()
                                + "\nGive the model's directory, or check the name and the network.") from None


def push_to_hub(directory: str | os.PathLike, repo_id: str, *, private: bool | None = None) -> str:
    """Uploads the export in `directory` (all of it but its bert-jax marker and staging
    directories) to the Hub model repository `repo_id`, creating it if needed, in one commit;
    returns the commit's URL. The token is `huggingface_hub`'s (`HF_TOKEN`, `hf auth login`).

    Raises:
      OSError: the upload failed (no token, no network, no rights); the export stays as it is.
    """
    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=os.fspath(directory), repo_type="model",
                                   commit_message="Upload a model exported by bert-jax",
                                   ignore_patterns=[".*", "*/.*"])  # the marker, staging directories
    except OSError as e:  # HfHubHTTPError, LocalTokenNotFoundError, a connection error
        raise OSError(f"the export in {directory} is complete, but pushing it to the Hugging Face Hub "
                      f"repo {repo_id} failed: {e}\nPush it again with `hf upload {repo_id} {directory}`, "
                      "after `hf auth login` if it asked for a token.") from None
    return str(getattr(commit, "commit_url", commit))
