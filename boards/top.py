"""The board's top-level gateware: HostLink + the PE array on the board's pins, and the ECP5
PLL that clocks it when the design clock differs from the oscillator."""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.build import ResourceError as PlatformResourceError
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from winnow.hw.config import AccelConfig
from winnow.model.errors import ConfigError

from winnow.boards.host_link import HostLink


def ecp5_pll_params(in_hz: float, out_hz: float) -> dict:
    """EHXPLLL dividers for ``out_hz`` from ``in_hz`` (VCO 400–800 MHz, PFD ≥ 3.125 MHz), exact or refused."""
    fin, fout = in_hz / 1e6, out_hz / 1e6
    best = None
    for clki in range(1, 129):
        pfd = fin / clki
        if pfd < 3.125:
            break
        for clkfb in range(1, 81):
            if abs(pfd * clkfb - fout) > 1e-9:
                continue
            for clkop in range(1, 129):
                vco = fout * clkop
                if 400 <= vco <= 800 and (best is None or abs(vco - 600) < abs(best["vco_mhz"] - 600)):
                    best = {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                            "CLKOP_CPHASE": (clkop - 1) // 2, "vco_mhz": vco}  # as ecppll: VCO near 600 MHz
    if best is None:
        raise ConfigError(f"no ECP5 PLL setting makes exactly {fout:g} MHz from {fin:g} MHz")
    return best


def ecp5_pll_domain(m: Module, platform, out_hz: float) -> None:
    """Drive the ``sync`` domain from an EHXPLLL fed by the board oscillator (reset until locked)."""
    in_hz = platform.default_clk_frequency
    p = ecp5_pll_params(in_hz, out_hz)
    clk_io = platform.request(platform.default_clk, dir="-")
    m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
    m.domains.sync = ClockDomain("sync")
    # Amaranth constrains only a Signal, not a ClockSignal: the PLL drives this one, the domain follows it
    clk = Signal()
    m.d.comb += ClockSignal("sync").eq(clk)
    locked = Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{out_hz / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk, i_CLKFB=clk,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
        i_ENCLKOP=0, o_LOCK=locked,
    )  # fmt: skip
    platform.add_clock_constraint(clk, out_hz)
    m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")


class BoardTop(Elaboratable):
    """HostLink + array with the UART on the board's serial pins and status on two LEDs.

    The ``sync`` clock is the board oscillator, or (``sys_clock_hz``, ECP5) a PLL output.
    """

    def __init__(self, cfg: AccelConfig, *, divisor: int, timeout_bytes: int = 1024, sys_clock_hz=None):
        self.link = HostLink(cfg, divisor=divisor, timeout_bytes=timeout_bytes)
        self.sys_clock_hz = sys_clock_hz

    def elaborate(self, platform):
        m = Module()
        if self.sys_clock_hz:
            ecp5_pll_domain(m, platform, self.sys_clock_hz)
        m.submodules.link = link = self.link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        for i, sig in enumerate((link.busy, link.done)):
            try:
                led = platform.request("led", i)
            except PlatformResourceError:  # a board with fewer LEDs
                break
            m.d.comb += led.o.eq(sig)
        return m
