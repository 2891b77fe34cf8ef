from .channels_last_preprocessor import ChannelsLastPreprocessor  # noqa: F401
