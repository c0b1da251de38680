"""Evaluation: NLL and bits/dim (``metrics``) and per-example scores of the user's data (``scoring``)."""
