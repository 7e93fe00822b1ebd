"""`jax-llm ime serve`: the input method over HTTP, a JSON API and one web page (Starlette + uvicorn).

    POST /api/predict  {"code": "fi", "context": ["the", "words", "accepted"], "k": 9, "ahead": ["tw"]}
                       -> {"code": "fi", "candidates": [{"word": "first", "score": -3.2}, ...]}
                       ("ahead": the codes typed after `code`, read by a lookahead model, ignored by others)
    POST /api/convert  {"codes": "Fitw, chinme.", "k": 1}   (the typing language of `composer.py`)
                       -> {"words": [...], "text": "First two, character input method.",
                           "steps": [{"kind", "code", "word", "known", "candidates"}, ...]}
                       (each phrase, and the whole string at its end, is converted together: `composer.end_phrase`)
    POST /api/phrase   {"codes": ["re", "bo"], "context": ["i"], "fixed": {"1": "book"}} -> {"words": ["read", "book"]}
                       (a phrase's words decoded together after `context`, `fixed` kept: `convert_phrase`)
    POST /api/learn    {"word": "ishmael", "undo": false} -> {"word": "ishmael", "learnt": true, "count": 1}
    GET  /api/info     -> {"model": ..., "lookahead": 0, "learning": true, "limits": {...}, "keys": {...}}
                       ("keys": the typing language's constants, `keys.page_keys`: the page has no copy)
    GET  /             the page (static/index.html, ime.js, ime.css: plain files, no build step)

A code is two letters a-z, or one letter (a one-letter word's code; "i" and "i " are the same). Context
words are lowercase a-z (the model's words). Every bad request gets a 4xx and {"error": "one line"}:
400 for a body that is not a JSON object, 413 for a body over 64 KiB, 422 for a wrong field (type,
characters, length), 404/405 for a wrong path or method. Before any of that (`guard.py`): 421 for a Host
that is not this server's (127.0.0.1, localhost, [::1], `--host`, `--allow-host`), 403 for an Origin
other than its own page's, 415 for a POST that is not `Content-Type: application/json`. The model is loaded once, before the socket
opens; a prediction is a function of the request and the user dictionary (the Transformer's keystroke
cache is its own, behind its own lock). The user dictionary (`--user-dict`, `--no-learn`, as for `ime type`)
ranks every prediction and conversion; only /api/learn changes it (403 under `--no-learn`), and
/api/convert never does.
"""

import argparse
import json
import math
import socket
import sys
from importlib import resources

from jax_llm.errors import UserError
from jax_llm.ime.apps import guard, userdict
from jax_llm.ime.language import keys
from jax_llm.ime.language.codes import LETTERS, word_code
from jax_llm.ime.predictor import Predictor

MAX_BODY = 64 * 1024
MAX_CONTEXT_WORDS = 1000
MAX_WORD_CHARS = 64
MAX_CODES_CHARS = 4000
MAX_K = 1000  # a code has at most 910 words in shakespeare; the page asks for one page more at a time
MAX_AHEAD = 16  # codes after the one ranked (a lookahead model reads its K of them)
MAX_PHRASE = keys.PHRASE_WORDS  # codes of a phrase converted together (the page sends at most that many)
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/ime.js": ("ime.js", "text/javascript; charset=utf-8"),
          "/ime.css": ("ime.css", "text/css; charset=utf-8")}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _letters(s: str) -> bool:
    return bool(s) and all(c in LETTERS for c in s)


def _int_field(data: dict, name: str, default: int, hi: int) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(422, f"'{name}' must be an integer")
    if not 1 <= value <= hi:
        raise ApiError(422, f"'{name}' must be between 1 and {hi}, got {value}")
    return value


def parse_code(value, name: str = "'code'") -> str:
    """The code field as the model wants it: "fi", or "i " for a one-letter word ("i" accepted too)."""
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string")
    code = value[:-1] if len(value) == 2 and value[1] == " " else value
    if len(code) > 2:
        raise ApiError(422, f"{name} must be one or two letters, got {len(value)} characters")
    if not _letters(code):
        raise ApiError(422, f"{name} must be lowercase letters a-z, got {value!r}")
    return code if len(code) == 2 else code + " "


