"""The ``brainlesioncl`` command-line tool."""
