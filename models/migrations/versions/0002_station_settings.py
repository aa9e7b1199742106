"""station settings: note template, digital paths, opening hours, callback capacity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note_language", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("note_headings", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("digital_paths", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("opening_hours", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("callback_nurses", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(
            sa.Column("callback_handling_min", sa.Float(), nullable=False, server_default="12")
        )


def downgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        for column in (
            "callback_handling_min",
            "callback_nurses",
            "opening_hours",
            "digital_paths",
            "note_headings",
            "note_language",
        ):
            batch_op.drop_column(column)
