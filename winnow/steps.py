"""The work behind each ``winnow`` subcommand and flow step.

Each function writes its artifacts into an output directory and returns a JSON-ready
summary (the step's FINN-style ``report.json``). They are shared by the subcommands
(``winnow train`` …) and by :func:`winnow.pipeline.build_flow`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.errors import ConfigError, WinnowError

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------- train / export
def train(flow_cfg, out: Path, progress: Progress = print, bars: bool = False) -> dict:
    """Train, prune, fine-tune with fake quantization, measure; save the checkpoint; run the density sweep."""
    from winnow.model.nn.checkpoint import save_checkpoint
    from winnow.model.data.datasets import load_dataset
    from winnow.model.training.experiment import run_experiment, train_dense

    cfg = flow_cfg.experiment()
    data = load_dataset(cfg.dataset)
    if flow_cfg.model is not None:
        return train_imported(flow_cfg, cfg, data, out, progress)
    progress(f"      {cfg.method} on {cfg.dataset} ({len(data.x_train)} train / {len(data.x_test)} test), "
             f"F({cfg.m},3), density {cfg.density}")
    t0 = time.time()
    dense = train_dense(cfg, data, progress=bars)
    runs = []
    main = None
    for d in sorted({cfg.density, *flow_cfg.sweep}, reverse=True):
        c = dataclasses.replace(cfg, density=d)
        progress(f"      density {d}: prune, retrain, QAT, measure")
        r = run_experiment(c, data, dense, progress=bars)
        model = r.pop("model")
        runs.append({k: r[k] for k in ("dense_accuracy", "float_accuracy", "fake_quant_accuracy", "integer_accuracy",
                                       "winograd_density") if k in r} | {"density": d})
        if d == cfg.density:
            main = r
            save_checkpoint(model, out / "checkpoint.pt",
                            meta={"config": dataclasses.asdict(cfg), "scales": r["scales"],
                                  "input_shape": list(data.input_shape), "classes": data.classes})
            _export(model, data.input_shape, out / "network")
    atomic_write_json(out / "experiment.json", main)
    from winnow.model.accounting import accounting_markdown

    keys = ("dense_accuracy", "float_accuracy", "fake_quant_accuracy", "integer_accuracy")
    md = "\n".join([f"# {cfg.method}, {cfg.dataset}, F({cfg.m},3), density {cfg.density}", "",
                    "| measure | value |", "|---|---|"]
                   + [f"| {k.replace('_', ' ')} | {main[k]:.2%} |" for k in keys if k in main]
                   + [f"| Winograd-domain density | {main['winograd_density']:.3f} |", "",
                      accounting_markdown(main["accounting"]), ""])
    atomic_write_text(out / "experiment.md", md)
    return {"config": dataclasses.asdict(cfg), "sweep": runs, "integer_accuracy": main.get("integer_accuracy"),
            "winograd_density": main["winograd_density"], "seconds": round(time.time() - t0, 1),
            "checkpoint": "checkpoint.pt", "network": "network/network.json"}


def train_imported(flow_cfg, cfg, data, out: Path, progress: Progress = print) -> dict:
    """[model]: the imported CNN pruned (importance_magnitude or liu_pool, Winograd domain), calibrated, fine-tuned with fake
    quantization and exported; its checkpoint holds the import description (docs/import.md)."""
    import torch

    from winnow.model.files.export import export_network
    from winnow.model.imports.importer import agreement, finetune, prune_imported
    from winnow.model.imports.lowering import calibrate, integer_network
    from winnow.model.nn.checkpoint import save_checkpoint
    from winnow.model.training.train import accuracy

    from .flowconfig import imported_model

    t0 = time.time()
    imp = imported_model(flow_cfg)
    net = imp.net
    src = flow_cfg.model["source"]
    progress(f"      imported {src}: {len(net.convs)} convolution(s) as F({net.spec['m']},{net.spec['r']}); "
             f"{cfg.method} pruning to {cfg.density} on {cfg.dataset}")
    per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
    dense_acc = accuracy(net, data.x_test, data.y_test)
    criterion = "plain" if cfg.method == "liu_pool" else "importance"  # the two methods flowconfig allows
    pruner = prune_imported(net, data, cfg.density, cfg.retrain_epochs * per_epoch, lr=cfg.retrain_lr, seed=cfg.seed,
                            criterion=criterion)
    float_acc = accuracy(net, data.x_test, data.y_test)
    gen = torch.Generator().manual_seed(cfg.seed)
    calib = data.x_train[torch.randperm(len(data.x_train), generator=gen)[:512]]
    q = calibrate(net, calib, act_bits=cfg.act_bits, weight_bits=cfg.weight_bits)
    finetune(net, data, cfg.qat_epochs * per_epoch, lr=cfg.qat_lr, seed=cfg.seed + 5, hooks=[pruner])
    inet = integer_network(net)
    check = agreement(imp, inet, data.x_test, data.y_test)
    pred = inet.predict(data.x_test.numpy())
    int_acc = int((pred == data.y_test.numpy()).sum()) / len(pred)
    fq_acc = accuracy(copy_double(net), data.x_test.double(), data.y_test)
    save_checkpoint(net, out / "checkpoint.pt", meta={"import": net.spec, "quant": q, "config": dataclasses.asdict(cfg),
                                                      "input_shape": list(data.input_shape), "classes": data.classes})
    export_network(inet, data.input_shape, out / "network")
    run = {"density": cfg.density, "dense_accuracy": dense_acc, "float_accuracy": float_acc,
           "fake_quant_accuracy": fq_acc, "integer_accuracy": int_acc, "winograd_density": pruner.density()}
    main = {**run, "config": dataclasses.asdict(cfg), "source": src, "check": check,
            "operations": imp.rows, "lowering_error": imp.lowering_error}
    atomic_write_json(out / "experiment.json", main)
    atomic_write_text(out / "experiment.md", f"# imported {src}, {cfg.dataset}, density {cfg.density}\n\n"
                      f"| measure | value |\n|---|---|\n| imported (before pruning) | {dense_acc:.2%} |\n"
                      f"| float | {float_acc:.2%} |\n| fake-quant | {fq_acc:.2%} |\n| integer | {int_acc:.2%} |\n"
                      f"| Winograd-domain density | {pruner.density():.3f} |\n")
    return {"config": dataclasses.asdict(cfg), "source": src, "sweep": [run], "integer_accuracy": int_acc,
            "winograd_density": pruner.density(), "seconds": round(time.time() - t0, 1),
            "checkpoint": "checkpoint.pt", "network": "network/network.json"}


def copy_double(net):
    import copy

    return copy.deepcopy(net).double().eval()


def _export(model, input_shape, out: Path) -> Path:
    from winnow.model.files.export import export_network
    from winnow.model.integer.network import build_integer_network

    return export_network(build_integer_network(model.double()), input_shape, out)


def export(train_dir: Path, out: Path, progress: Progress = print) -> dict:
    """The integer network (sparse layer files + manifest) from a training run's checkpoint.

    Rebuilds the model from the checkpoint's configuration and scales; a method that
    removes filters cannot be rebuilt, and its training-time export is checked and
    copied instead.
    """
    from winnow.model.nn.checkpoint import load_checkpoint, read_meta
    from winnow.model.training.experiment import experiment_config, trained_skeleton
    from winnow.model.files.export import load_network

    train_dir = Path(train_dir)
    ckpt = train_dir / "checkpoint.pt"
    meta = read_meta(ckpt)
    if "import" in meta:  # an imported model ([model] of the flow): rebuilt from its import description
        from winnow.model.files.export import export_network
        from winnow.model.imports.importer import load_imported
        from winnow.model.imports.lowering import integer_network

        manifest = export_network(integer_network(load_imported(ckpt)), meta["input_shape"], out / "network")
        how = "Rebuilt from the checkpoint (an imported model)"
        progress(f"      {how}")
        return {"network": "network/network.json", "how": how, "layers": network_summary(manifest.parent)}
    missing = [k for k in ("config", "input_shape", "classes", "scales") if k not in meta]
    if missing:
        raise WinnowError(f"{ckpt}: the checkpoint does not say how it was trained (no {', '.join(missing)}); "
                          f"export needs one written by 'winnow train'")
    try:
        cfg = experiment_config(meta["config"])  # the flat keys of older checkpoints too
    except (TypeError, ConfigError) as exc:
        raise WinnowError(f"{ckpt}: its training configuration is not one this version knows ({exc})") from None
    if cfg.keeps_structure:
        model = trained_skeleton(cfg, meta["input_shape"], meta["classes"], meta["scales"])
        load_checkpoint(model, ckpt)
        manifest = _export(model, meta["input_shape"], out / "network")
        how = "Rebuilt from the checkpoint"
    else:
        load_network(train_dir / "network")  # every file and checksum checked
        shutil.copytree(train_dir / "network", out / "network")
        manifest = out / "network" / "network.json"
        how = f"The training run's export, checked and copied ({cfg.method} removes filters: no rebuild)"
    progress(f"      {how}")
    return {"network": "network/network.json", "how": how, "layers": network_summary(manifest.parent)}


def network_layers(network_dir: Path, files=None):
    """[(name, SparseLayer)] of the convolutions of an exported network, in order (``files``: the network
    as :func:`winnow.model.files.export.read_network` already read it)."""
    from winnow.model.files.export import read_network

    layers = (files or read_network(network_dir)).convs  # manifest, files and checksums validated
    if not layers:
        raise WinnowError(f"{network_dir}: the network has no convolution to run on the array")
    return layers


def conv_label(index: int, name: str) -> str:
    """How a network's convolution is printed: its index (what ``--layer`` and ``[sim].layers`` take) and name."""
    return f"conv #{index} (layer {name})"


