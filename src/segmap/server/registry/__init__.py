"""The registry: projects, members, models, their resource folders and files, region maps.

Services (permission-checked, take ``db`` and the caller first): ``access`` (who may
do what in a project), ``projects`` (projects and members), ``mlmodels``, ``folders``,
``files``, ``regionmap``. Routes: ``api_projects``, ``api_models``, ``api_files``;
pages: ``pages_projects``, ``pages_models``, ``pages_editor`` (with ``map_views``);
``presenters`` and ``schemas`` show rows; ``navigation`` holds the project tabs.
"""
