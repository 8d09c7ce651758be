import io
import logging
import pickle
import pickletools

import numpy as np
import pytest
import torch
from datafiles import py2_pickle, random_split, save_image, write_cifar_binary, write_cifar_python, write_synset_tree
from PIL import Image

from texdistill.data import find_dataset, load_dataset
from texdistill.data.cifar import CIFAR10, CIFAR100, CifarUnpickler, load_pickle
from texdistill.data.imagenet import SUBSETS, class_table
from texdistill.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_splits(classes: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"train": random_split(rng, 3 * classes, classes), "test": random_split(rng, classes, classes)}


def assert_round_trip(dataset, splits) -> None:
    for split in ("train", "test"):
        images, labels = splits[split]
        got = dataset.train_images if split == "train" else dataset.test_images
        got_labels = dataset.train_labels if split == "train" else dataset.test_labels
        assert torch.equal(got, torch.from_numpy(images).permute(0, 3, 1, 2))  # every pixel, every channel
        assert got_labels.tolist() == labels.tolist()


@pytest.mark.parametrize("fmt", ["binary", "python"])
@pytest.mark.parametrize("variant", [CIFAR10, CIFAR100])
def test_cifar_formats_round_trip(tmp_path, variant, fmt):
    k = 10 if variant is CIFAR10 else 100
    names = CIFAR10_NAMES if k == 10 else [f"class_{i}" for i in range(k)]
    splits = cifar_splits(k)
    if fmt == "binary":
        write_cifar_binary(tmp_path / variant.bin_folder, {s: list(f) for s, f in variant.bin_files.items()},
                           variant.label_bytes, variant.bin_names, names, splits)
    else:
        write_cifar_python(tmp_path / variant.py_folder, {s: list(f) for s, f in variant.py_files.items()},
                           variant.py_meta, variant.py_names_key.encode(), variant.py_labels_key.encode(), names, splits)
    data = load_dataset(variant.name, str(tmp_path))
    assert data.class_names == names and data.image_size == (32, 32) and data.channels == 3
    assert data.class_counts("train") == [3] * k and data.class_counts("test") == [1] * k
    assert_round_trip(data, splits)
    assert fmt in data.layout
    # --classes keeps those classes, relabelled in the order given
    picked = load_dataset(variant.name, str(tmp_path), classes=(names[3], names[1]))
    assert picked.class_names == [names[3], names[1]] and picked.class_counts("train") == [3, 3]
    first = np.flatnonzero(splits["train"][1] == 3)[0]
    assert torch.equal(picked.train_images[picked.train_labels == 0][0],
                       torch.from_numpy(splits["train"][0][first]).permute(2, 0, 1))


def test_cifar_python_batches_are_what_python2_wrote(tmp_path):
    """The generated batches reference only numpy's reconstruction, as the official files do."""
    blob = py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    globals_ = {arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    (tmp_path / "b").write_bytes(blob)
    assert load_pickle(tmp_path / "b")["labels"] == [0, 1]


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [
    pickle.dumps(Evil(), protocol=2),  # os.system
    pickle.dumps({b"data": np.zeros(3, np.uint8)}, protocol=2),  # a Python 3 pickle: _codecs.encode
    pickle.dumps(eval, protocol=2),  # builtins.eval
    b"\x80\x02cnumpy\nload\nq\x00.",  # numpy.load
    b"\x80\x02cbuiltins\ngetattr\nq\x00.",
])
def test_restricted_unpickler_refuses_every_other_callable(tmp_path, payload):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        CifarUnpickler(io.BytesIO(payload), encoding="bytes").load()
    (tmp_path / "data_batch_1").write_bytes(payload)
    with pytest.raises(DataError, match="refusing"):
        load_pickle(tmp_path / "data_batch_1")


def test_cifar_object_arrays_are_refused(tmp_path):
    (tmp_path / "b").write_bytes(py2_pickle({b"data": np.array([1, "x"], dtype=object)}))
    with pytest.raises(DataError):
        load_pickle(tmp_path / "b")


def test_cifar_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="cifar-10-batches-bin"):
        load_dataset("cifar10", str(tmp_path))
    splits = cifar_splits(10)
    write_cifar_binary(tmp_path / CIFAR10.bin_folder, {s: list(f) for s, f in CIFAR10.bin_files.items()},
                       1, CIFAR10.bin_names, CIFAR10_NAMES, splits)
    with pytest.raises(DataError, match="no class 'zebra'"):
        load_dataset("cifar10", str(tmp_path), classes=("cat", "zebra"))
    batch = tmp_path / CIFAR10.bin_folder / "test_batch.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("cifar10", str(tmp_path))


