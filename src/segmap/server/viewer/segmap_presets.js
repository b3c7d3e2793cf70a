/*
 * segmap: start OHIF's segmentation panel with a model's region map, and keep the
 * segments of that segmentation named as the map names them (docs/viewer.md).
 *
 * Appended by segmap to the generated app-config.js, after `window.config` and
 * `window.segmapViewer = {presets: [...]}`. The launch URL names the preset:
 * `/ohif/segmentation/<project>?StudyInstanceUIDs=<uid>&segmapProject=<project>&segmapModel=<model>`.
 * Without a matching preset OHIF behaves as it ships.
 *
 * It uses OHIF 3.13's documented customizations (customizationService.global wins over a
 * mode's and the default): `panelSegmentation.onSegmentationAdd` creates the segmentation
 * with one segment per region, and `panelSegmentation.showAddSegment` hides the free
 * "Add segment" button. A label typed by hand (Rename) that is not in the map is put back
 * and the annotator is told the map's names; a segment added some other way under a name
 * outside the map is removed. segmap still checks every stored label against the map.
 */
(function () {
  "use strict";
  var data = window.segmapViewer || { presets: [] };
  var params = new URLSearchParams(window.location.search);
  var project = params.get("segmapProject");
  var model = params.get("segmapModel");
  var preset = null;
  (data.presets || []).forEach(function (p) {
    if (p.project === project && p.model === model) {
      preset = p;
    }
  });
  data.active = preset;
  window.segmapViewer = data;
  if (!preset) {
    return;
  }
  var allowed = preset.segments.map(function (s) {
    return s.label;
  });
  var guarded = {}; // segmentationId -> {segmentIndex: last label that was in the map}
  var subscribed = false;

  function notify(message) {
    var services = window.services || {};
    if (services.uiNotificationService) {
      services.uiNotificationService.show({
        title: "Labels of " + preset.model,
        message: message,
        type: "warning",
        duration: 8000,
      });
    }
  }

  function keepToMap(segmentationService, segmentationId) {
    var known = guarded[segmentationId];
    var segmentation = known && segmentationService.getSegmentation(segmentationId);
    if (!segmentation) {
      return;
    }
    Object.keys(segmentation.segments).forEach(function (key) {
      var segment = segmentation.segments[key];
      if (!segment) {
        return;
      }
      var index = Number(key);
      if (allowed.indexOf(segment.label) >= 0) {
        known[index] = segment.label;
        return;
      }
      var names = "Use one of: " + allowed.join(", ") + ".";
      if (known[index]) {
        notify('"' + segment.label + '" is not in the region map; the segment keeps its name. ' + names);
        segmentationService.setSegmentLabel(segmentationId, index, known[index]);
      } else {
        notify('"' + segment.label + '" is not in the region map and was removed. ' + names);
        segmentationService.removeSegment(segmentationId, index);
      }
    });
  }

  function guard(segmentationService, segmentationId) {
    guarded[segmentationId] = {};
    if (!subscribed) {
      subscribed = true;
      segmentationService.subscribe(
        segmentationService.EVENTS.SEGMENTATION_MODIFIED,
        function (event) {
          keepToMap(segmentationService, event && event.segmentationId);
        }
      );
    }
    keepToMap(segmentationService, segmentationId);
  }

  async function addPresetSegmentation(args) {
    var services = window.services;
    var type = (args && args.segmentationRepresentationType) || "Labelmap";
    var command = type === "Contour" ? "createContourForViewport" : "createLabelmapForViewport";
    var viewportId = services.viewportGridService.getActiveViewportId();
    var segmentationId = await window.commandsManager.run(command, {
      viewportId: viewportId,
      options: { label: preset.model, createInitialSegment: false },
    });
    if (!segmentationId) {
      return;
    }
    var segmentationService = services.segmentationService;
    preset.segments.forEach(function (s) {
      segmentationService.addSegment(segmentationId, {
        segmentIndex: s.segmentIndex,
        label: s.label,
        color: s.color,
      });
    });
    segmentationService.setActiveSegment(segmentationId, 1);
    guard(segmentationService, segmentationId);
    return segmentationId;
  }

  var config = window.config;
  config.customizationService = config.customizationService || {};
  var global = (config.customizationService.global = config.customizationService.global || {});
  global["panelSegmentation.onSegmentationAdd"] = { $set: addPresetSegmentation };
  global["panelSegmentation.showAddSegment"] = { $set: false };
})();
