// The input method page: the typing language as apps/composer.py applies it, key for key (the shared
// cases in tests/ime/typing_cases.json run against both), with predictions from POST /api/predict, the
// words it learns sent to POST /api/learn, and each phrase converted again together at its end by POST
// /api/phrase (composer.end_phrase, apps/phrasing.py). Keys are handled strictly in order: each waits for
// the one before (and its prediction), so fast typing converts exactly as slow typing does.
"use strict";

// The language's keys, from GET /api/info (language/keys.py), set before the first key is handled.
let LETTERS, PAGE_SIZE, SPELL, NEXT_PAGE, PUNCTUATION, DIGITS, SPELL_INSIDE, GLUE_BEFORE, QUOTES, CONTEXT_WORDS,
  PHRASE_END, CONVERT, PHRASE_WORDS;

const state = {
  tokens: [],        // confirmed: {text, kind: word|spelled|mark|digit|newline, code, kase, word, learnt, picked,
                     //   closed: in a phrase already converted}
  lineStart: 0,      // index in tokens where the current line begins
  typed: "",         // the code being typed: "", "f", "fi" or "f "
  kase: "",          // "", "cap" or "upper"
  spelling: null,    // the word being spelled after "/"
  page: 0,
  candidates: [],    // [{word, score}] for a full code
  learning: false,   // the server learns (GET /api/info)
  lookahead: 0,      // the model's K: it may revise the last K words (GET /api/info)
  revised: [],       // [{token, old}]: words the last key replaced (highlighted until the next one)
};

const $ = (id) => document.getElementById(id);
const complete = () => state.typed.length === 2;
const placeholder = (code) => `[${code.trim()}?]`;
const shownWord = (cands, code = state.typed) => (cands.length ? cands[0].word : placeholder(code));
const cased = (w, kase) => (kase === "upper" ? w.toUpperCase() : kase === "cap" ? w.charAt(0).toUpperCase() + w.slice(1) : w);
const prediction = () => (complete() ? cased(shownWord(state.candidates), state.kase) : "");
const shown = () => state.candidates.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
const pages = () => state.candidates.length > PAGE_SIZE;
const isAlnum = (ch) => /^[\p{L}\p{N}]$/u.test(ch);
const isLetter = (ch) => LETTERS.includes(ch.toLowerCase()) && ch.length === 1;
const normalize = (text) => text.toLowerCase().replace(/[^a-z]+/g, " ").trim().split(" ").filter(Boolean);
const wordCode = (w) => (w.length >= 2 ? w.slice(0, 2) : w + " ");
const revisable = (t) => t.kind === "word" && !t.picked && !t.closed;
const learnable = (w) => w.length > 0 && w.length <= 64 && [...w.toLowerCase()].every((c) => LETTERS.includes(c));

function modelWords(t) {
  if (t.kind === "word") return [t.word === placeholder(t.code) ? t.code.trim() : t.word];
  return t.kind === "spelled" ? normalize(t.text) : [];
}

function context(end = state.tokens.length) {
  return state.tokens.slice(0, end).slice(-CONTEXT_WORDS).flatMap(modelWords).slice(-CONTEXT_WORDS);
}

// The text of tokens, spaced as English is (composer.render).
function render(tokens) {
  let out = "", glueNext = true, prevKind = "newline";
  const open = Object.fromEntries([...QUOTES].map((q) => [q, false]));
  for (const t of tokens) {
    if (t.kind === "newline") { out += "\n"; glueNext = true; prevKind = "newline"; continue; }
    let glue = glueNext, glueAfter = false;
    if (t.kind === "mark" && QUOTES.includes(t.text)) {
      open[t.text] = !open[t.text];
      glueAfter = open[t.text];
      glue = glue || !open[t.text];
    } else if (t.kind === "mark") {
      glue = glue || GLUE_BEFORE.includes(t.text);
      glueAfter = t.text === "(";
    } else if (t.kind === "digit") {
      glue = glue || prevKind === "digit";
    }
    out += glue ? t.text : " " + t.text;
    glueNext = glueAfter;
    prevKind = t.kind;
  }
  return out;
}

const lastLine = (text) => text.slice(text.lastIndexOf("\n") + 1);

