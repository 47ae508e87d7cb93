"""Imports checked against the code that made the weights: Google's own BERT code (in a
subprocess), transformers' PyTorch classes and the MiniLM package; continued pretraining from
imported weights (`train.init_from`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import jax
import numpy as np
import pytest

from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.imported import complete_params, flatten, in_layout, parameter_shapes
from bert_jax.convert.sources import load_pretrained
from bert_jax.convert.workdir_import import import_to_workdir
from bert_jax.model import BertConfig, BertForPreTraining
from tests.support.import_sources import HEADS, init_from_config, write_google_checkpoint


def test_minilm_lacks_the_pretraining_heads_which_are_initialized_and_named(minilm):
    assert sorted(minilm.missing) == HEADS  # a BertModel: the pooler is there, the heads are not
    assert minilm.ignored == []
    described = minilm.describe()
    assert "masked_lm/transform" in described and "next_sentence" in described
    assert "bert/pooler" not in described
    full = flatten(complete_params(minilm))
    shapes = parameter_shapes(minilm.config)
    assert {k: v.shape for k, v in full.items()} == shapes
    imported = flatten(minilm.params)
    assert all(np.array_equal(full[k], v) for k, v in imported.items())


def test_pytorch_bin_of_a_masked_lm_model(tmp_path):
    """No pooler and no NSP head in the file (reported missing); the MLM logits match."""
    import torch
    import transformers

    hf_config = transformers.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        hidden_act="gelu_new", layer_norm_eps=1e-7)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(hf_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf_config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")

    imported = load_pretrained(tmp_path)
    assert imported.config.hidden_act == "gelu_tanh" and imported.config.layer_norm_eps == 1e-7
    assert sorted(imported.missing) == ["bert/pooler/bias", "bert/pooler/kernel",
                                        "next_sentence/bias", "next_sentence/kernel"]
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 300, (2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    ours = BertForPreTraining(imported.config).apply(
        {"params": complete_params(imported)}, ids, mask, np.zeros_like(ids))["mlm_logits"]
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(ids, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[valid], theirs[valid], atol=1e-4, rtol=0)


def test_google_checkpoint_found_by_prefix_and_by_directory(google_checkpoint):
    by_prefix = load_pretrained(str(google_checkpoint / "bert_model.ckpt"))
    by_directory = load_pretrained(google_checkpoint)
    assert by_prefix.source == by_directory.source
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(by_prefix.params),
                                                      jax.tree.leaves(by_directory.params)))


def test_google_tensors_that_do_not_fit_the_config_are_named(google_checkpoint, tmp_path):
    """A bert_config.json of another hidden size: every tensor that does not fit is named with its
    shape, the attention kernels too (whose reshape into heads fails), not a bare numpy error."""
    copy = tmp_path / "copy"
    shutil.copytree(google_checkpoint, copy)
    config = json.loads((copy / "bert_config.json").read_text())
    (copy / "bert_config.json").write_text(json.dumps(config | {"hidden_size": 60}))
    with pytest.raises(ValueError, match="not a complete BERT of its bert_config.json") as error:
        load_pretrained(copy)
    message = str(error.value)
    assert f"bert/encoder/layer_0/attention/self/query/kernel has shape [64, 64], which does not fit " \
        f"{copy / 'bert_config.json'}" in message
    assert "bert/encoder/layer_1/intermediate/dense/kernel has shape [64, 128]" in message


def test_fill_mask_and_nsp_on_a_google_checkpoint_match_transformers(google_checkpoint, tmp_path):
    """FillMask and NextSentencePredictor loaded straight from the Google checkpoint, against
    `transformers` (the fill-mask pipeline, BertForNextSentencePrediction) on our Hugging Face
    export of it, whose weights are Google's (the tests above): the same predictions, token
    strings and sequences, scores and NSP logits within 1e-4. The export's hidden_act is the
    tanh GELU of bert_config.json's "gelu", so the activation is checked on the way too."""
    import torch
    import transformers

    from bert_jax.inference.fill_mask import FillMask
    from bert_jax.inference.next_sentence import NextSentencePredictor
    from tests.support.inference_texts import MASKED_TEXTS as TEXTS
    from tests.support.pipeline_parity import assert_matches_pipeline

    imported = load_pretrained(google_checkpoint)
    export = export_to_huggingface(imported.params, imported.config, imported.vocab_file,
                                   imported.do_lower_case, tmp_path / "hf")
    assert json.loads((export / "config.json").read_text())["hidden_act"] != "gelu"
    ours = FillMask.load(google_checkpoint)(TEXTS, top_k=5)
    pipeline = transformers.pipeline("fill-mask", model=str(export), top_k=5)
    largest = assert_matches_pipeline(TEXTS, ours, pipeline)

    pairs = [("Return the value of the named attribute.", "The result is the value of that attribute."),
             ("Open the file and return a stream.", "Return a new list containing all items."),
             ("Short.", "x")]
    predictor = NextSentencePredictor.load(google_checkpoint)
    logits, probabilities = predictor.logits(pairs), predictor(pairs)
    tokenizer = transformers.BertTokenizer.from_pretrained(export)
    inputs = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    model = transformers.BertForNextSentencePrediction.from_pretrained(export).eval()
    with torch.no_grad():
        theirs = model(**inputs).logits.numpy()
    print(f"Google checkpoint: fill-mask max |score difference| {largest:.2e}, NSP max |logit "
          f"difference| {np.abs(logits - theirs).max():.2e}")
    np.testing.assert_allclose(logits, theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.tensor(theirs), -1)[:, 0].numpy(),
                               atol=1e-4, rtol=0)


