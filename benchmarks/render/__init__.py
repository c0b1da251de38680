"""``RESULTS.md``, one section per module, each a few small functions of the raw lines (standard library
only: rendering runs anywhere, in a fraction of a second). ``cells`` formats and compares; ``fixed``
reads the goals (``benchmarks/goals.toml``) and the fixed prose (``templates/``); ``moons``, ``digits``,
``mnist10k``, ``speed``, ``tabular``, ``conditional``, ``colour`` and ``precision`` render their section;
``benchmarks.results`` puts them together.

The rules they follow are the discipline at the top of ``benchmarks/README.md``: every number is a field
of a raw line or computed from raw lines; each row shows the host's CPU model and the load where the line
has them; a difference inside the measured spread is called a tie; a figure without a raw line is left
out or labelled as such.
"""
