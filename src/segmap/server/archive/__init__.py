"""The lab's archive: a project follows an Orthanc server or any DICOMweb server.

Modules, one idea each: ``secrets`` (the password encrypted at rest), ``schemas`` and
``connections`` (the connection's settings and state; the API's service), ``clients``
(Orthanc's REST API and DICOMweb over httpx), ``diagnose`` ("Test connection"),
``importer`` (an annotation and its series, stored as STOW-RS stores them),
``follower`` (one thread per connected project: Orthanc's ``/changes`` or QIDO polling,
the push of derived SEGs), ``manual`` (imports asked for by hand), ``lifespan`` (the
followers started and stopped with the service and the connections), ``api``,
``pages``.
"""
