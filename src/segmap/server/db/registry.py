"""Tables of the registry: projects, members, models and their file-resource folders.

Revision ``0001`` creates them; ``test_server_migrations`` checks the two agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segmap.server.db.accounts import User
from segmap.server.db.base import Base, UTCDateTime, utcnow

ROLE_OWNER = "owner"
ROLE_MEMBER = "member"
ROLE_COLLABORATOR = "collaborator"
ROLES = (ROLE_OWNER, ROLE_MEMBER, ROLE_COLLABORATOR)


class Project(Base):
    """A project; ``id`` is the short identifier users chose (XNAT's project ID)."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    created_by: Mapped[User | None] = relationship()


class Membership(Base):
    """A user's role in a project: owner, member or collaborator."""

    __tablename__ = "memberships"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    project: Mapped[Project] = relationship()


class MLModel(Base):
    """A machine-learning model installed in a project (label unique per project)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "label_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(128))
    label_key: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # Voxel spacing the model expects, in mm, along x, y, z (column, row, slice).
    spacing_x: Mapped[float] = mapped_column(Float)
    spacing_y: Mapped[float] = mapped_column(Float)
    spacing_z: Mapped[float] = mapped_column(Float)
    automation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    created_by: Mapped[User | None] = relationship()
    project: Mapped[Project] = relationship()
    folders: Mapped[list[ResourceFolder]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ResourceFolder.name_key",
    )

    @property
    def voxel_spacing(self) -> tuple[float, float, float]:
        """(x, y, z) spacing in mm."""
        return (self.spacing_x, self.spacing_y, self.spacing_z)


class ResourceFolder(Base):
    """A file-resource folder of a model (XNAT: a resource)."""

    __tablename__ = "resource_folders"
    __table_args__ = (UniqueConstraint("model_id", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    model: Mapped[MLModel] = relationship(back_populates="folders")
    created_by: Mapped[User | None] = relationship()
    files: Mapped[list[ResourceFile]] = relationship(
        back_populates="folder",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ResourceFile.name_key",
    )


class ResourceFile(Base):
    """A file in a folder. The bytes live in storage under ``storage_key``."""

    __tablename__ = "resource_files"
    __table_args__ = (UniqueConstraint("folder_id", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(
        ForeignKey("resource_folders.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    folder: Mapped[ResourceFolder] = relationship(back_populates="files")
    uploaded_by: Mapped[User | None] = relationship()
