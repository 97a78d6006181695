"""Final training and evaluation of hwnas models: config, loop, checkpoints."""
from hwnas.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_checkpoint_model,
    load_weights,
    model_from_checkpoint,
    save_checkpoint,
)
from hwnas.training.config import TrainConfig, TrainRunConfig, scaled_milestones
from hwnas.training.loop import ReIDData, Trainer, evaluate

__all__ = ["CheckpointError", "ReIDData", "TrainConfig", "TrainRunConfig", "Trainer", "evaluate", "load_checkpoint",
           "load_checkpoint_model", "load_weights", "model_from_checkpoint", "save_checkpoint", "scaled_milestones"]
