"""health text encrypted at rest: the summary's JSON is stored as sealed text

Transcripts, given words and the summary's text columns were already text; the values in
them are sealed by the app (``models/encryption.py``) and existing plain values by
``esitieto rotate-keys``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("summaries", schema=None) as batch_op:
        batch_op.alter_column(
            "data", existing_type=sa.JSON(), type_=sa.Text(), postgresql_using="data::text"
        )


def downgrade() -> None:
    with op.batch_alter_table("summaries", schema=None) as batch_op:
        batch_op.alter_column(
            "data", existing_type=sa.Text(), type_=sa.JSON(), postgresql_using="data::json"
        )