def check_layer_choice(layers, chosen, what: str = "layer") -> None:
    """Refuse conv indices outside ``layers`` ([(name, layer)]), listing index → name."""
    if chosen == "all":
        return
    listing = ", ".join(f"#{i} = {name}" for i, (name, _) in enumerate(layers))
    for i in chosen:
        if not 0 <= i < len(layers):
            raise WinnowError(f"{what} {i}: the network has {len(layers)} convolutions (0 … {len(layers) - 1}: "
                              f"{listing})")


def check_image(images, image: int) -> None:
    """Refuse a test-image index outside the split, naming the range."""
    if not 0 <= image < len(images):
        raise WinnowError(f"image {image}: the test split has {len(images)} images (0 … {len(images) - 1})")


def network_items(network_dir: Path, images, image: int, layers="all"):
    """The chosen convolutions of an exported network with the activations test image ``image`` gives them.

    Returns ([(name, SparseLayer, input)], [network's own output per item]); ``layers`` is
    ``"all"`` or a list of conv indices. Out-of-range choices are errors naming the range.
    """
    from winnow.sim.network import traced_convolutions

    check_image(images, image)
    traced = traced_convolutions(network_dir, np.asarray(images[image]))
    check_layer_choice([(t[0].name, t[0]) for t in traced], layers)
    chosen = list(range(len(traced))) if layers == "all" else list(layers)
    return [(traced[i][0].name, traced[i][0], traced[i][1]) for i in chosen], [traced[i][2] for i in chosen]


