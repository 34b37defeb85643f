"""A real Docker engine inside a network namespace, for integration tests.

`DockerEngine` starts Debian's dockerd (with a containerd of its own) inside a namespace
`ndt-dk-<random>` created for it, with every folder, socket and cgroup it makes under names
that carry the same random part, so engines started in parallel by other test runs never meet
and the host's root namespace (its links, routes and firewall) is never touched. `stop()` ends
exactly the processes it started, unmounts what the daemon mounted under its folders, removes
its cgroups, folders and namespace — it is called in `finally` blocks, so a failing test
cleans up too. No registry is reachable, so `build_busybox_image` makes the one image the
tests use from Debian's busybox-static. With `own_plugins`, the engine runs in a mount
namespace of its own in which a folder of its own is /run/docker/plugins: two engines on
this machine then each find their own plugin of one name (legacy plugins are found by that
folder, which every engine would otherwise share). `Swarm` joins two engines through a
bridge in a third namespace into a two-node Swarm, for tests that need real overlay networks.

Two engine versions: Debian 12's 20.10 (the default; the "classic" firewall layout) and Debian
unstable's 28 (the "modern" one), which `./dev setup` unpacks into .cache/docker28 with a bin/
folder of links that goes first on the daemons' PATH (see `install_docker28` in dev).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path

PREFIX = "ndt-dk-"
BUSYBOX = Path("/bin/busybox")
IMAGE = "ndt-busybox:1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Folders the daemons make whatever their roots: dockerd's plugin folder, the containerd shims'
# socket folder. Removed (when empty) by the engine that found them missing.
HOST_DIRS = (Path("/run/docker/plugins"), Path("/run/docker"), Path("/run/containerd/s"),
             Path("/run/containerd"))
# The Debian client matches the Debian daemon; any other `docker` on PATH negotiates down.
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
DOCKER_VERSIONS = ("20.10", "28")
# Where `./dev setup` links Docker 28's programs (and Debian 12's runc, which they work with).
DOCKER28_BIN = Path(__file__).resolve().parent.parent / ".cache" / "docker28" / "bin"
DOCKER28_PROGRAMS = ("dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy",
                     "docker", "runc")


def default_storage_driver() -> str:
    """overlay2 where the kernel has overlayfs (layers shared, quick builds), else vfs (copies)."""
    with open("/proc/filesystems") as known:
        return "overlay2" if any(line.split()[-1] == "overlay" for line in known) else "vfs"


def missing_docker28() -> str | None:
    """What is missing of Docker 28's programs, or None when `./dev setup` has put them all."""
    missing = [name for name in DOCKER28_PROGRAMS if not os.access(DOCKER28_BIN / name, os.X_OK)]
    if missing:
        return (f"Docker 28 is not installed: {', '.join(missing)} missing from {DOCKER28_BIN} "
                "(run ./dev setup, which unpacks Debian unstable's docker.io there)")
    return None


def unavailable_reason(version: str = "20.10") -> str | None:
    """Why a Docker engine cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to start a Docker engine in a namespace"
    for program in ("dockerd", "containerd", "nsenter", "ip"):
        if not shutil.which(program):
            return f"{program} is not installed (apt-get install docker.io iproute2)"
    if not shutil.which(DOCKER_CLI):
        return "the docker client is not installed (apt-get install docker.io)"
    if not BUSYBOX.exists():
        return "/bin/busybox is missing (apt-get install busybox-static)"
    return missing_docker28() if version == "28" else None


def run(argv: list[str], env: dict | None = None, check: bool = True,
        timeout: float = 120.0, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, input=stdin,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()}")
    return done


class EngineUnavailable(RuntimeError):
    """The daemons would not start here (the fixture turns this into a skip, with the log)."""


def all_at_once(*calls: Callable[[], object]) -> list:
    """Run the calls in threads of their own and wait for every one; their results, in order.

    What tests ask engines to do is mostly waiting (on daemons, runc, iptables), so two cores
    do several at once. A failure is raised only once every call has ended: what the others
    made is then in place for the caller's clean-up, never half-made behind its back.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    return [future.result() for future in futures]


