"""Using a trained model: loading it from any source (`loading`), batching texts into a few
compiled shapes (`batching`), and the tasks: fill-mask, next-sentence prediction, sentence and
token vectors (`encode`), and the StableHLO serving export."""
