#!/usr/bin/env python3
"""Writes the man page ferry(1) and the bash completion of `ferry` from the CLI's own help.

    ferry_cli_docs.py --ferry BIN --changelog packaging/deb/changelog \
        --man OUT/ferry.1.gz --completion OUT/ferry

Runs `BIN --help` and `BIN help COMMAND` for every command it lists, so that the man page and the
completion say exactly what the binary says: a command, subcommand or option added to the CLI
appears in both at the next build. What it reads from the help text:

  --help       the first paragraph (NAME, DESCRIPTION), the "Usage:" line, the "Commands:" and
               "Options:" tables (two-column, continuation lines indented), further paragraphs
               (DESCRIPTION) and the "Exit codes:" paragraph (EXIT STATUS, split at ", N ")
  help CMD     synopsis lines ("ferry CMD ...") up to the first blank line: subcommands (lowercase
               words), options (-x, --xx), their arguments (the UPPERCASE word after an option),
               positional arguments (other UPPERCASE words); "`ALIAS` is the same command" adds an
               alias of the subcommand; the rest is the command's description, where lines
               "  word   text" form a table

Completion of arguments: FILE (files), DIR (directories), INSTANT ("now"), NAME (the names of the
sources or sinks in the config: the command's kind, or the option's, e.g. --sink), others none.
The date of the man page is the date of the latest packaging/deb/changelog entry (reproducible).
"""
import argparse
import email.utils
import re
import subprocess
import sys

from gzip_n import write_gzip

# The packaging's facts, not the CLI's: where things are once the package is installed.
FILES = [
    ("/etc/ferry/ferry.ini", "the configuration (0640 root:ferry): every plugin documented, "
     "nothing enabled as shipped"),
    ("/etc/default/ferry", "optional environment of the service, e.g. secrets referenced as "
     "${system.env.NAME}"),
    ("/var/lib/ferry", "the state: the journal (journal.db) and its lock"),
    ("/var/spool/ferry", "drop folders, e.g. the ERP's CSV folder; kept on purge while it "
     "holds files"),
    ("/usr/lib/ferry/plugins", "the plugins"),
    ("/usr/share/doc/ferry/examples", "example configurations"),
    ("/usr/share/doc/ferry/README.md", "the guide; plugins/*/README.md: each plugin's options"),
]
ENVIRONMENT = [
    ("FERRY_CONFIG", "the configuration file when --config is not given"),
    ("FERRY_PLUGIN_DIR", "the plugin directory when neither --plugin-dir nor [host] plugin_dir "
     "sets it"),
]
SEE_ALSO = r"\fBsystemctl\fR(1), \fBjournalctl\fR(1), /usr/share/doc/ferry/README.md"

UPPER = re.compile(r"^[A-Z][A-Z_]*$")
LOWER = re.compile(r"^[a-z][a-z-]*$")
OPTION = re.compile(r"^--?[A-Za-z][A-Za-z-]*$")


def run_help(ferry, *args):
    out = subprocess.run([ferry, *args], check=True, capture_output=True, text=True)
    return out.stdout


def paragraphs(text):
    """Blank-line separated blocks, each a list of lines."""
    blocks, block = [], []
    for line in text.splitlines():
        if line.strip():
            block.append(line.rstrip())
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def table(lines):
    """'  name    text' rows with indented continuation lines -> [(name, text)]."""
    rows = []
    for line in lines:
        m = re.match(r"^ {0,6}(\S.*?)(?: {2,}(\S.*))?$", line)
        indent = len(line) - len(line.lstrip())
        if rows and (m is None or indent > 6):
            rows[-1] = (rows[-1][0], (rows[-1][1] + " " + line.strip()).strip())
        else:
            rows.append((m.group(1).strip(), (m.group(2) or "").strip()))
    return rows


