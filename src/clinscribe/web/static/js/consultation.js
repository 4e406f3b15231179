// Consultation page: live progress over Server-Sent Events, retry after a failure, speaker
// corrections, and playing the recording from any utterance.
"use strict";

(() => {
  const root = document.getElementById("consultation");
  const id = root.dataset.id;
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  function showStatus(status) {
    const badge = document.getElementById("status-badge");
    badge.textContent = status.status.charAt(0).toUpperCase() + status.status.slice(1);
    badge.className = `status status-${status.status}`;
    const items = [...document.querySelectorAll("#stages li")];
    const reached = items.findIndex((li) => li.dataset.stage === status.stage);
    items.forEach((li, index) => {
      let state = "waiting";
      if (status.status === "completed" || index < reached) state = "done";
      else if (index === reached) state = status.status === "failed" ? "failed" : "current";
      li.className = state;
      if (state === "current" || state === "failed") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      const hidden = li.querySelector(".visually-hidden");
      if (hidden) hidden.textContent = { done: " (done)", failed: " (failed)", current: " (in progress)", waiting: "" }[state];
    });
    const failure = document.getElementById("failure");
    failure.hidden = status.status !== "failed";
    if (status.status === "failed") {
      document.getElementById("failure-message").textContent = status.error?.message ?? "";
      document.getElementById("retry").hidden = !status.error?.retryable;
    }
  }

  function follow() {
    const source = new EventSource(`/api/consultations/${id}/events`);
    source.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      showStatus(status);
      if (TERMINAL.has(status.status)) {
        source.close();
        if (status.status === "completed") {
          // The transcript and the note exist now: show them.
          clinscribe.say("Processing completed. The note is ready for review.");
          window.location.reload();
        }
      }
    });
    // EventSource reconnects by itself after a drop; the stream restarts from the current status.
  }

  async function retry() {
    const button = document.getElementById("retry");
    button.disabled = true;
    try {
      await clinscribe.api("POST", `/api/consultations/${id}/retry`);
      clinscribe.say("Retrying from the step that failed.");
      document.getElementById("failure").hidden = true;
      follow();
    } catch (error) {
      clinscribe.say(error.message, { bad: true });
    } finally {
      button.disabled = false;
    }
  }

  async function correctSpeaker(event) {
    const select = event.target;
    const before = select.closest(".utterance").className.replace(/.*speaker-(\w+).*/, "$1");
    try {
      await clinscribe.api("PATCH", `/api/consultations/${id}/transcript/utterances/${select.dataset.utterance}`,
        { speaker: select.value });
      select.closest(".utterance").className = `utterance speaker-${select.value}`;
      clinscribe.say("Speaker corrected.");
    } catch (error) {
      select.value = before; // not saved: show what is stored
      clinscribe.say(error.message, { bad: true });
    }
  }

  function playFrom(event) {
    const player = document.getElementById("player");
    if (!player) return;
    const start = Number(event.target.dataset.start);
    const go = () => { player.currentTime = start; player.play().catch(() => {}); };
    if (player.readyState >= 1) go();
    else { player.addEventListener("loadedmetadata", go, { once: true }); player.load(); }
    document.querySelectorAll(".utterance.playing").forEach((u) => u.classList.remove("playing"));
    event.target.closest(".utterance").classList.add("playing");
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!TERMINAL.has(root.dataset.status)) follow();
    document.getElementById("retry").addEventListener("click", retry);
    document.querySelectorAll("select.speaker").forEach((s) => s.addEventListener("change", correctSpeaker));
    document.querySelectorAll(".utterance .play").forEach((b) => b.addEventListener("click", playFrom));
  });
})();
