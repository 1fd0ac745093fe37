"""Running trials without Ray: the trial loop of a pack of seeds, a pack against a results store,
one trial in this process, rows checked against their ids, what the writer adds to the contract,
and the migration of ids."""
