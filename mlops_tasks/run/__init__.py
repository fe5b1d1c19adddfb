"""One stage's run: records, provenance, the execute and log steps, the stage cache, the output
transaction, the kernel and papermill."""