def _differences_from_googles_outputs(imported, reference) -> dict[str, float]:
    """Max abs differences of our model on the imported weights from Google's code's outputs."""
    inputs = [reference[k] for k in ("input_ids", "input_mask", "segment_ids")]
    model = BertForPreTraining(imported.config)
    sequence, pooled = model.apply({"params": imported.params}, *inputs, method=lambda m, *a: m.bert(*a))
    outputs = model.apply({"params": imported.params}, *inputs, reference["masked_lm_positions"])
    valid = reference["input_mask"].astype(bool)
    differences = {
        "sequence_output": np.abs(np.asarray(sequence)[valid] - reference["sequence_output"][valid]).max(),
        "pooled_output": np.abs(np.asarray(pooled) - reference["pooled_output"]).max(),
        "mlm_log_probs": np.abs(jax.nn.log_softmax(outputs["mlm_logits"]) - reference["mlm_log_probs"]).max(),
        "nsp_log_probs": np.abs(jax.nn.log_softmax(outputs["nsp_logits"]) - reference["nsp_log_probs"]).max(),
    }
    return {k: float(v) for k, v in differences.items()}


def test_google_checkpoint_outputs_match_googles_code(google_checkpoint):
    reference = np.load(google_checkpoint / "reference.npz")
    imported = load_pretrained(google_checkpoint)
    assert imported.kind == "Google TensorFlow" and imported.missing == [] and imported.ignored == []
    assert imported.config.hidden_act == "gelu_tanh"  # bert_config.json's "gelu" is the tanh form
    assert imported.do_lower_case  # the vocab is uncased
    differences = _differences_from_googles_outputs(imported, reference)
    print("Google checkpoint, max abs diff:", {k: f"{v:.3g}" for k, v in differences.items()})
    assert all(v <= 1e-5 for v in differences.values()), differences


def test_google_training_checkpoint_skips_the_optimizer_slots(google_checkpoint, tmp_path_factory,
                                                             tiny_corpus, tiny_run_config):
    """A checkpoint as run_pretraining.py saves one, with Adam's adam_m/adam_v slot of every
    parameter and global_step (made by Google's optimization.create_optimizer): they are not
    parameters and are skipped without a word (not listed as unused tensors); the parameters are
    those of the same model saved without them, bit for bit, and the outputs Google's code's."""
    training = write_google_checkpoint(tmp_path_factory.mktemp("google_training"), tiny_corpus,
                                        tiny_run_config, "--optimizer-slots")
    saved = json.loads(str(np.load(training / "reference.npz")["variables"]))
    model_variables = json.loads(str(np.load(google_checkpoint / "reference.npz")["variables"]))
    slots = {f"{name}/{slot}" for name in model_variables for slot in ("adam_m", "adam_v")}
    assert set(saved) == set(model_variables) | slots | {"global_step"}

    imported, plain = load_pretrained(training), load_pretrained(google_checkpoint)
    assert imported.missing == [] and imported.ignored == []
    assert "not used" not in imported.describe()
    assert imported.config == plain.config
    ours, theirs = flatten(imported.params), flatten(plain.params)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    differences = _differences_from_googles_outputs(imported, np.load(training / "reference.npz"))
    assert all(v <= 1e-5 for v in differences.values()), differences


@pytest.fixture(scope="module")
def google_sources(google_checkpoint, tmp_path_factory):
    """The Google checkpoint as each kind of source: itself, its Hugging Face export, and the
    bert-jax work directory `bert-jax import` makes of it."""
    from bert_jax.cli import main

    root = tmp_path_factory.mktemp("sources")
    assert main(["import", "--from", str(google_checkpoint), "--output", str(root / "workdir")]) == 0
    imported = load_pretrained(google_checkpoint)
    export_to_huggingface(imported.params, imported.config, imported.vocab_file,
                          imported.do_lower_case, root / "hf")
    return {"google": google_checkpoint, "huggingface": root / "hf", "bert-jax": root / "workdir"}


