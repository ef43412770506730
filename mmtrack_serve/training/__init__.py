"""Training, evaluation and dataset tools. A served worker never imports this."""
