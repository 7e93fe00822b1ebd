"""Any model's candidates with the writer's own words ranked among them (`userdict.UserDict`).

For a code whose words the writer has taught the dictionary N times in all (n_w times for word w):

    p(w) = (1 - u) * p_model(w) + u * n_w / N,   with u = N / (N + PRIOR)

p_model is the model's scores over all its candidates for the code turned into probabilities (a softmax,
which leaves the log-probabilities of kn, the Transformer and the ensembles as they are); a word outside
the model's vocabulary has p_model = 0 and so the user-dictionary score n_w / (N + PRIOR). The share u
grows with what the writer has shown for this code: one word spelled once gets 1/6, enough to be offered
on the first page without pushing a common word off the top; used often, it comes first. A code the
writer taught nothing is passed through untouched (the model's own scores, and its own cost).
"""

import math
from collections.abc import Sequence

from jax_llm.ime.predictor import Predictor, lookahead, ranked
from jax_llm.ime.userdict import UserDict

PRIOR = 5.0
EVERY = 1 << 20  # "all the candidates" for a model's `k`


class WithUserWords:
    def __init__(self, model: Predictor, user: UserDict):
        self.model, self.user = model, user
        self.lookahead = lookahead(model)  # a lookahead model's revisions are ranked with the writer's words too

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        mine = self.user.by_code(code)
        if not mine:
            return ranked(self.model, code, context, k, ahead)
        scored = [(w, s) for w, s in ranked(self.model, code, context, EVERY, ahead) if math.isfinite(s)]
        top = max((s for _, s in scored), default=0.0)
        norm = sum(math.exp(s - top) for _, s in scored) or 1.0
        n = sum(mine.values())
        u = n / (n + PRIOR)
        p = {w: (1 - u) * math.exp(s - top) / norm for w, s in scored}
        for w, c in sorted(mine.items(), key=lambda kv: (-kv[1], kv[0])):  # new words: most used first
            p[w] = p.get(w, 0.0) + u * c / n
        best = sorted(p.items(), key=lambda kv: -kv[1])[:k]  # stable: ties keep the model's order
        return [(w, math.log(q)) for w, q in best]
