"""Next-sentence-prediction pairs (`input_pipeline.instances.pairs`), as Google's original
`create_instances_from_document` builds them.

Exact checks use synthetic documents whose tokens are unique increasing integers (document after
document, sentence after sentence), so a token says which document and sentence it comes from,
and contiguity in the text is contiguity of the integers. The label balance is measured on real
text: standard-library docstrings tokenized with the real uncased vocab.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from conftest import SIGMAS, assert_rate

from input_pipeline.instances.pairs import PairingConfig, create_sentence_pairs, truncate_pair
from input_pipeline.text.stdlib_corpus import module_files, module_sentences
from input_pipeline.tokenizers.wordpiece import BertTokenizer


@dataclasses.dataclass
class Corpus:
    """Documents of sentences of unique, increasing token ids, and where each token lies."""
    documents: list[list[list[int]]]
    doc_of: dict[int, int] = dataclasses.field(default_factory=dict)
    sentence_of: dict[int, int] = dataclasses.field(default_factory=dict)  # index in its document
    sentence_starts: set[int] = dataclasses.field(default_factory=set)
    sentence_ends: set[int] = dataclasses.field(default_factory=set)

    def __post_init__(self):
        for d, doc in enumerate(self.documents):
            for s, sentence in enumerate(doc):
                self.sentence_starts.add(sentence[0])
                self.sentence_ends.add(sentence[-1])
                for t in sentence:
                    self.doc_of[t], self.sentence_of[t] = d, s

    def stream(self, d: int) -> list[int]:
        return [t for sentence in self.documents[d] for t in sentence]


def synthetic_corpus(rng: random.Random, num_documents: int, num_sentences: tuple[int, int],
                     sentence_length: tuple[int, int]) -> Corpus:
    next_id = 1
    documents = []
    for _ in range(num_documents):
        doc = []
        for _ in range(rng.randint(*num_sentences)):
            length = rng.randint(*sentence_length)
            doc.append(list(range(next_id, next_id + length)))
            next_id += length
        documents.append(doc)
    return Corpus(documents)


def is_contiguous(tokens: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(tokens, tokens[1:]))


def pairs_by_document(corpus: Corpus, config: PairingConfig, seed: int):
    return [create_sentence_pairs(corpus.documents, d, config, random.Random(f"{seed}:{d}"))
            for d in range(len(corpus.documents))]


# ---------------------------------------------------------------------------------------------
# Label balance on real text.


@pytest.fixture(scope="module")
def real_documents(uncased_vocab_path) -> list[list[list[int]]]:
    """About 180 documents of real text: the first 200 standard-library modules' docstrings."""
    tokenizer = BertTokenizer.from_vocab_file(uncased_vocab_path)
    documents = []
    for path in module_files()[:200]:
        doc = [ids for ids in map(tokenizer.encode, module_sentences(path)) if ids]
        if doc:
            documents.append(doc)
    assert len(documents) > 100
    return documents


def test_nsp_label_balance_on_real_text(real_documents):
    # Slightly more than half the pairs are "random next" (label 1): A takes a random number of
    # whole sentences from the chunk but always leaves B at least one, so a chunk of a single
    # sentence (the last sentence of a document when it starts a chunk of its own, any sentence
    # of at least the target length, and, more often, chunks under a short target drawn with
    # short_seq_prob) has nothing left for an "is next" B and always takes a random one. The other
    # chunks are split 50/50. On this corpus the fraction is about 0.57.
    config = PairingConfig(max_seq_length=128, short_seq_prob=0.1)
    labels = [pair.is_random_next for seed in range(3) for d in range(len(real_documents))
              for pair in create_sentence_pairs(real_documents, d, config, random.Random(f"{seed}:{d}"))]
    assert len(labels) > 3_000
    fraction = sum(labels) / len(labels)
    assert 0.5 < fraction < 0.6, fraction
    for pairs in (create_sentence_pairs(real_documents, d, config, random.Random(d))
                  for d in range(len(real_documents))):
        for pair in pairs:
            assert 1 <= len(pair.tokens_a) and 1 <= len(pair.tokens_b)
            assert len(pair.tokens_a) + len(pair.tokens_b) <= 128 - 3


# ---------------------------------------------------------------------------------------------
# Exact structure without truncation: every sentence 4 tokens and a target of 40 tokens, so
# chunks and random Bs hit the target exactly and nothing is ever truncated.

L, TARGET = 4, 40
EXACT = PairingConfig(max_seq_length=TARGET + 3, short_seq_prob=0.0)


@pytest.fixture(scope="module")
def exact_corpus() -> Corpus:
    return synthetic_corpus(random.Random(0), 300, (1, 40), (L, L))


