"""Host driver against scripted transports: timeouts name what they waited for, bad and
error responses are clear exceptions, read coalescing, protocol encodings."""

import pytest

from winnow.boards import protocol as P
from winnow.boards.host import BoardError, HostDriver, HostLinkError, HostLinkTimeout, coalesce_reads
from winnow.hw.config import AccelConfig
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import DataError, WinnowError

CFG = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=2, lanes=2, k_max=4, h_max=6, w_max=6)
INFO = P.LinkInfo(version=P.VERSION, load_bits=66, bank_bits=2, addr_bits=6, data_bits=8, config_id=P.config_id(CFG))


class Scripted:
    """A transport that answers each write with canned bytes; time advances only on reads."""

    byte_time = 0.0

    def __init__(self, answers):
        self.answers = list(answers)
        self.buf = bytearray()
        self.written = bytearray()
        self.clock = 0.0

    def write(self, data):
        self.written += data
        if self.answers:
            self.buf += self.answers.pop(0)

    def read(self, n, timeout):
        if not self.buf:
            self.clock += timeout   # nothing comes: the whole timeout passes
            return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def now(self):
        return self.clock


def info_answer(info=INFO):
    return bytes([P.INFO]) + info.to_bytes()


def test_silent_board_times_out_naming_what_was_awaited():
    drv = HostDriver(Scripted([]), timeout=0.5)
    with pytest.raises(HostLinkTimeout, match=r"timed out after 0.5 s waiting for the response to INFO \(received 0 of 1"):
        drv.info()
    assert isinstance(HostLinkTimeout("x"), WinnowError)


def test_partial_answer_times_out_with_the_bytes_received():
    drv = HostDriver(Scripted([info_answer()[:4]]), timeout=0.25)
    with pytest.raises(HostLinkTimeout, match="INFO payload .*received 3 of 10 bytes: "):
        drv.info()


def test_bad_echo_and_error_responses():
    drv = HostDriver(Scripted([b"\x42"]), timeout=0.1)
    with pytest.raises(HostLinkError, match="bad response to INFO: expected 0x01 .* got 0x42"):
        drv.info()
    drv = HostDriver(Scripted([info_answer(), bytes([P.ERROR, P.ERR_BUSY, P.START])]), timeout=0.1)
    with pytest.raises(BoardError, match="refused START: error 0x02 .*running") as e:
        drv.info(), drv.start()
    assert (e.value.code, e.value.command) == (P.ERR_BUSY, P.START)


def test_wrong_protocol_version_and_wrong_configuration():
    old = P.LinkInfo(**{**INFO.__dict__, "version": 9})
    with pytest.raises(HostLinkError, match="protocol version 9"):
        HostDriver(Scripted([info_answer(old)])).info()
    other = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=1, lanes=2, k_max=4, h_max=6, w_max=6)
    drv = HostDriver(Scripted([info_answer()]))
    with pytest.raises(HostLinkError, match="board runs configuration .* packed for"):
        drv.check_config(other)
    drv.check_config(CFG)


def test_run_that_never_finishes_times_out():
    status = bytes([P.STATUS, P.FLAG_BUSY]) + (123).to_bytes(4, "little")
    drv = HostDriver(Scripted([status] * 100), timeout=0.1)
    drv.t.clock = 0.0

    def tick(n, timeout, _read=drv.t.read):
        drv.t.clock += 0.05
        return _read(n, timeout)

    drv.t.read = tick
    with pytest.raises(HostLinkTimeout, match="waiting for the run to finish .*busy=True.*123 cycles"):
        drv.wait_done(timeout=1.0)


def test_encodings():
    cmd = P.load_command([1, (1 << 66) - 1], INFO)
    assert cmd[:3] == bytes([P.LOAD, 2, 0]) and len(cmd) == 3 + 2 * 9
    assert cmd[3:12] == (1).to_bytes(9, "little")
    with pytest.raises(ValueError, match="does not fit the 66-bit"):
        P.load_command([1 << 66], INFO)
    assert P.read_command([(3, 5)], INFO) == bytes([P.READ, 1, 0, 3 | 5 << 2])
    assert P.read_range_command(1, 2, 30, INFO) == bytes([P.READ_RANGE, 1 | 2 << 2, 30, 0])
    with pytest.raises(DataError, match="runs past"):
        P.read_range_command(1, 2, 300, INFO)
    with pytest.raises(ValueError, match="does not fit"):
        INFO.entry(4, 0)
    assert P.LinkInfo.from_bytes(INFO.to_bytes()) == INFO
    assert len(INFO.to_bytes()) == P.INFO_BYTES


def test_coalesce_reads():
    reads = [(0, 0), (0, 1), (0, 2), (1, 0), (0, 10), (1, 3), (0, 30)]
    assert coalesce_reads(reads, max_gap=4) == [(0, 0, 3), (0, 10, 1), (0, 30, 1), (1, 0, 4)]
    assert coalesce_reads([(0, 0), (0, 9)], max_gap=8) == [(0, 0, 10)]
