"""compat.py: @valueclass keeps the dataclass rules cnilab relies on; sha256 is hashlib's."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from cnilab.compat import (
    MISSING,
    asdict,
    field,
    fields,
    is_valueclass,
    replace,
    sha256,
    valueclass,
)


@valueclass(frozen=True)
class Base:
    """A frozen base with a default."""

    name: str
    kind: str = "veth"
    shared: ClassVar[int] = 7


@valueclass(frozen=True)
class Child(Base):
    """Adds fields after the base's, one with a factory."""

    tags: tuple[str, ...] = ()
    extra: list[int] = field(default_factory=list)


@valueclass
class Mutable:
    """A mutable value."""

    count: int = 0
    items: dict[str, int] = field(default_factory=dict)


def test_fields_come_in_order_bases_first_without_classvars() -> None:
    assert [f.name for f in fields(Child)] == ["name", "kind", "tags", "extra"]
    assert fields(Child)[1].default == "veth" and fields(Child)[3].default_factory is list
    assert fields(Child)[0].default is MISSING and fields(Child)[0].type == "str"
    assert Child.shared == 7 and is_valueclass(Child) and is_valueclass(Child("a"))
    assert not is_valueclass(object())


def test_a_subclass_without_annotations_keeps_its_bases_fields() -> None:
    @valueclass(frozen=True)
    class Same(Child):
        """Only a new method."""

        def shout(self) -> str:
            return self.name.upper()

    assert [f.name for f in fields(Same)] == ["name", "kind", "tags", "extra"]
    assert Same("a").shout() == "A" and Same("a") != Child("a")


def test_init_takes_positions_keywords_defaults_and_fresh_factories() -> None:
    a, b = Child("a"), Child("b", "bridge", tags=("x",))
    assert (a.name, a.kind, a.tags, a.extra) == ("a", "veth", (), [])
    assert (b.kind, b.tags) == ("bridge", ("x",))
    assert a.extra is not Child("c").extra  # a new list each time
    with pytest.raises(TypeError, match="missing the argument 'name'"):
        Child()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected or repeated argument 'nmae'"):
        Child("a", nmae="b")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected or repeated argument 'name'"):
        Child("a", name="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 4 arguments, 5 were given"):
        Child("a", "b", (), [], 1)  # type: ignore[call-arg]


def test_frozen_values_refuse_assignment_compare_and_hash_by_fields() -> None:
    a = Base("a")
    with pytest.raises(AttributeError, match="frozen Base"):
        a.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.name  # type: ignore[misc]
    assert a == Base("a") and a != Base("a", "bridge") and hash(a) == hash(Base("a"))
    assert Base("a") != Child("a")  # another class is never equal, as with dataclasses
    assert {Base("a"), Base("a"), Base("b")} == {Base("a"), Base("b")}
    assert repr(Child("a")) == "Child(name='a', kind='veth', tags=(), extra=[])"


def test_mutable_values_change_and_are_not_hashable() -> None:
    m = Mutable()
    m.count += 1
    m.items["x"] = 1
    assert m == Mutable(1, {"x": 1})
    with pytest.raises(TypeError):
        hash(m)


def test_the_class_body_wins_and_post_init_runs() -> None:
    @valueclass(frozen=True)
    class Checked:
        """Refuses an empty name; says itself in its own words."""

        name: str

        def __post_init__(self) -> None:
            if not self.name:
                raise ValueError("empty")

        def __repr__(self) -> str:
            return f"<{self.name}>"

    assert repr(Checked("x")) == "<x>"
    with pytest.raises(ValueError, match="empty"):
        Checked("")
    with pytest.raises(ValueError, match="empty"):
        replace(Checked("x"), name="")  # replace builds anew: the check runs again


def test_a_mutable_default_is_refused_at_class_creation() -> None:
    with pytest.raises(ValueError, match="default_factory"):
        @valueclass
        class Shared:
            """Would share one list between instances."""

            items: list[int] = []  # noqa: RUF012


def test_replace_asdict_and_pickle() -> None:
    a = Child("a", tags=("t",), extra=[1])
    b = replace(a, kind="bridge")
    assert (b.name, b.kind, b.tags) == ("a", "bridge", ("t",)) and a.kind == "veth"
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(a, nope=1)
    assert asdict({"x": [a]}) == {"x": [{"name": "a", "kind": "veth", "tags": ("t",),
                                         "extra": [1]}]}
    assert pickle.loads(pickle.dumps(a)) == a


@pytest.mark.parametrize("data", [b"", b"cnilab\0net\0c1", "정원".encode()])
def test_sha256_without_openssl_gives_hashlibs_digests(data: bytes) -> None:
    import hashlib

    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert sha256(data).digest() == hashlib.sha256(data).digest()
