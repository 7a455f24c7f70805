"""Warm start: ``keras-sngan`` commands forked from a process that has imported TensorFlow once.

Starting Python and importing TensorFlow, Keras and this package takes about
6 s of CPU on a 2-core machine, paid by every ``keras-sngan`` process. A
pipeline runs dozens of them. With ``KERAS_SNGAN_WARM_START=1`` in the
environment (the Snakemake workflow sets it; ``warm_start`` in the config),
the ``keras-sngan`` console script does this instead:

1. It connects to a *warm server*: a process, private to this user, this
   Python, this version of the package's source and this exact environment,
   that has imported the libraries (and run no TensorFlow op: its runtime, its
   thread pools and its random state are untouched).
2. The server forks a child for the command. The child takes the client's
   standard input, output and error (passed over the Unix socket), working
   directory, environment, umask, niceness, CPU affinity and arguments, and runs
   ``keras_sngan.poster.cli.main`` exactly as a fresh process would. Nothing of an
   earlier command is in it: every child is forked from the server, never from
   another child.
3. The client waits and ends as the child ended: with its exit status, or
   killed by the same signal. SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and
   SIGUSR2 sent to the client are forwarded to the child; if the client dies,
   even by SIGKILL, the child kills itself at once (it watches the client's
   end of the socket), so killing a job kills its work as before.

If no server is running, the client starts one in the background and runs
its command the ordinary (cold) way; later commands find the server warm.
The server exits after ``KERAS_SNGAN_WARM_IDLE`` seconds (default 120)
without a command. Anything unusual falls back to a cold start, never to a
failure: no server yet, a server shutting down, a closed standard stream, a
backend other than TensorFlow (``KERAS_BACKEND``), or a SLURM job
(``SLURM_JOB_ID`` set: a server would live in one job's cgroup and be
killed with it), and so does everything when the socket's directory
(``$TMPDIR/keras-sngan-warm-<uid>``) is not this user's alone. Resource
limits (``ulimit``) and cgroups are the server's, not the client's.

The child's timing record (:mod:`keras_sngan.poster.plumbing.timing`) counts from
the client's start: its ``import`` phase is the client's start-up, and its
CPU seconds are the child's own plus the client's until the hand-over.
Snakemake's benchmark files measure the client process only (a few tenths of
a second of CPU); the timing records in the jobs' logs are the complete ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ENABLE = "KERAS_SNGAN_WARM_START"
IDLE = "KERAS_SNGAN_WARM_IDLE"
DEFAULT_IDLE_SECONDS = 120.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # keras_sngan/
# Shell bookkeeping that differs between otherwise identical jobs; everything else in the environment
# is part of a server's identity (a variable read at import time must match the client's).
_IGNORED_ENV = ("_", "PWD", "OLDPWD", "SHLVL")


def enabled(environ=None) -> bool:
    """Whether a command started with ``environ`` asks for, and may use, a warm start.

    Raises:
        ValueError: ``KERAS_SNGAN_WARM_START`` is not "0", "1" or empty, or
            ``KERAS_SNGAN_WARM_IDLE`` is not a number of seconds > 0.
    """
    environ = os.environ if environ is None else environ
    flag = environ.get(ENABLE, "")
    if flag not in ("", "0", "1"):
        raise ValueError(f"environment variable {ENABLE} must be 1 (warm start) or 0 / unset (cold), "
                         f"received {flag!r}.")
    idle = environ.get(IDLE, "")
    if idle:
        try:
            seconds = float(idle)
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"environment variable {IDLE} must be a number of seconds > 0 (the warm-start "
                             f"server's idle time before it exits), received {idle!r}.")
    return (flag == "1" and not environ.get("SLURM_JOB_ID")
            and environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow")


def _source_stamp() -> str:
    """The package's source files and their modification times (a changed file means a new server)."""
    parts = []
    for folder, _, files in os.walk(_PACKAGE_DIR):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts.append(f"{path}:{os.stat(path).st_mtime_ns}")
    return "\n".join(sorted(parts))


def socket_path(environ=None) -> str:
    """The Unix socket of the server that may run a command started with ``environ``."""
    environ = os.environ if environ is None else environ
    identity = json.dumps({
        "python": [sys.executable, sys.version],
        "source": _source_stamp(),
        "environment": sorted((k, v) for k, v in environ.items() if k not in _IGNORED_ENV),
    })
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"keras-sngan-warm-{os.getuid()}", f"{key}.sock")


