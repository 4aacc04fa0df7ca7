"""The ULX3S's SDRAM behind LiteDRAM: the controller core generated as Verilog, cached by its configuration.

The ULX3S v3 carries one 16-bit SDR SDRAM of 32 MB (MT48LC16M16 or IS42S16160: 4 banks ×
8,192 rows × 512 columns × 16 bits; newer boards may carry a 64 MB AS4C32M16, give
``module="AS4C32M16"``). LiteX-Boards' ULX3S target drives it with LiteDRAM's ``GENSDRPHY``
(full rate, 1:1) at 50 MHz, the SDRAM's clock pin from a PLL output 90° behind the system
clock; :class:`DramConfig` follows it. LiteDRAM's standalone generator (``litedram.gen``)
supports only ``GENSDRPHY`` for SDR memories, not ``HalfRateGENSDRPHY``.

:func:`generate_core` runs the generator (in a subprocess, so that Migen's global state
and LiteX's log stay out of this process) and returns a :class:`DramCore`: the Verilog
file, the module's ports (parsed from it), the control registers (``csr.json``) and the
SDRAM initialisation as a list of control-bus writes (:attr:`DramCore.init_writes`). The
generated core has no CPU, so nothing initialises the SDRAM by itself: a top must replay
those writes over the core's ``wb_ctrl`` Wishbone port (:class:`winnow.boards.stream_top.InitSequencer`),
which ends with ``init_done``; until then the core holds its user ports (LiteDRAM's
``block_until_ready``).

The core's user ports: ``axi`` (AXI4 slave of ``data_bits``, the streaming array's
bus: LiteDRAM converts each word into ``data_bits / 16`` SDRAM beats) and, with
``host_port``, ``host`` (Wishbone, 32 bits, word addresses) for the UART host link.
Byte addresses on the AXI port have ``log2(size)`` bits (25 for 32 MB).

Generation is cached: the output directory ``<build_dir>/litedram-<key>`` is named by the
SHA-256 of the configuration and of the litedram/litex/migen versions; it is made in a
temporary directory and renamed into place when complete, so a crash leaves no half core.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from winnow.model.errors import ConfigError
from winnow.model.files.atomic import DIR_MODE, atomic_write_json, atomic_write_text
from winnow.model.files.bounded import read_json_bounded

from winnow.boards.errors import BoardError

#: The packages the generator needs (the ``boards`` extra of pyproject.toml installs them).
PACKAGES = ("litedram", "litex", "migen")
#: Bumped when what this module writes changes (part of the cache key).
FORMAT = 1
#: LiteDRAM's DFII control/command bits (litedram.init's names; sdram_phy.h).
DFII_CONTROL = {"SEL": 0x01, "CKE": 0x02, "ODT": 0x04, "RESET_N": 0x08}
DFII_COMMAND = {"CS": 0x01, "WE": 0x02, "CAS": 0x04, "RAS": 0x08, "WRDATA": 0x10, "RDDATA": 0x20}
#: Control-bus cycles per unit of the BIOS's ``cdelay(i)`` (a NOP loop: a few CPU cycles an iteration).
CDELAY_CYCLES = 4


class DramError(BoardError):
    """The LiteDRAM core cannot be generated: litedram missing, or the generator failed."""


class DramMissingError(DramError):
    """litedram, litex or migen is not installed."""


@dataclass(frozen=True)
class DramConfig:
    """One LiteDRAM core for an SDR SDRAM.

    Parameters
    ----------
    module : str
        The SDRAM chip, a class of ``litedram.modules`` (``MT48LC16M16``: 32 MB, the ULX3S v3's;
        ``IS42S16160`` has the same geometry; ``AS4C32M16``: 64 MB).
    device : str
        The FPGA, as LiteX's Lattice platform names it.
    sys_clk_hz : float
        The core's clock (its ``clk`` input; the SDRAM timings are computed for it).
    data_bits : int
        Width of the AXI4 user port: the streaming array's ``StreamConfig.data_bits``.
    id_bits : int
        AXI ID width.
    host_port : bool
        Add a 32-bit Wishbone user port (``host``) for the UART host link.
    name : str
        The Verilog module's name.
    sim : bool
        A simulation core: LiteDRAM's ``SDRAMPHYModel`` (a behavioural memory of the module's
        geometry behind the same controller, crossbar and user ports) instead of the PHY
        and the pins; for Verilator, not for a board.
    """

    module: str = "MT48LC16M16"
    device: str = "LFE5U-85F-6BG381C"
    sys_clk_hz: float = 50e6
    data_bits: int = 128
    id_bits: int = 1
    host_port: bool = True
    name: str = "litedram_core"
    sim: bool = False

    def __post_init__(self):
        if self.data_bits < 16 or self.data_bits & (self.data_bits - 1):
            raise ConfigError(f"the AXI port's data_bits must be a power of two ≥ 16 (the SDRAM's width); "
                              f"got {self.data_bits}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ConfigError(f"the core's name must be a Verilog identifier; got {self.name!r}")
        if not 1e6 <= self.sys_clk_hz <= 200e6:
            raise ConfigError(f"sys_clk_hz must be 1 … 200 MHz; got {self.sys_clk_hz / 1e6:g} MHz")

    def litedram_config(self) -> dict:
        """The generator's configuration (``litedram.gen``'s YAML keys)."""
        ports = {"axi": {"type": "axi", "id_width": self.id_bits, "data_width": self.data_bits}}
        if self.host_port:
            ports["host"] = {"type": "wishbone", "data_width": 32}
        return {"cpu": None, "device": self.device, "memtype": "SDR", "sdram_module": self.module,
                "sdram_module_nb": 2, "sdram_phy": "GENSDRPHY", "sys_clk_freq": float(self.sys_clk_hz),
                "user_ports": ports}

    def key(self) -> str:
        """SHA-256 of everything the generated files depend on."""
        doc = {"format": FORMAT, "config": asdict(self), "versions": package_versions()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class DramCore:
    """A generated core: its files and what a top needs to instantiate and initialise it.

    Attributes
    ----------
    config : DramConfig
    directory : Path
        The cache entry (``litedram-<key>``).
    verilog : Path
        The core (module ``config.name``).
    ports : dict
        Verilog port name → (direction ``"input"``/``"output"``/``"inout"``, width).
    csr : dict
        Control register name → byte address on ``wb_ctrl`` (``csr.json``).
    init_writes : list
        The SDRAM initialisation: ``(word_address, data, wait_cycles)`` Wishbone writes on
        ``wb_ctrl``, the last one setting ``init_done``.
    info : dict
        Native port width, PHY settings (CAS latency, phases), geometry and timings.
    """

    config: DramConfig
    directory: Path
    verilog: Path
    ports: dict
    csr: dict
    init_writes: list
    info: dict = field(default_factory=dict)

    @property
    def axi_addr_bits(self) -> int:
        return self.ports["user_port_axi_araddr"][1]

    @property
    def host_addr_bits(self) -> int:
        return self.ports["user_port_host_adr"][1]


def package_versions() -> dict:
    """Installed version of each generator package (``None`` where absent)."""
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def check_installed() -> None:
    """Raise :class:`DramMissingError` naming what to install if a generator package is missing."""
    missing = [p for p, v in package_versions().items() if v is None]
    if missing:
        raise DramMissingError(f"the LiteDRAM core generator needs {', '.join(missing)}: "
                               f"pip install 'winnow[boards]' (litedram==2024.12 litex==2024.12 migen==0.10.0)")


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+wire\s*(?:\[(\d+):0\])?\s*(\w+)\s*,?\s*$")


def parse_ports(verilog_text: str, module: str) -> dict:
    """Port name → (direction, width) of ``module``'s ANSI header in ``verilog_text``."""
    m = re.search(rf"^module\s+{re.escape(module)}\s*\((.*?)\);", verilog_text, re.S | re.M)
    if not m:
        raise DramError(f"the generated Verilog has no module {module!r}")
    ports = {}
    for line in m.group(1).splitlines():
        pm = _PORT_RE.match(line)
        if pm:
            ports[pm.group(3)] = (pm.group(1), int(pm.group(2)) + 1 if pm.group(2) else 1)
    return ports


