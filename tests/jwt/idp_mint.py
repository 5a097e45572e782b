"""Mints a JWT with PyJWT, an implementation independent of the hub's, as an identity provider
would: hubcast's claims plus what IdPs add. Used by tests/auth_tokens.rs.

usage: idp_mint.py ALG KEYFILE CLAIMS_JSON
  ALG      HS256 (KEYFILE holds the base64 secret, as <data-dir>/jwt-hs256.key)
           or EdDSA (KEYFILE is an Ed25519 private key PEM, as <data-dir>/jwt-ed25519.key.pem)
  CLAIMS   a JSON object; "exp", "iat", "nbf" given as offsets from now in seconds
Prints the token.
"""

import base64
import json
import sys
import time

import jwt


def main():
    alg, keyfile, claims_json = sys.argv[1:4]
    with open(keyfile, encoding="ascii") as f:
        text = f.read()
    key = base64.b64decode(text.strip()) if alg == "HS256" else text
    claims = json.loads(claims_json)
    now = int(time.time())
    for claim in ("exp", "iat", "nbf"):
        if claim in claims:
            claims[claim] = now + claims[claim]
    print(jwt.encode(claims, key, algorithm=alg, headers={"kid": "idp-key-1"}))


if __name__ == "__main__":
    main()
