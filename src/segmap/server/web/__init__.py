"""What every feature's routes share: who is calling, dependencies, pages, transfers.

``auth`` (the principal, log-in cookie, CSRF), ``session_cookie`` (the signed cookie
middleware), ``deps`` (FastAPI dependencies), ``errors`` (refusals as JSON or pages),
``pages`` and ``forms`` (rendering templates, flash messages, posted forms), ``urls``
(paths from route names), ``transfer`` and ``multipart`` (bodies in, files out),
``schemas`` (the error body), ``templates/`` and ``static/``. Imports no feature.
"""