def _list_field(value, name: str, items: str, most: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(422, f"'{name}' must be a list of {items}")
    if len(value) > most:
        raise ApiError(422, f"'{name}' holds {len(value)} {items}, at most {most}")
    return value


def parse_ahead(value) -> list[str]:
    """The codes typed after the one ranked, each checked as `code` is."""
    return [parse_code(c, f"'ahead'[{i}]") for i, c in enumerate(_list_field(value, "ahead", "codes", MAX_AHEAD))]


def parse_context(value) -> list[str]:
    value = _list_field(value, "context", "words", MAX_CONTEXT_WORDS)
    for i, w in enumerate(value):
        parse_word(w, f"'context'[{i}]")
    return value


def parse_word(value, name: str) -> str:
    """A model word: 1 to MAX_WORD_CHARS lowercase letters a-z."""
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string")
    if len(value) > MAX_WORD_CHARS:
        raise ApiError(422, f"{name} is {len(value)} characters long, at most {MAX_WORD_CHARS}")
    if not _letters(value):
        raise ApiError(422, f"{name} must be lowercase letters a-z, got {value!r}")
    return value


def parse_fixed(value, codes: list[str]) -> dict[int, str]:
    """{"position": word}: a position of `codes` ("0", "1", ...) and a word with that position's code."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(422, "'fixed' must be an object of positions and words")
    fixed = {}
    for key, word in value.items():
        name = f"'fixed'[{key!r}]"[:80]
        if not (key.isascii() and key.isdigit() and len(key) <= 4 and int(key) < len(codes)):
            raise ApiError(422, f"{name} is no position of the {len(codes)} codes: \"0\", \"1\", ... as strings")
        fixed[int(key)] = parse_word(word, name)
        if word_code(word) != codes[int(key)]:
            raise ApiError(422, f"{name} is {word!r}, whose code is not {codes[int(key)].strip()!r}")
    return fixed


def _candidates(pairs) -> list[dict]:
    return [{"word": w, "score": float(s) if math.isfinite(s) else None} for w, s in pairs]


def predict(predictor: Predictor, data: dict) -> dict:
    code = parse_code(data.get("code"))
    context = parse_context(data.get("context"))
    k = _int_field(data, "k", 9, MAX_K)
    ahead = parse_ahead(data.get("ahead"))
    return {"code": code, "candidates": _candidates(predictor.candidates(code, context, k, ahead))}


def convert(predictor: Predictor, data: dict) -> dict:
    from jax_llm.ime.apps.composer import compose, render

    codes = data.get("codes")
    if not isinstance(codes, str):
        raise ApiError(422, "'codes' must be a string")
    if len(codes) > MAX_CODES_CHARS:
        raise ApiError(422, f"'codes' is {len(codes)} characters long, at most {MAX_CODES_CHARS}")
    k = _int_field(data, "k", 1, MAX_K)
    try:
        tokens = compose(codes, predictor, k).tokens
    except UserError as e:
        raise ApiError(422, str(e)) from None
    return {"words": [t.text for t in tokens if t.kind != "newline"], "text": render(tokens),
            "steps": [{"kind": t.kind, "code": t.code, "word": t.text, "known": t.kind != "word" or bool(t.candidates),
                       "candidates": _candidates(t.candidates[:k])} for t in tokens if t.kind != "newline"]}


def phrase(predictor: Predictor, data: dict) -> dict:
    """The words of a phrase of codes, converted together (the page, at the end of a phrase)."""
    if "codes" not in data:
        raise ApiError(422, "'codes' must be a list of codes")
    codes = [parse_code(c, f"'codes'[{i}]") for i, c in enumerate(_list_field(data["codes"], "codes", "codes",
                                                                               MAX_PHRASE))]
    context = parse_context(data.get("context"))
    fixed = parse_fixed(data.get("fixed"), codes)
    return {"words": list(predictor.convert_phrase(codes, context, fixed)) if codes else []}


def learn(user: "userdict.UserDict", data: dict) -> dict:
    """One word learnt, or (undo) taken back: the page's only way to change the user dictionary."""
    if not user.learning:
        raise ApiError(403, "this server does not learn (--no-learn)")
    word, undo = data.get("word"), data.get("undo", False)
    if not isinstance(undo, bool):
        raise ApiError(422, "'undo' must be true or false")
    if not userdict.valid_word(word):
        raise ApiError(422, f"'word' must be 1 to {userdict.MAX_WORD_CHARS} lowercase letters a-z, got {word!r}"[:200])
    try:
        if undo:
            user.unlearn(word)
        else:
            user.learn(word)
    except UserError as e:  # the file could not be read or written: the server's problem, said in one line
        raise ApiError(500, str(e)) from None
    return {"word": word, "learnt": not undo, "count": user.count(word)}


async def read_json(request) -> dict:
    """The body as a JSON object, refusing more than MAX_BODY bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length", "")  # uvicorn already refuses a malformed one
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def create_app(predictor: Predictor, model_name: str = "", user: "userdict.UserDict | None" = None):
    """The Starlette app around one loaded model (ranked with `user`'s words when the caller wraps it so:
    `combine.WithUserWords`), changing `user` only through /api/learn."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    pages = {path: (resources.files("jax_llm.ime.apps").joinpath("static", name).read_bytes(), media)
             for path, (name, media) in STATIC.items()}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=HEADERS)

    async def page(request):
        body, media = pages[request.url.path]
        return Response(body, media_type=media, headers=HEADERS)

    async def api_predict(request):
        # A prediction takes well under a millisecond: answer on the event loop, no thread hop.
        return JSONResponse(predict(predictor, await read_json(request)), headers=HEADERS)

    async def api_convert(request):
        data = await read_json(request)
        return JSONResponse(await run_in_threadpool(convert, predictor, data), headers=HEADERS)

    async def api_phrase(request):
        data = await read_json(request)
        return JSONResponse(await run_in_threadpool(phrase, predictor, data), headers=HEADERS)

    async def api_learn(request):
        data = await read_json(request)
        if user is None:
            raise ApiError(403, "this server has no user dictionary")
        return JSONResponse(await run_in_threadpool(learn, user, data), headers=HEADERS)

    async def api_info(request):
        return JSONResponse({"model": model_name, "lookahead": predictor.lookahead,
                             "learning": bool(user and user.learning), "limits": {
            "body_bytes": MAX_BODY, "context_words": MAX_CONTEXT_WORDS, "word_chars": MAX_WORD_CHARS,
            "codes_chars": MAX_CODES_CHARS, "k": MAX_K, "ahead": MAX_AHEAD, "phrase": MAX_PHRASE},
            "keys": keys.page_keys()},
            headers=HEADERS)

    async def on_api_error(request, exc: ApiError):
        return error(exc.status, str(exc))

    async def on_http_error(request, exc: HTTPException):
        return error(exc.status_code, exc.detail)

    async def on_crash(request, exc: Exception):  # a bug, not the client's fault: still one JSON line
        print(f"jax-llm serve: internal error on {request.url.path}: {exc!r}", file=sys.stderr)
        return error(500, "internal error")

    async def no_icon(request):
        return Response(status_code=204)

    routes = [Route(path, page, methods=["GET"]) for path in STATIC] + [Route("/favicon.ico", no_icon)]
    routes += [Route("/api/predict", api_predict, methods=["POST"]),
               Route("/api/convert", api_convert, methods=["POST"]),
               Route("/api/phrase", api_phrase, methods=["POST"]),
               Route("/api/learn", api_learn, methods=["POST"]),
               Route("/api/info", api_info, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={
        ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash})


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, before uvicorn accepts: "serving" is then true
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e}") from None
    return sock


