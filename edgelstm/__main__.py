"""``python -m edgelstm``: the same command line as ``edgelstm``."""

from edgelstm.cli import main

main()
