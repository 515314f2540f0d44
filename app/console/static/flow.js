"use strict";
// A flow's page: live over the API's event stream (Server-Sent Events), time travel through
// the versions of its history (the server folds the log up to the version asked and draws the
// same parts as at load), and the actions the flow's state allows.

(() => {
  const { call, fetchJSON, answer, openAction, refreshTimes } = flowlog;
  const $ = (id) => document.getElementById(id);
  const ENDED = new Set(["Finished", "Error", "Canceled"]);
  const LABELS = { start: "Start / resume", stop: "Stop", cancel: "Cancel", retry: "Retry",
    approve: "Approve", reject: "Reject" };
  const TASK_EVERY_MS = 5000;

  let root, flowId, latest, shown, following, source;

  function fragmentUrl(version) {
    const query = new URLSearchParams({ since: String(latest) });
    if (version) query.set("version", String(version));
    return `/console/flows/${encodeURIComponent(flowId)}?${query}`;
  }

  /** Swaps in what changed: the head and actions always, the panel when it is the version
   * shown, and appends the new events to the history. */
  function apply(data, { panel }) {
    $("flow-head").innerHTML = data.head;
    $("flow-actions").innerHTML = data.actions;
    if (panel) $("panel").innerHTML = data.panel;
    if (data.history.trim()) {
      const rows = document.createElement("tbody");
      rows.innerHTML = data.history;
      for (const row of [...rows.children]) {
        document.getElementById(row.id)?.remove();
        row.classList.add("fresh");
        $("history-rows").append(row);
      }
    }
    latest = data.latest;
    root.dataset.latest = String(latest);
    bindActions();
    refreshTimes();
    watchTask();
    if (ENDED.has(data.status) && source) {
      source.close();
      source = null;
      $("history-live").textContent = "(the flow has ended)";
    } else if (!ENDED.has(data.status) && !source) {
      follow(); // retried or started again: follow it anew
    }
  }

  // -- live -------------------------------------------------------------------------------
  let pending = null;

  function scheduleRefresh() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        const data = await fetchJSON(fragmentUrl(following ? null : shown));
        if (following) shown = data.version;
        apply(data, { panel: following });
        updateTravel(data.eventType);
      } catch (error) {
        $("history-live").textContent = `(live updates paused: ${error.message})`;
        watchTask();
      }
    }, 150);
  }

  function follow() {
    // Start the stream after the events already on the page.
    const query = latest <= 500 ? `page=2&pageSize=${latest}` : `page=${Math.floor(latest / 500) + 1}&pageSize=500`;
    source = new EventSource(`/api/v1/workflow/${encodeURIComponent(flowId)}/events/stream?${query}`);
    for (const type of root.dataset.types.split(",")) source.addEventListener(type, scheduleRefresh);
    source.onopen = () => { $("history-live").textContent = "(live)"; };
    source.onerror = () => { if (source) $("history-live").textContent = "(reconnecting…)"; };
  }

  // Who holds a task offered on a queue changes with no event (a worker's poll, heartbeat or
  // lapsed lease), and so does a flow control wait (other flows ahead leave the line): while
  // the page shows either, it asks again every few seconds.
  let taskTimer = null;

  function watchTask() {
    clearTimeout(taskTimer);
    const unlogged = $("flow-task") || $("flow-limits");
    taskTimer = unlogged ? setTimeout(scheduleRefresh, TASK_EVERY_MS) : null;
  }

  // -- time travel ------------------------------------------------------------------------
  let travelTimer = null;

  async function goTo(version, { fromSlider = false } = {}) {
    version = Math.max(1, Math.min(latest, Number(version)));
    shown = version;
    following = version === latest;
    updateTravel();
    if (!fromSlider) $("travel-version").value = String(version);
    const data = await fetchJSON(fragmentUrl(following ? null : version));
    if (data.version !== shown && !(following && data.version === data.latest)) return; // a newer move won
    shown = data.version;
    apply(data, { panel: true });
    for (const row of document.querySelectorAll("#history-rows tr")) {
      const current = row.id === `event-${shown}`;
      row.classList.toggle("shown", current);
      if (current) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    }
    updateTravel(data.eventType);
    const url = following ? location.pathname : `${location.pathname}?version=${shown}`;
    history.replaceState(null, "", url);
  }

  function updateTravel(eventType) {
    const slider = $("travel-version");
    slider.max = String(latest);
    if (following) shown = latest;
    slider.value = String(shown);
    const label = $("travel-label");
    label.replaceChildren("Version ", Object.assign(document.createElement("strong"), { textContent: String(shown) }),
      ` of ${latest}${following ? " (now)" : ""}`);
    if (eventType) slider.setAttribute("aria-valuetext", `version ${shown} of ${latest}: ${eventType}`);
    link($("travel-prev"), shown > 1 ? shown - 1 : null);
    link($("travel-next"), shown < latest ? shown + 1 : null);
    $("travel-latest").hidden = following;
    $("travel-latest").dataset.version = String(latest);
  }

  function link(anchor, version) {
    if (version === null) {
      anchor.removeAttribute("href");
      anchor.setAttribute("aria-disabled", "true");
    } else {
      anchor.href = `?version=${version}`;
      anchor.dataset.version = String(version);
      anchor.removeAttribute("aria-disabled");
    }
  }

  // -- actions ----------------------------------------------------------------------------
  function bindActions() {
    for (const button of document.querySelectorAll("#flow-actions [data-action]")) {
      button.onclick = () => act(button.dataset.action, button.dataset.node);
    }
  }

  function act(action, nodeId) {
    if (action === "approve" || action === "reject") return complete(action, nodeId);
    openAction({
      title: `${LABELS[action]} this flow`,
      what: {
        start: "The flow starts (or resumes where it stopped); the reactor runs it.",
        stop: "Stop is a pause: a running node finishes, nothing further runs until Start.",
        cancel: "The running node is interrupted and the flow ends Canceled. This cannot be undone.",
        retry: "The node whose failure ended (or paused) the flow runs again, after these context changes.",
      }[action],
      confirm: LABELS[action],
      needsContext: action === "retry",
      run: async ({ reason, context }) => {
        const body = { workFlowId: flowId, reason };
        if (action === "retry") body.context = context;
        const { status, envelope } = await call(`/api/v1/workflow/${action}`, body);
        return answer(status, envelope);
      },
      onDone: scheduleRefresh,
    });
  }

  /** Completes the callback node the flow waits on, as the service that holds its token would. */
  function complete(action, nodeId) {
    const success = action === "approve";
    openAction({
      title: `${LABELS[action]}: complete the waiting callback node`,
      what: success
        ? "The node succeeds and the flow goes on to its next node. The reason is recorded as who approved and why."
        : "The node fails (40129, with the reason as its message) and the flow takes its fail transition.",
      confirm: LABELS[action],
      needsContext: false,
      run: async ({ reason }) => {
        const body = { workFlowId: flowId, nodeId, status: success ? "success" : "fail", reason };
        if (!success) body.message = reason;
        const { status, envelope } = await call("/api/v1/workflow/callback", body);
        return answer(status, envelope);
      },
      onDone: scheduleRefresh,
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    root = $("flow");
    flowId = root.dataset.id;
    latest = Number(root.dataset.latest);
    shown = Number(root.dataset.version);
    following = root.dataset.follow === "true";
    $("travel-version").addEventListener("input", (event) => {
      clearTimeout(travelTimer);
      const version = Number(event.target.value);
      travelTimer = setTimeout(() => goTo(version, { fromSlider: true }), 120);
    });
    document.addEventListener("click", (event) => {
      const target = event.target.closest("a[data-version]");
      if (!target || !root.contains(target)) return;
      event.preventDefault();
      if (target.getAttribute("aria-disabled") === "true") return;
      goTo(Number(target.dataset.version));
    });
    bindActions();
    watchTask();
    if (ENDED.has(root.querySelector("#flow-head .status-line .badge")?.textContent)) {
      $("history-live").textContent = "(the flow has ended)";
    } else {
      follow();
    }
  });
})();
