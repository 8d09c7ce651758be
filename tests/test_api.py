"""The Python API: the README's example runs as written, and options are checked like the CLI's."""

import os
import re
from pathlib import Path

import pytest

import texdistill
from texdistill.errors import ConfigError

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_example_runs(tmp_path, capsys):
    text = README.read_text()
    example = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(example, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "texture (10, 1, 56, 56)"
    accuracy, wear = (float(v) for v in out[1].split())
    assert 0 <= accuracy <= 1 and 0 <= wear <= 1
    assert out[2] == "runs/notebook/report.html" and (tmp_path / out[2]).exists()
    synthetic, meta, space = texdistill.load(tmp_path / "runs" / "notebook")
    assert meta["iteration"] == 10 and synthetic.periodic


def test_unknown_options_are_one_clear_error():
    with pytest.raises(ConfigError, match=r"texdistill.distill\(\) \(`texdistill distill --help`\): unknown option "
                                          r"'lr_imgg' \(did you mean 'lr_img'\?\)"):
        texdistill.distill(preset="demo-quick", lr_imgg=3)
