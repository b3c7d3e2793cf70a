"""The database: engine and sessions (``engine``), tables by feature, and migrations.

``engine.Database`` opens SQLite or PostgreSQL and migrates it; ``base`` holds the
declarative ``Base``; ``accounts``, ``registry``, ``imaging`` and ``jobs`` hold the
tables of each feature (each imports only the ones below it); ``schema`` gathers them
all for migrations and checks; ``migrations/`` is the Alembic history.
"""
