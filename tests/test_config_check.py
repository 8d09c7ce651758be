"""Bad config is refused, good config is not: unknown option names (config files, presets, the API) and options of
the other mode → exit code 2 and one line naming them; every preset builds for every command that takes presets."""

import json

import pytest

import texdistill
from texdistill import presets
from texdistill.cli import main
from texdistill.config import DistillConfig, build_config
from texdistill.errors import ConfigError
from texdistill.presets import PRESETS, preset_values
from texdistill.registry import COMMANDS, Command

TAKE_PRESETS = [name for name, command in COMMANDS.items() if command.kind != "folder"]


@pytest.mark.parametrize("command", TAKE_PRESETS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_for_every_command(preset, command, tmp_path):
    values = {**preset_values(preset), "out": str(tmp_path / "run")}
    build_config(COMMANDS[command].config, values, given=())  # as --preset gives it
    build_config(COMMANDS[command].config, values, given=set(values))  # as a config file or keywords: its own mode


def refused(argv: list[str], capsys) -> str:
    """The one error line of a command that must exit with code 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("texdistill: error: "), err
    return err[0]


@pytest.fixture
def ran(monkeypatch):
    """Commands parse and build their config, and the stage is not run: the configs it would have run with."""
    configs = []
    monkeypatch.setattr(Command, "run", lambda command, cfg: configs.append(cfg))
    return configs


def test_a_misspelt_key_in_a_config_file_is_named_with_the_nearest(tmp_path, capsys, ran):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"iterations": 3, "lr_imgg": 10}))
    line = refused(["distill", "--config", str(path), "--out", str(tmp_path / "run")], capsys)
    assert f"config file {path}: unknown option 'lr_imgg' (did you mean 'lr_img'?)" in line and not ran
    path.write_text(json.dumps({"distill": {"syn_stepz": 3}, "zzzz": 1}))  # in a stage's section too
    line = refused(["experts", "--config", str(path)], capsys)
    assert "unknown options 'syn_stepz' (did you mean 'syn_steps'?), 'zzzz'" in line


def test_a_run_config_json_with_every_stage_is_a_good_config_file(tmp_path, capsys, ran):
    path = tmp_path / "config.json"  # as a finished `texdistill run` leaves it: one section per stage
    path.write_text(json.dumps({"experts": {"num_experts": 2, "epochs": 3}, "distill": {"iterations": 4, "ipc": 1},
                                "evaluate": {"num_models": 1}}))
    assert main(["distill", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    assert ran[0].iterations == 4 and not ran[0].texture


def test_an_unknown_key_in_a_preset_is_named(monkeypatch, capsys):
    monkeypatch.setitem(PRESETS, "typo", ("a preset with a typo", {"canvas_sise": 3.0}))
    line = refused(["distill", "--preset", "typo"], capsys)
    assert "preset 'typo': unknown option 'canvas_sise' (did you mean 'canvas_size'?)" in line
    with pytest.raises(ConfigError, match="canvas_sise"):
        presets.preset_values("typo")


@pytest.mark.parametrize("argv, message", [
    (["--no-texture", "--canvas-size", "3"], "--canvas-size 3.0 applies to texture mode"),
    (["--no-texture", "--canvas-samples", "4"], "--canvas-samples 4 applies to texture mode"),
    (["--no-texture", "--canvas-size", "3", "--canvas-samples", "4", "--init", "real-tiled"],
     "--canvas-size 3.0, --canvas-samples 4, --init real-tiled apply to texture mode (crops of one canvas per class): "
     "add --texture or drop them"),
    (["--texture", "--ipc", "4"], "--ipc 4 applies to image mode; texture mode learns one canvas per class"),
    (["--texture", "--batch-syn", "8"], "--batch-syn 8 applies to image mode"),
    (["--texture", "--ipc", "2", "--batch-syn", "8"], "--ipc 2, --batch-syn 8 apply to image mode"),
])
@pytest.mark.parametrize("command", ["distill", "run", "bench"])
def test_options_of_the_other_mode_are_refused_in_one_line(command, argv, message, tmp_path, capsys, ran):
    line = refused([command, *argv, "--out", str(tmp_path / "run")], capsys)
    assert message in line and not ran


def test_other_mode_options_in_a_config_file_are_refused_too(tmp_path, capsys, ran):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"texture": False, "canvas_samples": 2}))
    assert "--canvas-samples 2 applies to texture mode" in refused(["distill", "--config", str(path)], capsys)


def test_defaults_and_preset_values_are_not_given(tmp_path, ran):
    out = ["--out", str(tmp_path / "run")]
    # a default spelt out is fine in either mode
    assert main(["distill", "--no-texture", "--canvas-size", "2", "--canvas-samples", "1", *out]) == 0
    assert main(["distill", "--texture", "--ipc", "1", *out]) == 0
    # a preset's options of its own mode do not stop the other mode (the study's image rows of the demo presets)
    assert main(["distill", "--preset", "demo-mtt", "--no-texture", *out]) == 0
    assert not ran[-1].texture and ran[-1].canvas_samples == 4  # kept as the preset sets it: the same config.json
    assert main(["distill", "--preset", "cifar10-ipc10", "--texture", *out]) == 0


def test_the_api_names_the_nearest_option_and_refuses_the_other_mode():
    with pytest.raises(ConfigError, match=r"unknown option 'canvas_sise' \(did you mean 'canvas_size'\?\)"):
        texdistill.distill(preset="demo-quick", canvas_sise=3)
    with pytest.raises(ConfigError, match="--canvas-size 3 applies to texture mode"):
        texdistill.distill(preset="demo-quick", texture=False, canvas_size=3)


def test_a_config_built_directly_checks_only_what_it_is_told_was_given():
    cfg = DistillConfig(texture=True, ipc=4)
    with pytest.raises(ConfigError, match="--ipc 4 applies to image mode"):
        cfg.refuse_other_mode({"ipc"})
    cfg.refuse_other_mode({"texture"})
