"""the outbox's ids never reused on SQLite

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 05:30:00

SQLite's plain INTEGER PRIMARY KEY takes the highest id + 1, so after the relay deleted the newest rows
an id could be handed out again. AUTOINCREMENT never reuses one, so ids grow in commit order (SQLite
has one writer) and a relay process can read the rows after the last one it sent. The table is
recreated with its rows and ids; other databases are unchanged (their relays lock rows instead).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("outbox", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    """Applies this revision."""
    _recreate(True)


def downgrade() -> None:
    """Reverts this revision."""
    _recreate(False)
