"""`python -m stageline.cli`."""

from stageline.cli.main import app

app()
