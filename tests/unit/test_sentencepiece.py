"""SentencePiece models: training, BERT's special-token layout, and the tokenizer protocol.

References nobody here wrote: the Rust `tokenizers` Unigram and BPE models built by
`transformers` from the same `.model` file (`SpmConverter.build_tokenizer_from_spm_proto`, made to
encode as `SentencePieceProcessor` does), `transformers.AlbertTokenizer`, the model file parsed
with `transformers`' own protobuf schema, and Unicode NFKC from `unicodedata`. Text: the standard
library's docstrings (English) and the bills and constitution that `konlpy` ships (Korean)."""

from __future__ import annotations

import os
import pickle
import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from input_pipeline.instances.masking import MaskingConfig, mask_tokens
from input_pipeline.tokenizers.loading import load_tokenizer
from input_pipeline.tokenizers.sentencepiece_tokenizer import WORD_START, SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import SPECIAL_TOKENS, BertTokenizer
from input_pipeline.vocabulary.sentencepiece import train_sentencepiece, train_sentencepiece_from_files
from tests.support.sentencepiece_corpora import MODEL_TYPES

# Korean has thousands of syllables and the corpus is small (about 2,500 lines), hence the size.
VOCAB_SIZES = {"en": 4000, "ko": 2000}


MAX_UNK_RATE = 0.005


@pytest.fixture(scope="module")
def models(corpora) -> dict[tuple[str, str], SentencePieceTokenizer]:
    """A lower-casing model per language and model type, trained from files."""
    return {(lang, model_type): train_sentencepiece_from_files(
                [corpora[lang]["train"]], corpora["root"] / f"{lang}_{model_type}.model",
                VOCAB_SIZES[lang], model_type=model_type)
            for lang in ("en", "ko") for model_type in MODEL_TYPES}


def _proto(path):
    """The model file parsed with `transformers`' copy of the SentencePiece schema (the one in
    the sentencepiece wheel needs a newer protobuf than TensorFlow allows)."""
    pb = pytest.importorskip("transformers.utils.sentencepiece_model_pb2_new")
    proto = pb.ModelProto()
    proto.ParseFromString(Path(path).read_bytes())
    return proto


def _reference(path):
    """`tokenizers`' own Unigram or BPE model with the file's normalizer, as `transformers`
    builds it from a SentencePiece model."""
    converter = pytest.importorskip("transformers.convert_slow_tokenizer")
    proto = _proto(path)
    if proto.trainer_spec.model_type == 1:  # UNIGRAM
        vocab = [(piece.piece, piece.score) for piece in proto.pieces]
    else:
        vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    return converter.SpmConverter.build_tokenizer_from_spm_proto(proto, vocab), proto


