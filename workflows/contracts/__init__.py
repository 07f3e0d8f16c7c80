"""One contracts module per workflow: the names of its signals, updates and queries and
their payload models, used by the workflow itself and by everything that talks to it."""
