"""The pretrained zoo reproduces its documented accuracies on the real test images."""
import pytest
import torch

from effdata.data import load_dataset
from effdata.metrics import accuracy
from effdata.models import ZOO, CifarCNN, pretrained, predict


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_accuracy(data_root, name):
    e = ZOO[name]
    acc = accuracy(pretrained(name, root=data_root), load_dataset(e.dataset, "test", root=data_root))
    assert abs(acc - e.accuracy) <= 0.005, f"{name}: {acc:.4f} vs documented {e.accuracy}"


def test_cifar10_cnn_is_825(data_root):
    acc = accuracy(pretrained("cifar10_cnn", root=data_root), load_dataset("cifar10", "test", root=data_root))
    assert round(acc * 1017) == 839  # 82.5 %


def test_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="keras_cifar10_cnn_pytorch.pt.*EFFDATA_DATA"):
        pretrained("cifar10_cnn", root=tmp_path)


def test_features_and_eval_mode(data_root):
    net = pretrained("cifar10_cnn", root=data_root)
    assert not net.training
    f = predict(net, load_dataset("cifar10", "test", root=data_root).subset(range(10)), fn=lambda m, x: m.features(x))
    assert f.shape == (10, 512) and torch.isfinite(f).all()


def test_wrong_weights_file(data_root, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ZOO["cifar10_cnn"].file).symlink_to(data_root / "models" / ZOO["mnist_lenet5"].file)
    with pytest.raises(ValueError, match="does not fit CifarCNN"):
        pretrained("cifar10_cnn", root=tmp_path)