def network_summary(network_dir: Path) -> list[dict]:
    """Per conv layer: shape, density and the Winograd-domain density of every position (n×n)."""
    out = []
    for name, layer in network_layers(network_dir):
        n = layer.config.n
        per_pos = layer.nnz_per_position() / (layer.in_channels * layer.out_channels)
        out.append({"name": name, "C": layer.in_channels, "K": layer.out_channels, "size": list(layer.size),
                    "tile": layer.config.alg.name, "density": layer.density,
                    "position_density": per_pos.reshape(n, n).round(4).tolist()})
    return out


# ---------------------------------------------------------------------------- array
def array_config(datapath, fields: dict, mode: str = "sparse", where: str = "[array]"):
    """An :class:`winnow.hw.config.AccelConfig` for ``datapath`` with the given fields; errors start with ``where``.

    The defaults of the fields not given are :meth:`winnow.hw.config.AccelConfig.resolved`'s.
    """
    from winnow.hw.config import AccelConfig

    try:
        return AccelConfig.resolved(datapath, mode=mode, **fields)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


#: Largest input (C·H·W activations) and most passes a tiled simulation takes: beyond them it would not finish.
MAX_SIM_INPUT = 1 << 24
MAX_SIM_PASSES = 4096


def check_runnable_shape(cfg, name: str, C: int, K: int, size, padding) -> None:
    """Refuse a layer of this shape that ``cfg`` cannot run (or, tiled, not in a sensible time), naming the limit;
    called before any array of the layer or its input is built."""
    from winnow.hw.packer import check_shape

    if not cfg.tiled:
        check_shape(cfg, name, C, K, tuple(size), max(padding))
        return
    from winnow.hw.tiled_packer import buffers_of
    from winnow.hw.tiling import plan_layer

    if C * math.prod(size) > MAX_SIM_INPUT:
        raise ConfigError(f"layer {name}: an input of {C} × {' × '.join(map(str, size))} = {C * math.prod(size):,} "
                          f"activations is more than a simulation takes ({MAX_SIM_INPUT:,})")
    plan = plan_layer(cfg, buffers_of(cfg), in_channels=C, out_channels=K, size=tuple(size), padding=tuple(padding))
    if plan.passes > MAX_SIM_PASSES:
        raise ConfigError(f"layer {name}: {plan.passes:,} passes on this tiled array, more than a simulation takes "
                          f"({MAX_SIM_PASSES:,}); raise h_max, w_max, k_max or c_block")