// What is being typed, as shown after the line, with the space before it (composer.pending).
function pending() {
  const cur = complete() ? prediction() : state.spelling !== null ? SPELL + state.spelling : cased(state.typed.trim(), state.kase);
  if (!cur) return "";
  const done = lastLine(render(state.tokens));
  const spaced = lastLine(render([...state.tokens, { text: "x", kind: "word" }]));
  return spaced.slice(done.length, -1) + cur;
}

async function api(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

async function fetchCandidates(k) {
  state.candidates = (await api("/api/predict", { code: state.typed, context: context(), k })).candidates;
}

async function completeCode(ch) {
  state.typed += ch;
  state.page = 0;
  if (complete()) {
    await revise();
    await fetchCandidates(PAGE_SIZE + 1);
  }
}

// A lookahead model's delayed decision (composer._revise): the words accepted by typing on just before
// the new code, at most K of them, ranked again with the codes typed after them; a changed top replaces one.
async function revise() {
  const end = state.tokens.length;
  let start = end;
  while (end - start < state.lookahead && start > 0 && revisable(state.tokens[start - 1])) start -= 1;
  for (let i = start; i < end; i++) {
    const t = state.tokens[i];
    const ahead = [...state.tokens.slice(i + 1).map((u) => u.code), state.typed];
    const cands = (await api("/api/predict", { code: t.code, context: context(i), k: PAGE_SIZE + 1, ahead })).candidates;
    replace(t, shownWord(cands, t.code));
  }
}

// t shows the model word `word` now, in its case; a change is highlighted, once a key (composer._replace).
function replace(t, word) {
  if (word === t.word) return;
  if (!state.revised.some((r) => r.token === t)) state.revised.push({ token: t, old: t.text });
  t.word = word;
  t.text = cased(word, t.kase);
}

// The open phrase and its positions (apps/phrasing.py): the tokens after the last closed one or new line, at
// most PHRASE_WORDS model words; a word is one position (fixed when picked), a spelled word one per model word.
function openPhrase() {
  const tokens = state.tokens;
  let start = tokens.length, n = 0;
  while (start > 0 && !tokens[start - 1].closed && tokens[start - 1].kind !== "newline") {
    n += modelWords(tokens[start - 1]).length;
    if (n > PHRASE_WORDS) break;
    start -= 1;
  }
  const phrase = { start, codes: [], fixed: {}, open: new Map() };
  for (let i = start; i < tokens.length; i++) {
    const t = tokens[i];
    if (revisable(t)) phrase.open.set(phrase.codes.length, t);
    for (const w of modelWords(t)) {
      if (!revisable(t)) phrase.fixed[String(phrase.codes.length)] = w;
      phrase.codes.push(t.kind === "word" ? t.code : wordCode(w));
    }
  }
  return phrase;
}

// The end of a phrase (composer.end_phrase): the word being typed is finished, then the words of the open
// phrase accepted by typing on are converted again together; the phrase is closed.
async function endPhrase() {
  await finish();
  const phrase = openPhrase();
  if (phrase.open.size) {
    const { words } = await api("/api/phrase", { codes: phrase.codes, context: context(phrase.start), fixed: phrase.fixed });
    for (const [j, t] of phrase.open) replace(t, words[j]);
  }
  for (const t of state.tokens.slice(phrase.start)) t.closed = true;
}

async function letter(ch) {
  if (!state.typed) state.kase = ch !== ch.toLowerCase() ? "cap" : "";
  else if (state.kase === "cap" && ch !== ch.toLowerCase()) state.kase = "upper";
  await completeCode(ch.toLowerCase());
}

async function add(token, learn) {
  state.tokens.push(token);
  if (learn && state.learning && learnable(learn)) {
    await api("/api/learn", { word: learn.toLowerCase() });
    token.learnt = learn.toLowerCase();
  }
}

async function accept(rank = 0, picked = false) {
  const word = shownWord(state.candidates.slice(rank));
  const token = { text: cased(word, state.kase), kind: "word", code: state.typed, kase: state.kase, word, picked };
  state.typed = ""; state.kase = ""; state.candidates = []; state.page = 0;
  await add(token, rank ? word : "");
}

async function finish() {
  if (state.spelling !== null) {
    const word = state.spelling;
    state.spelling = null;
    if (word) await add({ text: word, kind: "spelled" }, word);
    return;
  }
  if (state.typed.length === 1) await completeCode(" ");
  if (complete()) await accept();
}

async function pick(n) {
  const page = shown();
  if (!(n >= 1 && n <= page.length)) return `digit ${n} picks nothing: ${page.length} candidates shown for '${state.typed.trim()}'`;
  await accept(state.page * PAGE_SIZE + n - 1, true);
  return "";
}

async function nextPage() {
  if (!complete()) return `${NEXT_PAGE} shows more candidates: type a full code first`;
  if (!pages()) return `all the candidates for '${state.typed.trim()}' are shown`;
  state.page += 1;
  if (state.candidates.length <= (state.page + 1) * PAGE_SIZE) await fetchCandidates((state.page + 2) * PAGE_SIZE + 1);
  if (state.candidates.length <= state.page * PAGE_SIZE) state.page = 0;
  return "";
}

async function backspace() {
  if (state.typed) {
    state.typed = state.typed.slice(0, -1);
    state.candidates = []; state.page = 0;
    state.kase = state.kase && state.typed ? "cap" : "";
  } else if (state.tokens.length > state.lineStart) {
    const t = state.tokens.pop();
    if (t.learnt) await api("/api/learn", { word: t.learnt, undo: true });
    if (t.kind === "word") {
      state.typed = t.code[0]; state.kase = t.kase;
      await completeCode(t.code[1]);
    } else if (t.kind === "spelled") state.spelling = t.text;
  } else return "nothing to undo on this line";
  return "";
}

async function spellKey(k) {
  if (k.length === 1 && (isAlnum(k) || (SPELL_INSIDE.includes(k) && state.spelling))) state.spelling += k;
  else if (k === " ") await finish();
  else if (k === "Enter" || k === CONVERT) await endPhrase();
  else if (k === "Backspace") state.spelling = state.spelling ? state.spelling.slice(0, -1) : null;
  else if (PUNCTUATION.includes(k)) {
    if (PHRASE_END.includes(k)) await endPhrase(); else await finish();
    await add({ text: k, kind: "mark" });
  } else return `"${k}" is not part of a word: spell letters and digits; space, Enter or Tab ends the word`;
  return "";
}

// One key ("Enter", "Backspace" or a character); returns a message when the key did nothing.
async function key(k) {
  if (state.spelling !== null) return spellKey(k);
  if (isLetter(k)) {
    if (complete()) await accept();
    await letter(k);
  } else if (k === " ") {
    if (complete()) await accept();
    else if (state.typed) await completeCode(" ");
  } else if (k === "Enter") {
    const onNothing = !state.typed;
    await endPhrase();
    if (onNothing) { await add({ text: "", kind: "newline" }); state.lineStart = state.tokens.length; }
  } else if (k === CONVERT) {
    await endPhrase();
  } else if (k === "Backspace") {
    return backspace();
  } else if (DIGITS.includes(k)) {
    if (complete()) return pick(Number(k));
    if (state.typed) return `digit ${k} picks nothing: type a second letter, or space for a one-letter word`;
    await add({ text: k, kind: "digit" });
  } else if (k === NEXT_PAGE) {
    return nextPage();
  } else if (k === SPELL || PUNCTUATION.includes(k)) {
    if (PHRASE_END.includes(k)) await endPhrase();  // before the mark is added
    else await finish();
    if (k === SPELL) state.spelling = "";
    else await add({ text: k, kind: "mark" });
  } else {
    return `"${k}" is not a key here: codes are letters, 1-9 pick, ${NEXT_PAGE} more candidates, ${SPELL} spells a word, punctuation and digits pass through, Tab converts`;
  }
  return "";
}

// The confirmed text, each word the last key revised in a span.revised (ime.css highlights it for a moment).
function acceptedNodes(text) {
  const nodes = [];
  let at = 0;
  state.tokens.forEach((t, i) => {
    const r = state.revised.find((x) => x.token === t);
    if (!r) return;
    const end = render(state.tokens.slice(0, i + 1)).length;  // where the word ends in the whole text
    const span = document.createElement("span");
    span.className = "revised";
    span.title = `revised: was ${r.old}`;
    span.textContent = t.text;
    nodes.push(text.slice(at, end - t.text.length), span);
    at = end;
  });
  return [...nodes, text.slice(at)];
}

function show() {
  const text = render(state.tokens);
  const pend = pending();
  const cur = pend.trimStart();
  $("accepted").replaceChildren(...acceptedNodes(text), pend.slice(0, pend.length - cur.length));
  const current = $("current");
  current.textContent = cur;
  current.className = complete() ? (state.candidates.length ? "word" : "word unknown")
    : state.spelling !== null ? "spelling" : cur ? "letters" : "";
  $("code").textContent = complete() ? state.typed.trim() + ":" : state.spelling !== null ? "spell:" : "";
  $("candidates").replaceChildren(...shown().map((c, i) => {
    const li = document.createElement("li");
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = String(i + 1);
    li.append(n, cased(c.word, state.kase));
    li.title = c.score === null ? "" : `score ${c.score.toFixed(2)}`;
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();  // keep the focus (and a phone's keyboard) in the input
      enqueue(() => pick(i + 1));
    });
    return li;
  }));
  const more = $("more");
  more.hidden = !(complete() && pages());
  more.textContent = `more ${NEXT_PAGE} (page ${state.page + 1})`;
}

