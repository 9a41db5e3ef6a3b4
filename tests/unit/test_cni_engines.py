"""`cni attach --container NAME`: the PID from `docker inspect`, else `podman inspect`.

The clients here are small scripts on a PATH of the test's own that answer as the real ones do
(the kernel test drives a real dockerd); no root, no kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnilab.cli.main import app
from cnilab.cni.engines import attach_target, container_pid
from cnilab.errors import ConfigError, MissingTool

runner = CliRunner()
NO_SUCH = 'echo "Error: No such container: $7" >&2; exit 1'


def client(folder: Path, name: str, body: str) -> None:
    """A stand-in `docker` or `podman`: it logs its argv, then runs `body`."""
    exe = folder / name
    exe.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/{name}.argv"\n{body}\n')
    exe.chmod(0o755)


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the test's clients: the machine's own docker and podman hidden."""
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path


def test_docker_answers_first_with_the_containers_pid(path: Path) -> None:
    client(path, "docker", "echo 4242")
    client(path, "podman", "echo 1")
    assert container_pid("box") == 4242
    argv = (path / "docker.argv").read_text().split()
    assert argv == ["inspect", "--type", "container", "-f", "{{.State.Pid}}", "--", "box"]
    assert not (path / "podman.argv").exists()


def test_podman_answers_when_docker_does_not_know_the_container(path: Path) -> None:
    client(path, "docker", NO_SUCH)
    client(path, "podman", "echo 777")
    assert container_pid("box") == 777


def test_a_stopped_container_or_an_unknown_one_is_a_one_line_error(path: Path) -> None:
    client(path, "docker", "echo 0")
    with pytest.raises(ConfigError) as stopped:
        container_pid("box")
    assert "not running" in stopped.value.message and "docker start box" in str(
        stopped.value.hint)
    client(path, "docker", NO_SUCH)
    with pytest.raises(ConfigError) as unknown:
        container_pid("box")
    assert "No such container: box" in unknown.value.message
    assert "podman is not installed" in unknown.value.message


def test_without_docker_or_podman_it_says_what_to_install(path: Path) -> None:
    with pytest.raises(MissingTool) as missing:
        container_pid("box")
    assert "docker.io" in str(missing.value.hint)


def test_attach_takes_exactly_one_of_pid_netns_and_container(path: Path) -> None:
    client(path, "docker", "echo 4242")
    done = runner.invoke(app, ["cni", "attach", "--pid", "1", "--container", "box"])
    assert done.exit_code == 2 and "--container NAME" in done.output
    assert not (path / "docker.argv").exists()  # refused before anything is asked


def test_attach_help_promises_no_web_server_and_offers_container() -> None:
    text = runner.invoke(app, ["cni", "attach", "--help"], env={"COLUMNS": "200"},
                         terminal_width=200).output
    assert "--container" in text and "docker inspect" in text
    assert "web server" not in text and "starts none" in text
    added = runner.invoke(app, ["cni", "add", "--help"], env={"COLUMNS": "200"},
                          terminal_width=200).output
    assert "a web server answers on POD" in added  # `cni add --port` does start one


@pytest.mark.parametrize(("pod", "pid", "netns", "container", "want"), [
    (None, 4242, None, None, ("/proc/4242/ns/net", "pid4242")),
    ("box", 4242, None, None, ("/proc/4242/ns/net", "box")),
    (None, None, "/run/netns/x", None, ("/run/netns/x", "x")),
])
def test_attach_target_names_the_namespace_and_the_pod(
        pod: str | None, pid: int | None, netns: str | None, container: str | None,
        want: tuple[str, str]) -> None:
    assert attach_target(pod, pid, netns, container) == want


@pytest.mark.parametrize("given", [(None, None, None), (1, "/run/netns/x", None),
                                   (1, None, "box")])
def test_attach_target_wants_exactly_one_of_pid_netns_container(
        given: tuple[int | None, str | None, str | None]) -> None:
    with pytest.raises(ConfigError):
        attach_target(None, *given)


def test_attach_target_takes_a_containers_pid_from_its_engine(path: Path) -> None:
    client(path, "docker", "echo 777")
    assert attach_target(None, None, None, "web") == ("/proc/777/ns/net", "web")