# ----------------------------------------------------------------------------------------------- client


def _read_line(sock) -> bytes:
    """One ``\\n``-terminated message from ``sock`` (b"" if it closed first)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return b""
        data += chunk
    return data[:-1]


def start_server(path: str, environ=None) -> None:
    """Start a server for ``path`` in the background (it exits at once if another one holds the path).

    ``environ`` (default: this process's) must be the environment ``path`` was
    computed from (:func:`socket_path`).
    """
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # The console script's sys.path (its own directory first, not the working directory), the
    # package's parent last in case it is importable only from there; "/" as working directory
    # (each child moves to its client's).
    bootstrap = (f"import sys; sys.path[0] = {os.path.dirname(sys.executable)!r}; "
                 f"sys.path.append({os.path.dirname(_PACKAGE_DIR)!r}); "
                 "from keras_sngan.poster.warm_start import main; sys.exit(main(sys.argv[1:]))")
    subprocess.Popen(
        [sys.executable, "-c", bootstrap, path], cwd="/", env=dict(os.environ if environ is None else environ),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def ensure_server(environ=None, timeout: float = 120.0) -> str:
    """Start a server for commands started with ``environ`` unless one runs, and wait until it answers.

    Returns its socket path. Commands never need this (the first one starts
    a server and runs cold); it is for warming up ahead of a batch of commands.

    Raises:
        TimeoutError: the server did not answer within ``timeout`` seconds.
    """
    environ = dict(os.environ if environ is None else environ)
    path = socket_path(environ)
    deadline = time.monotonic() + timeout
    started = False
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
                return path
            except OSError:
                pass
        if not started:
            start_server(path, environ)
            started = True
        if time.monotonic() > deadline:
            raise TimeoutError(f"ensure_server: no warm-start server answered on {path} within {timeout} s.")
        time.sleep(0.1)


def run(argv: list[str]) -> int | None:
    """Run ``keras-sngan argv`` in a child of the warm server; None: run it here, cold.

    Returns the child's exit status, or does not return (the child was killed
    by a signal: this process dies by the same signal).
    """
    if not enabled():
        return None
    path = socket_path()
    if not _private_directory(os.path.dirname(path)):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:  # no server (yet): start one for the next commands, run this one cold
        sock.close()
        start_server(path)
        return None
    from keras_sngan.poster.plumbing import timing

    so_far = timing.record("warm-start client")  # this process's seconds until the hand-over
    wall, cpu = so_far["wall_s"], so_far["cpu_s"]
    header = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ),
                         "umask": _current_umask(), "nice": os.getpriority(os.PRIO_PROCESS, 0),
                         "cpus": sorted(os.sched_getaffinity(0)), "client_wall_s": wall,
                         "client_cpu_s": cpu}).encode()
    try:
        socket.send_fds(sock, [len(header).to_bytes(8, "big")], [0, 1, 2])
        sock.sendall(header)
        accepted = _read_line(sock)
    except OSError:  # a closed standard stream, or the server is going away: cold
        sock.close()
        return None
    if not accepted.startswith(b"pid "):  # the server closed without forking: nothing ran, run cold
        sock.close()
        return None

    def forward(signum, frame):
        try:
            sock.sendall(int(signum).to_bytes(4, "big"))
        except OSError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    status = _read_line(sock)
    sock.close()
    kind, _, number = status.decode().partition(" ")
    if kind == "exit":
        return int(number)
    if kind == "signal":
        signum = int(number)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    print("keras-sngan: the warm-start server ended before the command did (no exit status); "
          f"rerun with {ENABLE}=0 for a cold start.", file=sys.stderr, flush=True)
    return 1


def _private_directory(folder: str) -> bool:
    """Whether ``folder`` is missing (a server will create it) or this user's alone (mode 700)."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return True
    return info.st_uid == os.getuid() and not info.st_mode & 0o077


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------- server