def _flags(expr: str, table: dict) -> int:
    """``"DFII_COMMAND_RAS|DFII_COMMAND_CS"`` → its value."""
    v = 0
    for name in expr.split("|"):
        v |= table[name.strip().split("_", 2)[2]]
    return v


def init_writes(csr: dict, sequence: list, cdelay_cycles: int = CDELAY_CYCLES) -> list:
    """The Wishbone writes of LiteX's BIOS ``sdram_init`` for an SDR PHY with one phase.

    ``sequence`` is ``litedram.init``'s ``(comment, address, bank, command, delay)`` list;
    ``csr`` maps register names to byte addresses. Software control on (CKE, ODT, RESET_N),
    each step (address, bank, then the control word for CKE-type steps or the command
    and its issue strobe), each followed by its delay, then hardware control (SEL) and
    ``init_done``.
    """
    def w(reg, value, wait=0):
        return (csr[reg] >> 2, value, wait)

    ctl = _flags("DFII_CONTROL_CKE|DFII_CONTROL_ODT|DFII_CONTROL_RESET_N", DFII_CONTROL)
    out = [w("sdram_dfii_control", ctl)]
    for _comment, a, ba, cmd, delay in sequence:
        out += [w("sdram_dfii_pi0_address", a), w("sdram_dfii_pi0_baddress", ba)]
        wait = delay * cdelay_cycles
        if cmd.startswith("DFII_CONTROL"):
            out.append(w("sdram_dfii_control", _flags(cmd, DFII_CONTROL), wait))
        else:
            out += [w("sdram_dfii_pi0_command", _flags(cmd, DFII_COMMAND)), w("sdram_dfii_pi0_command_issue", 1, wait)]
    out += [w("sdram_dfii_control", DFII_CONTROL["SEL"]), w("ddrctrl_init_done", 1)]
    return out


