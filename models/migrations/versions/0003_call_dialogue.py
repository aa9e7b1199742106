"""call dialogue: the caller's keypad answers, the sealed identity code; station speech rate

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dialogue", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("identity_sealed", sa.Text(), nullable=True))
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("speech_rate", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_column("speech_rate")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("identity_sealed")
        batch_op.drop_column("dialogue")
