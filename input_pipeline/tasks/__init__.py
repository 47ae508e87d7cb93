"""Fine-tuning data: task files read into examples, and examples made into model inputs."""
