"""Resource model of the PE array: LUT, FF, DSP, BRAM, RAM-capable LUTs and Fmax, calibrated on real builds.

Every estimate starts from the structure :class:`winnow.hw.config.AccelConfig` already
knows (its memories, P·L, the requantizers) and is scaled by coefficients fitted to
measured yosys/nextpnr builds (:data:`CALIBRATION`, made from bench/results/boards.json
and from ``winnow explore --build`` runs, each record with its provenance):

* **DSP** = P·L + 2·otu_lanes·R: one 18×18 block per multiply-accumulate lane and two per
  requantizer (biased_bits × mult_bits ≈ 33 × 15 bits); structural, nothing fitted.
* **BRAM** = a · the block RAMs of the memories at least :data:`BRAM_MIN_DEPTH` deep, each
  mapped to the part's best block shape (ECP5 DP16KD 18 kbit: 16384×1 … 512×36; iCE40
  SB_RAM40_4K: 2048×2 … 256×16); shallower memories go to distributed RAM.
* **LUTRAM** (ECP5) = a · bits of those shallow memories / 64 (a 16×4 distributed RAM per LUT pair).
* **LUT**, **FF** = a · mac_bits + b · port_bits + c · rmw_bits: P·L·acc_bits (the lanes'
  adders and registers), Σ count·width over the memories (a bank's read and write data
  paths and the multiplexers between banks and units) and, in tiled mode, the accumulator
  banks' count·width (each bank adds a row into its stored sum: an adder and a register per
  bit; the two tiled OrangeCrab builds used 1.6× the LUTs the first two terms predicted).
  Non-negative least squares per family.
* **Fmax** = A · LUT^(−β): the larger the array the longer its nets; fitted in log space per
  family (β shared when a family has one build).

:func:`fit` refits from any list of records; :func:`loo_errors` measures the model's
error on builds it was not fitted on (docs/explore.md quotes it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources as _pkg
from pathlib import Path

import numpy as np

from winnow.model.errors import ConfigError, WinnowError
from winnow.model.files.atomic import atomic_write_json
from winnow.model.files.bounded import read_json_bounded

from winnow.hw.config import AccelConfig

CALIBRATION_SCHEMA = "winnow-explore-calibration/1"
#: Memories shallower than this many words are distributed RAM, deeper ones block RAM (yosys' choice on the
#: measured builds: the 32- and 64-deep V' and accumulator banks went to LUTs).
BRAM_MIN_DEPTH = 128
#: (depth, width) shapes of one block RAM.
BRAM_SHAPES = {"ecp5": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
               "ice40": ((2048, 2), (1024, 4), (512, 8), (256, 16))}
#: The fitted resources and their structural features.
FEATURES = {"LUT": ("mac_bits", "port_bits", "rmw_bits"), "FF": ("mac_bits", "port_bits", "rmw_bits"),
            "BRAM": ("bram_blocks",),
            "LUTRAM": ("lutram_cells",)}
ESTIMATED = ("LUT", "FF", "DSP", "BRAM", "LUTRAM", "fmax_mhz")


def bram_blocks(depth: int, width: int, family: str) -> int:
    """Block RAMs one memory of ``depth`` × ``width`` needs in its cheapest shape."""
    return min(-(-depth // d) * -(-width // w) for d, w in BRAM_SHAPES[family])


def read_ports(cfg: AccelConfig, memory: str) -> int:
    """Read ports of one of :meth:`AccelConfig.memories`: in tiled mode an accumulator bank is read by its PE's
    add (in place) and by the output unit, so yosys keeps two copies of it (a block RAM in pseudo-dual-port
    mode reads on one port): 4 DP16KD per 512×54 bank on the synthesized ULX3S streaming preset, not 2."""
    return 2 if memory == "accumulators" and cfg.tiled else 1


def memory_blocks(cfg: AccelConfig, family: str, mems: dict | None = None) -> dict:
    """Block RAMs per memory of ``cfg`` (0 for the ones under :data:`BRAM_MIN_DEPTH` words: distributed RAM);
    ``mems``: ``cfg.memories()`` when the caller has it already."""
    if family not in BRAM_SHAPES:
        raise ConfigError(f"no resource model for the {family!r} family; known: {', '.join(BRAM_SHAPES)}")
    return {k: v["count"] * read_ports(cfg, k) * bram_blocks(v["depth"], v["width"], family)
            if v["depth"] >= BRAM_MIN_DEPTH else 0 for k, v in (mems or cfg.memories()).items()}


def features(cfg: AccelConfig, family: str) -> dict:
    """The structural counts the model scales (module docstring)."""
    mems = cfg.memories()  # once per screened point: the hot path of winnow explore
    blocks = sum(memory_blocks(cfg, family, mems).values())
    lutram = sum(v["bits"] for v in mems.values() if v["depth"] < BRAM_MIN_DEPTH)
    acc = mems["accumulators"]
    return {"mac_bits": cfg.multipliers * cfg.widths.acc_bits,
            # tiled mode adds each row into the stored sum: an adder and a pipeline register per accumulator bit
            "rmw_bits": acc["count"] * acc["width"] if cfg.tiled else 0,
            "port_bits": sum(v["count"] * v["width"] for v in mems.values()),
            "bram_blocks": blocks, "lutram_cells": lutram / 64,
            "dsp": cfg.multipliers + 2 * cfg.otu_lanes * cfg.requant, "memory_bits": cfg.memory_bits}


@dataclass(frozen=True)
class ResourceModel:
    """Fitted coefficients per family: {family: {resource: [coefficients]}, "fmax": [A, β]}."""

    coefficients: dict
    #: the records it was fitted on (ids)
    fitted_on: tuple = ()
    notes: dict = field(default_factory=dict)

    def predict(self, cfg: AccelConfig, family: str) -> dict:
        """Estimated LUT, FF, DSP, BRAM, LUTRAM (ECP5) and Fmax (MHz) of ``cfg`` on a part of ``family``."""
        coef = self.coefficients.get(family)
        if coef is None:  # no build of this family yet: another family's coefficients on this family's blocks
            if not self.coefficients:
                raise ConfigError(f"the resource model has no calibration for the {family!r} family")
            coef = next(iter(self.coefficients.values()))
        return predict_from(features(cfg, family), coef, family)

    def to_dict(self) -> dict:
        return {"coefficients": self.coefficients, "fitted_on": list(self.fitted_on), "notes": self.notes}


def predict_from(f: dict, coef: dict, family: str) -> dict:
    out = {"DSP": f["dsp"]}
    for res, names in FEATURES.items():
        if res == "LUTRAM" and family != "ecp5":
            continue
        out[res] = int(round(sum(c * f[n] for c, n in zip(coef[res], names))))
    A, beta = coef["fmax"]
    out["fmax_mhz"] = round(A * max(out["LUT"], 1) ** -beta, 2)
    return out


# ------------------------------------------------------------------ calibration records
def record_from_report(report: dict, provenance: dict, status: str = "built") -> dict:
    """A calibration record from a board build's ``report.json`` (:mod:`winnow.boards.build`)."""
    res = report["resources"]
    measured = {k: res[k]["used"] for k in ("LUT", "FF", "DSP", "BRAM", "LUTRAM") if k in res}
    measured["fmax_mhz"] = round(float(report["fmax_mhz"]), 2)
    return {"id": f"{report['board']}:{report['config_id']}", "board": report["board"], "family": report["family"],
            "status": status, "config": report["config"], "measured": measured,
            "provenance": {**provenance, "tools": report.get("tools"), "seed": report.get("seed"),
                           "build_s": report.get("build_s")}}


