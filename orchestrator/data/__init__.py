"""Data sets the shipped experiments use (`orch data get`): the registry, a resumable
verified download, and reading the IMDB archive from its stream."""
