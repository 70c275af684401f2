// The lesson-3 classifier in the browser: decode the photo (or grab a camera frame), hand its uint8
// pixels to the exported ONNX graph (which resizes, crops and normalises inside), show the top-3
// and the honest answer. No request leaves this site; camera frames are never uploaded or stored.
import * as ort from "./ort/ort.wasm.min.mjs";
import { answerFor, percent, ruleProblem, topK } from "./answer.js";

const $ = (id) => document.getElementById(id);
const started = performance.now();
// Several threads need a cross-origin-isolated page (COOP/COEP headers): isolate.js makes it so on a static host,
// with a reload on the first visit; without it onnxruntime-web runs on one thread.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(2, navigator.hardwareConcurrency || 1) : 1;
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.logLevel = "error";

const SIGNATURES = [["JPEG", [0xff, 0xd8, 0xff]], ["PNG", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]], ["GIF", [0x47, 0x49, 0x46, 0x38]]];
let session, labels, rule, limits, busy = false;

function kindOf(bytes) {
  for (const [kind, sig] of SIGNATURES) if (sig.every((b, i) => bytes[i] === b)) return kind;
  const ascii = (a, b) => String.fromCharCode(...bytes.slice(a, b));
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "WebP";
  if (ascii(0, 2) === "BM") return "BMP";
  return null;
}

function firstBytes(bytes) {   // how a file starts, for messages: text if it reads as text, else hex (as htc_dl.apps does)
  const head = bytes.slice(0, 12);
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(head);
    if (/^[\x20-\x7e\u00a0-\uffff]*$/.test(text)) return `text '${text}'`;
  } catch (e) { /* not UTF-8 */ }
  return `bytes ${[...head].map((b) => b.toString(16).padStart(2, "0")).join(" ")}`;
}

function headerSize(bytes, kind) {   // width and height from the file's header, before decoding anything
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (kind === "PNG" && bytes.length >= 24) return [view.getUint32(16), view.getUint32(20)];
  if (kind === "GIF" && bytes.length >= 10) return [view.getUint16(6, true), view.getUint16(8, true)];
  if (kind === "JPEG") {
    for (let i = 2; i + 9 < bytes.length;) {
      if (bytes[i] !== 0xff) { i++; continue; }
      const marker = bytes[i + 1];
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return [view.getUint16(i + 7), view.getUint16(i + 5)];
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
      i += 2 + view.getUint16(i + 2);
    }
  }
  return null;
}

function cutOff(bytes, kind) {   // a browser shows a truncated JPEG or PNG grey at the bottom instead of refusing it
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;   // some cameras pad with zeros
  const tail = bytes.slice(Math.max(0, end - 16), end);
  if (kind === "JPEG") return !(tail[tail.length - 2] === 0xff && tail[tail.length - 1] === 0xd9) && "no end-of-image marker";
  if (kind === "PNG") return !String.fromCharCode(...tail).includes("IEND") && "no IEND chunk";
  if (kind === "GIF") return tail[tail.length - 1] !== 0x3b && "no trailer";
  return false;
}

class UploadError extends Error {}

async function readUpload(file) {   // an RGB uint8 picture {pixels, width, height}, or UploadError saying what is wrong
  const name = file.name || "the file", mb = file.size / 2 ** 20;
  if (mb > limits.max_upload_mb) throw new UploadError(`${name} is ${mb.toFixed(1)} MB; the limit is ${limits.max_upload_mb} MB. Upload a smaller copy (e.g. resized to 2,000 pixels wide).`);
  if (file.size === 0) throw new UploadError(`${name} is empty (0 bytes). Upload the picture again; if it is still empty, the file on your disk is broken.`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  const kind = kindOf(bytes);
  if (!kind) throw new UploadError(`${name} is not an image this app can read (it starts with ${firstBytes(bytes)}). Upload a JPEG, PNG, GIF or WebP picture.`);
  const cut = cutOff(bytes, kind);
  if (cut) throw new UploadError(`${name} starts like a ${kind} but is truncated or corrupt (${cut}). The file was cut off: upload it again, or open and re-save it in an image editor.`);
  const size = headerSize(bytes, kind);
  const tooBig = ([w, h]) => w * h > limits.max_megapixels * 1e6;
  const bigMessage = ([w, h]) => `${name} is ${w}x${h} pixels (${Math.round(w * h / 1e6)} megapixels); the limit is ${limits.max_megapixels} megapixels, because decoding it would take ${Math.round(w * h * 3 / 2 ** 20).toLocaleString("en")} MB of memory. Upload a copy resized to 2,000 pixels wide.`;
  if (size && tooBig(size)) throw new UploadError(bigMessage(size));
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), { imageOrientation: "from-image", premultiplyAlpha: "none", colorSpaceConversion: "none" });
  } catch (e) {
    throw new UploadError(`${name} starts like a ${kind} but is truncated or corrupt (the browser could not decode it). The file was cut off: upload it again, or open and re-save it in an image editor.`);
  }
  const { width, height } = bitmap;
  if (tooBig([width, height])) { bitmap.close(); throw new UploadError(bigMessage([width, height])); }
  if (Math.min(width, height) < limits.min_side) { bitmap.close(); throw new UploadError(`${name} is only ${width}x${height} pixels; the classifier needs at least ${limits.min_side}x${limits.min_side}. Upload a larger picture.`); }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);   // transparent parts become white, as in htc_dl.apps.read_upload
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { pixels: rgbOf(ctx, width, height), width, height, kind, canvas };
}

