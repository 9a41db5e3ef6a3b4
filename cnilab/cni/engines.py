"""A running container of Docker's or Podman's, found by name: the PID whose network namespace
`cni attach --container NAME` gives the network to (what `docker inspect` tells a runtime).

Each engine is asked in turn with its own client, as a student would type it; the first that
knows the container answers. DOCKER_HOST and CONTAINER_HOST are the clients' own business.
"""

from __future__ import annotations

import shutil
import subprocess

from cnilab.errors import ConfigError, MissingTool

ENGINES = ("docker", "podman")
PID_FORMAT = "{{.State.Pid}}"
TIMEOUT = 30.0  # seconds: a client whose daemon hangs must not hang the lesson


def inspect_pid(engine: str, name: str) -> tuple[int | None, str]:
    """`ENGINE inspect -f {{.State.Pid}} NAME`: (the PID, "") or (None, why not)."""
    exe = shutil.which(engine)
    if exe is None:
        return None, f"{engine} is not installed"
    try:
        done = subprocess.run([exe, "inspect", "--type", "container", "-f", PID_FORMAT, "--",
                               name], capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{engine}: {e}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return None, f"{engine}: {lines[-1] if lines else f'exit {done.returncode}'}"
    text = done.stdout.strip()
    if not text.isdigit():
        return None, f"{engine}: {text!r} is not a PID"
    return int(text), ""


def container_pid(name: str, engines: tuple[str, ...] = ENGINES) -> int:
    """The PID of the running container `name`, from the first engine that knows it."""
    if not any(shutil.which(e) for e in engines):
        raise MissingTool.of("cni_no_engine", engines=" / ".join(engines))
    reasons = []
    for engine in engines:
        pid, why = inspect_pid(engine, name)
        if pid == 0:  # known, but stopped: no process, so no namespace to attach
            raise ConfigError.of("cni_container_stopped", name=name, engine=engine)
        if pid is not None:
            return pid
        reasons.append(why)
    raise ConfigError.of("cni_no_container", name=name, why="; ".join(reasons))
