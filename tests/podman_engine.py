"""A real Podman inside a network namespace: Debian 12's 4.3 (netavark on iptables), or 5.8
(netavark on nftables) from the Debian unstable chroot `./dev test` makes in .cache/podman5.

`PodmanEngine` keeps every podman call inside a namespace `ndt-pm-<random>` created for it and
inside a long-lived private mount namespace of its own (a `sleep` started by `unshare`, the
"holder"), in which tmpfs folders cover the fixed paths Podman writes whatever its options say:
/run/netns (its containers' namespace files), /run/containers (aardvark-dns's configuration),
/run/runc (runc's state) and /var/lib/containers (an image cache). Storage, run state, temporary
files, events and network definitions are under the engine's own folder (`--root`, `--runroot`,
`--tmpdir`, `--network-config-dir`, a containers.conf of its own), so engines in parallel never
meet and the host's root namespace, its /run and its /etc/containers are never touched.

This VM refuses Podman's default ulimits (nofile 1048576): the containers.conf sets
`default_ulimits` to nofile 1024 and nproc 4096. No registry is reachable: the one image the
tests use is imported from Debian's busybox-static by tests/docker_engine.py's
build_busybox_image (`podman import` takes `docker import`'s arguments).

`start_service` runs `podman system service --time=0 unix://<folder>/podman.sock` in the same
namespaces — a process the test started, stopped by its pid by `stop_service` or `stop()`.
`stop()` removes the containers and pods, ends every process left in the holder's mount
namespace (conmon, aardvark-dns, the service: all started through it) and the holder itself,
removes the containers' cgroups, the namespace and the folder; it is called in `finally`
blocks, so a failing test cleans up too.

Podman 5 (`generation=5`) needs a newer glibc than Debian 12's: every call runs as
`nsenter -t HOLDER -m --net=NS chroot .cache/podman5 podman ...`. In the holder's mount namespace
the chroot is a mount point of its own (runc makes its root's mounts slaves: a plain folder is
refused with EINVAL) with /proc, /sys and /dev, tmpfs on its /run, /tmp and /var/lib/containers,
and the engine's folder bound at the same path inside, so the API socket, the configuration
and the storage have one path inside and out. The chroot's runc runs the containers (no crun
there), and netavark writes `table inet netavark` (firewall_driver nftables). Everything
mounted dies with the holder.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.docker_engine import (
    BUSYBOX,
    CGROUP_ROOT,
    EngineUnavailable,
    _end_process,
    _rmdir,
    _wait_until,
    build_busybox_image,
    run,
)

PREFIX = "ndt-pm-"
IMAGE = "localhost/ndt-busybox:1"  # what build_busybox_image's "ndt-busybox:1" is called
PODMAN = "/usr/bin/podman"
# Podman 5's Debian unstable chroot, made by `./dev test` (install_podman5).
PODMAN5_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "podman5"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Fixed paths Podman 4.3 (rootful) writes under whatever --root/--runroot say; each is covered
# by a tmpfs in the holder's mount namespace (made on the host first when missing, and removed
# afterwards when still empty).
PRIVATE_DIRS = (Path("/run/netns"), Path("/run/containers"), Path("/run/runc"),
                Path("/var/lib/containers"))
# The cgroup parent Podman gives containers with the cgroupfs manager.
CGROUP_PARENT = "libpod_parent"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
{engine_extra}
[network]
network_backend = "netavark"
network_config_dir = "{networks}"
{network_extra}"""
# Podman 5's additions: the chroot has runc (Podman 5 prefers crun), and netavark's firewall
# said outright.
PODMAN5_ENGINE = 'runtime = "runc"\n'
PODMAN5_NETWORK = 'firewall_driver = "nftables"\n'

STORAGE_CONF = """\
[storage]
driver = "{driver}"
graphroot = "{root}"
runroot = "{runroot}"
"""


