// The page of nmt-serve: translation as you type (debounced), alternatives on demand, and the cross-attention
// of a chosen sentence drawn on a canvas. Everything comes from the native API (/api/info, /api/translate).
"use strict";

const DEBOUNCE_MS = 300;
const $ = (id) => document.getElementById(id);
const state = { info: null, seq: 0, controller: null, timer: null };

function apiKey() {
  return $("api-key").value.trim();
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey()) headers.Authorization = "Bearer " + apiKey();
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: body === undefined ? undefined : state.controller.signal,
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function lines() {
  return $("source").value.split("\n");
}

function request(extra) {
  const beam = Math.max(1, Math.min(Number($("beam").value) || 1, state.info.limits.max_beam_size));
  return Object.assign({ text: $("source").value, beam_size: beam }, extra);
}

// One request at a time: a newer one aborts the older, and only the newest answer is shown.
async function send(extra) {
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  const seq = ++state.seq;
  const started = performance.now();
  $("status").className = "status busy";
  try {
    const data = await api("api/translate", request(extra));
    if (seq !== state.seq) return null;
    $("timing").textContent = `${Math.round(performance.now() - started)} ms`;
    showError("");
    return data;
  } catch (err) {
    if (err.name !== "AbortError" && seq === state.seq) showError(err.message);
    return null;
  } finally {
    if (seq === state.seq) $("status").className = "status ready";
  }
}

async function translate() {
  const source = $("source").value;
  $("counter").textContent = `${source.length} / ${state.info.limits.max_chars} characters`;
  fillLineSelect();
  if (!source.trim()) {
    $("translation").textContent = "";
    $("translation").dataset.source = source;
    return;
  }
  const data = await send({});
  if (!data) return;
  $("translation").textContent = data.translations[0].text;
  $("translation").dataset.source = source;
}

function fillLineSelect() {
  const select = $("line-select");
  const chosen = select.value;
  select.replaceChildren();
  lines().forEach((line, i) => {
    if (!line.trim()) return;
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = `${i + 1}: ${line.length > 40 ? line.slice(0, 40) + "…" : line}`;
    select.append(option);
  });
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

async function showAlternatives() {
  const maxN = state.info.limits.max_n_best;
  const beam = Math.max(Number($("beam").value) || 1, maxN);
  $("beam").value = Math.min(beam, state.info.limits.max_beam_size);
  const data = await send({ n_best: Math.min(maxN, Number($("beam").value)) });
  if (!data) return;
  const box = $("nbest");
  box.replaceChildren();
  data.translations[0].lines.forEach((line) => {
    if (!line.source) return;
    const src = document.createElement("div");
    src.className = "src";
    src.textContent = line.source;
    const list = document.createElement("ol");
    line.hypotheses.forEach((h) => {
      const item = document.createElement("li");
      item.textContent = h.text;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = h.score.toFixed(3);
      item.append(score);
      list.append(item);
    });
    box.append(src, list);
  });
  box.hidden = false;
}

async function showAttention() {
  const line = Number($("line-select").value || 0);
  const data = await send({ attention: { text: 0, line } });
  if (!data || !data.attention) return;
  $("attention").hidden = false;
  $("attention-title").textContent = `Cross-attention of sentence ${line + 1} (decoder layer ${data.attention.layer})`;
  drawHeatmap($("heatmap"), data.attention);
}

// rows: target pieces, columns: source pieces; each row's largest weight framed (its alignment).
function drawHeatmap(canvas, attention) {
  const { source, target, weights } = attention;
  const ctx = canvas.getContext("2d");
  const font = "13px system-ui, sans-serif";
  ctx.font = font;
  const textWidth = (labels) => Math.max(...labels.map((l) => ctx.measureText(l).width));
  const cell = 30;
  const left = Math.ceil(textWidth(target)) + 14;
  const top = Math.ceil(textWidth(source)) + 14;
  const ratio = window.devicePixelRatio || 1;
  const width = left + cell * source.length + 4;
  const height = top + cell * target.length + 4;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.font = font;
  const top1 = Math.max(...weights.map((row) => Math.max(...row))) || 1;
  weights.forEach((row, t) => {
    const best = row.indexOf(Math.max(...row));
    row.forEach((w, s) => {
      const shade = Math.round(255 * (1 - Math.sqrt(w / top1))); // the largest weight is the darkest cell
      ctx.fillStyle = `rgb(${shade}, ${Math.round(shade * 0.9 + 20)}, 255)`;
      ctx.fillRect(left + s * cell, top + t * cell, cell - 1, cell - 1);
      if (s === best) {
        ctx.strokeStyle = "#c0392b";
        ctx.lineWidth = 2;
        ctx.strokeRect(left + s * cell + 1, top + t * cell + 1, cell - 3, cell - 3);
      }
    });
  });
  ctx.fillStyle = "#1d232b";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  target.forEach((label, t) => ctx.fillText(label, left - 6, top + t * cell + cell / 2));
  source.forEach((label, s) => {
    ctx.save();
    ctx.translate(left + s * cell + cell / 2, top - 6);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(label, 0, 0);
    ctx.restore();
  });
  canvas.dataset.rows = String(target.length);
  canvas.dataset.columns = String(source.length);
}

async function start() {
  try {
    state.info = await api("api/info");
  } catch (err) {
    showError(`cannot reach the server: ${err.message}`);
    return;
  }
  const { source, target } = state.info;
  $("pair").textContent = `${source.name} → ${target.name}`;
  $("source-title").textContent = `${source.name} (${source.code})`;
  $("target-title").textContent = `${target.name} (${target.code})`;
  $("beam").value = state.info.decode.beam_size;
  $("beam").max = state.info.limits.max_beam_size;
  $("key-box").hidden = !state.info.key_required;
  $("api-key").value = localStorage.getItem("nmt-api-key") || "";
  $("api-key").addEventListener("change", () => localStorage.setItem("nmt-api-key", apiKey()));
  $("status").textContent = state.info.ready ? "ready" : "warming up";
  $("status").className = "status ready";
  $("source").addEventListener("input", () => {
    clearTimeout(state.timer);
    state.timer = setTimeout(translate, DEBOUNCE_MS);
  });
  $("nbest-button").addEventListener("click", showAlternatives);
  $("attention-button").addEventListener("click", showAttention);
  $("source").focus();
}

start();
