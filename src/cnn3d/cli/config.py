"""Runs as files: `--config FILE` (TOML, YAML or JSON) and `--recipe NAME` give a command's
options, and flags on the command line override them.

The keys are the long option names, in either spelling (`sample_duration`, `clip-length`,
`n_epochs`, `video-path`); `--no-` switches may be given as `val: false` or `no_val: true`.
Each value is checked as the flag's value would be (its type, range and choices), and an
unknown key is an error naming the nearest valid one. The tables `recipe` (a recipe's card),
`test` (its evaluation protocol) and `used` (what `opts.json` records of the run) are not
options. Works by making the values the parser's defaults before it parses the command line,
so that argparse's own precedence holds: a flag given wins.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

from ..errors import UsageError

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")
NOT_OPTIONS = ("recipe", "test", "used")  # tables of a config that are not the command's options
NOT_GIVEN = ("help", "config", "recipe")  # options a config cannot itself set


def read_config(path: str | Path) -> dict:
    """The mapping in a TOML, YAML or JSON file; one-line errors naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise UsageError(f"{path}: a config is a .toml, .yaml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot be read ({error})") from None
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                raise UsageError(
                    f"{path}: YAML configs need PyYAML (pip install pyyaml); TOML and JSON "
                    "need nothing"
                ) from None
            data = yaml.safe_load(text)
    except UsageError:
        raise
    except Exception as error:  # each format's own parse error, with its line
        raise UsageError(f"{path}: not valid {suffix[1:].upper()} ({parse_error(error)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config is a mapping of option names to values")
    return data


def parse_error(error: Exception) -> str:
    """A parser's error in one line, with its line number (PyYAML's spans several lines)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        problem = getattr(error, "problem", None) or getattr(error, "context", None) or "error"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(error).split())


def option_table(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.Action, bool]]:
    """{key: (action, whether the key negates it)} for every spelling of every long option,
    and for each option's dest (what opts.json records) where no option is spelled so."""
    table: dict[str, tuple[argparse.Action, bool]] = {}
    actions = [a for a in parser._actions if a.option_strings and a.dest not in NOT_GIVEN]
    for action in actions:
        for option in action.option_strings:
            if not option.startswith("--"):
                continue
            key = option[2:].replace("-", "_")
            boolean = isinstance(action, argparse.BooleanOptionalAction)
            table[key] = (action, boolean and key.startswith("no_"))
    for action in actions:  # e.g. `device` for --device (not --no_cuda, which also sets it)
        table.setdefault(action.dest, (action, False))
    return table


SKIP = object()  # a switch given as false where false sets nothing (e.g. `no_cuda: false`)


def convert(action: argparse.Action, value, negated: bool, where: str):
    """A config value as the option's parsed value, checked as the flag's would be."""
    if value is None:  # as opts.json records an option left unset
        return None
    if action.nargs == 0:  # switches: --x/--no-x, store_true, store_false, store_const
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false, not {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return not value if negated else value
        if isinstance(action.const, bool):
            return value if action.const else not value
        return action.const if value else SKIP
    many = action.nargs in ("*", "+") or isinstance(action.nargs, int)
    if isinstance(value, (list, tuple)) and not many:
        raise UsageError(f"{where}: expected one value, not a list")
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(action.nargs, int) and len(values) != action.nargs:
        raise UsageError(f"{where}: expected {action.nargs} values, not {len(values)}")
    if action.nargs == "+" and not values:
        raise UsageError(f"{where}: expected at least one value")
    parsed = []
    for item in values:
        if isinstance(item, (dict, list)):
            raise UsageError(f"{where}: expected a number or a string, not {item!r}")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        try:
            item = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
            raise UsageError(f"{where}: {error or 'not a valid value'} ({text!r})") from None
        if action.choices is not None and item not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise UsageError(f"{where}: {item!r} is not one of {choices}")
        parsed.append(item)
    return parsed if many else parsed[0]


def apply_config(parser: argparse.ArgumentParser, config: dict, source: str) -> None:
    """Make `config`'s values `parser`'s defaults (an option it gives is no longer required
    on the command line)."""
    table = option_table(parser)
    defaults = {}
    for key, value in config.items():
        if key in NOT_OPTIONS:
            continue
        normal = str(key).replace("-", "_")
        if normal not in table:
            near = difflib.get_close_matches(normal, list(table), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise UsageError(f"{source}: unknown option {key!r}{hint}")
        action, negated = table[normal]
        converted = convert(action, value, negated, f"{source}: {key}")
        if converted is None and action.required:
            raise UsageError(f"{source}: {key} is required and cannot be null")
        if converted is not SKIP:
            defaults[action.dest] = converted
            action.required = False
    parser.set_defaults(**defaults)


def given(argv: list[str], option: str) -> str | None:
    """The value of `--option VALUE` or `--option=VALUE` in argv (the last one), or None."""
    found = None
    for i, token in enumerate(argv):
        if token == option and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith(option + "="):
            found = token.split("=", 1)[1]
    return found
