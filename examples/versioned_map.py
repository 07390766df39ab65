"""The seed ``versioned_map`` on versioned_admin's map strategy.

In the seed, ``ConfigData`` is copied into a new row on every change and its
``ConfigValue`` rows are shared between copies. Here ``Config`` is an ordinary
``Versioned`` model with a ``VersionedMap``: each version of the config lists its values,
a new value row is written only for keys that changed, and the history of one key is
one query (``key_history``).

Run: ``python examples/versioned_map.py`` (exits 0 when every assertion holds).
"""

from __future__ import annotations

from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from versioned_admin.versioning import (
    Versioned,
    VersionedMap,
    enable_versioning,
    key_history,
    latest_version,
    map_at,
    versions,
)


class Base(DeclarativeBase):
    pass


class Config(Versioned, Base):
    """A series of key/value pairs; each change is a new version of the config."""

    __tablename__ = "config"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="main")
    data = VersionedMap()  # tables config_data_value (immutable values), config_data_entry


if __name__ == "__main__":
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine)
    enable_versioning(Session)

    sess = Session()
    config = Config(data={"user_name": "twitter", "hash_id": "4fedffca37eaf", "x": 27, "y": 450})
    sess.add(config)
    sess.commit()
    version_one = latest_version(sess, Config, config.id)
    assert version_one is not None

    config.data["user_name"] = "yahoo"
    sess.commit()
    version_two = latest_version(sess, Config, config.id)
    assert version_two is not None

    assert version_one.number != version_two.number

    # two versions have been created.
    assert [v.number for v in versions(sess, Config, config.id)] == [2, 1]
    assert version_two.changed == ("data",)

    assert config.data == {"user_name": "yahoo", "hash_id": "4fedffca37eaf", "x": 27, "y": 450}

    old_config = map_at(sess, Config, config.id, version_one.number)
    assert old_config == {"user_name": "twitter", "hash_id": "4fedffca37eaf", "x": 27, "y": 450}

    # unchanged values are shared: 4 value rows for version one, 1 more for version two
    values = Base.metadata.tables["config_data_value"]
    assert sess.scalar(select(func.count()).select_from(values)) == 5

    # the history of any key is one query
    history = key_history(sess, Config, config.id, "user_name")
    assert [(h.value, h.version) for h in history] == [
        ("twitter", version_one.number),
        ("yahoo", version_two.number),
    ]
    sess.close()
    print("all assertions hold")
