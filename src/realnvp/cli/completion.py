"""Shell completion without a dependency: a bash script generated from the argparse parser itself
(subcommands, each one's options, preset names for ``train``, files otherwise). zsh loads it
through ``bashcompinit``."""

from __future__ import annotations

import argparse

from realnvp.cli.parser import build_parser
from realnvp.config import preset_names

TEMPLATE = """# bash completion for realnvp: eval "$(realnvp completion bash)" (zsh: run bashcompinit first)
_realnvp() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{commands} --help" -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [ "${{COMP_WORDS[1]}}" = train ] && [ "$COMP_CWORD" -eq 2 ]; then
        COMPREPLY=($(compgen -W "{presets}" -- "$cur") $(compgen -f -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _realnvp realnvp
"""


def bash_script(parser: argparse.ArgumentParser, presets: list[str]) -> str:
    """The completion script for ``parser``'s subcommands and their options.

    Example:
        >>> parser = argparse.ArgumentParser(prog="realnvp")
        >>> _ = parser.add_subparsers().add_parser("runs").add_argument("--json", action="store_true")
        >>> print([line.strip() for line in bash_script(parser, ["moons"]).splitlines() if "runs)" in line][0])
        runs) opts="-h --help --json" ;;
    """
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    cases = []
    for name, command in sub.choices.items():
        options = " ".join(o for action in command._actions for o in action.option_strings)
        cases.append(f'        {name}) opts="{options}" ;;')
    return TEMPLATE.format(commands=" ".join(sub.choices), cases="\n".join(cases), presets=" ".join(presets))


def run(args: argparse.Namespace) -> None:
    """Print the completion script for ``args.shell``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["completion", "bash"]))  # doctest: +ELLIPSIS
        # bash completion for realnvp...
    """
    print(bash_script(build_parser(), preset_names()), end="")
