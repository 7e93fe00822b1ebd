// The input method page: the same keys as `jax-llm ime type` (see type_session.py), predictions from
// POST /api/predict with the accepted words as context. Keys are handled strictly in order: each waits
// for the one before (and its prediction), so fast typing converts exactly as slow typing does.
"use strict";

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const K = 9;               // digits 1-9 pick
const CONTEXT_WORDS = 500; // most recent accepted words sent as context

const state = {
  lines: [[]],       // accepted words, by line: {word, code, known}
  typed: "",         // the code being typed: "", "f", "fi" or "f "
  candidates: [],    // [{word, score}] for a full code
};

const $ = (id) => document.getElementById(id);
const complete = () => state.typed.length === 2;
const placeholder = (code) => `[${code.trim()}?]`;
const prediction = () =>
  !complete() ? "" : state.candidates.length ? state.candidates[0].word : placeholder(state.typed);
const currentLine = () => state.lines[state.lines.length - 1];

function context() {
  // An unknown word stands as its code letters, as the server's convert does.
  const words = state.lines.flat().map((w) => (w.known ? w.word : w.code.trim()));
  return words.slice(-CONTEXT_WORDS);
}

async function api(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

async function typeChar(ch) {
  state.typed += ch;
  if (complete()) {
    state.candidates = (await api("/api/predict", { code: state.typed, context: context(), k: K })).candidates;
  }
}

function accept(word) {
  const known = word !== undefined || state.candidates.length > 0;
  currentLine().push({ word: word ?? prediction(), code: state.typed, known });
  state.typed = "";
  state.candidates = [];
}

async function finishCode() {
  if (state.typed.length === 1) await typeChar(" ");
  if (complete()) accept();
}

// One key; returns a message when the key did nothing.
async function key(k) {
  if (k.length === 1 && LETTERS.includes(k)) {
    if (complete()) accept();
    await typeChar(k);
  } else if (k === " ") {
    if (complete()) accept();
    else if (state.typed) await typeChar(" ");
  } else if (k === "Enter") {
    if (state.typed) await finishCode();
    else state.lines.push([]);
  } else if (k === "Backspace") {
    if (state.typed) {
      state.typed = state.typed.slice(0, -1);
      state.candidates = [];
    } else if (currentLine().length) {
      const last = currentLine().pop();
      state.typed = last.code.slice(0, 1);
      await typeChar(last.code.slice(1));
    } else return "nothing to undo on this line";
  } else if (/^[1-9]$/.test(k)) {
    return pick(Number(k));
  } else if (k.length === 1) {
    return `"${k}" is not a key here: codes are lowercase letters a-z, digits 1-9 pick a candidate`;
  }
  return "";
}

function pick(n) {
  if (!complete()) return `${n} picks nothing: type a full code first`;
  if (n > state.candidates.length) return `${n} picks nothing: ${state.candidates.length} candidates`;
  accept(state.candidates[n - 1].word);
  return "";
}

function render() {
  const text = state.lines.map((line) => line.map((w) => w.word).join(" ")).join("\n");
  const cur = complete() ? prediction() : state.typed;
  const sep = cur && currentLine().length ? " " : "";
  $("accepted").textContent = text + sep;
  const current = $("current");
  current.textContent = cur;
  current.className = complete() ? (state.candidates.length ? "word" : "word unknown") : cur ? "letters" : "";
  $("code").textContent = complete() ? state.typed.trim() + ":" : "";
  const list = $("candidates");
  list.replaceChildren(...state.candidates.map((c, i) => {
    const li = document.createElement("li");
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = String(i + 1);
    li.append(n, c.word);
    li.title = c.score === null ? "" : `score ${c.score.toFixed(2)}`;
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();  // keep the focus in the editor
      enqueue(async () => pick(i + 1));
    });
    return li;
  }));
}

// Keys and clicks run one at a time, in order; body[data-busy] says when work is pending.
let queue = Promise.resolve();
let pending = 0;
function enqueue(job) {
  pending += 1;
  document.body.dataset.busy = "true";
  queue = queue.then(job).then(
    (msg) => { $("status").textContent = msg || ""; },
    (err) => { $("status").textContent = `error: ${err.message}`; },
  ).finally(() => {
    render();
    pending -= 1;
    if (!pending) document.body.dataset.busy = "false";
  });
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  if (k.length !== 1 && !["Enter", "Backspace"].includes(k)) return;
  e.preventDefault();
  enqueue(() => key(k));
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

document.addEventListener("DOMContentLoaded", () => {
  const editor = $("editor");
  editor.addEventListener("keydown", onKey);
  editor.focus();
  $("convert-form").addEventListener("submit", onConvert);
  $("clear").addEventListener("click", () => enqueue(async () => {
    state.lines = [[]];
    state.typed = "";
    state.candidates = [];
    editor.focus();
  }));
  $("copy").addEventListener("click", () => {
    const text = state.lines.map((line) => line.map((w) => w.word).join(" ")).join("\n");
    navigator.clipboard?.writeText(text).catch(() => {});
    editor.focus();
  });
  fetch("/api/info").then((r) => r.json()).then((info) => { $("model").textContent = info.model; });
  document.body.dataset.busy = "false";
  render();
});
