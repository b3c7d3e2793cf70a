"""Every table of the service in one metadata (for Alembic and the migration check)."""

from __future__ import annotations

from sqlalchemy import MetaData

from segmap.server.db import accounts, archive, datasets, dicomweb, imaging, jobs, registry
from segmap.server.db.base import Base

# Importing the modules registers their tables on ``Base``; listed in dependency order.
TABLE_MODULES = (accounts, registry, imaging, jobs, dicomweb, datasets, archive)
metadata: MetaData = Base.metadata
