"use strict";
// The queues page: its tables drawn again by the server when the log grows (a task offered,
// a node's end) and every few seconds besides, since a worker's poll, heartbeat or lapsed
// lease changes the queues without appending anything to the log.

(() => {
  const { fetchJSON, refreshTimes } = flowlog;
  const EVERY_MS = 5000;
  const $ = (id) => document.getElementById(id);
  let refreshing = false;
  let again = false;

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const data = await fetchJSON("/console/queues");
      $("queues").innerHTML = data.html;
      refreshTimes($("queues"));
      $("live-note").textContent = "Updates live.";
    } catch (error) {
      $("live-note").textContent = `Live updates paused (${error.message}); retrying.`;
    } finally {
      refreshing = false;
      if (again) { again = false; setTimeout(refresh, 300); }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const source = new EventSource("/console/live");
    source.addEventListener("changed", refresh);
    source.onerror = () => { $("live-note").textContent = "Live updates reconnecting…"; };
    setInterval(refresh, EVERY_MS);
  });
})();
