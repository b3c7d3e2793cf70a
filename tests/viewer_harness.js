// Runs a segmap-generated app-config.js the way OHIF's index.html does (a plain script
// in a window), with stand-ins for the OHIF services the preset code calls, and prints
// what happened as JSON. Used by tests/test_viewer_config.py.
//
//   node tests/viewer_harness.js <search> < app-config.js
//
// The stand-ins keep segments the way OHIF's SegmentationService does (by index, with a
// label and colour) and fire SEGMENTATION_MODIFIED after each change.
"use strict";
const fs = require("fs");
const vm = require("vm");

const code = fs.readFileSync(0, "utf8");
const search = process.argv[2] || "";
const events = [];
const notices = [];
const segmentations = {};
const listeners = [];

function modified(segmentationId) {
  listeners.forEach((fn) => fn({ segmentationId }));
}

const segmentationService = {
  EVENTS: { SEGMENTATION_MODIFIED: "event::segmentation_modified" },
  subscribe(name, fn) {
    if (name === this.EVENTS.SEGMENTATION_MODIFIED) listeners.push(fn);
    return { unsubscribe() {} };
  },
  getSegmentation(id) {
    return segmentations[id];
  },
  addSegment(id, config) {
    segmentations[id].segments[config.segmentIndex] = { ...config };
    events.push(["addSegment", config.segmentIndex, config.label, config.color]);
    modified(id);
  },
  setSegmentLabel(id, index, label) {
    segmentations[id].segments[index].label = label;
    events.push(["setSegmentLabel", index, label]);
    modified(id);
  },
  removeSegment(id, index) {
    delete segmentations[id].segments[index];
    events.push(["removeSegment", index]);
    modified(id);
  },
  setActiveSegment(id, index) {
    events.push(["setActiveSegment", index]);
  },
};

const window = {
  location: {
    search,
    pathname: "/ohif/segmentation/P",
    replace(url) {
      events.push(["redirect", url]);
    },
  },
  services: {
    segmentationService,
    viewportGridService: { getActiveViewportId: () => "viewport-1" },
    uiNotificationService: { show: (n) => notices.push(n) },
  },
  commandsManager: {
    async run(name, args) {
      events.push(["command", name, args.viewportId, args.options]);
      segmentations["seg-1"] = { segments: {} };
      return "seg-1";
    },
  },
};
window.window = window;
vm.runInNewContext(code, { window, URLSearchParams, encodeURIComponent, console });

async function main() {
  const global = ((window.config || {}).customizationService || {}).global || {};
  const add = global["panelSegmentation.onSegmentationAdd"];
  const result = {
    config: JSON.parse(JSON.stringify(window.config)),
    presets: (window.segmapViewer || {}).presets || [],
    active: (window.segmapViewer || {}).active || null,
    onSegmentationAdd: typeof (add && add.$set),
    showAddSegment: global["panelSegmentation.showAddSegment"] || null,
  };
  if (add) {
    await add.$set({ segmentationRepresentationType: "Labelmap" });
    result.afterAdd = JSON.parse(JSON.stringify(segmentations["seg-1"].segments));
    // The annotator renames segment 2 by hand to a name outside the map ...
    segmentationService.setSegmentLabel("seg-1", 2, "Kidney");
    // ... and some other tool adds a segment the map does not have.
    segmentations["seg-1"].segments[9] = { segmentIndex: 9, label: "Segment 9" };
    modified("seg-1");
    result.afterEdits = JSON.parse(JSON.stringify(segmentations["seg-1"].segments));
  }
  result.events = events;
  result.notices = notices.map((n) => n.message);
  process.stdout.write(JSON.stringify(result));
}
main();
