/* Region map editor: rows of label + value with live validation that mirrors the rules of
   segmap.labelmap (the server checks again on save and is the truth). */
"use strict";

(function () {
  const form = document.getElementById("region-editor");
  if (!form) { return; }
  const body = form.querySelector('[data-role="rows"]');
  const template = form.querySelector('[data-role="row-template"]');
  const status = form.querySelector('[data-role="status"]');
  const notes = form.querySelector('[data-role="notes"]');
  const save = form.querySelector('[data-role="save"]');
  const folderInput = form.querySelector('input[name="folder"]');
  const MAX_VALUE = 65535;

  /* The matching key of a label: NFKC, trimmed, inner whitespace collapsed, case-folded.
     toUpperCase().toLowerCase() approximates Python's casefold (e.g. "ß" -> "ss"). */
  function normalise(label) {
    return label.normalize("NFKC").trim().replace(/\s+/g, " ").toUpperCase().toLowerCase();
  }

  /* segmap.labelmap.palette.colour_for_value, so a value has one colour everywhere:
     hue steps by the golden ratio per value; saturation and brightness alternate. */
  const GOLDEN = 0.6180339887498949;
  const SATURATION = [0.80, 0.55, 0.95];
  const BRIGHTNESS = [0.95, 0.75];
  function colour(value) {
    const h = (value * GOLDEN) % 1.0;
    const s = SATURATION[value % 3];
    const v = BRIGHTNESS[Math.floor(value / 3) % 2];
    const i = Math.floor(h * 6.0);
    const f = h * 6.0 - i;
    const p = v * (1.0 - s);
    const q = v * (1.0 - s * f);
    const t = v * (1.0 - s * (1.0 - f));
    const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
    return "rgb(" + rgb.map(function (c) { return Math.round(c * 255); }).join(", ") + ")";
  }

  function rows() { return Array.from(body.querySelectorAll('[data-role="row"]')); }

  function checkValue(text) {
    const t = text.trim();
    if (t === "") { return "Enter a value from 1 to 65535."; }
    if (/^\+\d+$/.test(t)) { return "\"" + t + "\" has a plus sign: write the number without it."; }
    if (!/^-?\d+$/.test(t)) {
      if (/^[+-]?(\d+\.\d*|\.\d+)$/.test(t)) { return "\"" + t + "\" is not a whole number: use an integer from 1 to 65535."; }
      return "\"" + t + "\" is not a number: use an integer from 1 to 65535.";
    }
    const n = parseInt(t, 10);
    if (n === 0) { return "0 is the background value and cannot be assigned to a region."; }
    if (n < 0) { return n + " is negative: use an integer from 1 to 65535."; }
    if (n > MAX_VALUE) { return n + " is larger than 65535, the largest value a mask can hold."; }
    return "";
  }

  function checkLabel(text) {
    const t = text.trim();
    if (t === "") { return "Enter a label."; }
    if (t.startsWith("#")) { return "A label cannot start with # (the file would read it as a comment)."; }
    if (/[\r\n]/.test(text)) { return "A label must fit on one line."; }
    return "";
  }

  function validate() {
    const seen = new Map();
    const byValue = new Map();
    let problems = 0;
    let regions = 0;
    let maxValue = 0;
    rows().forEach(function (row, index) {
      row.querySelector('[data-role="number"]').textContent = String(index + 1);
      const labelInput = row.querySelector('input[name="label"]');
      const valueInput = row.querySelector('input[name="value"]');
      let labelMsg = checkLabel(labelInput.value);
      const valueMsg = checkValue(valueInput.value);
      if (!labelMsg) {
        const key = normalise(labelInput.value);
        if (seen.has(key)) {
          labelMsg = "\"" + labelInput.value.trim() + "\" repeats the label of row " + seen.get(key) + " (labels are compared ignoring case and extra spaces).";
        } else {
          seen.set(key, index + 1);
        }
      }
      labelInput.classList.toggle("invalid", Boolean(labelMsg));
      valueInput.classList.toggle("invalid", Boolean(valueMsg));
      labelInput.setCustomValidity(labelMsg);
      valueInput.setCustomValidity(valueMsg);
      row.querySelector('[data-role="label-msg"]').textContent = labelMsg;
      row.querySelector('[data-role="value-msg"]').textContent = valueMsg;
      const swatch = row.querySelector('[data-role="swatch"]');
      if (!valueMsg) {
        const value = parseInt(valueInput.value.trim(), 10);
        swatch.style.background = colour(value);
        swatch.style.visibility = "visible";
        maxValue = Math.max(maxValue, value);
        if (!labelMsg) {
          if (!byValue.has(value)) { byValue.set(value, []); }
          byValue.get(value).push(labelInput.value.trim());
        }
      } else {
        swatch.style.visibility = "hidden";
      }
      if (labelMsg) { problems += 1; }
      if (valueMsg) { problems += 1; }
      regions += 1;
    });
    if (regions === 0) { problems += 1; }
    if (!folderInput.value.trim()) { problems += 1; }

    notes.replaceChildren();
    byValue.forEach(function (labels, value) {
      if (labels.length > 1) {
        const li = document.createElement("li");
        li.textContent = labels.join(", ") + " share the value " + value + ": they form one class in the mask.";
        notes.appendChild(li);
      }
    });
    if (regions === 0) {
      status.textContent = "A region map needs at least one region.";
    } else if (problems) {
      status.textContent = problems + " problem" + (problems === 1 ? "" : "s") + " to fix before saving.";
    } else {
      status.textContent = regions + " region" + (regions === 1 ? "" : "s") + " · valid · mask type " + (maxValue <= 255 ? "uint8" : "uint16");
    }
    status.classList.toggle("ok", problems === 0);
    status.classList.toggle("bad", problems > 0);
    save.disabled = problems > 0;
    form.dataset.valid = problems === 0 ? "true" : "false";
    return problems === 0;
  }

  function addRow(focus) {
    const row = template.content.firstElementChild.cloneNode(true);
    body.appendChild(row);
    validate();
    if (focus) { row.querySelector('input[name="label"]').focus(); }
  }

  form.querySelector('[data-role="add-row"]').addEventListener("click", function () { addRow(true); });
  body.addEventListener("input", validate);
  folderInput.addEventListener("input", validate);
  body.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-role]");
    if (!button) { return; }
    const row = button.closest('[data-role="row"]');
    if (button.dataset.role === "remove") {
      row.remove();
    } else if (button.dataset.role === "up" && row.previousElementSibling) {
      body.insertBefore(row, row.previousElementSibling);
    } else if (button.dataset.role === "down" && row.nextElementSibling) {
      body.insertBefore(row.nextElementSibling, row);
    }
    validate();
  });
  form.addEventListener("submit", function (event) {
    if (!validate()) { event.preventDefault(); }
  });

  if (rows().length === 0) { addRow(false); } else { validate(); }
})();
