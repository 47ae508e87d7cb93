"""Raw text to masked, NSP-paired TFRecord shards, in parallel and in bounded memory.

The corpus is read once, in order, and cut into blocks of about `block_chars` characters of
whole documents. Each block is processed on its own (by a worker process here, or by a Beam
worker in `beam_pipeline.py`): its documents are tokenized and paired over `dupe_factor` passes
with Google's algorithm (`instances.py`), the block's instances are shuffled, masked and
serialized with numpy (`masking.mask_batch`, `features.serialize_examples`), and dealt into
`num_shards` parts. Shard `s` is then the concatenation of every block's part `s`, in an order
of blocks drawn from `(seed, s)`, so shards mix the whole corpus.

Memory is bounded by the block, not the corpus: the random "next segment" of an NSP pair comes
from another document of the same block (a few thousand documents; Google's script draws from
the whole corpus in memory). All randomness derives from `(seed, block, pass)`, so the
shards are byte-identical whatever the number of workers.

Bad input (missing paths, binary or empty files, lines that are not UTF-8 or too long, control
characters, empty and one-sentence documents) is skipped and counted per file, and the counts are
logged and written to `input_report.json` beside the manifest; with `CreationConfig(strict=True)`
the first problem is an error naming file and line. A write that fails (a full disk) leaves the
output directory as it was, and says what it was writing.
"""

from __future__ import annotations

import array
import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import random
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from input_pipeline.instances.masking import MaskingConfig, mask_batch_with_rng
from input_pipeline.instances.pairs import PairingConfig, create_sentence_pairs
from input_pipeline.shards.features import serialize_examples
from input_pipeline.shards.manifest import MANIFEST_NAME, build_manifest, shard_name, write_manifest
from input_pipeline.shards.tfrecord import frame, write_atomically
from input_pipeline.text.report import DEFAULT_MAX_LINE_CHARS, InputReport, problem_message
from input_pipeline.text.sources import TEXT_FORMATS, document_sentences, expand_inputs, iter_numbered_documents
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger(__name__)

MASKING_MODES = ("static", "dynamic")
INPUT_REPORT_NAME = "input_report.json"
_CHUNK_ROWS = 4096


@dataclasses.dataclass(frozen=True)
class CreationConfig:
    """The knobs of Google's `create_pretraining_data.py` (with its defaults), and ours."""
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    whole_word_masking: bool = False
    do_lower_case: bool = True
    # Longer words become [UNK]: 100 as in `transformers`, 200 in Google's original.
    max_input_chars_per_word: int = 100
    seed: int = 12345
    num_shards: int = 4
    # "lines": one sentence per line (the original format); "paragraphs": one paragraph per line,
    # split into sentences here. A blank line separates documents in both.
    text_format: str = "lines"
    text_field: str = "text"  # The text of a JSONL record or a TFDS example.
    # About 1 MB of text per block: the unit of work of a worker, its memory (~50 MB of token
    # rows at dupe factor 10), and the pool of documents the random next segments are drawn
    # from (hundreds of Wikipedia articles).
    block_chars: int = 1_000_000
    # "static": masked here, `dupe_factor` times (the original). "dynamic": stored unmasked, once
    # per pass, and masked afresh every epoch by the reader (RoBERTa).
    masking: str = "static"
    # Lines longer than this are skipped and counted: never a sentence, and a memory hazard.
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    # False: bad input is skipped and counted in input_report.json. True: the first problem
    # (`input_report.PROBLEMS`) is an error naming file and line.
    strict: bool = False

    def __post_init__(self):
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 5 "
                             "([CLS] A [SEP] B [SEP] with one token in each segment).")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1).")
        if not 1 <= self.max_predictions_per_seq <= self.max_seq_length:
            raise ValueError(f"max_predictions_per_seq={self.max_predictions_per_seq} must be in "
                             f"[1, max_seq_length={self.max_seq_length}].")
        if self.dupe_factor < 1 or self.num_shards < 1:
            raise ValueError(f"dupe_factor={self.dupe_factor} and num_shards={self.num_shards} "
                             "must be at least 1.")
        if self.text_format not in TEXT_FORMATS:
            raise ValueError(f"text_format={self.text_format!r} must be one of {TEXT_FORMATS}.")
        if self.masking not in MASKING_MODES:
            raise ValueError(f"masking={self.masking!r} must be one of {MASKING_MODES}.")
        if self.block_chars < 1:
            raise ValueError(f"block_chars={self.block_chars} must be positive.")
        if self.max_line_chars < 1:
            raise ValueError(f"max_line_chars={self.max_line_chars} must be positive.")

    def input_report(self) -> InputReport:
        """An empty report that reads by this config's rules (strictness, line limit)."""
        return InputReport(strict=self.strict, max_line_chars=self.max_line_chars)


