// The srgan-mlx page: uploads images to the local server's API, follows each job, and shows bicubic | model
// with a before/after slider, 100% zoom with panning, the realism dial and downloads. Plain JavaScript, no
// libraries, nothing loaded from elsewhere.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { models: [], limits: {}, cards: [] };
const POLL_MS = 400;

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showMessage(text) {
  const message = $("#message");
  message.textContent = text;
  message.hidden = !text;
}

function modelInfo() {
  return state.models.find((m) => m.name === $("#model").value) || state.models[0];
}

function realism() {
  return modelInfo().realism ? Number($("#realism").value) : null;
}

function megabytes(bytes) {
  return `${Math.round(bytes / 2 ** 20)} MB`;
}

async function start() {
  try {
    const info = await api("/api/models");
    state.models = info.models;
    state.limits = info;
    for (const model of info.models) $("#model").add(new Option(`${model.name} (x${model.scale})`, model.name));
    $("#model").value = info.default;
    for (const format of info.formats) $("#format").add(new Option(format.toUpperCase(), format));
    $("#limits").textContent =
      `Up to ${megabytes(info.max_upload)} and ${(info.max_pixels / 1e6).toFixed(1)} megapixels per image. ` +
      "Images are processed on this computer, one at a time.";
    updateDial();
  } catch (error) {
    showMessage(`The server did not answer: ${error.message}`);
  }
}

function updateDial() {
  const dial = modelInfo().realism;
  $("#realism-control").hidden = !dial;
  $("#realism-value").textContent = $("#realism").value;
}

function addFiles(files) {
  for (const file of files) {
    if (file.size > state.limits.max_upload) {
      const card = newCard(file);
      fail(card, `${file.name}: ${megabytes(file.size)} is over this server's upload limit of ${megabytes(state.limits.max_upload)}`);
      continue;
    }
    render(newCard(file));
  }
}

function newCard(file) {
  const element = $("#card").content.firstElementChild.cloneNode(true);
  const card = { file, element, source: null, job: null, shown: null, zoomed: false, pan: [0, 0] };
  $(".name", element).textContent = file.name;
  $(".cancel", element).addEventListener("click", () => cancel(card));
  $(".remove", element).addEventListener("click", () => removeCard(card));
  $(".zoom", element).addEventListener("click", () => toggleZoom(card));
  $(".download", element).addEventListener("click", () => updateDownload(card));
  setupViewer(card);
  $("#images").prepend(element);
  state.cards.push(card);
  return card;
}

function removeCard(card) {
  cancel(card);
  card.element.remove();
  state.cards = state.cards.filter((c) => c !== card);
}

function setStatus(card, text) {
  $(".status", card.element).textContent = text;
}

function fail(card, text) {
  setStatus(card, "failed");
  const error = $(".error", card.element);
  error.textContent = text;
  error.hidden = false;
  $("progress", card.element).hidden = true;
  $(".cancel", card.element).hidden = true;
  $(".remove", card.element).hidden = false;
}

// Ask for a (new) rendering of the card's image with the current model and realism. The previous result
// stays on screen until the new one is ready.
async function render(card) {
  if (card.job && !["done", "failed", "cancelled"].includes(card.job.status)) {
    await cancel(card, true);
  }
  const params = new URLSearchParams({ model: modelInfo().name, format: "png", name: card.file.name });
  if (realism() !== null) params.set("realism", realism());
  let options = { method: "POST", body: card.file, headers: { "Content-Type": "application/octet-stream" } };
  if (card.source) {
    params.set("source", card.source);
    options = { method: "POST" };
  }
  $(".error", card.element).hidden = true;
  $(".cancel", card.element).hidden = false;
  $(".remove", card.element).hidden = true;
  setStatus(card, "uploading…");
  try {
    card.job = await api(`/api/upscale?${params}`, options);
  } catch (error) {
    if (card.source && /no job/.test(error.message)) {  // the server forgot the upload: send it again
      card.source = null;
      return render(card);
    }
    fail(card, error.message);
    return;
  }
  card.source = card.source || card.job.id;
  follow(card, card.job.id);
}

