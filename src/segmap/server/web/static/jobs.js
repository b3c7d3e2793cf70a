/* segmap jobs: the self-updating Jobs table, the automation switch on View Model, and the
   Convert buttons and live job states on a session page. Plain JavaScript; every change
   goes to the REST API through Segmap.api (cookie + X-CSRF-Token). */
"use strict";

(function () {
  if (window.SegmapJobs) { return; }  // the partials may include this file more than once
  window.SegmapJobs = true;

  const ACTIVE = ["queued", "running"];
  const FAST_MS = 1200;
  const SLOW_MS = 5000;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (value === undefined || value === null) { return; }
      if (key === "text") { node.textContent = value; } else if (key === "class") { node.className = value; } else { node.setAttribute(key, value); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function when(iso) {
    if (!iso) { return ""; }
    const d = new Date(iso);
    return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function took(job) {
    if (!job.started_at || !job.finished_at) { return ""; }
    const s = (new Date(job.finished_at) - new Date(job.started_at)) / 1000;
    return s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
  }

  function progressCell(job) {
    const bar = el("div", { style: "width: " + Math.round(100 * job.progress) + "%" });
    if (job.state === "failed") { bar.className = "failed"; }
    const cell = el("td", { class: "job-progress" }, [
      el("div", { class: "progress" }, [bar]),
      el("span", { class: "small muted", "data-role": "stage", text: job.stage }),
    ]);
    if (job.error) { cell.appendChild(el("div", { class: "job-error small", "data-role": "error", text: job.error })); }
    return cell;
  }

  function stateBadge(job) {
    return el("span", { class: "badge state-" + job.state, "data-role": "state", text: job.state });
  }

  /* Poll a URL, call render(data) and wait longer while nothing is active. */
  function poll(url, render) {
    let timer = null;
    async function tick() {
      let active = false;
      try {
        const answer = await Segmap.api("GET", url);
        if (answer.ok) { active = render(answer.data) === true; }
      } catch (e) { /* the service restarting: try again later */ }
      timer = window.setTimeout(tick, active ? FAST_MS : SLOW_MS);
    }
    tick();
    return { now: function () { window.clearTimeout(timer); tick(); } };
  }

  async function convert(button, body, messageEl, after) {
    button.disabled = true;
    const answer = await Segmap.api("POST", button.dataset.convertApi, body);
    button.disabled = false;
    if (messageEl) {
      if (answer.ok) {
        const n = answer.data.jobs.length;
        messageEl.textContent = n + " job" + (n === 1 ? "" : "s") + " queued";
        messageEl.className = "small ok-text";
      } else {
        messageEl.textContent = Segmap.describeError(answer.status, answer.data).heading;
        messageEl.className = "small bad-text";
      }
    }
    if (after) { after(); }
  }

  /* ---------------------------------------------------------------- the Jobs page */

  function jobsPage(table) {
    const tbody = table.querySelector("tbody");
    const empty = document.querySelector('[data-role="jobs-empty"]');
    const summary = document.querySelector('[data-role="jobs-summary"]');

    function row(job) {
      const session = job.session_url;
      const model = job.model_url;
      const links = el("td", { class: "nowrap" });
      if (job.state === "succeeded") {
        links.appendChild(el("a", { href: session + "#derived", "data-testid": "job-outputs", text: "Masks" }));
        links.appendChild(document.createTextNode(" · "));
      }
      const log = el("a", { href: job.url, "data-role": "log-link", text: "Log" });
      links.appendChild(log);
      return el("tr", { "data-job": job.id, "data-state": job.state }, [
        el("td", { class: "num mono", text: String(job.id) }),
        el("td", { class: "nowrap" }, [el("a", { href: model, text: job.model })]),
        el("td", {}, [el("a", { href: session, text: job.session_label }), document.createTextNode(" · " + job.collection)]),
        el("td", {}, [stateBadge(job)]),
        progressCell(job),
        el("td", { class: "small nowrap", text: when(job.started_at) }),
        el("td", { class: "small nowrap", text: took(job) }),
        links,
      ]);
    }

    const poller = poll(table.dataset.jobsApi, function (jobs) {
      tbody.replaceChildren.apply(tbody, jobs.map(row));
      if (empty) { empty.hidden = jobs.length > 0; }
      const active = jobs.filter(function (j) { return ACTIVE.includes(j.state); }).length;
      if (summary) {
        summary.textContent = jobs.length + " job" + (jobs.length === 1 ? "" : "s") + (active ? ", " + active + " active" : "");
      }
      return active > 0;
    });

    const dialog = document.getElementById("job-log");
    table.addEventListener("click", async function (event) {
      const link = event.target.closest('[data-role="log-link"]');
      if (!link || !dialog) { return; }
      event.preventDefault();
      const answer = await Segmap.api("GET", link.getAttribute("href"));
      if (!answer.ok) { return; }
      dialog.querySelector('[data-role="title"]').textContent = "Job " + answer.data.id + " · " + answer.data.model + " · " + answer.data.state;
      dialog.querySelector('[data-role="log"]').textContent = answer.data.log + (answer.data.error ? "\nError: " + answer.data.error : "");
      if (!dialog.open) { dialog.showModal(); }
    });

    const message = document.querySelector('[data-role="convert-all"] [data-role="convert-message"]');
    document.querySelectorAll('[data-role="convert-all"] [data-convert-api]').forEach(function (button) {
      button.addEventListener("click", function () { convert(button, {}, message, poller.now); });
    });
  }

  /* ---------------------------------------------------------------- View Model */

  function modelCard(card) {
    const box = card.querySelector('[data-role="automation"]');
    const note = card.querySelector('[data-role="automation-note"]');
    const canManage = card.dataset.canManage === "true";
    Segmap.api("GET", card.dataset.modelApi).then(function (answer) {
      if (!answer.ok) { return; }
      box.checked = !!answer.data.automation;
      box.disabled = !canManage;
      note.textContent = box.checked ? "On: every ROI collection stored in this project gets a job for this model." : "Off: masks are made only when someone presses Convert.";
    });
    box.addEventListener("change", async function () {
      box.disabled = true;
      const answer = await Segmap.api("PATCH", card.dataset.modelApi, { automation: box.checked });
      box.disabled = false;
      if (!answer.ok) {
        box.checked = !box.checked;
        note.textContent = Segmap.describeError(answer.status, answer.data).heading;
        return;
      }
      box.checked = !!answer.data.automation;
      note.textContent = box.checked ? "Automation on: new ROI collections get a job for this model." : "Automation off.";
    });

    const table = card.querySelector('[data-role="recent"]');
    const poller = poll(card.dataset.jobsApi, function (jobs) {
      table.hidden = jobs.length === 0;
      table.querySelector("tbody").replaceChildren.apply(table.querySelector("tbody"), jobs.map(function (job) {
        return el("tr", { "data-job": job.id, "data-state": job.state }, [
          el("td", { class: "num mono", text: String(job.id) }),
          el("td", { text: job.session_label + " · " + job.collection }),
          el("td", {}, [stateBadge(job)]),
          progressCell(job),
        ]);
      }));
      return jobs.some(function (j) { return ACTIVE.includes(j.state); });
    });
    const button = card.querySelector('[data-role="convert-all"]');
    if (button) {
      button.dataset.convertApi = card.dataset.modelApi + "/convert";
      button.addEventListener("click", function () {
        convert(button, {}, card.querySelector('[data-role="convert-message"]'), poller.now);
      });
    }
  }

  /* ---------------------------------------------------------------- a session page */

  function sessionCollections(boxes) {
    const url = boxes[0].dataset.jobsApi;
    const seen = {};
    let finishedSinceLoad = false;
    const poller = poll(url, function (jobs) {
      let active = false;
      boxes.forEach(function (box) {
        const mine = jobs.filter(function (j) {
          return String(j.session) === box.dataset.sessionId && j.collection === box.dataset.jobsCollection;
        });
        const latest = {};
        mine.forEach(function (j) { if (!latest[j.model]) { latest[j.model] = j; } });  // newest first
        const items = Object.values(latest).map(function (job) {
          if (ACTIVE.includes(job.state)) { active = true; }
          if (seen[job.id] && ACTIVE.includes(seen[job.id]) && job.state === "succeeded") { finishedSinceLoad = true; }
          seen[job.id] = job.state;
          const item = el("li", { "data-job": job.id, "data-model": job.model, "data-state": job.state }, [
            el("strong", { text: job.model + ": " }), stateBadge(job),
          ]);
          if (ACTIVE.includes(job.state)) { item.appendChild(document.createTextNode(" " + Math.round(100 * job.progress) + "% " + job.stage)); }
          if (job.error) { item.appendChild(el("span", { class: "job-error", text: " " + job.error })); }
          return item;
        });
        const list = box.querySelector('[data-role="job-states"]');
        list.replaceChildren.apply(list, items);
      });
      const notice = document.querySelector('[data-role="masks-ready"]');
      if (finishedSinceLoad && !notice) {
        const derived = document.getElementById("derived");
        if (derived) {
          const link = el("a", { href: window.location.pathname + "#derived", "data-testid": "reload-masks", text: "Show the new masks" });
          link.addEventListener("click", function (event) { event.preventDefault(); window.location.reload(); });
          derived.prepend(el("p", { class: "flash success", "data-role": "masks-ready", role: "status" }, [
            document.createTextNode("New masks are ready. "), link,
          ]));
        }
      }
      return active;
    });
    boxes.forEach(function (box) {
      box.querySelectorAll("[data-convert-api]").forEach(function (button) {
        button.addEventListener("click", function () {
          convert(button, { collection: button.dataset.convertCollection }, null, poller.now);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.querySelector("table[data-jobs-api]");
    if (table) { jobsPage(table); }
    const card = document.querySelector('[data-testid="model-jobs"]');
    if (card) { modelCard(card); }
    const boxes = Array.from(document.querySelectorAll("[data-collection-jobs]"));
    if (boxes.length) { sessionCollections(boxes); }
  });
})();