@dataclasses.dataclass
class Block:
    """Whole documents, the unit of work of a worker, with where each document starts."""
    documents: list[list[str]]
    origins: list[tuple[str, int]]  # (source, line number) of each document's first line.


def iter_blocks(sources: Sequence[str], config: CreationConfig,
                report: InputReport | None = None) -> Iterator[Block]:
    """The documents of `sources`, in order, in blocks of about `config.block_chars` characters.

    A short last block (under half the size) joins the one before it, so that no block is left
    with too few documents to draw random next segments from. Reading problems are counted in
    `report` (a fresh one of the config's rules if none is given) or raised, if it is strict.
    """
    report = report or config.input_report()
    previous: Block | None = None
    block = Block([], [])
    size = 0
    for source in sources:
        for line, document in iter_numbered_documents(source, text_format=config.text_format,
                                                      text_field=config.text_field, report=report):
            block.documents.append(document)
            block.origins.append((source, line))
            size += sum(map(len, document))
            if size >= config.block_chars:
                if previous is not None:
                    yield previous
                previous, block, size = block, Block([], []), 0
    if previous is not None and block.documents and size < config.block_chars // 2:
        previous.documents.extend(block.documents)
        previous.origins.extend(block.origins)
        block = Block([], [])
    if previous is not None:
        yield previous
    if block.documents:
        yield block


_TOO_FEW_DOCUMENTS = ("the input holds {n} non-empty document(s); next-sentence pairs need at least "
                      "two (separate documents with a blank line).")