def _assert_same_ids(lines, ours, theirs, proto, what):
    """Ids must be equal, except where a unigram lattice has two best paths: Viterbi tie-breaks
    differ between implementations, so a differing line must spell the same pieces' text with
    the same total score (by the file's scores), and such lines must be rare."""
    scores = [piece.score for piece in proto.pieces]
    pieces = [piece.piece for piece in proto.pieces]
    ties = 0
    for line, a, b in zip(lines, ours, theirs):
        if a == b:
            continue
        assert proto.trainer_spec.model_type == 1, f"{what}: {line!r}: {a} != reference {b}"
        assert "".join(pieces[i] for i in a) == "".join(pieces[i] for i in b), (what, line, a, b)
        assert sum(scores[i] for i in a) == pytest.approx(sum(scores[i] for i in b), abs=1e-4), \
            f"{what}: {line!r}: not a tie: {a} != reference {b}"
        ties += 1
    assert ties <= 0.005 * len(lines), f"{what}: {ties} ties in {len(lines)} lines"


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_special_tokens_are_laid_out_as_bert_expects(models, model_type):
    tok = models[("en", model_type)]
    assert [tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id] == [0, 1, 2, 3, 4]
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert tok.special_ids == frozenset(range(5))
    assert tok.vocab_size == len(tok.vocab) == VOCAB_SIZES["en"]
    assert tok.convert_ids_to_tokens(range(5)) == list(SPECIAL_TOKENS)

    proto = _proto(tok.model_path)
    # In the file: [UNK] is the unknown piece (type 2), the others control symbols (type 3),
    # which SentencePiece never produces from text; the type matches the one trained.
    assert [(p.piece, p.type) for p in proto.pieces[:5]] == [
        ("[PAD]", 3), ("[UNK]", 2), ("[CLS]", 3), ("[SEP]", 3), ("[MASK]", 3)]
    assert (proto.trainer_spec.pad_id, proto.trainer_spec.unk_id) == (0, 1)
    assert proto.trainer_spec.model_type == {"unigram": 1, "bpe": 2}[model_type]
    assert proto.normalizer_spec.name == "nmt_nfkc_cf"
    assert all(p.type == 1 for p in proto.pieces[5:])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_ids_match_tokenizers_from_the_same_model_file(models, corpora, lang, model_type):
    tok = models[(lang, model_type)]
    reference, proto = _reference(tok.model_path)
    lines = corpora[lang]["held_out"]
    ours = [tok.encode(line, split_special_tokens=True) for line in lines]
    theirs = [e.ids for e in reference.encode_batch(lines, add_special_tokens=False)]
    _assert_same_ids(lines, ours, theirs, proto, f"{lang} {model_type}")


def test_ids_match_albert_tokenizer(models, corpora):
    """ALBERT's tokenizer, with its own conventions accounted for: the model file does the
    lower-casing (so `do_lower_case=False`), accents are kept (NFKD would split Hangul), and
    its normalizer writes `` and '' as a double quote, so lines holding those are left out."""
    transformers = pytest.importorskip("transformers")
    tok = models[("en", "unigram")]
    proto = _proto(tok.model_path)
    albert = transformers.AlbertTokenizer(
        vocab=[(p.piece, p.score) for p in proto.pieces], do_lower_case=False, keep_accents=True,
        unk_token="[UNK]", pad_token="[PAD]",
        _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap)
    lines = [line for line in corpora["en"]["held_out"] if "``" not in line and "''" not in line]
    ours = [tok.encode(line) for line in lines]
    theirs = [albert.encode(line, add_special_tokens=False) for line in lines]
    _assert_same_ids(lines, ours, theirs, proto, "AlbertTokenizer")

    # Special tokens typed in prompts are special to both; the text around them starts words.
    prompts = ["The capital of France is [MASK].", "a [MASK][MASK] b", "x[MASK]y", "[MASK]",
               "Return [MASK] if the [MASK] is empty [SEP] then stop", "[CLS] one [SEP] two [SEP]",
               "Unknown [UNK] and padding [PAD]!"]
    for prompt in prompts:
        assert tok.encode(prompt) == albert.encode(prompt, add_special_tokens=False), prompt
    # ALBERT's pair template is BERT's: [CLS] A [SEP] B [SEP].
    a, b = lines[0], lines[1]
    assert albert.encode(a, b) == [tok.cls_id, *tok.encode(a), tok.sep_id, *tok.encode(b), tok.sep_id]


def _normalized(line: str, lowercase: bool) -> str:
    """What SentencePiece's NMT normalization should make of `line`, from `unicodedata`: NFKC
    (then case folding), whitespace runs as one space. The NMT rules keep the full-width tilde,
    which NFKC writes as "~"."""
    text = unicodedata.normalize("NFKC", line.replace("\uff5e", "\0"))
    if lowercase:
        text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.replace("\0", "\uff5e").split())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_decode_inverts_encode(models, corpora, lang, model_type):
    tok = models[(lang, model_type)]
    checked = 0
    for line in corpora[lang]["held_out"]:
        ids = tok.encode(line, split_special_tokens=True)
        if tok.unk_id in ids:
            continue  # The unknown characters are gone.
        assert tok.decode(ids) == _normalized(line, lowercase=True), line
        checked += 1
    assert checked >= 0.95 * len(corpora[lang]["held_out"])
    # Special tokens are written out, or skipped.
    text = {"en": "hello world", "ko": "대한민국 헌법"}[lang]
    ids = [tok.cls_id, *tok.encode(text), tok.mask_id, tok.sep_id, tok.pad_id]
    assert tok.decode(ids) == f"[CLS] {text} [MASK] [SEP] [PAD]"
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(np.array(ids)) == tok.decode(ids)
    with pytest.raises(KeyError, match="outside the vocab"):
        tok.decode([tok.vocab_size])
    with pytest.raises(KeyError, match="outside the vocab"):
        tok.convert_ids_to_tokens([-1])


