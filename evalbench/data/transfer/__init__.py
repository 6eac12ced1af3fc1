"""The linear transfer suite of Kornblith et al. 2019 (12 datasets): catalog, readers, the `transfer` source kind, status."""
from .catalog import DATASETS, TransferDataset, transfer_dataset
from .source import Transfer
from .status import prepare, status_rows

__all__ = ["DATASETS", "Transfer", "TransferDataset", "prepare", "status_rows", "transfer_dataset"]