def records_from_boards_json(doc: dict, source: str = "bench/results/boards.json") -> list[dict]:
    """The calibration records in ``make bench-boards``' results: built presets, and placed-only ones
    (resources without Fmax: the placement's utilisation)."""
    from winnow.boards.presets import PRESETS
    from winnow.boards.registry import get_board

    out = []
    for r in doc.get("boards", []):
        prov = {"source": source, "command": "make bench-boards", "preset": r["preset"]}
        if r["status"] == "built":
            out.append(record_from_report(r["report"], prov))
        elif r.get("utilisation"):  # placed but not routed: resources measured, no Fmax
            u = r["utilisation"]
            measured = {"LUT": u["LUT"][0], "FF": u["FF"][0], "DSP": u["DSP"][0], "BRAM": u["BRAM"][0]}
            if "RAM_LUT" in u:
                measured["LUTRAM"] = u["RAM_LUT"][0]
            out.append({"id": f"{r['board']}:{r['preset']}:placed", "board": r["board"],
                        "family": get_board(r["board"]).family, "status": "placed",
                        "config": PRESETS[r["preset"]].to_dict(), "measured": measured,
                        "provenance": {**prov, "note": r.get("error", "")[:300]}})
    return out


def _calibration_path() -> Path:
    return Path(str(_pkg.files("winnow.explore") / "calibration.json"))


def read_calibration(path=None) -> list[dict]:
    """The calibration records of ``path`` (default: the repository's, :data:`CALIBRATION`)."""
    path = Path(path) if path is not None else _calibration_path()
    doc = read_json_bounded(path, ConfigError, what="calibration file", missing="no such calibration file")
    if not isinstance(doc, dict) or doc.get("schema") != CALIBRATION_SCHEMA or not isinstance(doc.get("records"), list):
        raise ConfigError(f"{path}: not a {CALIBRATION_SCHEMA} document")
    for i, rec in enumerate(doc["records"]):
        if not isinstance(rec, dict) or not isinstance(rec.get("measured"), dict) or "config" not in rec \
                or rec.get("family") not in BRAM_SHAPES:
            raise ConfigError(f"{path}: record {i} lacks its family, config or measured resources")
    return doc["records"]


