"""`python -m winnow.model.apps.prune_experiment`: every pruning method from one command and one configuration.

Every field of :class:`winnow.model.training.experiment.ExperimentConfig` is an option (``--method kep
--density 0.3 --m 6 …``); ``--config FILE.json`` reads them from a JSON object first
(command-line options override it). The run writes ``report.json`` (everything
measured) and ``report.md`` (accuracies and the multiplication table) to ``--out`` and
exports the integer network as sparse layer files to ``--out/network``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from winnow.model.errors import WinnowError
from winnow.model.files.json_file import read_json
from winnow.model.training.experiment import METHODS, ExperimentConfig


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


#: argparse types of the ExperimentConfig annotations (strings under postponed evaluation)
_TYPES = {"int": int, "float": float, "str": str, "bool": _bool, "int | None": int}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m winnow.model.apps.prune_experiment", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="JSON object with ExperimentConfig fields")
    ap.add_argument("--out", type=Path, default=Path("out/prune"), help="output directory (default out/prune)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    for f in dataclasses.fields(ExperimentConfig):
        help_ = f"default {f.default!r}" + (f"; one of {', '.join(METHODS)}" if f.name == "method" else "")
        ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_TYPES[str(f.type)], default=None,
                        metavar=str(f.type).split(" ")[0].upper(), help=help_)
    return ap


def config_from(args: argparse.Namespace) -> ExperimentConfig:
    values: dict = {}
    if args.config is not None:
        doc = read_json(args.config, missing="no such configuration file")
        if not isinstance(doc, dict):
            raise WinnowError(f"{args.config}: expected a JSON object of ExperimentConfig fields")
        known = {f.name for f in dataclasses.fields(ExperimentConfig)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise WinnowError(f"{args.config}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values.update(doc)
    for f in dataclasses.fields(ExperimentConfig):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    try:
        return ExperimentConfig(**values)
    except TypeError as exc:
        raise WinnowError(f"bad configuration: {exc}") from None


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config_from(args)
        from winnow.model.accounting import accounting_markdown
        from winnow.model.files.atomic import atomic_write_json, atomic_write_text
        from winnow.model.data.datasets import load_dataset
        from winnow.model.training.experiment import run_experiment
        from winnow.model.files.export import export_network
        from winnow.model.integer.network import build_integer_network

        data = load_dataset(cfg.dataset)
        print(f"[1/3] {cfg.method} on {cfg.dataset}, F({cfg.m},3), density {cfg.density}", flush=True)
        r = run_experiment(cfg, data, progress=not args.quiet)
        model = r.pop("model")
        print("[2/3] exporting the integer network", flush=True)
        export_network(build_integer_network(model.double()), data.input_shape, args.out / "network")
        atomic_write_json(args.out / "report.json", r)
        keys = ("dense_accuracy", "float_accuracy", "fake_quant_accuracy", "integer_accuracy")
        md = "\n".join([f"# {cfg.method}, {cfg.dataset}, F({cfg.m},3), density {cfg.density}", "",
                        "| measure | value |", "|---|---|"] +
                       [f"| {k.replace('_', ' ')} | {r[k]:.2%} |" for k in keys if k in r] +
                       [f"| Winograd-domain density | {r['winograd_density']:.3f} |", "",
                        accounting_markdown(r["accounting"]), ""])
        atomic_write_text(args.out / "report.md", md)
        print(f"[3/3] wrote {args.out / 'report.json'}, {args.out / 'report.md'} and {args.out / 'network'}")
        print(md)
    except WinnowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
