"""Stage environments: the venv lifecycle and installers, wheel sets, interpreters,
kernelspecs, drift."""
