"""Shell completion without a dependency: a bash script generated from the argparse parser itself
(subcommands, each one's options, the values of options with choices such as ``--device``, every
``section.key=`` setting for ``--set``, preset names for ``train``, files otherwise). zsh loads it
through ``bashcompinit``. Nothing here imports torch, so ``realnvp completion bash`` is instant."""

from __future__ import annotations

import argparse

from realnvp.cli.parser import build_parser
from realnvp.config import Config, preset_names

TEMPLATE = """# bash completion for realnvp: eval "$(realnvp completion bash)" (zsh: run bashcompinit first)
_realnvp() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{commands} --help" -- "$cur"))
        return
    fi
    case "$prev" in
{values}
        --set)
            COMPREPLY=($(compgen -W "{settings}" -- "$cur"))
            type compopt >/dev/null 2>&1 && compopt -o nospace  # the value follows the '='
            return ;;
    esac
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


def setting_names() -> list[str]:
    """Every ``section.key`` that ``--set`` takes, from the config dataclasses.

    Example:
        >>> names = setting_names()
        >>> "model.hidden" in names and "train.precision" in names and "data.test_draws" in names
        True
    """
    return [f"{section}.{key}" for section, values in Config().to_dict().items() for key in values]


def bash_script(parser: argparse.ArgumentParser, presets: list[str], settings: list[str] = ()) -> str:
    """The completion script for ``parser``'s subcommands, their options and the options' choices.

    Example:
        >>> parser = argparse.ArgumentParser(prog="realnvp")
        >>> runs = parser.add_subparsers().add_parser("runs")
        >>> _ = runs.add_argument("--json", action="store_true")
        >>> _ = runs.add_argument("--device", choices=("cpu", "cuda"))
        >>> script = bash_script(parser, ["moons"])
        >>> print([line.strip() for line in script.splitlines() if "runs)" in line][0])
        runs) opts="-h --help --json --device" ;;
        >>> print([line.strip() for line in script.splitlines() if "--device)" in line][0])
        --device) COMPREPLY=($(compgen -W "cpu cuda" -- "$cur")); return ;;
    """
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    cases, choices = [], {}
    for name, command in sub.choices.items():
        options = " ".join(o for action in command._actions for o in action.option_strings)
        cases.append(f'        {name}) opts="{options}" ;;')
        choices |= {o: " ".join(map(str, a.choices)) for a in command._actions if a.choices for o in a.option_strings}
    values = [f'        {o}) COMPREPLY=($(compgen -W "{words}" -- "$cur")); return ;;' for o, words in choices.items()]
    return TEMPLATE.format(commands=" ".join(sub.choices), cases="\n".join(cases), presets=" ".join(presets),
                           values="\n".join(values), settings=" ".join(f"{s}=" for s in settings))


def run(args: argparse.Namespace) -> None:
    """Print the completion script for ``args.shell``.

    Example:
        >>> from realnvp.cli.parser import build_parser
        >>> run(build_parser().parse_args(["completion", "bash"]))  # doctest: +ELLIPSIS
        # bash completion for realnvp...
    """
    print(bash_script(build_parser(), preset_names(), setting_names()), end="")
