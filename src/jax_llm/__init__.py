"""jax-llm: pretrain a GPT from one text file with JAX and Flax."""

__version__ = "0.1.0"
