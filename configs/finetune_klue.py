"""Fine-tuning on KLUE (Park et al. 2021): BERT's recipe at learning rate 5e-5, the top of the
paper's sweep, which the KLUE paper also searches over (with the batch size, warm-up and
epochs, per task). Choose the task with `--format klue/ynat` (or klue/nli, klue/sts,
klue/ner); KLUE-NER's sentences and KLUE-MRC's passages are long, so give them longer
sequences (`--set task.max_seq_length=512`; MRC is `--task qa`). Korean text keeps its case and
syllables: the tokenizer is the `--init-from` checkpoint's (a SentencePiece or cased WordPiece
vocab), unless `data.vocab_file` names another.
"""

from bert_jax.config.finetuning import default_finetuning_config


def get_config():
    config = default_finetuning_config()
    config.optimizer.learning_rate = 5e-5
    config.task.format = "klue/ynat"
    return config
