import logging

import pytest
from mmengine.logging import MMLogger


@pytest.fixture
def warnings_log():
    """Messages of the WARNING records that ``print_log(...,
    logger='current')`` sends while the test runs."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def toy_runner(tmp_path):
    """A function building a quiet mmengine Runner (no checkpoints, no
    logger) that trains ``model`` on the list ``data`` in order, with
    ``hooks`` as its custom hooks."""
    from mmengine.runner import Runner

    def build(model, data, batch_size, train_cfg, hooks):
        return Runner(
            model=model,
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=data,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=batch_size),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            train_cfg=train_cfg,
            custom_hooks=hooks,
            default_hooks=dict(checkpoint=None, logger=None),
            default_scope='mmpretrain',
            log_level='WARNING')

    return build
