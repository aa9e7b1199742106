"""pretriage policy version 2: uncertainty on the decision (with its reasons) and on the call;
the number an urgent caller is connected to when the station is closed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("triage_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("uncertain", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "uncertain_reasons", sa.JSON(), nullable=False, server_default=sa.text("'[]'")
            )
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("uncertain", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "urgent_number", sa.String(length=32), nullable=False, server_default="116117"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_column("urgent_number")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("uncertain")
    with op.batch_alter_table("triage_decisions", schema=None) as batch_op:
        batch_op.drop_column("uncertain_reasons")
        batch_op.drop_column("uncertain")
