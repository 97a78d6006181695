"""hwnas: hardware-aware architecture search for person re-identification (CNet/CDNet and beyond)."""
from hwnas._version import __version__
from hwnas.models import ReIDModel, ReIDOutput, create_model, list_models
from hwnas.space import Genotype, load_genotype

__all__ = ["Genotype", "ReIDModel", "ReIDOutput", "__version__", "create_model", "list_models", "load_checkpoint_model",
           "load_genotype"]


def load_checkpoint_model(path, device="cpu"):  # noqa: ANN001, ANN201 (see hwnas.training.load_checkpoint_model)
    """The model of a training checkpoint (``runs/x/last.pt``) in eval mode: ``model(images) -> (N, D)`` features.

    See :func:`hwnas.training.checkpoint.load_checkpoint_model` (imported on first use, to keep ``import hwnas``
    light).
    """
    from hwnas.training.checkpoint import load_checkpoint_model as load

    return load(path, device)
