"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (file, option, run directory): the message names the problem.

    Example:
        >>> from realnvp.data import read_vectors
        >>> read_vectors("no-such-file.csv")
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: data file not found: no-such-file.csv
    """