class BlockProcessor:
    """Turns a block of raw documents into shard parts; built once per worker process."""

    def __init__(self, vocab_path: str, config: CreationConfig):
        self.config = config
        self.tokenizer = load_tokenizer(vocab_path, do_lower_case=config.do_lower_case,
                                        max_input_chars_per_word=config.max_input_chars_per_word)
        self.masking = MaskingConfig.from_tokenizer(
            self.tokenizer, masked_lm_prob=config.masked_lm_prob,
            max_predictions_per_seq=config.max_predictions_per_seq,
            whole_word_masking=config.whole_word_masking)

    def tokenize(self, documents: Iterable[Sequence[str]],
                 origins: Sequence[tuple[str, int]] | None = None,
                 problems: collections.Counter | None = None
                 ) -> tuple[list[list[list[int]]], int]:
        """Documents of token-id sentences (empty ones dropped, as in the original) and the
        number of sentences.

        Given the `origins` of the documents (`Block.origins`), empty and one-sentence documents
        are counted into `problems` under `(kind, source)` keys, or, in strict mode, raise a
        ValueError naming the document's file and first line.
        """
        out, num_sentences = [], 0
        for index, lines in enumerate(documents):
            # A "[SEP]" or "[MASK]" quoted in the corpus is text, not a special token.
            sentences = [ids for s in document_sentences(lines, self.config.text_format)
                         if (ids := self.tokenizer.encode(s, split_special_tokens=True))]
            if len(sentences) < 2 and origins is not None:
                kind = "one_sentence_documents" if sentences else "empty_documents"
                source, line = origins[index]
                if self.config.strict:
                    raise ValueError(problem_message(source, kind, line))
                if problems is not None:
                    problems[(kind, source)] += 1
            if sentences:
                out.append(sentences)
                num_sentences += len(sentences)
        return out, num_sentences

    def pairs(self, documents: Sequence[Sequence[Sequence[int]]], block_index: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bool]]:
        """Every pass's NSP pairs of the block as unmasked token rows `[CLS] A [SEP] B [SEP]`,
        flat (row i is `tokens[offsets[i]:offsets[i + 1]]`, 4 bytes a token), with the length of
        `[CLS] A [SEP]` and the random-next label of each row."""
        config = self.config
        pairing = PairingConfig(config.max_seq_length, config.short_seq_prob)
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        tokens, offsets, a_lengths, random_next = array.array("i"), [0], [], []
        for dupe in range(config.dupe_factor):
            # A string seed is hashed with SHA-512 by `random`: stable across runs, platforms and
            # PYTHONHASHSEED.
            rng = random.Random(f"{config.seed}:{block_index}:{dupe}")
            for index in range(len(documents)):
                for pair in create_sentence_pairs(documents, index, pairing, rng):
                    tokens.append(cls_id)
                    tokens.extend(pair.tokens_a)
                    tokens.append(sep_id)
                    tokens.extend(pair.tokens_b)
                    tokens.append(sep_id)
                    offsets.append(len(tokens))
                    a_lengths.append(len(pair.tokens_a) + 2)
                    random_next.append(pair.is_random_next)
        return np.frombuffer(tokens, np.int32), np.array(offsets), np.array(a_lengths), random_next

    def records(self, tokens: np.ndarray, offsets: np.ndarray, rows: np.ndarray, a_lengths: np.ndarray,
                random_next: Sequence[bool], rng: np.random.Generator) -> tuple[list[bytes], int]:
        """Masks (if static) and serializes `rows` (of `pairs`); returns the records and the
        number of masked-LM predictions."""
        config = self.config
        starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
        position = np.arange(config.max_seq_length)
        input_mask = (position < lengths[:, None]).astype(np.int32)
        gather = np.minimum(starts[:, None] + position, len(tokens) - 1)
        input_ids = np.where(input_mask, tokens[gather], 0)
        a_length = a_lengths[rows]
        segment_ids = (input_mask & (position >= a_length[:, None])).astype(np.int32)
        if config.masking == "static":
            masked = mask_batch_with_rng(input_ids, self.masking, rng, input_mask=input_mask)
            features = (masked.input_ids, input_mask, segment_ids, masked.masked_lm_positions,
                        masked.masked_lm_ids, masked.masked_lm_weights)
            num_predictions = int(masked.num_predictions.sum())
        else:
            zeros = np.zeros((len(rows), config.max_predictions_per_seq), np.int32)
            features = (input_ids, input_mask, segment_ids, zeros, zeros, zeros.astype(np.float32))
            num_predictions = 0
        labels = np.array([random_next[row] for row in rows], np.int32)
        return serialize_examples(*features, labels), num_predictions

    def __call__(self, block_index: int, documents: Sequence[Sequence[str]],
                 origins: Sequence[tuple[str, int]] | None = None
                 ) -> tuple[collections.Counter, Iterator[tuple[int, bytes]]]:
        """The block's counts, and its records in TFRecord framing as (shard, record), shard
        after shard. Records are made lazily, a chunk at a time, so memory holds the block's
        token rows but never all its records; the count of predictions is complete once the
        records are consumed. Given `origins`, the counts hold the per-file counts of
        `tokenize` under `(kind, source)` keys (`InputReport.add_block_counts`)."""
        config = self.config
        problems: collections.Counter = collections.Counter()
        tokenized, num_sentences = self.tokenize(documents, origins, problems)
        if len(tokenized) < 2:
            raise _TooFewDocuments(_TOO_FEW_DOCUMENTS.format(n=len(tokenized)))
        tokens, offsets, a_lengths, random_next = self.pairs(tokenized, block_index)
        num = len(a_lengths)
        stats = collections.Counter(
            blocks=1, documents=len(tokenized), sentences=num_sentences, instances=num,
            tokens=len(tokens), predictions=0, random_next=sum(random_next),
            characters=sum(len(line) for document in documents for line in document))
        stats.update(problems)
        rng = np.random.default_rng([config.seed, block_index])
        order = rng.permutation(num)  # The original shuffles all instances before writing.
        # Shard s takes the s-th run of the shuffled instances; the shards that get one instance
        # more rotate with the block, so that shards stay even.
        base, extra = divmod(num, config.num_shards)
        sizes = [base + ((s - block_index) % config.num_shards < extra) for s in range(config.num_shards)]
        shard_at = np.repeat(np.arange(config.num_shards), sizes)

        def records() -> Iterator[tuple[int, bytes]]:
            for start in range(0, num, _CHUNK_ROWS):
                chunk, predictions = self.records(tokens, offsets, order[start:start + _CHUNK_ROWS],
                                                  a_lengths, random_next, rng)
                stats["predictions"] += predictions
                for offset, record in enumerate(chunk):
                    yield int(shard_at[start + offset]), frame(record)

        return stats, records()


