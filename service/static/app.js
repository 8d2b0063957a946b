// The demo page: draw on the pad, or choose, drop or paste an image; the page
// posts it to /v1/predict?include=input and shows the label and the verdict
// (a digit, not sure between two, or not a digit at all), every class
// probability and the 28x28 image the network saw. In "A number" mode the pad
// is wide, the page posts to /v1/read?include=input and shows the string, a
// box round each digit and each digit's probabilities. It reads the active model
// from /v1/models. Strokes are kept as points (in fractions of the pad's side)
// so the drawing survives a resize of the pad.
(function () {
  "use strict";

  const PEN_WIDTH = 20 / 280; // of the pad's side: a felt pen, not a hairline
  const INK = "#111827";
  const DEBOUNCE_MS = 350; // after the pen lifts, wait this long for another stroke
  // The template writes the API's URLs (url_for), so a path prefix just works.
  const PREDICT_URL = document.body.dataset.predictUrl + "?include=input";
  const READ_URL = document.body.dataset.readUrl + "?include=input";
  const FEEDBACK_URL = document.body.dataset.feedbackUrl;
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
  const verdict = $("verdict");
  const inputImage = $("input-image");
  const bars = $("probabilities");
  const announcer = $("announcer");
  const overlay = $("drop-overlay");
  const boxes = $("boxes");
  const readDigits = $("read-digits");
  const padHint = $("pad-hint");
  const feedbackBox = $("feedback");
  const feedbackDigits = $("feedback-digits");
  const feedbackStatus = $("feedback-status");
  const inputTitle = $("input-title");

  let labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let modelVersion = null;
  let strokes = []; // each stroke: [[x, y], ...] with x, y in [0, 1]
  let current = null;
  let timer = null;
  let previewUrl = null;
  let requestSeq = 0; // only the newest request may update the page
  let inFlight = null;
  let mode = "digit"; // or "number": what the pad and the page read
  let answered = null; // the last answered upload: {blob, filename, requestId, predicted}

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
    result.dataset.verdict = "";
    verdict.textContent = "";
    confidence.textContent = text;
    inputImage.hidden = true;
    inputImage.removeAttribute("src");
    resetBars();
    boxes.replaceChildren();
    readDigits.replaceChildren();
    feedbackBox.hidden = true;
    feedbackStatus.textContent = "";
    answered = null;
    announcer.textContent = "";
  }

  // What each verdict says (the service's "verdict" field): a digit, a digit the
  // model is torn about (it names the runner-up), or not a digit at all.
  function verdictText(body) {
    if (body.verdict === "not_a_digit") return "That doesn't look like a digit";
    if (body.verdict === "uncertain") return `Not sure: ${body.label} or ${body.runner_up.label}?`;
    return "";
  }

  function showPrediction(body) {
    clearError();
    const unsure = body.verdict === "uncertain";
    const shown = unsure ? `${body.label} or ${body.runner_up.label}?` : body.label;
    prediction.textContent = body.verdict === "not_a_digit" ? "" : shown;
    prediction.classList.toggle("long", shown.length > 2);
    result.dataset.verdict = body.verdict || "digit";
    verdict.textContent = verdictText(body);
    const score = body.digit_score === undefined ? "" : `; digit score ${percent(body.digit_score)}`;
    confidence.textContent = body.verdict === "not_a_digit"
      ? `Closest digit: ${body.label}, ${percent(body.confidence)}${score}`
      : `${percent(body.confidence)} confident${score}`;
    if (body.input_image) {
      inputImage.src = body.input_image;
      inputImage.hidden = false;
    }
    showBars(body.probabilities, body.predicted_class);
    const said = verdictText(body);
    announcer.textContent = said
      ? `${said}. Closest: ${body.label}, ${percent(body.confidence)}.`
      : `Prediction: ${body.label}, ${percent(body.confidence)} confident.`;
    if (body.model && body.model.version !== modelVersion) loadModel();
  }

  // -- feedback: the right digit, for the next version's training -------------------

  function buildFeedback() {
    feedbackDigits.replaceChildren(...labels.map((label, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.dataset.testid = `feedback-${i}`;
      button.setAttribute("aria-label", `It is a ${label}`);
      button.addEventListener("click", () => sendFeedback(i));
      return button;
    }));
  }

  async function sendFeedback(label) {
    if (!answered) return;
    const form = new FormData();
    form.append("image", answered.blob, answered.filename);
    form.append("label", String(label));
    form.append("predicted", String(answered.predicted));
    if (answered.requestId) form.append("request_id", answered.requestId);
    feedbackStatus.textContent = "Sending…";
    try {
      const response = await fetch(FEEDBACK_URL, { method: "POST", body: form,
                                                   headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (response.ok) {
        feedbackStatus.textContent = `Thanks: saved as a ${labels[label] ?? label}. It helps train the next version.`;
      } else {
        feedbackStatus.textContent = "";
        showError("Feedback was not saved", (body && body.error) || `HTTP ${response.status}`,
                  body && body.code ? `${body.code} · HTTP ${response.status}` : "");
      }
    } catch (err) {
      feedbackStatus.textContent = "";
      showError("Could not reach the service", err.message);
    }
  }

  // -- a whole number ---------------------------------------------------------------

  function runnerUp(probabilities, top) {
    let best = -1;
    probabilities.forEach((p, i) => {
      if (i !== top && (best < 0 || p > probabilities[best])) best = i;
    });
    return best;
  }

  function showDigits(digits) {
    readDigits.replaceChildren(...digits.map((d) => {
      const item = document.createElement("li");
      item.classList.toggle("uncertain", d.verdict === "uncertain");
      const label = document.createElement("div");
      label.className = "digit-label";
      const second = labels[runnerUp(d.probabilities, d.predicted_class)] ?? "";
      label.textContent = d.verdict === "uncertain" ? `${d.label}/${second}?` : d.label;
      const conf = document.createElement("div");
      conf.className = "digit-conf";
      conf.textContent = percent(d.confidence);
      const seen = document.createElement("img");
      seen.alt = `The 28 by 28 image read as ${d.label}`;
      if (d.input_image) seen.src = d.input_image;
      const spark = document.createElement("div");
      spark.className = "spark";
      spark.setAttribute("role", "img");
      spark.setAttribute("aria-label", d.probabilities.map((p, i) => `${labels[i] ?? i}: ${percent(p)}`).join(", "));
      spark.append(...d.probabilities.map((p, i) => {
        const bar = document.createElement("i");
        bar.style.height = `${Math.max(1, Math.round(100 * p))}%`;
        bar.classList.toggle("top", i === d.predicted_class);
        return bar;
      }));
      item.append(label, conf, seen, spark);
      return item;
    }));
  }

  // Where the uploaded image's pixels show on the pad: the drawing fills the canvas,
  // an image file is shown whole (object-fit: contain) in the preview.
  function imageToPad() {
    const padRect = pad.getBoundingClientRect();
    if (!pad.classList.contains("has-upload")) {
      const rect = canvas.getBoundingClientRect();
      return { sx: rect.width / canvas.width, sy: rect.height / canvas.height,
               dx: rect.left - padRect.left, dy: rect.top - padRect.top };
    }
    const rect = preview.getBoundingClientRect();
    const nw = preview.naturalWidth || 1;
    const nh = preview.naturalHeight || 1;
    const scale = Math.min(rect.width / nw, rect.height / nh);
    return { sx: scale, sy: scale, dx: rect.left - padRect.left + (rect.width - nw * scale) / 2,
             dy: rect.top - padRect.top + (rect.height - nh * scale) / 2 };
  }

  function showBoxes(digits, marks) {
    const map = imageToPad();
    const box = ([x, y, w, h], className, text) => {
      const span = document.createElement("span");
      if (className) span.className = className;
      span.style.left = `${map.dx + x * map.sx}px`;
      span.style.top = `${map.dy + y * map.sy}px`;
      span.style.width = `${w * map.sx}px`;
      span.style.height = `${h * map.sy}px`;
      if (text) {
        const tag = document.createElement("b");
        tag.textContent = text;
        span.append(tag);
      }
      return span;
    };
    boxes.replaceChildren(
      ...digits.map((d) => box(d.box, d.verdict === "uncertain" ? "uncertain" : "", d.label)),
      ...marks.map((m) => box(m.box, "mark", "")));
  }

  function showReading(body) {
    clearError();
    const unsure = body.digits.filter((d) => d.verdict !== "digit");
    result.dataset.verdict = unsure.length ? "uncertain" : "digit";
    prediction.textContent = body.text;
    prediction.classList.toggle("long", body.text.length > 2);
    verdict.textContent = unsure.length ? `Not sure about ${unsure.map((d) => d.label).join(", ")}` : "";
    const left = body.marks.length ? `; ${body.marks.length} mark${body.marks.length > 1 ? "s" : ""} left out` : "";
    confidence.textContent = `${percent(body.confidence)} sure of the whole number${left}`;
    inputImage.hidden = true;
    showDigits(body.digits);
    showBoxes(body.digits, body.marks);
    announcer.textContent = `Read: ${body.text.split("").join(" ")}, ${percent(body.confidence)} sure.`;
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
      const reading = mode === "number";
      const response = await fetch(reading ? READ_URL : PREDICT_URL, {
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
        if (reading) {
          showReading(body);
        } else {
          showPrediction(body);
          answered = { blob, filename, requestId: response.headers.get("X-Request-ID"),
                       predicted: body.predicted_class };
          feedbackStatus.textContent = "";
          feedbackBox.hidden = false;
        }
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
        buildFeedback();
      }
    } catch (_) {
      name.textContent = "unavailable";
      version.textContent = accuracy.textContent = architecture.textContent = "–";
    }
  }

  // -- the drawing pad --------------------------------------------------------------

  function strokePath(points) {
    const w = canvas.width;
    const h = canvas.height;
    ctx.beginPath();
    ctx.moveTo(points[0][0] * w, points[0][1] * h);
    if (points.length === 1) {
      ctx.lineTo(points[0][0] * w + 0.01, points[0][1] * h); // a dot
    }
    for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0] * w, points[i][1] * h);
    ctx.stroke();
  }

  function setPen() {
    ctx.lineWidth = PEN_WIDTH * canvas.height; // of the pad's height: the same pen in both modes
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
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(rect.width * ratio));
    const height = Math.max(1, Math.round(rect.height * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
      redraw();
      boxes.replaceChildren(); // drawn for the old size; the next answer draws them again
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

  function startOver() {
    clearPad();
    requestSeq++; // a late answer for the old drawing must not appear
    if (inFlight) inFlight.abort();
    result.setAttribute("aria-busy", "false");
    clearError();
    resetResult(mode === "number" ? "Write a number or choose an image of one to start."
      : "Draw a digit or choose an image to start.");
  }

  $("clear").addEventListener("click", startOver);

  // -- one digit or a whole number -----------------------------------------------------

  function setMode(value) {
    mode = value === "number" ? "number" : "digit";
    document.body.dataset.mode = mode;
    padHint.textContent = mode === "number" ? "Write a number here" : "Draw a digit here";
    inputTitle.textContent = mode === "number" ? "Your number" : "Your digit";
    canvas.setAttribute("aria-label", mode === "number"
      ? "Drawing area: write a number, digits side by side. It is read when you lift the pen."
      : "Drawing area: draw one digit with a mouse, finger or pen. It is classified when you lift the pen.");
    startOver();
    resize();
  }

  for (const input of document.querySelectorAll('input[name="mode"]')) {
    input.addEventListener("change", () => { if (input.checked) setMode(input.value); });
  }

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
  buildFeedback();
  resize();
  new ResizeObserver(resize).observe(canvas);
  loadModel();
})();
