"""Tokenizers: BERT's basic tokenizer and WordPiece (`wordpiece`, ids equal to transformers'),
SentencePiece (`sentencepiece_tokenizer`), and the one for a vocab file, whichever kind
(`loading`)."""