def serve_command(args) -> int:
    import uvicorn

    from jax_llm.ime.predictor import load_predictor
    from jax_llm.ime.combine import WithUserWords

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    for name in args.allow_host:  # refused before the model loads, as a bad --port is
        guard.parse_allowed(name, 1)
    user = userdict.open_for(args)
    predictor = WithUserWords(load_predictor(args.model), user)  # once, before the socket opens
    app = create_app(predictor, model_name=str(args.model), user=user)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    hosts = guard.allowed_hosts(host, port, args.allow_host)
    app = guard.Guard(app, hosts)
    shown = f"[{host}]" if ":" in host else host
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"jax-llm: warning: listening on {host}, reachable from other machines", file=sys.stderr)
    if host in guard.ANY_ADDRESS:  # every address: print one this machine's browser may open
        shown = "[::1]" if ":" in host else "127.0.0.1"
    print(f"jax-llm: serving the input method at http://{shown}:{port}/ (model: {args.model}); "
          "Ctrl-C stops", flush=True)
    print(f"jax-llm: answering requests addressed to {', '.join(hosts)} (--allow-host adds a name), "
          "from this page or from clients that are no web page", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=3)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly, then re-raises Ctrl-C: stopping is normal
        pass
    print("jax-llm: server stopped", flush=True)
    return 0


def add_parser(ime_subparsers) -> None:
    p = ime_subparsers.add_parser("serve", help="web page and JSON API for the input method",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="kn",
                   help="model directory from `jax-llm ime train-ngram`, or kn/backoff (default: kn)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="answer requests addressed to NAME too (repeatable): with --host 0.0.0.0, the names "
                        "other machines use for this one; only 127.0.0.1, localhost, [::1] and --host otherwise")
    userdict.add_options(p)
    p.set_defaults(func=serve_command)
