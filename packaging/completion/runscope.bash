# bash completion for runscope(1)                                  -*- shell-script -*-

# Prints column $1 of `runscope ps` (header skipped) for tasks whose alloc is $2 (any when empty).
_runscope_ps_column() {
    runscope ps 2>/dev/null | awk -v col="$1" -v alloc="$2" \
        'NR > 1 && (alloc == "" || $1 == alloc) { print $col }'
}

_runscope() {
    local cur prev words cword
    _init_completion || return

    local commands="exec run stop kill signal ps inspect stats logs cpus fingerprint"
    local globals="--config --bus --log-level --help --version"
    local task_opts="--alloc --task --memory-max --cpu-weight --pids-max --kill-signal
        --kill-timeout --user --chdir --env --help"

    case $prev in
        --config|--file) _filedir; return ;;
        --chdir) _filedir -d; return ;;
        --bus) COMPREPLY=($(compgen -W "system session" -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "trace debug info warn error off" -- "$cur")); return ;;
        --manager) COMPREPLY=($(compgen -W "auto cgroupfs systemd" -- "$cur")); return ;;
        --user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
        --kill-signal) COMPREPLY=($(compgen -W "SIGTERM SIGINT SIGHUP SIGQUIT SIGKILL SIGUSR1 SIGUSR2" -- "$cur")); return ;;
        --alloc|--task|--memory-max|--cpu-weight|--pids-max|--cpuset|--kill-timeout|--env|--cores) return ;;
    esac

    # The subcommand and how many positional words follow it.
    local i command="" positional=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --config|--bus|--log-level) ((i++)) ;;
            --) [[ -n $command ]] && break ;;
            -*) ;;
            *) if [[ -z $command ]]; then command=${words[i]}; else ((positional++)); fi ;;
        esac
    done

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    case $command in
        exec|run)
            if [[ " ${words[*]:1:cword-1} " == *" -- "* ]]; then
                _command_offset $((i + 1))
                return
            fi
            local extra="--cpuset --manager --no-cgroups"
            [[ $command == run ]] && extra="--cores --wait --file"
            COMPREPLY=($(compgen -W "$task_opts $extra --" -- "$cur"))
            ;;
        stop|kill|signal|inspect|stats|logs)
            if [[ $cur == -* ]]; then
                local opts="--help"
                case $command in
                    stats) opts="--watch --json --help" ;;
                    logs) opts="-f --help" ;;
                    inspect) opts="--json --help" ;;
                esac
                COMPREPLY=($(compgen -W "$opts" -- "$cur"))
            elif ((positional == 0)); then
                COMPREPLY=($(compgen -W "$(_runscope_ps_column 1 "")" -- "$cur"))
            elif ((positional == 1)); then
                local alloc
                for ((i = cword - 1; i > 0; i--)); do
                    [[ ${words[i]} != -* ]] && { alloc=${words[i]}; break; }
                done
                COMPREPLY=($(compgen -W "$(_runscope_ps_column 2 "$alloc")" -- "$cur"))
            elif [[ $command == signal ]] && ((positional == 2)); then
                COMPREPLY=($(compgen -W "TERM INT HUP QUIT KILL USR1 USR2 STOP CONT" -- "$cur"))
            fi
            ;;
        ps|cpus) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
        fingerprint) COMPREPLY=($(compgen -W "--json --daemon --help" -- "$cur")) ;;
    esac
} &&
    complete -F _runscope runscope

# ex: filetype=sh