def test_typed_special_tokens_and_corpus_text(models, corpora):
    tok = models[("en", "unigram")]
    text = "The value is [MASK], not [SEP] or [CLS]."
    ids = tok.encode(text)
    assert [i for i in ids if i in tok.special_ids] == [tok.mask_id, tok.sep_id, tok.cls_id]
    assert tok.decode(ids) == "the value is [MASK] , not [SEP] or [CLS] ."
    # As corpus text, a special token is plain text, and no text ever yields a special id: the
    # control symbols cannot be produced from text.
    plain = tok.encode(text, split_special_tokens=True)
    assert not tok.special_ids & set(plain)
    assert tok.decode(plain) == "the value is [mask], not [sep] or [cls]."
    assert tok.tokenize("[MASK]", split_special_tokens=True) == tok.tokenize("[mask]")
    for line in corpora["en"]["held_out"]:
        assert not (tok.special_ids - {tok.unk_id}) & set(tok.encode(line, split_special_tokens=True))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_is_continuation_marks_pieces_inside_words(models, corpora, model_type):
    tok = models[("ko", model_type)] if model_type == "bpe" else models[("en", model_type)]
    flags = tok.is_continuation
    assert flags.shape == (tok.vocab_size,) and flags.dtype == bool
    pieces = tok.convert_ids_to_tokens(range(tok.vocab_size))
    assert [bool(f) for f in flags[5:]] == [not p.startswith(WORD_START) for p in pieces[5:]]
    assert not flags[[tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id]].any()
    # An unknown character has no "▁" of its own: "a☠b" is "▁a", [UNK], "b", one word.
    assert flags[tok.unk_id]
    ids = tok.encode("a\u2620b")
    assert tok.unk_id in ids and [bool(flags[i]) for i in ids] == [False] + [True] * (len(ids) - 1)

    # Grouping each piece with the continuations after it gives the words of the text.
    lang = "ko" if model_type == "bpe" else "en"
    for line in corpora[lang]["held_out"]:
        ids = tok.encode(line, split_special_tokens=True)
        if tok.unk_id in ids:
            continue
        words: list[list[int]] = []
        for token_id in ids:
            if flags[token_id] and words:
                words[-1].append(token_id)
            else:
                words.append([token_id])
        assert [tok.decode(word) for word in words] == _normalized(line, True).split(" "), line


def test_whole_word_masking_masks_whole_words(models, corpora):
    tok = models[("en", "unigram")]
    config = MaskingConfig.from_tokenizer(tok, whole_word_masking=True, max_predictions_per_seq=40)
    rng = random.Random(0)
    masked_words = 0
    for line in corpora["en"]["held_out"][:300]:
        ids = [tok.cls_id, *tok.encode(line, split_special_tokens=True), tok.sep_id]
        positions = set(mask_tokens(ids, config, rng).masked_lm_positions)
        starts = [i for i in range(1, len(ids) - 1) if not tok.is_continuation[ids[i]]]
        for start, end in zip(starts, starts[1:] + [len(ids) - 1]):
            word = set(range(start, end))
            assert not word & positions or word <= positions, (line, word, positions)
            masked_words += word <= positions and len(word) > 1
    assert masked_words > 50


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_held_out_unknown_rate(models, corpora, lang, model_type):
    tok = models[(lang, model_type)]
    lines = corpora[lang]["held_out"]
    ids = [i for line in lines for i in tok.encode(line, split_special_tokens=True)]
    words = sum(len(line.split()) for line in lines)
    unk_rate = ids.count(tok.unk_id) / len(ids)
    print(f"{lang} {model_type}: {len(ids) / words:.3f} tokens/word, unknown {unk_rate:.4%} "
          f"of {len(ids)} held-out tokens")
    assert unk_rate < MAX_UNK_RATE


