"""Accounts: users, passwords, API tokens; the log-in and log-out pages and the auth API.

``service`` (create, authenticate, tokens), ``passwords`` (argon2id), ``api``
(``/api/v1/auth/token``, ``/api/v1/me``), ``pages`` (``/``, ``/login``, ``/logout``).
Who is calling a request is decided in ``segmap.server.web.auth``.
"""
