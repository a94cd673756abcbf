// sage-irp web page: start a one-node run of the hrm plugin, plot its SSE energies, draw the answer.
"use strict";

const $ = (id) => document.getElementById(id);

function parsePuzzle(text) {
  const t = text.trim();
  if (t.startsWith("[")) return JSON.parse(t);
  const lines = text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.trim() !== "");
  if (lines.some((l) => /[#SG]/.test(l))) return lines;
  return lines.map((l) => {
    const cells = l.trim().includes(" ") ? l.trim().split(/\s+/) : l.trim().split("");
    return cells.map((c) => (c === "." ? 0 : Number.parseInt(c, 10)));
  });
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(`${res.status}: ${data.error}${data.field ? " (field " + data.field + ")" : ""}`);
  return data;
}

function plot(points) {
  const c = $("plot"), g = c.getContext("2d"), W = c.width, H = c.height, pad = 44;
  g.clearRect(0, 0, W, H);
  c.dataset.points = String(points.length);
  g.strokeStyle = "#888"; g.strokeRect(pad, 8, W - pad - 8, H - pad - 8);
  if (!points.length) return;
  const maxE = Math.max(...points.map((p) => p[1]), 1e-9), maxS = Math.max(...points.map((p) => p[0]), 1);
  const x = (s) => pad + (s / maxS) * (W - pad - 16), y = (e) => H - pad - (e / maxE) * (H - pad - 24);
  g.fillStyle = "#222"; g.font = "11px sans-serif";
  g.fillText(maxE < 0.01 ? maxE.toExponential(1) : maxE.toPrecision(3), 2, 16); g.fillText("0", 2, H - pad); g.fillText("step " + maxS, W - 60, H - 8);
  g.strokeStyle = "#1565c0"; g.lineWidth = 2; g.beginPath();
  points.forEach(([s, e], i) => (i ? g.lineTo(x(s), y(e)) : g.moveTo(x(s), y(e))));
  g.stroke();
  g.fillStyle = "#1565c0";
  points.forEach(([s, e]) => { g.beginPath(); g.arc(x(s), y(e), 3, 0, 7); g.fill(); });
}

function drawBoard(puzzle, answer) {
  const table = document.createElement("table");
  answer.forEach((row, r) => {
    const tr = table.insertRow();
    const cells = typeof row === "string" ? row.split("") : row;
    cells.forEach((v, c) => {
      const td = tr.insertCell();
      td.textContent = v === "#" || v === "o" ? "" : String(v);
      if (v === "#") td.className = "wall";
      else if (v === "o") td.className = "path";
      else if (typeof row !== "string" && puzzle[r][c] !== 0) td.className = "given";
    });
  });
  $("board").replaceChildren(table);
  $("board").dataset.state = "solved";
}

async function streamEvents(path, onEvent) {
  // fetch instead of EventSource, so the bearer token can travel in a header
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw new Error(`${res.status}: events unavailable`);
  const reader = res.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data && onEvent(JSON.parse(data)) === false) { reader.cancel(); return; }
    }
  }
}

function say(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(new Error("cannot read the file"));
    reader.readAsDataURL(file);
  });
}

async function solveImage(file, mode, maxSteps, points) {
  // one POST /v1/solve: the server reads the picture (vision), then solves what it read
  say(`reading ${file.name}...`);
  const res = await api("POST", "/v1/solve", { image: await fileBase64(file), mode, max_steps: maxSteps });
  points.push([res.segments, res.energy]);
  plot(points);
  drawBoard(res.read, res.answer);
  $("verdict").textContent = `${res.verified ? "verified" : "not verified"} after ${res.segments} step(s), energy ${res.energy.toPrecision(4)}`;
  say(`read from ${file.name} and solved`);
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("solve").disabled = true;
  $("board").dataset.state = "running";
  $("verdict").textContent = "";
  const points = [];
  plot(points);
  try {
    const mode = $("mode").value, maxSteps = Number.parseInt($("max-steps").value, 10) || 32;
    const file = $("image").files[0];
    if (file) { await solveImage(file, mode, maxSteps, points); return; }
    let puzzle;
    try { puzzle = parsePuzzle($("puzzle").value); } catch (e) { throw new Error("cannot read the puzzle: " + e.message); }
    const toml = `[pipeline]\nname = "web"\n[nodes.solve]\nplugin = "hrm"\nconfig = { mode = "${mode}" }\n` +
                 `halt = { max_steps = ${maxSteps} }\n`;
    const run = await api("POST", "/v1/runs", { toml, inputs: { solve: puzzle } });
    say(`run ${run.id}: solving...`);
    await streamEvents(run.events, (e) => {
      if (e.kind === "step") { points.push([e.step, e.energy]); plot(points); say(`run ${run.id}: step ${e.step}, energy ${e.energy.toPrecision(4)}`); }
      if (e.kind === "end") return false;
      return true;
    });
    const result = await api("GET", `/v1/runs/${run.id}`);
    const node = result.nodes.solve;
    if (result.status === "failed" || !node.answer) throw new Error(node.detail || result.error || "no answer");
    drawBoard(puzzle, node.answer);
    $("verdict").textContent = `${node.reason === "verified" ? "verified" : "not verified"} after ${node.steps} step(s), energy ${node.energy.toPrecision(4)}`;
    say(`run ${run.id}: ${result.status}`);
  } catch (e) {
    $("board").dataset.state = "error";
    say(e.message, true);
  } finally {
    $("solve").disabled = false;
  }
});
