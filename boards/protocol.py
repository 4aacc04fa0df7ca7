"""The host-link byte protocol, shared by the gateware (:mod:`winnow.boards.host_link`) and the
host driver (:mod:`winnow.boards.host`). Pure Python: no Amaranth.

Every command is one command byte followed by its argument bytes; every command is
answered, in order, by its response. Multi-byte fields are little-endian. A response
starts with the command byte itself (the echo), or with :data:`ERROR` for an error:
``ERROR, code, command byte`` (three bytes). docs/boards.md has the table.

Word sizes come from the array's ports (the board reports them with ``INFO``):

* a load word (the load port's payload, ``load_bits`` wide) is ``nb = ⌈load_bits/8⌉`` bytes;
* a read entry ``bank | addr << bank_bits`` is ``nr = ⌈(bank_bits + addr_bits)/8⌉`` bytes;
* a read-back value (``rd_data``, ``data_bits`` wide) is ``nd = ⌈data_bits/8⌉`` bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from winnow.model.errors import DataError

#: Protocol version reported by INFO.
VERSION = 1

#: Command bytes.
INFO, LOAD, START, STATUS, READ, READ_RANGE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
COMMANDS = {INFO: "INFO", LOAD: "LOAD", START: "START", STATUS: "STATUS", READ: "READ", READ_RANGE: "READ_RANGE"}

#: First byte of an error response (never a command byte).
ERROR = 0xEE
#: Error codes (second byte of an error response; the third is the command byte, 0 if none).
ERR_UNKNOWN, ERR_BUSY, ERR_TIMEOUT, ERR_FRAMING, ERR_OVERRUN = 0x01, 0x02, 0x03, 0x04, 0x05
ERRORS = {
    ERR_UNKNOWN: "unknown command byte",
    ERR_BUSY: "the array is running (LOAD and START are refused until done)",
    ERR_TIMEOUT: "argument bytes stopped arriving; the command was abandoned",
    ERR_FRAMING: "a byte had a bad stop bit (baud rate mismatch?); the command was abandoned",
    ERR_OVERRUN: "a byte arrived before the previous one was taken; the command was abandoned",
}

#: STATUS flag bits.
FLAG_BUSY, FLAG_DONE = 0x01, 0x02
#: Largest count of one LOAD, READ or READ_RANGE (16-bit field).
MAX_COUNT = 0xFFFF
#: Bytes of the INFO response after the echo.
INFO_BYTES = 10


def nbytes(bits: int) -> int:
    return max(1, -(-int(bits) // 8))


def config_id(cfg) -> int:
    """32-bit fingerprint of an :class:`winnow.hw.config.AccelConfig` (first 4 bytes of the SHA-256 of its JSON).

    The board reports the id of the configuration it was built for; the driver refuses
    a layer packed for another one.
    """
    text = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


@dataclass(frozen=True)
class LinkInfo:
    """What INFO reports: protocol version, port widths of the array, configuration id."""

    version: int
    load_bits: int
    bank_bits: int
    addr_bits: int
    data_bits: int
    config_id: int

    @property
    def load_bytes(self) -> int:
        return nbytes(self.load_bits)

    @property
    def entry_bytes(self) -> int:
        return nbytes(self.bank_bits + self.addr_bits)

    @property
    def data_bytes(self) -> int:
        return nbytes(self.data_bits)

    def to_bytes(self) -> bytes:
        """The INFO response after the echo (:data:`INFO_BYTES` bytes)."""
        return (bytes([self.version]) + self.load_bits.to_bytes(2, "little")
                + bytes([self.bank_bits, self.addr_bits, self.data_bits]) + self.config_id.to_bytes(4, "little"))

    @classmethod
    def from_bytes(cls, b: bytes) -> "LinkInfo":
        """The INFO payload (exactly :data:`INFO_BYTES` bytes) → LinkInfo; anything else is a :class:`DataError`."""
        if not isinstance(b, (bytes, bytearray)) or len(b) != INFO_BYTES:
            raise DataError(f"an INFO payload is {INFO_BYTES} bytes; got {len(b) if isinstance(b, (bytes, bytearray)) else type(b).__name__}")
        return cls(version=b[0], load_bits=int.from_bytes(b[1:3], "little"), bank_bits=b[3], addr_bits=b[4],
                   data_bits=b[5], config_id=int.from_bytes(b[6:10], "little"))

    def entry(self, bank: int, addr: int) -> bytes:
        """A read entry (bank, addr) as its ``nr`` bytes."""
        if not (0 <= bank < 1 << self.bank_bits and 0 <= addr < 1 << self.addr_bits):
            raise DataError(f"read address (bank {bank}, addr {addr}) does not fit "
                             f"{self.bank_bits} + {self.addr_bits} bits")
        return (bank | addr << self.bank_bits).to_bytes(self.entry_bytes, "little")


def load_command(words, info: LinkInfo) -> bytes:
    """LOAD of ``words`` (at most :data:`MAX_COUNT`)."""
    words = list(words)
    if len(words) > MAX_COUNT:
        raise DataError(f"one LOAD carries at most {MAX_COUNT} words; got {len(words)}")
    nb = info.load_bytes
    out = bytearray([LOAD]) + len(words).to_bytes(2, "little")
    for w in words:
        w = int(w)
        if not 0 <= w < 1 << info.load_bits:
            raise DataError(f"load word {w:#x} does not fit the {info.load_bits}-bit load port")
        out += w.to_bytes(nb, "little")
    return bytes(out)


def read_command(entries, info: LinkInfo) -> bytes:
    entries = list(entries)
    if len(entries) > MAX_COUNT:
        raise DataError(f"one READ carries at most {MAX_COUNT} entries; got {len(entries)}")
    out = bytearray([READ]) + len(entries).to_bytes(2, "little")
    for bank, addr in entries:
        out += info.entry(bank, addr)
    return bytes(out)


def read_range_command(bank: int, addr: int, count: int, info: LinkInfo) -> bytes:
    if not 0 <= count <= MAX_COUNT:
        raise DataError(f"READ_RANGE count must be in [0, {MAX_COUNT}]; got {count}")
    if addr + count > 1 << info.addr_bits:
        raise DataError(f"READ_RANGE {addr} + {count} runs past the {info.addr_bits}-bit address space")
    return bytes([READ_RANGE]) + info.entry(bank, addr) + count.to_bytes(2, "little")
