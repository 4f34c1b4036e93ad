"""llmtrain: pretrain and fine-tune transformer language models from YAML configs."""

__version__ = "0.1.0"
