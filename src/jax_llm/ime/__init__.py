"""The first-two-character input method (FTCIM): codes, n-gram and Transformer models, harness."""
