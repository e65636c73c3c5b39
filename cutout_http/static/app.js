// The cutout page: images go to POST api/jobs; every job's progress comes from one event
// stream (GET api/events), never from a polling loop per image. Plain JavaScript: no build.

const TOKEN_KEY = "cutout-token";
const UPLOADS_AT_ONCE = 4;
const RECONNECT_MS = 2000;
const EARLY_MAX = 500;
const FINAL = new Set(["succeeded", "failed", "refused"]);
const STEPS = { uploading: 0, queued: 1, retrying: 2, started: 2, succeeded: 3, failed: 3, refused: 0 };

const $ = (selector) => document.querySelector(selector);
const jobs = new Map(); // job id -> card
const early = new Map(); // records seen on the stream before their POST answered
let token = localStorage.getItem(TOKEN_KEY) || "";
let lastEventId = null;
let uploadsRunning = 0;
const uploadQueue = [];

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askToken(token ? "That token was refused." : "");
    throw new Unauthorized();
  }
  return response;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// --- the token -----------------------------------------------------------------------------

function askToken(message) {
  $("#workspace").hidden = true;
  $("#token-form").hidden = false;
  $("#token-error").textContent = message;
  $("#token").focus();
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token").value.trim();
  localStorage.setItem(TOKEN_KEY, token);
  $("#token-form").hidden = true;
  start();
});

// --- options -------------------------------------------------------------------------------

async function loadOptions() {
  const response = await api("api/options");
  if (!response.ok) throw new Error(await errorOf(response));
  const more = $("#more-options");
  more.replaceChildren();
  for (const option of await response.json()) {
    if (option.name === "background" || option.name === "format") {
      const shown = option.default === null ? "" : ` (${option.default})`;
      $(`#${option.name} option[value=""]`).textContent = `service default${shown}`;
      continue;
    }
    more.append(optionField(option));
  }
}

function optionField(option) {
  const label = document.createElement("label");
  label.title = option.help;
  label.append(option.name.replaceAll("_", " "));
  let input;
  if (option.type === "bool" || option.choices.length) {
    input = document.createElement("select");
    const values = option.type === "bool" ? ["true", "false"] : option.choices;
    input.append(new Option(`default (${option.default})`, ""));
    for (const value of values) input.append(new Option(value, value));
  } else {
    input = document.createElement("input");
    input.type = option.type === "str" ? "text" : "number";
    input.placeholder = `default: ${option.default}`;
    if (option.min !== null) input.min = option.min;
    if (option.max !== null) input.max = option.max;
    input.step = option.type === "float" ? "any" : "1";
  }
  input.name = option.name;
  label.append(input);
  return label;
}

function chosenOptions() {
  const values = {};
  for (const field of $("#options").querySelectorAll("select, input")) {
    if (field.name && field.value !== "") values[field.name] = field.value;
  }
  if (values.background === "custom") values.background = $("#colour").value;
  return values;
}

$("#background").addEventListener("change", () => {
  $("#colour").hidden = $("#background").value !== "custom";
});

// --- jobs ----------------------------------------------------------------------------------

function newCard(file) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  const original = card.querySelector(".original img");
  original.addEventListener("error", () => {
    original.hidden = true; // not an image the browser shows (TIFF, or not an image at all)
  });
  original.src = URL.createObjectURL(file);
  card.querySelector(".name").textContent = file.name;
  $("#jobs").prepend(card);
  show(card, { state: "uploading" });
  return card;
}

function show(card, record) {
  if (FINAL.has(card.dataset.state) && !FINAL.has(record.state)) return; // a late, older view
  card.dataset.state = record.state;
  const step = STEPS[record.state] ?? 0;
  card.querySelectorAll(".steps li").forEach((li, i) => li.classList.toggle("reached", i < step));
  const what = { uploading: "uploading…", refused: "refused" }[record.state] || record.state;
  const seconds = record.duration ? ` in ${record.duration.toFixed(2)} s` : "";
  card.querySelector(".state").textContent = record.state === "succeeded" ? `done${seconds}` : what;
  card.querySelector(".error").textContent = record.error || "";
  if (record.state === "succeeded" && !card.dataset.fetched) {
    card.dataset.fetched = "yes";
    fetchResult(card, record.id);
  }
  summarise();
}

async function fetchResult(card, id) {
  try {
    const response = await api(`api/jobs/${encodeURIComponent(id)}/result`);
    if (!response.ok) throw new Error(await errorOf(response));
    const url = URL.createObjectURL(await response.blob());
    const image = card.querySelector(".cutout");
    image.src = url;
    image.hidden = false;
    const link = card.querySelector(".download");
    link.href = url;
    link.download = fileName(response.headers.get("Content-Disposition")) || "cutout";
    link.hidden = false;
    card.dataset.ready = "yes";
  } catch (error) {
    if (!(error instanceof Unauthorized)) card.querySelector(".error").textContent = error.message;
  }
  summarise();
}

