// fpga_gan fitting room: plain JavaScript over the JSON API (no build step, nothing fetched
// from outside this server).
"use strict";

const state = { person: null, garment: null, upload: null, catalogue: null };
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `the server answered ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `the server answered ${response.status}`);
  return data;
}

function timings(t, backend) {
  const parts = Object.entries(t).map(([k, v]) => `${k.replace(/_ms$/, "")} ${v.toFixed(1)} ms`);
  return `${backend} backend: ${parts.join(", ")}`;
}

function thumbnail(entry, kind, onPick) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.id = entry.id;
  button.className = `${kind}-choice`;
  button.title = entry.id;
  const img = document.createElement("img");
  img.src = entry.url;
  img.alt = `${kind} ${entry.id}`;
  button.appendChild(img);
  button.addEventListener("click", () => {
    document.querySelectorAll(`.${kind}-choice`).forEach((b) => b.classList.remove("selected"));
    button.classList.add("selected");
    onPick(entry);
  });
  return button;
}

function ready() {
  const have = state.person && (state.garment || state.upload);
  $("tryon-button").disabled = !have;
  $("edit-button").disabled = !(state.garment || state.upload);
}

function garmentBody() {
  return state.upload ? { garment_upload: state.upload } : { garment: state.garment };
}

function fillSelect(select, values, keepLabel) {
  select.innerHTML = "";
  const keep = document.createElement("option");
  keep.value = "";
  keep.textContent = keepLabel;
  select.appendChild(keep);
  for (const v of values) {
    const option = document.createElement("option");
    option.value = v;
    option.textContent = v.replace(/_/g, " ");
    select.appendChild(option);
  }
}

function drawPose(keypoints, size) {
  const canvas = $("pose-overlay");
  const [h, w] = size;
  canvas.width = w * 4;
  canvas.height = h * 4;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("show-pose").checked || !keypoints) return;
  ctx.fillStyle = "#e63946";
  for (const [x, y] of keypoints) {
    if (x <= 0 && y <= 0) continue;          // not detected
    ctx.beginPath();
    ctx.arc((x + 0.5) * 4, (y + 0.5) * 4, 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}

async function tryOn() {
  showError("");
  $("tryon-button").disabled = true;
  $("tryon-timings").textContent = "running…";
  try {
    const data = await api("/api/fitting-room", { person: state.person, ...garmentBody() });
    $("tryon-result").src = data.image;
    state.pose = data;
    drawPose(data.keypoints, data.size);
    $("tryon-timings").textContent = timings(data.timings_ms, data.backend) + ` (pose: ${data.pose_source})`;
  } catch (e) {
    $("tryon-timings").textContent = "";
    showError(e.message);
  } finally {
    ready();
  }
}

async function applyEdit(event) {
  event.preventDefault();
  showError("");
  const form = $("edit-form");
  const edit = {};
  for (const key of ["colour", "colour2", "length", "fit"]) {
    if (form.elements[`use-${key}`].checked) edit[key] = form.elements[key].value;
  }
  for (const key of ["pattern", "kind", "sleeve", "neckline"]) {
    if (form.elements[key].value) edit[key] = form.elements[key].value;
  }
  if (Object.keys(edit).length === 0) { showError("choose at least one attribute to change"); return; }
  $("edit-timings").textContent = "running…";
  try {
    const data = await api("/api/design/edit", { ...garmentBody(), edit });
    $("edit-source").src = data.source;
    $("edit-result").src = data.image;
    $("edit-timings").textContent = timings(data.timings_ms, data.backend);
  } catch (e) {
    $("edit-timings").textContent = "";
    showError(e.message);
  }
}

async function sample(event) {
  event.preventDefault();
  showError("");
  const form = $("sample-form");
  const query = new URLSearchParams({ n: form.elements.n.value, seed: form.elements.seed.value });
  if (form.elements.kind.value) query.set("kind", form.elements.kind.value);
  $("sample-timings").textContent = "running…";
  try {
    const data = await api(`/api/design/sample?${query}`);
    const strip = $("samples");
    strip.innerHTML = "";
    for (const url of data.images) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "a sampled design";
      strip.appendChild(img);
    }
    $("sample-timings").textContent = timings(data.timings_ms, data.backend);
  } catch (e) {
    $("sample-timings").textContent = "";
    showError(e.message);
  }
}

function readUpload() {
  const file = $("upload").files[0];
  if (!file) return;
  showError("");
  const reader = new FileReader();
  reader.onload = () => {
    state.upload = reader.result;
    state.garment = null;
    document.querySelectorAll(".garment-choice").forEach((b) => b.classList.remove("selected"));
    $("garment-view").src = reader.result;
    ready();
  };
  reader.onerror = () => showError(`cannot read ${file.name}`);
  reader.readAsDataURL(file);
}

async function start() {
  try {
    const [health, catalogue] = await Promise.all([api("/api/health"), api("/api/catalogue")]);
    const models = Object.entries(health.models).map(([k, m]) => `${k} on ${m.backend || health.backend}`);
    $("status").textContent = `fpga_gan ${health.version}: ${models.join(", ")}`;
    state.catalogue = catalogue;
    for (const p of catalogue.persons) {
      $("persons").appendChild(thumbnail(p, "person", (e) => { state.person = e.id; $("person-view").src = e.url; drawPose(null, [64, 48]); ready(); }));
    }
    for (const g of catalogue.garments) {
      $("garments").appendChild(thumbnail(g, "garment", (e) => {
        state.garment = e.id; state.upload = null; $("upload").value = ""; $("garment-view").src = e.url; ready();
      }));
    }
    const form = $("edit-form");
    for (const key of ["pattern", "kind", "sleeve", "neckline"]) fillSelect(form.elements[key], catalogue.edit.choices[key], "(keep)");
    fillSelect($("sample-form").elements.kind, catalogue.edit.choices.kind, "(any)");
    for (const key of ["length", "fit"]) {
      const [lo, hi] = catalogue.edit.ranges[key];
      Object.assign(form.elements[key], { min: lo, max: hi, value: (lo + hi) / 2 });
    }
  } catch (e) {
    showError(`cannot reach the fpga_gan server: ${e.message}`);
  }
}

$("tryon-button").addEventListener("click", tryOn);
$("show-pose").addEventListener("change", () => state.pose && drawPose(state.pose.keypoints, state.pose.size));
$("edit-form").addEventListener("submit", applyEdit);
$("sample-form").addEventListener("submit", sample);
$("upload").addEventListener("change", readUpload);
start();