// Keys and clicks run one at a time, in order; body[data-busy] says when work is pending. Each starts with
// no revision (as composer.key does): a revised word stays highlighted until the next key.
let queue = Promise.resolve();
let waiting = 0;
function enqueue(job) {
  waiting += 1;
  document.body.dataset.busy = "true";
  queue = queue.then(() => { state.revised = []; return job(); }).then(
    (msg) => { $("status").textContent = msg || ""; },
    (err) => { $("status").textContent = `error: ${err.message}`; },
  ).finally(() => {
    show();
    waiting -= 1;
    if (!waiting) document.body.dataset.busy = "false";
  });
}

function onKeyDown(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
  const k = e.key;
  if (k === "Tab" && e.shiftKey) return;  // Shift+Tab still moves the focus back
  if (k.length !== 1 && k !== "Enter" && k !== "Backspace" && k !== "Tab") return;  // "Unidentified": see onInput
  e.preventDefault();  // Tab too: it converts the phrase, and the focus stays
  enqueue(() => key(k === "Tab" ? CONVERT : k));
}

// On-screen keyboards often send no usable keydown: what they type lands in the input; take it as keys.
function onInput(e) {
  const text = e.target.value;
  e.target.value = "";
  for (const ch of text) enqueue(() => key(ch === "\n" ? "Enter" : ch));
}

