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
