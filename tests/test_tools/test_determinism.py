"""Two runs with the same seed give the same metrics and the same weights."""
import copy

import torch
from mmengine.config import Config
from mmengine.runner import Runner


def _train(cfg, data_root, work_dir, seed):
    cfg = copy.deepcopy(cfg)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.work_dir = str(work_dir)
    # Runners built in the same second would share a MessageHub (it is
    # named after the timestamp), and with it the best-score bookkeeping.
    cfg.experiment_name = f'determinism_{work_dir.name}'
    cfg.randomness = dict(seed=seed, deterministic=True)
    cfg.default_hooks.logger.interval = 100
    cfg.default_hooks.checkpoint.save_best = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    acc = runner.message_hub.get_scalar('val/accuracy/top1').data[0].tolist()
    weights = {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }
    return acc, weights


def test_same_seed_same_run(tiny_data, tmp_path, tools):
    # The random flips and stochastic depth of tiny_gn_aug.py make the
    # comparison meaningful; the different seed shows it is sensitive.
    cfg = Config.fromfile(tools.config('tiny_gn_aug.py'))
    acc_a, w_a = _train(cfg, tiny_data, tmp_path / 'a', seed=0)
    acc_b, w_b = _train(cfg, tiny_data, tmp_path / 'b', seed=0)
    _, w_c = _train(cfg, tiny_data, tmp_path / 'c', seed=1)

    assert len(acc_a) == cfg.train_cfg.max_epochs
    assert acc_a == acc_b
    for key in w_a:
        assert torch.equal(w_a[key], w_b[key]), key
    assert any(not torch.equal(w_a[k], w_c[k]) for k in w_a
               if w_a[k].is_floating_point())
