/**
 * `geofence completion bash|zsh`: a shell completion script generated from the CLI's own command
 * tree (commands, subcommands, options and option choices), so it cannot drift from the CLI. The zsh
 * script runs the same function through zsh's `bashcompinit`.
 */
import type { Command } from 'commander';

interface Node {
  /** Command path, e.g. `agents list` (`''` for the program). */
  path: string;
  words: string[];
}

function walk(cmd: Command, prefix: string, nodes: Node[], choices: Map<string, string[]>): void {
  const words = [...cmd.commands.map((c) => c.name()), '--help'];
  for (const o of cmd.options) {
    if (o.long) words.push(o.long);
    if (o.short) words.push(o.short);
    const ch = (o as { argChoices?: string[] }).argChoices;
    if (ch?.length) for (const flag of [o.long, o.short]) if (flag) choices.set(flag, ch);
  }
  // Arguments with a fixed set of values (`completion <shell>`).
  for (const a of cmd.registeredArguments) if (a.argChoices) words.push(...a.argChoices);
  nodes.push({ path: prefix, words });
  for (const sub of cmd.commands) walk(sub, prefix ? `${prefix} ${sub.name()}` : sub.name(), nodes, choices);
}

/** Shell words are generated from command and option names only ([a-z0-9-]), so no quoting is needed. */
function bashFunction(program: Command): string {
  const nodes: Node[] = [];
  const choices = new Map<string, string[]>();
  walk(program, '', nodes, choices);
  const known = nodes.filter((n) => n.path !== '').map((n) => `"${n.path}"`);
  return `_geofence_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" i w next
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    next="\${path:+$path }$w"
    case "$next" in
      ${known.join('|')}) path="$next" ;;
    esac
  done
  case "$prev" in
${[...choices]
  .map(([flag, ch]) => `    ${flag}) COMPREPLY=($(compgen -W "${ch.join(' ')}" -- "$cur")); return ;;`)
  .join('\n')}
  esac
  local words
  case "$path" in
${nodes.map((n) => `    "${n.path}") words="${n.words.join(' ')}" ;;`).join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
`;
}

/** The completion script for `shell`. */
export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const fn = bashFunction(program);
  if (shell === 'bash') {
    return `# geofence completion for bash: add \`source <(geofence completion bash)\` to ~/.bashrc
${fn}complete -F _geofence_complete geofence
`;
  }
  return `# geofence completion for zsh: add \`source <(geofence completion zsh)\` to ~/.zshrc (after compinit)
autoload -U +X bashcompinit && bashcompinit
${fn}complete -F _geofence_complete geofence
`;
}
