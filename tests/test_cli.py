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
