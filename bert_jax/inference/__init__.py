"""Using a trained model: loading it from any source (`loading`), batching texts into a few
compiled shapes (`batching`), and the tasks: fill-mask, next-sentence prediction, sentence and
token vectors (`encode`), the fine-tuned task heads (`text_classifier`, `token_classifier`,
`question_answerer`, on `task_model`; QA answers chosen as `run_squad.py` chooses them in
`squad_postprocess`), the files `bert-jax predict` writes (`prediction_files`), and the StableHLO
serving export."""
