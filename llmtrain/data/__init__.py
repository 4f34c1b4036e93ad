"""Text corpora, tokenizers and packed token blocks: everything before the model."""
