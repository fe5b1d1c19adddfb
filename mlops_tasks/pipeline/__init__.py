"""The doit side: task dictionaries, up-to-date checks, actions, the reporter, the dep DB, the
workspace, profiles."""
