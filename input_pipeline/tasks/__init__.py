"""Fine-tuning data: labelled examples read from the files and datasets tasks are distributed in,
their label lists, and fixed-length features for classification, regression and tagging.

* `records`: the uniform examples every reader yields, with where each came from, and the error
  that names a file, line and field.
* `fields` / `formats`: which field holds what (mappable), and the known layouts (GLUE, KLUE,
  CoNLL-2003, SNLI, MultiNLI) with their fields and label orders.
* `delimited`, `json_records`, `conll`, `tfds_records`: the readers; `reading` picks one.
* `labels`: label lists (from the training set or given), saved beside a model as JSON.
* `truncation`: BERT's pair truncation and the report that counts every cut.
* `features` / `tagging_features`: examples to numpy arrays for the model.
* `sentence_pairs` / `sentence_features`: Sentence-BERT's NLI, STS and (anchor, positive[,
  negative]) data (SNLI, MultiNLI, KorNLI, STS-B, KorSTS, KLUE-STS, any file), each side to arrays.
* `squad_examples`, `qa_token_offsets`, `squad_features`: extractive QA (SQuAD v1.1/v2.0,
  KorQuAD 1.0, KLUE-MRC) read and cut into windows with a document stride.
"""
