"""Training datasets of a model: frozen, checked selections of its conversions.

``service`` (create, list, read, delete; permissions), ``conversions`` (a model's
conversions read from its derived folders), ``freezer`` (one dataset into a store),
``collection_masks`` (each collection's latest conversion for a model, kept by the job
runner) + ``agreements`` (the QA's agreement between the collections of a scan),
``leases`` + ``worker`` + ``lifespan`` (the background freezing that survives a
restart), ``presenters``, ``schemas``, ``api`` and ``pages``. The datasets themselves
are :mod:`segmap.datasets`.
"""
