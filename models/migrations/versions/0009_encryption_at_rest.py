"""health data encrypted at rest: JSON and number columns become sealed text

The summary's JSON, the call's dialogue (it holds the words heard in the call and a callback
number), the caller's number and the callback number become text columns holding sealed
values; transcripts, given words and the summary's text were already text. The app seals what
it writes (``models/encryption.py``); ``esitieto rotate-keys`` seals what was there before.

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
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column(
            "dialogue", existing_type=sa.JSON(), type_=sa.Text(), postgresql_using="dialogue::text"
        )
        batch_op.alter_column("from_number", existing_type=sa.String(length=32), type_=sa.Text())
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.alter_column("phone_number", existing_type=sa.String(length=32), type_=sa.Text())


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.alter_column("phone_number", existing_type=sa.Text(), type_=sa.String(length=32))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("from_number", existing_type=sa.Text(), type_=sa.String(length=32))
        batch_op.alter_column(
            "dialogue", existing_type=sa.Text(), type_=sa.JSON(), postgresql_using="dialogue::json"
        )
    with op.batch_alter_table("summaries", schema=None) as batch_op:
        batch_op.alter_column(
            "data", existing_type=sa.Text(), type_=sa.JSON(), postgresql_using="data::json"
        )
