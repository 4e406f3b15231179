// Shared by every page: calls to the JSON API with the session's CSRF token, messages, local times.
"use strict";

const clinscribe = (() => {
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  // Call the API; resolves to the parsed body, or throws an Error carrying the server's message.
  async function api(method, path, body) {
    const headers = { "X-CSRF-Token": csrfToken() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Error("The server could not be reached. Check the connection and try again.");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      if (response.status === 401) {
        throw new Error("Your session has ended. Sign in again (your work on this page is not saved).");
      }
      throw new Error(data?.error?.message ?? `The server answered ${response.status}.`);
    }
    return data;
  }

  let toastTimer = null;
  function say(message, { bad = false } = {}) {
    const toast = document.getElementById("toast");
    if (!toast) return;
    // The live region stays in the page (screen readers only announce changes to a region
    // that already exists); it is shown while it has something to say.
    toast.textContent = message;
    toast.classList.toggle("bad", bad);
    toast.classList.add("shown");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.classList.remove("shown"); }, bad ? 8000 : 3000);
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localTimes(root = document) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) el.textContent = timeFormat.format(when);
    }
  }

  document.addEventListener("DOMContentLoaded", () => localTimes());
  document.addEventListener("htmx:afterSwap", (event) => localTimes(event.target));
  // htmx requests (the list's refresh) carry the CSRF token too, should one ever be unsafe.
  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  return { api, say, csrfToken, localTimes };
})();
