#!/usr/bin/env bash
# complete.sh WORD...: what bash completion offers for the command line `WORD...` (the last word is
# the one being completed, possibly ''), one candidate a line, sorted. It loads the completion of
# `ferry` the way an interactive bash does: bash-completion finds it by the command's name.
. /usr/share/bash-completion/bash_completion
__load_completion ferry || { echo "complete.sh: no bash completion found for ferry" >&2; exit 1; }
spec=$(complete -p ferry) || exit 1
func=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
[ -n "$func" ] || { echo "complete.sh: $spec has no function" >&2; exit 1; }
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$func" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort
