"""The SQLAlchemy-Continuum README's quick start, on versioned_admin's API.

Continuum: ``make_versioned()``, ``__versioned__ = {}``, ``article.versions[0].revert()``.
Here: the ``Versioned`` mixin, ``enable_versioning(sessionmaker)``, ``versions()`` and ``revert()``.

Run: ``python examples/continuum_quickstart.py`` (exits 0 when every assertion holds).
"""

from __future__ import annotations

from sqlalchemy import Integer, Unicode, UnicodeText, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from versioned_admin.versioning import Versioned, enable_versioning, revert, versions


class Base(DeclarativeBase):
    pass


class Article(Versioned, Base):
    __tablename__ = "article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(Unicode(255))
    content: Mapped[str | None] = mapped_column(UnicodeText)


def main() -> None:
    """Create, update, then revert an article, as the Continuum README does."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine)  # noqa: N806 - the README's spelling
    enable_versioning(Session)
    session = Session()

    article = Article(name="Some article", content="Some content")
    session.add(article)
    session.commit()

    # article has now one version stored in database
    history = versions(session, Article, article.id)
    assert [v.state["name"] for v in history] == ["Some article"]

    article.name = "Updated name"
    session.commit()

    oldest_first = list(reversed(versions(session, Article, article.id)))
    assert oldest_first[0].state["name"] == "Some article"
    assert oldest_first[1].state["name"] == "Updated name"

    # lets revert back to first version
    revert(session, article, oldest_first[0].number)
    session.commit()
    assert article.name == "Some article"

    # The revert is itself a version: history is never rewritten.
    latest = versions(session, Article, article.id)[0]
    assert (latest.number, latest.reverted_from, latest.state["name"]) == (3, 1, "Some article")
    session.close()
    print("continuum_quickstart: all assertions hold")


if __name__ == "__main__":
    main()
