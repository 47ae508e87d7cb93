"""Training vocabularies: WordPiece (`wordpiece`) and SentencePiece (`sentencepiece`)."""