def block_order_key(seed: int, shard: int, block_index: int) -> bytes:
    """Sorting a shard's parts by this key gives an order of blocks drawn from (seed, shard),
    without knowing the number of blocks (Beam does not)."""
    return hashlib.blake2b(f"{seed}:{shard}:{block_index}".encode(), digest_size=8).digest()


# One BlockProcessor per worker process, built by the pool's initializer.
_processor: BlockProcessor | None = None
_work_dir: str = ""


def _init_worker(vocab_path: str, config: CreationConfig, work_dir: str) -> None:
    global _processor, _work_dir
    _processor, _work_dir = BlockProcessor(vocab_path, config), work_dir


def _process_to_file(block_index: int, block: Block
                     ) -> tuple[int, list[int], list[int], collections.Counter]:
    """Processes a block in a worker and writes its parts, shard after shard, to one file, so
    that only sizes and counts travel back to the parent process."""
    stats, records = _processor(block_index, block.documents, block.origins)
    sizes, counts = [0] * _processor.config.num_shards, [0] * _processor.config.num_shards
    path = os.path.join(_work_dir, f"block-{block_index:07d}")
    try:
        with open(path, "wb") as f:
            for shard, record in records:
                f.write(record)
                sizes[shard] += len(record)
                counts[shard] += 1
    except OSError as e:
        raise _write_failed(f"the records of block {block_index} to {path}", e) from e
    return block_index, sizes, counts, stats


def _merge_shard(work_dir: str, path: str, shard: int, seed: int,
                 block_sizes: dict[int, list[int]]) -> None:
    """Writes shard `shard` as the concatenation of every block's part `shard`, into the work
    directory under the base name of `path` (moved to `path` once every shard is complete)."""
    try:
        with open(os.path.join(work_dir, os.path.basename(path)), "wb") as out:
            for block_index in sorted(block_sizes, key=lambda b: block_order_key(seed, shard, b)):
                sizes = block_sizes[block_index]
                with open(os.path.join(work_dir, f"block-{block_index:07d}"), "rb") as f:
                    f.seek(sum(sizes[:shard]))
                    out.write(f.read(sizes[shard]))
    except OSError as e:
        raise _write_failed(f"shard {path}", e) from e


def _write_failed(what: str, error: OSError) -> OSError:
    """An OSError (of `error`'s errno) saying what was being written and what to do; the run's
    files are all removed (or never renamed into place) when it propagates."""
    return OSError(error.errno, f"writing {what} failed: {error.strerror or error}; nothing was "
                                "written under the output's final names. Free disk space (or "
                                "write to another --output-dir) and run again.")


class _TooFewDocuments(ValueError):
    """Raised, by a worker or at the end of reading, when there is nothing to pair."""


def write_input_report(output_dir: str | os.PathLike, report: InputReport) -> str:
    """Writes `report` as JSON to `input_report.json` in `output_dir` (atomically); returns its
    path."""
    path = os.path.join(output_dir, INPUT_REPORT_NAME)
    write_atomically(path, [(json.dumps(report.to_json(), indent=2) + "\n").encode()])
    return path


