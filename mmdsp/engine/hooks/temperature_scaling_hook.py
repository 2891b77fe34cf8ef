"""Apply a checkpoint's temperature in ``tools/test.py`` (the Runner)."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from mmdsp.evaluation.calibration_meta import read_calibration
from mmdsp.evaluation.temperature import apply_temperature


@HOOKS.register_module()
class TemperatureScalingHook(Hook):
    """Use the temperature ``fit_temperature.py`` stored in a checkpoint.

    The checkpoint the Runner loads (``tools/test.py CONFIG CKPT``, or
    ``load_from``) is read in ``after_load_checkpoint``; its temperature
    divides the head's logits during the test loop only (from
    ``before_test`` to ``after_test``), so a checkpoint resumed for training
    and the validation during training are unaffected. Without a calibrated
    checkpoint the hook does nothing.

    Args:
        enabled (bool): False tests the raw probabilities of a calibrated
            checkpoint (``--cfg-options custom_hooks.0.enabled=False``).
            Defaults to True.

    Examples:
        >>> custom_hooks = [dict(type='TemperatureScalingHook')]
    """
    priority = 'NORMAL'

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.temperature = 1.0

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        self.temperature = read_calibration(
            checkpoint.get('meta'), 'the loaded checkpoint')['temperature']

    def before_test(self, runner) -> None:
        if self.enabled and self.temperature != 1.0:
            apply_temperature(runner.model, self.temperature)
            print_log(f'TemperatureScalingHook: logits divided by '
                      f'T = {self.temperature:.4f} from the checkpoint',
                      logger='current')

    def after_test(self, runner) -> None:
        apply_temperature(runner.model, None)
