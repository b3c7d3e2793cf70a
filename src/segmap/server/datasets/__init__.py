"""Training datasets of a model: frozen, checked selections of its conversions.

``service`` (create, list, read, delete; permissions), ``conversions`` (a model's
conversions read from its derived folders), ``freezer`` (one dataset into a store),
``leases`` + ``worker`` + ``lifespan`` (the background freezing that survives a
restart), ``presenters``, ``schemas``, ``api`` and ``pages``. The datasets themselves
are :mod:`segmap.datasets`.
"""
