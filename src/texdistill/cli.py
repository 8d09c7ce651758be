"""`texdistill` command line: parses flags generated from the stage configs and calls each stage's run()."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from texdistill import distributed
from texdistill._version import __version__
from texdistill.config import build_config
from texdistill.errors import ConfigError, TexdistillError
from texdistill.options import refuse_unknown
from texdistill.presets import PRESETS, known_options, preset_values
from texdistill.registry import COMMANDS, STAGES
from texdistill.tools.hostmem import keep_freed_memory

log = logging.getLogger("texdistill")


def field_types(config_class: type) -> dict[str, tuple[type, bool]]:
    """field name → (base type, optional?) for a config dataclass."""
    hints = typing.get_type_hints(config_class)
    result = {}
    for f in dataclasses.fields(config_class):
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        result[f.name] = (base, optional)
    return result


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def advanced_options(config_class: type) -> list[str]:
    """The config's options for advanced use (shown by --help-all only), in field order."""
    advanced = set(getattr(config_class, "ADVANCED", ())) - set(getattr(config_class, "UNUSED", ()))
    return [f.name for f in dataclasses.fields(config_class) if f.name in advanced]


def advanced_epilog(command: str, config_class: type) -> str | None:
    """--help's note on the options it leaves out."""
    names = advanced_options(config_class)
    if not names:
        return None
    text = (f"Advanced options, not listed above: {', '.join(_flag(n) for n in names)}. They work as flags and as "
            f"keys of a --config file (or a preset) like the others; `texdistill {command} --help-all` describes "
            f"every option.")
    return textwrap.fill(text, width=79, break_on_hyphens=False)


GIVEN = "given_options"  # the namespace's set of the config flags on the command line (not those left at a default)


def _note_given(namespace: argparse.Namespace, dest: str) -> None:
    if getattr(namespace, GIVEN, None) is None:
        setattr(namespace, GIVEN, set())
    getattr(namespace, GIVEN).add(dest)


class _Store(argparse.Action):
    """argparse's plain store, noting the flag as given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _note_given(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    """--x / --no-x, noting the flag as given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _note_given(namespace, self.dest)


def add_config_flags(parser: argparse.ArgumentParser, config_class: type,
                     defaults: dict[str, Any], show_all: bool = True) -> None:
    """One flag (or optional positional argument) per config field, with its help text and effective default;
    the advanced ones are listed only with `show_all`."""
    types_ = field_types(config_class)
    hidden = set(getattr(config_class, "UNUSED", ())) | (set() if show_all else set(advanced_options(config_class)))
    for f in dataclasses.fields(config_class):
        base, optional = types_[f.name]
        default = defaults.get(f.name, f.default)
        shown = "auto" if default is None else default
        help_text = argparse.SUPPRESS if f.name in hidden else f"{f.metadata.get('help', '')} (default: {shown})"
        if f.metadata.get("positional"):
            parser.add_argument(f.name, nargs="?", type=base, default=default, metavar=f.name.upper(), help=help_text)
        elif base is bool:
            parser.add_argument(_flag(f.name), action=_Switch, default=default, help=help_text)
        else:
            parser.add_argument(_flag(f.name), action=_Store, type=base, default=default,
                                choices=f.metadata.get("choices"),
                                metavar=f.name.upper() if not f.metadata.get("choices") else None, help=help_text)


