// The Activity page's "Older" link: the next page's rows appended in place (the link still
// works as a plain link without this script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const rows = document.getElementById("activity-rows");
  const pager = () => document.getElementById("activity-older");
  document.addEventListener("click", async (event) => {
    const link = event.target.closest("#activity-older");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    const url = new URL(link.href);
    const response = await fetch("/console/activity" + url.search, { credentials: "same-origin" });
    if (!response.ok) { window.location.href = link.href; return; }
    const answer = await response.json();
    rows.querySelectorAll("tr.empty").forEach((row) => row.remove());
    rows.insertAdjacentHTML("beforeend", answer.rows);
    if (answer.older) { pager().href = answer.older; } else { pager().remove(); }
  });
});
