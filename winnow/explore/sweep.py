"""The exploration: screen every array of the space with the resource model, evaluate the ones that fit
with the cycle model, take the Pareto front, optionally build the best points and refit.

Every step runs as tasks on the :class:`winnow.explore.engine.Engine`; the cycle results and
the builds are cached by content in the output directory (:mod:`winnow.explore.cache`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Callable

from winnow.model.errors import ConfigError, WinnowError

from . import evaluate, pareto, resources
from .cache import ResultCache, content_key
from .networks import Network
from .space import EmptySpaceError, SearchSpace, array_config
from .target import Target

#: Arrays screened per engine task (a task's overhead is about a millisecond; a point's screening 0.05 ms,
#: its cycle model a few).
BATCH = 64


class NothingFitsError(WinnowError):
    """No valid array of the space fits the part's limits."""


def screen_batch(points: list[dict], net: Network, family: str, coefficients: dict, limits: dict,
                 bandwidths: tuple, skip: list[bool]) -> list[dict]:
    """One engine task: per point, its configuration, estimated resources, whether it fits ``limits``
    (resource → most usable), and its cycles (:func:`winnow.explore.evaluate.evaluate_cycles`) when it
    fits and ``skip`` does not say they are cached already."""
    model = resources.ResourceModel(coefficients={family: coefficients})
    out = []
    for point, cached in zip(points, skip):
        try:
            cfg = array_config(point, net.limits())
        except ConfigError as exc:
            out.append({"status": "invalid", "error": str(exc)})
            continue
        est = model.predict(cfg, family)
        over = [f"{r} {est[r]:,} > {limits[r]:,.0f}" for r in limits if est[r] > limits[r]]
        rec = {"status": "too big" if over else "fits", "estimate": est, "over": over,
               "memory_bits": cfg.memory_bits, "multipliers": cfg.multipliers}
        if not over and not cached:
            rec["cycles"] = evaluate.evaluate_cycles(point, net, bandwidths)
        out.append(rec)
    return out


def _build_task(builder: Callable, board: str, params: dict, out_dir: str) -> dict:
    """One engine task: a board build; a failure is recorded, not raised, so the sweep goes on.

    A build stopped at its time limit after placement (``ToolTimeoutError`` with the placed
    ``utilisation``) is ``placed``: its resources are measured, its Fmax is not."""
    try:
        return {"status": "built", "report": builder(board, params, out_dir)}
    except Exception as exc:  # any failure of one build (tool, resources, a crash): recorded with its message
        res = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
        util = getattr(exc, "utilisation", None)
        if util and all(k in util for k in ("LUT", "FF", "DSP", "BRAM")):
            res.update(status="placed", utilisation={k: list(v) for k, v in util.items()})
        return res


def board_builder(board: str, params: dict, out_dir: str, time_limit_s: float | None = None) -> dict:
    """The real builder: :func:`winnow.boards.build.build_board` (YoWASP yosys + nextpnr), its report."""
    from winnow.boards.build import build_board
    from winnow.hw.config import AccelConfig

    cfg = AccelConfig.from_dict(params)
    return build_board(board, cfg, out_dir, progress=lambda line: None, time_limit_s=time_limit_s)


def placed_record(b: dict, board: str, family: str, provenance: dict) -> dict:
    """The calibration record of a build stopped after placement: its placed resources, no Fmax."""
    u = b["utilisation"]
    return {"id": f"{board}:explore-{b['key'][:16]}:placed", "board": board, "family": family, "status": "placed",
            "config": b["params"], "measured": {k: int(v[0]) for k, v in u.items()},
            "provenance": {**provenance, "note": b.get("error", "")[:300]}}


