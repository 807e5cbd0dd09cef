"""Packed MPT-1/1 inference: bit-exact against the float model (1 and 2 threads, batch 1 and 64), integer thresholds,
the file format and its errors."""
import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from effdata.data import load_dataset
from effdata.models import CIFAR10_MEAN, CIFAR10_STD
from effdata.mpt import build, train_mpt
from effdata.packed import (PackedFormatError, PackedNet, _kernel_bits, _kernel_counts, _sign_pack, _sign_pack_into, _thresholds,
                            _xnor_conv,
                            export_packed, read_packed, to_dense)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits"), load_dataset("digits", "test")


def _binary_conv(width=0.4, seed=0):
    return build("conv4", (3, 32, 32), 10, activations="binary", kept=0.25, width=width, seed=seed,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD)


def test_packed_inference_is_bit_exact(data_root, digits, tmp_path):
    cifar = load_dataset("cifar10", "test", root=data_root)
    x = cifar.images[:96].float() / 255
    net = _binary_conv()                                          # 26 / 51 channels: partial 64-bit words
    with torch.no_grad():
        net(x[:48]); net(x[48:])                                  # BatchNorm statistics from real images
    net.eval()
    with torch.no_grad():
        ref = net(x)
    pk = PackedNet(net)
    assert torch.equal(pk(x), ref)
    assert torch.equal(pk(x[:1]), ref[:1])
    info = export_packed(net, tmp_path / "c.packed")
    assert info["packed_bytes"] < info["dense_fp32_bytes"] / 14
    other = _binary_conv(seed=7)                                   # same architecture, other scores: masks come from the file
    assert torch.equal(PackedNet.load(tmp_path / "c.packed", other)(x), ref)
    # the trained digits MLP (MPT-1/1): same logits, same accuracy
    train, test = digits
    mlp, _ = train_mpt("mlp", train, test, kept=0.3, activations="binary", epochs=3, hidden=(96, 70), seed=0)
    xt, _ = test.tensors()
    mlp.eval()
    with torch.no_grad():
        assert torch.equal(PackedNet(mlp)(xt), mlp(xt))
    dense = to_dense(mlp)
    assert torch.allclose(dense(xt), mlp(xt).detach(), atol=1e-3)


def test_packed_file_errors(tmp_path):
    net = _binary_conv()
    net.eval()
    path = tmp_path / "n.packed"
    export_packed(net, path)
    with pytest.raises(PackedFormatError, match="written for another architecture.*first difference"):
        PackedNet.load(path, _binary_conv(width=0.5))
    with pytest.raises(PackedFormatError, match="another architecture"):
        read_packed(path, build("mlp", (1, 8, 8), activations="binary"))
    (tmp_path / "junk").write_bytes(b"\x00" * 40)
    with pytest.raises(PackedFormatError, match="not a safetensors file"):
        read_packed(tmp_path / "junk")
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(PackedFormatError, match="not an effdata packed MPT file"):
        read_packed(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="export_packed"):
        read_packed(tmp_path / "missing.packed")
    with pytest.raises(ValueError, match="MPT-1/32"):
        PackedNet(build("conv2", (3, 32, 32), width=0.25))
    with pytest.raises(ValueError, match="images of shape"):
        PackedNet(net)(torch.rand(1, 1, 32, 32))


