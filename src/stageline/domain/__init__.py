"""The pure core: statuses and transitions, pipeline configs and graphs,
retry and progress decisions. Nothing here does I/O."""
