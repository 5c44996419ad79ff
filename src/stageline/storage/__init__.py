"""Stage item bytes on any fsspec filesystem."""
