import pytest
import torch

from cadence.data import load
from cadence.errors import ConfigError

Image = pytest.importorskip("PIL.Image")


def write_folder(root, sizes=((6, 5),), per_class=3, classes=("paper", "rock", "scissors")):
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            width, height = sizes[index % len(sizes)]
            color = (label * 100, index * 50, 0)
            suffix = ".png" if index % 2 == 0 else ".jpg"
            Image.new("RGB", (width, height), color).save(root / name / f"{index}{suffix}")


def test_image_folder_loads_classes_and_pixels(tmp_path):
    write_folder(tmp_path / "train")
    write_folder(tmp_path / "test", per_class=1)
    data = load("image-folder", path=str(tmp_path / "train"), test_path=str(tmp_path / "test"))
    assert data.meta["classes"] == ["paper", "rock", "scissors"]
    assert data.num_classes == 3
    assert data.train.inputs.shape == (9, 3, 5, 6)
    assert data.test.inputs.shape == (3, 3, 5, 6)
    assert data.train.targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # first image of class "rock" is a PNG filled with (100, 0, 0)
    assert torch.allclose(data.train.inputs[3, :, 0, 0], torch.tensor([100 / 255, 0.0, 0.0]))


def test_image_folder_split_resize_and_grayscale(tmp_path):
    write_folder(tmp_path, sizes=((6, 5), (9, 7)), per_class=5)
    with pytest.raises(ConfigError, match="resize"):
        load("image-folder", path=str(tmp_path))
    data = load("image-folder", path=str(tmp_path), resize=[4, 4], channels=1, test_fraction=0.2)
    assert data.train.inputs.shape == (12, 1, 4, 4)
    assert data.test.inputs.shape == (3, 1, 4, 4)


def test_corrupt_image_names_the_file(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "rock" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ConfigError, match=r"broken.png"):
        load("image-folder", path=str(tmp_path))


def test_image_folder_needs_a_path_and_class_folders(tmp_path):
    with pytest.raises(ConfigError, match="path"):
        load("image-folder")
    (tmp_path / "only").mkdir()
    with pytest.raises(ConfigError, match="at least 2"):
        load("image-folder", path=str(tmp_path))


def test_image_folder_records_one_checksum_per_folder_over_the_images_read(tmp_path):
    import hashlib

    from cadence.tracking.fingerprint import make_fingerprint, stale_reason

    write_folder(tmp_path / "train")
    (tmp_path / "train" / "rock" / "notes.txt").write_text("not an image, not read")
    data = load("image-folder", path=str(tmp_path / "train"))
    (entry,) = data.meta["files"]
    root = tmp_path / "train"
    lines = "".join(
        f"{file.relative_to(root).as_posix()}\t{hashlib.sha256(file.read_bytes()).hexdigest()}\n"
        for file in sorted(root.rglob("*"))
        if file.suffix in (".png", ".jpg")
    )
    assert (entry["name"], entry["kind"], entry["files"]) == ("image-folder:path", "folder", 9)
    assert entry["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fingerprint = make_fingerprint({"data": {"name": "image-folder"}}, data_files=data.meta["files"])
    (run_dir / "meta.json").write_text(__import__("json").dumps({"fingerprint": fingerprint}))
    expected = make_fingerprint({"data": {"name": "image-folder"}})
    assert stale_reason(run_dir, expected) is None
    (tmp_path / "train" / "rock" / "notes.txt").write_text("still not read")
    assert stale_reason(run_dir, expected) is None
    Image.new("RGB", (7, 5), (1, 2, 3)).save(tmp_path / "train" / "rock" / "0.png")  # another size too
    assert stale_reason(run_dir, expected) == (
        f"its data folder {str((tmp_path / 'train').resolve())!r} changed (SHA-256 over its files differs)"
    )
