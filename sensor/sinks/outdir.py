"""The output directory of a run: what otsensor owns in it, and replacing the previous run's results whole.

A run claims DIR (one run at a time: a lock on the directory), writes
everything into a staging directory inside it (``.otsensor-staging``) and, at
the end, moves each file into DIR: renames on one file system, so a large
output is never copied and never held twice once the run is over.  The files
of the previous run that this run did not write (the S7 logs after a
Modbus-only run) are removed in the same step.  ``summary.json`` moves last.

Readers (a dashboard, a SIEM shipper, the web console) therefore see the
previous run's complete results until the new run has finished, and then the
new run's: never a half-written file, and a mix of two runs only for the
milliseconds of the swap, which the marker announces.  The marker
(``.otsensor-output``, JSON) names DIR as an otsensor output and says which
results it holds: ``run``, the number of runs written there, and ``state``:
``complete`` (with the ``files`` of that run),
``swapping`` while a finished run is being moved in, or ``empty``.  A reader
that must never see two runs at once reads the marker before and after reading
the files and retries when ``run`` changed or ``state`` was not ``complete``.

A run that crashes (or is killed) before its end leaves the previous run's
results as they were; its own partial files stay in the staging directory,
which the next run clears.  Ctrl-C is not a crash: the run stops reading and
writes complete results for what it read, marked ``interrupted`` in
``summary.json``.  The staged files are flushed to disk before they are moved
in, and the directory after, so a power cut does not leave renamed but empty
files either.

Ownership is declared, not guessed: the marker's file list, every
``<log>.jsonl`` a run can write (and its rotated forms), the documents and
directories below.  Anything else in DIR is foreign: a run refuses to write
there unless forced, and never deletes it.  The syslog spool is owned but
kept: it holds messages for the receiver that the next run delivers first.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from otsensor.sensor import __version__

MARKER = ".otsensor-output"
STAGING = ".otsensor-staging"
SPOOL = "spool"
SUMMARY = "summary.json"
SENSOR_LOGS = ("conn", "alerts", "sink_drops")    # the logs the sensor writes itself (records add theirs)
DOCUMENTS = frozenset({"assets.json", "graph.json", "graph.graphml", SUMMARY, "stats.json"})
DIRECTORIES = frozenset({"zeek"})                  # written whole by a run, replaced whole
STATE = "state"                                    # `otsensor run`'s checkpoints (sensor/checkpoint.py)
KEPT = frozenset({SPOOL, STATE})                   # owned, but carried over from run to run
# what `otsensor run --learn` learned (sensor/learning.py): kept too, a restart must not forget it
LEARNED = re.compile(r"baseline(?:-\d{8})?\.json")
# <log>.jsonl, and rotated: <log>.<stamp>.jsonl or <log>.jsonl.<n>, optionally compressed
LOG_FILE = re.compile(r"(?P<log>[a-z0-9_]+)(?:\.[0-9A-Za-z:_-]+)?\.jsonl(?:\.\d+)?(?:\.gz)?")
SHOWN_FOREIGN = 5
SYNC_THREADS = 16   # concurrent fsyncs of the staged files, committed together by the file system


class OutputError(Exception):
    """The output directory cannot be used; the message starts with its path."""


def known_logs() -> frozenset[str]:
    """Every log a run can write: the sensor's own and each record class's ``LOG``."""
    from otsensor.dissectors.base import Record
    from otsensor.dissectors.registry import default_registry

    default_registry()   # imports every protocol package, so every record class is defined
    import otsensor.dissectors.arp  # noqa: F401  (ARP is decoded per frame, not registered)
    logs = set(SENSOR_LOGS)
    pending = [Record]
    while pending:
        cls = pending.pop()
        if isinstance(cls.LOG, str):   # (a worker's record view, sensor/parallel/events.py, has its log per record)
            logs.add(cls.LOG)
        pending.extend(cls.__subclasses__())
    logs.discard(Record.LOG)
    return frozenset(logs)


class OutputDir:
    """A claimed output directory; use :meth:`claim`, then write into ``staging`` and :meth:`commit`."""

    def __init__(self, path: str, lock_fd: int, marker: dict[str, Any] | None, force: bool,
                 keep: frozenset[str], created: bool) -> None:
        self.path = path
        self.staging = os.path.join(path, STAGING)
        self._lock_fd: int | None = lock_fd
        self._previous = frozenset(marker.get("files", ())) if marker else frozenset()
        self._marked = marker is not None
        self._keep = KEPT | keep
        self._created = created
        self._logs = known_logs()
        # numbers this run in the marker, for readers that compare: a count, so that the same captures
        # always give the same files (a clock would not)
        self.run = (marker.get("run") if marker and isinstance(marker.get("run"), int) else 0) + 1
        self.committed = False
        self.live = False
        foreign = self.foreign()
        if foreign and not force:
            self.release()
            shown = ", ".join(foreign[:SHOWN_FOREIGN]) + (", ..." if len(foreign) > SHOWN_FOREIGN else "")
            raise OutputError(f"{path}: holds files otsensor did not write ({shown}); choose a new or empty "
                              "directory, or add --force to write beside them (only otsensor's own files "
                              "are replaced)")

    @classmethod
    def claim(cls, path: str, force: bool = False, keep: Iterable[str] = ()) -> "OutputDir":
        """Lock ``path`` for this run (creating it), check what it holds, and prepare the staging directory.

        ``keep`` names more entries of the directory to leave alone (a spool directory placed there).
        Raises OutputError with a one-line message.
        """
        created = not os.path.lexists(path)
        if not created and not os.path.isdir(path):
            raise OutputError(f"{path}: not a directory")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{path}: cannot create the output directory: {exc.strerror or exc}") from None
        try:
            lock_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise OutputError(f"{path}: cannot open the output directory: {exc.strerror or exc}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise OutputError(f"{path}: another otsensor run is writing here") from None
        except OSError:
            pass   # a file system without directory locks (some network mounts): run unlocked
        out = cls(path, lock_fd, _read_marker(path), force, frozenset(keep), created)
        try:
            out._prepare()
        except OSError as exc:
            out.abandon()
            raise OutputError(f"{path}: cannot write here: {exc.strerror or exc}") from None
        return out

    def foreign(self) -> list[str]:
        """Entries of the directory otsensor does not own (without a marker, everything but the spool)."""
        names = sorted(os.listdir(self.path))
        if not self._marked:
            return [n for n in names if not self._kept(n)]
        return [n for n in names if not self._owned(n)]

    def _kept(self, name: str) -> bool:
        return name in self._keep or LEARNED.fullmatch(name.removesuffix(".tmp")) is not None

    def _owned(self, name: str) -> bool:
        if name in (MARKER, STAGING) or self._kept(name) or name in self._previous:
            return True
        if name.endswith(".tmp"):   # a document an older run was writing when it stopped
            name = name[:-4]
        if name in DOCUMENTS or name in DIRECTORIES:
            return True
        m = LOG_FILE.fullmatch(name)
        return m is not None and m["log"] in self._logs

    def _prepare(self) -> None:
        if not self._marked:   # first, so that nothing of ours is ever in the directory without the marker
            self._write_marker("empty", [], 0)
            self._marked = True
        if os.path.lexists(self.staging):   # a run that crashed left its partial results: not worth keeping
            _remove(self.staging)
        os.mkdir(self.staging)

    def commit(self, names: Iterable[str] | None = None) -> None:
        """Replace the previous results by what the staging directory holds (``names``: all of it)."""
        names = sorted(os.listdir(self.staging) if names is None else names)
        _sync_tree(self.staging)   # on disk before a rename can point at them: a power cut keeps one whole run
        self._write_marker("swapping", names, self.run)
        self._remove_previous(names)
        for name in sorted(names, key=lambda n: n == SUMMARY):   # the summary last: it says the run is in
            target = os.path.join(self.path, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(os.path.join(self.staging, name), target)
        os.rmdir(self.staging)
        self._write_marker("complete", names, self.run)
        _fsync(self.path)   # the renames and the marker, durable before the run reports success
        self.committed = True
        self.release()

    def begin_live(self, keep_logs: bool = False) -> None:
        """For a run whose results are read while it runs (``otsensor run``): the previous run's files go
        now (its logs stay with ``keep_logs``, for the run's log writer to archive), and this run writes
        straight into the directory; the marker says ``live`` until :meth:`finish_live`."""
        os.rmdir(self.staging)
        self.live = True
        self._write_marker("live", [], self.run)
        self._remove_previous([], keep_logs)

    def finish_live(self) -> None:
        names = sorted(n for n in os.listdir(self.path)
                       if n not in (MARKER, STAGING) and not self._kept(n) and self._owned(n))
        self._write_marker("complete", names, self.run)
        _fsync(self.path)
        self.committed = True
        self.release()

    def _remove_previous(self, names: list[str], keep_logs: bool = False) -> None:
        """The previous run's summary first (no summary while two runs share the directory), then its
        files that this run did not write (but not its logs, with ``keep_logs``)."""
        for name in sorted(os.listdir(self.path), key=lambda n: n != SUMMARY):
            if keep_logs and LOG_FILE.fullmatch(name.removesuffix(".tmp")):
                continue
            if (name == SUMMARY or name not in names) and name not in (MARKER, STAGING) \
                    and not self._kept(name) and self._owned(name):
                _remove(os.path.join(self.path, name))

    def abandon(self) -> None:
        """The run failed: drop its staging files; the previous results stay. A directory this run
        created is removed again when nothing else was put in it."""
        if not self.live:   # a live run wrote straight into the directory: what it wrote stays
            shutil.rmtree(self.staging, ignore_errors=True)
        try:
            if self._created and set(os.listdir(self.path)) <= {MARKER}:
                shutil.rmtree(self.path, ignore_errors=True)
        except OSError:
            pass   # the directory went away meanwhile: nothing left to tidy
        self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor drops the lock
            self._lock_fd = None

    def __enter__(self) -> "OutputDir":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.abandon()

    def _write_marker(self, state: str, files: list[str], run: int) -> None:
        data = {"otsensor_output": 1, "version": __version__, "state": state, "run": run, "files": files}
        tmp = os.path.join(self.path, MARKER + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, os.path.join(self.path, MARKER))


def _read_marker(path: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("otsensor_output") else None


def _sync_tree(root: str) -> None:
    """fsync every file below ``root``, then the directories.  In parallel: the file system commits the
    flushes together (measured on the development VM: 12 files in ~15 ms, against ~100 ms one by one)."""
    files, directories = [], []
    for directory, _, names in os.walk(root):
        files.extend(os.path.join(directory, n) for n in names)
        directories.append(directory)
    with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
        list(pool.map(_fsync, files))
    for directory in directories:
        _fsync(directory)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