function fileName(disposition) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (encoded) return decodeURIComponent(encoded[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : null;
}

function summarise() {
  const cards = [...jobs.values()];
  const ready = cards.filter((card) => card.dataset.ready === "yes").length;
  const failed = cards.filter((card) => card.dataset.state === "failed").length;
  const busy = cards.length - ready - failed;
  $("#download-all").disabled = ready === 0;
  $("#summary").textContent = cards.length
    ? `${ready} done, ${busy} in progress${failed ? `, ${failed} failed` : ""}`
    : "";
}

function enqueue(files) {
  for (const file of files) uploadQueue.push({ file, card: newCard(file) });
  pump();
}

function pump() {
  while (uploadsRunning < UPLOADS_AT_ONCE && uploadQueue.length) {
    const { file, card } = uploadQueue.shift();
    uploadsRunning += 1;
    upload(file, card).finally(() => {
      uploadsRunning -= 1;
      pump();
    });
  }
}

async function upload(file, card) {
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [name, value] of Object.entries(chosenOptions())) form.append(name, value);
  try {
    const response = await api("api/jobs", { method: "POST", body: form });
    if (response.status !== 202) {
      show(card, { state: "refused", error: await errorOf(response) });
      return;
    }
    const record = await response.json();
    card.dataset.id = record.id;
    jobs.set(record.id, card);
    show(card, record);
    const seen = early.get(record.id);
    early.delete(record.id);
    if (seen) show(card, seen);
  } catch (error) {
    if (!(error instanceof Unauthorized)) show(card, { state: "refused", error: error.message });
  }
}

function onRecord(record) {
  const card = jobs.get(record.id);
  if (card) {
    show(card, record);
  } else if (uploadsRunning) {
    // Perhaps one of ours whose POST has not answered yet (others' jobs are ignored).
    early.set(record.id, record);
    if (early.size > EARLY_MAX) early.delete(early.keys().next().value);
  }
}

// --- the event stream ----------------------------------------------------------------------
// fetch, not EventSource: EventSource cannot send the Authorization header.

async function follow() {
  for (;;) {
    try {
      const headers = lastEventId ? { "Last-Event-ID": lastEventId } : {};
      const response = await api("api/events", { headers });
      if (!response.ok) throw new Error(await errorOf(response));
      setLive(true);
      resync();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized) return;
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function dispatch(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") lastEventId = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (kind === "job" && data.length) onRecord(JSON.parse(data.join("\n")));
}

// What happened while the stream was down (and Last-Event-ID could not cover).
async function resync() {
  for (const [id, card] of jobs) {
    if (FINAL.has(card.dataset.state)) continue;
    try {
      const response = await api(`api/jobs/${encodeURIComponent(id)}`);
      if (response.ok) show(card, await response.json());
    } catch {
      return;
    }
  }
}

function setLive(live) {
  const badge = $("#connection");
  badge.dataset.live = String(live);
  badge.textContent = live ? "live" : "reconnecting…";
}

// --- downloads and the drop zone -----------------------------------------------------------

$("#download-all").addEventListener("click", async () => {
  const ids = [...jobs].filter(([, card]) => card.dataset.ready === "yes").map(([id]) => id);
  try {
    const response = await api("api/results.zip", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ids }),
    });
    if (!response.ok) throw new Error(await errorOf(response));
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = "cutouts.zip";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  } catch (error) {
    if (!(error instanceof Unauthorized)) $("#summary").textContent = error.message;
  }
});

$("#clear").addEventListener("click", () => {
  for (const [id, card] of jobs) {
    if (!FINAL.has(card.dataset.state)) continue;
    card.querySelectorAll("img").forEach((image) => image.src && URL.revokeObjectURL(image.src));
    card.remove();
    jobs.delete(id);
  }
  for (const card of $("#jobs").querySelectorAll('.job[data-state="refused"]')) card.remove();
  summarise();
});

const drop = $("#drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  enqueue([...event.dataTransfer.files]);
});
$("#files").addEventListener("change", (event) => {
  enqueue([...event.target.files]);
  event.target.value = "";
});

// --- start ---------------------------------------------------------------------------------

let following = false;

async function start() {
  try {
    await loadOptions();
  } catch (error) {
    if (!(error instanceof Unauthorized)) $("#connection").textContent = error.message;
    return;
  }
  $("#workspace").hidden = false;
  if (!following) {
    following = true;
    follow().finally(() => {
      following = false;
    });
  }
}

start();
