"""The Trainer, its state and its callbacks."""
