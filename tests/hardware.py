"""What the machine running the tests has."""
import torch


def accelerator() -> str | None:
    """'cuda' or 'mps' where one is available, else None."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None
