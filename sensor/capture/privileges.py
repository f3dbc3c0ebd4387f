"""Giving up privileges once the capture sockets are open.

Opening an AF_PACKET socket needs CAP_NET_RAW (and CAP_NET_ADMIN for
promiscuous mode); nothing after that does.  So the sensor opens every
capture socket first, then becomes the unprivileged ``--user`` (supplementary
groups cleared, then group, then user) and keeps no capability, and sets
no-new-privileges so no later exec can regain any.  It checks the result in
/proc/self/status rather than trusting the calls.
"""
from __future__ import annotations

import ctypes
import os
import pwd

PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(Exception):
    """Privileges could not be given up as asked; the message says why."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(user: str | None) -> str | None:
    """Become ``user`` (when given) and keep no capability; returns a warning when nothing could be dropped.

    Raises PrivilegeError when the user does not exist, the switch is refused, or a capability survives.
    """
    if user is None and os.getuid() == 0:
        return "running as root: pass --user NAME to drop privileges once the capture is open"
    if user is not None:
        _become(user)
    _clear_capabilities()
    left = capabilities()
    if left["CapEff"] or left["CapPrm"]:
        raise PrivilegeError(f"capabilities still held after dropping them: {left}")
    return None


def _become(user: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"--user {user}: no such user") from None
    try:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)   # from root to another user: the kernel clears every capability
    except OSError as exc:
        raise PrivilegeError(f"--user {user}: cannot switch to it: {exc.strerror or exc}") from None
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid or os.getgid() != entry.pw_gid:
        raise PrivilegeError(f"--user {user}: the switch did not take")


def _clear_capabilities() -> None:
    """Empty the effective, permitted, inheritable and ambient sets; forbid gaining privileges by exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"cannot drop capabilities: {os.strerror(err)}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)   # fails harmlessly on kernels without it
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise PrivilegeError(f"cannot set no-new-privileges: {os.strerror(ctypes.get_errno())}")


def capabilities(pid: int | str = "self") -> dict[str, int]:
    """The capability sets of a process, from /proc/PID/status (CapInh, CapPrm, CapEff, CapBnd, CapAmb)."""
    sets = {}
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"Cap"):
                key, value = line.split(b":", 1)
                sets[key.decode()] = int(value, 16)
    return sets
