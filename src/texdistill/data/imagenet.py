"""The ImageNet subsets of MTT (imagenette, imagewoof, …) read from an ImageNet train/val tree on disk.

Train: `train/<synset>/*.JPEG`. Val, whichever is found first:
1. `val/<synset>/*.JPEG` (synset folders, e.g. after the usual valprep.sh or torchvision's ImageNet);
2. a flat `val/*.JPEG` folder with a ground-truth file: Kaggle's `LOC_val_solution.csv`, the devkit's
   `ILSVRC2012_validation_ground_truth.txt` (ILSVRC2012_IDs, one line per image in file order), or a
   `val.txt` of `<file> <ImageNet-1k index or synset>` lines (Caffe's).
--data-dir is the folder holding train/ and val/ (or Kaggle's folder holding ILSVRC/Data/CLS-LOC/).
"""

from __future__ import annotations

import csv
import json
from functools import cache
from importlib import resources
from pathlib import Path

from texdistill.data.images import Items, file_source, list_images
from texdistill.data.source import DataRequest, Found, select_classes
from texdistill.errors import DataError

DEFAULT_RES = 128
TABLE = "imagenet_classes.json"
# ImageNet-1k class indices of each subset, in label order (MTT's utils.Config; the paper's §3)
SUBSETS = {
    "imagenette": (0, 217, 482, 491, 497, 566, 569, 571, 574, 701),
    "imagewoof": (193, 182, 258, 162, 155, 167, 159, 273, 207, 229),
    "imagemeow": (281, 282, 283, 284, 285, 291, 292, 290, 289, 287),
    "imagesquawk": (84, 130, 88, 144, 145, 22, 96, 9, 100, 89),
    "imagefruit": (953, 954, 949, 950, 951, 957, 952, 945, 943, 948),
    "imageyellow": (309, 986, 954, 951, 987, 779, 599, 291, 72, 11),
}
GROUND_TRUTH_FILES = ("LOC_val_solution.csv", "ILSVRC2012_validation_ground_truth.txt", "val.txt")


@cache
def class_table() -> dict[int, dict]:
    """ImageNet-1k index → {"synset", "name", "devkit_id"} for every class of the subsets (package data)."""
    with resources.files("texdistill.data").joinpath(TABLE).open("r") as f:
        return {int(k): v for k, v in json.load(f)["classes"].items()}


def _image_root(data_dir: Path) -> Path:
    for root in (data_dir, data_dir / "ILSVRC" / "Data" / "CLS-LOC"):
        if (root / "train").is_dir():
            return root
    raise DataError(f"{data_dir} has no train/ folder; --data-dir must hold ImageNet's train/ and val/ "
                    f"(train/<synset>/*.JPEG), or Kaggle's ILSVRC/Data/CLS-LOC/")


def _ground_truth(data_dir: Path, root: Path, val: Path, synsets: set[str]) -> tuple[dict[Path, str], str] | None:
    """file → synset of the flat val images of `synsets`, and the ground-truth file used."""
    by_index = {i: row["synset"] for i, row in class_table().items()}
    by_devkit = {row["devkit_id"]: row["synset"] for row in class_table().values()}
    places = (val, root, data_dir, data_dir / "ILSVRC2012_devkit_t12" / "data", data_dir / "devkit" / "data")
    for name in GROUND_TRUTH_FILES:
        path = next((p / name for p in places if (p / name).is_file()), None)
        if path is None:
            continue
        labels: dict[Path, str] = {}
        if name.endswith(".csv"):  # ImageId,PredictionString ("n01751748 x0 y0 x1 y1 …")
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    labels[val / f"{row['ImageId']}.JPEG"] = row["PredictionString"].split()[0]
        elif name.startswith("ILSVRC2012_validation"):  # line i: ILSVRC2012_ID of ILSVRC2012_val_{i:08d}.JPEG
            for i, line in enumerate(path.read_text().split(), start=1):
                labels[val / f"ILSVRC2012_val_{i:08d}.JPEG"] = by_devkit.get(int(line), "")
        else:  # "<file> <0-based ImageNet-1k index or synset>"
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    labels[val / parts[0]] = by_index.get(int(parts[1]), "") if parts[1].isdigit() else parts[1]
        return {file: synset for file, synset in labels.items() if synset in synsets}, str(path)
    return None


def scan_imagenet_subset(subset: str, request: DataRequest) -> Found:
    """One of SUBSETS from an ImageNet tree, resized (shorter side + centre crop) to --res (default 128)."""
    if request.data_dir is None:
        raise DataError(f"--data {subset} needs --data-dir: your ImageNet folder with train/ and val/ "
                        f"(nothing is downloaded)")
    data_dir = Path(request.data_dir)
    root = _image_root(data_dir)
    rows = [class_table()[i] for i in SUBSETS[subset]]
    names = [row["name"] for row in rows]
    keep = select_classes(names, request.classes, subset, aliases={row["synset"]: i for i, row in enumerate(rows)})
    synsets = [rows[c]["synset"] for c in keep]
    missing = [f"{s} ({rows[c]['name']})" for c, s in zip(keep, synsets) if not (root / "train" / s).is_dir()]
    if missing:
        raise DataError(f"{root / 'train'} lacks the synset folder(s) {', '.join(missing)} of {subset}")
    items: Items = {"train": [(p, label) for label, s in enumerate(synsets) for p in list_images(root / "train" / s)]}
    val = root / "val"
    if all((val / s).is_dir() for s in synsets):
        items["test"] = [(p, label) for label, s in enumerate(synsets) for p in list_images(val / s)]
        val_layout = "val/<synset>/ folders"
    else:
        found = _ground_truth(data_dir, root, val, set(synsets)) if val.is_dir() else None
        if found is None:
            raise DataError(f"no usable val set for {subset} in {root}: need val/<synset>/ folders, or a flat val/ "
                            f"folder plus one of {', '.join(GROUND_TRUTH_FILES)} (in val/, {root} or {data_dir})")
        labels, gt_file = found
        label_of = {s: i for i, s in enumerate(synsets)}
        items["test"] = sorted((p, label_of[s]) for p, s in labels.items() if p.is_file())
        val_layout = f"flat val/ folder labelled by {gt_file}"
    layout = f"ImageNet tree {root}: train/<synset>/ folders, {val_layout}"
    return file_source(subset, root, layout, [names[c] for c in keep], items, request.res or DEFAULT_RES, request)
