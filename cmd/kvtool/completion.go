package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The completion scripts ask kvtool itself for the candidates: they run the
// command line typed so far with --generate-bash-completion appended
// (App.EnableBashCompletion). They follow urfave/cli's autocomplete scripts.
const bashCompletion = `# bash completion for kvtool; load with: source <(kvtool completion bash)
_kvtool_complete() {
  local cur words cword
  COMPREPLY=()
  if declare -F _init_completion >/dev/null 2>&1; then
    _init_completion -n "=:" || return
  else
    cur="${COMP_WORDS[COMP_CWORD]}"
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi
  words=("${words[@]:0:$cword}")
  local request
  if [[ "$cur" == "-"* ]]; then
    request="${words[*]} ${cur} --generate-bash-completion"
  else
    request="${words[*]} --generate-bash-completion"
  fi
  local opts
  opts=$(eval "${request}" 2>/dev/null)
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -o nospace -F _kvtool_complete kvtool
`

const zshCompletion = `#compdef kvtool
# zsh completion for kvtool; load with: source <(kvtool completion zsh)
# (after compinit), or save it as _kvtool in a directory on $fpath.
_kvtool() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _kvtool kvtool
`

func completionCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: `Prints a script that makes the shell complete kvtool's commands and flags.

Examples:
  source <(kvtool completion bash)          # this bash session
  kvtool completion bash > /etc/bash_completion.d/kvtool
  source <(kvtool completion zsh)           # this zsh session (after compinit)
  kvtool completion zsh > "${fpath[1]}/_kvtool"`,
		Action: act(e, spec{min: 1, max: 1}, func(c *call) error {
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			default:
				return usageErrorf(c.Context, "unsupported shell %q: want bash or zsh", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return writeErr(err)
		}),
	}
}
