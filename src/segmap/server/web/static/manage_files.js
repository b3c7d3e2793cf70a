/* The Manage Files dialog of the model page: folder tree, Add Folder, Upload Files
   (several at once, drag and drop, a progress bar) and delete, all through the REST API. */
"use strict";

(function () {
  const dialog = document.getElementById("manage-files");
  if (!dialog) { return; }
  const apiBase = dialog.dataset.api;
  const canManage = dialog.dataset.canManage === "true";
  const tree = dialog.querySelector('[data-role="tree"]');
  const problemsBox = dialog.querySelector('[data-role="problems"]');
  const folderSelect = dialog.querySelector('[data-role="upload-folder"]');
  const dropzone = dialog.querySelector('[data-role="dropzone"]');
  const fileInput = dialog.querySelector('input[type="file"]');
  const progressBox = dialog.querySelector('[data-role="progress"]');
  const bar = dialog.querySelector('[data-role="bar"]');
  const statusLine = dialog.querySelector('[data-role="status"]');
  let selectedFolder = null;
  let changed = false;
  let busy = false;

  function folderUrl(folder) { return apiBase + "/" + encodeURIComponent(folder); }
  function fileUrl(folder, name) { return folderUrl(folder) + "/files/" + encodeURIComponent(name); }

  function showProblems(heading, lines, summary) {
    problemsBox.querySelector("h3").textContent = heading;
    const note = problemsBox.querySelector("p");
    note.textContent = summary || "";
    note.hidden = !summary;
    const list = problemsBox.querySelector("ul");
    list.replaceChildren();
    lines.forEach(function (line) {
      const li = document.createElement("li");
      li.textContent = line;
      list.appendChild(li);
    });
    problemsBox.hidden = false;
  }
  function clearProblems() { problemsBox.hidden = true; }

  /* Accept the few shapes a folder listing can take: a list, or {folders|resources: [...]}. */
  function foldersOf(data) {
    const list = Array.isArray(data) ? data : (data && (data.folders || data.resources)) || [];
    return list.map(function (f) {
      return { name: f.label || f.name || f.folder, files: f.files || [] };
    });
  }

  function element(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function render(folders) {
    tree.replaceChildren();
    if (folders.length === 0) {
      const empty = element("li", { "class": "files" });
      empty.appendChild(element("span", { "class": "none", "style": "display:block;padding:12px" },
        canManage ? "No folders yet: add one, then upload files into it." : "This model has no files."));
      tree.appendChild(empty);
    }
    if (selectedFolder === null || !folders.some(function (f) { return f.name === selectedFolder; })) {
      selectedFolder = folders.length ? folders[0].name : null;
    }
    folders.forEach(function (folder) {
      const item = element("li", { "data-folder": folder.name });
      const row = element("div", { "class": "folder-row" + (folder.name === selectedFolder ? " selected" : "") });
      row.appendChild(element("span", { "class": "folder-icon", "aria-hidden": "true" }));
      row.appendChild(element("span", { "class": "name" }, folder.name));
      row.appendChild(element("span", { "class": "small muted" },
        folder.files.length + " file" + (folder.files.length === 1 ? "" : "s")));
      if (canManage) {
        const drop = element("button", { "type": "button", "class": "btn small danger", "data-action": "delete-folder" }, "Delete folder");
        drop.addEventListener("click", function (event) {
          event.stopPropagation();
          deleteFolder(folder.name, folder.files.length);
        });
        row.appendChild(drop);
      }
      row.addEventListener("click", function () { select(folder.name); });
      item.appendChild(row);
      const files = element("ul", { "class": "files" });
      if (folder.files.length === 0) {
        files.appendChild(element("li", { "class": "none" }, "empty folder"));
      }
      folder.files.forEach(function (file) {
        const li = element("li", { "data-file": file.name });
        const link = element("a", { "class": "fname", "href": fileUrl(folder.name, file.name), "download": file.name }, file.name);
        li.appendChild(link);
        li.appendChild(element("span", { "class": "fsize" }, Segmap.formatBytes(file.size)));
        if (file.sha256) {
          li.appendChild(element("code", { "class": "small muted", "title": "SHA-256 " + file.sha256 }, file.sha256.slice(0, 8)));
        }
        const download = element("a", { "class": "btn small", "href": fileUrl(folder.name, file.name), "download": file.name }, "Download");
        li.appendChild(download);
        if (canManage) {
          const del = element("button", { "type": "button", "class": "btn small danger", "data-action": "delete" }, "Delete");
          del.addEventListener("click", function () { deleteFile(folder.name, file.name); });
          li.appendChild(del);
        }
        files.appendChild(li);
      });
      item.appendChild(files);
      tree.appendChild(item);
    });
    if (folderSelect) {
      folderSelect.replaceChildren();
      folders.forEach(function (folder) {
        const option = element("option", { "value": folder.name }, folder.name);
        if (folder.name === selectedFolder) { option.selected = true; }
        folderSelect.appendChild(option);
      });
      folderSelect.disabled = folders.length === 0;
      if (fileInput) { fileInput.disabled = folders.length === 0; }
    }
  }

  function select(name) {
    selectedFolder = name;
    tree.querySelectorAll(".folder-row").forEach(function (row) {
      row.classList.toggle("selected", row.parentElement.dataset.folder === name);
    });
    if (folderSelect) { folderSelect.value = name; }
  }

  async function refresh() {
    const answer = await Segmap.api("GET", apiBase);
    if (!answer.ok) {
      const e = Segmap.describeError(answer.status, answer.data);
      showProblems(e.heading, e.lines);
      return;
    }
    render(foldersOf(answer.data));
    dialog.dataset.loaded = "true";
  }

  async function addFolder(name) {
    clearProblems();
    const answer = await Segmap.api("PUT", folderUrl(name));
    if (!answer.ok) {
      const e = Segmap.describeError(answer.status, answer.data);
      showProblems(e.heading, e.lines);
      return;
    }
    selectedFolder = name;
    changed = true;
    await refresh();
  }

  async function deleteFile(folder, name) {
    const yes = await Segmap.confirm("Delete " + name + " from the folder " + folder + "? This cannot be undone.", "Delete");
    if (!yes) { return; }
    clearProblems();
    const answer = await Segmap.api("DELETE", fileUrl(folder, name));
    if (!answer.ok) {
      const e = Segmap.describeError(answer.status, answer.data);
      showProblems(e.heading, e.lines);
    }
    changed = true;
    await refresh();
  }

  async function deleteFolder(folder, count) {
    const what = count ? " and its " + count + " file" + (count === 1 ? "" : "s") : "";
    const yes = await Segmap.confirm("Delete the folder " + folder + what + "? This cannot be undone.", "Delete folder");
    if (!yes) { return; }
    clearProblems();
    const answer = await Segmap.api("DELETE", folderUrl(folder));
    if (!answer.ok) {
      const e = Segmap.describeError(answer.status, answer.data);
      showProblems(e.heading, e.lines);
    }
    changed = true;
    await refresh();
  }

  /* One file, raw body, via XMLHttpRequest because fetch() reports no upload progress. */
  function putFile(folder, file, onProgress) {
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", fileUrl(folder, file.name));
      xhr.setRequestHeader("X-CSRF-Token", Segmap.csrfToken());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { onProgress(event.loaded); }
      });
      xhr.addEventListener("load", function () {
        let data = null;
        try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (e) { data = { detail: xhr.responseText }; }
        resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: data });
      });
      xhr.addEventListener("error", function () { resolve({ ok: false, status: 0, data: { detail: "The connection to the server failed." } }); });
      xhr.send(file);
    });
  }

  async function upload(fileList) {
    const files = Array.from(fileList || []);
    if (files.length === 0 || busy) { return; }
    const folder = folderSelect && folderSelect.value;
    if (!folder) {
      showProblems("Add a folder first, then upload files into it.", []);
      return;
    }
    busy = true;
    clearProblems();
    const total = files.reduce(function (sum, f) { return sum + f.size; }, 0) || 1;
    let done = 0;
    let stored = 0;
    const failures = [];
    progressBox.hidden = false;
    bar.style.width = "0%";
    for (let i = 0; i < files.length; i += 1) {
      const file = files[i];
      statusLine.textContent = "Uploading " + file.name + " (" + (i + 1) + " of " + files.length + ")…";
      const answer = await putFile(folder, file, function (loaded) {
        bar.style.width = Math.min(100, (100 * (done + loaded)) / total).toFixed(1) + "%";
      });
      done += file.size;
      bar.style.width = Math.min(100, (100 * done) / total).toFixed(1) + "%";
      if (answer.ok) {
        stored += 1;
      } else {
        failures.push({ file: file.name, error: Segmap.describeError(answer.status, answer.data) });
      }
    }
    bar.style.width = "100%";
    statusLine.textContent = "Uploaded " + stored + " of " + files.length + " file" + (files.length === 1 ? "" : "s") + " into " + folder + ".";
    bar.classList.toggle("failed", failures.length > 0);
    if (failures.length === 1) {
      const only = failures[0];
      showProblems(only.file + " was not stored.", only.error.lines, only.error.heading);
    } else if (failures.length > 1) {
      const lines = [];
      failures.forEach(function (f) {
        lines.push(f.file + ": " + f.error.heading);
        f.error.lines.forEach(function (l) { lines.push("    " + l); });
      });
      showProblems(failures.length + " files were not stored.", lines);
    }
    if (stored) { changed = true; }
    if (fileInput) { fileInput.value = ""; }
    busy = false;
    await refresh();
  }

  document.querySelectorAll('[data-open-dialog="manage-files"]').forEach(function (button) {
    button.addEventListener("click", refresh);
  });
  dialog.addEventListener("close", function () {
    // The region map table on the page follows the files: show the new state.
    if (changed) { window.location.reload(); }
  });

  if (canManage) {
    const addForm = dialog.querySelector('[data-role="add-folder"]');
    addForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const input = addForm.querySelector('input[name="folder"]');
      const name = input.value.trim();
      if (!name) { showProblems("Type a folder name first.", []); return; }
      input.value = "";
      addFolder(name);
    });
    if (folderSelect) { folderSelect.addEventListener("change", function () { select(folderSelect.value); }); }
    fileInput.addEventListener("change", function () { upload(fileInput.files); });
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

  if (window.location.hash === "#manage-files") {
    dialog.showModal();
    refresh();
  }
})();