async function onConvert(e) {
  e.preventDefault();
  const out = $("convert-out");
  try {
    out.textContent = (await api("/api/convert", { codes: $("codes").value })).text;
  } catch (err) {
    out.textContent = `error: ${err.message}`;
  }
}

function pressButton(id, keyOf) {  // keyOf: the key is known once /api/info has answered
  $(id).addEventListener("mousedown", (e) => { e.preventDefault(); enqueue(() => key(keyOf())); });
}

document.addEventListener("DOMContentLoaded", () => {
  const keys = $("keys");
  keys.addEventListener("keydown", onKeyDown);
  keys.addEventListener("input", onInput);
  keys.focus();
  pressButton("more", () => NEXT_PAGE);
  pressButton("spell", () => SPELL);
  $("convert-form").addEventListener("submit", onConvert);
  $("clear").addEventListener("click", () => enqueue(async () => {
    Object.assign(state, { tokens: [], lineStart: 0, typed: "", kase: "", spelling: null, page: 0, candidates: [] });
    keys.focus();
  }));
  $("copy").addEventListener("click", () => {
    navigator.clipboard?.writeText(render(state.tokens)).catch(() => {});
    keys.focus();
  });
  enqueue(async () => {
    const info = await (await fetch("/api/info")).json();
    ({ LETTERS, PAGE_SIZE, SPELL, NEXT_PAGE, PUNCTUATION, DIGITS, SPELL_INSIDE, GLUE_BEFORE, QUOTES, CONTEXT_WORDS,
      PHRASE_END, CONVERT, PHRASE_WORDS } = info.keys);
    state.learning = info.learning;
    state.lookahead = info.lookahead;
    $("model").textContent = info.model + (info.learning ? " · learning your words" : "");
  });
});