@pytest.mark.parametrize("kind", ["google", "huggingface", "bert-jax"])
def test_init_from_puts_the_imported_weights_into_the_fresh_state(
        google_sources, google_checkpoint, tiny_run_config, tmp_path, caplog, kind):
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.training.phases import PhasedShards
    from bert_jax.training.resume import resume
    from tests.support.pretraining_parts import pretraining_parts

    config = init_from_config(tiny_run_config, google_sources[kind])
    assert config.model.scan_layers  # the stacked layout, filled from per-layer weights
    parts = pretraining_parts(config)
    shardings = parts.shardings
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        step, state, _ = resume(checkpointer, parts.run, parts.objective.init_params, PhasedShards(parts.data),
                                parts.optimizer, shardings)
    checkpointer.close()
    assert step == 0
    expected = flatten(in_layout(load_pretrained(google_checkpoint).params, parts.run.model))
    got = flatten(jax.device_get(state.params))
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert all(leaf.sharding == target for leaf, target in
               zip(jax.tree.leaves(state.params), jax.tree.leaves(shardings.params)))
    assert any("train.init_from: initialized from" in r.getMessage() and "nothing freshly initialized"
               in r.getMessage() for r in caplog.records)


def test_init_from_minilm_reports_the_fresh_heads(minilm_dir, tiny_run_config, tmp_path, caplog):
    """The real model in the scanned layout; its missing MLM and NSP heads keep the fresh state's
    values, and the log line says so."""
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.training.phases import PhasedShards
    from bert_jax.training.resume import resume
    from tests.support.pretraining_parts import pretraining_parts

    config = tiny_run_config(num_steps=2)
    config.model.update({**dataclasses.asdict(load_pretrained(minilm_dir).config), "scan_layers": True})
    config.train.init_from = str(minilm_dir)
    parts = pretraining_parts(config)
    fresh = flatten(jax.device_get(parts.fresh_state().params))
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        _, state, _ = resume(checkpointer, parts.run, parts.objective.init_params, PhasedShards(parts.data),
                             parts.optimizer, parts.shardings)
    checkpointer.close()
    got = flatten(jax.device_get(state.params))
    assert all(np.array_equal(got[k], fresh[k]) for k in HEADS)
    assert not np.array_equal(got["bert/pooler/kernel"], fresh["bert/pooler/kernel"])
    message = next(r.getMessage() for r in caplog.records if "train.init_from" in r.getMessage())
    assert "freshly initialized (not in the source): masked_lm/transform" in message


def test_init_from_minilm_trains_its_fresh_heads(minilm, minilm_dir, tiny_corpus, tiny_run_config, tmp_path):
    """Two pretraining steps from the head-less MiniLM, on shards made with its vocab: the loss is
    finite, the encoder moved a little from the imported weights, and the heads it lacked moved a
    little from the fresh initialization they were given."""
    from bert_jax.state.trained_params import load_trained_params
    from bert_jax.training.loop import train_and_evaluate
    from tests.support.pretraining_parts import pretraining_parts
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    shards = tmp_path / "shards"
    create_pretraining_data([tiny_corpus["held_out_text"]], minilm.vocab_file, shards, CreationConfig(
        max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=1))
    config = tiny_run_config(num_steps=2, log_every=1)
    config.model.update({**dataclasses.asdict(minilm.config), "scan_layers": True})
    config.data.update({"train_files": str(shards), "eval_files": "", "vocab_file": minilm.vocab_file,
                        "max_seq_length": 32, "max_predictions_per_seq": 5})
    config.optimizer.warmup_steps = 1
    config.train.global_batch_size = 4
    config.train.init_from = str(minilm_dir)
    parts = pretraining_parts(config)
    fresh = flatten(jax.device_get(parts.fresh_state().params))

    results = train_and_evaluate(config, tmp_path / "run")
    assert np.isfinite(results["train_loss"])
    params, _, step = load_trained_params(tmp_path / "run")
    assert step == 2
    trained = flatten(jax.device_get(params))
    imported = flatten(in_layout(minilm.params, parts.run.model))
    assert trained.keys() == fresh.keys() and set(imported) == trained.keys() - set(HEADS)

    def moved(start: dict, keys) -> float:
        return max(float(np.abs(trained[k] - start[k]).max()) for k in keys)

    # Two small steps (learning rate 0.002) from each starting point, not from another one.
    assert 0 < moved(imported, imported) < 0.05
    assert 0 < moved(fresh, HEADS) < 0.05
    assert all(not np.array_equal(trained[k], fresh[k]) for k in HEADS)


