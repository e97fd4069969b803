
use builtin;
use str;

set edit:completion:arg-completer[rdv] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'rdv'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'rdv'= {
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the signaling server'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;serve'= {
            cand --listen 'Address to listen on; port 0 picks a free port. The bound address is printed on stdout as one line: `listening ADDR`'
            cand --max-message-size 'Largest message accepted; a bigger one closes its connection with 1009'
            cand --ping-interval 'Interval between the server''s WebSocket pings; a connection silent for two intervals is closed and its peer reported as left'
            cand --register-timeout 'How long a connection may stay unregistered before it is closed with 1008'
            cand --outbound-queue 'Messages queued for one connection before it counts as too slow and is closed with 1013'
            cand --outbound-queue-bytes 'Bytes queued for one connection before it counts as too slow and is closed with 1013; with --outbound-queue this bounds the memory a stalled receiver can hold'
            cand --max-connections 'Open WebSocket connections allowed at once; more are closed with 1013'
            cand --max-peers-per-room 'Registered peers allowed in one room; more get `room-full`'
            cand --rate-limit 'Messages per second one connection may send on average'
            cand --rate-burst 'Messages one connection may send in a burst above the rate; a connection that keeps sending after a whole burst has been dropped is closed with 1008'
            cand --drain-timeout 'Longest wait for connections to close on SIGINT/SIGTERM before exiting anyway'
            cand --allow-list 'Only these peer IDs may register (a file of IDs, one per line, `#` comments; or a JSON buddy list `[{"id": …}]`). Others get `forbidden` and are closed with 1008'
            cand --log-format 'Log format on stderr; the level comes from `RDV_LOG` (e.g. `info`, `rdv=debug`)'
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;completions'= {
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;help'= {
            cand serve 'Run the signaling server'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;help;serve'= {
        }
        &'rdv;help;completions'= {
        }
        &'rdv;help;help'= {
        }
    ]
    $completions[$command]
}