function rgbOf(ctx, width, height) {   // the canvas's pixels as RGB uint8, without alpha
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    pixels[j] = rgba[i]; pixels[j + 1] = rgba[i + 1]; pixels[j + 2] = rgba[i + 2];
  }
  return pixels;
}

async function classify(pixels, width, height) {
  const t0 = performance.now();
  const out = await session.run({ pixels: new ort.Tensor("uint8", pixels, [height, width, 3]) });
  return { probs: Array.from(out.probabilities.data), ms: performance.now() - t0 };
}

function show(kind, text) {
  const message = $("message");
  message.hidden = kind !== "error";
  message.textContent = kind === "error" ? text : "";
  if (kind === "error") $("result").hidden = true;
}

function drawBars(top) {
  const table = $("bars");
  table.replaceChildren(...top.map(([label, p]) => {
    const row = document.createElement("tr");
    const name = document.createElement("td"), pct = document.createElement("td"), barCell = document.createElement("td"), bar = document.createElement("div");
    name.innerHTML = "<b></b>"; name.firstChild.textContent = label;
    pct.textContent = `${(p * 100).toFixed(1)}%`; pct.style.textAlign = "right";
    bar.className = "bar"; bar.style.width = `${Math.max(1, Math.round(p * 200))}px`;
    barCell.append(bar); row.append(name, pct, barCell);
    return row;
  }));
}

async function onFile(file) {
  if (!file || busy) return;
  busy = true;
  await stopCamera();   // the photo replaces the camera
  $("status").textContent = `Classifying ${file.name}…`;
  try {
    const picture = await readUpload(file);
    const { probs, ms } = await classify(picture.pixels, picture.width, picture.height);
    const top = topK(probs, labels, 3);
    const answer = answerFor(probs, labels, rule);
    $("answer").textContent = `${file.name}: ${answer.text}`;
    drawBars(top);
    $("timing").textContent = `${picture.width}x${picture.height} ${picture.kind}, classified in ${ms.toFixed(0)} ms in your browser.`;
    const blob = await picture.canvas.convertToBlob({ type: "image/png" });
    const old = $("preview").src;
    $("preview").src = URL.createObjectURL(blob);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    show("ok"); $("result").hidden = false; showPicture("preview");
    window.htcLast = { name: file.name, probabilities: probs, top1: top[0][2], answer, ms, width: picture.width, height: picture.height };
    $("status").textContent = "Ready: choose another photo.";
  } catch (e) {
    const text = e instanceof UploadError ? e.message : `Something went wrong with this picture (${e.name}: ${e.message}). The page still works: try another one.`;
    show("error", text);
    window.htcLast = { name: file.name, error: text };
    $("status").textContent = "Ready: choose another photo.";
  } finally {
    busy = false;
    $("file").value = "";   // choosing the same file again still triggers a change
    document.body.dataset.classified = String(Number(document.body.dataset.classified || 0) + 1);
  }
}

function showPicture(id) {   // the result shows the photo, the live video or the frozen frame
  for (const other of ["preview", "video", "frozen"]) $(other).hidden = other !== id;
  $("camera-controls").hidden = id === "preview";
}

