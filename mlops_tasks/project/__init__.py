"""A project as data: settings, specs, matrices, the stage graph, output rules, notebooks,
paths, content hashes, what init writes, loading."""
