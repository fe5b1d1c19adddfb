"""Every `mlops.*` tag name a stage run carries, in one place (the kernel hook, which runs on
the stage's Python and imports nothing of the package, repeats the two it writes; a test
keeps them equal)."""

from __future__ import annotations

# what made the run
STAGE = "mlops.stage"
GIT_SHA = "mlops.git_sha"
GIT_BRANCH = "mlops.git_branch"
GIT_DIRTY = "mlops.git_dirty"
ENV_FINGERPRINT = "mlops.env_fingerprint"
NOTEBOOK_CODE_SHA256 = "mlops.notebook_code_sha256"
SPEC_SHA256 = "mlops.spec_sha256"
VENV_CHANGED_IN_RUN = "mlops.venv_changed_in_run"  # packages a notebook installed
FREEZE_SHA256 = "mlops.freeze_sha256"
INVOCATION_ID = "mlops.invocation_id"
PYTHON_VERSION = "mlops.python_version"
PYTHON_PATH = "mlops.python_path"
VENV = "mlops.venv"
HOST = "mlops.host"
USER = "mlops.user"
VERSION_PREFIX = "mlops.version."  # + tool name
ENV_DRIFT = "mlops.env_drift"
ENV_DRIFT_SUMMARY = "mlops.env_drift_summary"
# the stage key and its parts
STAGE_KEY = "mlops.stage_key"
KEY_FREEZE = "mlops.key.freeze"
KEY_CODE = "mlops.key.code"
KEY_PARAMETERS = "mlops.key.parameters"
KEY_INPUTS = "mlops.key.inputs"
# what kind of run
OVERRIDE = "mlops.override"
PROFILE = "mlops.profile"
PROJECT_RUN_ID = "mlops.project_run_id"
FAILED = "mlops.failed"
# how a run ended without being logged
SUPERSEDED = "mlops.superseded"
INTERRUPTED = "mlops.interrupted"
RECREATED_FROM = "mlops.recreated_from"
RECREATED_AS = "mlops.recreated_as"
REPRODUCES = "mlops.reproduces"  # `doit reproduce`: the run id this run rebuilt
REPRODUCE_VERDICT = "mlops.reproduce_verdict"  # identical, same metrics..., different
# the stage cache
CACHE_KEY = "mlops.cache_key"
CACHE_COMPLETE = "mlops.cache_complete"  # written after every artifact: the run is usable
RESTORED_FROM = "mlops.restored_from"
# a signed entry (MLOPS_CACHE_KEY): the output hashes, who signed, the HMAC over both
CACHE_OUTPUTS = "mlops.cache_outputs"
CACHE_SIGNER = "mlops.cache_signer"
CACHE_SIGNATURE = "mlops.cache_signature"
# an execution of a key that already had an entry: the entry that stays the key's result
CACHE_SUPERSEDED_BY = "mlops.cache_superseded_by"
# runs a notebook creates itself (see kernel_hook.py)
NOTEBOOK_RUNS = "mlops.notebook_runs"
STAGE_RUN_ID = "mlops.stage_run_id"
NOTEBOOK_RUN_NAME = "mlops.notebook_run_name"
