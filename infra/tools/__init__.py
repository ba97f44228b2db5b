"""Command-line tools the tests run for real, fetched with npm into ``.panorama/tools/`` (gitignored)."""