class Exploration:
    """One exploration into ``out`` (see :func:`explore`)."""

    def __init__(self, net: Network, target: Target, space: SearchSpace, engine, out: Path,
                 calibration: list[dict], progress: Callable[[str], None] = print, bars: bool = True):
        self.net, self.target, self.space, self.engine, self.out = net, target, space, engine, Path(out)
        self.calibration = list(calibration)
        self.progress, self.bars = progress, bars
        self.cycles_cache = ResultCache(self.out / "cache", "cycles")
        self.builds_cache = ResultCache(self.out / "cache", "builds")
        self.version = evaluate.model_version()
        self.bandwidths = tuple(sorted(set(space.bandwidth)))
        self.stats: dict = {}

    # -------------------------------------------------------------- evaluation
    def cycles_key(self, point: dict) -> str:
        return content_key("cycles", point, self.net.digest, self.version, self.bandwidths)

    def evaluate(self, model: resources.ResourceModel) -> list[dict]:
        """Screen and evaluate every array; return one record per (array, bandwidth) that is valid."""
        t0 = time.perf_counter()
        arrays = list(self.space.arrays())
        fam = self.target.family
        coef = model.coefficients.get(fam) or next(iter(model.coefficients.values()))
        limits = {r: self.target.limit(r) for r in self.target.resources}
        keys = [self.cycles_key(p) for p in arrays]
        have = self.cycles_cache.keys()
        net = self.engine.scatter(self.net)
        batches = [(arrays[i:i + BATCH], net, fam, coef, limits, self.bandwidths, [k in have for k in keys[i:i + BATCH]])
                   for i in range(0, len(arrays), BATCH)]
        results: list = [None] * len(arrays)
        computed = 0
        for b, res in self.engine.run(screen_batch, batches, label="evaluate", progress=self.bars):
            for j, rec in enumerate(res):
                i = b * BATCH + j
                if "cycles" in rec:
                    self.cycles_cache.put(keys[i], rec["cycles"])
                    computed += 1
                results[i] = rec
        records, invalid, cached = [], {}, 0
        for point, key, rec in zip(arrays, keys, results):
            if rec["status"] == "invalid":
                reason = rec["error"].split(":")[0][:60]
                invalid[reason] = invalid.get(reason, 0) + 1
                continue
            if rec["status"] == "fits":
                fresh = rec.pop("cycles", None)
                cached += fresh is None
                cyc = fresh or self.cycles_cache.get(key)
                if cyc is None:  # a cache entry vanished between listing and reading: evaluate it here
                    cyc = evaluate.evaluate_cycles(point, self.net, self.bandwidths)
                    self.cycles_cache.put(key, cyc)
                if cyc["status"] != "ok":  # the cycle model refused a layer: not a usable array
                    reason = cyc["error"].split(":")[0][:60]
                    invalid[reason] = invalid.get(reason, 0) + 1
                    continue
                for bw in self.bandwidths:
                    records.append(self._record(point, bw, rec, cyc))
            else:
                records.append({**point, "bandwidth": None, "status": "too big", "estimate": rec["estimate"],
                                "over": rec["over"], "multipliers": rec["multipliers"]})
        self.stats = {"arrays": len(arrays), "invalid": sum(invalid.values()), "invalid_reasons": invalid,
                      "too_big": sum(r["status"] == "too big" for r in records),
                      "fit_arrays": sum(r["status"] == "fits" for r in records) // max(1, len(self.bandwidths)),
                      "cycles_computed": computed, "cycles_cached": cached, "seconds": round(time.perf_counter() - t0, 2)}
        if not records:
            first = max(invalid, key=invalid.get) if invalid else "no array"
            raise EmptySpaceError(f"the search space holds no valid array: all {len(arrays):,} candidates are "
                                  f"refused (most often: {first})")
        if not any(r["status"] == "fits" for r in records):
            small = min(records, key=lambda r: sum(r["estimate"][x] / limits[x] for x in limits))
            raise NothingFitsError(
                f"nothing fits {self.target.name} at {self.target.max_util:.0%} of its resources: the smallest of "
                f"the {len(records):,} valid arrays needs {', '.join(small['over'])} (P = {small['pes']}, "
                f"L = {small['lanes']}, F({small['m']},3), {small['org']}); raise the limits or shrink the space")
        return records

    def _record(self, point: dict, bw: float, rec: dict, cyc: dict) -> dict:
        net = evaluate.with_bandwidth(cyc, bw)
        est = rec["estimate"]
        fmax = est["fmax_mhz"]
        return {**point, "bandwidth": bw, "status": "fits", "estimate": est, "measured": None,
                **{r: est[r] for r in ("LUT", "FF", "DSP", "BRAM")}, "fmax_mhz": fmax,
                "multipliers": rec["multipliers"], "memory_bits": rec["memory_bits"], "cycles": net["cycles"],
                "fps": fmax * 1e6 / net["cycles"], "fps_at_clock": self.target.clock_mhz * 1e6 / net["cycles"],
                "memory_bound_layers": net["memory_bound_layers"], "counts": cyc["counts"], "layers": net["layers"]}

    # -------------------------------------------------------------- builds
    def build(self, chosen: list[dict], builder: Callable) -> list[dict]:
        """Build each of ``chosen`` (records) on the target's board; a result per record, cached by content."""
        if self.target.board is None:
            raise ConfigError(f"--build needs a board to build on; {self.target.name} is a part given by its limits")
        limits = self.net.limits()
        todo, results = [], {}
        for rec in chosen:
            params = array_config(rec, limits).to_dict()
            key = content_key("build", self.target.board, params)
            got = self.builds_cache.get(key)
            if got is not None:
                results[key] = got
            else:
                todo.append((key, params))
        self.progress(f"[build] {len(chosen)} point(s) on {self.target.board}: {len(todo)} to build, "
                      f"{len(chosen) - len(todo)} cached (board builds take minutes each)")
        args = [(builder, self.target.board, params, str(self.out / "builds" / key[:16])) for key, params in todo]
        for i, res in self.engine.run(_build_task, args, label="build", progress=self.bars):
            key, params = todo[i]
            res = {**res, "params": params, "key": key}
            self.builds_cache.put(key, res)
            results[key] = res
            self.progress(f"      {key[:16]}: {res['status']}" + (f" ({res['error'][:200]})"
                                                                 if res["status"] != "built" else ""))
        out = []
        for rec in chosen:
            key = content_key("build", self.target.board, array_config(rec, limits).to_dict())
            out.append(results[key])
        return out


