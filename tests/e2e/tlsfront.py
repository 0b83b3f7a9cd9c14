"""An https front for the Synapse fixture, so that a *server name* can be discovered end to end.

Discovery (peekcli/matrix/discovery.py) only ever asks `https://NAME`: the front listens on
127.0.0.1 with a throwaway self-signed certificate for that address and forwards every request
to Synapse's plain-http listener. A peek process trusts the certificate through
`REQUESTS_CA_BUNDLE` (requests reads it), so `peek rooms 127.0.0.1:PORT` finds
`https://127.0.0.1:PORT` as a real user's `peek rooms example.org` finds its server. The
certificate is made with `cryptography`, which Synapse itself depends on.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.forward import forward


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "front-cert.pem", folder / "front-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)  # read by the peek under test, which may run as another user
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsFront:
    """https://127.0.0.1:PORT in front of `upstream`; `ca_bundle` is the certificate to trust."""

    def __init__(self, upstream: str, folder: Path) -> None:
        self.ca_bundle, key = _self_signed(folder)
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return None

            def _forward(self) -> None:
                forward(self, upstream, timeout=60)

            do_GET = do_POST = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        #: The server name to give peek: discovery turns it into `url`.
        self.name = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"https://{self.name}"
        self._thread = threading.Thread(target=front.server.serve_forever, daemon=True)

    def __enter__(self) -> TlsFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
