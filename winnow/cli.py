"""winnow: from a PyTorch model to a sparse Winograd accelerator on a board, one subcommand per step.

    winnow train   CONFIG.toml --out DIR        train and prune ([train]); checkpoint + exported network
    winnow export  TRAIN_DIR --out DIR          sparse layer files + manifest from a training run
    winnow gen     [array options] --out DIR    Verilog + params.json of a PE array
    winnow sim     LAYER.wnl | --network DIR | --random C,K,H,W   one or more layers on the RTL
    winnow cycles  LAYER.wnl ... | --network DIR   sparse vs dense vs floor, per layer and network
    winnow build   BOARD [--preset NAME] --out DIR   bitstream and resource report
    winnow report  RUN_DIR                      summary.md + plots from a flow's step reports
    winnow flow    CONFIG.toml --out DIR        all of it, resumable, skipping unchanged steps
    winnow explore NETWORK --board B --out DIR  Pareto front of arrays for a network and part; chosen preset
    winnow prune   [--method M …] --out DIR     one pruning experiment, any registered method
    winnow import  MODEL --input-shape C,H,W --out DIR   your own CNN (ONNX or file.py:factory)
    winnow demo-foundation [--images N]         float and integer Winograd convolution of MNIST digits

Every command that measures writes JSON (``report.json``; ``cycles --json FILE``) beside
its Markdown. Bad input is one line on stderr and exit status 2 (``--debug`` shows the
traceback); anything else is a bug and prints Python's traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from winnow.hw.config import ARRAY_FIELDS
from winnow.model.errors import ConfigError, WinnowError

#: The example the help ends with: it runs as printed from the repository's root (tests/test_winnow_cli.py).
EXAMPLE = "winnow flow winnow/configs/demo.toml --out out/demo"
EPILOG = f"Configuration reference: docs/cli.md. Example (from the repository's root, what 'make demo' runs): {EXAMPLE}"


def _progress(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------- shared options
#: Help of the array fields (winnow.hw.config.ARRAY_FIELDS; docs/hardware.md explains each).
ARRAY_HELP = {
    "pes": "P, zero-skipping PEs", "lanes": "L, tiles per PE cycle",
    "clusters": "S, PE clusters (rows split by k mod S)", "k_block": "output channels per block",
    "otu_lanes": "tiles the output unit starts per cycle (default gcd(L, 4))",
    "requant": "requantizers per OTU lane, a divisor of m² (default m²: a tile per cycle)",
    "k_max": "largest K", "h_max": "largest input height", "w_max": "largest input width",
    "pad_max": "largest padding", "stream_depth": "entries per PE stream",
}
DATAPATH_DEFAULTS = {"m": 4, "act_bits": 8, "weight_bits": 8, "c_max": 32}


def _array_options(p: argparse.ArgumentParser, datapath: bool, default: str) -> None:
    g = p.add_argument_group("array", f"the PE array: {default}; a board preset or a params.json, whose fields "
                                      "the field options below then change")
    g.add_argument("--preset", help="a board preset (ulx3s: the streaming array, implies --memory; ulx3s-onchip, "
                                    "ulx3s-f43, orangecrab, icebreaker: on-chip arrays)")
    g.add_argument("--params", type=Path, help="params.json of a generated array")
    for name in ARRAY_FIELDS:
        g.add_argument("--" + name.replace("_", "-"), type=int, help=ARRAY_HELP[name])
    g.add_argument("--serial", action=argparse.BooleanOptionalAction, default=None,
                   help="position-serial memories (one input, V' and accumulator memory instead of n² banks; "
                        "n² cycles per tile in the input and output units; needs clusters = pes): for parts "
                        "with few block RAMs such as the iCE40")
    g.add_argument("--tiled", action=argparse.BooleanOptionalAction, default=None,
                   help="tiled mode: layers larger than the array run as passes over input windows of h_max × "
                        "w_max (halo included), C blocks of --c-block channels and blocks of k_max output "
                        "channels, the partial sums kept in the accumulators (docs/hardware.md)")
    g.add_argument("--c-block", type=int, help="input channels per pass in tiled mode (default c_max)")
    if datapath:
        d = p.add_argument_group("datapath", "for arrays not tied to layers or a preset")
        d.add_argument("--m", type=int, help="output tile m of F(m, 3) (default 4)")
        d.add_argument("--act-bits", type=int, help="activation bits (default 8)")
        d.add_argument("--weight-bits", type=int, help="Winograd weight bits (default 8)")
        d.add_argument("--c-max", type=int, help="largest C (default 32)")
    p.add_argument("--mode", choices=("sparse", "dense"), default="sparse",
                   help="stream only the non-zeros, or every weight (the dense baseline)")


def _given_fields(a) -> dict:
    return {k: getattr(a, k) for k in ARRAY_FIELDS + ("serial", "tiled", "c_block") if getattr(a, k, None) is not None}


def _given_datapath(a) -> dict:
    return {k: getattr(a, k) for k in DATAPATH_DEFAULTS if getattr(a, k, None) is not None}


def _preset_memory(a) -> None:
    """A streaming preset (``winnow.boards.presets.STREAM_PRESETS``) runs through external memory: ``--memory``."""
    if getattr(a, "preset", None) is not None and hasattr(a, "memory"):
        from winnow.boards.presets import STREAM_PRESETS

        if a.preset in STREAM_PRESETS:
            a.memory = True


def _resolve_array(a, datapath=None):
    """The AccelConfig of the options: a --params or --preset changed by any field option, or the default
    fields with the given (layers') datapath or the datapath options."""
    from winnow.hw.config import AccelConfig
    from winnow.model.integer.datapath import DatapathConfig

    from .flowconfig import DEFAULT_ARRAY
    from .steps import array_config

    fields = _given_fields(a)
    if a.params is not None or a.preset is not None:
        if a.params is not None and a.preset is not None:
            raise WinnowError("give --params or --preset, not both")
        if _given_datapath(a):
            raise WinnowError(f"--{'/--'.join(k.replace('_', '-') for k in _given_datapath(a))}: the "
                              f"{'params.json' if a.params else 'preset'} fixes the datapath")
        if a.params is not None:
            base = AccelConfig.read_params(a.params)
        else:
            from winnow.boards.presets import preset

            base = preset(a.preset)
        try:  # what depends on the changed fields is re-derived unless given
            return base.changed(mode=a.mode, **fields)
        except ConfigError as exc:
            raise ConfigError(f"{'--params' if a.params else '--preset'} with the field options: {exc}") from None
    dp = datapath
    if dp is None:
        dp = DatapathConfig(r=3, **{**DATAPATH_DEFAULTS, **_given_datapath(a)})
    base = {**DEFAULT_ARRAY, **({"pad_max": 0} if fields.get("tiled") else {})}  # tiled: the windows carry the padding
    return array_config(dp, {**base, **fields}, mode=a.mode, where="array options")


def _layers_from_files(files) -> list:
    from winnow.model.files.layer_file import read_layer

    return [(Path(f).stem, read_layer(f)) for f in files]


# ---------------------------------------------------------------------------- subcommands
@contextlib.contextmanager
def _out_dir(path: Path):
    """Create ``path`` for a subcommand's output; remove what it created if the command fails and it is still empty."""
    if path.exists() and not path.is_dir():
        raise WinnowError(f"{path}: not a directory (expected an output directory)")
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the user's path: name it, not a traceback
        raise WinnowError(f"{path}: cannot create the output directory ({exc.filename}: {exc.strerror})") from None
    try:
        yield path
    except BaseException:
        for p in created:
            if not (p.is_dir() and not any(p.iterdir())):
                break
            p.rmdir()
        raise


def _user_outputs(a) -> list[Path]:
    """The output directories the user named (``--out``; the folder of ``cycles --json FILE``)."""
    outs = [getattr(a, "out", None)]
    if getattr(a, "json", None) is not None:
        outs.append(Path(a.json).parent)
    return [Path(o) for o in outs if o is not None]


def _load_config(path):
    """The flow configuration at the user's ``path``; an unreadable file is a named error."""
    from .flowconfig import load_flow_config

    try:
        return load_flow_config(path)
    except OSError as exc:  # a directory, no permission (a missing file is a FlowConfigError already)
        raise WinnowError(f"{path}: cannot read the configuration file ({exc.strerror})") from None


def cmd_train(a) -> int:
    from winnow.model.files.atomic import atomic_write_json

    from . import steps

    cfg = _load_config(a.config)
    rep = steps.train(cfg, a.out, _progress, bars=True)
    atomic_write_json(a.out / "report.json", {"step": "train", **rep})
    print((a.out / "experiment.md").read_text())
    print(f"wrote {a.out / 'checkpoint.pt'}, {a.out / 'network'}, {a.out / 'report.json'}")
    return 0


def cmd_export(a) -> int:
    from winnow.model.files.atomic import atomic_write_json

    from . import steps

    if not (a.train_dir / "checkpoint.pt").exists():
        raise WinnowError(f"{a.train_dir}: no checkpoint.pt (expected the output directory of 'winnow train')")
    rep = steps.export(a.train_dir, a.out, _progress)
    atomic_write_json(a.out / "report.json", {"step": "export", **rep})
    for i, l in enumerate(rep["layers"]):
        print(f"  {steps.conv_label(i, l['name'])}: {l['C']}→{l['K']}, {'×'.join(map(str, l['size']))}, {l['tile']}, "
              f"density {l['density']:.3f}")
    print(f"wrote {a.out / 'network' / 'network.json'}")
    return 0


def cmd_gen(a) -> int:
    from winnow.model.files.atomic import atomic_write_json

    from . import steps

    _preset_memory(a)
    if a.memory and a.tiled is None:
        a.tiled = True
    cfg = _resolve_array(a)
    rep = steps.gen(cfg, a.out, _progress, allow_slow=a.allow_slow)
    if a.preset is not None:  # the on-chip memory against the preset's part
        rep["board_memory"] = steps.board_memory(cfg, a.preset, _progress)
    written = [a.out / rep["verilog"], a.out / rep["axis_wrapper"]]
    if a.memory:
        from . import memory_steps

        rep["stream"] = memory_steps.gen(cfg, a.out, _progress)
        written.append(a.out / rep["stream"]["verilog"])
    atomic_write_json(a.out / "report.json", {"step": "gen", **rep})
    print(f"wrote {', '.join(map(str, written))}, {a.out / 'params.json'}")
    return 0


def _parse_random(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        vals = tuple(int(v) for v in parts) if len(parts) == 4 and all(len(v.strip()) <= 9 for v in parts) else ()
    except ValueError:
        vals = ()
    if len(vals) != 4 or min(vals) < 1:
        raise WinnowError(f"--random expects C,K,H,W (four positive integers), got {text[:60]!r}")
    return vals


def _positive_minutes(text: str) -> float:
    """argparse type: a positive number of minutes, at most a week."""
    try:
        v = float(text) if len(text) <= 12 else -1.0
    except ValueError:
        v = -1.0
    if not 0 < v <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes (at most a week), got {text[:20]!r}")
    return v


def _seed(text: str) -> int:
    """argparse type: a seed in [0, 2^32)."""
    try:
        v = int(text) if len(text) <= 12 else -1
    except ValueError:
        v = -1
    if not 0 <= v < 1 << 32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2^32), got {text[:40]!r}")
    return v


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a density in [0, 1], got {text!r}")
    return v


def cmd_sim(a) -> int:
    from winnow.model.files.atomic import atomic_write_json
    from winnow.sim.layers import random_input, random_layer

    from . import steps

    expected = None
    _preset_memory(a)
    if a.memory and a.tiled is None:  # the streaming array is a tiled-mode array
        a.tiled = True
    sources = [name for name, given in (("layer files", bool(a.layers)), ("--network", a.network is not None),
                                        ("--random", a.random is not None)) if given]
    if len(sources) > 1:
        raise WinnowError(f"give one source of layers, not {' and '.join(sources)}")
    if a.random is None and _given_datapath(a):
        raise WinnowError(f"{', '.join('--' + k.replace('_', '-') for k in _given_datapath(a))}: datapath options apply to --random only; layer files "
                          "and networks carry their own datapath")
    labels = None
    if a.network is not None:
        from winnow.model.files.export import read_network

        loaded = read_network(a.network)  # manifest, files and checksums validated, each file read once
        net, layers, chosen = loaded.net, steps.network_layers(a.network, loaded), a.layer or "all"
        steps.check_layer_choice(layers, chosen, "--layer")
        arr = _resolve_array(a, None if (a.params or a.preset) else layers[0][1].config)
        for i in (range(len(layers)) if chosen == "all" else chosen):  # before any activation is computed
            steps.check_runnable(arr, layers[i][1])
        images = _images_for(tuple(net.input_shape))
        if a.memory:  # the network runs layer after layer through memory, traced once there
            steps.check_image(images, a.image)
            items = None
        else:
            items, expected = steps.network_items(a.network, images, a.image, chosen)
        labels = [steps.conv_label(i, layers[i][0]) for i in (range(len(layers)) if chosen == "all" else chosen)]
    elif a.random is not None:
        C, K, H, W = _parse_random(a.random)
        arr = _resolve_array(a)  # the datapath options (or the preset's, the params.json's)
        steps.check_runnable_shape(arr, "--random", C, K, (H, W), (1, 1))  # before its arrays exist
        layer = random_layer(arr.datapath, C=C, K=K, H=H, W=W, density=a.density, seed=a.seed, name="random")
        items = [("random", layer, random_input(layer, seed=a.seed + 1))]
    elif a.layers:
        layers = _layers_from_files(a.layers)
        arr = _resolve_array(a, None if (a.params or a.preset) else layers[0][1].config)
        for _, layer in layers:  # before the random inputs exist
            steps.check_runnable(arr, layer)
        items = [(n, l, random_input(l, seed=a.seed)) for n, l in layers]
    else:
        raise WinnowError("give layer files, --network DIR or --random C,K,H,W")
    build = a.build_dir or a.out / f"build-{a.sim}{'-memory' if a.memory else ''}"
    if a.memory:
        from . import memory_steps

        if a.waves:
            raise WinnowError("--waves is not available with --memory")
        if a.network is not None:
            rep = memory_steps.simulate_network(arr, a.network, images[a.image], a.sim, build, progress=_progress,
                                                layers=None if chosen == "all" else chosen)
        else:
            rep = memory_steps.simulate(arr, items, a.sim, build, progress=_progress, labels=labels)
    else:
        rep = steps.simulate(arr, items, a.sim, build, waves=a.waves, progress=_progress, expected=expected,
                             labels=labels)
    source = ({"random": dict(zip("CKHW", _parse_random(a.random)), density=a.density, seed=a.seed)}
              if a.random is not None else {"network": str(a.network)} if a.network is not None
              else {"layers": [str(f) for f in a.layers]})
    atomic_write_json(a.out / "report.json", {"step": "sim", **source, "preset": a.preset,
                                              "array": arr.to_dict(), "through_memory": bool(a.memory), **rep})
    where = " through external memory (AxiRam)" if a.memory else ""
    print(f"all {len(rep['layers'])} layer(s) bit-exact and cycle-exact under {a.sim}{where}; wrote "
          f"{a.out / 'report.json'}" + (f"; waves: {', '.join(rep['waves'])}" if rep["waves"] else ""))
    return 0


def _images_for(shape):
    """Test images for a network input shape: MNIST-5k for 1×28×28, sklearn digits for 1×8×8."""
    from winnow.model.data.datasets import load_dataset

    for name in ("mnist5k", "digits"):
        data = load_dataset(name)
        if tuple(data.input_shape) == tuple(shape):
            return data.x_test.numpy()
    raise WinnowError(f"no embedded test images of shape {shape}: use layer files with random inputs")


def cmd_cycles(a) -> int:
    from winnow.model.files.atomic import atomic_write_json

    from . import steps

    if a.network is not None and a.layers:
        raise WinnowError(f"give layer files or --network, not both ({len(a.layers)} layer file(s) and "
                          f"--network {a.network})")
    if a.network is not None:
        layers = steps.network_layers(a.network)
    elif a.layers:
        layers = _layers_from_files(a.layers)
    else:
        raise WinnowError("give layer files or --network DIR")
    _preset_memory(a)
    if a.memory and a.tiled is None:
        a.tiled = True
    arr = _resolve_array(a, None if (a.params or a.preset) else layers[0][1].config)
    if a.memory:
        from . import memory_steps

        doc = memory_steps.cycles(arr, layers)
        print(memory_steps.cycles_markdown(doc))
    else:
        doc = steps.cycles(arr, layers)
        print(steps.cycles_markdown(doc))
    if a.json is not None:
        atomic_write_json(a.json, doc)
        print(f"wrote {a.json}")
    return 0


def cmd_build(a) -> int:
    from winnow.boards.build import build_board

    custom = a.params is not None or _given_fields(a) or _given_datapath(a) or a.mode != "sparse"
    cfg = _resolve_array(a) if custom else a.preset
    rep = build_board(a.board, cfg, a.out, progress=_progress)
    print(f"wrote {Path(a.out) / rep['bitstream']} and {Path(a.out) / 'report.json'}")
    return 0


def cmd_report(a) -> int:
    from winnow.model.files.json_file import read_json

    from .report import check_board_report, write_report

    boards = {}
    for f in a.board_report or []:
        doc = check_board_report(read_json(f, what="board report", missing="no such board build report"), f)
        boards[doc.get("board", Path(f).parent.name)] = doc
    out = a.out or a.run_dir / "report"
    rep = write_report(a.run_dir, out, title=a.title, boards=boards)
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'} and {len(rep['plots'])} plot(s) in {out / 'plots'}")
    return 0


def cmd_flow(a) -> int:
    from .pipeline import build_flow

    cfg = _load_config(a.config)
    flow = build_flow(cfg, a.out, progress=_progress, bars=True)
    unknown = [s for s in a.force if s not in [st.name for st in flow.steps]]
    if unknown:
        raise WinnowError(f"--force {unknown[0]}: no such step; steps: {', '.join(s.name for s in flow.steps)}")
    flow.run(force=tuple(a.force))
    _flow_epilogue(Path(a.out))
    return 0


def _flow_epilogue(root: Path) -> None:
    """Print the cycle comparison and where the report is."""
    cyc = root / "cycles" / "cycles.md"
    if cyc.exists():
        print()
        print(cyc.read_text())
    sim = root / "sim" / "report.json"
    if sim.exists():
        from winnow.model.files.json_file import read_json

        s = read_json(sim)
        print(f"RTL ({s['simulator']}): {sum(r['outputs'] for r in s['layers']):,} outputs of "
              f"{len(s['layers'])} layer(s) bit-exact, cycles equal to the model.")
    rep = root / "report" / "summary.md"
    if rep.exists():
        print(f"Report: {rep} (plots in {rep.parent / 'plots'}, figures in {rep.parent / 'summary.json'})")


#: The search axes of ``winnow explore`` (winnow.explore.space.SearchSpace fields) and their help.
EXPLORE_AXES = {
    "m": "output tiles m of F(m, 3)", "pes": "P values", "lanes": "L values", "clusters": "S values",
    "otu_lanes": "output-unit lanes", "requant": "requantizers per OTU lane: 1, m, m2",
    "k_block": "output-channel blocks ('all': none; tiled: the block)", "org": "banked, serial, tiled",
    "patch": "tiled: window in output tiles per side", "c_block": "tiled: input channels per pass",
    "stream": "PE stream memories as a fraction of a dense layer's (1.0: any density)",
    "bandwidth": "memory port, bytes per array cycle (default: the board's)",
}


def cmd_explore(a) -> int:
    from winnow.explore import networks, report, resources, space, sweep, target
    from winnow.explore.engine import Engine

    tg = target.parse_target(a.board, a.max_util)
    net = networks.load_network(a.network)
    axes = {k: space.parse_axis(k, getattr(a, "axis_" + k)) for k in EXPLORE_AXES if getattr(a, "axis_" + k)}
    axes.setdefault("bandwidth", tuple(tg.bandwidths))
    if "org" not in axes:
        axes["org"] = ("banked", "serial", "tiled") if tg.family == "ice40" else ("banked", "tiled")
    sp = space.SearchSpace(**axes)
    if a.build and tg.board is None:
        raise ConfigError(f"--build needs a board to build on; {tg.name} is a part given by its limits")
    calib = resources.read_calibration(a.calibration) if a.calibration else None
    with Engine(a.cluster, processes=a.workers, timeout=a.timeout) as engine:
        doc = sweep.explore(net, tg, sp, engine, a.out, calibration=calib, build=a.build, progress=_progress,
                            bars=not a.no_progress, build_timeout_s=a.build_timeout * 60)
    files = report.write_report(doc, a.out)
    print()
    print(report.front_markdown(doc))
    ch = doc["chosen"]
    print(f"chosen: {report._arch(ch)} at {ch['bandwidth']:g} B/cycle, {ch['fps']:,.1f} inferences/s "
          f"({ch['cycles']:,} cycles); preset {files['params']}")
    print(f"wrote {a.out / 'summary.md'}, {a.out / 'points.json'}, {a.out / 'pareto.png'} ({doc['seconds']:.1f} s)")
    return 0


def cmd_prune(a) -> int:
    from winnow.model.apps import prune_experiment

    return prune_experiment.run(a)


def cmd_import(a) -> int:
    from winnow.model.imports.graph import parse_input_shape
    from winnow.model.imports.importer import (agreement, calibration_images, import_model, import_report,
                                               prune_imported, quantize_imported, write_import)

    shape = parse_input_shape(a.input_shape)
    if a.calib < 1 or a.calib > 4096:
        raise WinnowError(f"--calib expects 1 … 4096 calibration images, got {a.calib}")
    split = None
    if not a.no_quantize or a.density is not None:  # the data is checked before anything is read or written
        calib, split = calibration_images(shape, a.data, a.calib)
    imp = import_model(a.model, shape, a.weights, m=a.m, r=a.r)
    print(f"read {a.model}: {len(imp.rows)} operations, {len(imp.net.convs)} convolution(s) on the array as "
          f"F({imp.net.spec['m']},{imp.net.spec['r']}); lowered float model = original within "
          f"{imp.lowering_error:.1e} (relative)")
    rep = import_report(imp)
    if a.density is not None:
        pruner = prune_imported(imp.net, split, a.density, a.steps, seed=a.seed)
        rep["pruning"] = {"density": a.density, "steps": a.steps, "winograd_density": pruner.density()}
        print(f"pruned to Winograd-domain density {pruner.density():.3f}, {a.steps} fine-tuning steps")
    inet = None
    if not a.no_quantize:
        inet = quantize_imported(imp, calib, c_max=a.c_max)
        check = agreement(imp, inet, split.x_test[:256], split.y_test[:256])
        rep["quantization"] = {"data": split.name, "calibration_images": int(len(calib)), "check": check}
        print(f"quantized on {len(calib)} {split.name} images; integer vs float top-1 agreement "
              f"{check['integer_vs_float_top1']:.1%} on {check['images']} test images")
    write_import(a.out, imp, inet, rep)
    for r in rep["operations"]:
        print(f"  {r['node']}: {r['op']} → {r['runs_on']}: {r['how']}")
    print(f"wrote {a.out / 'model.pt'}" + (f", {a.out / 'network'}" if inet is not None else "") +
          f", {a.out / 'report.md'}, {a.out / 'report.json'}")
    return 0


def cmd_demo_foundation(a) -> int:
    from winnow.model.apps import demo

    return demo.main(a)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command (docs/cli.md)."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


class _LazyParser(_Parser):
    """A subcommand parser whose options are added when it is first used.

    ``winnow prune``'s options come from the registered pruning methods, which import
    torch: building them only when ``prune`` is parsed or its help shown keeps every
    other command's start-up fast (the foundation demo's likewise).
    """

    def __init__(self, *args, add_options=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_options = add_options

    def _populate(self) -> None:
        if self._add_options is not None:
            add, self._add_options = self._add_options, None
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self._populate()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self._populate()
        return super().format_help()

    def format_usage(self):
        self._populate()
        return super().format_usage()


def _prune_options(p: argparse.ArgumentParser) -> None:
    from winnow.model.apps.prune_experiment import add_arguments

    add_arguments(p)


def _demo_options(p: argparse.ArgumentParser) -> None:
    from winnow.model.apps.demo import add_arguments

    add_arguments(p)


# ---------------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="winnow", allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n")[1] + "\n\n" + EPILOG)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_LazyParser)

    p = sub.add_parser("train", help="train and prune from a TOML configuration ([train] section)",
                       description="Train the dataset's default CNN, prune it (the [train] method and density, "
                                   "plus the [train].sweep densities), fine-tune with fake quantization and "
                                   "measure float, fake-quant and integer accuracy. Writes checkpoint.pt, "
                                   "network/ (sparse layer files), experiment.json/.md and report.json.")
    p.add_argument("config", type=Path, help="TOML configuration (docs/cli.md)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="sparse layer files from a training run",
                       description="Rebuild the fine-tuned model from a 'winnow train' directory's checkpoint and "
                                   "export its integer network: one sparse layer file per convolution "
                                   "(docs/pytorch.md) and network.json.")
    p.add_argument("train_dir", type=Path, help="output directory of 'winnow train'")
    p.add_argument("--out", type=Path, required=True, help="output directory (network/ goes in it)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("gen", help="Verilog + params.json of a PE array",
                       description="Generate the PE array's Verilog (winnow_array.v), its AXI-Stream wrapper "
                                   "(winnow_array_axis.v: an instance of the array behind an AXI-Stream load slave "
                                   "and output read-back master, compiled together with winnow_array.v; "
                                   "docs/hardware.md) and params.json, from a preset, a "
                                   "params.json or explicit fields.")
    _array_options(p, datapath=True, default="default fields P=4, L=4, S=1, C, K ≤ 32, 28×28")
    p.add_argument("--allow-slow", action="store_true",
                   help="generate even when the estimated elaboration time or memory is above the limits "
                        "(5 min, 4 GB; the estimate is printed either way)")
    p.add_argument("--memory", action="store_true",
                   help="also the streaming array (winnow_stream.v: the tiled-mode array, its controller and "
                        "an AXI4 master for external memory; implies --tiled; docs/hardware.md)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("sim", help="run layers on the generated RTL (cocotb), bit- and cycle-exact",
                       description="Simulate layers on the generated Verilog under Verilator or Icarus through "
                                   "cocotb and check every output against the integer reference and every cycle "
                                   "count against the model. Layers: sparse layer files (random inputs), an "
                                   "exported network (real activations of a test image), or a random layer.")
    p.add_argument("layers", nargs="*", type=Path, help="sparse layer files (.wnl)")
    p.add_argument("--network", type=Path, help="an exported network directory (network.json)")
    p.add_argument("--layer", type=int, action="append", help="conv index of --network to run, 0 for its first "
                                                                "convolution (the '#' column of 'winnow cycles'; "
                                                                "repeatable; default: all)")
    p.add_argument("--image", type=int, default=0, help="test image for --network (default 0)")
    p.add_argument("--random", metavar="C,K,H,W", help="a random layer of this shape")
    p.add_argument("--density", type=_fraction, default=0.3, help="Winograd density of --random (default 0.3)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of random layers and inputs (0 … 2^32 − 1)")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    p.add_argument("--waves", action="store_true", help="write waveforms (FST under Icarus, VCD under Verilator)")
    p.add_argument("--memory", action="store_true",
                   help="run through the streaming array: the layer's memory image in a simulated RAM "
                        "(cocotbext-axi AxiRam) on its AXI4 port, every pass fetched from it and the outputs "
                        "written back (implies --tiled; with --network each layer reads what the previous one "
                        "wrote, host operations in between)")
    _array_options(p, datapath=True, default="default fields (P=4, L=4, S=1, C, K ≤ 32, 28×28) with the layers' datapath")
    p.add_argument("--out", type=Path, default=Path("out/sim"), help="output directory (default out/sim)")
    p.add_argument("--build-dir", type=Path, help="simulator build directory, reused while the array is unchanged "
                                                  "(default OUT/build-SIM; a flow's is RUN/cache/sim-SIM)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("cycles", help="sparse vs dense vs floor cycles, per layer and network",
                       description="Exact cycles (winnow.hw.cycle_model) of layers on an array: sparse, dense Winograd on "
                                   "the same array, and the physical floor ⌈T·nnz/(P·L)⌉, per layer and summed.")
    p.add_argument("layers", nargs="*", type=Path, help="sparse layer files (.wnl)")
    p.add_argument("--network", type=Path, help="an exported network directory")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--memory", action="store_true",
                   help="the streaming array's cycles through external memory (implies --tiled): compute, "
                        "load words, input windows and outputs, the roofline floor and the bound per layer")
    _array_options(p, datapath=False, default="default fields (P=4, L=4, S=1, C, K ≤ 32, 28×28) with the layers' datapath")
    p.set_defaults(func=cmd_cycles)

    p = sub.add_parser("build", help="bitstream and resource report for a board",
                       description="Build the UART-linked array for a board with the YoWASP toolchain "
                                   "(yosys, nextpnr, ecppack/icepack) and write the bitstream and report.json "
                                   "(LUT, FF, DSP, BRAM, Fmax from nextpnr --report).")
    p.add_argument("board", help="ulx3s, orangecrab or icebreaker")
    _array_options(p, datapath=True, default="the board's preset unless options are given")
    p.add_argument("--out", type=Path, help="output directory (default build/boards/BOARD)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("report", help="summary.md + plots from a run directory",
                       description="Render report/summary.md, summary.json and plots (accuracy against density, "
                                   "Winograd density per position, cycles per layer, resources per board) from "
                                   "the step reports of a 'winnow flow' directory.")
    p.add_argument("run_dir", type=Path, help="a 'winnow flow' output directory")
    p.add_argument("--out", type=Path, help="where to write (default RUN_DIR/report)")
    p.add_argument("--title", help="report title")
    p.add_argument("--board-report", action="append", type=Path, help="a board build report.json to include "
                                                                       "(repeatable)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("flow", help="train → export → gen → sim → cycles → [build] → report",
                       description="Run the whole pipeline of a TOML configuration into an output directory, with "
                                   "step progress and timing. Steps whose inputs have not changed are skipped; an "
                                   "interrupted flow resumes without redoing finished steps.")
    p.add_argument("config", type=Path, help="TOML configuration (docs/cli.md)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--force", action="append", default=[], help="re-run this step even if unchanged (repeatable)")
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("import", help="bring your own CNN: ONNX or file.py:factory to a Winnow model and network",
                       description="Read an ONNX model or path/to/file.py:factory (with --weights, traced with "
                                   "torch.fx), fold BatchNorm, lower every convolution (stride 1 or 2, any kernel "
                                   "the algebra builds, 1x1 included) onto the array's F(m, r), quantize it "
                                   "post-training on calibration images and write model.pt, network/ (one sparse "
                                   "layer file per convolution), report.md and report.json (docs/import.md).")
    p.add_argument("model", help="an ONNX file (*.onnx) or path/to/file.py:factory")
    p.add_argument("--input-shape", required=True, metavar="C,H,W", help="the model's input shape")
    p.add_argument("--weights", type=Path, help="state dict for file.py:factory (torch.save)")
    p.add_argument("--data", help="embedded calibration data set (default mnist5k for 1,28,28)")
    p.add_argument("--calib", type=int, default=256, help="calibration images (default 256)")
    p.add_argument("--m", type=int, default=4, help="output tile m of F(m, r) (default 4)")
    p.add_argument("--r", type=int, default=3, help="smallest kernel r of the array (default 3; a larger lowered "
                                                     "kernel in the model raises it)")
    p.add_argument("--density", type=_fraction, help="prune in the Winograd domain to this density first")
    p.add_argument("--steps", type=int, default=50, help="fine-tuning steps after pruning (default 50)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the fine-tuning batches")
    p.add_argument("--c-max", type=int, help="datapath c_max (default: the widest lowered convolution input)")
    p.add_argument("--no-quantize", action="store_true", help="write only the converted model (no network/)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("explore", help="design-space exploration: Pareto front of arrays for a network and part",
                       description="Search tile, P, L, S, OTU lanes, requantizers, k_block, on-chip buffers and "
                                   "memory bandwidth for NETWORK on a part: each point's resources from a model "
                                   "calibrated on real builds, its cycles from the exact cycle model with the "
                                   "memory term; write the Pareto front of throughput against resources, the "
                                   "chosen point as a preset (chosen/params.json), a plot and the JSON of every "
                                   "point (docs/explore.md). Runs on Dask, in-process unless --cluster or "
                                   "--workers; results are cached in --out and an interrupted run resumes.")
    p.add_argument("network", help="an exported network directory (or a flow's output directory), or "
                                   "shapes:vgg16|cifar-vgg|smallvgg[@DENSITY]")
    p.add_argument("--board", required=True, help="ulx3s, orangecrab, icebreaker; BOARD:LUT=N,…  (tighter "
                                                 "limits); or ecp5|ice40:LUT=N,FF=N,DSP=N,BRAM=N (a part)")
    p.add_argument("--out", type=Path, required=True, help="output directory (also the cache)")
    p.add_argument("--max-util", type=float, default=0.5, help="usable fraction of each resource (default 0.5)")
    p.add_argument("--build", type=int, default=0, metavar="TOP_N",
                   help="build the N fastest front points with the YoWASP tools (minutes each) and refit")
    p.add_argument("--build-timeout", type=_positive_minutes, default=60.0, metavar="MIN",
                   help="stop each build after MIN minutes (default 60): a router that does not converge runs "
                        "for hours; a build stopped after placement still calibrates the resources")
    p.add_argument("--calibration", type=Path, help="calibration records (JSON) to fit the resource model on "
                                                    "(default: the repository's; a run with --build writes "
                                                    "OUT/calibration.json)")
    p.add_argument("--cluster", metavar="ADDRESS", help="a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--workers", type=int, default=0, help="local worker processes (default 0: threads of this "
                                                          "process)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds for --cluster to answer (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("search space", "comma-separated values per axis (docs/explore.md has the defaults)")
    for name, help_ in EXPLORE_AXES.items():
        g.add_argument("--" + ("tiles" if name == "m" else name.replace("_", "-")), dest="axis_" + name,
                       metavar="V,…", help=help_)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("prune", help="one pruning experiment with any registered method", add_options=_prune_options,
                       description="Train the data set's default CNN, prune it with the chosen method (any "
                                   "registered in winnow.model.pruning.registry), fine-tune with fake quantization, "
                                   "measure float, fake-quant and integer accuracy, and write report.json, report.md "
                                   "and network/ (sparse layer files) to --out. The options are the [train] keys of "
                                   "docs/cli.md; --config reads them from a JSON object first.")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("demo-foundation", add_options=_demo_options,
                       help="float and integer Winograd convolution of MNIST digits, then a small pruned CNN",
                       description="The foundation demo: MNIST-5k digits convolved with classic 3×3 filters through "
                                   "F(2,3), F(4,3) and F(6,3) in float64, float32 and on the integer reference, "
                                   "against torch's conv2d and the datapath's error bound; then (unless "
                                   "--skip-training) a small CNN trained, pruned to 30% Winograd density and run "
                                   "on the integer datapath. Writes foundation.json, pruning.json/.md and network/.")
    p.set_defaults(func=cmd_demo_foundation)
    for p in sub.choices.values():  # "--m" must never silently mean "--mode"
        p.allow_abbrev = False
    return ap


def main(argv=None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if a.command is None:
        ap.print_help()
        return 2
    t0 = time.time()
    try:
        with contextlib.ExitStack() as outputs:
            for out in _user_outputs(a):
                outputs.enter_context(_out_dir(out))
            return a.func(a)
    except KeyboardInterrupt:
        print("interrupted" + (": finished steps are kept; run the same command again to resume"
                               if a.command == "flow" else ""), file=sys.stderr)
        return 130
    except WinnowError as exc:  # bad input, named; anything else is a bug and keeps its traceback
        if a.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if a.debug:
            print(f"({time.time() - t0:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