def test_pairs_are_whole_sentences_and_cover_every_document_once(exact_corpus):
    corpus = exact_corpus
    for d, pairs in enumerate(pairs_by_document(corpus, EXACT, seed=0)):
        own_text = []
        for pair in pairs:
            a, b = pair.tokens_a, pair.tokens_b
            assert len(a) >= 1 and len(b) >= 1 and len(a) + len(b) <= TARGET
            # A: whole consecutive sentences of this document.
            assert is_contiguous(a) and {corpus.doc_of[t] for t in a} == {d}
            assert a[0] in corpus.sentence_starts and a[-1] in corpus.sentence_ends
            assert is_contiguous(b) and b[0] in corpus.sentence_starts and b[-1] in corpus.sentence_ends
            own_text += a
            if not pair.is_random_next:
                own_text += b
        # The As and "is next" Bs, in order, are the document's text exactly once: the sentences
        # a random B displaced were put back and used by the next pair, and none was repeated.
        assert own_text == corpus.stream(d)


def test_is_next_pairs_are_consecutive_text(exact_corpus):
    corpus = exact_corpus
    n = 0
    a_sentences_of_full_chunks = []
    for d, pairs in enumerate(pairs_by_document(corpus, EXACT, seed=1)):
        for pair in pairs:
            if pair.is_random_next:
                continue
            n += 1
            a, b = pair.tokens_a, pair.tokens_b
            assert {corpus.doc_of[t] for t in b} == {d}
            assert is_contiguous(a + b), "A + B is not a contiguous span of the document"
            # The chunk grew to the target (or to the end of the document).
            assert len(a) + len(b) == TARGET or b[-1] == corpus.documents[d][-1][-1]
            if len(a) + len(b) == TARGET:
                a_sentences_of_full_chunks.append(len(a) // L)
    assert n > 300
    # A takes a uniformly random number of the chunk's 10 sentences, from 1 to 9.
    for k in range(1, 10):
        assert_rate(a_sentences_of_full_chunks.count(k), len(a_sentences_of_full_chunks), 1 / 9,
                    f"share of A with {k} of 10 sentences")


def test_random_next_b_comes_from_another_document(exact_corpus):
    corpus = exact_corpus
    others, n, last_sentence_alone = set(), 0, 0
    after_target = []
    for d, pairs in enumerate(pairs_by_document(corpus, EXACT, seed=2)):
        for pair in pairs:
            a, b = pair.tokens_a, pair.tokens_b
            if a[-1] == corpus.documents[d][-1][-1]:
                # A reaches the end of the document, so the chunk was that one sentence: nothing
                # is left for an "is next" B.
                assert pair.is_random_next and len(a) == L
                last_sentence_alone += 1
            else:
                after_target.append(pair.is_random_next)
            if not pair.is_random_next:
                continue
            n += 1
            (other,) = {corpus.doc_of[t] for t in b}
            assert other != d, "a random-next B from the same document"
            others.add(other)
            # B runs from a sentence start until it fills the target, or to its document's end,
            # and is whole sentences: it did not overshoot the target and get truncated.
            assert b[0] in corpus.sentence_starts and b[-1] in corpus.sentence_ends
            assert len(b) == TARGET - len(a) or (len(b) < TARGET - len(a)
                                                 and b[-1] == corpus.documents[other][-1][-1])
    assert n > 500 and len(others) > 200 and last_sentence_alone > 50
    # Chunks of two or more sentences get a random B half of the time.
    assert_rate(sum(after_target), len(after_target), 0.5, "random-next fraction of split chunks")


def test_corpus_of_one_document_is_an_error():
    doc = [[1, 2, 3], [4, 5, 6]]
    for seed in range(20):  # also the seeds that would only pick "is next" pairs
        with pytest.raises(ValueError, match="at least two documents"):
            create_sentence_pairs([doc], 0, PairingConfig(max_seq_length=128), random.Random(seed))


# ---------------------------------------------------------------------------------------------
# With truncation: sentences of 1 to 30 tokens, pairs of at most 29.


def test_truncated_pairs_keep_their_structure():
    corpus = synthetic_corpus(random.Random(3), 200, (1, 30), (1, 30))
    config = PairingConfig(max_seq_length=32, short_seq_prob=0.1)
    max_num_tokens = 29
    n_truncated = n_untruncated = n_cut_inside_sentences = 0
    for d, pairs in enumerate(pairs_by_document(corpus, config, seed=3)):
        for pair in pairs:
            a, b = pair.tokens_a, pair.tokens_b
            assert len(a) >= 1 and len(b) >= 1 and len(a) + len(b) <= max_num_tokens
            # Truncation removes tokens from the ends only: both segments stay contiguous text.
            assert is_contiguous(a) and is_contiguous(b)
            assert {corpus.doc_of[t] for t in a} == {d}
            (b_doc,) = {corpus.doc_of[t] for t in b}
            assert (b_doc == d) != pair.is_random_next
            if len(a) + len(b) < max_num_tokens:
                # Shorter than the limit: nothing was truncated, so both are whole sentences and
                # an "is next" B starts right after A.
                n_untruncated += 1
                assert a[0] in corpus.sentence_starts and a[-1] in corpus.sentence_ends
                assert b[0] in corpus.sentence_starts and b[-1] in corpus.sentence_ends
                if not pair.is_random_next:
                    assert b[0] == a[-1] + 1
            else:
                # Possibly truncated: A was whole sentences ending at the sentence boundary where
                # B started, and each lost tokens at either end only. So A still ends in an
                # earlier sentence than the one B now starts in (tokens between them are A's
                # removed tail and B's removed head).
                n_truncated += 1
                if not pair.is_random_next:
                    assert corpus.sentence_of[a[-1]] < corpus.sentence_of[b[0]]
                n_cut_inside_sentences += (a[0] not in corpus.sentence_starts
                                           or a[-1] not in corpus.sentence_ends
                                           or b[0] not in corpus.sentence_starts
                                           or b[-1] not in corpus.sentence_ends)
    assert n_truncated > 300 and n_untruncated > 100 and n_cut_inside_sentences > 300


# ---------------------------------------------------------------------------------------------
# short_seq_prob.


def document_targets(short_seq_prob: float, seed: int) -> list[int]:
    """The longest pair of each document of one-token sentences, which is the document's target:
    chunks stop exactly at the target and random Bs fill exactly up to it (unless their document
    runs out), so nothing is truncated and no pair exceeds the target."""
    corpus = synthetic_corpus(random.Random(seed), 2_000, (100, 100), (1, 1))
    config = PairingConfig(max_seq_length=23, short_seq_prob=short_seq_prob)  # 20 tokens
    return [max(len(p.tokens_a) + len(p.tokens_b) for p in pairs)
            for pairs in pairs_by_document(corpus, config, seed)]


def test_short_seq_prob_shortens_about_one_document_in_ten():
    max_num_tokens = 20
    assert set(document_targets(0.0, seed=4)) == {max_num_tokens}
    targets = document_targets(0.1, seed=5)
    assert max(targets) == max_num_tokens
    short = [t for t in targets if t < max_num_tokens]
    # A short target is uniform over [2, 20], so it is the full length 1 time in 19.
    assert_rate(len(short), len(targets), 0.1 * 18 / 19, "documents with a short target")
    # Spread uniformly over [2, 19]: mean 10.5, standard deviation about 5.2.
    mean = sum(short) / len(short)
    assert abs(mean - 10.5) < SIGMAS * 5.2 / math.sqrt(len(short)), mean
    assert min(short) == 2 and len(set(short)) == 18
    targets = document_targets(0.5, seed=6)
    assert_rate(sum(t < max_num_tokens for t in targets), len(targets), 0.5 * 18 / 19,
                "documents with a short target at short_seq_prob=0.5")


# ---------------------------------------------------------------------------------------------
# truncate_pair.


def expected_lengths(la: int, lb: int, max_num_tokens: int) -> tuple[int, int]:
    while la + lb > max_num_tokens:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return la, lb


@pytest.mark.parametrize("la, lb, max_num_tokens", [
    (100, 30, 110), (30, 100, 110), (100, 30, 60), (50, 50, 99), (50, 50, 10), (7, 3, 10),
    (7, 3, 20), (1, 200, 125), (200, 1, 125)])
def test_truncate_pair_shortens_the_longer_segment(la, lb, max_num_tokens):
    for seed in range(20):
        a, b = list(range(la)), list(range(1000, 1000 + lb))
        truncate_pair(a, b, max_num_tokens, random.Random(seed))
        assert (len(a), len(b)) == expected_lengths(la, lb, max_num_tokens)
        # Cut at the ends only: what is left is a contiguous piece of each.
        assert is_contiguous(a) and 0 <= a[0] and a[-1] < la
        assert is_contiguous(b) and 1000 <= b[0] and b[-1] < 1000 + lb


def test_truncate_pair_cuts_from_both_ends():
    heads = tails = both = 0
    for seed in range(2_000):
        a, b = list(range(100)), [1000]
        truncate_pair(a, b, 61, random.Random(seed))
        assert len(a) == 60 and b == [1000] and is_contiguous(a)
        head, tail = a[0], 99 - a[-1]
        heads, tails, both = heads + head, tails + tail, both + (head > 0 and tail > 0)
    # Each of the 40 removals picks an end with probability 1/2.
    assert_rate(heads, heads + tails, 0.5, "share of tokens cut from the front")
    assert both > 1_990


def test_truncate_pair_leaves_fitting_pairs_alone():
    a, b = [1, 2, 3], [4, 5]
    truncate_pair(a, b, 5, random.Random(0))
    assert (a, b) == ([1, 2, 3], [4, 5])
