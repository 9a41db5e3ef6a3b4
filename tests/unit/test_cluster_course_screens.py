"""What makes the cluster look like the course's, without root: the node's hosts file and the
kubectl stand-in as files proven ours, kubectl's columns, `brd +`, sockets on `::`.

Node rows come from recorded/cluster_status.json, a RECORDED cluster (see test_cluster_quiz.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from cnilab.cluster import kubectl
from cnilab.cluster.plan import build_plan
from cnilab.cluster.steps import hosts_ops, network_ops
from cnilab.errors import CollisionError
from cnilab.ops import AddAddress
from cnilab.ops.files import NetnsEtcFile
from cnilab.render.cluster import kubectl_table
from cnilab.state import LISTEN, parse_proc_tcp

RECORDED = Path(__file__).parent / "recorded" / "cluster_status.json"


def hosts_file(tmp_path: Path) -> NetnsEtcFile:
    op = hosts_ops(build_plan(2, 0, "t-"))[0]
    assert isinstance(op, NetnsEtcFile)
    return NetnsEtcFile(op.netns, op.lines, name=op.name, root=str(tmp_path / "netns"))


def test_each_node_has_a_hosts_file_naming_the_nodes_and_the_gateway() -> None:
    op = hosts_ops(build_plan(2, 0, "t-"))[0]
    assert isinstance(op, NetnsEtcFile) and str(op.path) == "/etc/netns/t-controlplane/hosts"
    lines = [ln.split() for ln in op.lines if not ln.startswith("#")]
    assert ["172.17.0.24", "controlplane"] in lines and ["172.17.0.40", "node01"] in lines
    assert ["172.17.0.1", "_gateway"] in lines
    assert op in network_ops(build_plan(2, 0, "t-"))  # made and removed with the network


def test_the_hosts_file_is_written_with_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    op = hosts_file(tmp_path).prepare(None)  # type: ignore[arg-type]
    assert isinstance(op, NetnsEtcFile)
    assert op.made == (str(op.path.parent), str(op.path.parent.parent))  # both are missing
    old = os.umask(0o077)
    try:
        op.apply(None)  # type: ignore[arg-type]
    finally:
        os.umask(old)
    assert op.path.read_bytes() == op.data and op.satisfied(None)  # type: ignore[arg-type]
    assert (op.path.stat().st_mode & 0o777, op.path.parent.stat().st_mode & 0o777) == (
        0o644, 0o755)
    op.undo(None)  # type: ignore[arg-type]
    assert not op.path.exists() and not op.path.parent.exists()
    assert not op.path.parent.parent.exists()  # /etc/netns too: it made it


def test_a_folder_that_was_there_before_stays(tmp_path: Path) -> None:
    (tmp_path / "netns").mkdir()
    op = hosts_file(tmp_path).prepare(None)  # type: ignore[arg-type]
    assert isinstance(op, NetnsEtcFile) and op.made == (str(op.path.parent),)
    op.apply(None)  # type: ignore[arg-type]
    op.undo(None)  # type: ignore[arg-type]
    assert not op.path.parent.exists() and (tmp_path / "netns").is_dir()


def test_a_planted_hosts_file_is_never_adopted_nor_removed(tmp_path: Path) -> None:
    op = hosts_file(tmp_path)
    op.path.parent.mkdir(parents=True)
    op.path.write_text("10.0.0.1 someone-elses\n")
    with pytest.raises(CollisionError):
        op.apply(None)  # type: ignore[arg-type]
    assert not op.owned(None, True, None)  # type: ignore[arg-type]
    op.undo(None)  # type: ignore[arg-type]
    assert op.path.read_text() == "10.0.0.1 someone-elses\n"


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    op = hosts_file(tmp_path)
    target = tmp_path / "target"
    target.write_text("keep\n")
    op.path.parent.mkdir(parents=True)
    op.path.symlink_to(target)
    with pytest.raises(CollisionError):
        op.apply(None)  # type: ignore[arg-type]
    op.undo(None)  # type: ignore[arg-type]
    assert target.read_text() == "keep\n" and op.path.is_symlink()


def test_a_hosts_file_changed_since_is_not_ours_to_remove(tmp_path: Path) -> None:
    op = hosts_file(tmp_path)
    op.apply(None)  # type: ignore[arg-type]
    op.path.write_text(op.path.read_text() + "10.0.0.9 added-by-hand\n")
    op.undo(None)  # type: ignore[arg-type]
    assert "added-by-hand" in op.path.read_text()


@pytest.mark.parametrize(("args", "want"), [
    (["get", "nodes"], (True, False, [])),
    (["get", "node", "-o", "wide"], (True, True, [])),
    (["get", "no", "-owide", "node01"], (True, True, ["node01"])),
    (["get", "node/node01"], (True, False, ["node01"])),
    (["get", "nodes", "--output=wide"], (True, True, [])),
    (["get", "nodes", "-o", "json"], None),
    (["get", "nodes", "-oyaml"], None),
    (["get", "pods"], None),
    (["apply", "-f", "x.yaml"], None),
    ([], None),
])
def test_kubectl_knows_get_nodes_only(args: list[str], want: object) -> None:
    assert kubectl.wants_nodes(args) == want


@pytest.mark.parametrize(("seconds", "shown"), [
    (5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (9 * 3600, "9h"), (50 * 3600, "2d2h"), (10 * 86400, "10d")])
def test_age_is_printed_as_kubectl_prints_it(seconds: int, shown: str) -> None:
    assert kubectl.age(seconds) == shown


def test_get_nodes_wide_has_kubectls_columns_from_the_recorded_state() -> None:
    status = json.loads(RECORDED.read_text(encoding="utf-8"))
    rows = kubectl.node_rows(status, True, [])
    text = kubectl_table(kubectl.COLUMNS + kubectl.WIDE, rows)
    header, cp, n1 = text.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                              "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert cp.split()[:3] == ["controlplane", "Ready", "control-plane"]
    assert n1.split()[:3] == ["node01", "Ready", "<none>"]
    start = header.index("INTERNAL-IP")
    assert (cp[start:].split()[0], n1[start:].split()[0]) == ("172.17.0.24", "172.17.0.40")
    status["nodes"][1]["ports"] = []  # node01's kubelet gone: NotReady, as kubectl says
    assert kubectl.node_rows(status, False, ["node01"])[0][1] == "NotReady"


def test_an_address_with_brd_prints_ip_addr_add_brd_plus() -> None:
    assert AddAddress("n", "ens3", "172.17.0.24/16", broadcast=True).command(None) == (
        "ip -n n addr add 172.17.0.24/16 brd + dev ens3")
    assert AddAddress("n", "v", "10.0.0.1/24").command(None) == "ip -n n addr add 10.0.0.1/24 dev v"


# As the kernel prints them on a little-endian machine (x86-64), as ss reads them.
TCP6 = "\n".join([
    "  sl  local_address                         remote_address                      "
    "  st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:000"
    "0 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1",
    "   1: 0000000000000000FFFF0000180011AC:192B 0000000000000000FFFF0000280011AC:8E4"
    "2 01 00000000:00000000 00:00000000 00000000     0        0 5152 1",
    ""])


@pytest.mark.skipif(sys.byteorder != "little", reason="words printed little-endian")
def test_proc_net_tcp6_is_parsed_like_ss() -> None:
    listen, conn = parse_proc_tcp(TCP6)
    assert (listen.local, listen.local_port, listen.state) == ("::", 6443, LISTEN)
    assert (conn.local, conn.remote, conn.remote_port) == (
        "::ffff:172.17.0.24", "::ffff:172.17.0.40", 36418)


def test_the_printed_hosts_command_writes_the_same_bytes(tmp_path: Path) -> None:
    import subprocess

    op = hosts_file(tmp_path)
    subprocess.run(["bash", "-c", op.command(None)], check=True)
    assert op.path.read_bytes() == op.data and op.mine()


@pytest.mark.parametrize("entry", [
    {"op": "NetnsEtcFile", "netns": "t-node01", "name": "hosts", "lines": [], "root": "/"},
    {"op": "NetnsEtcFile", "netns": "../..", "name": "hosts", "lines": []},
    {"op": "NetnsEtcFile", "netns": "t-node01", "name": "passwd", "lines": []},
    {"op": "NetnsEtcFile", "netns": "t-node01", "name": "hosts", "lines": [], "made": ["/etc"]},
    {"op": "KubectlScript", "netns": None, "file": "/usr/bin/kubectl", "lines": []},
    {"op": "KubectlScript", "netns": None, "file": "run/x-bin/kubectl", "lines": []},
])
def test_a_ledger_line_may_name_no_other_file(entry: dict[str, object]) -> None:
    from cnilab.cluster.cluster import CLUSTER_OPS
    from cnilab.ops import BadEntry, Op

    with pytest.raises(BadEntry):
        Op.from_dict(entry, CLUSTER_OPS)


def test_the_files_ops_read_back_from_their_ledger_lines(tmp_path: Path) -> None:
    from cnilab.cluster.cluster import CLUSTER_OPS, cluster_ledger
    from cnilab.ops import Op

    ledger = cluster_ledger("t-", str(tmp_path))
    for op in (*hosts_ops(build_plan(2, 0, "t-")), kubectl.script_op(ledger, "t-", "/py")):
        assert Op.from_dict(json.loads(json.dumps(op.to_dict())), CLUSTER_OPS) == op


def test_killed_before_the_write_the_folders_it_made_still_go(tmp_path: Path) -> None:
    op = hosts_file(tmp_path).prepare(None)  # type: ignore[arg-type]
    op.path.parent.mkdir(parents=True)  # safe_dir ran, then the process was killed
    assert op.owned(None, False, None)  # type: ignore[arg-type]
    op.undo(None)  # type: ignore[arg-type]
    assert not (tmp_path / "netns").exists()


@pytest.mark.skipif(sys.version_info < (3, 10), reason="platform.freedesktop_os_release is 3.10+")
def test_os_image_is_the_pretty_name_platform_reads_too() -> None:
    """OS-IMAGE, read without platform's reader (Python 3.9 has none): the same answer."""
    import platform

    try:
        expected = platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        expected = "Linux"
    assert kubectl.os_image() == expected
