"""The OHIF viewer served by segmap at ``/ohif/``, configured per request.

- :mod:`.dist` — where the installed ``@ohif/app`` dist lives (``scripts/install-ohif.py``
  puts it there) and which of its files may be cached for how long;
- :mod:`.presets` — a model's region map as OHIF segments: labels in map order, colours;
- :mod:`.app_config` — the ``app-config.js`` of one user: a DICOMweb data source per
  project they can see, the presets, and the inline extension that keeps segment labels
  to the map;
- :mod:`.routes` — ``/ohif/``: files, the SPA fallback to ``index.html``, the config.

The viewer sits above ``registry`` (projects, models, region maps) and knows nothing of
the other features; its data sources point at the project's DICOMweb root.
"""
