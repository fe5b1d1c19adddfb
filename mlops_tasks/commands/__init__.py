"""One module per command (doit's plugins and the mlops-tasks console script), thin: parse,
call below, print."""
