"""HostLink protocol under the Amaranth simulator, driven by the real host driver:
a layer bit-exact with the exact cycle count, and every error response (unknown
command, busy, argument timeout, framing error), after each of which the link still works."""

import numpy as np
import pytest

from winnow.boards import protocol as P
from winnow.boards.host import BoardError, HostDriver
from winnow.boards.host_link import ByteLink, HostLink, link_info
from winnow.boards.pysim_link import PysimTransport
from winnow.hw.abi import load_layout
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError
from winnow.sim.layers import random_input, random_layer, reference_output

DP = DatapathConfig(m=2, r=3, c_max=4)
CFG = AccelConfig(datapath=DP, pes=2, lanes=2, k_max=4, h_max=6, w_max=6)


def _read_error(tr, timeout=20.0):
    got = tr.read(3, timeout)
    assert len(got) == 3, got
    return tuple(got)


def test_info_reports_the_array_ports_and_config_id():
    with PysimTransport(ByteLink(CFG, timeout_cycles=500)) as tr:
        got = HostDriver(tr, timeout=20).info()
    # by hand for CFG: F(2,3) writes m² = 4 output banks (2 bits); 6×6 inputs make 3×3 tiles, so a bank holds
    # K·9 = 36 words (6 address bits); outputs are act_bits = 8 wide; a load word is its fields side by side
    want = P.LinkInfo(version=P.VERSION, load_bits=load_layout(CFG).size, bank_bits=2, addr_bits=6,
                      data_bits=8, config_id=P.config_id(CFG))
    assert got == want == link_info(CFG)


def test_layer_bit_exact_and_cycle_exact_both_read_modes():
    layer = random_layer(DP, C=3, K=4, H=5, W=6, density=0.4, seed=1)
    xq = random_input(layer, 2)
    packed = pack_layer(layer, CFG)
    want = reference_output(layer, xq)
    with PysimTransport(ByteLink(CFG, timeout_cycles=2000), seed=5) as tr:
        drv = HostDriver(tr, timeout=30, block_words=50)  # several LOAD blocks
        out, cycles = drv.run_layer(packed, xq)
        assert np.array_equal(out, want)
        assert cycles == packed_cycles(packed).cycles
        assert np.array_equal(packed.unpack_reads(drv.read_outputs(packed.output_reads(), mode="list")), want)


def test_unknown_command_busy_and_timeout_errors_leave_the_link_usable():
    layer = random_layer(DP, C=2, K=3, H=4, W=6, density=1.0, seed=3)
    xq = random_input(layer, 4)
    packed = pack_layer(layer, CFG)
    with PysimTransport(ByteLink(CFG, timeout_cycles=300), seed=1) as tr:
        drv = HostDriver(tr, timeout=30)
        for bad in (0x00, 0x07, 0x7F, P.ERROR, 0xFF):
            tr.write(bytes([bad]))
            assert _read_error(tr) == (P.ERROR, P.ERR_UNKNOWN, bad)
        assert drv.info().config_id == P.config_id(CFG)
        # START and LOAD while the array runs are refused (LOAD's words are consumed)
        drv.load(packed.load_port_words(xq))
        drv.start()
        with pytest.raises(BoardError, match="running") as e:
            drv.start()
        assert e.value.code == P.ERR_BUSY and e.value.command == P.START
        with pytest.raises(BoardError, match="running"):
            drv.load([0, 0, 0])
        drv.wait_done(timeout=60)
        # a LOAD whose argument bytes stop arriving is abandoned with TIMEOUT
        tr.write(bytes([P.LOAD, 2, 0]) + b"\x01\x02")
        assert _read_error(tr) == (P.ERROR, P.ERR_TIMEOUT, P.LOAD)
        tr.write(bytes([P.READ_RANGE, 0]))
        assert _read_error(tr) == (P.ERROR, P.ERR_TIMEOUT, P.READ_RANGE)
        # a zero-count LOAD and READ are answered at once
        drv.load([])
        assert drv.read([]) == []
        busy, done, cycles = drv.status()
        assert (busy, done, cycles) == (False, True, packed_cycles(packed).cycles)
        out = packed.unpack_reads(drv.read_outputs(packed.output_reads()))
        assert np.array_equal(out, reference_output(layer, xq))


def test_uart_framing_error_is_reported_and_the_link_recovers():
    with PysimTransport(HostLink(CFG, divisor=4, timeout_bytes=8)) as tr:
        drv = HostDriver(tr, timeout=30)
        assert drv.info().config_id == P.config_id(CFG)
        d = 4
        start_and_data = [0] * d + [b for b in [1, 0, 1, 0, 0, 0, 0, 0] for _ in range(d)]
        tr.send_bits([1] * 8 + start_and_data + [0] * d + [1] * 3 * d)   # stop bit 0
        assert _read_error(tr) == (P.ERROR, P.ERR_FRAMING, 0)
        busy, done, cycles = drv.status()
        assert not busy and not done and cycles == 0


def test_bad_parameters():
    with pytest.raises(ConfigError, match="divisor"):
        HostLink(CFG, divisor=2)
    with pytest.raises(ConfigError, match="timeout_bytes"):
        HostLink(CFG, divisor=8, timeout_bytes=0)
    with pytest.raises(ConfigError, match="array"):
        ByteLink(CFG, timeout_cycles=10, array="verilog")
