"use strict";
// /api/v1/docs: Swagger UI on this server's OpenAPI document. "Try it out" calls this
// server; a console session's writes carry its CSRF token, as the console's own calls do.
// Swagger UI leaves a few controls without a name for screen readers (copy buttons, value
// pickers) and its code samples out of the keyboard's reach: named and reachable here.

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: false, // its deep links nest a link inside each operation's button
    tryItOutEnabled: false,
    requestInterceptor: (request) => {
      if (csrf) request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });

  const mend = () => {
    for (const button of root.querySelectorAll(".copy-to-clipboard button:not([aria-label])")) {
      button.setAttribute("aria-label", "Copy to the clipboard");
    }
    for (const select of root.querySelectorAll("select:not([aria-label])")) {
      const row = select.closest("tr[data-param-name]");
      select.setAttribute("aria-label", row ? `Value of ${row.dataset.paramName}` : "Choose a value");
    }
    for (const code of root.querySelectorAll("pre.microlight:not([tabindex]), .highlight-code pre:not([tabindex])")) {
      code.setAttribute("tabindex", "0");
    }
    for (const [index, table] of [...root.querySelectorAll("table.responses-table[role=region]:not([aria-label])")].entries()) {
      table.setAttribute("aria-label", `Responses ${index + 1}`);
    }
  };
  new MutationObserver(mend).observe(root, { childList: true, subtree: true });
});
