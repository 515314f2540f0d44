"use strict";
// The flows page: live rows (the server's own rendering, swapped in place without losing the
// filters, the selection or the scroll position), and bulk actions on the selected flows or on
// every flow the filter matches (walked a page at a time through the bulk API's cursor).

(() => {
  const { el, call, fetchJSON, answer, openAction, refreshTimes } = flowlog;
  const VERBS = { start: "Start", stop: "Stop", cancel: "Cancel", retry: "Retry" };
  const PAGE = 200; // flows per bulk request when acting on a whole filter
  const selected = new Set();
  let allMatching = false;

  const $ = (id) => document.getElementById(id);
  const table = () => $("flows-table");
  const picks = () => [...document.querySelectorAll("#flow-rows input.pick")];

  function total() {
    return Number(($("list-total").textContent || "0").replace(/[^0-9]/g, ""));
  }

  function showSelection() {
    if (!$("bulk")) return; // a viewer's page: nothing to select, nothing to act on
    const count = allMatching ? total() : selected.size;
    $("bulk").hidden = count === 0;
    $("bulk-selected").textContent = allMatching
      ? `All ${count.toLocaleString()} flows matching this filter are selected.`
      : `${count} flow${count === 1 ? "" : "s"} selected.`;
    const onPage = picks();
    const everyOnPage = onPage.length > 0 && onPage.every((box) => box.checked);
    $("select-page").checked = everyOnPage;
    // The bulk API's filter cannot say "waiting": such a list acts only on flows named.
    const canAll = table().dataset.allMatching !== "no";
    $("bulk-all").hidden = allMatching || !canAll || !everyOnPage || total() <= onPage.length;
    $("bulk-all-count").textContent = total().toLocaleString();
    for (const box of onPage) box.closest("tr").classList.toggle("selected", box.checked);
  }

  function restoreSelection() {
    for (const box of picks()) box.checked = allMatching || selected.has(box.value);
    showSelection();
  }

  // -- live refresh -----------------------------------------------------------------------
  let refreshing = false;
  let again = false;

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const before = new Map(picks().map((box) => [box.value, box.closest("tr").dataset.status]));
      const anchor = firstVisibleRow();
      const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
      const data = await fetchJSON("/console/flows" + location.search);
      $("counts").innerHTML = data.counts;
      $("flow-rows").innerHTML = data.rows;
      $("list-total").textContent = data.total.toLocaleString();
      for (const row of document.querySelectorAll("#flow-rows tr[data-id]")) {
        if (before.size && before.get(row.dataset.id) !== row.dataset.status) row.classList.add("fresh");
      }
      if (anchor) {
        const same = document.querySelector(`#flow-rows tr[data-id="${CSS.escape(anchor.dataset.id)}"]`);
        if (same) window.scrollBy(0, same.getBoundingClientRect().top - anchorTop);
      }
      refreshTimes($("flow-rows"));
      restoreSelection();
      $("live-note").textContent = "Updates live.";
    } catch (error) {
      $("live-note").textContent = `Live updates paused (${error.message}); retrying.`;
    } finally {
      refreshing = false;
      if (again) { again = false; setTimeout(refresh, 300); }
    }
  }

  function firstVisibleRow() {
    for (const row of document.querySelectorAll("#flow-rows tr[data-id]")) {
      if (row.getBoundingClientRect().bottom > 0) return row;
    }
    return null;
  }

  function follow() {
    const source = new EventSource("/console/live");
    source.addEventListener("changed", refresh);
    source.onerror = () => { $("live-note").textContent = "Live updates reconnecting…"; };
    source.onopen = () => { $("live-note").textContent = "Updates live."; };
  }

  // -- bulk actions -----------------------------------------------------------------------
  function filterOfPage() {
    const filter = JSON.parse(table().dataset.filter || "{}");
    delete filter.pageSize;
    delete filter.page;
    const status = table().dataset.status;
    if (status) filter.status = status;
    // "Every flow matching" means those listed when the page was drawn, not those made since.
    if (!filter.createdTo) filter.createdTo = new Date().toISOString();
    return filter;
  }

  async function bulk(action, { reason, context, progress }) {
    const body = { action, reason };
    if (action === "retry") body.context = context;
    const results = [];
    let refusal = null;
    if (!allMatching) {
      const { status, envelope } = await call("/api/v1/workflow/bulk", { ...body, workFlowIds: [...selected] });
      if (envelope.code !== 0) refusal = answer(status, envelope);
      else results.push(...envelope.data.results);
    } else {
      let cursor = null;
      const filter = filterOfPage();
      do {
        const request = { ...body, filter, limit: PAGE };
        if (cursor) request.cursor = cursor;
        const { status, envelope } = await call("/api/v1/workflow/bulk", request);
        if (envelope.code !== 0) { refusal = answer(status, envelope); break; }
        results.push(...envelope.data.results);
        cursor = envelope.data.nextCursor;
        progress(el("p", {}, `${results.length.toLocaleString()} flows done so far…`));
      } while (cursor);
    }
    return report(action, results, refusal);
  }

  function report(action, results, refusal) {
    const done = results.filter((r) => r.code === 0);
    const refused = results.filter((r) => r.code !== 0);
    const box = el("div", { class: "results" });
    if (refusal) box.append(refusal);
    box.append(el("p", { class: refused.length ? "outcome-refused" : "outcome-ok" },
      `${VERBS[action]}: ${done.length} done, ${refused.length} refused.`));
    if (refused.length) {
      const rows = refused.map((r) => el("tr", {}, el("td", { class: "mono" }, r.workFlowId.slice(0, 8)),
        el("td", {}, String(r.code)), el("td", { class: "text" }, r.message)));
      box.append(el("table", {}, el("caption", {}, "Refused"),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Flow"), el("th", { scope: "col" }, "Code"), el("th", { scope: "col" }, "Why"))),
        el("tbody", {}, ...rows)));
    }
    return box;
  }

  function startBulk(action) {
    const count = allMatching ? total() : selected.size;
    openAction({
      title: `${VERBS[action]} ${count.toLocaleString()} flow${count === 1 ? "" : "s"}`,
      what: allMatching
        ? `Every flow matching this filter (${count.toLocaleString()} when counted) will get the same action and reason. Flows whose state does not allow it are refused one by one and listed.`
        : "Each selected flow gets the same action and reason. Flows whose state does not allow it are refused one by one and listed.",
      confirm: `${VERBS[action]} ${count.toLocaleString()} flow${count === 1 ? "" : "s"}`,
      needsContext: action === "retry",
      run: (input) => bulk(action, input),
      onDone: () => { selected.clear(); allMatching = false; refresh(); },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!$("bulk")) { filters(); follow(); return; }
    $("flow-rows").addEventListener("change", (event) => {
      const box = event.target;
      if (!box.classList.contains("pick")) return;
      allMatching = false;
      if (box.checked) selected.add(box.value); else selected.delete(box.value);
      restoreSelection();
    });
    $("select-page").addEventListener("change", (event) => {
      allMatching = false;
      for (const box of picks()) {
        if (event.target.checked) selected.add(box.value); else selected.delete(box.value);
      }
      restoreSelection();
    });
    $("bulk-all").addEventListener("click", () => { allMatching = true; restoreSelection(); });
    for (const button of document.querySelectorAll("[data-bulk]")) {
      button.addEventListener("click", () => startBulk(button.dataset.bulk));
    }
    filters();
    restoreSelection();
    follow();
  });

  function filters() {
    // Empty filter fields stay out of the URL.
    document.querySelector("form.filters").addEventListener("submit", (event) => {
      for (const field of event.target.elements) {
        if (field.name && !field.value) field.disabled = true;
      }
    });
    // Back to this page from the browser's cache: the fields disabled above come back on.
    window.addEventListener("pageshow", () => {
      for (const field of document.querySelectorAll("form.filters [disabled]")) field.disabled = false;
    });
  }
})();
