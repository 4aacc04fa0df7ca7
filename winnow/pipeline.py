"""``winnow flow``: the steps from a TOML configuration to a report, as a resumable :class:`winnow.flow.Flow`.

    [1/7] train and prune      train/       checkpoint.pt, network/ (training-time export), experiment.json
    [2/7] export               export/      network/ (sparse layer files + manifest) from the checkpoint
    [3/7] generate             gen/         winnow_array.v, winnow_array_axis.v, params.json
    [4/7] simulate             sim/         every chosen layer on the RTL, bit-exact and cycle-exact
    [5/7] cycles               cycles/      sparse vs dense vs floor per layer and network
    [6/7] board build          build/       bitstream and resource report (only with [board])
    [7/7] report               report/      summary.md, summary.json, plots

Every step also writes ``report.json`` (and ``timing.json``). A step runs again only
when its configuration section, an upstream step's output or the source code it runs
(:func:`winnow.model.sources.source_digest` of its packages) changes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from winnow.model.sources import source_digest

from . import steps
from .flow import Flow, Step
from .flowconfig import FLOW_GEN_HINT, FlowConfig

def _model_inputs(cfg: FlowConfig) -> dict:
    """[model] and the digests of the files it names (an edited model file re-runs training)."""
    if cfg.model is None:
        return {}
    import hashlib

    files = [cfg.model["source"].rpartition(":")[0] if ".py:" in cfg.model["source"] else cfg.model["source"]]
    files += [cfg.model["weights"]] if "weights" in cfg.model else []
    return {"model": cfg.section("model"),
            "model_files": [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]}


def _network(ctx) -> Path:
    return ctx.upstream("export") / "network"


def _array(ctx):
    from winnow.hw.config import AccelConfig

    return AccelConfig.read_params(ctx.upstream("gen") / "params.json")


def build_flow(cfg: FlowConfig, out, progress=print, bars: bool = False) -> Flow:
    """The flow of ``cfg`` into directory ``out``."""

    def train(ctx):
        return steps.train(cfg, ctx.out, ctx.progress, bars=bars)

    def export(ctx):
        return steps.export(ctx.upstream("train"), ctx.out, ctx.progress)

    def gen(ctx):
        arr, _ = steps.network_array(_network(ctx), cfg.array_fields())
        return steps.gen(arr, ctx.out, ctx.progress, cost_hint=FLOW_GEN_HINT)

    def sim(ctx):
        from winnow.model.data.datasets import load_dataset

        sc = cfg.section("sim")
        data = load_dataset(cfg.experiment().dataset)
        items, expected = steps.network_items(_network(ctx), data.x_test.numpy(), sc["image"], sc["layers"])
        chosen = range(len(items)) if sc["layers"] == "all" else sc["layers"]
        rep = steps.simulate(_array(ctx), items, sc["simulator"], ctx.cache(f"sim-{sc['simulator']}"),
                             waves=sc["waves"], progress=ctx.progress, expected=expected,
                             labels=[steps.conv_label(i, item[0]) for i, item in zip(chosen, items)])
        return {**rep, "image": sc["image"], "label": int(data.y_test[sc["image"]])}

    def cycles(ctx):
        return steps.cycles(_array(ctx), steps.network_layers(_network(ctx)), ctx.out)

    def build(ctx):
        from winnow.boards.build import build_board

        # builds in the cache, so that unchanged yosys/nextpnr steps are reused; the results are copied
        cache = ctx.cache(f"board-{cfg.board['name']}")
        rep = build_board(cfg.board["name"], _array(ctx), cache, progress=ctx.progress)
        for name in (rep["bitstream"], "params.json", "hostlink.json", rep["nextpnr_report"]):
            shutil.copy2(cache / name, ctx.out / name)
        return rep

    def report(ctx):
        from .report import write_report

        return write_report(ctx.root, ctx.out, title=cfg.report.get("title"))

    def code(*pkgs):
        return {"sources": source_digest(*pkgs)}

    st = "winnow/steps.py"  # every step's work lives there; the pipeline wiring in this file
    flow_steps = [
        Step("train", "train and prune", train, inputs={**code("model", st), "train": cfg.section("train"),
                                                        **_model_inputs(cfg)}),
        Step("export", "export the integer network", export, inputs=code("model", st), needs=("train",)),
        Step("gen", "generate the PE array", gen, inputs={**code("model", "hw", st), "array": cfg.section("array")},
             needs=("export",)),
        Step("sim", "simulate on the RTL", sim, inputs={**code("model", "hw", "sim", st), "sim": cfg.section("sim")},
             needs=("export", "gen")),
        Step("cycles", "cycles: sparse vs dense vs floor", cycles, inputs=code("model", "hw", st),
             needs=("export", "gen")),
    ]
    if cfg.board is not None:
        flow_steps.append(Step("build", f"build for {cfg.board['name']}", build,
                               inputs={**code("hw", "boards"), "board": cfg.section("board")}, needs=("gen",)))
    flow_steps.append(Step("report", "report", report,
                           inputs={**code("winnow/report.py", st), "report": cfg.section("report")},
                           needs=tuple(s.name for s in flow_steps)))
    return Flow(out, flow_steps, progress=progress)
