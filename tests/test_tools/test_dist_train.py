"""``tools/dist_train.sh CONFIG 2`` on a CPU-only machine (gloo)."""
import os.path as osp

import pytest
import torch


@pytest.mark.skipif(not torch.distributed.is_gloo_available(),
                    reason='torch without gloo')
def test_two_cpu_processes_match_one(tiny_data, tmp_path, tools):
    # Same global batch (2 processes x 2 == 1 process x 4), same seed.
    # DefaultSampler gives rank r the items r, r+2, ... of the one shuffled
    # (seed + epoch) order, so each global batch holds the same 4 images,
    # and DDP's gradient mean over ranks equals the mean over the batch of
    # 4. tiny_gn.py has GroupNorm (per sample, unlike BatchNorm) and no
    # random transform, so both runs compute the same function; only the
    # order of floating-point additions differs (all-reduce sums two
    # half-batch gradients), hence a float32 round-off tolerance.
    cfg = tools.config('tiny_gn.py')
    one, two = tmp_path / 'one', tmp_path / 'two'
    env = tools.env(tiny_data)
    tools.run('train.py', cfg, '--work-dir', one, env=env)
    _, log = tools.run('dist_train.sh',
                       cfg,
                       2,
                       '--work-dir',
                       two,
                       '--cfg-options',
                       'train_dataloader.batch_size=2',
                       env=dict(env, PORT=str(tools.free_port())))
    # mmengine reports the world size as 'GPU number', also on the CPU.
    assert 'Distributed training: True' in log, log[-2000:]
    assert 'GPU number: 2' in log, log[-2000:]

    for work in (one, two):
        assert (work / 'epoch_2.pth').is_file()
        assert not (work / 'epoch_3.pth').exists()
    acc_one, acc_two = tools.val_metrics(one), tools.val_metrics(two)
    assert sorted(acc_one) == [1, 2]
    assert acc_one == acc_two

    w_one = tools.load_weights(one / 'epoch_2.pth')
    w_two = tools.load_weights(two / 'epoch_2.pth')
    assert w_one.keys() == w_two.keys()
    print(
        'max |w_2proc - w_1proc| =',
        max((w_two[k].float() - w_one[k].float()).abs().max().item()
            for k in w_one))
    for key in w_one:
        torch.testing.assert_close(w_two[key],
                                   w_one[key],
                                   rtol=1e-5,
                                   atol=1e-6,
                                   msg=key)
    # The comparison is only meaningful if training moved the weights.
    first = next(k for k in w_one if k.endswith('conv1.weight'))
    assert not torch.equal(w_one[first],
                           tools.load_weights(one / 'epoch_1.pth')[first])
    assert osp.isfile(one / 'last_checkpoint')
