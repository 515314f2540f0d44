"use strict";
// A schedule's page: pause and resume through the REST API (with a reason), then reload.

(() => {
  const { call, answer, openAction } = flowlog;
  const LABELS = { pause: "Pause", resume: "Resume" };
  const WHAT = {
    pause: "The schedule fires no more until it is resumed. Flows it started run on.",
    resume: "The schedule fires again from now on; the fires it missed while paused are not made up for.",
  };

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("schedule");
    const id = root.dataset.id;
    for (const button of document.querySelectorAll("#schedule-actions [data-action]")) {
      const action = button.dataset.action;
      button.onclick = () => openAction({
        title: `${LABELS[action]} this schedule`,
        what: WHAT[action],
        confirm: LABELS[action],
        needsContext: false,
        run: async ({ reason }) => {
          const { status, envelope } = await call(
            `/api/v1/workflow-schedules/${encodeURIComponent(id)}/${action}`, { reason });
          return answer(status, envelope);
        },
        // The answer stays on screen until the dialog is closed; then the page shows the change.
        onDone: () => document.getElementById("action-dialog")
          .addEventListener("close", () => location.reload(), { once: true }),
      });
    }
  });
})();
