"""The course's own story with the real Docker: `docker run --network none`, then
`cnilab cni attach --container NAME` (the PID from `docker inspect`), as a CNI runtime does.

dockerd and its containerd run inside a namespace this test made, with their own data root,
state and socket (docker_box): never the machine's Docker. The containers come from a local
busybox (no registry); the network is the CNI lesson's, in its own node namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from docker_box import BUSYBOX, CONTAINERD, DOCKER, DOCKERD, CannotRun, docker_box
from helpers import Cnilab, prefixed_netns

from cnilab.kernel import Kernel
from cnilab.lab.proofs import ping

pytestmark = pytest.mark.skipif(
    not (DOCKERD and CONTAINERD and DOCKER and BUSYBOX),
    reason="the Docker test needs dockerd, containerd and busybox (apt-get install docker.io "
    "busybox-static): not installed here")


def report(cni: Cnilab, *args: str) -> Any:
    """Run a cni command with --json; its report."""
    done = cni.run("cni", *args, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def links(path: str) -> list[str]:
    """The interfaces in a container's network namespace."""
    with Kernel() as k:
        return [ln.name for ln in k.observe([path]).ns(path).links]  # type: ignore[union-attr]


def no_podman(folder: Path) -> Path:
    """A folder whose `podman` knows no container: cnilab falls back to podman when docker does
    not know a name, and the machine's own podman (its storage) is no part of this test."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text("#!/bin/sh\necho 'Error: no such container' >&2\nexit 125\n")
    (bin_dir / "podman").chmod(0o755)
    return bin_dir


def test_cni_attach_finds_docker_containers_by_name_and_they_reach_each_other(
        prefix: str, run_dir: Path) -> None:
    netns = prefix + "docker"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    cni = Cnilab(prefix, run_dir)
    try:
        with docker_box(netns) as docker:
            daemon = int((docker.dir / "dockerd.pid").read_text())
            cni.extra_env = {"DOCKER_HOST": docker.host, "DOCKER_CONFIG": str(docker.dir / "cli"),
                             "PATH": f"{no_podman(docker.dir)}:{os.environ['PATH']}"}
            spaces = {n: f"/proc/{docker.start(n)}/ns/net" for n in ("web", "db")}
            assert all(links(path) == ["lo"] for path in spaces.values())  # --network none
            added = {n: report(cni, "attach", "--container", n) for n in spaces}
            assert {n: (r["pod"], r["netns"]) for n, r in added.items()} == {
                n: (n, path) for n, path in spaces.items()}
            ips = {n: r["result"]["ips"][0]["address"].split("/")[0] for n, r in added.items()}
            assert ping(spaces["web"], ips["db"]) is None and ping(spaces["db"], ips["web"]) is None
            for n in spaces:
                assert report(cni, "detach", n)["ok"]
            assert all(links(path) == ["lo"] for path in spaces.values())  # as Docker made it
            assert ping(spaces["web"], ips["db"]) is not None
            unknown = cni.run("cni", "attach", "--container", "nobody")
            assert unknown.returncode == 2 and "No such container: nobody" in unknown.stderr
            assert cni.run("cni", "teardown").returncode == 0
            docker.run("rm", "--force", *spaces)
            folder = docker.dir
    except CannotRun as e:
        pytest.skip(f"Docker cannot run a container here: {e}")
    finally:
        cni.run("cni", "teardown")
    assert not os.path.exists(f"/proc/{daemon}")  # dockerd stopped, by its PID
    assert not folder.exists()  # its data root, state and socket removed
    assert prefixed_netns(prefix) == [netns]  # cnilab's node and world are gone
