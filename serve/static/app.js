// The page calls the JSON API and renders the card itself; evidence offsets are Unicode
// code points into the submitted text, so the text is indexed with Array.from.
"use strict";
let modelName = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

async function loadModel() {
  try {
    const r = await fetch("/models");
    const data = await r.json();
    modelName = data.models[0].modelName;
    document.getElementById("model-name").textContent = `${modelName} (${data.models[0].modelVersion})`;
  } catch (e) {
    showError("Could not reach the server: " + e);
  }
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }

function renderConcepts(card) {
  const box = document.getElementById("concepts");
  box.replaceChildren();
  for (const c of card.cognitive_concepts) {
    const score = c.score === null ? el("span", {class: "score null"}, "not estimated") : el("span", {class: "score"}, `${c.score}/5`);
    const section = el("section", {class: "concept", "data-concept": c.concept, "data-score": c.score === null ? "null" : String(c.score)},
      el("h4", {}, score, c.label || c.concept));
    if (c.expected_score !== null && c.expected_score !== undefined) {
      section.append(el("p", {class: "expected"}, `expected score ${c.expected_score.toFixed(2)}`));
    }
    if (c.explanation) section.append(el("p", {class: "explanation"}, c.explanation));
    if (c.evidence.length) {
      const ol = el("ol", {class: "evidence"});
      for (const ev of c.evidence) {
        const li = el("li", {"data-start": ev.start, "data-end": ev.end}, `“${ev.text}” (${ev.score.toFixed(2)})`);
        if (ev.words && ev.words.length) li.append(el("span", {class: "words"}, " — words: " + ev.words.join(", ")));
        ol.append(li);
      }
      section.append(ol);
    }
    box.append(section);
  }
}

function renderHighlighted(card, text) {
  const chars = Array.from(text);
  const concepts = chars.map(() => new Set());
  const bold = new Array(chars.length).fill(false);
  for (const c of card.cognitive_concepts) {
    for (const ev of c.evidence) {
      for (let i = ev.start; i < Math.min(ev.end, chars.length); i++) concepts[i].add(c.label || c.concept);
      // mark each listed word inside the evidence span
      const span = chars.slice(ev.start, ev.end).join("");
      for (const w of ev.words || []) {
        const re = new RegExp(`(^|[^\\p{L}\\p{N}_])(${w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})(?=$|[^\\p{L}\\p{N}_])`, "gu");
        let m;
        while ((m = re.exec(span)) !== null) {
          const before = Array.from(span.slice(0, m.index + m[1].length)).length;
          const len = Array.from(m[2]).length;
          for (let i = 0; i < len; i++) bold[ev.start + before + i] = true;
          if (m[0].length === 0) re.lastIndex++;
        }
      }
    }
  }
  const box = document.getElementById("highlighted");
  box.replaceChildren();
  let i = 0;
  while (i < chars.length) {
    const key = [...concepts[i]].sort().join(" | ");
    let j = i;
    while (j < chars.length && [...concepts[j]].sort().join(" | ") === key) j++;
    const run = key ? el("mark", {class: concepts[i].size > 1 ? "ev multi" : "ev", title: key, "data-concepts": key}) : document.createDocumentFragment();
    let k = i;
    while (k < j) {
      let m = k;
      while (m < j && bold[m] === bold[k]) m++;
      const piece = chars.slice(k, m).join("");
      run.append(bold[k] ? el("b", {class: "word"}, piece) : document.createTextNode(piece));
      k = m;
    }
    box.append(run);
    i = j;
  }
}

function renderList(id, items, fmt, empty) {
  const ul = document.getElementById(id);
  ul.replaceChildren();
  if (!items.length) ul.append(el("li", {class: "null"}, empty));
  for (const x of items) ul.append(fmt(x));
}

function renderCard(card, text) {
  document.getElementById("card-title").textContent = card.title || "Untitled article";
  document.getElementById("card-meta").textContent =
    [card.source, `model ${card.model.name} ${card.model.version}`].filter(Boolean).join(" · ");
  renderConcepts(card);
  renderHighlighted(card, text);
  renderList("sdgs", card.sdgs, s => el("li", {"data-goal": s.goal},
    `SDG ${s.goal} ${s.name}: ${pct(s.probability)}` + (s.polarity ? `, ${s.polarity}` : "") + (s.relevance ? `, ${s.relevance} relevance` : "")),
    "none above the threshold, or not estimated");
  renderList("topics", card.topics, t => el("li", {}, `${t.label}: ${pct(t.probability)}`), "not estimated");
  const lean = document.getElementById("leaning");
  if (card.political_leaning) {
    const dist = Object.entries(card.political_leaning.distribution).map(([k, v]) => `${k} ${pct(v)}`).join(", ");
    lean.textContent = `${card.political_leaning.label} (${dist})`;
    lean.className = "";
  } else {
    lean.textContent = "not estimated";
    lean.className = "null";
  }
  document.getElementById("card-json").textContent = JSON.stringify(card, null, 2);
  document.getElementById("card").hidden = false;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const text = document.getElementById("article").value;
  const body = {text};
  const title = document.getElementById("title").value.trim();
  const source = document.getElementById("source").value.trim();
  if (title) body.title = title;
  if (source) body.source = source;
  const status = document.getElementById("status");
  const button = document.getElementById("submit");
  if (!modelName) await loadModel();
  status.textContent = "working…";
  button.disabled = true;
  try {
    const r = await fetch(`/predictions/${encodeURIComponent(modelName)}?format=json`, {
      method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify(body),
    });
    const data = await r.json();
    if (!r.ok) {
      showError(`${r.status}: ${data.error}` + (data.field ? ` (field ${data.field})` : ""));
      status.textContent = "";
      return;
    }
    renderCard(data, text);
    status.textContent = "done";
  } catch (e) {
    showError("Request failed: " + e);
    status.textContent = "";
  } finally {
    button.disabled = false;
  }
}

document.getElementById("article-form").addEventListener("submit", submit);
loadModel();
