// worldmem explorer page: one websocket, keys in, frames out (protocol: protocol.py).
"use strict";

(() => {
  const REPEAT_MS = 110; // a held key or button sends one key this often
  const RECONNECT_MS = [500, 1000, 2000, 4000, 8000]; // back-off between reconnect attempts
  const FPS_WINDOW_MS = 2000;
  // a chunk's frames arrive together: each is shown at least PACE x its share of the chunk's
  // generation time after the one before (under 1, so the queue drains), waiting at most
  // MAX_PACE_MS
  const PACE = 0.9;
  const MAX_PACE_MS = 250;

  const KEYMAP = {
    w: "w", s: "s", a: "a", d: "d", q: "q", e: "e",
    " ": "space", shift: "shift",
    arrowleft: "left", arrowright: "right", arrowup: "up", arrowdown: "down",
    r: "reset",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    frame: $("frame"), map: $("map"), depth: $("depth"), memory: $("memory"),
    overlay: $("overlay"), badge: $("state-badge"), model: $("model-badge"),
    fps: $("fps"), latency: $("latency"), index: $("frame-index"), pose: $("pose"),
    message: $("message"), prompt: $("prompt"), seed: $("seed"), form: $("start-form"),
    fromImage: $("from-image"),
    video: $("dl-video"), ply: $("dl-ply"), pad: $("pad"),
  };

  let ws = null;
  let hello = null;
  let reconnectAttempt = 0;
  let generating = false;
  let serverPending = 0;
  let sentKeys = 0; // keys sent since the last status message
  let frameTimes = [];
  let latencyMs = null;
  const seenT = new Set();
  let framesReceived = 0;
  let world = null; // {prompt, seed}: re-started after a reconnect
  const canvases = { frame: el.frame, map: el.map, depth: el.depth, memory: el.memory };
  let drawChain = Promise.resolve(); // images are drawn in the order they arrive
  let lastFrameDrawn = -Infinity;

  function setState(state, text) {
    document.body.dataset.state = state;
    el.badge.textContent = text || state;
  }

  function showMessage(text, kind = "warn") {
    el.message.textContent = text || "";
    el.message.dataset.kind = kind; // "info" is not a warning
  }

  function connect() {
    setState("connecting");
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") onJson(JSON.parse(ev.data));
      else onImage(ev.data);
    };
    ws.onclose = () => {
      hello = null;
      el.video.classList.add("disabled");
      el.ply.classList.add("disabled");
      const wait = RECONNECT_MS[Math.min(reconnectAttempt, RECONNECT_MS.length - 1)];
      reconnectAttempt += 1;
      setState("disconnected", "disconnected");
      el.overlay.hidden = false;
      el.overlay.textContent = `disconnected: reconnecting in ${(wait / 1000).toFixed(1)} s`;
      setTimeout(connect, wait);
    };
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN && hello) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function startWorld(prompt, seed, fromImage) {
    world = { prompt, seed, fromImage };
    latencyMs = null;
    frameTimes = [];
    if (send({ type: "start", prompt, seed, from_image: fromImage })) {
      generating = true;
      setState("generating", "starting world");
    }
  }

  function onJson(msg) {
    switch (msg.type) {
      case "hello": {
        hello = msg;
        reconnectAttempt = 0;
        el.overlay.hidden = true;
        el.prompt.maxLength = msg.limits.max_prompt_chars;
        for (const c of [el.frame, el.depth, el.memory]) {
          c.width = msg.image_size;
          c.height = msg.image_size;
        }
        el.video.href = msg.downloads.video;
        el.ply.href = msg.downloads.memory;
        el.model.textContent = msg.model.trained ? msg.model.name : "random weights";
        el.model.title = msg.model.note || msg.model.name;
        document.body.dataset.session = msg.session;
        setState("ready");
        el.fromImage.disabled = !msg.start_frame;
        if (!msg.start_frame) el.fromImage.checked = false;
        if (!world && msg.start_frame) el.prompt.value = msg.start_frame.caption;
        const w = world || {
          prompt: el.prompt.value,
          seed: Number(el.seed.value) || 0,
          fromImage: el.fromImage.checked,
        };
        startWorld(w.prompt, w.seed, w.fromImage);
        if (msg.model.note) showMessage(msg.model.note);
        break;
      }
      case "started": {
        const f = msg.first_frame;
        showMessage(
          f && f.kind === "bank"
            ? `began from a frame of a training world (${f.source}, caption similarity ` +
                `${f.similarity.toFixed(2)}): ${f.caption}`
            : "",
          "info",
        );
        break;
      }
      case "status":
        generating = msg.state === "generating";
        serverPending = msg.pending;
        sentKeys = 0;
        setState(generating ? "generating" : "ready", generating ? "generating" : "ready");
        el.pose.dataset.dropped = msg.dropped;
        break;
      case "error":
        showMessage(`${msg.code}: ${msg.message}`);
        if (msg.fatal) el.overlay.textContent = msg.message;
        break;
      default:
        break;
    }
  }

  function onImage(buf) {
    const view = new DataView(buf);
    const n = view.getUint32(0, false);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const blob = new Blob([new Uint8Array(buf, 4 + n)], { type: header.mime });
    const decoded = createImageBitmap(blob);
    drawChain = drawChain
      .then(() => decoded)
      .then((bitmap) => (header.kind === "frame" ? paced(header, bitmap) : bitmap))
      .then((bitmap) => draw(header, bitmap))
      .catch((err) => showMessage(`could not show an image: ${err}`));
  }

  // resolves to bitmap once the frame before it has been shown long enough (a frame's header
  // carries its chunk's generation time, in seconds, by part)
  function paced(header, bitmap) {
    const chunkMs = 1000 * Object.values(header.timing || {}).reduce((a, b) => a + b, 0);
    const spacing = hello ? chunkMs / hello.chunk_frames : 0;
    const wait = Math.min(MAX_PACE_MS, lastFrameDrawn + PACE * spacing - performance.now());
    if (wait <= 0) return bitmap;
    return new Promise((resolve) => setTimeout(() => resolve(bitmap), wait));
  }

  function fmt(v, digits) {
    const s = v.toFixed(digits);
    return Number(s) === 0 ? (0).toFixed(digits) : s; // no "-0.00"
  }

  function draw(header, bitmap) {
    const canvas = canvases[header.kind];
    if (!canvas) return;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    if (header.kind !== "frame") return;
    const now = performance.now();
    lastFrameDrawn = now;
    framesReceived += 1;
    frameTimes.push(now);
    while (frameTimes.length && now - frameTimes[0] > FPS_WINDOW_MS) frameTimes.shift();
    if (frameTimes.length > 1) {
      const span = frameTimes[frameTimes.length - 1] - frameTimes[0];
      el.fps.textContent = ((frameTimes.length - 1) / (span / 1000)).toFixed(1);
    }
    if (header.t !== null && header.t !== undefined && !seenT.has(header.t)) {
      seenT.add(header.t);
      if (seenT.size > 256) seenT.clear();
      const ms = now - header.t;
      latencyMs = latencyMs === null ? ms : 0.7 * latencyMs + 0.3 * ms;
      el.latency.textContent = `${Math.round(ms)} (avg ${Math.round(latencyMs)})`;
    }
    const p = header.pose;
    const d = el.pose.dataset;
    d.x = p.position[0];
    d.y = p.position[1];
    d.z = p.position[2];
    d.yaw = p.yaw_deg;
    d.pitch = p.pitch_deg;
    d.frameIndex = header.frame_index;
    d.framesReceived = framesReceived;
    d.key = header.key;
    el.pose.textContent =
      `x ${fmt(p.position[0], 2)} y ${fmt(p.position[1], 2)} z ${fmt(p.position[2], 2)} ` +
      `yaw ${fmt(p.yaw_deg, 0)}° pitch ${fmt(p.pitch_deg, 0)}°`;
    el.index.textContent = header.frame_index;
    el.video.classList.remove("disabled");
    el.ply.classList.remove("disabled");
  }

  // -- actions ------------------------------------------------------------------------------

  function act(key, repeat) {
    if (!hello) return;
    if (key === "reset") {
      send({ type: "reset", t: performance.now() });
      return;
    }
    // a held key only adds keys while the server's backlog is small (never a long queue)
    const backlog = serverPending + sentKeys;
    if (repeat && backlog >= 2 * hello.chunk_frames) return;
    if (send({ type: "keys", keys: [key], t: performance.now() })) sentKeys += 1;
  }

  const held = new Map(); // source id -> interval timer

  function press(id, key) {
    if (held.has(id)) return;
    act(key, false);
    held.set(id, setInterval(() => act(key, true), REPEAT_MS));
  }

  function release(id) {
    clearInterval(held.get(id));
    held.delete(id);
  }

  function releaseAll() {
    for (const id of [...held.keys()]) release(id);
    for (const b of el.pad.querySelectorAll("button.held")) b.classList.remove("held");
  }

  function keyName(ev) {
    return KEYMAP[ev.key.toLowerCase()];
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target === el.prompt || ev.target === el.seed) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = keyName(ev);
    if (!key) return;
    ev.preventDefault();
    if (ev.repeat) return; // our own timer repeats held keys
    if (key === "reset") act("reset", false);
    else press(`key:${key}`, key);
  });
  document.addEventListener("keyup", (ev) => {
    const key = keyName(ev);
    if (key) release(`key:${key}`);
  });
  window.addEventListener("blur", releaseAll);

  for (const button of el.pad.querySelectorAll("button[data-key]")) {
    const key = button.dataset.key;
    const id = `pointer:${key}`;
    button.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      button.setPointerCapture(ev.pointerId);
      button.classList.add("held");
      if (key === "reset") act("reset", false);
      else press(id, key);
    });
    const stop = () => {
      button.classList.remove("held");
      release(id);
    };
    button.addEventListener("pointerup", stop);
    button.addEventListener("pointercancel", stop);
    button.addEventListener("lostpointercapture", stop);
    button.addEventListener("contextmenu", (ev) => ev.preventDefault());
  }

  el.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const seed = Math.max(0, Math.floor(Number(el.seed.value) || 0));
    startWorld(el.prompt.value, seed, el.fromImage.checked);
  });
  el.prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      el.form.requestSubmit();
    }
  });

  connect();
})();