class Cli:
    """What `ferry --help` and `ferry help COMMAND` say."""

    def __init__(self, ferry):
        main = run_help(ferry, "--help")
        blocks = paragraphs(main)
        head = " ".join(line.strip() for line in blocks[0])
        m = re.match(r"^ferry (\S+) \S+ (.*)$", head)  # "ferry 0.1.0 — moves ..."
        if not m:
            sys.exit(f"ferry_cli_docs: unexpected first paragraph of ferry --help: {head!r}")
        self.version, self.summary = m.group(1), m.group(2).rstrip(".")
        self.usage, self.commands, self.options, self.notes, self.exit_codes = [], [], [], [], []
        for block in blocks[1:]:
            first = block[0]
            if first.startswith("Usage:"):
                self.usage = [u.strip() for u in re.split(r" {3,}", first[len("Usage:"):].strip())]
            elif first == "Commands:":
                self.commands = table(block[1:])
            elif first == "Options:":
                self.options = table(block[1:])
            elif first.startswith("Exit codes:"):
                text = " ".join(line.strip() for line in block)[len("Exit codes:"):].strip()
                self.exit_codes = [tuple(item.split(" ", 1))
                                   for item in re.split(r",\s+(?=\d+ )", text.rstrip("."))]
            else:
                self.notes.append(" ".join(line.strip() for line in block))
        if not self.commands or not self.options:
            sys.exit("ferry_cli_docs: ferry --help has no Commands: or Options: table")
        names = []
        for name, _ in self.commands:
            if name.split()[0] not in names:
                names.append(name.split()[0])
        # "ferry help <command>" in the usage line: `help` is a command too.
        if any(u.startswith("ferry help ") for u in self.usage):
            names.append("help")
        self.command_help = {}
        for name in names:
            text = run_help(ferry, "help", name) if name != "help" else ""
            self.command_help[name] = text
        self.names = names
        self.global_options = self.parse_option_names([n for n, _ in self.options])
        # per command: subcommands, {(sub): options}, {(sub): positionals}
        self.subs, self.sub_options, self.positionals, self.option_args = {}, {}, {}, {}
        for opt, arg in self.global_options:
            self.option_args[opt] = arg
        for name in names:
            self.parse_synopsis(name)
        # The words that stand for an argument: FILE, NAME, INSTANT, ...
        self.placeholders = {a for a in self.option_args.values() if a}
        for by_sub in self.positionals.values():
            self.placeholders.update(p for pos in by_sub.values() for p in pos)

    @staticmethod
    def parse_option_names(cells):
        """'-c, --config FILE' -> [('-c', 'FILE'), ('--config', 'FILE')]."""
        result = []
        for cell in cells:
            words = cell.replace(",", " ").split()
            arg = words[-1] if UPPER.match(words[-1]) else None
            result += [(w, arg) for w in words if OPTION.match(w)]
        return result

    def synopsis(self, name):
        blocks = paragraphs(self.command_help[name])
        return blocks[0] if blocks and blocks[0][0].startswith("ferry ") else []

    def body(self, name):
        blocks = paragraphs(self.command_help[name])
        return blocks[1:] if self.synopsis(name) else blocks

    def parse_synopsis(self, name):
        subs, options, positionals = [], {"": []}, {"": []}
        for line in self.synopsis(name):
            tokens = re.sub(r"[\[\]()|]", " ", line).split()
            if tokens[:2] != ["ferry", name]:
                continue
            sub = ""
            i = 2
            while i < len(tokens):
                t = tokens[i]
                if OPTION.match(t):
                    following = tokens[i + 1] if i + 1 < len(tokens) else ""
                    arg = following if UPPER.match(following) else None
                    options[sub].append(t)
                    self.option_args.setdefault(t, arg)
                    i += 2 if arg else 1
                    continue
                if LOWER.match(t):
                    sub = t
                    if sub not in subs:
                        subs.append(sub)
                    options.setdefault(sub, [])
                    positionals.setdefault(sub, [])
                elif UPPER.match(t):
                    positionals[sub].append(t)
                i += 1
        text = " ".join(" ".join(b) for b in self.body(name))
        for alias in re.findall(r"`([a-z][a-z-]*)` is the same command", text):
            if subs and alias not in subs:
                subs.append(alias)
                options[alias], positionals[alias] = options[subs[0]], positionals[subs[0]]
        self.subs[name], self.sub_options[name], self.positionals[name] = subs, options, positionals


