// Note review: evidence highlighting, editing (saved as a new version and re-verified),
// signing, ICD-10 decisions, regeneration with another template, and the patient summary.
"use strict";

(() => {
  const page = document.getElementById("note-page");
  const id = page.dataset.id;
  const version = Number(page.dataset.version);
  const noteUrl = `/api/consultations/${id}/note`;
  const el = (elementId) => document.getElementById(elementId);

  // ---------- evidence ----------
  // On narrow screens the transcript sits below the note, out of sight: the evidence is
  // also quoted under the sentence itself.
  const narrow = window.matchMedia("(max-width: 1000px)");

  function quoteEvidence(source, ids) {
    if (!narrow.matches || !source.classList.contains("sentence") || source.querySelector("textarea")) return;
    const quote = document.createElement("div");
    quote.className = "evidence-inline";
    for (const utteranceId of ids) {
      const text = document.querySelector(`#utt-${utteranceId} .text`)?.textContent;
      if (!text) continue;
      const line = document.createElement("q");
      line.textContent = text;
      quote.append(line);
    }
    if (quote.childElementCount) source.append(quote);
  }

  function highlight(source, on) {
    document.querySelectorAll(".utterance.evidence").forEach((u) => u.classList.remove("evidence"));
    document.querySelectorAll(".sentence.active").forEach((s) => s.classList.remove("active"));
    document.querySelectorAll(".evidence-inline").forEach((q) => q.remove());
    if (!on) return;
    if (source.classList.contains("sentence")) source.classList.add("active");
    const ids = (source.dataset.evidence || "").split(" ").filter(Boolean);
    quoteEvidence(source, ids);
    let first = null;
    for (const utteranceId of ids) {
      const utterance = document.getElementById(`utt-${utteranceId}`);
      if (utterance) {
        utterance.classList.add("evidence");
        first ??= utterance;
      }
    }
    // Scroll inside the transcript panel only, never the page the clinician is reading.
    const panel = first?.closest(".transcript");
    if (first && panel) {
      const top = first.offsetTop - panel.offsetTop;
      if (top < panel.scrollTop || top > panel.scrollTop + panel.clientHeight - first.clientHeight) {
        panel.scrollTop = Math.max(0, top - panel.clientHeight / 3);
      }
    }
  }

  function watchEvidence(item) {
    item.addEventListener("mouseenter", () => highlight(item, true));
    item.addEventListener("mouseleave", () => highlight(item, false));
    item.addEventListener("focusin", () => highlight(item, true));
    item.addEventListener("focusout", () => highlight(item, false));
  }

  // ---------- editing ----------
  let editing = false;

  function sentenceEditor(text, evidence) {
    const item = document.createElement("li");
    item.className = "sentence editing";
    item.dataset.evidence = evidence;
    const label = document.createElement("label");
    label.className = "visually-hidden";
    const area = document.createElement("textarea");
    area.value = text;
    area.rows = Math.max(1, Math.ceil(text.length / 70));
    area.id = `edit-${Math.random().toString(36).slice(2)}`;
    label.htmlFor = area.id;
    label.textContent = "Sentence";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove-sentence quiet";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => { item.remove(); });
    item.append(label, area, remove);
    watchEvidence(item);
    return item;
  }

  function startEditing() {
    editing = true;
    for (const sentence of document.querySelectorAll("#note .sentence")) {
      const text = sentence.querySelector(".sentence-text").textContent;
      sentence.replaceWith(sentenceEditor(text, sentence.dataset.evidence));
    }
    document.querySelectorAll("#note .empty-section").forEach((e) => e.remove());
    document.querySelectorAll(".add-sentence").forEach((b) => { b.hidden = false; });
    el("edit").hidden = true;
    el("save").hidden = false;
    el("cancel").hidden = false;
    if (el("sign")) el("sign").disabled = true;
    document.querySelector("#note textarea")?.focus();
  }

  function addSentence(event) {
    const list = event.target.closest(".note-section").querySelector(".sentences");
    const item = sentenceEditor("", "");
    list.append(item);
    item.querySelector("textarea").focus();
  }

  function editedNote() {
    return {
      sections: [...document.querySelectorAll("#note .note-section")].map((section) => ({
        key: section.dataset.key,
        title: section.dataset.title,
        sentences: [...section.querySelectorAll(".sentence")]
          .map((item) => ({
            text: item.querySelector("textarea").value.trim(),
            evidence: (item.dataset.evidence || "").split(" ").filter(Boolean),
          }))
          .filter((sentence) => sentence.text),
      })),
    };
  }

  async function save() {
    el("save").disabled = true;
    try {
      const note = await clinscribe.api("PUT", noteUrl, { ...editedNote(), base_version: version });
      editing = false;
      window.location.assign(`/consultations/${id}/note?version=${note.version}`);
    } catch (error) {
      clinscribe.say(error.message, { bad: true });
      el("save").disabled = false;
    }
  }

  // ---------- actions ----------
  async function sign() {
    const button = el("sign");
    if (!window.confirm(`Sign version ${version}? A signed version is locked; changes after signing make a new version.`)) return;
    button.disabled = true;
    try {
      await clinscribe.api("POST", `${noteUrl}/sign`, { version });
      window.location.reload();
    } catch (error) {
      clinscribe.say(error.message, { bad: true });
      button.disabled = false;
    }
  }

  async function decide(event) {
    const button = event.target;
    const item = button.closest(".code");
    try {
      await clinscribe.api("PATCH", `${noteUrl}/codes/${encodeURIComponent(item.dataset.code)}`,
        { status: button.dataset.decision, version });
      item.className = `code code-${button.dataset.decision}`;
      item.querySelector(".code-status").textContent =
        button.dataset.decision === "accepted" ? "Accepted" : "Rejected";
    } catch (error) {
      clinscribe.say(error.message, { bad: true });
    }
  }

  async function regenerate() {
    const template = el("regen-template").value;
    const button = el("regenerate");
    button.disabled = true;
    clinscribe.say("Writing a new version from the transcript…");
    try {
      const note = await clinscribe.api("POST", `${noteUrl}/regenerate`, { template });
      window.location.assign(`/consultations/${id}/note?version=${note.version}`);
    } catch (error) {
      clinscribe.say(error.message, { bad: true });
      button.disabled = false;
    }
  }

  async function showSummary() {
    const dialog = el("summary-dialog");
    const body = el("summary-body");
    dialog.showModal();
    try {
      const summary = await clinscribe.api("GET", `${noteUrl}/summary?version=${version}`);
      const intro = document.createElement("p");
      intro.textContent = summary.intro;
      const list = document.createElement("ul");
      for (const item of summary.items) {
        const li = document.createElement("li");
        li.textContent = item.text;
        list.append(li);
      }
      body.replaceChildren(intro, summary.items.length ? list : document.createTextNode("No instructions in the plan."));
    } catch (error) {
      body.textContent = error.message;
    }
  }

  async function copyNote() {
    try {
      const response = await fetch(`${noteUrl}/text?version=${version}&format=text`, { credentials: "same-origin" });
      if (!response.ok) throw new Error();
      await navigator.clipboard.writeText(await response.text());
      clinscribe.say("The note is copied. Paste it into the patient's record.");
    } catch {
      clinscribe.say("Copying failed. Use Export → Plain text instead.", { bad: true });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".sentence, .omission, .code").forEach(watchEvidence);
    el("edit")?.addEventListener("click", startEditing);
    el("cancel")?.addEventListener("click", () => { editing = false; window.location.reload(); });
    el("save")?.addEventListener("click", save);
    el("sign")?.addEventListener("click", sign);
    el("regenerate")?.addEventListener("click", regenerate);
    el("show-summary").addEventListener("click", showSummary);
    el("copy-note").addEventListener("click", copyNote);
    document.querySelectorAll(".add-sentence").forEach((b) => b.addEventListener("click", addSentence));
    document.querySelectorAll(".decide").forEach((b) => b.addEventListener("click", decide));
    window.addEventListener("beforeunload", (event) => { if (editing) event.preventDefault(); });
  });
})();
