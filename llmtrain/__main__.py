"""`python -m llmtrain` behaves exactly like the `llmtrain` script."""

from llmtrain.cli import main

if __name__ == "__main__":
    main()
