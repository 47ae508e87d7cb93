"""Hugging Face Hub names (issue 16): `bert-jax import --from OWNER/NAME`, `--model OWNER/NAME` and
`train.init_from` find the model in the local Hugging Face cache, laid out as `huggingface_hub`
writes it (blobs, snapshot links, refs/main); a path that exists wins over a name; a model the
cache lacks is an error naming the cache; downloading is asked for only when the network is
allowed. `bert-jax export --push-to-hub` uploads the export once it is complete. No test reaches
the network: HF_HUB_OFFLINE=1, every socket connection fails, `HfApi` is replaced."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import jax
import numpy as np
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from bert_jax.cli import main
from bert_jax.config.validation import validate
from bert_jax.convert import hub
from bert_jax.convert.export_directory import MARKER_NAME
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.imported import flatten
from bert_jax.convert.sentence_transformers import export_sentence_transformers
from bert_jax.convert.sources import load_pretrained
from bert_jax.model import SentenceConfig
from bert_jax.training.loop import train_and_evaluate
from tests.support.export_fixtures import perturbed_params
from tests.support.sentence_transformers_models import TEXTS, assert_close, sentence_transformers_encode


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("a test reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def cache_model(cache: Path, repo_id: str, files: Path) -> Path:
    """Puts the files of the directory `files` into the Hugging Face cache `cache` as a download
    of `repo_id` at main: each file a blob named by its hash, linked from the snapshot of a
    commit that refs/main names. Returns the snapshot directory."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for path in sorted(files.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, blob)
            link = snapshot / path.relative_to(files)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def same_params(a, b) -> bool:
    a, b = flatten(jax.device_get(a)), flatten(jax.device_get(b))
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_repo_ids_through_the_cache(tiny, tmp_path, monkeypatch, capsys):
    config, params, _, vocab = tiny
    cache = tmp_path / "hub"
    snapshot = cache_model(cache, "org/tiny-bert", export_to_huggingface(params, config, vocab, True, tmp_path / "a"))
    sentence = SentenceConfig(pooling="cls", normalize=True)
    st_snapshot = cache_model(cache, "org/tiny-st", export_sentence_transformers(params, config, vocab, True,
                                                                                sentence, tmp_path / "b"))

    # bert-jax import --from a name: the cached weights, bit for bit.
    assert main(["import", "--from", "org/tiny-bert", "--output", str(tmp_path / "imported")]) == 0
    imported = load_pretrained(tmp_path / "imported")
    assert same_params(imported.params["bert"], params["bert"])
    assert load_pretrained("org/tiny-bert").source == str(snapshot)

    # --model a name: a sentence-transformers model encodes with its own head (cls, unit length).
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["encode", "--model", "org/tiny-st", "--input", str(texts), "--output", str(tmp_path / "v.npy")]) == 0
    assert_close(np.load(tmp_path / "v.npy"), sentence_transformers_encode(st_snapshot, TEXTS), "--model org/tiny-st")

    # A directory that exists under that name wins over the cache.
    local = tmp_path / "cwd" / "org" / "tiny-bert"
    other = perturbed_params(config, seed=1)
    export_to_huggingface(other, config, vocab, True, local)
    monkeypatch.chdir(tmp_path / "cwd")
    assert same_params(load_pretrained("org/tiny-bert").params["bert"], other["bert"])

    # A name the cache lacks: one line naming the cache, with downloads off.
    capsys.readouterr()
    assert main(["import", "--from", "org/absent", "--output", str(tmp_path / "absent")]) == 2
    error = capsys.readouterr().err
    assert f"org/absent is not a path that exists, nor a Hugging Face model in the local cache {cache}" in error
    assert "downloads are off (HF_HUB_OFFLINE)" in error and not (tmp_path / "absent").exists()


def test_a_name_is_downloaded_when_the_network_is_allowed(tiny, tmp_path, monkeypatch):
    """huggingface_hub is asked for the download (weights in formats we do not read left out)
    only after the cache lacks it, and only without HF_HUB_OFFLINE; a failed download is one
    error naming the cache."""
    config, params, _, vocab = tiny
    exported = export_to_huggingface(params, config, vocab, True, tmp_path / "on-the-hub")
    calls = []

    def fake_snapshot_download(repo_id, *, revision, cache_dir, local_files_only=False, **kwargs):
        calls.append((repo_id, revision, local_files_only, kwargs.get("ignore_patterns")))
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        if repo_id == "org/gone":
            response = SimpleNamespace(headers={}, status_code=404, request=None)
            raise huggingface_hub.errors.RepositoryNotFoundError("404 Repository Not Found", response=response)
        return str(cache_model(Path(cache_dir), repo_id, exported))

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        load_pretrained("org/tiny-bert@v1")
    assert calls == [("org/tiny-bert", "v1", True, None)]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert same_params(load_pretrained("org/tiny-bert").params["bert"], params["bert"])
    assert calls[1:] == [("org/tiny-bert", None, True, None), ("org/tiny-bert", None, False, hub._NOT_READ)]
    with pytest.raises(FileNotFoundError, match=f"nor a Hugging Face model in the local cache {tmp_path / 'hub'}.*"
                       "downloading it failed: 404 Repository Not Found"):
        load_pretrained("org/gone")


def test_init_from_a_repo_id_and_push_to_hub(tiny_trained_model, tiny_run_config, tmp_path, monkeypatch, capsys):
    workdir, export = tiny_trained_model
    snapshot = cache_model(tmp_path / "hub", "org/tiny-trained", export)

    config = tiny_run_config(num_steps=1, log_every=1)
    config.data.eval_files = ""
    config.optimizer.warmup_steps = 0
    config.train.init_from = "org/tiny-trained"
    validate(config, jax.device_count())
    missing = tiny_run_config(num_steps=1)
    missing.train.init_from = "/no/such"
    with pytest.raises(ValueError, match="train.init_from='/no/such' does not exist"):
        validate(missing, jax.device_count())
    with monkeypatch.context() as m:
        initialized_from = []
        m.setattr("bert_jax.convert.sources.load_pretrained",
                  lambda source, *a, **k: initialized_from.append(source) or load_pretrained(source, *a, **k))
        train_and_evaluate(config, tmp_path / "continued")
    assert initialized_from == ["org/tiny-trained"]
    assert load_pretrained("org/tiny-trained").source == str(snapshot)

    # --push-to-hub: one upload, of the finished export (its card, its weights, no marker).
    pushed = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            pushed.append(("create", repo_id, kwargs.get("private")))

        def upload_folder(self, *, repo_id, folder_path, ignore_patterns, **kwargs):
            folder = Path(folder_path)
            marker = json.loads((folder / MARKER_NAME).read_text())
            files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                           if not any(Path(p.relative_to(folder)).match(pattern) for pattern in ignore_patterns))
            pushed.append(("upload", repo_id, marker["complete"], files))
            return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/1")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "pushed"
    assert main(["export", "--workdir", str(workdir), "--output", str(out), "--push-to-hub", "me/tiny"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert pushed == [("create", "me/tiny", None),
                      ("upload", "me/tiny", True, sorted(json.loads((out / MARKER_NAME).read_text())["files"]))]
    assert "README.md" in pushed[1][3] and "model.safetensors" in pushed[1][3]
    # A refused export pushes nothing.
    assert main(["export", "--workdir", str(workdir), "--output", str(out), "--push-to-hub", "me/tiny"]) == 2
    assert len(pushed) == 2