function describeOwnModel() {   // a learner's own classifier: its classes, not cats and dogs
  const n = labels.length, some = labels.slice(0, 5).join(", ") + (n > 5 ? ", …" : "");
  $("title").textContent = document.title = `Which of my ${n} classes is it?`;
  $("about").textContent = `A classifier trained on ${n} classes (${some}). Below `
    + `${percent(rule.threshold)}% confidence it says it does not know. It runs entirely in this `
    + "page with onnxruntime-web: your photo and your camera's frames never leave your computer.";
}

// The camera. Each frame is drawn into a canvas of this page and classified there; the next frame
// starts only when the last answer is in, so the page answers as often as the model allows. Nothing
// is uploaded or stored.
const AGAIN = "press “Use my camera” again, or choose a photo instead.";
const CAMERA_MESSAGES = {
  NotFoundError: `No camera was found on this computer. Plug one in or switch it on, then ${AGAIN}`,
  OverconstrainedError: `No camera here can give a video stream. Plug in another, then ${AGAIN}`,
  NotAllowedError: "The camera permission was denied. Allow the camera for this page (the camera "
    + `icon in the address bar), then ${AGAIN}`,
  NotReadableError: "The camera is busy: another program (a video call?) is using it, or the "
    + `system blocked it. Close that program, then ${AGAIN}`,
};
const NOT_SECURE = () => "The camera works only on a secure page (https://, or http://localhost on "
  + `your own computer); this page is ${location.origin}. Open it over https, or choose a photo `
  + "instead.";
const NO_API = "This browser gives pages no access to a camera. Use a current Chrome, Edge, "
  + "Firefox or Safari, or choose a photo instead.";
const MAX_SIDE = 640;   // frames are scaled down to this (the model resizes to 224 inside anyway)
const camera = { stream: null, running: false, frozen: false, loop: null, shown: null, answers: 0,
                 recent: [], presented: 0 };

async function startCamera() {
  if (camera.stream || busy) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    show("error", window.isSecureContext ? NO_API : NOT_SECURE());
    return;
  }
  $("camera-start").disabled = true;
  $("status").textContent = "Starting the camera…";
  try {
    const video = { width: { ideal: 640 }, height: { ideal: 480 } };
    camera.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (e) {
    show("error", CAMERA_MESSAGES[e.name]
      || `The camera could not start (${e.name}: ${e.message}). Reload the page, then ${AGAIN}`);
    window.htcCamera = { error: e.name };
    $("status").textContent = "Ready: choose a photo.";
    $("camera-start").disabled = false;
    return;
  }
  const video = $("video");
  video.srcObject = camera.stream;
  camera.stream.getVideoTracks()[0].addEventListener("ended", async () => {
    await stopCamera();
    show("error", `The camera stopped (unplugged, or taken by another program). Then ${AGAIN}`);
  });
  await video.play();
  watchFrames(video);
  show("ok"); $("result").hidden = false; showPicture("video");
  $("answer").textContent = "Looking…"; $("bars").replaceChildren(); $("timing").textContent = "";
  $("status").textContent = "Camera on: its frames are classified here, never uploaded or stored.";
  Object.assign(camera, { answers: 0, recent: [], frozen: false, running: true });
  camera.loop = cameraLoop(video);
}

function watchFrames(video) {   // count the frames the video shows: no frame is classified twice
  if (!("requestVideoFrameCallback" in video)) return;
  const seen = (now, meta) => {
    camera.presented = meta.presentedFrames;
    if (camera.stream) video.requestVideoFrameCallback(seen);
  };
  video.requestVideoFrameCallback(seen);
}

function newFrame(video, last) {   // true once the video shows a frame after `last` (no API: at once),
  if (!("requestVideoFrameCallback" in video) || camera.presented > last) return Promise.resolve(true);
  return new Promise((resolve) => {   // false after 250 ms without one (a stalled or hidden video)
    video.requestVideoFrameCallback(() => resolve(true));
    setTimeout(() => resolve(false), 250);
  });
}

function grab(video, canvas) {   // the frame onto `canvas` (MAX_SIDE at most); its RGB pixels
  const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const width = Math.round(video.videoWidth * scale);
  const height = Math.round(video.videoHeight * scale);
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, width, height);
  return { pixels: rgbOf(ctx, width, height), width, height };
}

