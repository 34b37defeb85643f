"""`netdiag completion bash|zsh`: shell completion, written from the parser itself, so it never
falls behind the options.

The completion knows every command, action, option and choice, completes rule names and codes
(`--rule`, `--skip`, `explain`), bundled labs (`lab up`), and asks netdiag at the moment of
completing for what changes: namespace references (`--ns`, `path SRC`) and lab names (`lab
down`, `--lab`), through the hidden `netdiag completion --candidates namespaces|labs`. zsh runs
the same script through bashcompinit. Install: `netdiag completion bash >
/etc/bash_completion.d/netdiag` (or `source <(netdiag completion zsh)` in ~/.zshrc).
"""

from __future__ import annotations

import argparse
import shlex

from netdiag.cli import COMMANDS, SUMMARIES, build_parser
from netdiag.errors import UsageError

NAMESPACE_METAVARS = {"REF", "SRC", "NS"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("completion", help=SUMMARIES["completion"])
    parser.add_argument("shell", nargs="?", choices=("bash", "zsh"),
                        help="the shell to complete in (zsh runs the bash script through "
                             "bashcompinit)")
    # What the script asks for while completing; not an option for people.
    parser.add_argument("--candidates", choices=("namespaces", "labs"), help=argparse.SUPPRESS)
    parser.set_defaults(func=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    if args.candidates:
        return run_complete(args)
    if args.shell is None:
        raise UsageError("which shell: netdiag completion bash, or netdiag completion zsh")
    script = bash_script(build_parser(everything=True))
    if args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    print(script, end="")
    return 0


def run_complete(args: argparse.Namespace) -> int:
    if args.candidates == "labs":
        from netdiag.topology import journal

        print("\n".join(journal.names()))
        return 0
    from netdiag.collect import discovery

    refs = []
    for ref in discovery.discover(engines=()):
        refs.append("host" if ref.kind.value == "host" else ref.label)
        if ref.container:
            refs.append(f"container:{ref.container}")
    print("\n".join(dict.fromkeys(r for r in refs if r and " " not in r)))
    return 0


# --- the parser, walked ------------------------------------------------------------------------


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every command that runs, and of those that have actions."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, nested
    for action in nested:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*path, name))


def _kind(action: argparse.Action, path: tuple[str, ...]) -> str:
    """What an option's value (or a positional) of the command at `path` is, for completing
    it."""
    if action.choices is not None:
        return "choices"
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if metavar in NAMESPACE_METAVARS or action.dest in ("src", "sandbox"):
        return "namespaces"
    if action.dest in ("rule", "skip"):
        return "rules"
    if action.dest == "lab" or (path[:1] == ("lab",) and action.dest == "name"):
        return "labs"
    if action.dest == "topology":
        return "topologies"
    if metavar in ("FILE", "SNAPSHOT", "A", "B") or action.dest in ("snapshot", "before",
                                                                   "after", "output"):
        return "files"
    return ""


# --- bash ----------------------------------------------------------------------------------


def bash_script(parser: argparse.ArgumentParser) -> str:
    from netdiag.checks import registry
    from netdiag.commands.lab import EXAMPLES as BUNDLED

    rules = " ".join(name for m in registry.RULES for name in (m.RULE.name, m.RULE.code))
    bundled = " ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
    cases = []
    for path, command, nested in leaves(parser):
        if not path:
            continue
        options, values, positionals = [], [], []
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.option_strings:
                options += action.option_strings
                if action.nargs != 0:
                    values.append(f"            {'|'.join(action.option_strings)}) "
                                  f"{_bash_words(action, path, rules, bundled)}; value=1 ;;")
            elif action.nargs != argparse.REMAINDER:
                positionals.append(_bash_words(action, path, rules, bundled))
        subcommands = [name for action in nested for name in action.choices]
        cases.append(_bash_command_case(" ".join(path), options, values, positionals,
                                        subcommands))
    commands = " ".join(COMMANDS)
    return _BASH.format(commands=commands, cases="\n".join(cases))


def _bash_words(action: argparse.Action, path: tuple[str, ...], rules: str, bundled: str
                ) -> str:
    """A shell snippet that sets `words` (or files) for completing this value."""
    kind = _kind(action, path)
    if kind == "choices":
        return f"words={shlex.quote(' '.join(map(str, action.choices)))}"
    if kind == "rules":
        return f"words={shlex.quote(rules)}"
    if kind == "namespaces":
        return "words=$(netdiag completion --candidates namespaces 2>/dev/null)"
    if kind == "labs":
        return "words=$(netdiag completion --candidates labs 2>/dev/null)"
    if kind == "topologies":
        return f"words={shlex.quote(bundled)}; files=1"
    if kind == "files":
        return "files=1"
    return "words="


def _bash_command_case(path: str, options: list[str], values: list[str],
                       positionals: list[str], subcommands: list[str]) -> str:
    positional_cases = "\n".join(f"                {i}) {words} ;;"
                                 for i, words in enumerate(positionals))
    return f'''    "{path}")
        options={shlex.quote(" ".join(options))}
        subcommands={shlex.quote(" ".join(subcommands))}
        case "$prev" in
{chr(10).join(values)}
        esac
        if [ -z "$value" ] && [ -z "$subcommands" ]; then
            case "$position" in
{positional_cases}
            esac
        fi ;;'''


_BASH = '''# bash completion for netdiag (written by `netdiag completion bash`)
_netdiag() {{
    local cur prev path="" position=0 i word words="" options="" subcommands="" files="" value=""
    local -a args
    # A namespace reference has colons (container:web): complete it as one word.
    COMP_WORDBREAKS=${{COMP_WORDBREAKS//:}}
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev=""
    [ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    # The command path so far (netdiag lab up ...) and how many positionals follow it.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in
            -*) ;;
            *)  if [ -z "$path" ]; then path="$word"
                elif [ -n "$(_netdiag_actions "$path")" ] && [ "$position" -eq 0 ] \\
                        && [[ " $(_netdiag_actions "$path") " == *" $word "* ]]; then
                    path="$path $word"
                else
                    case "${{COMP_WORDS[i-1]}}" in
                        -*) [ -n "$(_netdiag_takes "$path" "${{COMP_WORDS[i-1]}}")" ] \\
                                || position=$((position + 1)) ;;
                        *) position=$((position + 1)) ;;
                    esac
                fi ;;
        esac
    done
    if [ -z "$path" ]; then
        if [[ "$cur" == -* ]]; then words="--help --version"; else words="{commands}"; fi
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    _netdiag_for "$path"
    if [ -n "$value" ]; then
        :
    elif [[ "$cur" == -* ]]; then
        words="$options"; files=""
    elif [ -n "$subcommands" ]; then
        words="$subcommands"; files=""
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    if [ -n "$files" ] && [[ "$cur" != -* ]]; then
        COMPREPLY+=($(compgen -f -- "$cur"))
    fi
}}

# Sets options, subcommands, and — for the word being completed — words/files/value.
_netdiag_for() {{
    case "$1" in
{cases}
    esac
}}

_netdiag_actions() {{
    local options subcommands prev="" position=99 value="" words="" files=""
    _netdiag_for "$1"
    echo "$subcommands"
}}

_netdiag_takes() {{
    local options subcommands prev="$2" position=99 value="" words="" files=""
    _netdiag_for "$1"
    echo "$value"
}}

complete -F _netdiag netdiag
'''
