"""n-gram FTCIM models: the published backoff baseline, and interpolated modified Kneser-Ney.

Both predict word i from code i and what came before it (online: never a later code). Everything is
numpy arrays of sorted int64 keys, so a model trains in seconds, saves as one .npz and loads in
milliseconds; a lookup is a binary search (`np.searchsorted`).

backoff (the study's baseline): for each order k it counts (code_{i-k+1..i}) -> word_i and predicts the
most frequent word of the longest code context seen in training. Ties go to the word seen first in
training: that reproduces the published table (breaking them by overall frequency instead scores about
one point higher on test from order 3 up, so the study's figures depend on it).

kn: two interpolated modified-Kneser-Ney models, each conditioned on the typed code, so its candidates
are exactly the words with that code: P(w | history, code_i), with history = the previous codes
("codes") or the previous confirmed words ("words"). Each level stores both the raw-count and the
continuation-count estimate, so one model of order N answers exactly as a model trained at any order
<= N would; tuning orders then costs no retraining. The two models are mixed linearly, and that mixture
again with two recency caches over the last `cache_window` confirmed words, which weight a word by how
recently it was typed: one holds the words typed with this code, the other those that followed the same
previous word (the caches learn new words too). Orders, weights and decays are tuned on a dev slice
carved from the end of train (`words.dev_split`), never on test.

The modules, one part each:

- `backoff`: `Backoff`, the published baseline, and its per-order arrays (`BackoffLevel`).
- `kn_table`: `KNTable`, one Kneser-Ney table, and its per-level arrays (`KNLevel`).
- `cache`: the recency caches: `ConfirmedWords` (the confirmed words as ids, codes and candidate columns)
  and the caches' probabilities.
- `kn`: `KN`, the two tables blended with the caches (`blend`), and its settings (`KNConfig`).
- `tune`: `tune` and `train_kn`: the settings chosen on the dev slice.
- `store`: `train` by kind, `save`, `load`, and the default model (`default_model_dir`).
- `sorted_keys`: the lookups in sorted key arrays that the others share.
"""

from jax_llm.ime.ngram.backoff import Backoff, BackoffLevel
from jax_llm.ime.ngram.cache import ConfirmedWords
from jax_llm.ime.ngram.kn import CONTEXTS, KN, CodeGroup, KNConfig, blend
from jax_llm.ime.ngram.kn_table import KNLevel, KNTable
from jax_llm.ime.ngram.store import (FORMAT_VERSION, MODEL_KINDS, default_model_dir, load, load_or_train_default,
                                     save, train)
from jax_llm.ime.ngram.tune import train_kn, tune

__all__ = ["Backoff", "BackoffLevel", "CONTEXTS", "CodeGroup", "ConfirmedWords", "FORMAT_VERSION", "KN",
           "KNConfig", "KNLevel", "KNTable", "MODEL_KINDS", "blend", "default_model_dir", "load",
           "load_or_train_default", "save", "train", "train_kn", "tune"]