def test_byte_fallback_leaves_nothing_unknown(corpora):
    """Korean syllables never seen in training are spelled as UTF-8 bytes, and decode back."""
    path = corpora["root"] / "ko_bytes.model"
    tok = train_sentencepiece_from_files([corpora["ko"]["train"]], path, 2300, model_type="bpe",
                                         byte_fallback=True)
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert tok.convert_ids_to_tokens([5, 260]) == ["<0x00>", "<0xFF>"]
    assert tok.is_continuation[5:261].all()
    unseen = "\ud6e8\ubdc1 \ucad9"  # 훨뷁 쫙: syllables not in the training text.
    assert not set(unseen.replace(" ", "")) & set(Path(corpora["ko"]["train"]).read_text(encoding="utf-8"))
    lines = corpora["ko"]["held_out"] + [unseen]
    reference, proto = _reference(path)
    theirs = [e.ids for e in reference.encode_batch(lines, add_special_tokens=False)]
    ours = [tok.encode(line, split_special_tokens=True) for line in lines]
    _assert_same_ids(lines, ours, theirs, proto, "byte fallback")
    for line, ids in zip(lines, ours):
        assert tok.unk_id not in ids
        assert tok.decode(ids) == _normalized(line, lowercase=True)


def test_lowercasing_is_a_property_of_the_model(corpora, models):
    cased = train_sentencepiece_from_files([corpora["en"]["train"]], corpora["root"] / "cased.model",
                                           4000, lowercase=False)
    assert not cased.do_lower_case and _proto(cased.model_path).normalizer_spec.name == "nmt_nfkc"
    assert any(c.isupper() for p in cased.tokenize("Return True") for c in p)
    assert cased.decode(cased.encode("Return True")) == "Return True"
    uncased = models[("en", "unigram")]
    assert uncased.do_lower_case
    assert uncased.encode("RETURN True") == uncased.encode("return true")
    # A caller's expectation is checked against the model, never silently applied.
    assert SentencePieceTokenizer(cased.model_path, do_lower_case=False).do_lower_case is False
    with pytest.raises(ValueError, match="cased.model: do_lower_case=True, but this SentencePiece "
                                         "model keeps case"):
        SentencePieceTokenizer(cased.model_path, do_lower_case=True)


def test_pickled_tokenizer_encodes_the_same(models, corpora):
    tok = models[("ko", "unigram")]
    copy = pickle.loads(pickle.dumps(tok))
    lines = corpora["ko"]["held_out"][:50]
    assert [copy.encode(line) for line in lines] == [tok.encode(line) for line in lines]
    assert copy.model_path == tok.model_path and np.array_equal(copy.is_continuation, tok.is_continuation)


def test_training_from_texts_equals_training_from_files(corpora, tmp_path):
    lines = Path(corpora["ko"]["train"]).read_text(encoding="utf-8").splitlines()
    from_texts = train_sentencepiece(iter(lines), tmp_path / "texts.model", 1500)
    from_files = train_sentencepiece_from_files([corpora["ko"]["train"]], tmp_path / "files.model", 1500)
    assert Path(from_texts.model_path).read_bytes() == Path(from_files.model_path).read_bytes()


