"""The study: the harness that scores every model by the published protocol (`evaluate`), and the
settings chosen on the dev slice for the benchmarks (`tune`)."""
