"""The input method's Transformer: the job for the engine (`job`), the candidate-only output layer
(`candidates`), training and warm start (`train`), prediction (`predictor`), its commands (`cli`).
Importing this package imports no JAX; its modules do."""
