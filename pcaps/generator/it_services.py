"""IT services on a control-cell host, and the HMI's sessions to them: real SSH (asyncssh) and SMB (impacket).

Loaded by ``scenarios.py`` as ``scenario_it_services``, after ``scenario_plant``.  asyncssh and impacket
come with ``pip install 'otsensor[generate]'`` (generator-only dependencies, not the sensor's nor the tests').
The servers listen on the S7 PLC's address (a controller-side box that also
runs an SSH daemon and a file share, as engineering PCs in a cell do); only the
scenario that uses them starts them.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator

from scenario_plant import S7_PLC, attempt, wait_for_port  # type: ignore[import-not-found]

SSH_PORT, SMB_PORT = 22, 445
USER, PASSWORD = "operator", "plant-2026"


def _server_class():
    """asyncssh server callbacks: one user, by password (asyncssh is imported only where it is used)."""
    import asyncssh

    class PasswordServer(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == (USER, PASSWORD)

    return PasswordServer


async def _shell(process) -> None:
    process.stdout.write(f"uid=1000({USER}) gid=1000({USER})\n")
    process.exit(0)


@contextlib.contextmanager
def ssh_server() -> Iterator[None]:
    import asyncssh

    loop = asyncio.new_event_loop()
    ready, done = threading.Event(), asyncio.Event()

    async def serve() -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(_server_class(), S7_PLC, SSH_PORT, server_host_keys=[key],
                                              process_factory=_shell)
        ready.set()
        await done.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="ssh-server", daemon=True)
    thread.start()
    ready.wait(15)
    try:
        wait_for_port(S7_PLC, SSH_PORT)
        yield
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(timeout=10)


@contextlib.contextmanager
def smb_server() -> Iterator[None]:
    from impacket.smbserver import SimpleSMBServer

    with tempfile.TemporaryDirectory(prefix="otsensor-smb-") as share:
        with open(os.path.join(share, "recipes.csv"), "w") as fh:
            fh.write("mode,speed\n1,50\n")
        server = SimpleSMBServer(listenAddress=S7_PLC, listenPort=SMB_PORT)
        server.addShare("PLANT", share, "plant files")
        server.setSMB2Support(True)
        thread = threading.Thread(target=server.start, name="smb-server", daemon=True)
        thread.start()
        try:
            wait_for_port(S7_PLC, SMB_PORT)
            yield
        finally:
            server.stop()


@contextlib.contextmanager
def it_services() -> Iterator[None]:
    with ssh_server(), smb_server():
        yield


def hmi_ssh_session() -> None:
    asyncio.run(_ssh_session())


async def _ssh_session() -> None:
    import asyncssh

    from scenario_plant import HMI  # type: ignore[import-not-found]

    async with asyncssh.connect(S7_PLC, SSH_PORT, username=USER, password=PASSWORD, known_hosts=None,
                                local_addr=(HMI, 0)) as conn:
        await conn.run("id", check=False)


def hmi_smb_session() -> None:
    import io

    from impacket.smbconnection import SMBConnection

    conn = SMBConnection(S7_PLC, S7_PLC, sess_port=SMB_PORT, timeout=10)  # bound to HMI by the role socket
    conn.login("", "")
    out = io.BytesIO()
    conn.getFile("PLANT", "recipes.csv", out.write)
    conn.putFile("PLANT", "payload.bin", io.BytesIO(b"\x90" * 512).read)
    conn.logoff()
    conn.close()


def attack_hmi_ssh_smb() -> None:
    """The (compromised) HMI opens an SSH session and an SMB session to a host of the control cell."""
    attempt("hmi ssh", hmi_ssh_session)
    attempt("hmi smb", hmi_smb_session)
