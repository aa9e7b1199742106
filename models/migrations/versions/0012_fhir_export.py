"""when a case reached the county's FHIR server, or why it did not

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fhir_exported_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("fhir_error", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("fhir_error")
        batch_op.drop_column("fhir_exported_at")