def test_tinyimagenet_layout(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n02000002", "n01000001", "n03000003"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01000001\tgoldfish, Carassius auratus\nn02000002\tcrane\nn03000003\tcrane\n"
                                    "n09999999\tunused\n")
    truth = {}
    for w in wnids:
        for i in range(2):
            image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            save_image(root / "train" / w / "images" / f"{w}_{i}.JPEG", image, format="JPEG", quality=98,
                       subsampling=0)  # full-resolution colour: noise survives JPEG almost intact
            truth[(w, i)] = image
    lines = []
    for j, w in enumerate(["n03000003", "n01000001", "n03000003"]):
        save_image(root / "val" / "images" / f"val_{j}.JPEG", rng.integers(0, 256, (64, 64), dtype=np.uint8),
                   format="JPEG")  # greyscale JPEG: becomes RGB
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t10\t10")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("tinyimagenet", str(tmp_path))
    # synset order (as ImageFolder), first readable name, duplicates told apart
    assert data.class_names == ["goldfish", "crane (n02000002)", "crane (n03000003)"]
    assert data.image_size == (64, 64) and data.channels == 3
    assert data.class_counts("train") == [2, 2, 2] and data.test_labels.tolist() == [2, 0, 2]
    first = data.train_images[data.train_labels == 0][0].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(first - truth[("n01000001", 0)]).mean() < 6  # JPEG q98 at native size
    assert "val_annotations.txt" in data.layout
    picked = load_dataset("tinyimagenet", str(root), classes=("n03000003", "goldfish"), res=32)
    assert picked.class_names == ["crane (n03000003)", "goldfish"] and picked.image_size == (32, 32)


def test_imagenet_class_table_is_consistent():
    table = class_table()
    assert table[0]["synset"] == "n01440764" and table[0]["name"] == "tench"
    assert table[217]["synset"] == "n02102040" and table[217]["name"] == "English springer"
    assert table[9]["synset"] == "n01518878" and table[9]["name"] == "ostrich"
    assert table[84]["name"] == "peacock" and table[145]["name"] == "king penguin"
    assert {i for subset in SUBSETS.values() for i in subset} == set(table)
    ordered = [table[i]["synset"] for i in sorted(table)]
    assert ordered == sorted(ordered)  # ImageNet-1k indices are the ranks of the synset ids
    assert len({row["devkit_id"] for row in table.values()}) == len(table)


def synsets_of(subset: str) -> list[str]:
    return [class_table()[i]["synset"] for i in SUBSETS[subset]]


def test_imagenet_subset_with_synset_val_folders(tmp_path):
    rng = np.random.default_rng(2)
    synsets = synsets_of("imagesquawk")
    write_synset_tree(tmp_path, synsets + ["n09999999"], 2, 1, rng)
    # odd files in the peacock folder: a lossless PNG, CMYK and 16-bit images, a corrupt "JPEG"
    peacock = tmp_path / "train" / synsets[0]
    exact = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    save_image(peacock / "a_exact.png", exact)
    save_image(peacock / "b_cmyk.JPEG", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), "CMYK", format="JPEG")
    Image.fromarray(rng.integers(0, 65535, (18, 18), dtype=np.uint16)).save(peacock / "c_deep.png")
    (peacock / "d_corrupt.JPEG").write_bytes(b"\xff\xd8\xff not really")
    found = find_dataset("imagesquawk", str(tmp_path), res=16)
    assert found.counts["train"] == [6] + [2] * 9  # files found before decoding
    data = load_dataset("imagesquawk", str(tmp_path), res=16)
    assert data.class_names[:3] == ["peacock", "flamingo", "macaw"] and data.num_classes == 10
    assert data.class_counts("train") == [5] + [2] * 9 and data.class_counts("test") == [1] * 10
    assert len(data.skipped) == 1 and "d_corrupt.JPEG" in data.skipped[0]
    assert torch.equal(data.train_images[0], torch.from_numpy(exact).permute(2, 0, 1))  # sorted: a_exact first
    assert data.image_size == (16, 16) and "val/<synset>/ folders" in data.layout
    found = find_dataset("imagesquawk", str(tmp_path), res=16, classes=("ostrich", "n01806143"))
    assert found.class_names == ["ostrich", "peacock"] and found.counts == {"train": [2, 6], "test": [1, 1]}
    with pytest.raises(DataError, match="lacks the synset folder"):
        load_dataset("imagefruit", str(tmp_path))


