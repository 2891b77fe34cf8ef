"""The config's root ``img_size`` for every dataloader (mmdsp.datasets.img_size)."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mmdsp.datasets.img_size import set_dataset_img_size


@HOOKS.register_module()
class ImgSizeHook(Hook):
    """Set the ``Resize`` steps of the built datasets to ``cfg.img_size``.

    Runs before anything is loaded (``before_run``), so the first batch of
    training, validation and testing already has the configured size, and
    reads the merged config, so ``--cfg-options img_size=128`` works. A
    config without ``img_size`` is left as it is.

    Args:
        key (str): The root config key. Defaults to ``'img_size'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, key: str = 'img_size'):
        self.key = key

    def before_run(self, runner) -> None:
        size = runner.cfg.get(self.key)
        if size is None:
            return
        done = []
        for name in ('_train_loop', '_val_loop', '_test_loop'):
            loop = getattr(runner, name, None)
            loader = getattr(loop, 'dataloader', None)  # None: not built
            if loader is not None and set_dataset_img_size(
                    loader.dataset, size):
                done.append(name.strip('_').replace('_loop', ''))
        if done:
            runner.logger.info(f'{self.key}={size}: Resize of the '
                               f'{"/".join(done)} pipelines set to '
                               f'{size}x{size}')
