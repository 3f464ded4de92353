"""The secret keys of written values: every HS_SECKEY is stored as a salted hash, made in a thread."""

from __future__ import annotations

import asyncio
import base64

from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.core.values import StoredValue


async def hash_secrets(values: list[StoredValue]) -> None:
    """Replace the secret of every HS_SECKEY value by its salted hash, in a thread.

    A value already hashed (as reads with admin rights show them) is kept only when it was made
    with the node's parameters: the parameters set the price of every request presenting it.
    """
    for value in values:
        if fold(value["type"]) != "hs_seckey":
            continue
        data = value["data"]
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
        if data["format"] not in ("string", "base64", "hex") or not isinstance(data["value"], str):
            raise HandleError(
                RC.INVALID_VALUE,
                f"value {value['index']}: an HS_SECKEY needs a string secret",
                zh=f"值 {value['index']}：HS_SECKEY 的密钥必须是字符串",
            )
        try:
            if data["format"] == "string":
                raw = data["value"].encode("utf-8")
            elif data["format"] == "hex":
                raw = bytes.fromhex(data["value"])
            else:
                raw = base64.b64decode(data["value"], validate=True)
        except ValueError:  # also binascii.Error and UnicodeEncodeError
            raise HandleError(
                RC.INVALID_VALUE,
                f"value {value['index']}: the HS_SECKEY is not valid {data['format']}",
                zh=f"值 {value['index']}：HS_SECKEY 不是有效的 {data['format']}",
            ) from None
        value["data"] = {
            "format": secrets.HASH_FORMAT,
            "value": await asyncio.to_thread(secrets.hash_secret, raw),
        }