def write_calibration(path, records: list[dict]) -> Path:
    return atomic_write_json(Path(path), {"schema": CALIBRATION_SCHEMA, "records": records})


# ------------------------------------------------------------------ fitting
def _nnls(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    return nnls(X, y)[0]


def fit(records: list[dict]) -> ResourceModel:
    """Fit every family's coefficients to ``records`` (a family with no record borrows ECP5's, scaled)."""
    from winnow.hw.config import AccelConfig as _A

    by_fam: dict[str, list] = {}
    for rec in records:
        try:
            cfg = _A.from_dict(rec["config"])
        except ConfigError as exc:
            raise ConfigError(f"calibration record {rec.get('id')}: {exc}") from None
        by_fam.setdefault(rec["family"], []).append((features(cfg, rec["family"]), rec["measured"]))
    if not by_fam:
        raise WinnowError("no calibration records to fit the resource model on")
    coef: dict = {}
    for fam, rows in by_fam.items():
        c = {}
        for res, names in FEATURES.items():
            sel = [(f, m) for f, m in rows if res in m]
            if not sel:
                continue
            X = np.array([[f[n] for n in names] for f, _ in sel], dtype=float)
            y = np.array([m[res] for _, m in sel], dtype=float)
            if len(sel) < len(names):  # fewer builds than coefficients: one common scale of the features' sum
                s = float(y.sum() / max(X.sum(), 1e-9))
                c[res] = [s] * len(names)
            else:
                c[res] = [float(v) for v in _nnls(X, y)]
        coef[fam] = c
    # Fmax = A·LUT^-β, in log space; a family with one build keeps the pooled β
    pts = {fam: [(m["LUT"], m["fmax_mhz"]) for _, m in rows if m.get("fmax_mhz") and m.get("LUT")]
           for fam, rows in by_fam.items()}
    betas = []
    for fam, p in pts.items():
        if len({lut for lut, _ in p}) >= 2:
            x = np.log([lut for lut, _ in p])
            y = np.log([f for _, f in p])
            slope = np.polyfit(x, y, 1)[0]
            betas.append(max(0.0, -float(slope)))
    beta = float(np.mean(betas)) if betas else 0.3
    for fam, p in pts.items():
        b = beta
        if len({lut for lut, _ in p}) >= 2:
            x = np.log([lut for lut, _ in p])
            b = max(0.0, -float(np.polyfit(x, np.log([f for _, f in p]), 1)[0]))
        if p:
            A = float(np.exp(np.mean([math.log(f) + b * math.log(lut) for lut, f in p])))
        else:
            A = 100.0 * 1000.0 ** b
        coef[fam]["fmax"] = [A, b]
    for fam, c in coef.items():  # a resource no record of the family measured: the other family's
        for res in FEATURES:
            if res not in c and res != "LUTRAM":
                other = next((o[res] for o in coef.values() if res in o), None)
                if other is None:
                    raise WinnowError(f"no calibration record measures {res}")
                c[res] = list(other)
    return ResourceModel(coefficients=coef, fitted_on=tuple(r["id"] for r in records))


def default_model(path=None) -> ResourceModel:
    """The model fitted on the repository's calibration records (or ``path``'s)."""
    return fit(read_calibration(path))


def errors(model: ResourceModel, records: list[dict]) -> list[dict]:
    """Relative error (estimate / measured − 1) of every measured resource of every record."""
    out = []
    for rec in records:
        cfg = AccelConfig.from_dict(rec["config"])
        est = model.predict(cfg, rec["family"])
        row = {"id": rec["id"], "family": rec["family"], "status": rec["status"], "estimate": est,
               "measured": rec["measured"], "error": {}}
        for res in ESTIMATED:
            m = rec["measured"].get(res)
            if m and res in est:
                row["error"][res] = est[res] / m - 1
        out.append(row)
    return out


def loo_errors(records: list[dict]) -> list[dict]:
    """Leave-one-out: each record estimated by the model fitted on all the others."""
    out = []
    for i, rec in enumerate(records):
        rest = records[:i] + records[i + 1:]
        if not rest:
            continue
        out += errors(fit(rest), [rec])
    return out


def error_summary(rows: list[dict]) -> dict:
    """Per resource: mean and largest |relative error| over ``rows`` (:func:`errors`)."""
    out = {}
    for res in ESTIMATED:
        e = [abs(r["error"][res]) for r in rows if res in r["error"]]
        if e:
            out[res] = {"n": len(e), "mean_abs": float(np.mean(e)), "max_abs": float(np.max(e))}
    return out


if __name__ == "__main__":  # python -m winnow.explore.resources: rebuild calibration.json from boards.json
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/boards.json")
    recs = records_from_boards_json(json.loads(src.read_text(encoding="utf-8")))
    extra = [r for r in read_calibration() if r["provenance"].get("source") != "bench/results/boards.json"] \
        if _calibration_path().exists() else []
    print(write_calibration(_calibration_path(), recs + extra))
