"""Privacy mode: the key identities are hashed under, and which columns it hashes or drops.

In privacy mode ``user_id`` and ``session_id`` become HMAC-SHA256 digests (the
first ``HASH_CHARS`` hex digits) under a key derived from the user's salt by
scrypt, with a random nonce stored in the database; ``response_text`` is
dropped once the signals that read it are computed. A guess at the salt costs
one scrypt run, so neither a stored digest nor a known id tells it cheaply. The
salt is never stored: the database keeps the nonce and a verifier (an HMAC
under the key of a fixed label), which tells a wrong salt from the right one.

Columns of a file are hashed or dropped by what they stand for (the mapping's
name for them, else their own, in any letter case): a file's own ``user_id``
column is hashed-or-dropped even when the mapping names another column
``user_id``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from forensics.db import Database
from forensics.errors import ConfigError
from forensics.schema import CANONICAL_COLUMNS, IDENTITY_COLUMNS, Mapping

__all__ = [
    "DROPPED_COLUMNS",
    "HASH_CHARS",
    "KDF",
    "MIN_SALT_CHARS",
    "Privacy",
    "privacy_settings",
    "treatment",
]

MIN_SALT_CHARS = 16
"""Shortest salt accepted: a short one is guessed from a word list."""

HASH_CHARS = 24
"""Hex digits kept of each HMAC (96 bits)."""

KDF = "scrypt:n=32768,r=8,p=1"
"""The key derivation, as stored in ``forensics_meta.salt_kdf``."""

_SCRYPT = {"n": 1 << 15, "r": 8, "p": 1, "maxmem": 64 << 20, "dklen": 32}
_VERIFIER_LABEL = b"forensics salt verifier"

DROPPED_COLUMNS: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS if c.long_text)
"""Canonical columns privacy mode keeps nothing of (once the signals are computed)."""


@dataclass(frozen=True)
class Privacy:
    """The key of a privacy-mode database, and the SQL that hashes under it."""

    key: bytes
    """The scrypt key (32 bytes); never stored."""

    def hash_sql(self, text: str) -> str:
        """SQL: the HMAC of a text value (its first ``HASH_CHARS`` hex digits); null stays null.

        The statement needs ``params``.

        Examples
        --------
        >>> import duckdb
        >>> p = Privacy(bytes(32))
        >>> sql = f"SELECT {p.hash_sql('$v')}"
        >>> duckdb.execute(sql, {**p.params, "v": "alice"}).fetchall()[0][0] == p.hash_text("alice")
        True
        """
        inner = f"unhex(sha256($privacy_inner || encode({text})))"
        return f"left(sha256($privacy_outer || {inner}), {HASH_CHARS})"

    @property
    def params(self) -> dict[str, bytes]:
        """The bound parameters ``hash_sql`` uses: the key padded and masked, as HMAC has it."""
        padded = self.key.ljust(64, b"\0")
        return {
            "privacy_inner": bytes(b ^ 0x36 for b in padded),
            "privacy_outer": bytes(b ^ 0x5C for b in padded),
        }

    def hash_text(self, value: str) -> str:
        """The digest ``hash_sql`` gives for ``value``, in Python."""
        return hmac.new(self.key, value.encode(), "sha256").hexdigest()[:HASH_CHARS]


def _derive(salt: str, nonce: bytes) -> bytes:
    return hashlib.scrypt(salt.encode(), salt=nonce, **_SCRYPT)


def _verifier(key: bytes) -> str:
    return hmac.new(key, _VERIFIER_LABEL, "sha256").hexdigest()


def privacy_settings(db: Database, privacy: bool, salt: str | None) -> Privacy | None:
    """Check privacy mode against the database; return the key to hash with, or None.

    The first privacy-mode ingest into a database draws the nonce and stores it
    with the KDF's name and the verifier; later ones must give a salt that
    matches the verifier.
    """
    stored = db.meta("privacy")
    if stored == "on" and not privacy:
        raise ConfigError(
            f"{db.path} was created in privacy mode; ingest into it with --privacy "
            "(and the same salt), or use another database"
        )
    if not privacy:
        return None
    if not salt:
        raise ConfigError(
            "privacy mode needs a salt to hash user and session ids: pass --salt TEXT "
            "or set FORENSICS_SALT (it is never stored in the database)"
        )
    if stored == "on" and db.meta("salt_kdf") is None:
        raise ConfigError(
            f"{db.path} was made in privacy mode by an older forensics, whose id hashes are "
            "weaker and differ from today's (the same user would get two hashes); re-ingest "
            "your files into a new database with --privacy and a salt of at least "
            f"{MIN_SALT_CHARS} characters"
        )
    if len(salt) < MIN_SALT_CHARS:
        raise ConfigError(
            f"the salt has {len(salt)} characters; privacy mode needs at least "
            f"{MIN_SALT_CHARS}, or the ids can be recovered by guessing it. Use a long "
            'random text, e.g. from `python -c "import secrets; print(secrets.token_urlsafe(24))"`, '
            "keep it secret and give the same one for every ingest into this database"
        )
    if stored != "on":
        if "requests" in db.tables() and db.scalar(
            "SELECT count(*) FROM requests WHERE response_text IS NOT NULL OR user_id IS NOT NULL"
        ):
            raise ConfigError(
                f"{db.path} already holds raw text or user ids from an ingest without "
                "--privacy; use a new database for privacy mode"
            )
        nonce = secrets.token_bytes(16)
        key = _derive(salt, nonce)
        db.set_meta("privacy", "on")
        db.set_meta("salt_kdf", KDF)
        db.set_meta("salt_nonce", nonce.hex())
        db.set_meta("salt_verifier", _verifier(key))
        return Privacy(key)
    kdf = db.meta("salt_kdf")
    if kdf != KDF:
        raise ConfigError(
            f"{db.path}: its ids were hashed with a key derivation this forensics does not "
            f"know ({kdf}); use the forensics that made it, or re-ingest into a new database"
        )
    key = _derive(salt, bytes.fromhex(db.meta("salt_nonce") or ""))
    if not hmac.compare_digest(_verifier(key), db.meta("salt_verifier") or ""):
        raise ConfigError(
            f"{db.path}: this salt differs from the one used before, so the same user would "
            "get a different hash; use the original salt"
        )
    return Privacy(key)


def treatment(name: str, mapping: Mapping) -> Literal["hash", "drop"] | None:
    """What privacy mode does to a file's column: hash it, drop it, or keep it.

    A column stands for the canonical column the mapping renames it to, else for
    the one its own name says (in any letter case).

    Examples
    --------
    >>> m = Mapping(columns={"user_id": "uid"})
    >>> [treatment(n, m) for n in ("uid", "User_ID", "Response_Text", "model")]
    ['hash', 'hash', 'drop', None]
    """
    meant = mapping.renames.get(name, name).lower()
    if meant in IDENTITY_COLUMNS:
        return "hash"
    if meant in DROPPED_COLUMNS:
        return "drop"
    return None
