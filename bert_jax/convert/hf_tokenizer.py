"""The tokenizer files of a Hugging Face export, for either of our tokenizers.

A WordPiece `vocab.txt` is written as `transformers.BertTokenizer` reads it (`vocab.txt`,
`tokenizer_config.json`, `special_tokens_map.json`), with a `tokenizer.json` built by the Rust
`tokenizers` library from the same vocab and casing (BERT's normalizer, pre-tokenizer, WordPiece
with `##` continuations and the `[CLS] A [SEP] B [SEP]` template), the file that fast tokenizers
and serving stacks (text-embeddings-inference) load.

A SentencePiece model (`input_pipeline.tokenizers.sentencepiece_tokenizer`) is written ALBERT style: the
model itself as `spiece.model`, and a `tokenizer.json` for the Rust `tokenizers` library that
encodes as `SentencePieceProcessor` does: the model's own precompiled normalization (which holds
its lower-casing), its whitespace handling, its Unigram pieces and scores (or BPE pieces, with
merges ranked by score, as `transformers`' converter makes them), and BERT's `[CLS] A [SEP] B
[SEP]` template with segment ids. `tokenizer_config.json` names `PreTrainedTokenizerFast`, so
`transformers.AutoTokenizer` loads `tokenizer.json` exactly as written. That `tokenizer.json` is
written here as JSON, from the model file (the `tokenizers` library has no builder for a
precompiled SentencePiece normalization), and loading it never converts the `.model` file (which needs a protobuf
runtime compatible with `transformers`' copy of SentencePiece's schema; TensorFlow pins protobuf).

Why not `AlbertTokenizer`: it rebuilds its pipeline from the pieces with ALBERT's additions (``
and '' become a double quote) and takes Unigram models only. `spiece.model` can still be given to
it, or to SentencePiece itself.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from input_pipeline.tokenizers.loading import load_tokenizer
from input_pipeline.tokenizers.sentencepiece_tokenizer import WORD_START, SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, load_vocab

SPECIAL_TOKENS_MAP = {"unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS,
                      "mask_token": MASK}


def write_tokenizer_files(vocab_file: str | Path, do_lower_case: bool, max_length: int,
                          directory: Path) -> list[str]:
    """Writes the tokenizer of `vocab_file` (a WordPiece vocab.txt or a SentencePiece .model)
    into `directory`; returns the names of the files written."""
    tokenizer = load_tokenizer(vocab_file, do_lower_case=do_lower_case)
    if isinstance(tokenizer, SentencePieceTokenizer):
        files = _sentencepiece_files(vocab_file, max_length)
        shutil.copyfile(vocab_file, directory / "spiece.model")
    else:
        files = _wordpiece_files(vocab_file, do_lower_case, max_length)
        shutil.copyfile(vocab_file, directory / "vocab.txt")
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return [*files, "spiece.model" if isinstance(tokenizer, SentencePieceTokenizer) else "vocab.txt"]


def _wordpiece_files(vocab_file: str | Path, do_lower_case: bool, max_length: int) -> dict[str, dict]:
    return {
        "tokenizer.json": wordpiece_tokenizer_json(vocab_file, do_lower_case),
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case,
                                  "strip_accents": None, "tokenize_chinese_chars": True,
                                  "model_max_length": max_length, **SPECIAL_TOKENS_MAP},
        "special_tokens_map.json": SPECIAL_TOKENS_MAP,
    }


def _sentencepiece_files(model_file: str | Path, max_length: int) -> dict[str, dict]:
    return {
        "tokenizer.json": sentencepiece_tokenizer_json(model_file),
        # Lower-casing and accents are the model file's normalization, inside tokenizer.json.
        "tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast",
                                  "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
                                  "model_max_length": max_length, **SPECIAL_TOKENS_MAP},
        "special_tokens_map.json": SPECIAL_TOKENS_MAP,
    }


# --- tokenizer.json for a WordPiece vocab. ---------------------------------------------------

def wordpiece_tokenizer_json(vocab_file: str | Path, do_lower_case: bool) -> dict:
    """The `tokenizers` pipeline that encodes as our `BertTokenizer` of `vocab_file` does (the one
    `transformers.BertTokenizer` builds): BERT's normalizer (control characters removed, CJK
    characters split off, lower-cased and accents stripped when `do_lower_case`), its
    pre-tokenizer (whitespace and punctuation), WordPiece over the vocab's ids with `##`
    continuations and words of over 100 characters as [UNK], the special tokens matched in the
    raw text, and `[CLS] A [SEP] B [SEP]` with segment ids."""
    vocab = load_vocab(vocab_file)  # our checks: no empty line, no token twice
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##",
                                    max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=do_lower_case, lowercase=do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # in id order: the vocab's own ids
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0", pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])])
    return json.loads(tokenizer.to_str())


# --- tokenizer.json for a SentencePiece model. ------------------------------------------------

def sentencepiece_tokenizer_json(model_file: str | Path) -> dict:
    """The `tokenizers` pipeline that encodes as the SentencePiece model in `model_file` does
    (mirrors `transformers`' `SpmConverter.build_tokenizer_from_spm_proto`, legacy prefixing:
    every text chunk between special tokens starts a word, as `SentencePieceTokenizer.encode`
    does)."""
    model_proto = Path(model_file).read_bytes()
    spec = sentencepiece_model_spec(model_proto)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_proto)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]

    normalizers: list[dict] = []
    if spec["precompiled_charsmap"]:
        normalizers.append({"type": "Precompiled",
                            "precompiled_charsmap": base64.b64encode(spec["precompiled_charsmap"]).decode()})
    if spec["remove_extra_whitespaces"]:
        # Only spaces: SentencePiece leaves other whitespace (a newline) alone.
        normalizers += [_replace({"Regex": r"\A +| +\z"}, ""), _replace({"Regex": " {2,}"}, " ")]
    if spec["escape_whitespaces"]:
        normalizers.append(_replace({"String": " "}, WORD_START))
    if spec["add_dummy_prefix"]:
        # Metaspace adds no prefix to a text already starting with "▁"; SentencePiece does.
        normalizers.append(_replace({"Regex": "\\A" + WORD_START}, WORD_START * 2))
    pre_tokenizer = ({"type": "Sequence", "pretokenizers": [
        {"type": "Metaspace", "replacement": WORD_START, "prepend_scheme": "always", "split": False}]}
        if spec["add_dummy_prefix"] else None)

    decoders: list[dict] = [_replace({"String": WORD_START}, " ")]
    if spec["byte_fallback"]:
        decoders.append({"type": "ByteFallback"})
    if spec["add_dummy_prefix"]:
        decoders += [{"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]
    elif spec["byte_fallback"]:
        decoders.append({"type": "Fuse"})

    if spec["model_type"] == "unigram":
        model = {"type": "Unigram", "unk_id": sp.unk_id(),
                 "vocab": [[piece, sp.get_score(i)] for i, piece in enumerate(pieces)],
                 "byte_fallback": spec["byte_fallback"]}
    else:
        model = {"type": "BPE", "dropout": None, "unk_token": pieces[sp.unk_id()],
                 "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                 "byte_fallback": spec["byte_fallback"], "ignore_merges": False,
                 "vocab": {piece: i for i, piece in enumerate(pieces)},
                 "merges": _bpe_merges(sp, pieces)}

    ids = {token: pieces.index(token) for token in SPECIAL_TOKENS}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": ids[t], "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for t in sorted(SPECIAL_TOKENS, key=ids.get)],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _bert_template(ids[CLS], ids[SEP]),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": model,
    }


def _replace(pattern: dict, content: str) -> dict:
    return {"type": "Replace", "pattern": pattern, "content": content}


def _bert_template(cls_id: int, sep_id: int) -> dict:
    """`[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, segment 1 for B."""
    def special(token, type_id):
        return {"SpecialToken": {"id": token, "type_id": type_id}}

    def sequence(name, type_id):
        return {"Sequence": {"id": name, "type_id": type_id}}

    return {"type": "TemplateProcessing",
            "single": [special(CLS, 0), sequence("A", 0), special(SEP, 0)],
            "pair": [special(CLS, 0), sequence("A", 0), special(SEP, 0), sequence("B", 1), special(SEP, 1)],
            "special_tokens": {CLS: {"id": CLS, "ids": [cls_id], "tokens": [CLS]},
                               SEP: {"id": SEP, "ids": [sep_id], "tokens": [SEP]}}}


def _bpe_merges(sp: spm.SentencePieceProcessor, pieces: list[str]) -> list[list[str]]:
    """Merges of a SentencePiece BPE model: every split of a normal piece into two normal pieces,
    the best-scored (then lowest-id) result first, as `transformers` derives them."""
    normal = {piece: (sp.get_score(i), i) for i, piece in enumerate(pieces)
              if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i))}
    ranked = []
    for piece, (score, index) in normal.items():
        for split in range(1, len(piece)):
            left, right = piece[:split], piece[split:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    return [[left, right] for _, _, left, right in sorted(ranked)]


# --- The few fields of the model file that SentencePieceProcessor does not expose. -----------

# Field numbers in sentencepiece_model.proto: ModelProto.trainer_spec = 2, .normalizer_spec = 3;
# TrainerSpec.model_type = 3 (1 unigram, 2 BPE), .byte_fallback = 35; NormalizerSpec
# .precompiled_charsmap = 2, .add_dummy_prefix = 3, .remove_extra_whitespaces = 4,
# .escape_whitespaces = 5 (the three booleans default to true).
_MODEL_TYPES = {1: "unigram", 2: "bpe"}


def sentencepiece_model_spec(model_proto: bytes) -> dict:
    """The normalizer and trainer settings the tokenizer.json needs, read from the serialized
    model with a minimal protobuf reader (the `protobuf` schema classes of the sentencepiece
    wheel need a newer protobuf runtime than TensorFlow allows)."""
    top = _fields(model_proto)
    trainer = _fields(top.get(2, [b""])[-1])
    normalizer = _fields(top.get(3, [b""])[-1])

    def flag(fields: dict, number: int, default: bool) -> bool:
        return bool(fields[number][-1]) if number in fields else default

    model_type = trainer.get(3, [1])[-1]
    if model_type not in _MODEL_TYPES:
        raise ValueError(f"SentencePiece model type {model_type} (char or word) has no Hugging Face "
                         "tokenizer.json here; only unigram and BPE models are exported.")
    return {"model_type": _MODEL_TYPES[model_type], "byte_fallback": flag(trainer, 35, False),
            "precompiled_charsmap": normalizer.get(2, [b""])[-1],
            "add_dummy_prefix": flag(normalizer, 3, True),
            "remove_extra_whitespaces": flag(normalizer, 4, True),
            "escape_whitespaces": flag(normalizer, 5, True)}


def _fields(data: bytes) -> dict[int, list]:
    """Field number -> values (ints for varints, bytes for length-delimited) of one message."""
    fields: dict[int, list] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire_type in (1, 5):  # fixed 64 or 32 bits (floats): not needed, skipped
            size = 8 if wire_type == 1 else 4
            value, position = data[position:position + size], position + size
        else:
            raise ValueError(f"not a SentencePiece model: protobuf wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