# --- roff -----------------------------------------------------------------------------------------
def roff(text):
    """Escapes text for a man page: backslashes, hyphens (as typed: \\-), `code` in bold,
    non-ASCII as named or Unicode glyphs, a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    text = "".join(c if ord(c) < 128 else ("\\(em" if c == "—" else f"\\[u{ord(c):04X}]")
                   for c in text)
    return text


def roff_line(text):
    text = roff(text)
    return "\\&" + text if text[:1] in (".", "'") else text


def bold_options(text, placeholders):
    """-x/--long option words in bold, argument placeholders (FILE, NAME, ...) in italics; `text`
    is already escaped."""
    text = re.sub(r"(?<![\w\\])(\\-(?:\\-)?[A-Za-z][A-Za-z0-9]*(?:\\-[A-Za-z0-9]+)*)",
                  r"\\fB\1\\fR", text)
    return re.sub(r"\b([A-Z][A-Z_]*)\b",
                  lambda m: f"\\fI{m.group(1)}\\fR" if m.group(1) in placeholders else m.group(1),
                  text)


def man_page(cli, date):
    def fmt(text):  # a line of help text
        return bold_options(roff_line(text), cli.placeholders)

    out = [f'.TH FERRY 1 "{date}" "ferry {cli.version}" "User Commands"',
           ".nh",  # no hyphenation: commands and options are copied from the page as typed
           ".SH NAME", f"ferry \\- {roff(cli.summary)}",
           ".SH SYNOPSIS"]
    for u in cli.usage:
        u = re.sub(r"^\(or (.*)\)$", r"\1", u)
        words = u.split() if u.startswith("ferry ") else ["ferry"] + u.split()
        out += [".br"] if out[-1] != ".SH SYNOPSIS" else []
        out.append(" ".join(["\\fBferry\\fR"] + [
            (f"\\fI{roff(w)}\\fR" if w.startswith(("<", "[")) else f"\\fB{roff(w)}\\fR")
            for w in words[1:]]))
    out += [".SH DESCRIPTION", roff_line(cli.summary[:1].upper() + cli.summary[1:] + ".")]
    for note in cli.notes:
        out += [".PP", fmt(note)]
    out.append(".SH COMMANDS")
    for name, text in cli.commands:
        out += [".TP", "\\fB" + bold_options(roff(name), cli.placeholders).replace("\\fR", "\\fB")
                + "\\fR", fmt(text)]
    for name in cli.names:
        if not cli.command_help[name]:
            continue
        out.append(f'.SS "ferry {roff(name)}"')
        out += [".nf"] + [fmt(s.strip()) for s in cli.synopsis(name)] + [".fi"]
        for block in cli.body(name):
            rows = table(block)
            if re.match(r"^ {0,6}\S+ {2,}\S", block[0]) and all(text for _, text in rows):
                for key, text in rows:
                    out += [".TP", fmt(key), fmt(text)]
            else:
                out += [".PP", fmt(" ".join(b.strip() for b in block))]
    out.append(".SH OPTIONS")
    for name, text in cli.options:
        out += [".TP", fmt(name), fmt(text)]
    out.append(".PP")
    out.append("The options of each command are described with it under \\fBCOMMANDS\\fR.")
    if cli.exit_codes:
        out.append(".SH EXIT STATUS")
        for code, text in cli.exit_codes:
            out += [".TP", f"\\fB{code}\\fR", fmt(text)]
    out.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{name}\\fR", fmt(text)]
    out.append(".SH FILES")
    for path, text in FILES:
        out += [".TP", f"\\fI{roff(path)}\\fR", roff_line(text)]
    out += [".SH SEE ALSO", SEE_ALSO]
    return "\n".join(out) + "\n"


# --- bash completion ------------------------------------------------------------------------------
def words(items):
    return " ".join(items)


def completion(cli):
    with_arg = sorted(o for o, a in cli.option_args.items() if a)
    # The configuration file: the global option(s) taking a FILE (-c, --config).
    config_opts = [o for o, a in cli.global_options if a == "FILE"]
    if not config_opts:
        sys.exit("ferry_cli_docs: ferry --help names no option taking the configuration FILE")
    globals_ = [o for o, _ in cli.global_options]
    by_arg = {}
    for opt in with_arg:
        by_arg.setdefault(cli.option_args[opt], []).append(opt)

    def names_of(kind):
        return f'COMPREPLY=($(compgen -W "$(_ferry_names {kind})" -- "$cur"))'

    arg_cases = []
    for arg, opts in sorted(by_arg.items()):
        if arg == "FILE":
            action = "_filedir"
        elif arg == "DIR":
            action = "_filedir -d"
        elif arg == "INSTANT":
            action = 'COMPREPLY=($(compgen -W "now" -- "$cur"))'
        elif arg == "NAME":
            # --sink NAME: the names of the sinks; one case per option
            for opt in opts:
                arg_cases.append(f"        {opt})\n            {names_of(opt.lstrip('-'))}\n"
                                 f"            return\n            ;;")
            continue
        else:
            action = ":"
        arg_cases.append(f"        {'|'.join(opts)})\n            {action}\n            return\n"
                         f"            ;;")

    option_cases, positional_cases, sub_cases = [], [], []
    with_subs = [n for n in cli.names if cli.subs.get(n)]
    for name in cli.names:
        subs = cli.subs.get(name, [])
        kind = name[:-1] if name.endswith("s") else name  # sources -> source, sinks -> sink
        for sub in ([""] if not subs else subs):
            opts = [o for o in cli.sub_options[name].get(sub, []) if o not in globals_]
            key = f"{name} {sub}" if sub else f"{name} *"
            pattern = f'"{key}"' if sub else f'"{name} "*'
            if opts:
                option_cases.append(f"        {pattern})\n            opts=\"{words(opts)}\" ;;")
            pos = cli.positionals[name].get(sub, [])
            if pos and pos[0] == "NAME":
                positional_cases.append(
                    f"        {pattern})\n            ((npos == 0)) && {names_of(kind)}\n"
                    f"            ;;")
        if subs:
            sub_cases.append(f"        {name})\n            subs=\"{words(subs)}\" ;;")

    config_long = "|".join(o + "=*" for o in config_opts if o.startswith("--"))
    commands = words(n for n in cli.names if n != "help")
    return f"""# bash completion for ferry(1)                               -*- shell-script -*-