async function cameraLoop(video) {
  const canvases = [document.createElement("canvas"), document.createElement("canvas")];
  let last = -1;
  while (camera.running) {
    if (!(await newFrame(video, last)) || !camera.running) continue;
    if (!video.videoWidth) { await new Promise((r) => setTimeout(r, 20)); continue; }
    last = camera.presented;
    const canvas = canvases[camera.answers % 2];   // the other holds the frame whose answer shows
    const { pixels, width, height } = grab(video, canvas);
    const { probs, ms } = await classify(pixels, width, height);
    if (!camera.running) break;   // frozen or stopped meanwhile: what is on screen stays
    const now = performance.now(), top = topK(probs, labels, 3);
    const answer = answerFor(probs, labels, rule);
    camera.recent = [...camera.recent.filter((t) => now - t < 2000), now];   // the last 2 seconds
    const n = camera.recent.length;
    const perSecond = n > 1 ? (n - 1) / ((now - camera.recent[0]) / 1000) : 0;
    camera.answers += 1; camera.shown = canvas;
    $("answer").textContent = `Camera: ${answer.text}`;
    drawBars(top);
    $("timing").textContent = `${width}x${height} frames, ${perSecond.toFixed(1)} answers per `
      + `second (this one in ${ms.toFixed(0)} ms), in your browser.`;
    window.htcCamera = { answers: camera.answers, perSecond, ms, width, height, top1: top[0][2],
                         probabilities: probs, answer, frozen: false };
    await new Promise((r) => setTimeout(r, 0));   // let the page handle clicks between frames
  }
}

async function freezeCamera() {   // keep the frame whose answer is shown
  camera.running = false; camera.frozen = true;
  await camera.loop;
  const frozen = $("frozen"), shown = camera.shown;
  if (shown) {
    Object.assign(frozen, { width: shown.width, height: shown.height });
    frozen.getContext("2d").drawImage(shown, 0, 0);
  }
  $("video").pause(); showPicture(shown ? "frozen" : "video");
  $("freeze").textContent = "Resume";
  if (window.htcCamera) window.htcCamera.frozen = true;
}

function resumeCamera() {
  Object.assign(camera, { frozen: false, running: true });
  $("freeze").textContent = "Freeze";
  $("video").play(); showPicture("video");
  camera.loop = cameraLoop($("video"));
}

async function stopCamera() {   // release the camera (its light goes off)
  if (!camera.stream) return;
  camera.running = false;
  await camera.loop;
  for (const track of camera.stream.getTracks()) track.stop();
  Object.assign(camera, { stream: null, frozen: false, loop: null, shown: null });
  $("video").srcObject = null; $("freeze").textContent = "Freeze";
  showPicture("preview"); $("camera-start").disabled = false;
  $("status").textContent = "Ready: choose a photo or use your camera.";
}

async function start() {
  if (window.htcReloading && await window.htcReloading) return;   // isolate.js reloads the page with its worker's headers
  try {
    const get = async (path, optional = false) => {
      const r = await fetch(path);
      if (!r.ok) { if (optional) return null; throw new Error(`${path}: HTTP ${r.status}`); }
      return r.json();
    };
    [labels, rule, limits] = await Promise.all([get("model/labels.json"), get("model/answers.json", true), get("limits.json")]);
    const problem = rule && ruleProblem(rule, labels);
    if (problem) {
      throw new Error(`model/answers.json does not fit this model: ${problem}. `
        + "Export the bundle again");
    }
    if (rule && rule.rule === "threshold") describeOwnModel();
    session = await ort.InferenceSession.create("model/model.onnx", { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    await classify(new Uint8Array(32 * 32 * 3), 32, 32);   // the first run allocates; do it before the visitor waits
    const readyMs = performance.now() - started;
    window.htcReady = { ms: readyMs, threads: ort.env.wasm.numThreads };
    const threads = `${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? "s" : ""}`;
    $("status").textContent = `Model ready in ${(readyMs / 1000).toFixed(1)} s (${threads}). `
      + "Choose a photo or use your camera: neither leaves your computer.";
    $("file").disabled = false;
    $("file").addEventListener("change", (e) => onFile(e.target.files[0]));
    $("camera-start").disabled = false;
    $("camera-start").addEventListener("click", startCamera);
    $("freeze").addEventListener("click", () => (camera.frozen ? resumeCamera() : freezeCamera()));
    $("camera-stop").addEventListener("click", async () => {
      await stopCamera();
      $("result").hidden = true;
    });
    document.body.dataset.ready = "1";
  } catch (e) {
    $("status").className = "error";
    $("status").textContent = `The model could not be loaded (${e.message}). Build the page with \`make webapp\` and serve the dist folder.`;
    document.body.dataset.ready = "failed";
  }
}
start();