def check_runnable(cfg, layer) -> None:
    """:func:`check_runnable_shape` of a layer file's layer (and, untiled, its datapath against the array's)."""
    from winnow.hw.packer import check_layer

    if not cfg.tiled:
        check_layer(layer, cfg)
    else:
        check_runnable_shape(cfg, layer.name, layer.in_channels, layer.out_channels, layer.size, layer.padding)


def network_array(network_dir: Path, fields: dict):
    """The array for an exported network: its datapath, the [array] fields; every layer must fit."""
    from winnow.hw.packer import check_layer
    from winnow.hw.tiled_packer import plan_for

    layers = network_layers(network_dir)
    dps = {json.dumps(l.config.to_dict(), sort_keys=True) for _, l in layers}
    if len(dps) != 1:
        raise WinnowError(f"{network_dir}: the convolutions use different datapaths; one array runs one datapath")
    cfg = array_config(layers[0][1].config, fields)
    for _name, layer in layers:
        plan_for(cfg, layer) if cfg.tiled else check_layer(layer, cfg)
    return cfg, layers


def gen(cfg, out: Path, progress: Progress = print, allow_slow: bool = False,
        cost_hint: str = "or pass --allow-slow") -> dict:
    """Verilog of the array (and its AXI-Stream named wrapper) with params.json, reporting each step.

    The elaboration's cost is estimated first (:func:`winnow.hw.config.check_gen_cost`): an
    array estimated above its limits is refused with the estimate unless ``allow_slow``.
    """
    from winnow.hw.config import check_buildable, check_gen_cost
    from winnow.hw.generate import generate

    check_buildable(cfg)
    cost = check_gen_cost(cfg, allow=allow_slow, hint=cost_hint)
    t0 = time.time()
    progress(f"      {cfg.memory_bits / 1e3:,.1f} kbit of memories, {cfg.multipliers} multipliers: estimated "
             f"~{cost['seconds']:.0f} s and ~{cost['megabytes'] / 1024:.1f} GB to elaborate")
    path = generate(cfg, out, axis=True, progress=lambda line: progress(f"      {line}"))
    progress(f"      {path.name}: {path.stat().st_size / 1e6:.2f} MB of Verilog in {time.time() - t0:.1f} s")
    return {"verilog": path.name, "axis_wrapper": "winnow_array_axis.v", "params": "params.json",
            "array": {k: v for k, v in cfg.to_dict().items() if k not in ("derived", "datapath")},
            "tile": cfg.datapath.alg.name, "memory_bits": cfg.memory_bits, "memories": cfg.memories(),
            "widths": cfg.widths.summary(), "seconds": round(time.time() - t0, 1)}


#: Bits of one block RAM per family (ECP5 DP16KD 18 kbit, iCE40 EBR 4 kbit).
BLOCK_BITS = {"ecp5": 18432, "ice40": 4096}


