"""Tamper evidence: a signed manifest per recording chaining its chunks' hashes in order and naming
its MP4's hash (manifest.py), signed with the install's Ed25519 key (signing.py); evidence bundles
(bundle.py) and their verification, online or offline (verify.py)."""