def apply_measurements(records: list[dict], builds: list[dict], chosen: list[dict], target: Target) -> None:
    """Replace the estimates of the built points by what their builds measured."""
    for rec, b in zip(chosen, builds):
        rec["build"] = {"status": b["status"], **({"error": b["error"]} if b["status"] == "failed" else {})}
        if b["status"] != "built":
            continue
        res = b["report"]["resources"]
        rec["measured"] = {k: res[k]["used"] for k in ("LUT", "FF", "DSP", "BRAM", "LUTRAM") if k in res}
        rec["measured"]["fmax_mhz"] = round(float(b["report"]["fmax_mhz"]), 2)
        for k in ("LUT", "FF", "DSP", "BRAM", "fmax_mhz"):
            if k in rec["measured"]:
                rec[k] = rec["measured"][k]
        rec["fps"] = rec["fmax_mhz"] * 1e6 / rec["cycles"]


def choose(records: list[dict], front_idx: list[int]) -> dict:
    """The chosen point: the front's highest throughput (ties: fewer LUTs, then DSPs, then bandwidth)."""
    return min((records[i] for i in front_idx), key=lambda r: (-r["fps"], r["LUT"], r["DSP"], r["bandwidth"]))


def explore(net: Network, target: Target, space: SearchSpace, engine, out, *, calibration=None, build: int = 0,
            builder: Callable = board_builder, progress: Callable[[str], None] = print, bars: bool = True,
            build_timeout_s: float | None = None) -> dict:
    """Run an exploration into ``out``; return the summary (what :func:`winnow.explore.report.write_report` renders).

    ``calibration``: records to fit the resource model on (default the repository's); ``build``: build
    the best N front points with ``builder`` (``board_builder``: the YoWASP tools) and refit on them;
    ``build_timeout_s``: stop each real build after that long (a placed-only build still calibrates the
    resources).
    """
    if builder is board_builder and build_timeout_s is not None:
        builder = functools.partial(board_builder, time_limit_s=build_timeout_s)
    t0 = time.perf_counter()
    calib = list(calibration if calibration is not None else resources.read_calibration())
    model = resources.fit(calib)
    ex = Exploration(net, target, space, engine, out, calib, progress, bars)
    progress(f"[1/{3 if build else 2}] evaluate {space.size:,} combinations on {engine.description}")
    records = ex.evaluate(model)
    fits = [r for r in records if r["status"] == "fits"]
    front_idx = pareto.front(fits)
    progress(f"      {ex.stats['fit_arrays']:,} arrays fit ({ex.stats['cycles_computed']:,} evaluated, "
             f"{ex.stats['cycles_cached']:,} cached), {ex.stats['too_big']:,} too big, {ex.stats['invalid']:,} "
             f"invalid; front: {len(front_idx)} points ({ex.stats['seconds']:.1f} s)")
    summary = {"network": net.to_dict(), "target": target.to_dict(), "space": space.to_dict(),
               "engine": engine.description, "model_version": ex.version, "stats": ex.stats,
               "model": model.to_dict(), "builds": [], "refit": None}
    if build:
        ranked = sorted(front_idx, key=lambda i: -fits[i]["fps"])[:build]
        chosen = [fits[i] for i in ranked]
        progress(f"[2/3] build the {len(chosen)} fastest front point(s)")
        results = ex.build(chosen, builder)
        prov = {"source": "winnow explore --build", "network": net.source}
        new = [resources.record_from_report(b["report"], {**prov, "key": b["key"]}) if b["status"] == "built"
               else placed_record(b, target.board, target.family, {**prov, "key": b["key"]})
               for b in results if b["status"] in ("built", "placed")]
        summary["builds"] = [{"point": {k: c[k] for k in ("m", "pes", "lanes", "clusters", "otu_lanes", "requant",
                                                           "org", "k_block", "patch", "c_block", "stream") if k in c},
                              "estimate": c["estimate"], "status": b["status"], "error": b.get("error"),
                              "measured": resources.record_from_report(b["report"], {})["measured"]
                              if b["status"] == "built" else {k: v[0] for k, v in b["utilisation"].items()}
                              if b["status"] == "placed" else None} for c, b in zip(chosen, results)]
        if new:
            calib = _merge(calib, new)
            before = resources.error_summary(resources.errors(model, new))
            model = resources.fit(calib)
            resources.write_calibration(ex.out / "calibration.json", calib)
            summary["refit"] = {"records": len(calib), "new": [r["id"] for r in new],
                                "error_before_refit": before,
                                "error_after_refit": resources.error_summary(resources.errors(model, new)),
                                "loo": resources.error_summary(resources.loo_errors(calib))}
            summary["model"] = model.to_dict()
            progress(f"      refit the resource model on {len(calib)} builds ({len(new)} new); re-evaluate")
            records = ex.evaluate(model)
            fits = [r for r in records if r["status"] == "fits"]
        measured = {b["key"]: b for b in results}
        limits = net.limits()
        for r in fits:  # the built points carry their measured figures
            k = content_key("build", target.board, array_config(r, limits).to_dict())
            if k in measured:
                apply_measurements(fits, [measured[k]], [r], target)
        front_idx = pareto.front(fits)
    chosen = choose(fits, front_idx)
    summary.update({"records": records, "front": [fits[i] for i in front_idx], "chosen": chosen,
                    "config": array_config(chosen, net.limits()), "seconds": round(time.perf_counter() - t0, 2)})
    return summary


def _merge(old: list[dict], new: list[dict]) -> list[dict]:
    ids = {r["id"] for r in new}
    return [r for r in old if r["id"] not in ids] + new
