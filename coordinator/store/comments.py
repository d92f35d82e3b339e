"""Operators' comments on targets: add one, read a target's in order."""

from datetime import datetime

from sqlalchemy import Connection, insert, select

from coordinator.source_views import CommentView
from coordinator.store.tables import TargetComment, table_of

comments = table_of(TargetComment)


def add_comment(conn: Connection, target_id: int, user_name: str, text: str, at: datetime) -> int:
    """Add a comment to a target (which must exist); its id."""
    result = conn.execute(
        insert(comments).values(target_id=target_id, user_name=user_name, text=text, at=at)
    )
    key = result.inserted_primary_key
    assert key is not None, "an insert into target_comments returns its key"
    return int(key[0])


def comments_on(conn: Connection, target_id: int) -> list[CommentView]:
    """A target's comments, oldest first."""
    rows = conn.execute(
        select(comments.c.comment_id, comments.c.at, comments.c.user_name, comments.c.text)
        .where(comments.c.target_id == target_id)
        .order_by(comments.c.at, comments.c.comment_id)
    ).all()
    return [CommentView(**r._asdict()) for r in rows]
