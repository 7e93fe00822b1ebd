"""Training speed of the input-method Transformer: the candidate-only output layer against the masked
full softmax it replaces, same model, same batches, interleaved in one process, as a ratio.

    python benchmarks/ime_candidates.py --data-dir ../shared/data [--dataset shakespeare] [--block 64] [--batch 16]

Both objectives train the model `jax-llm ime train --dataset D --block-size B --set batch_size=N` trains
(`ime-small`, confirmed words, tied output layer), through `train.build_engine`, in calls of
`steps_per_call` steps; each round times one call of each. The losses of the two are printed side by side:
they must agree (the same maths).
"""

import argparse
import os
import platform
import time

import jax
import numpy as np

from jax_llm.config import make_config
from jax_llm.ime.transformer import candidates, job
from jax_llm.ime.language.words import dev_split, load_corpus
from jax_llm.train import build_engine, step_batches


def masked_objective(layout):
    def masked(model, batch, key=None):
        h = model.hidden(batch["inputs"], batch.get("aux"), dropout_key=key)
        return candidates.masked_nll(h.reshape(-1, h.shape[-1]), model.output_embedding(),
                                     batch["targets"].reshape(-1), layout)
    return masked


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="shakespeare")
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--set", action="append", default=[], help="more config overrides, key=value")
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; jax {jax.__version__}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    corpus = load_corpus(args.dataset, args.data_dir)
    vocab = job.ime_vocab(corpus)
    train = job.streams(vocab, dev_split(corpus.train)[0], confirmed=True)
    cfg = make_config("ime-small", [f"block_size={args.block}", f"batch_size={args.batch}", *args.set])
    for key, value in job.ime_sizes(vocab, True).items():
        cfg.set(key, value)
    layout = candidates.fit_layout(vocab.code_of, train.inputs, train.targets, args.batch * args.block)
    print(f"{args.dataset}: {len(vocab)} words; model {cfg.model.n_layer} layers x {cfg.model.n_embd}, "
          f"batch {args.batch} x {args.block}; {cfg.train.steps_per_call} steps per call; "
          f"tiles per class {dict(zip(layout.widths, layout.capacity))}")
    engines = {"candidates": build_engine(cfg, objective=candidates.objective(layout)),
               "masked softmax": build_engine(cfg, objective=masked_objective(layout))}
    k = cfg.train.steps_per_call
    times = {name: [] for name in engines}
    losses = {name: [] for name in engines}
    for r in range(args.rounds + 1):  # round 0 compiles: not timed
        steps = np.arange(1 + r * k, 1 + (r + 1) * k)
        for name, engine in engines.items():
            batches = step_batches(engine, train, steps)
            t0 = time.perf_counter()
            engine.state, loss = engine.train_steps(engine.state, batches, jax.random.key(cfg.train.seed), steps)
            loss = np.asarray(jax.block_until_ready(loss))
            if r:
                times[name].append((time.perf_counter() - t0) / k)
            losses[name] += loss.tolist()
    tokens = args.batch * args.block
    ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    for name in engines:
        print(f"{name:15s} {ms[name]:7.1f} ms/step  {tokens / ms[name] * 1000:8.0f} tokens/s  "
              f"(median of {args.rounds} calls of {k} steps)")
    print(f"speed-up: {ms['masked softmax'] / ms['candidates']:.2f}x")
    diff = np.max(np.abs(np.array(losses["candidates"]) - np.array(losses["masked softmax"])))
    print(f"loss at step {len(losses['candidates'])}: {losses['candidates'][-1]:.4f} (candidates), "
          f"{losses['masked softmax'][-1]:.4f} (masked softmax); largest difference over all steps {diff:.1e}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
