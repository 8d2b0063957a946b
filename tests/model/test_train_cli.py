import dataclasses
import gzip
import json
import os

import numpy as np
import pytest

import train
from model import recipes
from model.artifact import load_artifact
from model.data import read_idx
from model.store import ArtifactStore


@pytest.fixture
def cli_args(mnist_source, tmp_path):
    directory, real = mnist_source
    args = ["--data-dir", str(directory), "--out", str(tmp_path / "artifacts"), "--epochs", "1",
            "--arch", "mlp", "--hidden", "32", "--train-size", "2000", "--val-size", "500", "--quiet",
            "--batch-size", "32", "--no-augment", "--independent", "0"]
    return args + ([] if real else ["--no-verify"])


def test_train_publishes_versions_with_model_card(cli_args, mnist_source, tmp_path, capsys):
    # The shared MNIST has 10,000 test images, the synthetic stand-in fewer: count them.
    test_size = len(read_idx(mnist_source[0] / "t10k-labels-idx1-ubyte.gz"))
    assert train.main(cli_args) == 0
    out = capsys.readouterr().out
    assert "published mnist version 1" in out and "ECE" in out and "epoch   1/1" in out
    version_dir = tmp_path / "artifacts" / "mnist" / "1"
    assert {p.name for p in version_dir.iterdir()} == {
        "model.npz", "model-card.json", "model-card.md", "curves.png", "confusion.png"}
    for png in ("curves.png", "confusion.png"):
        assert (version_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((version_dir / "model-card.json").read_text())
    assert card["training"]["command"].startswith("python train.py --data-dir")
    assert card["dataset"]["test_size"] == test_size
    assert len(card["history"]) == 1 and np.array(card["confusion_matrix"]).sum() == test_size
    assert set(card["dataset"]["sha256"]) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    loaded = load_artifact(version_dir / "model.npz")
    m = loaded.metadata.metrics
    assert 0.5 < m.test_accuracy <= 1 and m.ece_after is not None and loaded.metadata.temperature > 0
    assert loaded.net.describe() == "dense32 relu dense10" and loaded.metadata.format_version == 2
    assert "![training curves](curves.png)" in (version_dir / "model-card.md").read_text()

    assert train.main(cli_args + ["--seed", "1", "--no-plots"]) == 0
    store = ArtifactStore(tmp_path / "artifacts", "mnist")
    assert [v.version for v in store.versions()] == ["1", "2"]  # the first is untouched
    assert load_artifact(version_dir / "model.npz").metadata == loaded.metadata

    capsys.readouterr()
    evaluate_args = ["evaluate", str(version_dir), "--independent", "0"] + cli_args[:2] + (
        ["--no-verify"] if "--no-verify" in cli_args else [])
    assert train.main(evaluate_args) == 0
    out = capsys.readouterr().out
    assert f"accuracy {100 * m.test_accuracy:.2f}%" in out and out.count("(n=") == 10


def test_unwritable_out_dir_fails_cleanly(cli_args, tmp_path, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # works as root too, unlike chmod
    args = [a if a != str(tmp_path / "artifacts") else str(blocker / "artifacts") for a in cli_args]
    assert train.main(args + ["--no-plots"]) == 1
    assert "No version was published" in capsys.readouterr().err
    assert blocker.read_text() == ""


def test_disk_full_leaves_no_partial_version(cli_args, tmp_path, capsys, monkeypatch):
    import model.artifact

    real_savez = np.savez

    def savez_then_disk_full(f, **arrays):
        real_savez(f, **arrays)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model.artifact.np, "savez", savez_then_disk_full)
    assert train.main(cli_args + ["--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "No version was published" in err
    assert os.listdir(tmp_path / "artifacts" / "mnist") == []


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import model.data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(model.data, "SYSTEM_DIRS", ())
    assert train.main(["--data-dir", str(tmp_path / "none"), "--no-download"]) == 2
    assert "not found" in capsys.readouterr().err


def recipe(*flags):
    return recipes.with_flags(train.parser().parse_args(list(flags)))


def test_augmentation_defaults_follow_the_dataset_and_recipe():
    config = recipe("--dataset", "fashion-mnist", "--shift", "1").augment
    assert config.hflip and config.rotate_deg == 0 and config.shift_px == 1 and not config.coarse
    config = recipe("--arch", "mlp").augment
    assert not config.hflip and config.rotate_deg == 12 and config.elastic_alpha == 1.0 and not config.coarse
    config = recipe().augment  # the CNN recipe: styles
    assert config == recipes.RECIPES["cnn"].augment and config.coarse > 0 and config.nib > 0
    fashion = recipe("--dataset", "fashion-mnist")
    assert fashion.synthetic == fashion.negatives == 0 and fashion.epochs == recipe().epochs
    assert recipe("--no-augment").augment is None and recipe("--fill", "0.5").augment.fill == 0.5


def test_every_recipe_setting_is_a_flag_with_its_default_in_one_place():
    """A flag left out means the recipe's value; given, it wins (the defaults live in Recipe only)."""
    assert recipe() == recipes.RECIPES["cnn"] and recipe("--arch", "mlp") == recipes.RECIPES["mlp"]
    changed = recipe("--epochs", "3", "--filters", "8,16", "--kernels", "3,3", "--label-smoothing", "0.1")
    assert (changed.epochs, changed.filters, changed.label_smoothing) == (3, (8, 16), 0.1)
    help_text = train.parser().format_help()
    for field in dataclasses.fields(recipes.Recipe):
        if field.name not in ("arch", "augment"):
            assert f"--{field.name.replace('_', '-')}" in help_text


def test_cnn_recipe_trains_extends_and_publishes(mnist_source, tmp_path, capsys):
    directory, real = mnist_source
    # The shared folder also holds Fashion-MNIST, whose clothes are examples of "not a digit".
    args = ["--data-dir", str(directory.parent if real else directory), "--out", str(tmp_path / "artifacts"),
            "--epochs", "2", "--filters", "4,8", "--kernels", "5,3", "--dense", "16", "--train-size", "1500",
            "--val-size", "500", "--synthetic", "100", "--negatives", "60", "--pairs", "20", "--fragments", "30",
            "--clothes", "40" if real else "0", "--batch-size", "50", "--quiet", "--independent", "0",
            "--no-plots"] + ([] if real else ["--no-verify"])
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "training set: mnist 1500, synthetic 100, edited" in out and "CNN conv5x5x4 pool2 bn relu" in out
    loaded = load_artifact(tmp_path / "artifacts" / "mnist" / "1" / "model.npz")
    assert loaded.metadata.architecture.kind == "cnn"
    config = loaded.metadata.training["config"]
    assert config["arch"] == "cnn" and config["filters"] == [4, 8] and config["synthetic"] == 100
    assert loaded.metadata.training["training_set"]["synthetic"] == 100
    added = loaded.metadata.training["training_set"]
    assert added["not_digits"] == 60 + 20 + 30 + (40 if real else 0)
    assert loaded.metadata.dataset.train_size == 1500 + 100 + added["edited"] + added["not_digits"]
    assert loaded.metadata.metrics.test_accuracy > 0.2  # learns (chance: 0.1) in 2 short epochs; test_training checks more
    assert loaded.metadata.ood is not None and len(loaded.labels) == 10


@pytest.mark.parametrize("bad", [["--hidden", "a,b"], ["--epochs", "0"], ["--dataset", "cifar"],
                                 ["--arch", "rnn"], ["--filters", "8,x"]])
def test_bad_flags_exit_with_usage(bad):
    with pytest.raises(SystemExit) as info:
        train.main(bad)
    assert info.value.code == 2


def test_feedback_is_folded_into_training_and_held_out_feedback_reported(cli_args, tmp_path, capsys):
    from PIL import Image

    from conftest import RESOURCES
    from model.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "feedback", 1000, 10**8)
    for path in sorted(RESOURCES.glob("mnist_test_*_label*.png")) * 2:
        store.add(np.asarray(Image.open(path)), int(path.stem.rsplit("label", 1)[1]), "1", 0)
    (tmp_path / "feedback" / "0000000000000-corrupt.json").write_text("{")
    assert train.main(cli_args + ["--feedback", str(tmp_path / "feedback"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "20 entries, 16 trained on, 4 held out" in out
    version_dir = tmp_path / "artifacts" / "mnist" / "1"
    feedback = load_artifact(version_dir / "model.npz").metadata.metrics.feedback
    assert feedback["entries"] == 20 and feedback["heldout"] == 4 and 0 <= feedback["heldout_accuracy"] <= 1
    # Every entry was stored as predicted 0 by version 1: right only for the held-out 0s.
    heldout_zeros = feedback["heldout_accuracy_before"] * 4
    assert heldout_zeros == pytest.approx(round(heldout_zeros))
    assert "## Feedback from users" in (version_dir / "model-card.md").read_text()


@pytest.fixture
def two_datasets(mnist_source, tmp_path, monkeypatch):
    """(MNIST's directory, Fashion-MNIST's directory), the shared copies where present, else
    synthetic files standing in for both (their checksums made the known ones); nothing else
    on the machine is looked at."""
    import hashlib
    from dataclasses import replace

    import model.data
    from conftest import SHARED_DATASETS, make_synthetic_mnist

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(model.data, "SYSTEM_DIRS", ())
    directory, real = mnist_source
    fashion = SHARED_DATASETS / "fashion-mnist"
    if real and (fashion / "t10k-labels-idx1-ubyte.gz").is_file():
        return directory, fashion
    mnist, fashion = make_synthetic_mnist(tmp_path / "m"), make_synthetic_mnist(tmp_path / "f", seed=1)
    for name, folder in (("mnist", mnist), ("fashion-mnist", fashion)):
        sums = {stem: hashlib.sha256(gzip.decompress((folder / f"{stem}.gz").read_bytes())).hexdigest()
                for stem in model.data.FILES.values()}
        monkeypatch.setitem(model.data.DATASETS, name, replace(model.data.DATASETS[name], sha256=sums))
    return mnist, fashion


def _linked(target, source):
    target.mkdir(parents=True)
    for f in source.iterdir():
        (target / f.name).symlink_to(f.resolve())
    return target


QUICK_CNN = ["--epochs", "1", "--filters", "4,8", "--kernels", "5,3", "--dense", "16", "--train-size", "800",
             "--val-size", "300", "--synthetic", "50", "--negatives", "40", "--pairs", "20", "--clothes", "40",
             "--fragments", "10",
             "--batch-size", "50", "--quiet", "--independent", "0", "--no-plots"]


def test_a_folder_of_mnist_files_trains_and_says_the_clothes_are_missing(two_datasets, tmp_path, capsys):
    mnist, _ = two_datasets
    flat = _linked(tmp_path / "flat", mnist)  # MNIST's four files, nothing else: Fashion's have the same names
    assert train.main(["--data-dir", str(flat), "--out", str(tmp_path / "a"), *QUICK_CNN]) == 0
    out = capsys.readouterr().out
    assert f"mnist: {flat}" in out and "fashion-mnist: not found, training without its clothes" in out
    assert f"{flat} (holds mnist's files)" in out  # says what it found where it looked
    card = (tmp_path / "a" / "mnist" / "1" / "model-card.md").read_text()
    assert "Fashion-MNIST was not found: trained without its clothes" in card
    assert load_artifact(tmp_path / "a" / "mnist" / "1" / "model.npz").metadata.training["training_set"][
        "clothes_missing"] is True


def test_a_folder_with_both_datasets_in_subfolders_finds_both(two_datasets, tmp_path, capsys):
    mnist, fashion = two_datasets
    both = tmp_path / "both"
    _linked(both / "mnist", mnist)
    _linked(both / "fashion-mnist", fashion)
    assert train.main(["--data-dir", str(both), "--out", str(tmp_path / "b"), *QUICK_CNN]) == 0
    out = capsys.readouterr().out
    assert f"mnist: {both / 'mnist'}" in out and f"fashion-mnist: {both / 'fashion-mnist'}" in out
    training_set = load_artifact(tmp_path / "b" / "mnist" / "1" / "model.npz").metadata.training["training_set"]
    assert "clothes_missing" not in training_set and training_set["not_digits"] == 40 + 20 + 40 + 10


def test_the_smoke_run_skips_the_evaluations(two_datasets, tmp_path, capsys):
    mnist, _ = two_datasets
    args = ["--data-dir", str(mnist), "--out", str(tmp_path / "s"), "--arch", "mlp", "--epochs", "1",
            "--train-size", "2000", "--quiet", "--no-plots"]
    assert train.main(args) == 0
    meta = load_artifact(tmp_path / "s" / "mnist" / "1" / "model.npz").metadata
    assert getattr(meta.metrics, "independent", None) is None and getattr(meta.metrics, "notdigits", None) is None
