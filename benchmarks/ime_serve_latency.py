"""Latency of `jax-llm ime serve`'s POST /api/predict over real HTTP (target: median under 10 ms, n-gram model).

Starts the server as a subprocess on a free loopback port (or measures one already running with --url),
then sends one keystroke's prediction at a time, the way the page does: the code of the next word of a
text, with the words before it as context. Prints min/median/p90/p99/max over a kept-alive connection
and over a new connection per request, the model's own time for the same calls in-process, and the machine.

    python benchmarks/ime_serve_latency.py --model kn --requests 2000
"""

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from urllib.parse import urlparse

TEXT = """the first two character input method types every english word as its first two letters and a word
of one letter as that letter and a space so that a whole sentence is typed with about half the keys the
machine guesses each word from the code and the words already accepted and the person picks another
candidate with a digit when the guess is wrong to be or not to be that is the question whether tis nobler
in the mind to suffer the slings and arrows of outrageous fortune or to take arms against a sea of troubles
and by opposing end them""".split()


def start_server(model: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "jax_llm", "ime", "serve", "--model", model, "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(600)
    m = re.search(r"http://\S+?:\d+", line[0] if line else "")
    if not m:
        proc.kill()
        sys.exit(f"the server did not start: {line}")
    return proc, m.group(0)


def workload(n: int, context_words: int) -> list[dict]:
    out = []
    for i in range(n):
        j = i % len(TEXT)
        word = TEXT[j]
        history = (TEXT * 2)[len(TEXT) + j - context_words: len(TEXT) + j] if context_words else []
        out.append({"code": word[:2] if len(word) > 1 else word + " ", "context": history, "k": 9})
    return out


def measure(host: str, port: int, bodies: list[dict], keep_alive: bool) -> list[float]:
    times, conn = [], None
    for body in bodies:
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/api/predict", body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        payload = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            sys.exit(f"HTTP {r.status}: {payload[:200]!r}")
        if not keep_alive:
            conn.close()
            conn = None
    if conn:
        conn.close()
    return times


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return (f"{name:<34} n={len(ms):<5} min {min(ms):7.3f}  median {statistics.median(ms):7.3f}  "
            f"p90 {q[89]:7.3f}  p99 {q[98]:7.3f}  max {max(ms):7.3f} ms")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except (OSError, AttributeError):
        pass
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("starlette", "uvicorn"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
            f"{versions}; load average {load} (other work on this machine distorts the figures)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="kn", help="model directory or kn/backoff (default: kn)")
    ap.add_argument("--url", help="measure a server already running there instead of starting one")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--context", type=int, default=50, help="words of context sent with each request")
    args = ap.parse_args()

    proc = None
    url = args.url
    if not url:
        proc, url = start_server(args.model)
    try:
        u = urlparse(url)
        bodies = workload(args.requests, args.context)
        measure(u.hostname, u.port, workload(args.warmup, args.context), keep_alive=True)
        print(machine())
        print(f"server {url}, model {args.model}, context {args.context} words, k=9")
        kept = measure(u.hostname, u.port, bodies, keep_alive=True)
        print(summary("POST /api/predict, kept-alive", kept))
        fresh = measure(u.hostname, u.port, bodies[: max(100, args.requests // 4)], keep_alive=False)
        print(summary("POST /api/predict, new connection", fresh))
        if not args.url:
            from jax_llm.ime.predictor import load_predictor  # only here: --url measures a server without jax_llm

            predictor = load_predictor(args.model)
            own = []
            for b in bodies:
                t0 = time.perf_counter()
                predictor.candidates(b["code"], b["context"], b["k"])
                own.append((time.perf_counter() - t0) * 1000)
            print(summary("model.candidates in-process", own))
        verdict = "under" if statistics.median(kept) < 10 else "OVER"
        print(f"median {statistics.median(kept):.3f} ms: {verdict} the 10 ms target")
    finally:
        if proc:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
