import hashlib
import json

import pytest
from tinyrun import SIDE, _data_dir, one_thread

from texdistill.cli import main
from texdistill.tools.sweep import experts_folder


def tiny_spec(path, rows, base=None):
    base = {"data": "fashion-mnist", "data_dir": str(_data_dir[0]), "res": SIDE, "width": 4, "epochs": 2,
            "num_experts": 1, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 2, "iterations": 2,
            "log_every": 1, "num_models": 1, "eval_epochs": 1, "baselines": False, "texture": True, **(base or {})}
    path.write_text(json.dumps({"base": base, "rows": rows}))
    return path


def test_sweep_runs_rows_shares_experts_and_resumes(tmp_path, tiny_data, capsys):
    spec = tiny_spec(tmp_path / "spec.json", {"noise": {"init": "noise", "baselines": True},
                                               "images": {"texture": False, "init": "real"},
                                               "wide": {"width": 6}, "final": {"split": "test"}})
    out = tmp_path / "sweep"
    with one_thread():
        assert main(["sweep", str(spec), "--out", str(out), "--rows", "noise,images"]) == 0
    assert len(list(out.glob("experts-*"))) == 1  # both rows use the same experts
    table = (out / "sweep.md").read_text()
    assert "| noise | init=noise, baselines=True |" in table and "| images | texture=False, init=real |" in table
    assert "random real tiled" in table and "wide" not in table
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [r["row"] for r in rows] == ["noise", "images"]
    assert 0 <= rows[0]["result"]["sets"]["distilled"]["mean"] <= 1
    assert rows[0]["result"]["split"] == "val" and "accuracy on the validation split" in table  # rows judge on val

    before = (out / "noise" / "synthetic.safetensors").read_bytes()
    with one_thread():
        assert main(["sweep", str(spec), "--out", str(out)]) == 0  # finished rows are skipped, 'wide' runs
    assert (out / "noise" / "synthetic.safetensors").read_bytes() == before
    assert len(list(out.glob("experts-*"))) == 2 and "| wide | width=6 |" in (out / "sweep.md").read_text()
    assert "| final (test) | split=test |" in (out / "sweep.md").read_text()  # unless a row says test
    assert json.loads((out / "final" / "eval.json").read_text())["split"] == "test"

    # --table-only tabulates the finished rows whose values match this spec, with this spec's change columns
    other = tiny_spec(tmp_path / "other.json", {"noise": {"baselines": True, "init": "noise"},
                                                 "images": {"texture": False, "init": "noise"}})
    assert main(["sweep", str(other), "--out", str(out), "--table-only"]) == 0
    table = (out / "sweep.md").read_text()
    assert "| noise | baselines=True, init=noise |" in table and "| images |" not in table

    tiny_spec(spec, {"noise": {"init": "real"}})  # the same row name with other values must not be mixed up
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert "sweep row 'noise'" in capsys.readouterr().err


@pytest.mark.parametrize("spec, problem", [
    ("{not json", "cannot read sweep spec"),
    ('{"rows": {}}', "non-empty \"rows\""),
    ('{"preset": "nope", "rows": {"a": {}}}', "unknown preset 'nope'"),
    ('{"rows": {"a": {"lr_imgg": 1}}}', "'a': unknown option 'lr_imgg' (did you mean 'lr_img'?)"),
    ('{"rows": {"a": {"texture": false, "canvas_size": 3}}}', "--canvas-size 3 applies to texture mode"),
    ('{"rows": {"a": {"out": "x"}}}', "sets out, which the sweep places"),
    ('{"rows": {"../a": {}}}', "must be a folder name"),
])
def test_bad_specs_get_one_clear_line(tmp_path, capsys, spec, problem):
    (tmp_path / "spec.json").write_text(spec)
    assert main(["sweep", str(tmp_path / "spec.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_unknown_rows_are_named(tmp_path, capsys):
    (tmp_path / "spec.json").write_text('{"rows": {"a": {}, "b": {}}}')
    assert main(["sweep", str(tmp_path / "spec.json"), "--rows", "a,c"]) == 2
    assert "--rows names c" in capsys.readouterr().err


def test_the_experts_folder_name_depends_only_on_options_off_their_defaults(tmp_path):
    values = {"data": "fashion-demo", "width": 8, "epochs": 2}
    plain = experts_folder(tmp_path, values)
    assert experts_folder(tmp_path, {**values, "wrap_shift": 0.0}) == plain  # a default spelled out: the same
    assert experts_folder(tmp_path, {**values, "num_experts": 9}) != plain  # another expert count: its own
    assert experts_folder(tmp_path, {**values, "wrap_shift": 0.5}) != plain
    assert experts_folder(tmp_path, {**values, "iterations": 7}) == plain  # not an experts option
    # experts without a validation split keep the folder they had before there was one; the default has its own
    before = {"width": 8, "epochs": 2}  # the options off their defaults (fashion-demo is the default data)
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    assert experts_folder(tmp_path, {**values, "val_fraction": 0.0}) == tmp_path / f"experts-{digest}" != plain
