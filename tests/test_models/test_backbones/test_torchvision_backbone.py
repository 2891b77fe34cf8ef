import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the backbones)
from mmdsp.models.backbones.torchvision_backbone import (GoogLeNet,
                                                         TorchvisionBackbone)



@pytest.fixture(scope='module')
def googlenet_all_stages():
    torch.manual_seed(0)
    return MODELS.build(dict(type='GoogLeNet', out_indices=(0, 1, 2)))


def test_googlenet_stages_shapes_and_params(googlenet_all_stages):
    model = googlenet_all_stages
    outs = model(torch.rand(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 480, 8, 8), (2, 832, 4, 4),
                                              (2, 1024, 2, 2)]
    # torchvision's classifier (fc 1024 -> 1000) is cut off; with it the
    # model has the paper's 6.62 M parameters (table 2).
    params = sum(p.numel() for p in model.parameters())
    assert params + 1024 * 1000 + 1000 == pytest.approx(6.62e6, rel=2e-3)
    assert not any('fc' in k or 'aux' in k for k in model.state_dict())


def test_googlenet_matches_torchvision_forward(googlenet_all_stages):
    torch.manual_seed(1)
    ref = torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True).eval()
    model = googlenet_all_stages
    model.eval()  # BaseBackbone.train() returns None, so no chaining
    # Same names as torchvision under `model.`; only fc is missing.
    missing, unexpected = model.model.load_state_dict(
        ref.state_dict(), strict=False)
    assert not missing and set(unexpected) == {'fc.weight', 'fc.bias'}
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        feat = model(x)[-1]
        logits = ref.fc(torch.flatten(F.adaptive_avg_pool2d(feat, 1), 1))
        torch.testing.assert_close(logits, ref(x))


def test_googlenet_out_indices():
    model = GoogLeNet(out_indices=-1)
    assert model.out_indices == (2, ) and model.out_nodes == ('inception5b', )
    with pytest.raises(IndexError, match='out_indices'):
        GoogLeNet(out_indices=(3, ))


def test_generic_wrapper_keeps_training_behaviour():
    # Dropout sits between the requested nodes: train and eval must differ,
    # which shows both traced graphs are kept.
    torch.manual_seed(0)
    model = TorchvisionBackbone(
        'squeezenet1_1', out_nodes=('features', 'classifier.0'))
    x = torch.rand(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        feats, dropped = model(x)
        assert torch.equal(feats, dropped)
    model.train()
    with torch.no_grad():
        feats, dropped = model(x)
    assert not torch.equal(feats, dropped)
    assert feats.shape == (1, 512, 3, 3)


def test_bad_arguments_are_named():
    with pytest.raises(KeyError, match='not_a_model'):
        TorchvisionBackbone('not_a_model', out_nodes='x')
    with pytest.raises(ValueError, match='weights'):
        TorchvisionBackbone(
            'googlenet', out_nodes='inception5b',
            model_kwargs=dict(weights='DEFAULT'))
    with pytest.raises(KeyError, match='inception9z'):
        TorchvisionBackbone(
            'squeezenet1_1', out_nodes=('features', 'inception9z'))
