/* Session pages: Upload Session (many DICOM files or zips, one multipart request with a
   progress bar) and Upload ROI Collection (raw body PUT), both to the REST API with the
   session cookie and the X-CSRF-Token header. XMLHttpRequest because fetch() reports no
   upload progress. */
"use strict";

(function () {
  function element(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function send(method, url, body, contentType, onProgress) {
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRF-Token", Segmap.csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      if (contentType) { xhr.setRequestHeader("Content-Type", contentType); }
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { onProgress(event.loaded, event.total); }
      });
      xhr.addEventListener("load", function () {
        let data = null;
        try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (e) { data = { detail: xhr.responseText }; }
        resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: data });
      });
      xhr.addEventListener("error", function () {
        resolve({ ok: false, status: 0, data: { detail: "The connection to the server failed." } });
      });
      xhr.send(body);
    });
  }

  function setBar(bar, fraction) {
    bar.style.width = Math.max(0, Math.min(100, 100 * fraction)).toFixed(1) + "%";
  }

  /* ---- Upload Session (Sessions tab) ---- */
  function wireSessionUpload(box) {
    const api = box.dataset.api;
    const dropzone = box.querySelector('[data-role="dropzone"]');
    const inputs = box.querySelectorAll('input[type="file"]');
    const progress = box.querySelector('[data-role="progress"]');
    const bar = box.querySelector('[data-role="bar"]');
    const status = box.querySelector('[data-role="status"]');
    const result = box.querySelector('[data-role="result"]');
    let busy = false;

    function showResult(answer) {
      result.replaceChildren();
      result.hidden = false;
      const data = answer.data || {};
      const sessions = data.sessions || [];
      const rejected = data.rejected || [];
      if (!answer.ok && !rejected.length) {
        const e = Segmap.describeError(answer.status, answer.data);
        result.appendChild(element("p", { "class": "flash error" }, e.heading));
        return;
      }
      if (sessions.length) {
        const list = element("ul", { "class": "stored" });
        sessions.forEach(function (s) {
          const added = s.scans.reduce(function (n, scan) { return n + scan.added; }, 0);
          const again = s.scans.reduce(function (n, scan) { return n + scan.already_stored; }, 0);
          const li = element("li");
          li.appendChild(element("a", { "href": s.url }, s.label));
          li.appendChild(document.createTextNode(": " + s.scans.length + " scan" + (s.scans.length === 1 ? "" : "s") +
            ", " + added + " new instance" + (added === 1 ? "" : "s") + (again ? ", " + again + " already stored" : "")));
          list.appendChild(li);
        });
        result.appendChild(element("h3", {}, "Stored"));
        result.appendChild(list);
      }
      if (rejected.length) {
        const box2 = element("div", { "class": "problems", "role": "alert", "data-testid": "session-rejected" });
        box2.appendChild(element("h3", {}, rejected.length + " file" + (rejected.length === 1 ? " was" : "s were") + " not stored"));
        const ul = element("ul");
        rejected.forEach(function (r) { ul.appendChild(element("li", {}, r.file + ": " + r.reason)); });
        box2.appendChild(ul);
        result.appendChild(box2);
      }
    }

    /* The list above the upload box is the server's: fetch this page again and put its
       fresh list in place (the upload has committed by the time the answer arrives). */
    async function refreshList() {
      const current = document.getElementById("sessions-list");
      if (!current) { return; }
      try {
        const response = await fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (!response.ok) { return; }
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("sessions-list");
        if (fresh) { current.replaceWith(document.importNode(fresh, true)); }
      } catch (e) {
        /* The upload itself succeeded; the list shows it after the next reload. */
      }
    }

    async function upload(fileList) {
      const files = Array.from(fileList || []);
      if (!files.length || busy) { return; }
      busy = true;
      const form = new FormData();
      let total = 0;
      files.forEach(function (f) {
        form.append("files", f, f.webkitRelativePath || f.name);
        total += f.size;
      });
      progress.hidden = false;
      result.hidden = true;
      setBar(bar, 0);
      status.textContent = "Uploading " + files.length + " file" + (files.length === 1 ? "" : "s") +
        " (" + Segmap.formatBytes(total) + ")…";
      const answer = await send("POST", api, form, null, function (loaded, size) {
        setBar(bar, loaded / (size || 1));
        if (loaded >= size) { status.textContent = "Reading and storing the files…"; }
      });
      setBar(bar, 1);
      status.textContent = answer.ok ? "Upload finished." : "Upload finished with problems.";
      showResult(answer);
      if (answer.ok) { await refreshList(); }
      inputs.forEach(function (input) { input.value = ""; });
      busy = false;
    }

    inputs.forEach(function (input) {
      input.addEventListener("change", function () { upload(input.files); });
    });
    ["dragenter", "dragover"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) { event.preventDefault(); dropzone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) { event.preventDefault(); dropzone.classList.remove("over"); });
    });
    dropzone.addEventListener("drop", function (event) {
      if (event.dataTransfer) { upload(event.dataTransfer.files); }
    });
  }

  /* The collection API words its refusals for API callers (?type=SEG, overwrite=true);
     this dialog says the same with its own controls. */
  const IN_WORDS = [
    [/add overwrite=true to replace it/g, "tick \u201cReplace a collection with this label\u201d to replace it"],
    [/;?\s*send it with \?type=(RTSTRUCT|SEG)/g, "; choose $1 as its Type and upload it again"],
    [/\?type=RTSTRUCT or \?type=SEG/g, "the Type (RTSTRUCT or SEG)"],
    [/\btype=(RTSTRUCT|SEG)\b/g, "type $1"],
  ];

  function inWords(text) {
    return IN_WORDS.reduce(function (out, rule) { return out.replace(rule[0], rule[1]); }, String(text));
  }

  /* ---- Upload ROI Collection (session page) ---- */
  function wireCollectionUpload(dialog) {
    const api = dialog.dataset.api;
    const form = dialog.querySelector('[data-role="collection-form"]');
    const problems = dialog.querySelector('[data-role="problems"]');
    const progress = dialog.querySelector('[data-role="progress"]');
    const bar = dialog.querySelector('[data-role="bar"]');
    const status = dialog.querySelector('[data-role="status"]');
    const labelInput = form.querySelector('input[name="label"]');
    const fileInput = form.querySelector('input[name="file"]');
    const typeSelect = form.querySelector('select[name="type"]');

    function showProblems(heading, lines) {
      problems.querySelector("h3").textContent = heading;
      const ul = problems.querySelector("ul");
      ul.replaceChildren();
      lines.forEach(function (line) { ul.appendChild(element("li", {}, line)); });
      problems.hidden = false;
    }

    fileInput.addEventListener("change", function () {
      const file = fileInput.files[0];
      if (file && !labelInput.value) { labelInput.value = file.name.replace(/\.dcm$/i, ""); }
      if (file && /seg/i.test(file.name)) { typeSelect.value = "SEG"; }
    });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const file = fileInput.files[0];
      const label = labelInput.value.trim();
      if (!file || !label) { showProblems("Give a label and choose the RTSTRUCT or SEG file.", []); return; }
      problems.hidden = true;
      progress.hidden = false;
      setBar(bar, 0);
      status.textContent = "Uploading " + file.name + "…";
      const query = "?type=" + encodeURIComponent(typeSelect.value) +
        (form.querySelector('input[name="overwrite"]').checked ? "&overwrite=true" : "");
      const answer = await send("PUT", api + "/" + encodeURIComponent(label) + query, file,
        "application/octet-stream", function (loaded, size) { setBar(bar, loaded / (size || 1)); });
      if (answer.ok) {
        setBar(bar, 1);
        status.textContent = "Stored " + label + ".";
        window.location.reload();
        return;
      }
      progress.hidden = true;
      const e = Segmap.describeError(answer.status, answer.data);
      showProblems(inWords(e.heading), e.lines.map(inWords));
    });
  }

  function formatSizes() {
    document.querySelectorAll("[data-bytes]").forEach(function (node) {
      node.textContent = Segmap.formatBytes(Number(node.dataset.bytes));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("upload-session");
    if (box) { wireSessionUpload(box); }
    const dialog = document.getElementById("upload-collection");
    if (dialog) { wireCollectionUpload(dialog); }
    formatSizes();
  });
})();
