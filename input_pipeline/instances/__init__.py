"""What a pretraining instance is made of: next-sentence pairs (`pairs`, Google's algorithm) and
masked-LM masking (`masking`, with the counter-based random numbers of `counter_random`)."""