def create_pretraining_data(inputs: Sequence[str], vocab_path: str | os.PathLike,
                            output_dir: str | os.PathLike, config: CreationConfig = CreationConfig(),
                            *, num_workers: int = 1, prefix: str = "train") -> dict:
    """Writes `config.num_shards` TFRecord shards, `input_report.json` and `manifest.json` into
    `output_dir` from the text `inputs` (files, globs, directories, `.gz`, `.jsonl`,
    `tfds:NAME[:SPLIT]`), using `num_workers` processes. Returns the manifest.

    Bad input is skipped and counted per file (see `input_report.InputReport`; the report is
    logged and written as `input_report.json`), or, with `config.strict`, raises on the first
    problem, naming file and line. Missing inputs are skipped, but at least one must exist.

    The shards are written in a work directory and moved into place only once all are complete,
    then the report and, last, the manifest, so a manifest always describes complete shards. If
    a write fails (a full disk), the OSError says what was being written, and nothing of the run
    is left under a final name.
    """
    report = config.input_report()
    sources = expand_inputs(inputs, report)
    vocab_path = os.fspath(vocab_path)
    # Built here first, so that a bad vocab fails at once with its own message; one worker uses
    # it, more workers build their own.
    processor = BlockProcessor(vocab_path, config)
    os.makedirs(output_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".blocks-", dir=output_dir)
    block_sizes: dict[int, list[int]] = {}
    shard_counts = np.zeros(config.num_shards, np.int64)
    stats: collections.Counter = collections.Counter()
    paths = [os.path.join(output_dir, shard_name(prefix, s, config.num_shards))
             for s in range(config.num_shards)]
    try:
        with _worker_pool(num_workers, processor, vocab_path, work_dir) as pool:
            try:
                for block_index, sizes, counts, block_stats in pool.map_blocks(
                        _process_to_file, enumerate(iter_blocks(sources, config, report))):
                    block_sizes[block_index] = sizes
                    shard_counts += counts
                    stats += block_stats
                if stats["documents"] < 2:  # Only an input without a block gets here with this.
                    raise _TooFewDocuments(_TOO_FEW_DOCUMENTS.format(n=stats["documents"]))
            except _TooFewDocuments as e:
                # Often the reason is in the report: files that were binary, empty or missing.
                raise ValueError(f"{e} {report.summary()}") from None
            pool.map_all(_merge_shard, [(work_dir, path, s, config.seed, block_sizes)
                                        for s, path in enumerate(paths)])
        report.add_block_counts(stats)
        manifest = build_manifest(config, vocab_path, processor.tokenizer.vocab_size, sources,
                                  shard_counts.tolist(), stats, prefix)
        _move_into_place(work_dir, output_dir, paths, report, manifest)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    report.log(logger, os.path.join(output_dir, INPUT_REPORT_NAME))
    return manifest


def _move_into_place(work_dir: str, output_dir: str | os.PathLike, paths: Sequence[str],
                     report: InputReport, manifest: dict) -> None:
    """Replaces whatever `output_dir` held with the complete shards of `work_dir`, then writes
    the input report and the manifest; if any of it fails, removes what it had put in place."""
    # A manifest left from an earlier run must not describe a mix of its shards and these.
    old = [os.path.join(output_dir, name) for name in (MANIFEST_NAME, INPUT_REPORT_NAME)]
    try:
        for path in old:
            if os.path.exists(path):
                os.remove(path)
        for path in paths:
            os.replace(os.path.join(work_dir, os.path.basename(path)), path)
        for what, write in (("the input report", lambda: write_input_report(output_dir, report)),
                            ("the manifest", lambda: write_manifest(output_dir, manifest))):
            try:
                write()
            except OSError as e:
                raise _write_failed(f"{what} into {output_dir}", e) from e
    except BaseException:
        for path in [*paths, *old]:
            if os.path.exists(path):
                os.remove(path)
        raise


class _worker_pool:
    """Runs block jobs in `num_workers` processes (inline for one), with a bounded number of
    blocks in flight so that reading never runs ahead of processing by more than that."""

    def __init__(self, num_workers: int, processor: BlockProcessor, vocab_path: str, work_dir: str):
        if num_workers < 1:
            raise ValueError(f"num_workers={num_workers} must be at least 1.")
        self.num_workers = num_workers
        self.processor = processor
        self.init_args = (vocab_path, processor.config, work_dir)
        self.executor = None

    def __enter__(self):
        if self.num_workers == 1:
            global _processor, _work_dir
            _processor, _work_dir = self.processor, self.init_args[2]
        else:
            # "spawn": the parent may hold TensorFlow or JAX threads, which fork does not survive.
            self.executor = concurrent.futures.ProcessPoolExecutor(
                self.num_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=self.init_args)
        return self

    def __exit__(self, *exc):
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
        return False

    def map_blocks(self, fn, jobs: Iterable[tuple]) -> Iterator:
        if self.executor is None:
            yield from (fn(*job) for job in jobs)
            return
        pending: set = set()
        for job in jobs:
            pending.add(self.executor.submit(fn, *job))
            if len(pending) >= 2 * self.num_workers:
                done, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for future in concurrent.futures.as_completed(pending):
            yield future.result()

    def map_all(self, fn, jobs: Sequence[tuple]) -> None:
        for _ in self.map_blocks(fn, jobs):
            pass