def _wait_until(what: str, ready, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise EngineUnavailable(f"{what} exited during start-up")
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"{what} not ready within {timeout:g} s")
        time.sleep(0.1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child counts as gone; reap it if it is ours.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists()


def _end_process(pid: int, timeout: float) -> None:
    """SIGTERM this one pid, wait for it; SIGKILL it if it does not go."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.1)


class DockerEngine:
    """One dockerd + containerd pair living in its own network namespace."""

    def __init__(self, role: str = "e", storage_driver: str | None = None,
                 config: dict | None = None, own_plugins: bool = False,
                 version: str = "20.10"):
        if version not in DOCKER_VERSIONS:
            raise ValueError(f"no Docker {version} for tests; known: {', '.join(DOCKER_VERSIONS)}")
        self.version = version
        # 28's folder of links goes first on the daemons' PATH (containerd finds its shim and
        # the shim runc there, dockerd its docker-proxy); 20.10 is the machine's own.
        self.bin_dir = DOCKER28_BIN if version == "28" else None
        self.cli = str(DOCKER28_BIN / "docker") if self.bin_dir else DOCKER_CLI
        self.server_version = ""  # what the daemon says it is, once it answers
        self.tag = secrets.token_hex(3)
        self.config = config or {}  # the daemon.json it runs with
        self.storage_driver = storage_driver or default_storage_driver()
        self.netns = f"{PREFIX}{self.tag}-{role}"[:40]
        self.netns_made = False
        # Short path: unix sockets live under it and must stay below 108 characters.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.tag}-", dir="/tmp"))
        self.data_root = self.workdir / "data"
        self.exec_root = self.workdir / "exec"
        self.socket = self.workdir / "docker.sock"
        self.pidfile = self.workdir / "docker.pid"
        self.containerd_dir = self.workdir / "ctd"
        self.cgroup = f"{PREFIX}{self.tag}"
        self.dockerd: subprocess.Popen | None = None
        self.containerd: subprocess.Popen | None = None
        self.start_seconds = 0.0
        self.made_host_dirs: list[Path] = []
        # Where this engine's plugins put their sockets: its own folder, bind-mounted over
        # /run/docker/plugins in its mount namespace (kept by `mount_holder`), or the shared one.
        self.plugin_dir = self.workdir / "plugins" if own_plugins else HOST_DIRS[0]
        self.mount_holder: subprocess.Popen | None = None

    # --- what tests use -------------------------------------------------------------------

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def netns_dir(self) -> Path:
        """Where the engine keeps its sandboxes (its exec root's netns/ folder)."""
        return self.exec_root / "netns"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0,
               stdin: bytes | None = None) -> str:
        done = run([self.cli, "-H", self.host, *args], check=check, timeout=timeout,
                   stdin=stdin)
        return done.stdout.decode()

    def inspect(self, name: str) -> dict:
        return json.loads(self.docker("inspect", name))[0]

    def sandbox_key(self, container: str) -> str:
        return self.inspect(container)["NetworkSettings"]["SandboxKey"]

    def container_ip(self, container: str, network: str) -> str:
        return self.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"]

    def wait_until_serving(self, server: str, client: str | None = None,
                           deadline: float = 60.0) -> None:
        """Until the httpd in `server` answers on port 80, asked from `client` (or itself).

        A container's process starts listening a moment after `docker run` returns, and a
        name on a Swarm overlay reaches the other node by gossip: poll rather than guess.
        """
        address = server if client else "127.0.0.1"
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 80"
        end = time.monotonic() + deadline
        while "200 OK" not in self.docker("exec", client or server, "sh", "-c", request,
                                          check=False):
            if time.monotonic() > end:
                raise AssertionError(f"{server} did not answer {client or 'itself'} on port 80")
            time.sleep(0.2)

    def in_netns(self, command: str, check: bool = True) -> str:
        """Run a shell command inside the engine's host namespace."""
        done = run(["nsenter", f"--net={self.netns_path}", "sh", "-c", command], check=check)
        return done.stdout.decode()

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self.made_host_dirs = [d for d in HOST_DIRS if not d.exists()]
        try:
            self.create_netns()
            if self.plugin_dir != HOST_DIRS[0]:
                self._own_plugin_dir()
            self._start_containerd()
            self._start_dockerd()
        except EngineUnavailable as exc:
            log = self.log_tail()
            self.stop()
            raise EngineUnavailable(f"{exc}; dockerd's last words:\n{log}") from None
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def create_netns(self) -> None:
        """Make the engine's namespace now (to wire it up before `start`); idempotent."""
        if not self.netns_made:
            run(["ip", "netns", "add", self.netns])
            self.netns_made = True
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])

    def _own_plugin_dir(self) -> None:
        """A mount namespace in which this engine's plugin folder is /run/docker/plugins,
        kept by a process that waits there; the daemons are started in it."""
        self.plugin_dir.mkdir()
        HOST_DIRS[0].mkdir(parents=True, exist_ok=True)  # the mount point (made_host_dirs)
        self.mount_holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount --bind "$0" {HOST_DIRS[0]} && echo ready && exec sleep infinity',
             str(self.plugin_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        line = self.mount_holder.stdout.readline().decode().strip()
        if line != "ready":
            raise EngineUnavailable(f"no mount namespace of its own for the engine: {line}")

    def _enter(self) -> list[str]:
        """nsenter into the engine's namespaces: its network one, and its mount one if any."""
        mount = [f"--mount=/proc/{self.mount_holder.pid}/ns/mnt"] if self.mount_holder else []
        return ["nsenter", f"--net={self.netns_path}", *mount]

    @property
    def daemon_env(self) -> dict[str, str]:
        """The environment containerd and dockerd run with: 28's programs first on PATH."""
        if not self.bin_dir:
            return dict(os.environ)
        return {**os.environ, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}"}

    def _start_containerd(self) -> None:
        # Our own containerd: dockerd would otherwise share /run/containerd/containerd.sock
        # with any containerd already running on the host.
        self.containerd_dir.mkdir(parents=True)
        address = self.containerd_dir / "containerd.sock"
        config = self.containerd_dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.containerd_dir}/root"\n'
            f'state = "{self.containerd_dir}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]\n'
            f'[grpc]\n  address = "{address}"\n'
            f'[ttrpc]\n  address = "{address}.ttrpc"\n')
        with open(self.workdir / "containerd.log", "wb") as log:
            self.containerd = subprocess.Popen(
                [*self._enter(), "containerd", "--config", str(config)], env=self.daemon_env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_until("containerd", address.is_socket, START_TIMEOUT,
                    lambda: self.containerd.poll() is None)

    def _start_dockerd(self) -> None:
        config = self.workdir / "daemon.json"
        # Never the host's /etc/docker/daemon.json: the test's own configuration, or none.
        config.write_text(json.dumps(self.config) + "\n")
        with open(self.workdir / "dockerd.log", "wb") as log:
            self.dockerd = subprocess.Popen(
                [*self._enter(), "dockerd",
                 "--config-file", str(config),
                 "--containerd", str(self.containerd_dir / "containerd.sock"),
                 "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                 "-H", self.host, "--pidfile", str(self.pidfile),
                 f"--storage-driver={self.storage_driver}", f"--cgroup-parent=/{self.cgroup}",
                 "--shutdown-timeout=2"], env=self.daemon_env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_until("dockerd", self._answers, START_TIMEOUT, lambda: self.dockerd.poll() is None)
        if self.server_version.split(".")[0] != self.version.split(".")[0]:
            raise AssertionError(f"asked for Docker {self.version}, the daemon started is "
                                 f"{self.server_version}")

    def _answers(self) -> bool:
        if not self.socket.is_socket():
            return False
        done = run([self.cli, "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                   check=False, timeout=10)
        self.server_version = done.stdout.decode().strip()
        return done.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.workdir / "dockerd.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the daemons and remove everything the engine made. Safe to call twice."""
        if self.dockerd is not None and self.dockerd.poll() is None and self._answers():
            # Removing containers first makes the daemon's own shutdown quick.
            # In batches, each with its own timeout: one `rm -f` of bench/host.py's 1000
            # containers outlived 60 s, and its TimeoutExpired skipped the rest of the clean-up.
            ids = self.docker("ps", "-aq", check=False, timeout=30).split()
            for start in range(0, len(ids), 100):
                try:
                    self.docker("rm", "-f", *ids[start:start + 100], check=False, timeout=60)
                except subprocess.TimeoutExpired:
                    break  # the daemon's own shutdown below removes the rest
        if self.dockerd is not None:
            _end_process(self._dockerd_pid(), STOP_TIMEOUT)
        for proc in (self.dockerd, self.containerd):
            if proc is not None:
                _end_process(proc.pid, STOP_TIMEOUT)
                proc.wait()
        self._end_leftover_processes()
        if self.mount_holder is not None:  # its mount namespace, and what is mounted there, go
            _end_process(self.mount_holder.pid, STOP_TIMEOUT)
            self.mount_holder.wait()
            self.mount_holder.stdout.close()
            self.mount_holder = None
        self._unmount_everything()
        self._remove_cgroups()
        for folder in self.made_host_dirs:  # deepest first; only if empty (shared with others)
            _rmdir(folder)
        if self.netns_made:
            run(["ip", "netns", "del", self.netns], check=False)
            self.netns_made = False
        # rm is much quicker than shutil.rmtree on the image layers' many files.
        run(["rm", "-rf", "--one-file-system", str(self.workdir)], check=False)

    def _dockerd_pid(self) -> int:
        """The daemon's pid from its pid file (nsenter execs dockerd, so it is our child's)."""
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return self.dockerd.pid

    def _end_leftover_processes(self) -> None:
        """Shims and proxies of this engine that outlived it (found by its unique folder)."""
        marker = str(self.workdir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                _end_process(int(entry.name), 5)

    def _unmount_everything(self) -> None:
        prefix = str(self.workdir) + "/"
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        # /proc/mounts escapes spaces as \040; our paths have none. Deepest first.
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            run(["umount", "-l", point], check=False)

    def _remove_cgroups(self) -> None:
        if not CGROUP_ROOT.is_dir():
            return
        for controller in CGROUP_ROOT.iterdir():
            top = controller / self.cgroup
            if not top.is_dir():
                continue
            for folder in sorted((p for p in top.rglob("*") if p.is_dir()),
                                 key=lambda p: len(p.parts), reverse=True):
                _rmdir(folder)
            _rmdir(top)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # still busy or already gone: nothing of ours to force


@contextmanager
def running_engine(role: str = "e", config: dict | None = None, version: str = "20.10"):
    """A started engine with the busybox image, stopped and removed afterwards."""
    engine = DockerEngine(role, config=config, version=version)
    try:
        engine.start()
        build_busybox_image(engine)
        yield engine
    finally:
        engine.stop()


def build_busybox_image(engine: DockerEngine, tag: str = IMAGE) -> str:
    """Import a tiny image from Debian's static busybox (sh, ip, nc, httpd, nslookup...)."""
    engine.docker("import", "-c", 'CMD ["/bin/sh"]', "-", tag, stdin=busybox_tar())
    return tag


@cache
def busybox_tar() -> bytes:
    """The busybox image's root file system as a tar, made once a session (every engine of
    the session imports the same bytes)."""
    with tempfile.TemporaryDirectory(prefix=PREFIX) as folder:
        root = Path(folder) / "root"  # not the 0700 temporary folder: it becomes the image's /
        (root / "bin").mkdir(parents=True)
        for name in ("tmp", "www", "etc", "proc", "sys", "dev"):
            (root / name).mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        applets = run([str(BUSYBOX), "--list"]).stdout.decode().split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", root / "bin" / applet)
        (root / "www" / "index.html").write_text("netdiag test page\n")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        return run(["tar", "-C", str(root), "-c", "."]).stdout


# --- a two-node Swarm --------------------------------------------------------------------------


class Swarm:
    """Two engines in two namespaces, joined by a bridge in a third, as one Swarm.

    The underlay is 198.18.0.0/24 (the benchmarking range, so it never looks like anything
    real): node 1 is 198.18.0.1, node 2 198.18.0.2, both on eth0 of their namespace.
    """

    UNDERLAY = "198.18.0.{}/24"

    def __init__(self, underlay: str = UNDERLAY, version: str = "20.10"):
        self.UNDERLAY = underlay
        self.version = version
        self.tag = secrets.token_hex(3)
        self.switch = f"{PREFIX}{self.tag}-sw"
        self.nodes: list[DockerEngine] = []

    def address(self, node: int) -> str:
        return self.UNDERLAY.format(node + 1).split("/")[0]

    def start(self) -> None:
        try:
            run(["ip", "netns", "add", self.switch])
            run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
            for index in range(2):
                self._add_node(index)
            manager, worker = self.nodes
            manager.docker("swarm", "init", "--advertise-addr", self.address(0))
            token = manager.docker("swarm", "join-token", "-q", "worker").strip()
            worker.docker("swarm", "join", "--advertise-addr", self.address(1), "--token",
                          token, f"{self.address(0)}:2377")
        except BaseException:
            self.stop()
            raise

    def _add_node(self, index: int) -> None:
        engine = DockerEngine(f"n{index + 1}", version=self.version)
        self.nodes.append(engine)  # before anything can fail, so stop() removes it
        engine.create_netns()
        wire(self.switch, f"p{index + 1}", engine.netns, self.UNDERLAY.format(index + 1))
        engine.start()
        build_busybox_image(engine)

    def stop(self) -> None:
        overlays = set()
        for engine in self.nodes:
            if engine.dockerd is not None and engine.dockerd.poll() is None:
                overlays.update(engine.docker("network", "ls", "-q", "--no-trunc", "--filter",
                                              "driver=overlay", check=False).split())
        for engine in reversed(self.nodes):
            engine.stop()
        run(["ip", "netns", "del", self.switch], check=False)
        _remove_load_balancer_files(overlays)


def wire(switch: str, port: str, netns: str, address: str) -> None:
    """Join `netns` to the bridge br0 of the namespace `switch`: its eth0, with `address`
    (and a prefix), the other end `port` on br0."""
    run(["ip", "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
         "netns", netns])
    run(["ip", "-n", switch, "link", "set", port, "master", "br0", "up"])
    run(["ip", "-n", netns, "addr", "add", address, "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])


# dockerd 20.10 writes the hosts and resolv.conf of each overlay network's load-balancer sandbox
# under this fixed path, whatever its --data-root (a libnetwork default).
LB_FILES = Path("/var/lib/docker/network/files")


def _remove_load_balancer_files(network_ids: set[str]) -> None:
    for network_id in network_ids:
        shutil.rmtree(LB_FILES / f"lb_{network_id}", ignore_errors=True)
    # The folders above them only if now empty (another engine may be using them).
    for folder in (LB_FILES, LB_FILES.parent, LB_FILES.parent.parent):
        _rmdir(folder)


@contextmanager
def running_swarm(version: str = "20.10"):
    swarm = Swarm(version=version)
    try:
        swarm.start()
        yield swarm
    finally:
        swarm.stop()
