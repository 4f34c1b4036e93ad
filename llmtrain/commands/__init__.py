"""One recipe per command: each wires the components together and reads top to bottom."""