def test_thresholds_equal_the_float_expression_at_every_integer():
    rng = np.random.default_rng(1)
    for _ in range(5):
        alpha = np.float32(rng.uniform(1e-3, 0.5))
        mean, std = rng.normal(0, 2, 32).astype(np.float32), rng.uniform(0.05, 3, 32).astype(np.float32)
        t = _thresholds(alpha, mean, std, 300)
        d = np.arange(-300, 301, dtype=np.float32)
        assert np.array_equal((d[None] * alpha - mean[:, None]) / std[:, None] >= 0, d[None] >= t[:, None])
    a = np.float32(0.1)
    assert _thresholds(a, [np.float32(3) * a], [1.0], 10).tolist() == [3]          # a tie at the boundary counts as +1


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_64_conv4_is_bit_exact_at_any_thread_count(data_root, threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"numba has {numba.config.NUMBA_NUM_THREADS} thread(s)")
    x = load_dataset("cifar10", "test", root=data_root).images[:64].float() / 255
    net = build("conv4", (3, 32, 32), 10, activations="binary", kept=0.1, width=0.5, seed=3, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    with torch.no_grad():
        net(x)
    net.eval()
    with torch.no_grad():
        ref = net(x)
    before = numba.get_num_threads()
    assert torch.equal(PackedNet(net, threads=threads)(x), ref)
    assert numba.get_num_threads() == before                      # the thread count is restored
    with pytest.raises(ValueError, match="threads=99"):
        PackedNet(net, threads=99)


@pytest.mark.parametrize("hw", [(6, 5), (5, 13)])   # 13 columns: interior 4-column blocks on the 3-wide fast path
def test_conv_kernel_against_float_reference(hw):
    rng = np.random.default_rng(0)
    xs = np.where(rng.random((3, 67, *hw)) < 0.5, -1.0, 1.0).astype(np.float32)
    ws = np.where(rng.random((9, 67, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    ms = rng.random((9, 67, 3, 3)) < 0.3
    xb = _sign_pack(xs, np.float32(1), np.zeros(67, np.float32), np.ones(67, np.float32))
    thr = np.zeros(9, np.int32)
    mcnt, corr = _kernel_counts(ws >= 0, ms)
    for stride, pad in ((1, 1), (2, 1), (2, 0), (1, 0)):
        ref = F.conv2d(torch.from_numpy(xs), torch.from_numpy(ws * ms), stride=stride, padding=pad)
        _, out = _xnor_conv(xb, _kernel_bits(ws >= 0), _kernel_bits(ms), mcnt, corr, stride, pad, thr, np.float32(1), False, 9)
        assert torch.equal(torch.from_numpy(out).permute(0, 3, 1, 2), ref)
        bits, _ = _xnor_conv(xb, _kernel_bits(ws >= 0), _kernel_bits(ms), mcnt, corr, stride, pad, thr, np.float32(1), True, 9)
        assert np.array_equal(bits, _sign_pack(ref.numpy(), np.float32(1), np.zeros(9, np.float32), np.ones(9, np.float32)))


@pytest.mark.parametrize("n", [2, 3, 33, 65])    # one chunk, one chunk of 3, and 2 chunks of unequal size
def test_chunked_first_layer_is_bit_exact(data_root, n):
    x = load_dataset("cifar10", "test", root=data_root).images[:n].float() / 255
    net = build("conv4", (3, 32, 32), 10, activations="binary", kept=0.3, width=0.5, seed=1, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    with torch.no_grad():
        net(load_dataset("cifar10", "test", root=data_root).images[:64].float() / 255)
    net.eval()
    pk = PackedNet(net, threads=1)
    assert pk.front_chunk == 32                                   # 32 channels x 32 x 32 float32 = 128 KiB per image
    with torch.no_grad():
        assert torch.equal(pk(x), net(x))
        front = net.body[1](net.body[0](x))                       # the float first layer, whole batch vs in chunks
        if n >= 4:                                                # halves of >= 2 images: the same oneDNN kernel as the whole batch
            halves = x.split([n // 2, n - n // 2])
            assert torch.equal(torch.cat([net.body[1](net.body[0](c)) for c in halves]), front)
    mlp = build("mlp", (1, 8, 8), 10, activations="binary", hidden=(40,), seed=0)
    assert PackedNet(mlp).front_chunk is None                     # a linear first layer is never chunked


def test_sign_pack_into_a_slice_equals_the_whole():
    rng = np.random.default_rng(2)
    for shape in ((5, 70, 3, 7), (4, 130, 1, 1)):                 # two/three words with a partial last word; a linear layer's output
        h = rng.normal(size=shape).astype(np.float32)
        mean, std = rng.normal(0, 0.3, shape[1]).astype(np.float32), rng.uniform(0.5, 2, shape[1]).astype(np.float32)
        whole = _sign_pack(h, np.float32(0.7), mean, std)
        ref = (h * np.float32(0.7) - mean[None, :, None, None]) / std[None, :, None, None] >= 0
        bits = np.unpackbits(whole.view(np.uint8), axis=-1, bitorder="little")[..., :shape[1]].astype(bool)
        assert np.array_equal(bits, ref.transpose(0, 2, 3, 1))
        out = np.zeros_like(whole)
        _sign_pack_into(h[:2], np.float32(0.7), mean, std, out[:2]); _sign_pack_into(h[2:], np.float32(0.7), mean, std, out[2:])
        assert np.array_equal(out, whole)
