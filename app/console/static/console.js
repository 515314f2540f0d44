"use strict";
// flowlog console: what every page shares. Relative times kept fresh, calls to the REST API
// (the console acts through the API like any client, with its session's CSRF token), and the
// action dialog (a reason, a confirmation, the server's answer). Text from the server is only
// ever set with textContent, or comes as HTML the server rendered and escaped.

const flowlog = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  function relative(iso) {
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    const future = seconds < 0;
    const span = Math.abs(seconds);
    if (span < 5) return "just now";
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
      if (span >= size) {
        const amount = Math.floor(span / size);
        return future ? `in ${amount} ${unit}` : `${amount} ${unit} ago`;
      }
    }
    return "just now";
  }

  function refreshTimes(root = document) {
    for (const time of root.querySelectorAll("time[data-rel]")) {
      time.textContent = relative(time.dateTime);
    }
  }

  /** An element with attributes and children (strings become text nodes, never HTML). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** POST JSON to the API; resolves to {status, envelope} whatever the answer. */
  async function call(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body),
      });
    } catch (error) {
      return { status: 0, envelope: { code: -1, message: `the server could not be reached (${error.message})` } };
    }
    let envelope;
    try {
      envelope = await response.json();
    } catch {
      envelope = { code: response.status, message: response.statusText || "no answer" };
    }
    return { status: response.status, envelope };
  }

  async function fetchJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    return response.json();
  }

  /** The envelope of an answer, in words. */
  function answer(status, envelope) {
    const ok = envelope.code === 0;
    return el("p", { class: ok ? "outcome-ok" : "outcome-refused" },
      ok ? "Done. " : `Refused (HTTP ${status}). `,
      el("span", {}, `The server answered code ${envelope.code}: ${envelope.message}`));
  }

  // -- the action dialog ------------------------------------------------------------------
  const dialog = () => document.getElementById("action-dialog");

  /**
   * Opens the dialog for an action. `run({reason, context})` does it and returns a Node that
   * shows the outcome. The dialog stays open to show it; Close ends it.
   */
  function openAction({ title, what, confirm, needsContext, run, onDone }) {
    const box = dialog();
    const form = document.getElementById("action-form");
    const reason = document.getElementById("action-reason");
    const contextBox = document.getElementById("action-context-box");
    const context = document.getElementById("action-context");
    const contextError = document.getElementById("action-context-error");
    const confirmButton = document.getElementById("action-confirm");
    const result = document.getElementById("action-result");
    document.getElementById("action-title").textContent = title;
    document.getElementById("action-what").textContent = what;
    confirmButton.textContent = confirm;
    confirmButton.hidden = false;
    confirmButton.disabled = false;
    reason.value = "";
    reason.disabled = false;
    contextBox.hidden = !needsContext;
    context.value = "{}";
    contextError.hidden = true;
    result.replaceChildren();
    let done = false;

    form.onsubmit = async (event) => {
      event.preventDefault();
      if (done) return;
      if (!reason.value.trim()) {
        reason.setCustomValidity("Say why: the reason is recorded with the event.");
        reason.reportValidity();
        return;
      }
      reason.setCustomValidity("");
      let patch = {};
      if (needsContext) {
        const problem = contextProblem(context.value);
        if (problem) {
          contextError.textContent = problem;
          contextError.hidden = false;
          context.setAttribute("aria-invalid", "true");
          context.focus();
          return;
        }
        contextError.hidden = true;
        context.removeAttribute("aria-invalid");
        patch = JSON.parse(context.value);
      }
      confirmButton.disabled = true;
      result.replaceChildren(el("p", {}, "Sending…"));
      const outcome = await run({ reason: reason.value.trim(), context: patch, progress: (node) => result.replaceChildren(node) });
      result.replaceChildren(outcome);
      done = true;
      confirmButton.hidden = true;
      reason.disabled = true;
      document.getElementById("action-close").focus();
      if (onDone) onDone();
    };
    document.getElementById("action-close").onclick = () => box.close();
    box.showModal();
    reason.focus();
  }

  /** Why a context patch cannot be sent, or "" (checked before anything is sent). */
  function contextProblem(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return `Not JSON: ${error.message}`;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "The context changes must be a JSON object: {\"key\": value, ...}";
    }
    for (const key of Object.keys(value)) {
      if (["traceId", "userId", "tenantId"].includes(key)) return `${key} is set by flowlog, not by a request`;
      if (!key) return "A context key cannot be empty";
    }
    return "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    refreshTimes();
    setInterval(refreshTimes, 15000);
  });

  return { el, call, fetchJSON, answer, openAction, refreshTimes, contextProblem };
})();