def _warm_up() -> None:
    """Import what the commands import, without running a TensorFlow op."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401  (and the backend: TensorFlow)
    import tensorflow as tf

    import keras_sngan.poster.cli  # noqa: F401
    from keras_sngan import datasets, metrics, models, wgan  # noqa: F401
    from keras_sngan.poster.judging import claims  # noqa: F401
    from keras_sngan.poster.plumbing import io  # noqa: F401
    from keras_sngan.poster.reporting import figures, gradient_flow  # noqa: F401
    from keras_sngan.poster.running import lipschitz_activations, overfitting, training, variance  # noqa: F401

    # The runtime must still be uninitialized: a child sizes its thread pools before its first op.
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    tf.config.threading.set_intra_op_parallelism_threads(threads)


def _recv_exactly(conn, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    return data


def _send(conn, message: str) -> None:
    try:
        conn.sendall(message.encode() + b"\n")
    except OSError:  # the client is gone
        pass


def serve(path: str, idle_seconds: float) -> int:
    """Accept commands on ``path`` until ``idle_seconds`` pass without one; 0 if another server has it."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if not _private_directory(os.path.dirname(path)):
        return 0
    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0
    _warm_up()
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(128)
    children: dict[int, socket.socket] = {}
    last_busy = time.monotonic()
    while True:
        while children:  # report each finished child's status to its client
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                code = os.waitstatus_to_exitcode(status)
                _send(conn, f"exit {code}" if code >= 0 else f"signal {-code}")
                conn.close()
        if children:
            last_busy = time.monotonic()
        elif time.monotonic() - last_busy > idle_seconds:
            break
        if not select.select([listener], [], [], 0.05)[0]:
            continue
        conn, _ = listener.accept()
        fds = []
        try:
            conn.settimeout(10)
            message, fds, _, _ = socket.recv_fds(conn, 8, 3)
            if len(message) != 8 or len(fds) != 3:
                raise ConnectionError("expected a length and three file descriptors")
            request = json.loads(_recv_exactly(conn, int.from_bytes(message, "big")))
            conn.settimeout(None)
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            _child(conn, fds, request, [listener, lock, *children.values()])
        for fd in fds:
            os.close(fd)
        children[pid] = conn
        _send(conn, f"pid {pid}")
        last_busy = time.monotonic()
    # Stop listening first: a client still in the backlog then sees the socket close
    # without a "pid" answer and runs cold.
    os.unlink(path)
    listener.close()
    os.unlink(path + ".lock")  # still held: a server starting now locks a new file, and binds a new socket
    return 0


def _watch_client(conn) -> None:
    """In the child: die with the client (EOF), take the signals it forwards."""
    while True:
        try:
            data = conn.recv(4)
        except OSError:
            data = b""
        if len(data) < 4:
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), int.from_bytes(data, "big"))


def _child(conn, fds, request, inherited) -> None:
    """Run one command as the client's process would; never returns to the server's loop.

    The child ends with the command's status (see :func:`_exit`); an uncaught
    exception prints its traceback and gives status 1, as in a cold process.
    """
    code = 1
    try:
        for handle in inherited:
            handle.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        try:  # the client's scheduling: `nice`, `taskset` (more priority than the server's needs privileges)
            os.setpriority(os.PRIO_PROCESS, 0, request["nice"])
        except OSError:
            pass
        os.sched_setaffinity(0, request["cpus"])
        sys.argv = ["keras-sngan", *request["argv"]]
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        threading.Thread(target=_watch_client, args=(conn,), daemon=True, name="warm-start-client").start()
        from keras_sngan.poster.cli import main
        from keras_sngan.poster.plumbing import timing

        timing.started_before_this_process(request["client_wall_s"], request["client_cpu_s"])
        code = main(request["argv"])
    except SystemExit as stop:
        code = stop.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:  # as Python does: the traceback, then death by SIGINT
        import traceback

        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001  (as an uncaught exception ends a process: traceback, status 1)
        import traceback

        traceback.print_exc()
        code = 1
    _exit(0 if code is None else int(code))


def _exit(code: int) -> None:
    """End the child as a cold process ends, without tearing down the interpreter.

    ``atexit`` handlers run, files no longer referenced are closed (flushed)
    by a garbage collection and the standard streams are flushed; then
    ``os._exit``. Python's own teardown of a process with TensorFlow loaded
    takes about 1.3 s on this 2-core machine and writes nothing.
    """
    import atexit
    import gc

    try:
        atexit._run_exitfuncs()
        gc.collect()
    finally:
        _flush()
        os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


def main(argv: list[str]) -> int:
    """``python -c ... main([socket_path])``: serve on the path (how :func:`start_server` starts a server)."""
    idle = os.environ.get(IDLE, "")  # checked by the client (`enabled`) before it started this server
    return serve(argv[0], float(idle) if idle else DEFAULT_IDLE_SECONDS)
