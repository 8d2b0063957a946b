// The demo page: draw on the pad, or choose, drop or paste an image; the page
// posts it to /v1/predict?include=input and shows the label, every class
// probability and the 28x28 image the network saw. It reads the active model
// from /v1/models. Strokes are kept as points (in fractions of the pad's side)
// so the drawing survives a resize of the pad.
(function () {
  "use strict";

  const PEN_WIDTH = 20 / 280; // of the pad's side: a felt pen, not a hairline
  const INK = "#111827";
  const DEBOUNCE_MS = 350; // after the pen lifts, wait this long for another stroke
  // The template writes the API's URLs (url_for), so a path prefix just works.
  const PREDICT_URL = document.body.dataset.predictUrl + "?include=input";
  const MODELS_URL = document.body.dataset.modelsUrl;

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const preview = $("upload-preview");
  const fileInput = $("file-input");
  const result = $("result");
  const errorBox = $("error");
  const prediction = $("prediction");
  const confidence = $("confidence");
  const inputImage = $("input-image");
  const bars = $("probabilities");
  const announcer = $("announcer");
  const overlay = $("drop-overlay");

  let labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let modelVersion = null;
  let strokes = []; // each stroke: [[x, y], ...] with x, y in [0, 1]
  let current = null;
  let timer = null;
  let previewUrl = null;
  let requestSeq = 0; // only the newest request may update the page
  let inFlight = null;

  // -- formatting --------------------------------------------------------------

  function percent(p) {
    if (p >= 0.9995) return ">99.9%";
    if (p > 0 && p < 0.0005) return "<0.1%";
    return (100 * p).toFixed(1) + "%";
  }

  // -- probability bars ----------------------------------------------------------

  function buildBars() {
    bars.replaceChildren();
    for (const label of labels) {
      const row = document.createElement("li");
      const name = document.createElement("span");
      name.className = "bar-label";
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = "–";
      row.append(name, track, value);
      bars.append(row);
    }
  }

  function showBars(probabilities, top) {
    if (probabilities.length !== bars.children.length) {
      labels = probabilities.map((_, i) => labels[i] ?? String(i));
      buildBars();
    }
    probabilities.forEach((p, i) => {
      const row = bars.children[i];
      row.classList.toggle("top", i === top);
      row.querySelector(".bar-fill").style.transform = `scaleX(${Math.min(1, Math.max(0, p))})`;
      row.querySelector(".bar-value").textContent = percent(p);
    });
  }

  function resetBars() {
    for (const row of bars.children) {
      row.classList.remove("top");
      row.querySelector(".bar-fill").style.transform = "scaleX(0)";
      row.querySelector(".bar-value").textContent = "–";
    }
  }

  // -- result and errors -----------------------------------------------------------

  // The role="alert" region stays in the page (empty) so that screen readers
  // announce the message inserted into it.
  function showError(title, message, detail) {
    const box = document.createElement("div");
    box.className = "error";
    const strong = document.createElement("strong");
    strong.textContent = title;
    const text = document.createElement("span");
    text.textContent = message;
    box.append(strong, text);
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      box.append(small);
    }
    errorBox.replaceChildren(box);
  }

  function clearError() {
    errorBox.replaceChildren();
  }

  function resetResult(text) {
    prediction.textContent = "";
    prediction.classList.remove("long");
    confidence.textContent = text;
    inputImage.hidden = true;
    inputImage.removeAttribute("src");
    resetBars();
    announcer.textContent = "";
  }

  function showPrediction(body) {
    clearError();
    prediction.textContent = body.label;
    prediction.classList.toggle("long", body.label.length > 2);
    confidence.textContent = `${percent(body.confidence)} confident`;
    if (body.input_image) {
      inputImage.src = body.input_image;
      inputImage.hidden = false;
    }
    showBars(body.probabilities, body.predicted_class);
    announcer.textContent = `Prediction: ${body.label}, ${percent(body.confidence)} confident.`;
    if (body.model && body.model.version !== modelVersion) loadModel();
  }

  async function classify(blob, filename) {
    const seq = ++requestSeq;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const form = new FormData();
    form.append("image", blob, filename);
    result.setAttribute("aria-busy", "true");
    confidence.textContent = "Classifying…";
    try {
      const response = await fetch(PREDICT_URL, {
        method: "POST",
        body: form,
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      if (seq !== requestSeq) return;
      if (response.ok && body) {
        showPrediction(body);
      } else {
        resetResult("Nothing classified.");
        const message = (body && body.error) || `The server answered ${response.status} ${response.statusText}.`;
        const detail = body && body.code ? `${body.code} · HTTP ${response.status}` : "";
        showError("The image was rejected", message, detail);
      }
    } catch (err) {
      if (err.name === "AbortError" || seq !== requestSeq) return;
      resetResult("Nothing classified.");
      showError("Could not reach the service", err.message);
    } finally {
      if (seq === requestSeq) {
        result.setAttribute("aria-busy", "false");
        inFlight = null;
      }
    }
  }

  // -- the active model ------------------------------------------------------------

  async function loadModel() {
    const name = $("model-name");
    const version = $("model-version");
    const accuracy = $("model-accuracy");
    const architecture = $("model-architecture");
    try {
      const response = await fetch(MODELS_URL, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) {
        name.textContent = "unavailable";
        version.textContent = accuracy.textContent = architecture.textContent = "–";
        return;
      }
      modelVersion = body.version;
      name.textContent = body.name;
      version.textContent = body.version ?? "none loaded";
      const acc = body.metrics && body.metrics.test_accuracy;
      accuracy.textContent = typeof acc === "number" ? `${(100 * acc).toFixed(2)}%` : "–";
      // "CNN: conv5x5x16 pool2 ..." -> "CNN", the layers in the tooltip.
      const arch = typeof body.architecture === "string" ? body.architecture : "";
      architecture.textContent = arch ? arch.split(":")[0] : "–";
      architecture.title = arch;
      const modelLabels = body.metadata && body.metadata.labels;
      if (Array.isArray(modelLabels) && modelLabels.join() !== labels.join()) {
        labels = modelLabels.map(String);
        buildBars();
      }
    } catch (_) {
      name.textContent = "unavailable";
      version.textContent = accuracy.textContent = architecture.textContent = "–";
    }
  }

  // -- the drawing pad --------------------------------------------------------------

  function side() {
    return canvas.width; // the backing store is square
  }

  function strokePath(points) {
    const s = side();
    ctx.beginPath();
    ctx.moveTo(points[0][0] * s, points[0][1] * s);
    if (points.length === 1) {
      ctx.lineTo(points[0][0] * s + 0.01, points[0][1] * s); // a dot
    }
    for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0] * s, points[i][1] * s);
    ctx.stroke();
  }

  function setPen() {
    ctx.lineWidth = PEN_WIDTH * side();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = INK;
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    setPen();
    for (const points of strokes) strokePath(points);
  }

  function resize() {
    const rect = canvas.getBoundingClientRect();
    const size = Math.max(1, Math.round(rect.width * (window.devicePixelRatio || 1)));
    if (canvas.width !== size || canvas.height !== size) {
      canvas.width = size;
      canvas.height = size;
      redraw();
    }
  }

  function pointAt(event) {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height];
  }

  function removeUpload() {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    preview.hidden = true;
    preview.removeAttribute("src");
    pad.classList.remove("has-upload");
  }

  function clearPad() {
    clearTimeout(timer);
    strokes = [];
    current = null;
    redraw();
    removeUpload();
    pad.classList.remove("has-ink");
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    clearTimeout(timer);
    if (pad.classList.contains("has-upload")) clearPad();
    canvas.setPointerCapture(event.pointerId);
    current = [pointAt(event)];
    strokes.push(current);
    pad.classList.add("has-ink");
    setPen();
    strokePath(current);
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const last = current[current.length - 1];
    const added = (events.length ? events : [event]).map(pointAt);
    current.push(...added);
    setPen();
    strokePath([last, ...added]);
  });

  function endStroke() {
    if (!current) return;
    current = null;
    clearTimeout(timer);
    timer = setTimeout(classifyDrawing, DEBOUNCE_MS);
  }

  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("lostpointercapture", endStroke);

  // toDataURL rather than toBlob: Chromium runs toBlob's encoder in an idle
  // period, which can come a second late; a pad-sized PNG encodes in a few ms.
  function drawingAsPng() {
    const bytes = atob(canvas.toDataURL("image/png").split(",")[1]);
    const array = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
    return new Blob([array], { type: "image/png" });
  }

  function classifyDrawing() {
    if (strokes.length) classify(drawingAsPng(), "drawing.png");
  }

  $("clear").addEventListener("click", () => {
    clearPad();
    requestSeq++; // a late answer for the old drawing must not appear
    if (inFlight) inFlight.abort();
    result.setAttribute("aria-busy", "false");
    clearError();
    resetResult("Draw a digit or choose an image to start.");
  });

  // -- files: choose, drop, paste -----------------------------------------------------

  function classifyFile(file) {
    clearPad();
    previewUrl = URL.createObjectURL(file);
    preview.onerror = removeUpload; // not an image the browser can show: the API will say why
    preview.src = previewUrl;
    preview.alt = `Your image: ${file.name || "pasted image"}`;
    preview.hidden = false;
    pad.classList.add("has-upload");
    classify(file, file.name || "pasted.png");
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (file) classifyFile(file);
    fileInput.value = ""; // choosing the same file again is a new choice
  });

  let dragDepth = 0;
  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");

  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth++;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    overlay.hidden = true;
    const file = event.dataTransfer.files[0];
    if (file) classifyFile(file);
  });

  document.addEventListener("paste", (event) => {
    const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    const file = item && item.getAsFile();
    if (!file) return;
    event.preventDefault();
    classifyFile(file);
  });

  // -- start --------------------------------------------------------------------------

  buildBars();
  resize();
  new ResizeObserver(resize).observe(canvas);
  loadModel();
})();
