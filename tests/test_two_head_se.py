"""The two-head Xception + SE network: shapes, the SE block's arithmetic, heads, weights."""

import numpy as np
import pytest
import timm
import torch

from kuzu_lightning.models.two_head_se import AvgMaxHead, SqueezeExcitation, TwoHeadSE


def test_both_heads_give_logits_for_every_class():
    network = TwoHeadSE(num_classes=7).eval()
    plain, se = network(torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8))
    assert plain.shape == se.shape == (2, 7)
    assert not torch.allclose(plain, se)  # two different heads
    assert network.se.squeeze.weight.shape == (2048 // 16, 2048) and network.se.squeeze.bias is None
    assert network.se.excite.weight.shape == (2048, 2048 // 16) and network.se.excite.bias is None


def test_squeeze_excitation_matches_a_hand_computation():
    se = SqueezeExcitation(channels=4, reduction=2)
    w1 = np.array([[0.5, -1.0, 0.25, 0.0], [1.0, 1.0, -0.5, 2.0]])  # 4 -> 2
    w2 = np.array([[1.0, 0.0], [-1.0, 0.5], [0.0, 2.0], [0.25, -0.25]])  # 2 -> 4
    se.squeeze.weight.data = torch.tensor(w1, dtype=torch.float32)
    se.excite.weight.data = torch.tensor(w2, dtype=torch.float32)
    x = np.arange(4 * 2 * 3, dtype=np.float64).reshape(1, 4, 2, 3) / 10 - 1
    means = x.mean(axis=(2, 3))[0]  # squeeze: global average pool
    hidden = np.maximum(w1 @ means, 0)  # ReLU
    gates = 1 / (1 + np.exp(-(w2 @ hidden)))  # sigmoid
    expected = x * gates[None, :, None, None]
    out = se(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_head_concatenates_average_and_max_pooling():
    head = AvgMaxHead(channels=2, num_classes=1, dropout=0.5).eval()
    head.linear.weight.data = torch.tensor([[1.0, 10.0, 100.0, 1000.0]])
    head.linear.bias.data.zero_()
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, 6.0]]]])  # avg (2, 4), max (3, 6)
    assert head(x).item() == pytest.approx(2 + 40 + 300 + 6000)


def test_uint8_and_float_inputs_are_normalised_alike():
    network = TwoHeadSE(num_classes=3).eval()
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        a = network(images)[0]
        b = network(images.float() / 255)[0]
    torch.testing.assert_close(a, b)
    assert network.normalise(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist() == [1.0, 1.0, 1.0]


def test_backbone_weights_load_from_a_local_file(tmp_path):
    source = timm.create_model("legacy_xception", pretrained=False, num_classes=0, global_pool="")
    torch.save(source.state_dict(), tmp_path / "xception.pth")
    network = TwoHeadSE(num_classes=3, weights_path=str(tmp_path / "xception.pth"))
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(network.backbone.state_dict()[name], tensor)
    fresh = TwoHeadSE(num_classes=3)
    assert not torch.equal(fresh.backbone.conv1.weight, source.conv1.weight)
