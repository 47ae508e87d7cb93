"""Token tagging (NER): a label per word, and entity spans in the text.

Two ways in, as the two ways users have text:

* `tag_words(sentences)`: sentences already split into words (CoNLL files); each word's label is
  the prediction at its first sub-token, as the model was trained (`run_ner.py`,
  `input_pipeline.tasks.tagging_features`).
* `__call__(texts)`: raw text; the entities as `transformers`' `pipeline("token-classification",
  aggregation_strategy="simple")` groups them: every sub-token gets its most probable label with
  that probability; adjacent tokens of the same entity type join one group unless a `B-` label
  starts a new one (a label without `B-`/`I-` is its own type); a group's score is the mean of its
  tokens', its `word` the tokens decoded (an `[UNK]` token as the text it covers), `start`/`end`
  its characters in the text; groups labelled "O" are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bert_jax.inference.batching import Tokens, padded_batches, too_long
from bert_jax.inference.fill_mask import pipeline_decode
from bert_jax.inference.task_model import TaskPredictor
from bert_jax.inference.text_classifier import softmax
from input_pipeline.tasks.labels import LabelList
from input_pipeline.tasks.qa_token_offsets import OffsetTokenizer
from input_pipeline.tasks.records import Location, TaggedSentence
from input_pipeline.tasks.tagging_features import tagging_features, word_tags
from input_pipeline.tasks.truncation import TruncationReport
from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import join_tokens


def _tag(label: str) -> tuple[str, str]:
    """("B" or "I", entity type) as the pipeline reads a label: no prefix counts as "I"."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


class TokenClassifier(TaskPredictor):
    """A fine-tuned `BertForTokenClassification`: `TokenClassifier.load(path)(texts)`."""
    kind = "token_classification"
    task = "token classification"

    def token_logits(self, sequences: Sequence[Tokens]) -> list[np.ndarray]:
        """Per input, [its tokens, num_labels] float32 logits."""
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for batch in padded_batches(sequences, self.buckets):
            logits = self.forward(batch.input_ids, batch.input_mask, batch.segment_ids)
            for r, i in enumerate(batch.rows):
                out[i] = logits[r, :batch.lengths[r]]
        return out

    def tag_words(self, sentences: Sequence[Sequence[str]] | Sequence[TaggedSentence],
                  missing: str = "O", report: TruncationReport | None = None) -> list[list[str]]:
        """One label per word of each sentence: the prediction at the word's first sub-token;
        `missing` for a word past the model's length or without any sub-token (counted in
        `report`)."""
        sentences = [s if isinstance(s, TaggedSentence)
                     else TaggedSentence(tuple(s), None, Location("input", index=i))
                     for i, s in enumerate(sentences)]
        labels = LabelList(self.labels)
        features = tagging_features(sentences, self.tokenizer, self.buckets.max_length, labels,
                                    report=report, require_labels=False)
        lengths = features.input_mask.sum(axis=1)
        logits = self.token_logits([Tokens(list(ids[:n]), [0] * int(n))
                                    for ids, n in zip(features.input_ids, lengths)])
        predicted = np.zeros(features.input_ids.shape, np.int64)
        for r, row_logits in enumerate(logits):
            predicted[r, :len(row_logits)] = row_logits.argmax(-1)
        return word_tags(predicted, features, labels, missing)

    def __call__(self, texts: str | Sequence[str], truncate: bool = False) -> list[list[dict]]:
        """For each text, its entities: `{"entity_group", "score", "word", "start", "end"}` (see
        the module docstring). A text longer than the model takes raises ValueError, unless
        `truncate` (then the tokens past it are not tagged)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        tok = self.tokenizer
        offset_tokenizer = OffsetTokenizer(tok)
        sequences, offsets = [], []
        for i, text in enumerate(texts):
            tokens = offset_tokenizer(text)
            ids, spans = list(tokens.ids), tokens.offsets
            if len(ids) + 2 > self.buckets.max_length:
                if not truncate:
                    raise too_long(f"text {i + 1}", len(ids) + 2, self.buckets.max_length)
                ids, spans = ids[:self.buckets.max_length - 2], spans[:self.buckets.max_length - 2]
            sequences.append(Tokens([tok.cls_id, *ids, tok.sep_id], [0] * (len(ids) + 2)))
            offsets.append(spans)
        results = []
        for text, sequence, spans, logits in zip(texts, sequences, offsets, self.token_logits(sequences)):
            scores = softmax(logits[1:-1])  # [CLS] and [SEP] are not tagged
            ids = sequence.ids[1:-1]
            tokens = []
            for t, token_id in enumerate(ids):
                best = int(scores[t].argmax())
                start, end = int(spans[t][0]), int(spans[t][1])
                word = (text[start:end] if token_id == tok.unk_id
                        else tok.convert_ids_to_tokens([token_id])[0])
                tokens.append({"entity": self.labels[best], "score": scores[t, best], "word": word,
                               "id": token_id, "start": start, "end": end})
            results.append([g for g in self._groups(tokens) if g["entity_group"] != "O"])
        return results

    def _groups(self, tokens: list[dict]) -> list[dict]:
        """Adjacent tokens joined into entities as the pipeline's `group_entities` joins them."""
        groups: list[list[dict]] = []
        for token in tokens:
            if groups:
                bi, tag = _tag(token["entity"])
                if tag == _tag(groups[-1][-1]["entity"])[1] and bi != "B":
                    groups[-1].append(token)
                    continue
            groups.append([token])
        return [{"entity_group": g[0]["entity"].split("-", 1)[-1],
                 "score": float(np.mean([t["score"] for t in g])),
                 "word": self._tokens_to_string(g),
                 "start": g[0]["start"], "end": g[-1]["end"]} for g in groups]

    def _tokens_to_string(self, tokens: list[dict]) -> str:
        """The group's tokens joined as the exported tokenizer's `convert_tokens_to_string` joins
        them (WordPiece: an `[UNK]` as the text it covers, as the pipeline does; SentencePiece:
        decoded as our export's tokenizer.json decodes, `pipeline_decode`)."""
        if isinstance(self.tokenizer, SentencePieceTokenizer):
            return pipeline_decode(self.tokenizer, [t["id"] for t in tokens])
        return join_tokens(t["word"] for t in tokens)