def board_memory(cfg, preset_name: str, progress: Progress = print) -> dict:
    """The array's on-chip memory against the block RAM of the part its preset is for.

    Each memory at least ``BRAM_MIN_DEPTH`` words deep counts its block RAMs in the cheapest
    shape, once per read port (:func:`winnow.explore.resources.memory_blocks`: what yosys chose
    on the measured builds), the shallower ones are distributed RAM (LUTs)."""
    from winnow.boards.presets import PRESET_BOARD
    from winnow.boards.registry import get_board
    from winnow.explore.resources import BRAM_MIN_DEPTH, memory_blocks

    board = get_board(PRESET_BOARD[preset_name])
    fam, have = board.family, board.capacity["BRAM"]
    mems = cfg.memories()
    per = memory_blocks(cfg, fam, mems)
    blocks = sum(per.values())
    lutram = sum(v["bits"] for v in mems.values() if v["depth"] < BRAM_MIN_DEPTH)
    doc = {"board": board.name, "device": board.device, "memory_bits": cfg.memory_bits, "block_rams": blocks,
           "block_rams_available": have, "block_ram_bits_available": have * BLOCK_BITS[fam],
           "block_rams_per_memory": per, "distributed_bits": lutram, "fits": blocks <= have}
    line = (f"      on-chip memory {cfg.memory_bits / 1e6:.2f} Mbit: {blocks} of the {board.device}'s {have} block "
            f"RAMs ({blocks / have:.0%}; {have * BLOCK_BITS[fam] / 1e6:.2f} Mbit) + {lutram / 1e3:.1f} kbit of "
            f"distributed RAM")
    progress(line if doc["fits"] else f"warning: {line.strip()}: more block RAMs than the part has; it will not fit "
                                      f"the {board.name}")
    return doc


# ---------------------------------------------------------------------------- cycles
def array_label(cfg) -> str:
    """P, L, clusters, OTU lanes, requantizers and k_block of an array, in one line."""
    return (f"P={cfg.pes}×L={cfg.lanes}, S={cfg.clusters}, OTU {cfg.otu_lanes}×{cfg.requant} requantizers, "
            f"k_block={cfg.k_block}" + (", serial memories" if cfg.serial else ""))


def cycles(cfg, layers, out: Path | None = None) -> dict:
    """Sparse, dense (same array) and floor cycles per layer and for the network."""
    from winnow.hw.packer import sparse_and_dense

    rows = []
    for index, (name, layer) in enumerate(layers):
        if cfg.tiled:  # the sum over the layer's passes (winnow.hw.tiled_packer)
            from winnow.hw.tiled_packer import tiled_cycles

            s, dense_cycles = tiled_cycles(layer, cfg)
            imbalance = None
        else:
            sp, s, d = sparse_and_dense(layer, cfg)
            dense_cycles, imbalance = d.cycles, sp.imbalance
        rows.append({"index": index, "name": name, "C": layer.in_channels, "K": layer.out_channels, "size": list(layer.size),
                     "density": layer.density, "imbalance": imbalance, "sparse": s.to_dict(),
                     "dense_cycles": dense_cycles, "speedup": dense_cycles / s.cycles, "efficiency": s.efficiency})
    tot = {"sparse": sum(r["sparse"]["cycles"] for r in rows), "dense": sum(r["dense_cycles"] for r in rows),
           "floor": sum(r["sparse"]["floor"] for r in rows)}
    tot["speedup"] = tot["dense"] / tot["sparse"]
    tot["efficiency"] = tot["floor"] / tot["sparse"]
    doc = {"array": array_label(cfg),
           "multipliers": cfg.multipliers, "layers": rows, "network": tot}
    if out is not None:
        atomic_write_text(out / "cycles.md", cycles_markdown(doc))
    return doc


def layer_cells(r: dict, i: int) -> str:
    """The identity columns of a cycles-table row: index, name, C→K, size, density."""
    return (f"| {r.get('index', i)} | {r['name']} | {r['C']}→{r['K']} | {'×'.join(map(str, r['size']))} | "
            f"{r['density']:.3f} |")


