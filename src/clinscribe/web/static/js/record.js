// Record in the browser or pick a file, keep it on this device (IndexedDB) until the server has
// accepted it, and upload it with progress, retrying through network drops. Every recording
// has an id sent as the Idempotency-Key: an upload repeated after a lost answer never creates a
// second consultation. Used on the new-consultation page and the list (pending uploads).
"use strict";

(() => {
  const DB_NAME = "clinscribe-recordings";
  const RECORDINGS = "recordings";
  const CHUNKS = "chunks";
  const HEARTBEAT_MS = 1000;
  // Without Web Locks (old browsers), a "recording" row silent this long was left by a closed tab.
  const ABANDONED_AFTER_MS = 120000;
  const STALLED_AFTER_MS = 60000; // no upload progress, or no answer after the body was sent
  const RETRY_DELAYS_S = [1, 2, 4, 8, 15, 30];

  const owner = document.body.dataset.user ?? ""; // recordings belong to the signed-in user

  // ---------- IndexedDB ----------
  let dbPromise = null;
  function db() {
    dbPromise ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(RECORDINGS, { keyPath: "id" });
        request.result.createObjectStore(CHUNKS, { keyPath: ["rec", "seq"] });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return dbPromise;
  }

  async function run(stores, mode, work) {
    const database = await db();
    return new Promise((resolve, reject) => {
      const tx = database.transaction(stores, mode);
      let result;
      Promise.resolve(work(tx)).then((value) => { result = value; });
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("storage transaction aborted"));
    });
  }

  const req = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

  const putRecording = (rec) => run([RECORDINGS], "readwrite", (tx) => { tx.objectStore(RECORDINGS).put(rec); });
  const putChunk = (rec, seq, blob) =>
    run([CHUNKS], "readwrite", (tx) => { tx.objectStore(CHUNKS).put({ rec, seq, blob }); });
  const allRecordings = () => run([RECORDINGS], "readonly", (tx) => req(tx.objectStore(RECORDINGS).getAll()));
  const getRecording = (id) => run([RECORDINGS], "readonly", (tx) => req(tx.objectStore(RECORDINGS).get(id)));

  async function recordingBlob(rec) {
    const range = IDBKeyRange.bound([rec.id, 0], [rec.id, Number.MAX_SAFE_INTEGER]);
    const chunks = await run([CHUNKS], "readonly", (tx) => req(tx.objectStore(CHUNKS).getAll(range)));
    return new Blob(chunks.map((c) => c.blob), { type: rec.mimeType || "application/octet-stream" });
  }

  async function forget(id) {
    const range = IDBKeyRange.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]);
    await run([RECORDINGS, CHUNKS], "readwrite", (tx) => {
      tx.objectStore(RECORDINGS).delete(id);
      tx.objectStore(CHUNKS).delete(range);
    });
  }

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A tab holds a recording's lock while it records or uploads it; other tabs leave it alone.
  // Locks are released by the browser when a tab closes or crashes, so a free lock on a
  // recording that is not "ready" means the tab that made it is gone.
  const lockName = (id) => `clinscribe-recording-${id}`;

  async function heldLocks() {
    if (!navigator.locks) return null;
    const { held = [] } = await navigator.locks.query();
    return new Set(held.map((lock) => lock.name));
  }

  function holdLock(id) {
    // Resolves to a release function once the lock is ours (recording: waits for nobody).
    if (!navigator.locks) return Promise.resolve(() => {});
    return new Promise((granted) => {
      navigator.locks.request(lockName(id), () => new Promise((release) => granted(release)));
    });
  }

  function withLockIfFree(id, work) {
    if (!navigator.locks) return work();
    return navigator.locks.request(lockName(id), { ifAvailable: true }, (lock) => (lock ? work() : null));
  }

  // ---------- upload ----------
  const uploading = new Set(); // ids being uploaded by this tab

  function send(rec, blob, onProgress) {
    return new Promise((resolve) => {
      const form = new FormData();
      for (const field of ["language", "template", "patient_ref", "title"]) {
        if (rec[field]) form.append(field, rec[field]);
      }
      form.append("audio", blob, rec.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/consultations");
      xhr.setRequestHeader("X-CSRF-Token", clinscribe.csrfToken());
      xhr.setRequestHeader("Idempotency-Key", rec.key ?? rec.id);
      // A half-open connection never fails by itself: give up after a minute without progress
      // (sending again is safe, the key makes it the same upload).
      let stall = setTimeout(() => xhr.abort(), STALLED_AFTER_MS);
      const alive = () => { clearTimeout(stall); stall = setTimeout(() => xhr.abort(), STALLED_AFTER_MS); };
      xhr.upload.onprogress = (event) => {
        alive();
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      xhr.upload.onload = alive;
      xhr.onloadend = () => clearTimeout(stall);
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { body = null; }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => resolve({ status: 0, body: null });
      xhr.ontimeout = () => resolve({ status: 0, body: null });
      xhr.onabort = () => resolve({ status: 0, body: null });
      xhr.send(form);
    });
  }

  const retryable = (status) => status === 0 || status === 408 || status === 429 || status >= 500;

  function waitForRetry(seconds) {
    // Whichever comes first: the delay, the browser coming back online, or "Try again now".
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        retryNow?.removeEventListener("click", done);
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      window.addEventListener("online", done);
      retryNow?.addEventListener("click", done);
    });
  }

  // Upload until the server accepts or refuses it; the recording stays stored until accepted.
  function upload(rec, view, unstoredBlob = null) {
    if (uploading.has(rec.id)) return Promise.resolve(null);
    return withLockIfFree(rec.id, () => uploadHoldingLock(rec, view, unstoredBlob));
  }

  async function uploadHoldingLock(rec, view, unstoredBlob) {
    uploading.add(rec.id);
    try {
      const blob = unstoredBlob ?? await recordingBlob(rec);
      if (blob.size === 0) {
        await forget(rec.id);
        view.failed("The recording is empty (no sound was captured), so there is nothing to upload.");
        return null;
      }
      for (let attempt = 0; ; attempt += 1) {
        view.progress(0, attempt === 0 ? "Uploading…" : "Uploading again…");
        const { status, body } = await send(rec, blob, (share) => view.progress(share, "Uploading…"));
        if (status === 200 || status === 202) {
          await forget(rec.id);
          view.done(body);
          return body;
        }
        if (status === 401 || body?.error?.code === "csrf_failed") {
          view.signedOut("Your session has ended. Sign in again; the recording stays on this device and uploads after you sign in.");
          return null;
        }
        if (body?.error?.code === "idempotency_key_used") {
          // Its earlier consultation was deleted on the server: send it as a new one.
          rec.key = newId();
          await putRecording(rec);
          continue;
        }
        if (!retryable(status)) {
          const reason = body?.error?.message ?? `The server refused the upload (${status}).`;
          view.failed(reason + " The recording stays on this device until you discard it.");
          return null;
        }
        const delay = RETRY_DELAYS_S[Math.min(attempt, RETRY_DELAYS_S.length - 1)];
        const why = navigator.onLine === false || status === 0
          ? "The network is unavailable."
          : `The server is busy (${status}).`;
        view.waiting(`${why} The recording is safe on this device; trying again in ${delay} s.`);
        await waitForRetry(delay);
      }
    } finally {
      uploading.delete(rec.id);
    }
  }

  // ---------- the page's upload panel ----------
  const statusCard = document.getElementById("upload-status");
  const progressBar = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const retryNow = document.getElementById("upload-retry");

  const panelView = {
    progress(share, text) {
      statusCard.hidden = false;
      progressBar.value = share;
      message.textContent = `${text} ${Math.round(share * 100)}%`;
      message.classList.remove("error");
      retryNow.hidden = true;
    },
    waiting(text) {
      message.textContent = text;
      retryNow.hidden = false;
    },
    done(body) {
      message.textContent = "Uploaded. Opening the consultation…";
      window.location.assign(`/consultations/${body.id}`);
    },
    failed(text) {
      statusCard.hidden = false;
      message.textContent = text;
      message.classList.add("error");
      retryNow.hidden = true;
      refreshPending();
    },
  };
  panelView.signedOut = panelView.failed;

  function details() {
    const value = (id) => document.getElementById(id)?.value.trim() ?? "";
    return {
      language: value("language"), template: value("template"),
      patient_ref: value("patient_ref"), title: value("title"),
    };
  }

  // ---------- recordings left behind (network down, tab closed, refused) ----------
  const pendingCard = document.getElementById("pending-uploads");
  const pendingList = document.getElementById("pending-list");

  async function pendingRecordings() {
    const now = Date.now();
    const held = await heldLocks();
    const abandoned = (rec) => (held ? !held.has(lockName(rec.id))
                                     : now - (rec.heartbeat ?? 0) > ABANDONED_AFTER_MS);
    return (await allRecordings()).filter((rec) =>
      rec.owner === owner && (rec.state === "ready" || abandoned(rec)));
  }

  function describe(rec) {
    const when = new Date(rec.createdAt).toLocaleString();
    return `${rec.title || rec.patient_ref || rec.name} — ${when}`;
  }

  async function refreshPending() {
    if (!pendingCard || !owner) return;
    const pending = await pendingRecordings();
    pendingList.replaceChildren();
    for (const rec of pending) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      const state = uploading.has(rec.id) ? " — uploading…" : rec.lastError ? ` — ${rec.lastError}` : "";
      label.textContent = describe(rec) + state;
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Upload";
      again.addEventListener("click", () => uploadPending(rec.id));
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "quiet";
      discard.textContent = "Discard";
      discard.addEventListener("click", async () => {
        if (window.confirm("Discard this recording? It has not reached the server and cannot be recovered.")) {
          await forget(rec.id);
          refreshPending();
        }
      });
      item.append(label, again, discard);
      pendingList.append(item);
    }
    pendingCard.hidden = pending.length === 0;
  }

  async function uploadPending(id) {
    const rec = await getRecording(id);
    if (!rec) return refreshPending();
    if (rec.state !== "ready") {
      rec.state = "ready";
      await putRecording(rec);
    }
    // Quietly: the clinician may be recording the next consultation on this page meanwhile.
    const listView = {
      progress: () => {},
      waiting: () => {},
      done: () => {
        clinscribe.say("An earlier recording has reached the server.");
        refreshPending();
        window.htmx?.ajax("GET", "/consultations/rows", { target: "#rows", swap: "outerHTML" });
      },
      failed: async (text) => {
        rec.lastError = text; // refused: waits for the clinician's decision
        await putRecording(rec);
        refreshPending();
      },
      signedOut: () => {
        clinscribe.say("Your session has ended: sign in again to upload the recordings kept on this device.", { bad: true });
        refreshPending();
      },
    };
    return upload(rec, listView);
  }

  async function resumePending() {
    if (!owner || !window.indexedDB) return;
    await refreshPending();
    for (const rec of await pendingRecordings()) {
      if (!rec.lastError) uploadPending(rec.id); // refused ones wait for the clinician's decision
    }
    refreshPending();
  }

  // ---------- recorder ----------
  const recorderCard = document.getElementById("recorder");
  let recorder = null;
  let stream = null;
  let current = null; // the recording being made
  let seq = 0;
  let writes = Promise.resolve();
  let elapsedMs = 0;
  let runningSince = null;
  let ticker = null;
  let audioContext = null;
  let meterFrame = null;
  let releaseLock = () => {};

  const el = (id) => document.getElementById(id);

  function showTime() {
    const total = elapsedMs + (runningSince ? Date.now() - runningSince : 0);
    const seconds = Math.floor(total / 1000);
    el("timer").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }

  function buttons(state) {
    el("start").disabled = state !== "idle";
    el("pause").disabled = state !== "recording";
    el("resume").disabled = state !== "paused";
    el("stop").disabled = state === "idle";
    el("upload-file").disabled = state !== "idle";
    el("microphone").disabled = state !== "idle";
    el("record-state").textContent = { idle: "Not recording", recording: "Recording", paused: "Paused" }[state];
  }

  async function listMicrophones() {
    const select = el("microphone");
    const chosen = select.value;
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
    select.replaceChildren(new Option("Default microphone", ""));
    devices.forEach((device, index) => {
      if (device.deviceId && device.deviceId !== "default") {
        select.append(new Option(device.label || `Microphone ${index + 1}`, device.deviceId));
      }
    });
    select.value = chosen;
  }

  function startMeter() {
    audioContext = new AudioContext();
    const analyser = audioContext.createAnalyser();
    analyser.fftSize = 1024;
    audioContext.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const meter = el("level");
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      meterFrame = requestAnimationFrame(draw);
    };
    draw();
  }

  function stopMeter() {
    if (meterFrame) cancelAnimationFrame(meterFrame);
    meterFrame = null;
    audioContext?.close();
    audioContext = null;
    el("level").value = 0;
  }

  function pickMimeType() {
    const options = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    return options.find((type) => MediaRecorder.isTypeSupported(type)) ?? "";
  }

  async function start() {
    const deviceId = el("microphone").value;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: deviceId ? { deviceId: { exact: deviceId } } : true,
      });
    } catch (error) {
      clinscribe.say(error.name === "NotAllowedError"
        ? "Microphone access was refused. Allow it in the browser's site settings, or upload a file."
        : "No microphone could be opened. Check that one is connected, or upload a file.", { bad: true });
      return;
    }
    await listMicrophones();
    const mimeType = pickMimeType();
    recorder = new MediaRecorder(stream, mimeType ? { mimeType, audioBitsPerSecond: 48000 } : undefined);
    const extension = recorder.mimeType.includes("ogg") ? "ogg" : recorder.mimeType.includes("mp4") ? "m4a" : "webm";
    current = {
      id: newId(), owner, kind: "recording", state: "recording", createdAt: Date.now(),
      heartbeat: Date.now(), mimeType: recorder.mimeType, name: `recording.${extension}`, ...details(),
    };
    seq = 0;
    releaseLock = await holdLock(current.id);
    await putRecording(current);
    navigator.storage?.persist?.().catch(() => {}); // ask the browser not to evict recordings
    recorder.ondataavailable = (event) => {
      if (event.data.size > 0) {
        const n = seq++;
        const blob = event.data;
        writes = writes.then(() => putChunk(current.id, n, blob)).catch(() => {
          clinscribe.say("This device's storage is full: the recording may not be saved. Stop and upload now.", { bad: true });
        });
      }
    };
    recorder.onstop = finish;
    recorder.start(1000); // a chunk every second, each stored as it arrives
    elapsedMs = 0;
    runningSince = Date.now();
    ticker = setInterval(() => {
      showTime();
      if (current) {
        current.heartbeat = Date.now();
        putRecording(current);
      }
    }, HEARTBEAT_MS);
    startMeter();
    buttons("recording");
  }

  function pause() {
    recorder.pause();
    elapsedMs += Date.now() - runningSince;
    runningSince = null;
    buttons("paused");
  }

  function resume() {
    recorder.resume();
    runningSince = Date.now();
    buttons("recording");
  }

  function stop() {
    if (runningSince) elapsedMs += Date.now() - runningSince;
    runningSince = null;
    el("stop").disabled = true;
    recorder.stop(); // the last chunk arrives before "stop", then finish() runs
  }

  async function finish() {
    clearInterval(ticker);
    stopMeter();
    stream.getTracks().forEach((track) => track.stop());
    await writes;
    const rec = current;
    current = null;
    Object.assign(rec, details(), { state: "ready", durationMs: elapsedMs });
    await putRecording(rec);
    buttons("idle");
    showTime();
    // Upload under the lock the recording was made under: no other tab takes it meanwhile.
    try {
      await uploadHoldingLock(rec, panelView, null);
    } finally {
      releaseLock();
    }
  }

  async function uploadFile() {
    const file = el("file").files[0];
    if (!file) {
      clinscribe.say("Choose an audio file first.", { bad: true });
      return;
    }
    const rec = {
      id: newId(), owner, kind: "file", state: "ready", createdAt: Date.now(), heartbeat: Date.now(),
      mimeType: file.type, name: file.name, ...details(),
    };
    try {
      await putChunk(rec.id, 0, file);
      await putRecording(rec);
    } catch {
      // No room for a copy on this device: upload from the file (retries work while on this page).
      return upload(rec, panelView, file);
    }
    await upload(rec, panelView);
  }

  function setUpRecorder() {
    if (!recorderCard) return;
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
      el("insecure").hidden = false;
      el("start").disabled = true;
    } else {
      el("start").addEventListener("click", start);
      el("pause").addEventListener("click", pause);
      el("resume").addEventListener("click", resume);
      el("stop").addEventListener("click", stop);
      navigator.mediaDevices.enumerateDevices().then(() => listMicrophones()).catch(() => {});
    }
    el("upload-file").addEventListener("click", uploadFile);
    window.addEventListener("beforeunload", (event) => {
      if (current || uploading.size) event.preventDefault(); // ask before leaving mid-recording
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpRecorder();
    resumePending().catch(() => {});
  });
})();