def unavailable_reason(generation: int = 4) -> str | None:
    """Why a Podman engine of this generation cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to run Podman in a namespace"
    if generation == 5:
        if not (PODMAN5_ROOT / ".installed").exists():
            return f"no Podman 5 chroot in {PODMAN5_ROOT} (./dev setup makes it)"
        return _tools_missing()
    if not os.access(PODMAN, os.X_OK):
        return "podman is not installed (apt-get install podman netavark aardvark-dns)"
    for program in ("/usr/lib/podman/netavark", "/usr/lib/podman/aardvark-dns"):
        if not os.access(program, os.X_OK):
            return f"{program} is missing (apt-get install netavark aardvark-dns)"
    if not shutil.which("catatonit"):  # a pod's infra container runs it
        return "catatonit is not installed (apt-get install catatonit)"
    return _tools_missing()


def _tools_missing() -> str | None:
    for program in ("nsenter", "unshare", "ip"):
        if not shutil.which(program):
            return f"{program} is not installed (apt-get install util-linux iproute2)"
    if not BUSYBOX.exists():
        return "/bin/busybox is missing (apt-get install busybox-static)"
    return None


def _storage_driver() -> str:
    with open("/proc/filesystems") as known:
        return "overlay" if any(line.split()[-1] == "overlay" for line in known) else "vfs"


class PodmanEngine:
    """Podman (and, when started, its API service) living in its own network namespace."""

    def __init__(self, role: str = "e", generation: int = 4):
        self.generation = generation
        self.tag = secrets.token_hex(3)
        self.netns = f"{PREFIX}{self.tag}-{role}"[:40]
        self.netns_made = False
        # Short path: the API socket lives under it and must stay below 108 characters.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.tag}-", dir="/tmp"))
        self.root = self.workdir / "root"
        self.runroot = self.workdir / "run"
        self.tmpdir = self.workdir / "tmp"
        self.networks = self.workdir / "networks"
        self.containers_conf = self.workdir / "containers.conf"
        self.storage_conf = self.workdir / "storage.conf"
        self.socket = self.workdir / "podman.sock"
        self.holder: subprocess.Popen | None = None
        self.service: subprocess.Popen | None = None
        self.made_host_dirs: list[Path] = []
        self.container_ids: set[str] = set()
        self.version = ""

    # --- what tests use -------------------------------------------------------------------

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """The environment podman runs with (and netdiag, to read it by its command line)."""
        return {**os.environ, "CONTAINERS_CONF": str(self.containers_conf),
                "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
                "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}  # Podman 5 on this VM's cgroup v1

    def enter(self) -> list[str]:
        """nsenter into the engine's mount and network namespaces."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", f"--net={self.netns_path}"]

    def podman_argv(self, *args: str) -> list[str]:
        program = ["chroot", str(PODMAN5_ROOT), PODMAN] if self.generation == 5 else [PODMAN]
        return [*self.enter(), *program, "--root", str(self.root), "--runroot", str(self.runroot),
                "--tmpdir", str(self.tmpdir), "--network-config-dir", str(self.networks),
                "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--network-backend", "netavark", *args]

    def podman(self, *args: str, check: bool = True, timeout: float = 120.0,
               stdin: bytes | None = None) -> str:
        done = run(self.podman_argv(*args), env=self.env, check=check, timeout=timeout,
                   stdin=stdin)
        return done.stdout.decode()

    # Podman's command line takes Docker's verbs: helpers shared with tests/docker_engine.py
    # (build_busybox_image) call it by this name.
    docker = podman

    def run_container(self, name: str, *args: str) -> str:
        """`podman run -d --name NAME ARGS...`; the container's id."""
        cid = self.podman("run", "-d", "--name", name, *args).strip()
        self.container_ids.add(cid)
        return cid

    def inspect(self, name: str) -> dict:
        return json.loads(self.podman("inspect", name))[0]

    def pid_of(self, container: str) -> int:
        return int(self.inspect(container)["State"]["Pid"])

    def container_ip(self, container: str, network: str) -> str:
        return self.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"]

    def exec(self, container: str, command: str, check: bool = False) -> str:
        """A shell command in a container's namespace (output, errors included). Podman 5 in
        the chroot: `podman exec` runs the command in the chroot's own files (dash's sh, no
        busybox), so a probe container joins the container's namespace (or its pod) instead."""
        if self.generation == 5:
            pod = self.inspect(container).get("Pod")
            joins = ["--pod", pod] if pod else ["--network", f"container:{container}"]
            # NET_RAW for ping: Podman 5 grants it no more, and the namespace it joins keeps
            # the kernel's ping_group_range (no ICMP sockets).
            argv = self.podman_argv("run", "--rm", "--cap-add", "NET_RAW", *joins, IMAGE,
                                    "sh", "-c", command)
        else:
            argv = self.podman_argv("exec", container, "sh", "-c", command)
        done = run(argv, env=self.env, check=check, timeout=60)
        return done.stdout.decode() + done.stderr.decode()

    def in_netns(self, command: str, check: bool = True, stdin: bytes | None = None) -> str:
        """Run a shell command inside the engine's host namespace (not its mount namespace)."""
        done = run(["nsenter", f"--net={self.netns_path}", "sh", "-c", command], check=check,
                   stdin=stdin)
        return done.stdout.decode()

    def wait_until_serving(self, server: str, deadline: float = 30.0) -> None:
        """Until the httpd in `server` answers itself on port 80 (it starts a moment late)."""
        request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 80"
        end = time.monotonic() + deadline
        while "200 OK" not in self.exec(server, request):
            if time.monotonic() > end:
                raise AssertionError(f"{server} did not answer on port 80")
            time.sleep(0.2)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        try:
            run(["ip", "netns", "add", self.netns])
            self.netns_made = True
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            for folder in (self.root, self.runroot, self.tmpdir, self.networks):
                folder.mkdir()
            five = self.generation == 5
            self.containers_conf.write_text(CONTAINERS_CONF.format(
                networks=self.networks, engine_extra=PODMAN5_ENGINE if five else "",
                network_extra=PODMAN5_NETWORK if five else ""))
            self.storage_conf.write_text(STORAGE_CONF.format(
                driver=_storage_driver(), root=self.root, runroot=self.runroot))
            self._start_holder()
            self.version = self.podman("version", "--format", "{{.Client.Version}}").strip()
        except BaseException:
            self.stop()
            raise

    def _start_holder(self) -> None:
        """The private mount namespace every podman call enters, kept by a waiting process."""
        if self.generation == 5:
            mounts = _chroot_mounts(PODMAN5_ROOT, self.workdir)
        else:
            self.made_host_dirs = [d for d in PRIVATE_DIRS if not d.exists()]
            for folder in self.made_host_dirs:
                folder.mkdir(parents=True)  # a mount point; removed afterwards when empty
            mounts = " && ".join(f"mount -t tmpfs -o mode=0755 ndt-podman {d}"
                                 for d in PRIVATE_DIRS)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"{mounts} && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        line = self.holder.stdout.readline().decode().strip()
        if line != "ready":
            raise EngineUnavailable(f"no private mount namespace for Podman: {line}")

    def start_service(self) -> None:
        """`podman system service` on the engine's socket, in its namespaces, until stopped."""
        with open(self.workdir / "service.log", "wb") as log:
            self.service = subprocess.Popen(
                self.podman_argv("system", "service", "--time=0", self.url), env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_until("podman system service", self._answers, START_TIMEOUT,
                    lambda: self.service.poll() is None)

    def _answers(self) -> bool:
        if not self.socket.is_socket():
            return False
        done = run(["curl", "-sf", "--unix-socket", str(self.socket), "http://d/_ping"],
                   check=False, timeout=10)
        return done.returncode == 0

    def stop_service(self) -> None:
        if self.service is not None:
            _end_process(self.service.pid, STOP_TIMEOUT)
            self.service.wait()
            self.service = None
        self.socket.unlink(missing_ok=True)

    def stop(self) -> None:
        """Remove the containers, end every process of the engine, remove what it made.
        Safe to call twice."""
        if self.holder is not None and self.holder.poll() is None:
            # Every container's and pod's id (infra containers too): their cgroups are removed
            # by these names below.
            self.container_ids.update(self.podman("ps", "-aq", "--no-trunc", check=False).split())
            self.container_ids.update(self.podman("pod", "ps", "-q", "--no-trunc",
                                                  check=False).split())
            self.podman("pod", "rm", "-af", "-t", "0", check=False, timeout=60)
            self.podman("rm", "-af", "-t", "0", check=False, timeout=60)
        self.stop_service()
        if self.holder is not None:
            self._end_processes_in_holder()
            _end_process(self.holder.pid, STOP_TIMEOUT)
            self.holder.wait()
            self.holder.stdout.close()
            self.holder = None
        self._remove_cgroups()
        for folder in reversed(self.made_host_dirs):  # only if empty (shared with others)
            _rmdir(folder)
        self.made_host_dirs = []
        if self.netns_made:
            run(["ip", "netns", "del", self.netns], check=False)
            self.netns_made = False
        run(["rm", "-rf", "--one-file-system", str(self.workdir)], check=False)

    def _end_processes_in_holder(self) -> None:
        """conmon, aardvark-dns and whatever else outlived `rm`: every process in the holder's
        mount namespace was started through it, by this engine."""
        try:
            mine = os.stat(f"/proc/{self.holder.pid}/ns/mnt").st_ino
        except OSError:
            return
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.holder.pid:
                continue
            try:
                if os.stat(entry / "ns" / "mnt").st_ino != mine:
                    continue
            except OSError:
                continue
            _end_process(int(entry.name), 5)

    def _remove_cgroups(self) -> None:
        """The cgroups Podman made for this engine's containers (libpod_parent/libpod-<id>),
        and conmon's folder and libpod_parent when no other engine still uses them."""
        if not CGROUP_ROOT.is_dir():
            return
        for controller in CGROUP_ROOT.iterdir():
            parent = controller / CGROUP_PARENT
            if not parent.is_dir():
                continue
            for pattern in (*(f"*{cid}*" for cid in self.container_ids), "conmon"):
                for folder in sorted(parent.glob(pattern), key=lambda p: len(p.parts),
                                     reverse=True):
                    for inner in sorted((p for p in folder.rglob("*") if p.is_dir()),
                                        key=lambda p: len(p.parts), reverse=True):
                        _rmdir(inner)
                    _rmdir(folder)
            _rmdir(parent)


def _chroot_mounts(chroot: Path, workdir: Path) -> str:
    """The shell commands that ready the chroot in the holder's mount namespace."""
    inside = f"{chroot}{workdir}"
    return " && ".join((
        f"mkdir -p {chroot}/var/lib/containers",  # debootstrap's chroot has none
        f"mount --bind {chroot} {chroot}",
        f"mount -t proc proc {chroot}/proc",
        f"mount --rbind /sys {chroot}/sys",
        f"mount --rbind /dev {chroot}/dev",
        *(f"mount -t tmpfs -o mode=0755 ndt-podman {chroot}{d}"
          for d in ("/run", "/tmp", "/var/lib/containers")),
        f"mkdir -p {inside}",
        f"mount --bind {workdir} {inside}"))


@contextmanager
def running_podman(role: str = "e", service: bool = True, generation: int = 4):
    """A started Podman with the busybox image (and its API service), removed afterwards."""
    engine = PodmanEngine(role, generation)
    try:
        engine.start()
        build_busybox_image(engine)
        if service:
            engine.start_service()
        yield engine
    finally:
        engine.stop()


# --- rootless --------------------------------------------------------------------------------

ROOTLESS_UID = 23456  # a user that exists only in the rootless engine's mount namespace
ROOTLESS_USER = "ndt-rootless"
ROOTLESS_SUBIDS = "200000:65536"  # its subordinate uids and gids (/etc/subuid, /etc/subgid)


def rootless_unavailable_reason() -> str | None:
    """Why a rootless Podman 4 cannot be started here, or None when it can."""
    reason = unavailable_reason(4)
    if reason:
        return reason
    for program in ("/usr/bin/newuidmap", "/usr/bin/newgidmap", "/usr/bin/slirp4netns"):
        if not os.access(program, os.X_OK):
            return f"{program} is missing (apt-get install uidmap slirp4netns)"
    for name in ("passwd", "group", "subuid", "subgid"):
        if not Path(f"/etc/{name}").is_file():  # bound over in the engine's mount namespace
            return f"/etc/{name} is missing"
    if not shutil.which("setpriv"):
        return "setpriv is not installed (apt-get install util-linux)"
    try:
        pwd.getpwuid(ROOTLESS_UID)
    except KeyError:
        return None
    return f"uid {ROOTLESS_UID} is a user of this host: the rootless engine's is not free"


class RootlessPodman:
    """Podman 4.3 run by an unprivileged user, as on a desktop: its containers' namespaces are
    the user's, joined to the network by slirp4netns (user-mode networking), not by a bridge.

    The user exists only in a private mount namespace (the holder's), where copies of
    /etc/passwd, /etc/group, /etc/subuid and /etc/subgid that name it are bound over the
    host's, and where a tmpfs on /dev/net holds a /dev/net/tun node the user may open (this
    VM's own is root's alone, mode 0600; slirp4netns needs it). Every podman call, and the API
    service, runs as that user (setpriv) inside the holder's mount namespace and the engine's
    network namespace, so slirp4netns's traffic starts there, never in the root namespace;
    the user's storage, runtime folder and configuration are under the engine's folder.
    `stop()` removes the containers, ends every process of the user (conmon, slirp4netns,
    rootlessport, the service and Podman's pause process: all started through this engine,
    the uid being no user of the host), the holder, the namespace and the folder."""

    def __init__(self, role: str = "rl"):
        self.tag = secrets.token_hex(3)
        self.netns = f"{PREFIX}{self.tag}-{role}"[:40]
        self.netns_made = False
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.tag}-", dir="/tmp"))
        self.home = self.workdir / "home"
        self.runtime = self.workdir / "run"  # the user's XDG_RUNTIME_DIR
        self.socket = self.runtime / "podman" / "podman.sock"
        self.holder: subprocess.Popen | None = None
        self.service: subprocess.Popen | None = None
        self.container_ids: set[str] = set()

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def podman_argv(self, *args: str) -> list[str]:
        user = str(ROOTLESS_UID)
        return ["nsenter", "-t", str(self.holder.pid), "-m", f"--net={self.netns_path}",
                "setpriv", "--reuid", user, "--regid", user, "--clear-groups", "env", "-i",
                f"HOME={self.home}", f"XDG_RUNTIME_DIR={self.runtime}", f"USER={ROOTLESS_USER}",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
                PODMAN, "--storage-driver", "vfs", *args]

    def podman(self, *args: str, check: bool = True, timeout: float = 120.0,
               stdin: bytes | None = None) -> str:
        return run(self.podman_argv(*args), check=check, timeout=timeout,
                   stdin=stdin).stdout.decode()

    docker = podman  # build_busybox_image calls it by Docker's name

    def run_container(self, name: str, *args: str) -> str:
        cid = self.podman("run", "-d", "--name", name, *args).strip()
        self.container_ids.add(cid)
        return cid

    def start(self) -> None:
        try:
            run(["ip", "netns", "add", self.netns])
            self.netns_made = True
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            self.workdir.chmod(0o755)  # the user walks through it to its home
            etc = self.workdir / "etc"
            etc.mkdir()
            entry = f"{ROOTLESS_USER}:{ROOTLESS_SUBIDS}\n"
            for name, own in (("passwd", f"{ROOTLESS_USER}:x:{ROOTLESS_UID}:{ROOTLESS_UID}::"
                                         f"{self.home}:/bin/sh\n"),
                              ("group", f"{ROOTLESS_USER}:x:{ROOTLESS_UID}:\n"),
                              ("subuid", entry), ("subgid", entry)):
                (etc / name).write_text(Path(f"/etc/{name}").read_text() + own)
            conf = self.home / ".config" / "containers" / "containers.conf"
            conf.parent.mkdir(parents=True)
            conf.write_text(CONTAINERS_CONF.format(networks=self.home / "networks",
                                                   engine_extra="", network_extra=""))
            self.runtime.mkdir(mode=0o700)
            self.socket.parent.mkdir()
            for path in (self.home, *self.home.rglob("*"), self.runtime, self.socket.parent):
                os.chown(path, ROOTLESS_UID, ROOTLESS_UID)
            mounts = " && ".join((
                *(f"mount --bind {etc / name} /etc/{name}"
                  for name in ("passwd", "group", "subuid", "subgid")),
                "mount -t tmpfs -o mode=0755 ndt-podman /dev/net",
                "mknod -m 0666 /dev/net/tun c 10 200"))
            self.holder = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f"{mounts} && echo ready && exec sleep infinity"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            line = self.holder.stdout.readline().decode().strip()
            if line != "ready":
                raise EngineUnavailable(f"no private mount namespace for rootless Podman: {line}")
        except BaseException:
            self.stop()
            raise

    def start_service(self) -> None:
        with open(self.workdir / "service.log", "wb") as log:
            self.service = subprocess.Popen(
                self.podman_argv("system", "service", "--time=0", self.url), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until("rootless podman system service", self.socket.is_socket,
                        START_TIMEOUT, lambda: self.service.poll() is None)
        except EngineUnavailable as exc:
            log = (self.workdir / "service.log").read_text(errors="replace")
            raise EngineUnavailable(f"{exc}: {log.strip()[-500:]}") from None

    def stop(self) -> None:
        """Safe to call twice."""
        if self.holder is not None and self.holder.poll() is None:
            self.podman("rm", "-af", "-t", "0", check=False, timeout=60)
        if self.service is not None:
            _end_process(self.service.pid, STOP_TIMEOUT)
            self.service.wait()
            self.service = None
        for pid in self._users_processes():
            _end_process(pid, 1)  # Podman's pause process (catatonit) ignores SIGTERM
        if self.holder is not None:
            _end_process(self.holder.pid, STOP_TIMEOUT)
            self.holder.wait()
            self.holder.stdout.close()
            self.holder = None
        if self.netns_made:
            run(["ip", "netns", "del", self.netns], check=False)
            self.netns_made = False
        run(["rm", "-rf", "--one-file-system", str(self.workdir)], check=False)

    @staticmethod
    def _users_processes() -> list[int]:
        """The processes of the engine's user (it is no user of the host: each is this
        engine's)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == ROOTLESS_UID:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found
