"use strict";
// The webhook pages: create a subscription (its secret shown once, here), pause, resume,
// delete and rotate through the REST API with a reason; re-send dead letters and replay
// through delivery's routes. Text from the server is only ever set with textContent.

(() => {
  const { el, call, answer, openAction } = flowlog;
  const API = "/api/v1/webhooks";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const LABELS = { pause: "Pause", resume: "Resume", delete: "Delete", secret: "Rotate the secret" };
  const WHAT = {
    pause: "Nothing is delivered until the subscription is resumed; its cursor waits, so nothing is lost.",
    resume: "Delivery goes on from where the cursor stopped.",
    delete: "The subscription stops for good; its history stays in the log.",
    secret: "A new secret signs every delivery from now on; the old one stops verifying. The new one is shown once.",
  };

  /** DELETE on the API (call() is POST only); resolves to {status, envelope}. */
  async function remove(path) {
    let response;
    try {
      response = await fetch(path, {
        method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrf() },
      });
    } catch (error) {
      return { status: 0, envelope: { code: -1, message: `the server could not be reached (${error.message})` } };
    }
    try {
      return { status: response.status, envelope: await response.json() };
    } catch {
      return { status: response.status, envelope: { code: response.status, message: response.statusText || "no answer" } };
    }
  }

  function showSecret(secret, link) {
    const box = document.getElementById("secret-box");
    if (!box) return;
    document.getElementById("secret-text").textContent = secret;
    const anchor = document.getElementById("secret-link");
    if (anchor && link) anchor.href = link;
    box.hidden = false;
  }

  function act(id, action, { reloadAfter = true } = {}) {
    const one = `${API}/${encodeURIComponent(id)}`;
    openAction({
      title: `${LABELS[action]} of this subscription`,
      what: WHAT[action],
      confirm: LABELS[action],
      needsContext: false,
      run: async ({ reason }) => {
        const { status, envelope } = action === "delete"
          ? await remove(`${one}?reason=${encodeURIComponent(reason)}`)
          : await call(`${one}/${action}`, { reason });
        if (action === "secret" && envelope.code === 0) showSecret(envelope.data.secret);
        return answer(status, envelope);
      },
      onDone: () => {
        if (!reloadAfter) return;
        document.getElementById("action-dialog")
          .addEventListener("close", () => location.reload(), { once: true });
      },
    });
  }

  function createForm(form) {
    const result = document.getElementById("create-result");
    form.onsubmit = async (event) => {
      event.preventDefault();
      const url = form.elements.url.value.trim();
      const events = [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
      const statuses = [...form.querySelectorAll('input[name="statuses"]:checked')].map((i) => i.value);
      const definitions = form.elements.definitions.value.split(",").map((d) => d.trim()).filter(Boolean);
      if (!url) {
        result.replaceChildren(el("p", { class: "problem" }, "Name the URL deliveries go to."));
        form.elements.url.focus();
        return;
      }
      if (!events.length) {
        result.replaceChildren(el("p", { class: "problem" }, "Choose at least one event."));
        return;
      }
      const body = { url, events, description: form.elements.description.value };
      if (statuses.length) body.statuses = statuses;
      if (definitions.length) body.definitions = definitions;
      document.getElementById("create-submit").disabled = true;
      result.replaceChildren(el("p", {}, "Sending…"));
      const { status, envelope } = await call(API, body);
      document.getElementById("create-submit").disabled = false;
      result.replaceChildren(answer(status, envelope));
      if (envelope.code === 0) {
        form.reset();
        showSecret(envelope.data.secret, `/webhooks/${encodeURIComponent(envelope.data.id)}`);
      }
    };
  }

  function deliveryActions(id) {
    const one = `${API}/${encodeURIComponent(id)}`;
    const result = document.getElementById("webhook-result");
    const shown = async (promise) => {
      result.replaceChildren(el("p", {}, "Sending…"));
      const { status, envelope } = await promise;
      result.replaceChildren(answer(status, envelope));
    };
    for (const button of document.querySelectorAll("[data-resend]")) {
      button.onclick = () => shown(call(`${one}/deliveries/resend`, { positions: [Number(button.dataset.resend)] }));
    }
    const all = document.getElementById("resend-all");
    if (all) all.onclick = () => shown(call(`${one}/deliveries/resend`, {}));
    const replay = document.getElementById("replay-form");
    if (replay) {
      replay.onsubmit = (event) => {
        event.preventDefault();
        const position = replay.elements.fromPosition.value.trim();
        const time = replay.elements.fromTime.value.trim();
        if (!position === !time) {
          result.replaceChildren(el("p", { class: "problem" }, "Give a position or a time (one of them)."));
          return;
        }
        shown(call(`${one}/replay`, position ? { fromPosition: Number(position) } : { fromTime: time }));
      };
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("table.webhooks [data-action]")) {
      button.onclick = () => act(button.closest("tr").dataset.id, button.dataset.action);
    }
    const form = document.getElementById("create-form");
    if (form) createForm(form);
    const root = document.getElementById("webhook");
    if (root) {
      const id = root.dataset.id;
      for (const button of document.querySelectorAll("#webhook-actions [data-action]")) {
        const action = button.dataset.action;
        button.onclick = () => act(id, action, { reloadAfter: action !== "secret" });
      }
      deliveryActions(id);
    }
  });
})();
