"""Leaves every layer may use: errors, the console, the one door for subprocesses, files,
redaction, signals, the git index, doit's names."""