def _load(config: DramConfig, directory: Path) -> DramCore:
    meta = read_json_bounded(directory / "core.json", DramError, what="tool output")
    verilog = directory / f"{config.name}.v"
    return DramCore(config=config, directory=directory, verilog=verilog,
                    ports={k: tuple(v) for k, v in meta["ports"].items()}, csr=meta["csr"],
                    init_writes=[tuple(w) for w in meta["init_writes"]], info=meta["info"])


def core_directory(config: DramConfig, build_dir) -> Path:
    return Path(build_dir) / f"litedram-{config.key()[:16]}"


def generate_core(config: DramConfig = DramConfig(), build_dir="build/litedram", *, progress=None) -> DramCore:
    """The core for ``config``: from the cache in ``build_dir`` if there, else generated.

    Raises :class:`DramMissingError` if litedram is not installed and :class:`DramError`
    (with the generator's log tail) if generation fails.
    """
    check_installed()
    directory = core_directory(config, build_dir)
    if (directory / "core.json").exists():
        return _load(config, directory)
    if progress:
        progress(f"      generating the LiteDRAM core ({config.module}, {config.sys_clk_hz / 1e6:g} MHz)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        os.chmod(tmp, DIR_MODE)
        atomic_write_json(tmp / "config.json", {"config": asdict(config), "litedram": config.litedram_config(),
                                                "versions": package_versions()})
        log = tmp / "litedram_gen.log"
        with open(log, "w") as fh:
            proc = subprocess.run([sys.executable, "-m", "winnow.boards.dram", str(tmp)], cwd=tmp,
                                  stdout=fh, stderr=subprocess.STDOUT)
        if proc.returncode:
            tail = log.read_text(errors="replace")[-2500:]
            raise DramError(f"LiteDRAM core generation failed for {config.module} (exit {proc.returncode}); "
                            f"log {log}:\n{tail}")
        gen = read_json_bounded(tmp / "generated.json", what="tool output", error=DramError)
        src = tmp / "build" / "gateware" / f"{config.name}.v"
        text = src.read_text()
        if not config.sim:
            # Migen declares the PHY's tristate DQ pins (TRELLIS_IO inside the core) as inputs
            text, n = re.subn(r"^(\s*)input(\s+wire\s*\[\d+:0\]\s*sdram_dq\s*,)", r"\1inout\2", text, flags=re.M)
            if n != 1:
                raise DramError(f"the generated core has no sdram_dq input port to make inout ({src})")
        atomic_write_text(tmp / f"{config.name}.v", text)
        csr = {name: reg["addr"] for name, reg in gen["csr"]["csr_registers"].items()}
        ports = parse_ports(text, config.name)
        for need in ("user_port_axi_rdata", "wb_ctrl_adr", "init_done"):
            if need not in ports:
                raise DramError(f"the generated core lacks the port {need} ({src})")
        writes = init_writes(csr, gen["init_sequence"])
        atomic_write_json(tmp / "core.json", {"ports": ports, "csr": csr, "init_writes": writes, "info": gen["info"]})
        try:
            os.replace(tmp, directory)
        except OSError:  # another process made the same entry first: keep theirs
            if not (directory / "core.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _load(config, directory)


def _generate_here(out: Path) -> None:
    """The subprocess: run litedram's generator on ``out/config.json``, write ``generated.json``."""
    from litedram import gen, modules, phy
    from litedram.init import get_sdram_phy_init_sequence
    from litex.build.lattice import LatticePlatform
    from litex.soc.integration.builder import Builder

    doc = json.loads((out / "config.json").read_text())
    cc = dict(doc["litedram"])
    cc["sdram_module"] = getattr(modules, cc["sdram_module"])
    cc["sdram_phy"] = getattr(phy, cc["sdram_phy"])
    name = doc["config"]["name"]
    if doc["config"]["sim"]:
        _sim_stubs()
        from litex.build.sim import SimPlatform

        platform = SimPlatform("", io=[])
    else:
        platform = LatticePlatform(cc["device"], io=[], toolchain="trellis")
    soc = gen.LiteDRAMCore(platform, cc, integrated_rom_size=0xC000)
    builder = Builder(soc, output_dir=str(out / "build"), compile_gateware=False, compile_software=False,
                      csr_json=str(out / "build" / "csr.json"))
    builder.build(build_name=name, regular_comb=False, run=False)
    phy_s = (soc.ddrphy if doc["config"]["sim"] else soc.sdrphy).settings
    timing = soc.sdram.controller.settings.timing
    seq, _mr = get_sdram_phy_init_sequence(phy_s, timing)
    mod = soc.sdram.controller.settings.geom
    info = {"native_data_bits": soc.sdram.crossbar.controller.data_width,
            "phy": {"cl": phy_s.cl, "nphases": phy_s.nphases, "databits": phy_s.databits, "memtype": phy_s.memtype},
            "geometry": {"bankbits": mod.bankbits, "rowbits": mod.rowbits, "colbits": mod.colbits},
            "timing_cycles": {k: getattr(timing, k) for k in ("tRP", "tRCD", "tWR", "tREFI", "tRFC")
                              if isinstance(getattr(timing, k, None), int)},
            "size_bytes": 2 ** (mod.bankbits + mod.rowbits + mod.colbits) * phy_s.databits // 8}
    csr = json.loads((out / "build" / "csr.json").read_text())
    (out / "generated.json").write_text(json.dumps({"csr": csr, "init_sequence": seq, "info": info}, indent=1))


def _sim_stubs() -> None:
    """What ``litedram.gen``'s simulation core needs of LiteX's simulator without its extra packages.

    ``gen`` imports ``get_sdram_phy_settings`` from ``litex.tools.litex_sim``, which imports
    liteeth and litescope (not needed here), and LiteX's Verilator toolchain looks for the
    tapcfg data package to write its C++ build variables (not used: the cocotb runner
    builds the core). The function comes from its home, ``litedram.phy.model``.
    """
    import types

    from litedram.phy.model import get_sdram_phy_settings
    from litex.build.sim import verilator

    stub = types.ModuleType("litex.tools.litex_sim")
    stub.get_sdram_phy_settings = get_sdram_phy_settings
    sys.modules["litex.tools.litex_sim"] = stub
    verilator._generate_sim_variables = lambda *a, **kw: None


if __name__ == "__main__":
    _generate_here(Path(sys.argv[1]))
