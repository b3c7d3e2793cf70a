/* segmap: small helpers shared by every page (no framework, no build step). */
"use strict";

window.Segmap = (function () {
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* A modal confirmation; resolves true when the user presses the action button. */
  function confirmAction(message, actionLabel) {
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(message));
    }
    dialog.querySelector('[data-role="message"]').textContent = message;
    dialog.querySelector('[data-role="ok"]').textContent = actionLabel || "OK";
    dialog.returnValue = "";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "ok");
      });
      dialog.showModal();
    });
  }

  /* Same-origin JSON call to the REST API with the session cookie and the CSRF header. */
  async function api(method, url, body) {
    const init = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET" && method !== "HEAD") {
      init.headers["X-CSRF-Token"] = csrfToken();
    }
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { detail: text }; }
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  /* Turn an API error body into a heading and a list of lines the user can act on. */
  function describeError(status, data) {
    const detail = data && data.detail !== undefined ? data.detail : data;
    let heading = "The server refused the request (" + status + ").";
    let lines = [];
    if (typeof detail === "string") {
      // A region map refusal repeats its problems after the first line; they are listed below.
      heading = data && Array.isArray(data.problems) ? detail.split("\n")[0].replace(/:$/, ".") : detail;
    } else if (Array.isArray(detail)) {
      lines = detail.map(problemText);
    } else if (detail && typeof detail === "object") {
      if (detail.message) { heading = detail.message; }
      lines = (detail.problems || detail.errors || []).map(problemText);
    }
    // The service sends a region map's problems beside "detail", one per line.
    if (data && Array.isArray(data.problems)) { lines = lines.concat(data.problems.map(problemText)); }
    if (status === 401) { heading = "Your session has ended: log in again."; }
    return { heading: heading, lines: lines };
  }

  function problemText(p) {
    if (typeof p === "string") { return p; }
    if (p && p.line !== undefined && p.message) {
      const where = p.line ? "line " + p.line + ": " : "";
      return where + (p.text ? "\"" + p.text + "\": " : "") + p.message;
    }
    if (p && p.msg) { return (p.loc ? p.loc.join(".") + ": " : "") + p.msg; }
    return JSON.stringify(p);
  }

  function formatBytes(n) {
    if (n < 1024) { return n + " B"; }
    const units = ["KB", "MB", "GB", "TB"];
    let value = n;
    let i = -1;
    do { value /= 1024; i += 1; } while (value >= 1024 && i < units.length - 1);
    return value.toFixed(value < 10 ? 1 : 0) + " " + units[i];
  }

  function wire() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.confirmed === "yes") { return; }
        event.preventDefault();
        confirmAction(form.dataset.confirm, form.dataset.confirmAction).then(function (yes) {
          if (yes) { form.dataset.confirmed = "yes"; form.submit(); }
        });
      });
    });
    document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
      button.addEventListener("click", function () {
        const dialog = document.getElementById(button.dataset.openDialog);
        if (dialog && !dialog.open) { dialog.showModal(); }
      });
    });
    document.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function () {
        const dialog = button.closest("dialog");
        if (dialog) { dialog.close(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", wire);

  return {
    csrfToken: csrfToken,
    confirm: confirmAction,
    api: api,
    describeError: describeError,
    formatBytes: formatBytes,
  };
})();