def test_training_errors_name_the_problem(corpora, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond line\nbroken \xff byte\n")
    model = tmp_path / "m.model"
    with pytest.raises(ValueError, match=r"bad\.txt:3: invalid UTF-8"):
        train_sentencepiece_from_files([bad], model, 100)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_sentencepiece_from_files([tmp_path / "missing.txt"], model, 100)
    with pytest.raises(ValueError, match=r"Vocabulary size too high .*Lower vocab_size"):
        train_sentencepiece(["a few words", "and a few more"], model, 5000)
    with pytest.raises(ValueError, match="no text"):
        train_sentencepiece(["", "  "], model, 100)
    # Not "lower vocab_size": no size trains on text of zero-width characters only (issue 17).
    with pytest.raises(ValueError, match="no character to train .* zero-width characters. Give text.$"):
        train_sentencepiece(["\u200b\u200b", "\u200c"], model, 100)
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(["text"], model, 100, model_type="wordpiece")
    with pytest.raises(FileNotFoundError, match="its directory .*no does not exist"):
        train_sentencepiece(["text"], tmp_path / "no" / "m.model", 100)
    with pytest.raises(TypeError, match="train_sentencepiece_from_files"):
        train_sentencepiece([bad], model, 100)
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]  # Nothing written by a failed training.


def test_load_tokenizer_picks_the_tokenizer_for_the_file(models, tmp_path):
    spm_path = models[("en", "bpe")].model_path
    tok = load_tokenizer(spm_path, do_lower_case=True, max_input_chars_per_word=200)
    assert isinstance(tok, SentencePieceTokenizer) and tok.model_path == spm_path
    # A model under another name is recognized by its content (binary, not text).
    renamed = tmp_path / "spiece.bin"
    renamed.write_bytes(Path(spm_path).read_bytes())
    assert isinstance(load_tokenizer(renamed), SentencePieceTokenizer)

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, "hello", "world", "##s"]) + "\n", encoding="utf-8")
    wordpiece = load_tokenizer(vocab, do_lower_case=True, max_input_chars_per_word=200)
    assert isinstance(wordpiece, BertTokenizer)
    assert wordpiece.encode("Hello worlds") == [5, 6, 7]
    assert wordpiece.wordpiece.max_input_chars_per_word == 200


def test_load_tokenizer_errors_name_the_file(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.model"):
        load_tokenizer(tmp_path / "nothing.model")
    with pytest.raises(IsADirectoryError, match="vocab.txt .WordPiece. or its .model"):
        load_tokenizer(tmp_path)
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="garbage.model: not a SentencePiece model"):
        load_tokenizer(garbage)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ValueError, match="(?s)blob.bin: not a SentencePiece model.*not a WordPiece vocab"):
        load_tokenizer(blob)
    text = tmp_path / "corpus.txt"
    text.write_text("just some text\nnot a vocab\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus.txt: the vocab lacks the special tokens"):
        load_tokenizer(text)
    with pytest.raises(ValueError, match=r"tokenizer.json: a JSON file is not a vocab"):
        (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
        load_tokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="do_lower_case=False, but this SentencePiece model lower-cases"):
        load_tokenizer(models[("en", "unigram")].model_path, do_lower_case=False)


def test_models_without_berts_special_pieces_are_refused(tmp_path):
    """A model trained by `spm_train` with its defaults ("<unk>", "<s>", "</s>"), or with [MASK]
    as a user-defined piece (which text would produce), cannot stand in for a BERT vocab."""
    spm = pytest.importorskip("sentencepiece")
    lines = ["some text to train on", "and some more text", "enough for a tiny model"] * 20
    plain = tmp_path / "plain.model"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=25, minloglevel=2)
    with pytest.raises(ValueError, match=r"plain.model: the model lacks the special pieces "
                                         r"\['\[PAD\]', '\[UNK\]'"):
        load_tokenizer(plain)
    user = tmp_path / "user.model"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "user"), vocab_size=25,
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=-1, eos_id=-1,
        control_symbols=["[CLS]", "[SEP]"], user_defined_symbols=["[MASK]"], minloglevel=2)
    with pytest.raises(ValueError, match=r"user.model: \['\[MASK\]'\] are ordinary or user-defined"):
        load_tokenizer(user)