async function follow(card, id) {
  while (card.job && card.job.id === id) {
    let job;
    try {
      job = await api(`/api/jobs/${id}`);
    } catch (error) {
      fail(card, error.message);
      return;
    }
    if (!card.job || card.job.id !== id) return;  // replaced by a newer rendering
    card.job = job;
    show(card, job);
    if (["done", "failed", "cancelled"].includes(job.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function describe(job) {
  const what = job.realism === null ? job.model : `${job.model}, realism ${job.realism}`;
  if (job.status === "queued") return job.position ? `waiting: ${job.position} ahead (${what})` : `next (${what})`;
  if (job.status === "running") {
    const [done, total] = job.tiles;
    return total > 1 ? `upscaling, tile ${done} of ${total} (${what})` : `upscaling (${what})`;
  }
  if (job.status === "done") return `${job.width}×${job.height} → ${job.width * job.scale}×${job.height * job.scale}, ${job.seconds.toFixed(1)} s (${what})`;
  return job.status;
}

function show(card, job) {
  const element = card.element;
  setStatus(card, describe(job));
  const bar = $("progress", element);
  bar.hidden = job.status !== "running" && job.status !== "queued";
  bar.value = job.progress;
  if (job.bicubic && !card.shown) {
    $(".before", element).src = job.bicubic;  // bicubic first, while the model works
    $(".after", element).src = job.bicubic;
    $(".viewer", element).hidden = false;
  }
  if (job.status === "done") {
    const after = $(".after", element);
    after.src = job.result;
    after.onload = () => {
      if (job.bicubic) $(".before", element).src = job.bicubic;
    };
    $(".tag-after", element).textContent = job.realism === null ? job.model : `${job.model} · realism ${job.realism}`;
    card.shown = job;
    $(".zoom", element).hidden = false;
    $(".cancel", element).hidden = true;
    $(".remove", element).hidden = false;
    const download = $(".download", element);
    download.hidden = false;
    updateDownload(card);
  } else if (job.status === "failed") {
    fail(card, job.error || "failed");
  } else if (job.status === "cancelled") {
    setStatus(card, card.shown ? describe(card.shown) : "cancelled");
    $(".cancel", element).hidden = true;
    $(".remove", element).hidden = false;
    bar.hidden = true;
  }
}

function updateDownload(card) {
  if (!card.shown) return;
  const format = $("#format").value;
  const download = $(".download", card.element);
  download.href = `${card.shown.result}?format=${format}`;
  download.download = card.shown.filename.replace(/\.[^.]+$/, `.${format}`);
  download.textContent = `Download ${format.toUpperCase()}`;
}

async function cancel(card, quietly = false) {
  const job = card.job;
  if (!job || ["done", "failed", "cancelled"].includes(job.status)) return;
  card.job = quietly ? null : job;
  try {
    const answer = await api(`/api/jobs/${job.id}`, { method: "DELETE" });
    if (!quietly) show(card, answer);
  } catch (error) {
    if (!quietly) fail(card, error.message);
  }
}

// The viewer: bicubic below, the model's result above, clipped at the divider; "100%" shows one image pixel
// per screen pixel, dragged to pan.
function setupViewer(card) {
  const element = card.element;
  const stage = $(".stage", element);
  const slider = $(".slider", element);
  const place = (percent) => {
    slider.value = percent;
    $(".after-clip", element).style.clipPath = `inset(0 0 0 ${percent}%)`;
    $(".divider", element).style.left = `${percent}%`;
  };
  slider.addEventListener("input", () => place(Number(slider.value)));
  place(50);
  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    const onHandle = event.target.classList.contains("handle") || !card.zoomed;
    drag = { onHandle, x: event.clientX, y: event.clientY, pan: [...card.pan] };
    stage.setPointerCapture(event.pointerId);
    if (onHandle) moveDivider(event);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (drag.onHandle) moveDivider(event);
    else {
      card.pan = [drag.pan[0] + event.clientX - drag.x, drag.pan[1] + event.clientY - drag.y];
      applyZoom(card);
    }
  });
  const end = () => (drag = null);
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  function moveDivider(event) {
    const box = stage.getBoundingClientRect();
    place(Math.min(100, Math.max(0, ((event.clientX - box.left) / box.width) * 100)));
  }
}

function toggleZoom(card) {
  card.zoomed = !card.zoomed;
  const after = $(".after", card.element);
  const stage = $(".stage", card.element);
  // centre the view on the image's middle
  card.pan = card.zoomed ? [(stage.clientWidth - after.naturalWidth) / 2, (stage.clientHeight - after.naturalHeight) / 2] : [0, 0];
  $(".zoom", card.element).textContent = card.zoomed ? "Fit" : "100%";
  card.element.classList.toggle("zoomed", card.zoomed);
  applyZoom(card);
}

function applyZoom(card) {
  const [x, y] = card.pan;
  for (const image of card.element.querySelectorAll(".stage img")) {
    image.style.transform = card.zoomed ? `translate(${x}px, ${y}px)` : "";
  }
}

$("#files").addEventListener("change", (event) => {
  addFiles(event.target.files);
  event.target.value = "";
});
const drop = $("#drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  addFiles(event.dataTransfer.files);
});
$("#model").addEventListener("change", () => {
  updateDial();
  state.cards.filter((c) => c.source).forEach(render);
});
$("#realism").addEventListener("input", () => ($("#realism-value").textContent = $("#realism").value));
$("#realism").addEventListener("change", () => state.cards.filter((c) => c.source).forEach(render));  // on release
$("#format").addEventListener("change", () => state.cards.forEach(updateDownload));
start();
