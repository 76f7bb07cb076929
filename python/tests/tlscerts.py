"""
Certificates for the TLS tests, made at test time with the openssl command line as
tests/support/tcerts.c makes the C suite's (nothing is checked in; EC P-256 keys):

    ca.pem / ca.key           the test CA
    ca2.pem                   a second CA, which signed nothing the servers use
    server.pem / server.key   CN=localhost, SAN DNS:localhost and IP:127.0.0.1, by ca
    other.pem / other.key     CN=elsewhere, SAN DNS:elsewhere.example only, by ca
    alice.pem / alice.key     a client certificate, CN=alice, by ca
"""

from __future__ import annotations

import os
import subprocess

KEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

_CMDS = [
    f"openssl req -x509 {KEY} -keyout ca.key -out ca.pem -days 2 -subj /CN=daffi-py-ca",
    f"openssl req -x509 {KEY} -keyout ca2.key -out ca2.pem -days 2 -subj /CN=daffi-py-ca2",
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext",
    "printf 'subjectAltName=DNS:elsewhere.example\\n' > other.ext",
]
for _name, _cn, _ext in (("server", "localhost", "server.ext"),
                         ("other", "elsewhere", "other.ext"), ("alice", "alice", None)):
    _CMDS.append(f"openssl req {KEY} -keyout {_name}.key -out {_name}.csr -subj /CN={_cn} && "
                 f"openssl x509 -req -in {_name}.csr -CA ca.pem -CAkey ca.key "
                 f"-CAcreateserial -out {_name}.pem -days 2" +
                 (f" -extfile {_ext}" if _ext else ""))


def make(directory: str) -> str:
    """Makes the certificates in directory (which must exist) and returns it; fails
    naming the command and what openssl said."""
    for cmd in _CMDS:
        r = subprocess.run(cmd, shell=True, cwd=directory, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"tlscerts: {cmd} failed:\n{r.stdout}{r.stderr}")
    return directory


def path(directory: str, name: str) -> str:
    return os.path.join(directory, name)
