"""The secret keys of written values: every HS_SECKEY is stored sealed (`resolver.core.secrets.Seal`).

The seal key is a file in the node's key directory (`--key-dir`), made on the first start and never
in the database. Every instance of a node must have the same file: the database remembers the id of
the key its values are sealed with, and an instance holding another key refuses to start rather
than write values the others cannot read.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.core.values import StoredValue
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry

SEAL_FILE = "hs_seckey.seal"
# The row of node_keys that holds the id (never the key) of the seal every HS_SECKEY is sealed with.
SEAL_ID_KEY = "hs-seckey-seal-id"


class SealError(Exception):
    """The seal key cannot be read, or is not the one the database's values are sealed with."""


def read_or_make_seal(directory: Path) -> secrets.Seal:
    """The seal key in `directory`, made (0600, in a 0700 directory) when there is none yet.
    Concurrent first starts agree: the file is created exclusively, and the loser reads it."""
    path = directory / SEAL_FILE
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = os.urandom(secrets.SEAL_KEY_BYTES)
        fresh = directory / f".{SEAL_FILE}.{os.urandom(8).hex()}.tmp"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key.hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(fresh, path)  # fails when another process made it first: theirs is kept
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    try:
        text = path.read_text(encoding="ascii").strip()
        return secrets.Seal(bytes.fromhex(text))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SealError(f"the seal key {path} cannot be read: {exc}") from None


async def load_seal(directory: Path, store: HandleStore) -> secrets.Seal:
    """The node's seal, checked against the id the database remembers (set by the first start)."""
    from resolver.store import accounts as db

    seal = read_or_make_seal(directory)
    remembered = (await db.node_key(store, SEAL_ID_KEY, seal.key_id.encode("ascii"))).decode("ascii")
    if remembered != seal.key_id:
        raise SealError(
            f"the secret keys in this database are sealed with key {remembered}, but {directory / SEAL_FILE} "
            f"holds key {seal.key_id}: give every instance the same --key-dir contents (copy the file "
            "from the first instance)"
        )
    return seal


def _plain_secret(value: StoredValue) -> bytes:
    data = value["data"]
    if data["format"] not in ("string", "base64", "hex") or not isinstance(data["value"], str):
        raise HandleError(
            RC.INVALID_VALUE,
            f"value {value['index']}: an HS_SECKEY needs a string secret",
            zh=f"值 {value['index']}：HS_SECKEY 的密钥必须是字符串",
        )
    try:
        if data["format"] == "string":
            return bytes(data["value"].encode("utf-8"))
        if data["format"] == "hex":
            return bytes.fromhex(data["value"])
        return base64.b64decode(data["value"], validate=True)
    except ValueError:  # also binascii.Error and UnicodeEncodeError
        raise HandleError(
            RC.INVALID_VALUE,
            f"value {value['index']}: the HS_SECKEY is not valid {data['format']}",
            zh=f"值 {value['index']}：HS_SECKEY 不是有效的 {data['format']}",
        ) from None


class SecretKeys:
    """How HS_SECKEY values are written and read back for checking."""

    def __init__(self, seal: secrets.Seal) -> None:
        self.seal = seal

    def stored(self, secret: bytes) -> dict[str, Any]:
        """The data of an HS_SECKEY value for `secret`."""
        return {"format": secrets.SEALED_FORMAT, "value": self.seal.seal(secret)}

    def hashed_key(self, data: object) -> bytes | None:
        """The reference's hashed key inside a sealed HS_SECKEY's data; None for any other data."""
        if not isinstance(data, dict) or data.get("format") != secrets.SEALED_FORMAT:
            return None
        return self.seal.unseal(data.get("value"))

    def prepare(self, values: list[StoredValue]) -> None:
        """Seal the secret of every HS_SECKEY value about to be written.

        A value as reads with admin rights show it is kept: sealed by this node's seal, or a scrypt
        hash made with the node's parameters (a record stored before sealing, read and written
        back); anything else claiming those formats is refused.
        """
        for value in values:
            if fold(value["type"]) != "hs_seckey":
                continue
            data = value["data"]
            if data["format"] == secrets.SEALED_FORMAT:
                if self.hashed_key(data) is not None:
                    continue
                raise HandleError(
                    RC.INVALID_VALUE,
                    f"value {value['index']}: a sealed HS_SECKEY must be one this node sealed; "
                    "send the secret itself as string, hex or base64",
                    zh=f"值 {value['index']}：sealed 格式的 HS_SECKEY 必须由本节点生成；请直接以 string、hex 或 base64 格式发送密钥本身",
                )
            if data["format"] == secrets.HASH_FORMAT:
                if secrets.is_hash(data["value"]):
                    continue
                raise HandleError(
                    RC.INVALID_VALUE,
                    f"value {value['index']}: an HS_SECKEY of format scrypt must be a hash made with this "
                    f"node's parameters ({secrets.PARAMETERS}); send the secret itself as string, hex or base64",
                    zh=f"值 {value['index']}：scrypt 格式的 HS_SECKEY 必须是按本节点参数（{secrets.PARAMETERS}）生成的散列；"
                    "请直接以 string、hex 或 base64 格式发送密钥本身",
                )
            value["data"] = self.stored(_plain_secret(value))

    async def convert(
        self, store: HandleStore, key: str, index: int, old: str, secret: bytes, actor: str
    ) -> bool:
        """Replace the scrypt hash `old` of HS_SECKEY `index:key` by the sealed form of `secret`,
        which was just checked against it (the only moment the node holds what sealing needs).
        False when the value changed meanwhile; the change feed tells every cache."""
        async with store.write() as tx:
            record = await tx.lock(key)
            if record is None:
                return False
            values = [dict(v) for v in record.values]
            for value in values:
                if value["index"] == index and value["data"] == {"format": secrets.HASH_FORMAT, "value": old}:
                    value["data"] = self.stored(secret)
                    break
            else:
                return False
            await tx.update(key, values)
            tx.audit(AuditEntry(actor, "handle.seckey.seal", key, detail={"index": index}))
        return True
