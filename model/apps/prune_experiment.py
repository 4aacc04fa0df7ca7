"""`winnow prune`: every pruning method from one command and one configuration.

Every field of :class:`winnow.model.training.experiment.ExperimentConfig` is an option
(``--method kep --density 0.3 --m 6 …``), and so is every registered method's option by
its key (``--kep-keep 3``, ``--filter-ratio 0.25``, ``--schedule iterative``);
``--config FILE.json`` reads the same keys from a JSON object first (command-line
options override it). The run writes ``report.json`` (everything measured) and
``report.md`` (accuracies and the multiplication table) to ``--out`` and exports the
integer network as sparse layer files to ``--out/network``.

:func:`add_arguments` builds the options (``winnow.cli`` reuses it), :func:`config_from`
reads them, :func:`prune` runs the experiment and writes the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from winnow.model.errors import WinnowError
from winnow.model.files.json_file import read_json

def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


#: argparse types of the annotations of ExperimentConfig fields and method options (strings under postponed
#: evaluation)
_TYPES = {"int": int, "float": float, "str": str, "bool": _bool,
          "int | None": int, "float | None": float, "str | None": str}


def _type(annotation: str, what: str):
    if annotation not in _TYPES:
        raise WinnowError(f"{what} is annotated {annotation}; command-line options are int, float, str or bool")
    return _TYPES[annotation]


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config``, ``--out``, ``--quiet``, every ExperimentConfig field and every method option to ``ap``."""
    import dataclasses

    from winnow.model.pruning.registry import METHODS
    from winnow.model.training.experiment import CONFIG_FIELDS, ExperimentConfig, option_keys, type_name

    ap.add_argument("--config", type=Path, help="JSON object of [train] keys (ExperimentConfig fields, method options)")
    ap.add_argument("--out", type=Path, default=Path("out/prune"), help="output directory (default out/prune)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    for name in CONFIG_FIELDS:
        f, t = fields[name], type_name(fields[name].type)
        aliases = "".join(f"; {old}: {new}'s earlier name" for old, new in METHODS.aliases().items())
        help_ = f"default {f.default!r}" + (f"; one of {', '.join(METHODS)}{aliases}" if name == "method" else "")
        ap.add_argument("--" + name.replace("_", "-"), dest=name, type=_type(t, name), default=None,
                        metavar=t.split(" ")[0].upper(), help=help_)
    g = ap.add_argument_group("method options", "used by the methods named (winnow.model.pruning.registry)")
    for key, k in option_keys().items():
        g.add_argument("--" + key.replace("_", "-"), dest=key, type=_type(k.type, key), default=None,
                       metavar=k.type.split(" ")[0].upper(), help=f"{', '.join(k.methods)}; default {k.default!r}")
    return ap


def config_from(args: argparse.Namespace):
    """The ExperimentConfig of the parsed options (``--config`` first, options over it)."""
    from winnow.model.training.experiment import CONFIG_FIELDS, experiment_config, option_keys

    keys = [*CONFIG_FIELDS, *option_keys()]
    values: dict = {}
    if args.config is not None:
        doc = read_json(args.config, what="configuration file", missing="no such configuration file")
        if not isinstance(doc, dict):
            raise WinnowError(f"{args.config}: expected a JSON object of ExperimentConfig fields and method options")
        unknown = sorted(set(doc) - set(keys))
        if unknown:
            raise WinnowError(f"{args.config}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
        values.update(doc)
    for k in keys:
        v = getattr(args, k)
        if v is not None:
            values[k] = v
    try:
        return experiment_config(values)
    except TypeError as exc:
        raise WinnowError(f"bad configuration: {exc}") from None


def prune(cfg, out: Path, progress: bool = True) -> dict:
    """Run the experiment of ``cfg``; write ``out``/report.json, report.md and network/; return the report."""
    from winnow.model.accounting import accounting_markdown
    from winnow.model.data.datasets import load_dataset
    from winnow.model.files.atomic import atomic_write_json, atomic_write_text
    from winnow.model.files.export import export_network
    from winnow.model.integer.network import build_integer_network
    from winnow.model.training.experiment import run_experiment

    data = load_dataset(cfg.dataset)
    print(f"[1/3] {cfg.method} on {cfg.dataset}, F({cfg.m},3), density {cfg.density}", flush=True)
    r = run_experiment(cfg, data, progress=progress)
    model = r.pop("model")
    print("[2/3] exporting the integer network", flush=True)
    export_network(build_integer_network(model.double()), data.input_shape, out / "network")
    atomic_write_json(out / "report.json", r)
    keys = ("dense_accuracy", "float_accuracy", "fake_quant_accuracy", "integer_accuracy")
    md = "\n".join([f"# {cfg.method}, {cfg.dataset}, F({cfg.m},3), density {cfg.density}", "",
                    "| measure | value |", "|---|---|"] +
                   [f"| {k.replace('_', ' ')} | {r[k]:.2%} |" for k in keys if k in r] +
                   [f"| Winograd-domain density | {r['winograd_density']:.3f} |", "",
                    accounting_markdown(r["accounting"]), ""])
    atomic_write_text(out / "report.md", md)
    print(f"[3/3] wrote {out / 'report.json'}, {out / 'report.md'} and {out / 'network'}")
    print(md)
    return r


def run(args: argparse.Namespace) -> int:
    """``winnow prune``: the options parsed by :func:`add_arguments` → :func:`prune`."""
    prune(config_from(args), args.out, progress=not args.quiet)
    return 0
