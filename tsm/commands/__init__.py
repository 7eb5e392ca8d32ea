"""The `tsm` sub-commands, one module per command group: parse, authorise, call one service function, print."""
