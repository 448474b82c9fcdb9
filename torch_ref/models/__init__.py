"""The PyTorch twins of jax_tx.models: the same file names, the same equations in the same order."""
