"""`python -m firecaffe ...` is the `firecaffe` command."""
from .cli import main

main()
