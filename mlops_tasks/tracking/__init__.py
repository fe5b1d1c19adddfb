"""MLflow: the only module that imports it, and what a stage kernel gets for its own calls."""
