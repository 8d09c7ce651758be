import dataclasses
import json

import pytest

from texdistill.cli import main
from texdistill.registry import COMMANDS, STAGES


@pytest.mark.parametrize("command", [*COMMANDS, "demo", "presets"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: texdistill" in out
    if command in STAGES:
        for flag in ("--out", "--seed", "--device", "--preset"):
            assert flag in out
    if command == "export":
        for flag in ("RUN", "--tiles", "--print", "--size-cm", "--dpi", "--wang", "--wang-colors"):
            assert flag in out


def test_presets_are_listed(capsys):
    assert main(["presets"]) == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow  # a fresh interpreter runs the whole demo; the fast tests check its products on conftest's texture_run
def test_demo_quick_end_to_end(quick_demo):
    out, result = quick_demo
    for relative in ("config.json", "log.jsonl", "checkpoint.safetensors", "synthetic.safetensors", "eval.json",
                     "experts/expert_000.safetensors", "textures/sandal.png", "textures/sandal_3x3.png",
                     "snapshots/it_000000.safetensors", "mockups/sandal_tshirt.png", "mockups/sheet_scarf.png",
                     "report.html"):
        assert (out / relative).exists(), relative
    results = json.loads((out / "eval.json").read_text())
    assert results["complete"] and results["sets"]["distilled"]["mean"] > 0.15  # chance: 0.10
    assert {"random real tiled"} <= set(results["sets"]) and set(results["sets"]) == set(results["seams"])
    # the demo ends by pointing at its report
    assert result.stdout.strip().splitlines()[-1].startswith(f"report: {out / 'report.html'}")


def _listed_options(argv: list[str], capsys) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    options = out.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]  # the option list, not usage or epilog
    return [line.split()[0].rstrip(",") for line in options.splitlines() if line.startswith("  -")]


def test_distill_help_lists_at_most_40_options_and_names_the_advanced_ones(capsys):
    from texdistill.config import DistillConfig
    listed = _listed_options(["distill", "--help"], capsys)
    assert len(listed) <= 40, listed
    advanced = [f"--{name.replace('_', '-')}" for name in DistillConfig.ADVANCED]
    assert not set(advanced) & set(listed)
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    epilog = " ".join(capsys.readouterr().out.split("Advanced options, not listed above:")[1].split())
    assert all(f"{flag}," in epilog or f"{flag}." in epilog for flag in advanced)
    assert set(advanced) <= set(_listed_options(["distill", "--help-all"], capsys))


@pytest.mark.parametrize("stage", list(STAGES))
def test_advanced_options_are_options_and_still_flags(stage, tmp_path):
    from texdistill.cli import build_parser
    config_class = STAGES[stage]
    fields = {f.name: f.default for f in dataclasses.fields(config_class)}
    assert config_class.ADVANCED <= set(fields)
    args = build_parser([stage]).parse_args([stage, "--kept-steps", "0"] if "kept_steps" in fields else [stage])
    assert all(getattr(args, name) == fields[name] for name in config_class.ADVANCED if name != "kept_steps")
