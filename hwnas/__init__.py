"""hwnas: hardware-aware architecture search for person re-identification (CNet/CDNet and beyond)."""
from hwnas._version import __version__
from hwnas.models import ReIDModel, ReIDOutput, create_model, list_models
from hwnas.space import Genotype, load_genotype

__all__ = ["Genotype", "ReIDModel", "ReIDOutput", "__version__", "create_model", "list_models", "load_genotype"]
