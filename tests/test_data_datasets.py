"""Dataset readers and the synthetic generator: layout, counts, junk/distractors, and clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from hwnas.data.datasets import MSMT17, SYNTHETIC_MARKER, DatasetError, DukeMTMCreID, Market1501
from hwnas.data.loaders import ImageDataset, ImageReadError, read_image
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.data.synthetic import main as synthetic_main
from hwnas.data.transforms import build_transforms
from hwnas.errors import OutputError

KW = {"num_ids": 4, "images_per_id": 5, "num_cameras": 3, "image_size": (32, 16), "seed": 3}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate_synthetic_market(tmp_path_factory.mktemp("syn") / "market", **KW)


def test_synthetic_layout_and_counts(synthetic):
    ds = Market1501(synthetic)
    assert ds.num_train_pids == 4 and len(ds.train) == 20
    assert sorted({pid for _, pid, _ in ds.train}) == [0, 1, 2, 3]  # relabelled for the classifier
    gallery_files = list((synthetic / "bounding_box_test").iterdir())
    junk = [f for f in gallery_files if f.name.startswith("-1_")]
    assert junk and len(ds.gallery) == len(gallery_files) - len(junk)  # junk dropped
    assert any(pid == 0 for _, pid, _ in ds.gallery)  # distractors kept
    assert all(0 <= cam < 3 for _, _, cam in ds.train + ds.query + ds.gallery)
    for _, pid, cam in ds.query:  # every query has a gallery match in another camera
        assert any(gp == pid and gc != cam for _, gp, gc in ds.gallery)
    assert read_image(ds.train[0][0]).size == (16, 32)


def test_synthetic_is_deterministic_and_refuses_overwrite(synthetic, tmp_path):
    again = generate_synthetic_market(tmp_path / "again", **KW)
    names = lambda root: sorted(p.name for p in (root / "query").iterdir())
    assert names(again) == names(synthetic)
    a = (again / "query" / names(again)[0]).read_bytes()
    assert a == (synthetic / "query" / names(again)[0]).read_bytes()
    with pytest.raises(OutputError, match="already has files"):
        generate_synthetic_market(tmp_path / "again", **KW)


def test_synthetic_cli(tmp_path, capsys):
    assert synthetic_main(["--output", str(tmp_path / "cli"), "--num-ids", "2", "--images-per-id", "3",
                           "--num-cameras", "2", "--input-size", "16x8"]) == 0
    marker = json.loads((tmp_path / "cli" / SYNTHETIC_MARKER).read_text())
    assert marker["counts"]["train"] == {"images": 6, "ids": 2}
    assert Market1501(tmp_path / "cli").num_train_pids == 2


def test_synthetic_cli_through_a_link_and_dotdot_and_with_the_umask_mode(tmp_path, monkeypatch, capsys):
    from hwnas._io import dir_mode

    monkeypatch.chdir(tmp_path)
    small = ["--num-ids", "2", "--images-per-id", "3", "--num-cameras", "2", "--input-size", "16x8", "--no-progress"]
    target = tmp_path / "target"
    target.mkdir(mode=0o750)
    target.chmod(0o750)
    (tmp_path / "LINK").symlink_to(target)
    assert synthetic_main(["--output", "LINK", *small]) == 0  # it wrote a whole dataset, then failed on the link
    assert (target / SYNTHETIC_MARKER).is_file() and (tmp_path / "LINK").is_symlink()
    assert target.stat().st_mode & 0o777 == 0o750  # the user's empty folder keeps its mode
    assert synthetic_main(["--output", "fresh", *small]) == 0
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == dir_mode()  # not mkdtemp's 0700
    capsys.readouterr()
    assert synthetic_main(["--output", "new/..", *small]) == 2  # the working folder: refused before generating
    assert f"output folder is not empty, --output {tmp_path}," in capsys.readouterr().err  # new/.. resolved
    assert not (tmp_path / "new").exists()


def test_real_dataset_counts_are_checked(synthetic, tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    shutil.copytree(synthetic, root)
    (root / SYNTHETIC_MARKER).unlink()  # now it claims to be the real Market-1501
    with pytest.raises(DatasetError, match=r"train split has 20 images / 4 ids, .*expected the published market1501 sizes"):
        Market1501(tmp_path)  # the parent folder is accepted too
    assert len(Market1501(tmp_path, check_counts=False).train) == 20


def test_a_damaged_synthetic_copy_is_to_be_regenerated_not_read_trimmed(synthetic, tmp_path):
    root = tmp_path / "syn"
    shutil.copytree(synthetic, root)
    next((root / "bounding_box_train").iterdir()).unlink()
    with pytest.raises(DatasetError, match=r"train split has 19 images .*counts in SYNTHETIC.json.*remove the folder") \
            as e:
        Market1501(root)
    assert "--no-count-check" not in str(e.value)  # a generated copy is made again, never read trimmed
    with pytest.raises(DatasetError, match="train split has 19 images"):
        Market1501(root, check_counts=False)  # --no-count-check is for trimmed copies of real datasets
    marker = json.loads((root / SYNTHETIC_MARKER).read_text())
    for counts in ({}, None, {"train": marker["counts"]["train"]}):  # a marker that lost its counts checks nothing
        (root / SYNTHETIC_MARKER).write_text(json.dumps({**marker, "counts": counts}))
        with pytest.raises(DatasetError, match="marker's counts are"):
            Market1501(root)
    train = marker["counts"]["train"]
    for bad in ({**train, "images": str(train["images"])}, {**train, "ids": train["ids"] + 0.5}, {**train, "ids": True},
                {**train, "images": -1}, {"images": train["images"]}, [train["images"], train["ids"]]):
        # a count that is not a JSON whole number is a damaged marker (int() read "64" and truncated 64.5)
        (root / SYNTHETIC_MARKER).write_text(json.dumps({**marker, "counts": {**marker["counts"], "train": bad}}))
        with pytest.raises(DatasetError, match=r"counts of 'train' are .*whole numbers"):
            Market1501(root)


def test_missing_empty_and_misnamed(synthetic, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Market1501(tmp_path / "nowhere")
    root = tmp_path / "m"
    shutil.copytree(synthetic, root)
    shutil.rmtree(root / "query")
    with pytest.raises(DatasetError, match=r"folder does not exist, '.*query', expected"):
        Market1501(root)
    (root / "query").mkdir()
    with pytest.raises(DatasetError, match=r"no images, '.*query', expected"):
        Market1501(root)
    shutil.copy(next((root / "bounding_box_train").iterdir()), root / "query" / "person7.jpg")
    with pytest.raises(DatasetError, match=r"does not follow the market1501 naming, '.*person7\.jpg', expected"):
        Market1501(root)


def test_corrupt_and_truncated_jpeg_name_the_file(synthetic, tmp_path):
    src = next((synthetic / "bounding_box_train").iterdir()).read_bytes()
    truncated = tmp_path / "0001_c1s1_000001_01.jpg"
    truncated.write_bytes(src[: len(src) // 2])
    corrupt = tmp_path / "0001_c1s1_000002_01.jpg"
    corrupt.write_bytes(b"not a jpeg at all" * 10)
    ds = ImageDataset([(str(truncated), 0, 0), (str(corrupt), 0, 0)], build_transforms(32, 16, train=False))
    with pytest.raises(ImageReadError, match=r"corrupt, truncated or not an image .*000001_01\.jpg', expected"):
        ds[0]
    with pytest.raises(ImageReadError, match=r"corrupt, truncated or not an image .*000002_01\.jpg', expected"):
        ds[1]
    x, pid, cam = ImageDataset([(str(next((synthetic / 'query').iterdir())), 5, 1)],
                               build_transforms(32, 16, train=False))[0]
    assert x.shape == (3, 32, 16) and (pid, cam) == (5, 1) and torch.isfinite(x).all()


def test_duke_layout(synthetic, tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    shutil.copytree(synthetic, root)
    (root / SYNTHETIC_MARKER).unlink()  # a (trimmed) copy of the real dataset, not a generated one
    (root / "query" / "0005_c8_f0001234.jpg").write_bytes(next((root / "query").iterdir()).read_bytes())
    ds = DukeMTMCreID(tmp_path, check_counts=False)
    assert (str(root / "query" / "0005_c8_f0001234.jpg"), 5, 7) in ds.query
    (root / "query" / "0005_c9_f0001234.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"pid 5 / camera 9, '.*c9_f0001234\.jpg', expected"):
        DukeMTMCreID(tmp_path, check_counts=False)


def test_msmt17_lists(tmp_path):
    root = tmp_path / "MSMT17_V1"
    for sub, name in (("train", "0000/0000_000_01_0303morning_0015_0.jpg"), ("train", "0001/0001_000_05_x_0_0.jpg"),
                      ("test", "0000/0000_000_03_0303noon_0001_0.jpg"), ("test", "0000/0000_001_15_a_1_0.jpg")):
        (root / sub / name).parent.mkdir(parents=True, exist_ok=True)
        (root / sub / name).write_bytes(b"")
    (root / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    (root / "list_val.txt").write_text("0001/0001_000_05_x_0_0.jpg 1\n")
    (root / "list_query.txt").write_text("0000/0000_000_03_0303noon_0001_0.jpg 0\n")
    (root / "list_gallery.txt").write_text("0000/0000_001_15_a_1_0.jpg 0\n\n")
    ds = MSMT17(tmp_path, check_counts=False)
    assert [(pid, cam) for _, pid, cam in ds.train] == [(0, 0), (1, 4)]
    assert ds.query[0][0] == str(root / "test" / "0000/0000_000_03_0303noon_0001_0.jpg") and ds.gallery[0][2] == 14
    with pytest.raises(DatasetError, match="published msmt17 sizes"):
        MSMT17(tmp_path)
    (root / "list_query.txt").write_text("0000/0000_000_03_0303noon_0001_0.jpg\n")
    with pytest.raises(DatasetError, match=r"list_query.txt' line 1, expected 'relative/path.jpg pid'"):
        MSMT17(tmp_path, check_counts=False)


def test_a_synthetic_dir_through_a_link_is_generated_into_its_target(tmp_path, monkeypatch):
    from hwnas.data._cli import dataset_from_config
    from hwnas.data.config import DataConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "target").mkdir()
    (tmp_path / "LINK").symlink_to(tmp_path / "target")
    config = DataConfig(synthetic=True, synthetic_ids=2, synthetic_images_per_id=3, synthetic_cameras=2,
                        synthetic_dir="LINK")
    ds = dataset_from_config(config)  # generated into target (it failed after generating, on the link)
    assert ds.num_train_pids == 2 and (tmp_path / "target" / SYNTHETIC_MARKER).is_file()
    assert (tmp_path / "LINK").is_symlink() and dataset_from_config(config).num_train_pids == 2  # reused


def test_atomic_generation_leaves_nothing_when_interrupted_and_keeps_a_concurrent_copy(tmp_path, monkeypatch):
    """The one generate-then-rename helper behind hwnas.data.synthetic, --synthetic and the search's own data."""
    from hwnas.data import synthetic as syn

    settings = {"num_ids": 2, "images_per_id": 3, "num_cameras": 2, "image_size": (16, 8)}
    real = syn.generate_synthetic_market

    def killed(out, **kw):  # half a dataset, then Ctrl-C
        (Path(out) / "bounding_box_train").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(syn, "generate_synthetic_market", killed)
    with pytest.raises(KeyboardInterrupt):
        syn.generate_synthetic_market_atomic(tmp_path / "new" / "deeper" / "data", **settings)
    assert list(tmp_path.iterdir()) == []  # no temp folder, no parent folder made for it

    def raced(out, **kw):  # another run renames its complete copy first
        real(out, **kw)
        if not (tmp_path / "data").exists():
            real(tmp_path / "data", **kw)

    monkeypatch.setattr(syn, "generate_synthetic_market", raced)
    with pytest.raises(OSError):  # without concurrent_ok a non-empty target is an error, not silently replaced
        syn.generate_synthetic_market_atomic(tmp_path / "data", **settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    shutil.rmtree(tmp_path / "data")
    assert syn.generate_synthetic_market_atomic(tmp_path / "data", concurrent_ok=True, **settings) == tmp_path / "data"
    assert (tmp_path / "data" / SYNTHETIC_MARKER).is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    (tmp_path / "empty").mkdir(mode=0o750)  # an empty folder is replaced, its mode kept
    monkeypatch.setattr(syn, "generate_synthetic_market", real)
    syn.generate_synthetic_market_atomic(tmp_path / "empty", **settings)
    assert (tmp_path / "empty" / SYNTHETIC_MARKER).is_file() and (tmp_path / "empty").stat().st_mode & 0o777 == 0o750