def cycles_markdown(doc: dict) -> str:
    lines = [f"Array {doc['array']} ({doc['multipliers']} multipliers); dense = dense Winograd on the same array; "
             "floor = ⌈T·nnz/(P·L)⌉.", "",
             "| # | layer | C→K | size | density | sparse cycles | dense cycles | floor | speedup | efficiency | bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(doc["layers"]):
        s = r["sparse"]
        lines.append(f"{layer_cells(r, i)} {s['cycles']:,} | {r['dense_cycles']:,} | {s['floor']:,} | {r['speedup']:.2f} | "
                     f"{r['efficiency']:.3f} | {s['bottleneck']} |")
    t = doc["network"]
    lines.append(f"| | **network** | | | | {t['sparse']:,} | {t['dense']:,} | {t['floor']:,} | {t['speedup']:.2f} | "
                 f"{t['efficiency']:.3f} | |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- simulation
def simulate(cfg, items, simulator: str, build_dir: Path, waves: bool = False, progress: Progress = print,
             expected=None, cxx_opt: str = "-O0", labels=None) -> dict:
    """Run ``items`` = [(name, SparseLayer, xq)] on the generated RTL; every output and cycle count is checked.

    ``labels`` are how the progress lines and errors name each item (default: "layer NAME";
    a network's convolutions: :func:`conv_label`).

    Raises :class:`WinnowError` naming the first layer whose outputs or cycles differ
    from the reference and the model.
    """
    from winnow.hw.cycle_model import packed_cycles
    from winnow.hw.packer import pack_layer
    from winnow.sim.cocotb_run import run_layers, simulator_available
    from winnow.sim.layers import reference_output

    reason = simulator_available(simulator)
    if reason:
        raise WinnowError(f"cannot simulate under {simulator}: {reason}")
    t0 = time.time()
    # every layer as one run, or in tiled mode as its passes (winnow.hw.tiled_packer), all on one simulator
    runs, spans = [], []
    labels = labels or [f"layer {name}" for name, _, _ in items]
    for (name, layer, xq), label in zip(items, labels):
        if cfg.tiled:
            from winnow.hw.tiled_packer import passes, plan_for

            plan = plan_for(cfg, layer)
            layer_passes = passes(layer, xq, cfg, plan)
            parts = [(r.packed, r.x, r.name) for r in layer_passes]
            spans.append((plan, layer_passes, len(runs), len(parts)))
            runs += parts
            progress(f"      {label}: {len(parts)} passes ({len(plan.patches)} patches × "
                     f"{len(plan.block_rows)} blocks × {len(plan.c_blocks)} C blocks)")
        else:
            spans.append((None, None, len(runs), 1))
            runs.append((pack_layer(layer, cfg), xq, name))
    progress(f"      {simulator}: building and running {len(runs)} run(s) (build cached in {build_dir})")
    res = run_layers(cfg, runs, simulator, build_dir=build_dir, waves=waves, cxx_opt=cxx_opt)
    rows = []
    for i, ((name, layer, xq), (plan, layer_passes, i0, count)) in enumerate(zip(items, spans)):
        label = labels[i]
        mine, results = runs[i0:i0 + count], res[i0:i0 + count]
        model_total = 0
        for (p, _x, pname), r in zip(mine, results):
            model = packed_cycles(p).cycles
            model_total += model
            if r.cycles != model:
                what = label + (f", pass {pname}" if plan is not None else "")
                raise WinnowError(f"{what}: the RTL took {r.cycles} cycles, the cycle model says {model}")
        if plan is None:
            out = results[0].out
        else:
            from winnow.hw.tiled_packer import assemble

            out = assemble(plan, layer_passes, [r.out for r in results])
        cyc = sum(r.cycles for r in results)
        wall = sum(r.run_wall_s for r in results)
        want = reference_output(layer, xq)
        exact = bool(np.array_equal(out, want))
        if expected is not None and expected[i] is not None:
            exact = exact and bool(np.array_equal(out, expected[i]))
        rows.append({"name": name, "bit_exact": exact, "outputs": int(want.size), "rtl_cycles": cyc,
                     "model_cycles": model_total, "cycles_equal": cyc == model_total, "runs": count,
                     "run_wall_s": round(wall, 4), "cycles_per_s": cyc / max(wall, 1e-9)})
        if not np.array_equal(out, want):
            where = tuple(int(v) for v in np.argwhere(out != want)[0])
            raise WinnowError(f"{label}: the RTL output differs from the reference at (k, h, w) = {where}: "
                              f"RTL {out[where]}, reference {want[where]}")
        if not exact:  # the RTL equals the reference, but not the activation the exported network computes
            raise WinnowError(f"{label}: the reference and the RTL agree, but differ from the exported "
                              f"network's own activation: the layer file and the network disagree")
        progress(f"      {label}: {want.size:,} outputs bit-exact, {cyc:,} cycles = model")
    waves_files = sorted(str(p) for ext in ("*.fst", "*.vcd") for p in Path(build_dir).glob(ext)) if waves else []
    return {"simulator": simulator, "layers": rows, "all_bit_exact": all(r["bit_exact"] for r in rows),
            "seconds": round(time.time() - t0, 1), "build_dir": str(build_dir), "waves": waves_files}
