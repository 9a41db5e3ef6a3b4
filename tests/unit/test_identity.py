"""A lab's identity (names.Identity): one prefix rule for every lesson, no name two lessons share,
and a mark of its own that no other lab's objects carry. With a fake kernel; no root."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cnilab.cluster.plan import build_plan
from cnilab.cni.attach import StateDir
from cnilab.cni.runtime import Runtime
from cnilab.errors import CollisionError, ConfigError
from cnilab.lab.lab import Lab, lab_ledger
from cnilab.lab.topology import default_topology, load
from cnilab.names import PREFIX_MAX, TAG, Identity, check_prefix
from cnilab.ops.trace import TABLE, AddTraceTable, table_comment
from tests.unit.fake_kernel import FakeKernel

BAD_PREFIXES = ["x\ny-", "/tmp/x/p-", "ha/x-", "a..b", "..", "a b-", "a\tb", "a\u200bb-",
                "a\u0000", "\u202ered-", "x" * (PREFIX_MAX + 1), "한" * 14]
GOOD_PREFIXES = ["", "demo-", "a", "rz.", "한국-", "alice_1-", "x" * PREFIX_MAX]


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_every_lesson_refuses_a_prefix_ip_netns_cannot_take(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        check_prefix(prefix)
    assert "\n" not in e.value.message.replace(repr(prefix), "")  # one line, the prefix quoted
    for make in (lambda: default_topology(prefix=prefix),
                 lambda: load(None, prefix=prefix),
                 lambda: build_plan(prefix=prefix),
                 lambda: Runtime(prefix=prefix, root=str(tmp_path)),
                 lambda: Identity("eight-steps", prefix)):
        with pytest.raises(ConfigError):
            make()
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


@pytest.mark.parametrize("prefix", GOOD_PREFIXES)
def test_a_good_prefix_fits_every_namespace_name_of_every_lesson(prefix: str,
                                                                  tmp_path: Path) -> None:
    assert check_prefix(prefix) == prefix
    for name in (*default_topology(prefix=prefix).namespaces(),
                 *build_plan(nodes=10, pods_per_node=99, prefix=prefix).namespaces()):
        assert name.startswith(prefix) and len(name) <= 64
    rt = Runtime(prefix=prefix, root=str(tmp_path))
    assert rt.node.startswith(prefix) and rt.world.startswith(prefix)


@pytest.mark.parametrize("prefix", ["", "demo-"])
def test_no_two_lessons_share_a_namespace_name(prefix: str, tmp_path: Path) -> None:
    lab = set(default_topology(prefix=prefix).namespaces())
    cluster = set(build_plan(prefix=prefix).namespaces())
    rt = Runtime(prefix=prefix, root=str(tmp_path))
    cni = {rt.node, rt.world, rt.pod_netns("web")}
    assert not lab & cluster and not lab & cni and not cluster & cni


def test_each_lab_has_its_own_mark_fit_for_an_alias_a_comment_and_a_shell() -> None:
    labs = [Identity(lesson, p) for lesson in ("eight-steps", "cni", "cluster")
            for p in [*GOOD_PREFIXES, "a@b", "a%b", "a#b", "a:b"] if p]
    marks = [lab.mark for lab in labs]
    assert len(set(marks)) == len(marks)
    assert all(re.fullmatch(r"cnilab:[A-Za-z0-9:@%#_-]+", m) and len(m) <= 100 for m in marks)
    # The unprefixed labs keep the course's word: their namespaces never meet.
    assert {Identity(lesson).mark for lesson in ("eight-steps", "cni", "cluster")} == {TAG}


def _in_place(fake: FakeKernel, tmp_path: Path, prefix: str) -> Lab:
    topo = default_topology(prefix=prefix, in_place=True)
    os.environ["CNILAB_RUN_DIR"] = str(tmp_path)
    try:
        return Lab(topo, kernel=fake, ledger=lab_ledger(topo))  # type: ignore[arg-type]
    finally:
        del os.environ["CNILAB_RUN_DIR"]


def test_two_in_place_labs_never_take_each_others_links(tmp_path: Path) -> None:
    fake = FakeKernel()
    a, b = _in_place(fake, tmp_path, "a-"), _in_place(fake, tmp_path, "b-")
    for n in (1, 2, 3):
        a.run_step(n, prove=False)
    b.run_step(1, prove=False)
    with pytest.raises(CollisionError) as e:
        b.run_step(2, prove=False)  # v-net-0 is lab a-'s
    assert e.value.exit_code == 4 and "eight-steps@a-" in e.value.message
    assert fake.spaces[None].links["v-net-0"].alias == Identity("eight-steps", "a-").mark
    b.teardown()
    assert {"v-net-0", "veth-red", "veth-red-br"} <= set(fake.spaces[None].links)
    a.teardown()
    assert not {"v-net-0", "veth-red", "veth-red-br"} & set(fake.spaces[None].links)


class _Nft:
    """A kernel that holds one cnilab_trace table, listed as `nft list table` prints it."""

    def __init__(self, listing: str) -> None:
        self.listing = listing

    def nft_tables(self, netns: str | None) -> list[tuple[str, str]]:
        return [("inet", TABLE)]

    def nft_table(self, netns: str | None, family: str, table: str) -> str:
        return self.listing


MINE = Identity("eight-steps", "a-").mark


@pytest.mark.parametrize(("listing", "ours"), [
    (f'table inet cnilab_trace {{\n\tcomment "{MINE}"\n\tchain c {{\n\t}}\n}}\n', True),
    # a chain, not the table, says "cnilab": someone else's table
    ('table inet cnilab_trace {\n\tchain c {\n\t\tcomment "cnilab"\n\t}\n}\n', False),
    # another lab's table
    ('table inet cnilab_trace {\n\tcomment "cnilab:eight-steps@b-"\n}\n', False),
    (f'table inet cnilab_trace {{\n\tchain c {{\n\t\tcomment "{MINE}"\n\t}}\n}}\n', False),
])
def test_a_trace_table_is_ours_only_when_the_table_itself_carries_our_mark(
        listing: str, ours: bool) -> None:
    op = AddTraceTable(None, "inet", "", MINE)
    assert op.owned(_Nft(listing), True, None) is ours  # type: ignore[arg-type]
    assert (table_comment(listing) == MINE) is ours


def test_the_runtime_never_adopts_a_folder_it_did_not_make(tmp_path: Path) -> None:
    theirs = tmp_path / "cni" / "cni@p-"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(CollisionError):
        StateDir(None, str(theirs)).apply(FakeKernel())  # type: ignore[arg-type]
    assert (theirs / "notes.txt").read_text() == "mine"
    made = tmp_path / "cni" / "cni@q-"
    StateDir(None, str(made)).apply(FakeKernel())  # type: ignore[arg-type]
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700
