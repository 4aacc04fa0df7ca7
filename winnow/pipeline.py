"""``winnow flow``: the steps from a TOML configuration to a report, as a resumable :class:`winnow.flow.Flow`.

    [1/7] train and prune      train/       checkpoint.pt, network/ (training-time export), experiment.json
    [2/7] export               export/      network/ (sparse layer files + manifest) from the checkpoint
    [3/7] generate             gen/         winnow_array.v, winnow_array_axis.v, params.json
    [4/7] simulate             sim/         every chosen layer on the RTL, bit-exact and cycle-exact
    [5/7] cycles               cycles/      sparse vs dense vs floor per layer and network
    [6/7] board build          build/       bitstream and resource report (only with [board])
    [7/7] report               report/      summary.md, summary.json, plots

Every step also writes ``report.json``. A step runs again only when its configuration
section, an upstream step's output or the Winnow version changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from model.errors import WinnowError

from . import steps
from .flow import Flow, Step
from .flowconfig import FlowConfig

VERSION = "0.1.0"


def _network(ctx) -> Path:
    return ctx.upstream("export") / "network"


def _array(ctx):
    from hw.config import AccelConfig

    return AccelConfig.from_dict(json.loads((ctx.upstream("gen") / "params.json").read_text(encoding="utf-8")))


def build_flow(cfg: FlowConfig, out, progress=print, bars: bool = False) -> Flow:
    """The flow of ``cfg`` into directory ``out``."""

    def train(ctx):
        return steps.train(cfg, ctx.out, ctx.progress, bars=bars)

    def export(ctx):
        return steps.export(ctx.upstream("train"), ctx.out, ctx.progress)

    def gen(ctx):
        arr, _ = steps.network_array(_network(ctx), cfg.array_fields())
        return steps.gen(arr, ctx.out, ctx.progress)

    def sim(ctx):
        from model.data import load_dataset
        from sim.network import traced_convolutions

        sc = cfg.section("sim")
        arr = _array(ctx)
        data = load_dataset(cfg.experiment().dataset)
        if not 0 <= sc["image"] < len(data.x_test):
            raise WinnowError(f"[sim].image = {sc['image']}: the test split has {len(data.x_test)} images")
        traced = traced_convolutions(_network(ctx), data.x_test[sc["image"]].numpy())
        chosen = range(len(traced)) if sc["layers"] == "all" else sc["layers"]
        bad = [i for i in chosen if i >= len(traced)]
        if bad:
            raise WinnowError(f"[sim].layers: conv index {bad[0]} out of range; the network has {len(traced)} "
                              f"convolutions (0 … {len(traced) - 1})")
        items = [(traced[i][0].name, traced[i][0], traced[i][1]) for i in chosen]
        expected = [traced[i][2] for i in chosen]
        rep = steps.simulate(arr, items, sc["simulator"], ctx.cache(f"sim-{sc['simulator']}"), waves=sc["waves"],
                             progress=ctx.progress, expected=expected)
        return {**rep, "image": sc["image"], "label": int(data.y_test[sc["image"]])}

    def cycles(ctx):
        return steps.cycles(_array(ctx), steps.network_layers(_network(ctx)), ctx.out)

    def build(ctx):
        from boards.build import build_board

        return build_board(cfg.board["name"], _array(ctx), ctx.out, progress=ctx.progress)

    def report(ctx):
        from .report import write_report

        return write_report(ctx.root, ctx.out, title=cfg.report.get("title"))

    ver = {"winnow": VERSION}
    flow_steps = [
        Step("train", "train and prune", train, inputs={**ver, "train": cfg.section("train")}),
        Step("export", "export the integer network", export, inputs=ver, needs=("train",)),
        Step("gen", "generate the PE array", gen, inputs={**ver, "array": cfg.section("array")}, needs=("export",)),
        Step("sim", "simulate on the RTL", sim, inputs={**ver, "sim": cfg.section("sim")}, needs=("export", "gen")),
        Step("cycles", "cycles: sparse vs dense vs floor", cycles, inputs=ver, needs=("export", "gen")),
    ]
    if cfg.board is not None:
        flow_steps.append(Step("build", f"build for {cfg.board['name']}", build,
                               inputs={**ver, "board": cfg.section("board")}, needs=("gen",)))
    flow_steps.append(Step("report", "report", report, inputs={**ver, "report": cfg.section("report")},
                           needs=tuple(s.name for s in flow_steps)))
    return Flow(out, flow_steps, progress=progress)
