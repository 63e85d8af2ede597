"""Lightning settings shared by training and inference.

Importing this module installs a log filter: Lightning advertises its hosted
experiment logger on every ``Trainer`` start, and trigeo runs offline.
"""

from __future__ import annotations

import logging

__all__ = ["DropCloudAdvert"]


class DropCloudAdvert(logging.Filter):
    """Drop Lightning's hosted-logger advert; keep every other message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(DropCloudAdvert())