@pytest.mark.parametrize("truth_format", ["kaggle", "devkit", "caffe"])
def test_imagenet_flat_val_with_each_ground_truth_file(tmp_path, truth_format):
    rng = np.random.default_rng(3)
    synsets = synsets_of("imagenette")
    other = "n01443537"  # goldfish: not in the subset, its val images must be ignored
    val_labels = write_synset_tree(tmp_path, synsets + [other], 1, 2, rng, flat_val=True)
    index_of = {row["synset"]: i for i, row in class_table().items()}
    devkit_of = {row["synset"]: row["devkit_id"] for row in class_table().values()}
    names = sorted(val_labels)
    if truth_format == "kaggle":
        rows = [f"{n[:-5]},{val_labels[n]} 1 2 3 4 {val_labels[n]} 5 6 7 8" for n in names]
        (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    elif truth_format == "devkit":
        devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
        devkit.mkdir(parents=True)
        ids = [devkit_of.get(val_labels[n], 1) for n in names]  # goldfish: some ID outside our table
        (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(map(str, ids)) + "\n")
    else:
        lines = [f"{n} {index_of.get(val_labels[n], 1)}" for n in names]
        (tmp_path / "val" / "val.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("imagenette", str(tmp_path), res=16)
    assert data.class_names[0] == "tench" and data.class_counts("test") == [2] * 10
    expected = [synsets.index(val_labels[n]) for n in names if val_labels[n] in synsets]
    assert data.test_labels.tolist() == expected
    assert "flat val/" in data.layout and {"kaggle": "LOC_val", "devkit": "ground_truth", "caffe": "val.txt"}[
        truth_format] in data.layout


def test_imagenet_without_a_val_set_says_which_layouts_work(tmp_path):
    write_synset_tree(tmp_path, synsets_of("imagemeow"), 1, 0, np.random.default_rng(4))
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="LOC_val_solution.csv"):
        load_dataset("imagemeow", str(tmp_path), res=16)


def write_mode_zoo(folder, rng):
    """One image per awkward mode; returns the RGB each should decode to (at its native 12×12 size)."""
    rgb = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    expected = {}
    save_image(folder / "rgb.png", rgb)
    expected["rgb.png"] = rgb
    save_image(folder / "grey.png", grey)
    expected["grey.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    Image.fromarray((grey.astype(np.uint16) * 257)).save(folder / "sixteen.png")  # I;16
    expected["sixteen.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((12, 12, 1), 255, np.uint8)], axis=2)
    rgba[:6, :, 3] = 0  # top half fully transparent → white
    Image.fromarray(rgba).save(folder / "alpha.png")
    expected["alpha.png"] = np.concatenate([np.full((6, 12, 3), 255, np.uint8), rgb[6:]])
    la = np.stack([grey, np.full_like(grey, 255)], axis=2)
    Image.fromarray(la, mode="LA").save(folder / "la.png")
    expected["la.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    palette = Image.fromarray(rgb).quantize(colors=16)
    palette.save(folder / "palette.png")
    expected["palette.png"] = np.asarray(palette.convert("RGB"))
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.tif")
    expected["cmyk.tif"] = rgb
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)  # readable, lossy
    expected["cmyk.jpg"] = rgb
    return expected


def test_folder_reads_every_mode_and_skips_corrupt_files(tmp_path, caplog):
    rng = np.random.default_rng(5)
    expected = write_mode_zoo(tmp_path / "zoo", rng)
    for i in range(3):
        save_image(tmp_path / "plain" / "sub" / f"{i}.png", rng.integers(0, 256, (30, 20, 3), dtype=np.uint8))
    (tmp_path / "zoo" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = tmp_path / "zoo" / "rgb.png"
    (tmp_path / "zoo" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "zoo" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "zoo" / ".hidden.png").write_bytes(b"ignored too")
    with caplog.at_level(logging.WARNING):
        data = load_dataset("folder", str(tmp_path), res=12, holdout=0.0)
    assert data.class_names == ["plain", "zoo"] and data.channels == 3
    assert data.class_counts("train") == [3, len(expected)] and len(data.test_images) == 0
    assert sorted(s.split(":")[0].rsplit("/", 1)[1] for s in data.skipped) == ["broken.jpg", "truncated.png"]
    assert "skipped 2 unreadable" in caplog.text and "broken.jpg" in caplog.text
    zoo = data.train_images[data.train_labels == 1].permute(0, 2, 3, 1).numpy().astype(int)
    for image, name in zip(zoo, sorted(expected)):  # files are read in sorted order
        if name == "cmyk.jpg":  # lossy
            assert np.abs(image - expected[name]).mean() < 8, name
        else:
            assert np.array_equal(image, expected[name]), name


def test_folder_holdout_split_classes_and_errors(tmp_path):
    rng = np.random.default_rng(6)
    for cls, n in (("cats", 10), ("dogs", 5), ("owls", 1)):
        for i in range(n):
            save_image(tmp_path / cls / f"{i}.jpg", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), format="JPEG")
    data = load_dataset("folder", str(tmp_path), res=8, classes=("dogs", "cats"), holdout=0.2)
    assert data.class_names == ["dogs", "cats"]
    assert data.class_counts("train") == [4, 8] and data.class_counts("test") == [1, 2]
    again = load_dataset("folder", str(tmp_path), res=8, classes=("dogs", "cats"), holdout=0.2)
    assert torch.equal(again.test_images, data.test_images)  # the split is stable
    assert find_dataset("folder", str(tmp_path), holdout=0.5).counts["test"] == [5, 2, 0]  # a single image stays
    with pytest.raises(DataError, match="no class 'horses'"):
        load_dataset("folder", str(tmp_path), classes=("horses",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("folder", str(tmp_path))
    (tmp_path / "empty" / "a.png").write_bytes(b"corrupt")
    (tmp_path / "empty" / "b.png").write_bytes(b"corrupt too")
    with pytest.raises(DataError, match="empty.*no readable training images"):
        load_dataset("folder", str(tmp_path), res=8)


def test_folder_train_val_layout(tmp_path):
    rng = np.random.default_rng(7)
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                save_image(tmp_path / split / cls / f"{i}.png", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    data = load_dataset("folder", str(tmp_path), res=9)
    assert data.class_counts("train") == [3, 3] and data.class_counts("test") == [2, 2]
    assert "val/<class>/" in data.layout


def test_patches_cut_many_views_per_picture_and_split_by_picture(tmp_path):
    # 3 classes × 8 large patterned photos; --patches 96 → 576 training views per class, none from a test picture
    from texdistill.data import find_dataset, load_dataset

    rng = np.random.default_rng(0)
    for c, cls in enumerate(("moss", "bark", "lichen")):
        for i in range(8):
            yy, xx = np.mgrid[0:1100, 0:1000]
            stripes = (np.sin((xx * (c + 1) + yy * i) / 9.0) > 0).astype(np.uint8) * 180
            photo = np.stack([stripes, np.roll(stripes, 7 * c, 0), rng.integers(0, 60, stripes.shape, dtype=np.uint8)], -1)
            save_image(tmp_path / "photos" / cls / f"photo {i}.jpg", photo.astype(np.uint8), format="JPEG")
    options = dict(name="folder", data_dir=str(tmp_path / "photos"), res=32, holdout=0.25, patches=96)
    found = find_dataset(**options)
    assert found.counts == {"train": [576] * 3, "test": [192] * 3} and "96 random crops per picture" in found.layout
    data = load_dataset(**options, cache_dir=tmp_path / "cache")
    assert data.train_images.shape == (3 * 6 * 96, 3, 32, 32) and data.test_images.shape == (3 * 2 * 96, 3, 32, 32)
    assert data.class_counts() == [576] * 3
    # the patches of a picture differ (positions and scales) and are the same on every decode
    first = data.train_images[:96].float()
    assert (first - first.mean(0)).abs().mean() > 5
    again = load_dataset(**options)
    assert torch.equal(again.train_images, data.train_images) and torch.equal(again.test_images, data.test_images)
    # every test view is a patch of a held-out picture (decoded again here from exactly those files)
    from texdistill.data.folder import held_out
    from texdistill.data.images import Reading, list_images, read_image

    test_files = [f for cls in ("bark", "lichen", "moss")
                  for f in held_out(list_images(tmp_path / "photos" / cls), tmp_path / "photos", 0.25)[1]]
    expected = np.concatenate([read_image(f, Reading(32, 96)) for f in test_files]).transpose(0, 3, 1, 2)
    assert len(test_files) == 6 and np.array_equal(data.test_images.numpy(), expected)
    one = load_dataset(**{**options, "patches": 0})
    assert len(one.train_images) == 18 and len(one.test_images) == 6
    # the cache keeps the patched and the plain dataset apart
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1
    with pytest.raises(DataError, match="--patches cuts crops from image files"):
        find_dataset("fashion-demo", patches=4)


def test_transparency_goes_onto_the_chosen_background(tmp_path):
    from texdistill.data import load_dataset

    for cls in ("a", "b"):
        art = np.zeros((40, 40, 4), dtype=np.uint8)
        art[10:30, 10:30] = (200, 30, 30, 255)  # an opaque red square on a transparent sheet
        for i in range(2):
            save_image(tmp_path / "art" / cls / f"{i}.png", art, format="PNG")
    for background, corner in (("white", 255), ("black", 0), ("#336699", (0x33, 0x66, 0x99))):
        data = load_dataset("folder", data_dir=str(tmp_path / "art"), res=20, holdout=0, background=background)
        expected = torch.tensor(corner if isinstance(corner, tuple) else (corner,) * 3, dtype=torch.uint8)
        assert torch.equal(data.train_images[0, :, 0, 0], expected)
        assert torch.equal(data.train_images[0, :, 10, 10], torch.tensor([200, 30, 30], dtype=torch.uint8))
    with pytest.raises(DataError, match="--background must be white, black or a colour #rrggbb"):
        load_dataset("folder", data_dir=str(tmp_path / "art"), res=20, background="#12")
