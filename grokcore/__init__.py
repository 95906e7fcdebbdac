"""grokcore: a full-batch grokking trainer for small transformers on algorithmic tasks."""

from grokcore.config import ConfigError, RunConfig

__all__ = ["ConfigError", "RunConfig", "Trainer", "train"]


def __getattr__(name):
    # The trainer pulls in torch and TransformerLens (seconds); load it only when it is used.
    if name in ("Trainer", "train"):
        from grokcore import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