# Generated from `ferry --help` and `ferry help COMMAND` by packaging/tools/ferry_cli_docs.py at
# build time (ferry {cli.version}): do not edit, change the CLI's help instead.

# The names of the [source.NAME] or [sink.NAME] sections ($1: source|sink) of the configuration
# the command line names ({'/'.join(config_opts)}), else $FERRY_CONFIG, else
# /etc/ferry/ferry.ini; nothing when it is not readable (it is 0640 root:ferry).
_ferry_names()
{{
    local config=${{FERRY_CONFIG:-/etc/ferry/ferry.ini}} i
    for ((i = 1; i < ${{#words[@]}} - 1; i++)); do
        case ${{words[i]}} in
            {'|'.join(config_opts)}) config=${{words[i + 1]}} ;;
            {config_long}) config=${{words[i]#*=}} ;;
        esac
    done
    [[ -r $config ]] || return 0
    sed -n "s/^[[:space:]]*\\[$1\\.\\([^]]*\\)\\][[:space:]]*$/\\1/p" "$config" 2>/dev/null
}}

_ferry()
{{
    local cur prev words cword split
    _init_completion -s || return

    case $prev in
{chr(10).join(arg_cases)}
    esac
    $split && return

    # The command, its subcommand and how many arguments follow them.
    local i w cmd= sub= npos=0 subs= opts=
    for ((i = 1; i < cword; i++)); do
        w=${{words[i]}}
        case $w in
            {'|'.join(with_arg)})
                ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=$w
                elif [[ -z $sub && $cmd == @({'|'.join(with_subs)}) ]]; then
                    sub=$w
                else
                    ((npos++))
                fi
                ;;
        esac
    done

    if [[ $cur == -* ]]; then
        case "$cmd $sub" in
{chr(10).join(option_cases)}
        esac
        COMPREPLY=($(compgen -W "$opts {words(globals_)}" -- "$cur"))
        return
    fi

    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "{words(cli.names)}" -- "$cur"))
        return
    fi
    case $cmd in
{chr(10).join(sub_cases)}
        help)
            ((npos == 0)) && COMPREPLY=($(compgen -W "{commands}" -- "$cur"))
            return
            ;;
    esac
    if [[ -n $subs && -z $sub ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
    fi
    case "$cmd $sub" in
{chr(10).join(positional_cases)}
    esac
}} &&
    complete -F _ferry ferry

# ex: filetype=sh
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ferry", required=True, help="the ferry binary of this build")
    p.add_argument("--changelog", required=True, help="packaging/deb/changelog (the date)")
    p.add_argument("--man", required=True, help="ferry.1.gz to write")
    p.add_argument("--completion", required=True, help="the bash completion file to write")
    a = p.parse_args()

    with open(a.changelog, encoding="utf-8") as f:
        trailer = next((l for l in f if l.startswith(" -- ")), None)
    if trailer is None or "  " not in trailer.strip():
        sys.exit(f"ferry_cli_docs: {a.changelog}: no ' -- NAME <EMAIL>  DATE' line")
    date = email.utils.parsedate_to_datetime(trailer.rsplit("  ", 1)[1].strip()).date().isoformat()

    cli = Cli(a.ferry)
    write_gzip(a.man, man_page(cli, date).encode("utf-8"))
    with open(a.completion, "w", encoding="utf-8") as f:
        f.write(completion(cli))


if __name__ == "__main__":
    main()
