"""Write the key files websockify 0.13.0's sdist leaves out of tests/fixtures (#18).

    python fixtures.py DIR

``private.pem`` (an RSA key, PKCS#1 PEM as ``openssl genrsa`` writes), ``public.pem`` (its
public half) and ``symmetric.key`` (a base64url HS256 secret, as jwcrypto's ``k``). Made
fresh on every run with cryptography (the test extra).
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def main(directory: str) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (out / "private.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    (out / "public.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
    (out / "symmetric.key").write_bytes(secret)


if __name__ == "__main__":
    main(sys.argv[1])
