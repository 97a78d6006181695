"""Final training and evaluation of hwnas models: config, loop, checkpoints."""
from hwnas.training.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from hwnas.training.config import TrainConfig, scaled_milestones
from hwnas.training.loop import ReIDData, Trainer, evaluate

__all__ = ["CheckpointError", "ReIDData", "TrainConfig", "Trainer", "evaluate", "load_checkpoint",
           "model_from_checkpoint", "save_checkpoint", "scaled_milestones"]
