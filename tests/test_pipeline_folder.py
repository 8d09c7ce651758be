"""The designers' flow: a folder of transparent PNG artwork (names with spaces) → textures, evaluation, mock-ups
and the report with one command (`texdistill run`), tiny settings."""

import json
from pathlib import Path

from tinyrun import one_thread

from scripts import repo_script
from texdistill.cli import main


def make_art(folder: Path, per_class: int) -> list[Path]:
    return repo_script("scripts/make_example_art.py").make_art(folder, per_class)


def test_one_command_from_a_folder_of_artwork_to_the_report(tmp_path, capsys):
    files = make_art(tmp_path / "my art", per_class=12)
    assert len(files) == 60 and all(" " in f.name for f in files)
    out = tmp_path / "run"
    argv = ["run", "--data", "folder", "--data-dir", str(tmp_path / "my art"), "--res", "16", "--patches", "4",
            "--background", "#f0f0f0", "--width", "8", "--num-experts", "1", "--epochs", "2", "--texture",
            "--syn-steps", "2", "--expert-epochs", "1", "--max-start-epoch", "2", "--iterations", "4",
            "--ckpt-every", "2", "--num-models", "1", "--eval-epochs", "2", "--judge-epochs", "1",
            "--clamp-pixels", "--recognition-lr", "0.05", "--recognition-models", "1", "--recognizer-epochs", "1",
            "--out", str(out)]
    with one_thread():
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1].startswith(f"report: {out / 'report.html'}")
    classes = ["blue star", "green leaf", "purple heart", "red apple", "yellow sun"]
    for name in classes:
        for relative in (f"textures/{name}.png", f"textures/{name}_3x3.png", f"mockups/{name}_tshirt.png",
                         f"evolution/{name}.png", f"print/{name}_20cm_300dpi.png"):
            assert (out / relative).exists(), relative
    assert (out / "contact_sheet.png").exists()
    results = json.loads((out / "eval.json").read_text())
    assert results["complete"] and set(results["wearability"]["sets"]["distilled"]["classes"]) == set(classes)
    meta = json.loads((out / "config.json").read_text())
    assert meta["distill"]["patches"] == 4 and meta["evaluate"]["background"] == "#f0f0f0"
    page = (out / "report.html").read_text()
    assert "purple heart" in page and 'http-equiv="refresh"' not in page  # the final report, not the live one
    # the same command again resumes every stage and changes nothing
    before = (out / "synthetic.safetensors").read_bytes()
    with one_thread():
        assert main(argv) == 0
    assert (out / "synthetic.safetensors").read_bytes() == before
