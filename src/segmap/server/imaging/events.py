"""What imaging tells other features: "an ROI collection was stored".

Imaging does not know who listens. The app factory builds one :class:`ImagingEvents`
with the listeners of the features it mounts (jobs queues the automated models' jobs)
and keeps it at ``app.state.imaging_events``; the collection upload calls
:meth:`ImagingEvents.collection_stored` after its commit. No module keeps listeners
of its own, so two apps in one process (tests) never share them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from segmap.server.db.imaging import RoiCollection
from segmap.server.web.auth import Principal

log = logging.getLogger("segmap.server.imaging")


class CollectionStoredListener(Protocol):
    """Called with the request's session, the uploader and the collection just stored."""

    def __call__(self, db: Session, principal: Principal, collection: RoiCollection) -> object:
        """React to the stored collection (the listener commits its own writes)."""


@dataclass(frozen=True)
class ImagingEvents:
    """The listeners of imaging's events, fixed when the app is built."""

    on_collection_stored: Sequence[CollectionStoredListener] = ()

    def collection_stored(
        self, db: Session, principal: Principal, collection: RoiCollection
    ) -> None:
        """Tell every listener; a failing one is logged and the collection stays stored."""
        for listener in self.on_collection_stored:
            try:
                listener(db, principal, collection)
            except Exception:
                db.rollback()
                log.exception(
                    "a listener failed for ROI collection %s (id %s); the collection is stored",
                    collection.label,
                    collection.id,
                )


def imaging_events(conn: HTTPConnection) -> ImagingEvents:
    """The app's :class:`ImagingEvents` (a FastAPI dependency)."""
    events: ImagingEvents = conn.app.state.imaging_events
    return events
