// Phase 1 in the browser: the device bundle (dist/edge/) on onnxruntime-web, tokenized by the Rust tokenizers
// library compiled to WebAssembly from the same tokenizer.json, so ids equal the server's and edge.device's.
// Reviews the model is unsure of (the bundle's threshold) go to the phase-2 model on TorchServe.
import * as ort from "./vendor/ort.wasm.min.mjs";

const DEFER_AFTER_MS = 300; // ask the server once typing pauses, not on every keystroke

// Everything is served from this origin: no CDN at run time, the page works with the network cut.
ort.env.wasm.wasmPaths = new URL("./vendor/", import.meta.url).href;
// One thread: threads need cross-origin isolation, and one review is a few milliseconds anyway.
ort.env.wasm.numThreads = 1;

const $ = (id) => document.getElementById(id);

async function fetchOk(url) {
  let response;
  try {
    response = await fetch(url, { cache: "no-cache" });
  } catch (err) {
    // fetch says only "Failed to fetch": name the file, so the page says which one it could not get
    throw new Error(`${url} could not be fetched (${err.message})`);
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

async function load() {
  const [settings, tokenizerBytes, modelBytes] = await Promise.all([
    fetchOk("bundle/settings.json").then((r) => r.json()),
    fetchOk("bundle/tokenizer.json").then((r) => r.arrayBuffer()),
    fetchOk("bundle/model.onnx").then((r) => r.arrayBuffer()),
  ]);
  // The library applies tokenizer.json's own truncation; edge.device applies settings.max_tokens: they must agree.
  const truncation = JSON.parse(new TextDecoder().decode(tokenizerBytes)).truncation;
  if (!truncation || truncation.max_length !== settings.max_tokens || truncation.direction !== "Right") {
    throw new Error("tokenizer.json's truncation differs from the bundle's max_tokens: rebuild with `make edge`");
  }
  const tokenizer = await globalThis.tokenizers.Tokenizer.fromJSON(tokenizerBytes);
  const session = await ort.InferenceSession.create(new Uint8Array(modelBytes), { executionProviders: ["wasm"] });
  return { settings, tokenizer, session };
}

function sigmoid(logit) {
  // model/logit.py's sigmoid and label rule, copied: tests/integration/test_browser.py holds the two together
  if (logit >= 0) return 1 / (1 + Math.exp(-logit));
  const z = Math.exp(logit);
  return z / (1 + z);
}

// The server's refusals the device can tell before scoring (handler.codec.check_text), with the same codes.
function refusal(text, limits) {
  if ([...text].length > limits.max_chars) {
    return { code: "text_too_long", message: `a review may hold at most ${limits.max_chars} characters` };
  }
  if (!text.isWellFormed()) return { code: "invalid_text", message: "the review text holds lone UTF-16 surrogates" };
  if (!/[^\p{C}\p{Z}\s]/u.test(text)) {
    return { code: "empty_text", message: "the review text is empty or holds only whitespace and control characters" };
  }
  return null;
}

async function score(model, text) {
  const { settings, tokenizer, session } = model;
  const ids = Array.from(tokenizer.encode(text));
  const n = ids.length;
  // edge.device.pad: at least one column, padded with 0; `lengths` says how much of it is the review
  const feeds = {
    ids: new ort.Tensor("int64", BigInt64Array.from(n ? ids : [0], BigInt), [1, Math.max(n, 1)]),
    lengths: new ort.Tensor("int64", BigInt64Array.of(BigInt(n)), [1]),
  };
  const raw = (await session.run(feeds)).logits.data[0];
  const logit = settings.slope * raw + settings.intercept; // calibration.json, as edge.device
  const probability = sigmoid(logit);
  const unknown = n ? ids.filter((i) => i === settings.unk_id).length / n : 1;
  return {
    ids,
    raw_logit: raw,
    probability,
    confidence: Math.max(probability, 1 - probability),
    label: logit >= 0 ? "positive" : "negative",
    unknown_token_fraction: unknown,
  };
}

// edge.cascade.defers: below the threshold, or always from 1 up
const defers = (confidence, threshold) => threshold >= 1 || confidence < threshold;

// The page's own origin passes the call on to TorchServe and adds the credential (serving/web/dev_server.py, or the
// deployment's proxy): the page holds no token.
async function askServer(model, text, cancel) {
  const started = performance.now();
  const response = await fetch(`predictions/${model.settings.phase2_model}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
    signal: AbortSignal.any([cancel, AbortSignal.timeout(model.settings.phase2_timeout_s * 1000)]),
  });
  if (!response.ok) {
    // the server's error code where it sent one (handler.errors; "unreachable" from the page's own proxy)
    const code = await response.json().then((body) => body?.error?.code, () => undefined);
    throw new Error(`answered HTTP ${response.status}${code ? ` (${code})` : ""}`);
  }
  const answer = await response.json();
  return { ...answer, round_trip_ms: performance.now() - started };
}

// Why phase 2 gave no answer, in the words the page shows beside the provisional one.
function unanswered(err, settings) {
  if (err.name === "TimeoutError") return `did not answer within ${settings.phase2_timeout_s} s`;
  if (err.name === "TypeError") return "could not be reached"; // fetch's network failure
  return err.message; // "answered HTTP 503", or an answer that was not the expected JSON
}

function show(state) {
  const answer = $("answer");
  answer.dataset.source = state.source; // device | pending | server | provisional | error | idle
  answer.className = state.error ? "error" : state.label || "";
  $("status").textContent = state.status;
  answer.querySelector("dl").hidden = !state.label;
  if (!state.label) {
    // no answer of this review: the previous one's figures go too, not only out of sight
    for (const id of ["label", "probability", "confidence", "source"]) $(id).textContent = "";
    return;
  }
  $("label").textContent = state.label;
  $("probability").textContent = state.probability.toFixed(3);
  $("confidence").textContent = `${(100 * state.confidence).toFixed(1)} %${state.unsure ? " (unsure)" : ""}`;
  $("source").textContent = state.by;
  $("source").className = state.source;
}

function main() {
  const ready = load();
  let current = 0; // the latest input's number: answers to older inputs are dropped
  let timer = null;
  let asking = new AbortController(); // the phase-2 call in flight, cancelled when the review changes

  async function predict(text) {
    const seq = ++current;
    clearTimeout(timer);
    asking.abort();
    asking = new AbortController();
    const cancel = asking.signal;
    const model = await ready;
    if (text === "") return show({ source: "idle", status: "" });
    const refused = refusal(text, model.settings.limits);
    if (refused) return show({ source: "error", error: refused, status: `Not scored: ${refused.message} (${refused.code})` });
    const started = performance.now();
    let p1;
    try {
      p1 = await score(model, text);
    } catch (err) {
      // otherwise the previous review's answer would stay on screen beside this one
      if (seq === current) show({ source: "error", error: err, status: `Not scored: ${err.message}` });
      return;
    }
    if (seq !== current) return;
    const ms = performance.now() - started;
    const unsure = defers(p1.confidence, model.settings.threshold);
    const base = { ...p1, unsure, status: "" };
    window.firstPrediction ??= performance.now();
    if (!unsure) return show({ ...base, source: "device", by: `this device (${ms.toFixed(1)} ms)` });
    show({ ...base, source: "pending", by: "this device, unsure: asking the server…" });
    timer = setTimeout(async () => {
      try {
        const p2 = await askServer(model, text, cancel);
        if (seq !== current) return;
        show({
          ...base,
          probability: p2.positive_review_probability,
          confidence: Math.max(p2.positive_review_probability, 1 - p2.positive_review_probability),
          label: p2.label,
          unsure: false,
          source: "server",
          by: `the server, ${model.settings.phase2_model} ${p2.model_version} (${p2.round_trip_ms.toFixed(0)} ms round trip)`,
        });
      } catch (err) {
        if (seq !== current) return;
        const why = unanswered(err, model.settings);
        console.warn(`phase 2 ${why}: the device's answer stands, provisional`);
        show({ ...base, source: "provisional", by: `this device, provisional: the server ${why}` });
      }
    }, DEFER_AFTER_MS);
  }

  const review = $("review");
  review.addEventListener("input", () => predict(review.value));
  ready.then(
    () => {
      review.disabled = false;
      $("status").textContent = "";
      // #review=... fills the box (the fragment never leaves the browser)
      if (location.hash.startsWith("#review=")) {
        review.value = decodeURIComponent(location.hash.slice("#review=".length));
        predict(review.value);
      }
    },
    (err) => show({ source: "error", error: err, status: `The model could not be loaded: ${err.message}` }),
  );
  // for the browser tests and the measurements (tests/integration/test_browser.py)
  window.phase1 = {
    ready: ready.then(() => true),
    score: async (text) => score(await ready, text),
    settings: async () => (await ready).settings,
  };
}

main();
