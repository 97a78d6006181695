"""Registered ReID models: cnet, cdnet, osnet, resnet50_bot (and gdas when present)."""
from hwnas.models import cdnet as _cdnet  # noqa: F401  (registers)
from hwnas.models import gdas as _gdas  # noqa: F401
from hwnas.models import osnet as _osnet  # noqa: F401
from hwnas.models import resnet_bot as _resnet_bot  # noqa: F401
from hwnas.models._limits import check_input_size, min_input_size
from hwnas.models._output import ReIDOutput
from hwnas.models._registry import create_model, list_models, model_options, register_model
from hwnas.models.reid import ReIDModel

__all__ = ["ReIDModel", "ReIDOutput", "check_input_size", "create_model", "list_models", "min_input_size", "model_options",
           "register_model"]