def test_init_from_trains_on_the_tiny_corpus(google_checkpoint, tiny_run_config, tmp_path):
    """Two pretraining steps from the Google checkpoint (built with the tiny corpus's vocab)."""
    from bert_jax.state.trained_params import load_trained_params
    from bert_jax.training.loop import train_and_evaluate

    results = train_and_evaluate(init_from_config(tiny_run_config, google_checkpoint), tmp_path)
    assert np.isfinite(results["train_loss"])
    params, _, step = load_trained_params(tmp_path)
    assert step == 2
    start = flatten(in_layout(load_pretrained(google_checkpoint).params, BertConfig(
        **{**dataclasses.asdict(load_pretrained(google_checkpoint).config), "scan_layers": True})))
    trained = flatten(jax.device_get(params))
    # Two small steps away from the imported weights, not from a random initialization.
    change = max(float(np.abs(trained[k] - start[k]).max()) for k in start)
    assert 0 < change < 0.05


def test_init_from_refuses_a_model_of_another_shape(google_checkpoint, tiny_run_config, tmp_path):
    from bert_jax.training.loop import train_and_evaluate

    config = init_from_config(tiny_run_config, google_checkpoint, model__intermediate_size=256,
                               model__hidden_act="gelu")
    with pytest.raises(ValueError) as error:
        train_and_evaluate(config, tmp_path)
    assert "model.intermediate_size: 256, the checkpoint's is 128" in str(error.value)
    assert "model.hidden_act: 'gelu', the checkpoint's is 'gelu_tanh'" in str(error.value)


def test_cli_import_then_export_gives_back_the_minilm_tensors(minilm_dir, tmp_path, capsys):
    from safetensors.numpy import load_file

    from bert_jax.cli import main

    workdir, export = tmp_path / "workdir", tmp_path / "hf"
    assert main(["import", "--from", str(minilm_dir), "--output", str(workdir)]) == 0
    assert "train.init_from=" in capsys.readouterr().out
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 384 and saved["data"]["vocab_file"] == str(workdir / "vocab.txt")
    # As a BertForPreTraining: by default a sentence-transformers source exports as one again
    # (its pooling and Normalize kept; tests/integration/test_sentence_transformers_workdir.py).
    assert main(["export", "--workdir", str(workdir), "--output", str(export), "--no-sentence-transformers"]) == 0
    source, exported = load_file(str(minilm_dir / "model.safetensors")), load_file(str(export / "model.safetensors"))
    for name, value in source.items():
        if name != "embeddings.position_ids":
            assert np.array_equal(exported["bert." + name], value), name
    assert {"cls.predictions.transform.dense.weight", "cls.seq_relationship.weight"} <= exported.keys()
    assert (export / "vocab.txt").read_bytes() == (minilm_dir / "vocab.txt").read_bytes()
    # An existing directory is never overwritten.
    assert main(["import", "--from", str(minilm_dir), "--output", str(workdir)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_import_to_workdir_leaves_a_directory_that_appeared_meanwhile_alone(minilm_dir, tmp_path, monkeypatch):
    """A work directory made while the import was writing (a `pretrain` started there, holding its
    lock): the import stops naming it, leaves it as it is and leaves no temporary directory."""
    import bert_jax.convert.workdir_import as workdir_import

    target = tmp_path / "w"
    write = workdir_import._write_workdir

    def meanwhile(*args, **kwargs):
        write(*args, **kwargs)
        target.mkdir()
        (target / "run.lock").write_text("another run's")

    monkeypatch.setattr(workdir_import, "_write_workdir", meanwhile)
    with pytest.raises(FileExistsError, match=f"{target} appeared while importing"):
        import_to_workdir(minilm_dir, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
    assert [p.name for p in target.iterdir()] == ["run.lock"]


def test_pretrain_takes_the_shape_of_its_init_from_checkpoint_unless_set(minilm_dir, capsys, caplog):
    """`bert-jax pretrain` with `train.init_from`: the model's shape and function come from the
    checkpoint (MiniLM: 6 layers of 384, vocab 30,522), as `from_pretrained` takes them, except a
    field given with --set, which is kept (and checked against the checkpoint at the import)."""
    from bert_jax.cli import main

    def effective_model(*overrides: str) -> dict:
        sets = [item for value in (f"train.init_from={minilm_dir}", *overrides) for item in ("--set", value)]
        assert main(["pretrain", "--config", "cpu_demo", *sets, "--print-config"]) == 0
        return json.loads(capsys.readouterr().out)["model"]

    with caplog.at_level(logging.INFO, logger="bert_jax"):
        model = effective_model()
    assert (model["num_layers"], model["hidden_size"], model["num_heads"], model["intermediate_size"],
            model["vocab_size"], model["hidden_act"]) == (6, 384, 12, 1536, 30522, "gelu")
    assert "from train.init_from: model.num_layers: 2 -> 6" in caplog.text
    model = effective_model("model.num_layers=3")
    assert model["num_layers"] == 3 and model["hidden_size"] == 384