def file_values(path: str | None) -> dict[str, Any]:
    """Field values from a JSON config file (flat, or one section per stage as in a run's config.json)."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of option → value")
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in STAGES and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key.replace("-", "_")] = value
    return flat


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The full parser; --preset/--config found in argv set the defaults shown by --help."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    config_values = file_values(known.config)
    show_all = "--help-all" in argv

    parser = argparse.ArgumentParser(
        prog="texdistill", description="Dataset distillation by Matching Training Trajectories, "
        "with seamlessly tileable class textures.")
    parser.add_argument("--version", action="version", version=f"texdistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if command.kind == "folder":  # a positional run folder or spec: no presets, no config file
            p = sub.add_parser(name, help=command.help, description=command.config.__doc__)
            p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
            add_config_flags(p, command.config, {})
            continue
        p = sub.add_parser(name, help=command.help, description=command.config.__doc__,
                           epilog=advanced_epilog(name, command.config),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if advanced_options(command.config):
            p.add_argument("--help-all", action="help", help="show this help with the advanced options too")
        preset = known.preset or command.preset
        p.add_argument("--preset", default=preset, help=f"named defaults ({', '.join(PRESETS)}); flags override them "
                                                        f"(default: {preset or 'none'})")
        p.add_argument("--config", help="JSON file of option → value (e.g. a run's config.json)")
        p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        if command.kind == "stage":
            p.add_argument("--dry-run", action="store_true",
                           help="print the dataset found (classes, counts, resolution), the model size, the "
                                "trajectory storage and the estimated peak memory per gradient mode and compute "
                                "time of all stages, then exit without decoding or writing anything")
        add_config_flags(p, command.config, {**preset_values(preset), **config_values}, show_all)
    p = sub.add_parser("demo", help="experts → texture distillation → evaluation → mock-ups on the embedded data",
                       description="Runs the whole pipeline on the embedded Fashion-MNIST subset with the "
                       "'demo' preset (2 CPU cores: 9.5 min the first time, 5.3 once its experts and networks are in the user cache) and writes everything to runs/demo/.")
    p.add_argument("--quick", action="store_true", help="the 'demo-quick' preset: about a minute, rough textures")
    p.add_argument("--out", help="run folder (default: runs/demo, or runs/demo-quick with --quick)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="(default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    p = sub.add_parser("presets", help="list the named presets")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


class _TqdmHandler(logging.Handler):
    """Logging that does not tear tqdm's progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


@contextlib.contextmanager
def _console_logging():
    """Route texdistill's log through tqdm for one command, then restore the caller's logging setup
    (main() is also called in-process, by tests and notebooks)."""
    saved = log.handlers[:], log.level, log.propagate
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.handlers[:], log.level, log.propagate = saved


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _console_logging():
        return _main(argv)


def _main(argv: list[str]) -> int:
    keep_freed_memory()
    debug = "--debug" in argv
    try:
        args = build_parser(argv).parse_args(argv)
        if args.command == "presets":
            from texdistill.tools.estimate import GPU_FLOPS, preset_summary
            print(f"name                     description\n{'':25s}estimated peak memory per --grad-mode, expert "
                  f"storage, compute time (GPU at {GPU_FLOPS / 1e12:.0f} TFLOP/s; 2 CPU cores)")
            for name, (description, values) in PRESETS.items():
                print(f"{name:24s} {description}\n{'':25s}{preset_summary(values)}")
            return 0
        if args.command == "demo":
            from texdistill.demo import run_demo
            run_demo(quick=args.quick, out=args.out, device=args.device, seed=args.seed)
            return 0
        command = COMMANDS[args.command]
        config_class = command.config
        config_file = getattr(args, "config", None)
        in_file = file_values(config_file)
        refuse_unknown(in_file, known_options(config_class), f"config file {config_file}")
        values = {k: v for k, v in vars(args).items()
                  if k not in ("command", "preset", "config", "debug", "dry_run", GIVEN)}
        # the options the user gave (not a preset's, nor defaults): those of the other mode are refused
        cfg = build_config(config_class, values, given={*getattr(args, GIVEN, ()), *in_file})
        if getattr(args, "dry_run", False):
            from texdistill.tools.estimate import dry_run
            print(dry_run({**preset_values(args.preset), **in_file, **values}))
            return 0
        if command.kind == "stage":  # the training stages run under torchrun too
            distributed.setup(cfg.torch_device())
        if not distributed.is_main():
            log.setLevel(logging.WARNING)  # rank 0 reports
        try:
            command.run(cfg)
            distributed.barrier()  # under torchrun: no rank leaves while another still talks to it (gloo aborts)
        finally:
            distributed.teardown()
        return 0
    except TexdistillError as exc:
        if debug:
            raise
        tqdm.write(f"texdistill: error: {exc}", file=sys.stderr)  # on a line of its own, below any progress bar
        return 2
    except KeyboardInterrupt:
        print("texdistill: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
