"""The run's secrets: a registration token for every pool, CurveZMQ keys off loopback.

    executor.start ──> <run_dir>/<label>/secret                 (0600) read by pools
                   ──> <run_dir>/<label>/certificates/          (0700, off loopback only)
                          server.key(_secret), client.key(_secret), clients/client.key

Pools read these from the (shared) run directory, as Parsl's pools read its cert_dir.
The interchange's authenticator accepts only the public keys in `clients/`.
"""

from __future__ import annotations

import os
import shutil


def write_private(path: str, text: str) -> str:
    """Write `text` to a file only its owner can read; its path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    return path


def create_certificates(cert_dir: str) -> str:
    """Fresh server and client key pairs for this run; the directory."""
    import zmq.auth

    os.makedirs(cert_dir, mode=0o700, exist_ok=True)
    os.chmod(cert_dir, 0o700)
    zmq.auth.create_certificates(cert_dir, "server")
    zmq.auth.create_certificates(cert_dir, "client")
    clients = os.path.join(cert_dir, "clients")
    os.makedirs(clients, mode=0o700, exist_ok=True)
    shutil.copy(os.path.join(cert_dir, "client.key"), os.path.join(clients, "client.key"))
    for name in os.listdir(cert_dir):
        path = os.path.join(cert_dir, name)
        if os.path.isfile(path):
            os.chmod(path, 0o600)
    return cert_dir
