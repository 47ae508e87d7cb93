"""Fine-tuning tasks that reuse the training machinery (room for the task heads to come)."""
