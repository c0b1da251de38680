"""Benchmarks of realnvp side by side with its peers, as a package: run each module from the repository
root as ``python -m benchmarks.NAME`` (``benchmarks/README.md`` lists them and their commands).

Layout: ``rawlines`` (the ``.jsonl`` files and the host record, standard library), ``drivers`` (running
one script per process, standard library), ``harness`` (what the torch-side scripts share), one module
per protocol or tool, ``render/`` (one small module per section of ``RESULTS.md``, standard library)
and ``results`` (the command that writes ``RESULTS.md``). Goals live in ``goals.toml``, nowhere else.
"""
